//! What stops a command besides a deploy report (its exit code:
//! [`super::exit`]).

use crate::config::ConfigError;
use crate::deploy::RollbackError;
use crate::peer::tls::TlsError;
use crate::peer::StartError;
use crate::project::{BuildError, ProjectError};
use crate::store::SnapshotError;
use std::path::PathBuf;

/// Everything that stops a command before or besides a deploy report.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Project(#[from] ProjectError),
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
    #[error("cannot write to standard output: {0}")]
    Stdout(std::io::Error),
}

impl From<BuildError> for CliError {
    fn from(e: BuildError) -> Self {
        match e {
            BuildError::Command { command, how } => CliError::Build {
                command,
                detail: how,
            },
            BuildError::Interrupted => CliError::Interrupted,
            BuildError::Compile(why) => CliError::Build {
                command: "mix compile".into(),
                detail: why,
            },
        }
    }
}

impl From<RollbackError> for CliError {
    fn from(e: RollbackError) -> Self {
        CliError::Rollback(Box::new(e))
    }
}
