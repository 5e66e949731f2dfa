//! Every exit code of the binary, in one place: from a run's outcome, from
//! an error that stopped a command, and from a second Ctrl-C. `--help` and
//! the README list the same.

use super::error::CliError;
use crate::deploy::{Outcome, RollbackError};
use crate::peer::epmd::RegisterError;
use crate::peer::StartError;

/// Success.
pub const OK: i32 = 0;
/// A deploy or rollback failed, or an error besides those below.
pub const FAILED: i32 = 1;
/// Bad input: flags, configuration, files, a name taken.
pub const BAD_INPUT: i32 = 2;
/// A node could not be reached, or is locked by another run.
pub const UNREACHABLE: i32 = 3;
/// `--verify` found a node running other code than deployed.
pub const VERIFY_MISMATCH: i32 = 4;
/// A node refused: old code in use, or processes busy.
pub const REFUSED: i32 = 5;
/// Something could not be put back: a node is left changed.
pub const NOT_RESTORED: i32 = 6;
/// A process died because of the run.
pub const DIED: i32 = 7;
/// Interrupted (Ctrl-C or SIGTERM), once or twice.
pub const INTERRUPTED: i32 = 130;

/// The exit code of a run that came to an outcome.
pub fn of_outcome(outcome: Outcome) -> i32 {
    match outcome {
        Outcome::Success => OK,
        Outcome::Failed | Outcome::Unrecorded | Outcome::AfterFailed => FAILED,
        Outcome::Unreachable | Outcome::Locked => UNREACHABLE,
        Outcome::VerifyMismatch => VERIFY_MISMATCH,
        Outcome::Refused | Outcome::Busy => REFUSED,
        Outcome::NotRestored => NOT_RESTORED,
        Outcome::Died => DIED,
        Outcome::Interrupted => INTERRUPTED,
    }
}

/// The exit code of a command stopped by `error`.
pub fn of_error(error: &CliError) -> i32 {
    match error {
        CliError::Config(_)
        | CliError::Project(_)
        | CliError::Cwd(_)
        | CliError::Hook(_)
        | CliError::Tls(_)
        | CliError::Watch { .. } => BAD_INPUT,
        CliError::Start(StartError::Register(
            RegisterError::NameTaken { .. } | RegisterError::Held(_),
        ))
        | CliError::Start(StartError::Name(_)) => BAD_INPUT,
        CliError::Start(_) | CliError::Nodes(_) => UNREACHABLE,
        CliError::Rollback(e) if matches!(**e, RollbackError::NoSnapshot { .. }) => BAD_INPUT,
        CliError::Build { .. }
        | CliError::Rollback(_)
        | CliError::Snapshot(_)
        | CliError::Stdout(_) => FAILED,
        CliError::Interrupted => INTERRUPTED,
    }
}
