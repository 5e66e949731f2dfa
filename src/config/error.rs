//! What can be wrong with the settings, each error naming where it is.

use super::timeout::TIMEOUT_RANGE;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{}`: {detail}", path.display())]
    Invalid { path: PathBuf, detail: String },
    #[error("`{}` line {line}: {detail}; write the settings in hotswap.toml instead", path.display())]
    Exs {
        path: PathBuf,
        line: usize,
        detail: String,
    },
    #[error("bad node name in {source_name}: {detail}")]
    Node { source_name: String, detail: String },
    #[error("no nodes to deploy to: pass `--node NAME@HOST`, set HOTSWAP_NODES, or put `nodes = [\"app@host\"]` in hotswap.toml")]
    NoNodes,
    #[error("no targets behind the gateway `{0}`: pass `--node NAME@HOST` (or HOTSWAP_NODES, or `nodes` in hotswap.toml), or `--cluster` to deploy to the gateway's whole cluster")]
    NoTargets(String),
    #[error("no cookie: pass `--cookie`, set HOTSWAP_COOKIE, put `cookie` or `cookie_file` in hotswap.toml, build the project's release, or create ~/.erlang.cookie")]
    NoCookie,
    #[error("ERL_DIST_PORT (or `dist_port`) is `{0}`, not a port number from 1 to 65535")]
    DistPort(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cookie file `{}` cannot be read: {source}", path.display())]
    CookieFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cookie file `{}` is empty", .0.display())]
    EmptyCookie(PathBuf),
    #[error("`timeout` must be from {min} to {max} seconds, got {0}", min = TIMEOUT_RANGE.0, max = TIMEOUT_RANGE.1)]
    Timeout(f64),
}
