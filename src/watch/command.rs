//! `hotswap-node watch` from the command line: settings as `deploy` reads
//! them, what to watch, the held session, and Ctrl-C.

use super::build::Builder;
use super::sources::{self, Kind, Root, Sources};
use super::{FindModules, Watch, WatchOptions};
use crate::beam::discover::{self, Search};
use crate::cli::args::WatchArgs;
use crate::cli::error::CliError;
use crate::cli::setup::{after_hook, local_modules, peer_options, reached, settings};
use crate::config::Settings;
use crate::deploy::migrate::Care;
use crate::deploy::{Options, Session};
use crate::dist::{Peer, Ticks};
use crate::interrupt::Interrupt;
use crate::output::{Mode, Ui};
use crate::store::Store;
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

pub async fn watch_command(args: WatchArgs) -> Result<i32, CliError> {
    let mode = Mode::from_flags(args.json, args.quiet);
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
    let sources = watch_sources(&settings, &args.paths, build.is_some())?;
    let builder = Builder::for_project(&settings.project, build.as_deref(), mode);
    let interrupt = Interrupt::listen(
        "stopping: the change in flight finishes or is undone (Ctrl-C again to quit now)",
    );
    let options = Options {
        verify: args.verify,
        force: args.force,
        code_change: settings.code_change && !args.no_code_change,
        care: Care {
            any_loop: settings.migrate_custom_loops || args.migrate_custom_loops,
            observe: args
                .observe
                .map_or(settings.observe, std::time::Duration::from_millis),
        },
        after: after_hook(&settings, &args.after)?,
        timeout: settings.timeout,
        keep: settings.keep_snapshots,
        via: settings.via.clone(),
        interrupted: interrupt.flag(),
        ..Default::default()
    };
    let store = Store::new(settings.snapshot_dir.clone());
    let mut peer_options = peer_options(&settings)?;
    peer_options.ticks = HELD_TICKS;
    let peer = Peer::launch(peer_options, &reached(&settings))
        .await
        .map_err(CliError::from)?;
    let (session, missing) = Session::hold(peer, store, &settings.nodes, &options).await?;
    let find: FindModules = {
        let (settings, paths) = (settings.clone(), args.paths.clone());
        std::sync::Arc::new(move || {
            local_modules(&settings, &paths)
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
fn watch_sources(settings: &Settings, paths: &[PathBuf], built: bool) -> Result<Sources, CliError> {
    let (roots, kind) = if built {
        (sources::project_roots(&settings.project), Kind::Sources)
    } else {
        (beam_roots(settings, paths)?, Kind::Beams)
    };
    let first = roots.first().map(|r| r.path.clone()).unwrap_or_default();
    Sources::watch(roots, kind).map_err(|e| CliError::Watch {
        path: e.paths.first().cloned().unwrap_or(first),
        detail: e.to_string(),
    })
}

fn beam_roots(settings: &Settings, paths: &[PathBuf]) -> Result<Vec<Root>, CliError> {
    let mut dirs: Vec<PathBuf> = settings
        .ebin
        .iter()
        .map(|d| settings.project.join(d))
        .collect();
    for p in paths {
        let p = settings.project.join(p);
        dirs.push(p.parent().map(PathBuf::from).unwrap_or(p));
    }
    if dirs.is_empty() {
        let mut search = Search::from_env(settings.project.clone());
        search.app_name = settings.app_name.clone();
        let found = discover::find(&search)?;
        dirs.extend(
            found
                .files
                .iter()
                .filter_map(|f| f.parent().map(PathBuf::from)),
        );
    }
    dirs.sort();
    dirs.dedup();
    Ok(dirs
        .into_iter()
        .map(|path| Root {
            path,
            recursive: false,
        })
        .collect())
}
