//! What stops a command besides a deploy report, and its exit code.

use crate::beam::discover::DiscoverError;
use crate::beam::ModuleError;
use crate::config::ConfigError;
use crate::deploy::RollbackError;
use crate::dist::epmd::RegisterError;
use crate::dist::tls::TlsError;
use crate::dist::StartError;
use crate::store::SnapshotError;
use std::path::PathBuf;

/// Everything that stops a command before or besides a deploy report.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\nerror: "))]
    Modules(Vec<ModuleError>),
    #[error("no modules to deploy in {0}")]
    NoModules(String),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("the build (`{command}`) failed: {detail}; nothing was deployed")]
    Build { command: String, detail: String },
    #[error(transparent)]
    Rollback(Box<RollbackError>),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("{0}")]
    Nodes(String),
    #[error("cannot find the current folder: {0}")]
    Cwd(std::io::Error),
    #[error("cannot watch `{}`: {detail}", path.display())]
    Watch { path: PathBuf, detail: String },
    #[error("interrupted during the build; nothing was deployed")]
    Interrupted,
    #[error("{0}")]
    Hook(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Config(_)
            | CliError::Discover(_)
            | CliError::Modules(_)
            | CliError::NoModules(_)
            | CliError::Cwd(_)
            | CliError::Hook(_)
            | CliError::Tls(_)
            | CliError::Watch { .. } => 2,
            CliError::Start(StartError::Register(
                RegisterError::NameTaken { .. } | RegisterError::Held(_),
            ))
            | CliError::Start(StartError::Name(_)) => 2,
            CliError::Start(_) | CliError::Nodes(_) => 3,
            CliError::Rollback(e) if matches!(**e, RollbackError::NoSnapshot { .. }) => 2,
            CliError::Build { .. } | CliError::Rollback(_) | CliError::Snapshot(_) => 1,
            CliError::Interrupted => 130,
        }
    }
}

impl From<RollbackError> for CliError {
    fn from(e: RollbackError) -> Self {
        CliError::Rollback(Box::new(e))
    }
}
