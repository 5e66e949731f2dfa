//! The command line, and only that: arguments (clap), each command wired
//! from the settings through the local project to the engines, and
//! printing. Errors come back to `main` as [`CliError`].
//!
//! One file per concern: the arguments (`args`, the flags `deploy` and
//! `watch` share written once), the errors (`error`), what commands set up
//! once (`setup`: the settings become the engines' options there), each
//! command (`deploy`, `rollback`, `status`, `snapshots`, `watch`; `itself`: its
//! completions and manual page), and the exit codes,
//! every one of them, in [`exit`].

pub(crate) mod args;
mod deploy;
pub(crate) mod error;
pub mod exit;
mod itself;
mod rollback;
pub(crate) mod setup;
mod snapshots;
mod status;
mod watch;

pub use args::{Cli, Command, DeployArgs, SnapshotsArgs, StatusArgs, TargetArgs, WatchArgs};
pub use error::CliError;

use deploy::deploy_command;
use rollback::rollback_command;
use snapshots::snapshots_command;
use status::status_command;
use watch::watch_command;

/// Runs a parsed command line; returns the exit code of a completed run.
pub async fn run(cli: Cli, json_requested: &mut bool) -> Result<i32, CliError> {
    // Loading aside: the arguments, logging and the runtime.
    crate::timings::since("start", None, crate::timings::origin());
    match cli.command {
        Command::Deploy(args) => {
            *json_requested = args.output.json;
            match args.rollback {
                true => rollback_command(args).await,
                false => deploy_command(args).await,
            }
        }
        Command::Status(args) => {
            *json_requested = args.json;
            status_command(args).await
        }
        Command::Snapshots(args) => {
            *json_requested = args.json;
            snapshots_command(args)
        }
        Command::Watch(args) => {
            *json_requested = args.output.json;
            watch_command(args).await
        }
        Command::Completions(args) => itself::completions(args.shell),
        Command::Man(args) => itself::man(args.command.as_deref()),
    }
}
