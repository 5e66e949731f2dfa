//! The keys a settings file may hold.

use serde::Deserialize;
use std::path::PathBuf;

pub const FILE_NAME: &str = "hotswap.toml";

/// Keys of `hotswap.toml`; anything else is an error naming it.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub app_name: Option<String>,
    pub nodes: Option<Vec<String>>,
    pub cookie: Option<String>,
    pub cookie_file: Option<PathBuf>,
    pub ebin: Option<Vec<PathBuf>>,
    pub build: Option<String>,
    pub timeout: Option<f64>,
    pub snapshot_dir: Option<PathBuf>,
    pub keep_snapshots: Option<usize>,
    pub name: Option<String>,
    pub code_change: Option<bool>,
    pub migrate_custom_loops: Option<bool>,
    pub observe_ms: Option<u64>,
    pub after_deploy: Option<String>,
    pub dist_port: Option<u16>,
    pub via: Option<String>,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_skip_host_check: Option<bool>,
    pub tls_optfile: Option<PathBuf>,
}
