//! `hotswap-node watch` from the command line: settings as `deploy` reads
//! them, what to watch, the held session, and Ctrl-C.

use super::args::WatchArgs;
use super::error::CliError;
use super::setup::{options, peer_options, project, reached, settings};
use crate::deploy::Session;
use crate::interrupt::Interrupt;
use crate::output::{Mode, Ui};
use crate::peer::{Peer, Ticks};
use crate::project::{Builder, Project};
use crate::store::Store;
use crate::watch::sources::{self, Root, Sources, Watched};
use crate::watch::{FindModules, Watch, WatchOptions};
use std::path::PathBuf;
use std::time::Duration;

/// A held session ticks every second: a connection whose node rebooted
/// while the link was down is found dead (the new node resets it) as soon
/// as the link is back, not at the next of the usual 15 s ticks.
const HELD_TICKS: Ticks = Ticks {
    ticktime: Duration::from_secs(4),
};

/// The default node name: another than `deploy`'s, so that a deploy or a
/// rollback can run beside a watch.
const WATCH_NAME: &str = "hotswap_watch";

pub(super) async fn watch_command(args: WatchArgs) -> Result<i32, CliError> {
    let mode = Mode::from_flags(args.output.json, args.output.quiet);
    let ui = Ui::new(mode);
    let mut settings = settings(&args.target)?;
    settings.name.get_or_insert_with(|| WATCH_NAME.into());
    for w in &settings.warnings {
        ui.warn(w);
    }
    settings.require_nodes()?;
    settings.cookie()?;
    let explicit = !args.paths.is_empty() || !settings.ebin.is_empty();
    let build = if args.no_build || explicit {
        None
    } else {
        settings.build.clone()
    };
    let project = project(&settings);
    let sources = watch_sources(&project, &args.paths, build.is_some())?;
    let builder = Builder::warm(project.root(), build.as_deref(), mode);
    let interrupt = Interrupt::listen(
        "stopping: the change in flight finishes or is undone (Ctrl-C again to quit now)",
    );
    let options = options(&settings, &args.load, args.force, &interrupt)?;
    let store = Store::new(settings.snapshot_dir.clone());
    let mut peer_options = peer_options(&settings)?;
    peer_options.ticks = HELD_TICKS;
    let peer = Peer::launch(peer_options, &reached(&settings))
        .await
        .map_err(CliError::from)?;
    let (session, missing) = Session::hold(peer, store, &settings.nodes, &options).await?;
    let find: FindModules = {
        let (project, paths) = (project.clone(), args.paths.clone());
        std::sync::Arc::new(move || {
            project
                .modules(&paths)
                .map(|(modules, _)| modules)
                .map_err(|e| e.to_string())
        })
    };
    let watch = WatchOptions {
        project: settings.project.clone(),
        settle: Duration::from_millis(args.settle),
        mode,
    };
    let (w, incoming) = Watch::new(session, sources, builder, find, options, watch);
    w.run(missing, incoming, interrupt).await;
    Ok(0)
}

/// The project's sources when it is built, or else the folders holding
/// the modules (made when missing, so beams can be moved in).
fn watch_sources(project: &Project, paths: &[PathBuf], built: bool) -> Result<Sources, CliError> {
    let (roots, kind) = if built {
        (sources::project_roots(project.root()), Watched::Sources)
    } else {
        let dirs = project.beam_dirs(paths)?;
        let roots = dirs
            .into_iter()
            .map(|path| Root {
                path,
                recursive: false,
            })
            .collect();
        (roots, Watched::Beams)
    };
    let first = roots.first().map(|r| r.path.clone()).unwrap_or_default();
    Sources::watch(roots, kind).map_err(|e| CliError::Watch {
        path: e.paths.first().cloned().unwrap_or(first),
        detail: e.to_string(),
    })
}
