//! `deploy`: the build, the run against the nodes, and `--rollback`.

use super::args::DeployArgs;
use super::error::CliError;
use super::setup::{lock_store, open_session, options, project, settings};
use crate::beam::Module;
use crate::config::Settings;
use crate::deploy::rollback::Restoration;
use crate::deploy::{self, Options, Outcome, Report, Session};
use crate::interrupt::Interrupt;
use crate::output::{Mode, Ui};
use crate::project::{command, BuildError, Project};
use crate::store::Store;
use std::path::PathBuf;

pub(super) async fn deploy_command(args: DeployArgs) -> Result<i32, CliError> {
    let mode = Mode::from_flags(args.output.json, args.output.quiet);
    let ui = Ui::new(mode);
    let settings = settings(&args.target)?;
    for w in &settings.warnings {
        ui.warn(w);
    }
    if !(args.cluster && settings.via.is_some()) {
        settings.require_nodes()?;
    }
    settings.cookie()?;
    let store = Store::new(settings.snapshot_dir.clone());
    let interrupt = Interrupt::listen(
        "interrupted: finishing the step in flight, then undoing this run's changes",
    );
    let options = Options {
        all: args.all,
        dry_run: args.dry_run,
        cluster: args.cluster,
        ..options(&settings, &args.load, args.force, &interrupt)?
    };
    if args.rollback {
        return rollback_command(&settings, store, &options, &ui, mode).await;
    }
    let project = project(&settings);
    if !args.no_build && args.paths.is_empty() && settings.ebin.is_empty() {
        if let Some(command) = &settings.build {
            build(command, &project, mode, &interrupt).await?;
        }
    }
    let _lock = lock_store(&store, &ui)?;
    let (modules, session) =
        read_while_connecting(&settings, &project, &args.paths, store, &options, &ui).await?;
    let session = match session {
        Ok(session) => session,
        Err(report) => return Ok(print_report(&report, mode)),
    };
    let report = deploy::deploy(&session, &modules, &options, &ui).await;
    let code = print_report(&report, mode);
    session.goodbye(GOODBYE_LIMIT.min(settings.timeout)).await;
    Ok(code)
}

/// How long a run that is done waits for its nodes to have had its last
/// words (the release of their locks) before it exits.
const GOODBYE_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads and hashes the modules while the nodes are reached (three round
/// trips on a device's link). A bad file is the error reported, whichever
/// finishes first, and stops the run before anything is asked of a node.
async fn read_while_connecting(
    settings: &Settings,
    project: &Project,
    paths: &[PathBuf],
    store: Store,
    options: &Options,
    ui: &Ui,
) -> Result<(Vec<Module>, Result<Session, Report>), CliError> {
    let reading = {
        let (project, paths) = (project.clone(), paths.to_vec());
        tokio::task::spawn_blocking(move || project.modules(&paths))
    };
    let read = async {
        match reading.await {
            Ok(read) => read.map(|(modules, _apps)| modules).map_err(CliError::from),
            // As if it had been read here: its panic is this thread's.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    };
    let connecting = open_session(settings, store, &settings.nodes, options, ui);
    tokio::pin!(read, connecting);
    tokio::select! {
        read = &mut read => {
            let modules = read?;
            Ok((modules, connecting.await?))
        }
        session = &mut connecting => Ok((read.await?, session?)),
    }
}

async fn rollback_command(
    settings: &Settings,
    store: Store,
    options: &Options,
    ui: &Ui,
    mode: Mode,
) -> Result<i32, CliError> {
    let _lock = lock_store(&store, ui)?;
    let names: Vec<String> = settings.nodes.iter().map(ToString::to_string).collect();
    let restoration = Restoration::read(&store, &names)?;
    let with_work = restoration.nodes();
    let mut nodes = Vec::new();
    for node in &settings.nodes {
        if with_work.contains(&node.to_string()) {
            nodes.push(node.clone());
        } else {
            ui.line(&format!("Nothing to roll back on {node}"));
        }
    }
    let session = match open_session(settings, store, &nodes, options, ui).await? {
        Ok(session) => session,
        Err(report) => return Ok(print_report(&report, mode)),
    };
    let report = deploy::rollback(&session, restoration, options, ui).await?;
    let code = print_report(&report, mode);
    session.goodbye(GOODBYE_LIMIT.min(settings.timeout)).await;
    Ok(code)
}

pub(super) fn print_report(report: &Report, mode: Mode) -> i32 {
    match mode {
        Mode::Json => println!("{}", report.to_json()),
        Mode::Text => println!("{}", report.summary()),
        Mode::Quiet => {
            if report.outcome != Outcome::Success {
                eprintln!("{}", report.summary());
            }
        }
    }
    super::exit::of_outcome(report.outcome)
}

/// Runs the build command in the project, its output shown (on stderr in
/// JSON mode, so stdout stays one document); Ctrl-C stops it.
async fn build(
    command: &str,
    project: &Project,
    mode: Mode,
    interrupt: &Interrupt,
) -> Result<(), CliError> {
    if mode == Mode::Text {
        println!("Building with `{command}`");
    }
    project.date_back_for_rebar3();
    let built = command::run(command, project.root(), mode, interrupt.wait()).await;
    match built {
        Ok(()) => Ok(()),
        Err(BuildError::Command { command, how }) => Err(CliError::Build {
            command,
            detail: how,
        }),
        Err(BuildError::Interrupted) => Err(CliError::Interrupted),
        Err(e @ BuildError::Compile(_)) => Err(CliError::Build {
            command: command.to_owned(),
            detail: e.to_string(),
        }),
    }
}
