//! `deploy`: the build, then the run against the nodes.

use super::args::DeployArgs;
use super::error::CliError;
use super::setup::{Asked, Prepared};
use crate::beam::Module;
use crate::deploy::{self, Outcome, Report, Session};
use crate::interrupt::Interrupt;
use crate::output::Mode;
use crate::timings::{self, table::Timings};
use std::path::PathBuf;
use std::time::Instant;

pub(super) async fn deploy_command(args: DeployArgs) -> Result<i32, CliError> {
    let from = Instant::now();
    let run = prepare(&args)?;
    timings::since("settings", None, from);
    let built = !args.no_build && args.paths.is_empty() && run.settings.ebin.is_empty();
    if let (true, Some(command)) = (built, &run.settings.build) {
        let stop = run.interrupt.wait();
        let build = run.project.build(command, run.mode, stop);
        timings::measure("build", None, build).await?;
    }
    let from = Instant::now();
    let _lock = run.lock_store()?;
    timings::since("store lock", None, from);
    let (modules, session) = read_while_connecting(&run, &args.paths).await?;
    let session = match session {
        Ok(session) => session,
        Err(report) => return Ok(conclude(&report, None, &run, args.output.timings).await),
    };
    let report = deploy::deploy(&session, &modules, &run.options, &run.ui).await;
    Ok(conclude(&report, Some(&session), &run, args.output.timings).await)
}

/// Prints the report and says goodbye to the nodes. With `--timings`, the
/// goodbye comes first, so that its time is counted, then the report and
/// where the time went.
pub(super) async fn conclude(
    report: &Report,
    session: Option<&Session>,
    run: &Prepared,
    timed: bool,
) -> i32 {
    let limit = GOODBYE_LIMIT.min(run.settings.timeout);
    if !timed {
        let code = print_report(report, run.mode, None);
        if let Some(session) = session {
            session.goodbye(limit).await;
        }
        return code;
    }
    if let Some(session) = session {
        timings::measure("goodbye", None, session.goodbye(limit)).await;
    }
    let timings = timings::take(timings::origin());
    print_report(report, run.mode, Some(&timings))
}

/// What `deploy` and `deploy --rollback` run with.
pub(super) fn prepare(args: &DeployArgs) -> Result<Prepared, CliError> {
    let interrupt = Interrupt::listen(
        "interrupted: finishing the step in flight, then undoing this run's changes",
    );
    let asked = Asked {
        nodes_optional: args.cluster,
        ..Asked::new(&args.target, &args.load, &args.output, args.force)
    };
    let mut run = Prepared::new(asked, interrupt)?;
    run.options.all = args.all;
    run.options.dry_run = args.dry_run;
    run.options.cluster = args.cluster;
    Ok(run)
}

/// How long a run that is done waits for its nodes to have had its last
/// words (the release of their locks) before it exits.
pub(super) const GOODBYE_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads and hashes the modules while the nodes are reached (three round
/// trips on a device's link). A bad file is the error reported, whichever
/// finishes first, and stops the run before anything is asked of a node.
async fn read_while_connecting(
    run: &Prepared,
    paths: &[PathBuf],
) -> Result<(Vec<Module>, Result<Session, Report>), CliError> {
    let reading = {
        let (project, paths) = (run.project.clone(), paths.to_vec());
        tokio::task::spawn_blocking(move || {
            let from = Instant::now();
            let read = project.modules(&paths);
            timings::since("read beams", None, from);
            read
        })
    };
    let read = async {
        match reading.await {
            Ok(read) => read.map(|(modules, _apps)| modules).map_err(CliError::from),
            // As if it had been read here: its panic is this thread's.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    };
    let connecting = run.open_session(&run.settings.nodes);
    tokio::pin!(read, connecting);
    tokio::select! {
        read = &mut read => {
            let modules = read?;
            Ok((modules, connecting.await?))
        }
        session = &mut connecting => Ok((read.await?, session?)),
    }
}

/// Prints `report` as the mode asks, with `timings` if asked for (in the
/// JSON document, or as a table on stderr); its exit code.
pub(super) fn print_report(report: &Report, mode: Mode, timings: Option<&Timings>) -> i32 {
    match (mode, timings) {
        (Mode::Json, None) => println!("{}", report.to_json()),
        (Mode::Json, Some(timings)) => {
            println!("{}", report.to_json_with("timings", timings.to_json()))
        }
        (Mode::Text, _) => println!("{}", report.summary()),
        (Mode::Quiet, _) => {
            if report.outcome != Outcome::Success {
                eprintln!("{}", report.summary());
            }
        }
    }
    if let (Mode::Text | Mode::Quiet, Some(timings)) = (mode, timings) {
        eprintln!("{}", timings.table("run"));
    }
    super::exit::of_outcome(report.outcome)
}
