//! `hotswap-node watch` from the command line: settings as `deploy` reads
//! them, what to watch, the held session, and Ctrl-C.

use super::args::WatchArgs;
use super::error::CliError;
use super::exit;
use super::setup::{peer_options, reached, Asked, Prepared};
use crate::deploy::Session;
use crate::interrupt::Interrupt;
use crate::peer::{Peer, Ticks};
use crate::project::{Builder, Project};
use crate::watch::sources::{self, Root, Sources, Watched};
use crate::watch::{Ended, FindModules, Watch, WatchOptions};
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
    let interrupt = Interrupt::listen(
        "stopping: the change in flight finishes or is undone (Ctrl-C again to quit now)",
    );
    let asked = Asked {
        name: Some(WATCH_NAME),
        ..Asked::new(&args.target, &args.load, &args.output, args.force)
    };
    let mut run = Prepared::new(asked, interrupt)?;
    // The next change need not wait for the watch after this one.
    run.options.care.observe_apart = true;
    let explicit = !args.paths.is_empty() || !run.settings.ebin.is_empty();
    let build = match args.no_build || explicit {
        true => None,
        false => run.settings.build.clone(),
    };
    let sources = watch_sources(&run.project, &args.paths, build.is_some())?;
    let builder = Builder::warm(run.project.root(), build.as_deref(), run.mode);
    let mut peer_options = peer_options(&run.settings)?;
    peer_options.ticks = HELD_TICKS;
    let peer = Peer::launch(peer_options, &reached(&run.settings))
        .await
        .map_err(CliError::from)?;
    let (session, missing) =
        Session::hold(peer, run.store, &run.settings.nodes, &run.options).await?;
    let find: FindModules = {
        let (project, paths) = (run.project.clone(), args.paths.clone());
        std::sync::Arc::new(move || {
            project
                .modules(&paths)
                .map(|(modules, _)| modules)
                .map_err(|e| e.to_string())
        })
    };
    let watch = WatchOptions {
        project: run.settings.project.clone(),
        settle: Duration::from_millis(args.settle),
        mode: run.mode,
        timings: args.output.timings,
    };
    let (w, incoming) = Watch::new(session, sources, builder, find, run.options, watch);
    let ended = w.run(missing, incoming, run.interrupt).await;
    Ok(exit_of(&ended))
}

/// A session in which processes died right after its changes exits 7, as
/// a deploy does (each was named when seen); else 0.
fn exit_of(ended: &Ended) -> i32 {
    if ended.died == 0 {
        return exit::OK;
    }
    eprintln!(
        "{} died right after this session's changes (each named above)",
        crate::deploy::report::count(ended.died, "process")
    );
    exit::DIED
}

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
