//! What the command line adds on top of the other layers.

use std::path::PathBuf;

/// What the command line adds on top.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub nodes: Vec<String>,
    pub cookie: Option<String>,
    pub ebin: Vec<PathBuf>,
    pub timeout: Option<f64>,
    pub name: Option<String>,
    pub dist_port: Option<u16>,
    pub via: Option<String>,
    pub tls: TlsFlags,
}

/// `--tls-ca`, `--tls-cert`, `--tls-key`, `--tls-skip-host-check`.
#[derive(Debug, Default, Clone)]
pub struct TlsFlags {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub skip_host_check: bool,
    /// The node's `-ssl_dist_optfile`, for what the flags above leave out.
    pub optfile: Option<PathBuf>,
}
