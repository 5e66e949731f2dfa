//! One error type per operation of the peer: starting it, connecting to a
//! node, calling a function there. Messages are lowercase, name the node and
//! never contain the cookie.

use super::epmd::{LookupError, RegisterError};
use super::names::NameError;
use super::term::{show, Term};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Register(#[from] RegisterError),
    #[error("could not listen for distribution connections: {0}")]
    Listen(std::io::Error),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error("could not connect to `{node}` at {addr}: {source}")]
    Tcp {
        node: String,
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "node `{node}` rejected the cookie{}: it closed the connection during the challenge; use the node's cookie via `--cookie`, `HOTSWAP_COOKIE`, `cookie` in hotswap.toml or ~/.erlang.cookie",
        from_origin(origin)
    )]
    CookieRejected { node: String, origin: String },
    #[error("node `{node}` did not finish the distribution handshake within {secs} s; is it an Erlang node, and is it responsive?")]
    HandshakeTimeout { node: String, secs: f64 },
    #[error("node `{node}` refused the connection: {reason}")]
    Refused { node: String, reason: String },
    #[error("node `{node}` is still setting up an earlier connection from this tool's name (it answered `nok`) and did not let it go within {secs} s; try again")]
    Pending { node: String, secs: f64 },
    #[error("handshake with `{node}` failed: {detail}")]
    Handshake { node: String, detail: String },
    #[error("TLS with `{node}` failed: {detail}")]
    Tls { node: String, detail: String },
    #[error("node `{node}` speaks TLS distribution (`-proto_dist inet_tls`); give `--tls-ca`, `--tls-cert` and `--tls-key` (or `tls_ca`, `tls_cert`, `tls_key` in hotswap.toml)")]
    SpeaksTls { node: String },
    #[error("connection to `{node}` failed during the handshake: {source}")]
    Io {
        node: String,
        source: std::io::Error,
    },
}

#[derive(Debug, thiserror::Error, Clone)]
#[non_exhaustive]
pub enum CallError {
    #[error("`{function}` on `{node}` did not answer within {secs} s")]
    Timeout {
        node: String,
        function: String,
        secs: f64,
    },
    #[error("`{function}` failed on `{node}`: {}", show(reason))]
    BadRpc {
        node: String,
        function: String,
        reason: Term,
    },
    #[error("connection to `{node}` lost: {detail}")]
    Disconnected { node: String, detail: String },
    #[error("`{function}` on `{node}` answered something unexpected: {detail}")]
    Unexpected {
        node: String,
        function: String,
        detail: String,
    },
    #[error("could not encode the call to `{function}` for `{node}`: {detail}")]
    Encode {
        node: String,
        function: String,
        detail: String,
    },
}

impl CallError {
    /// `true` when the remote function was not there at all (`undef`).
    pub fn is_undef(&self) -> bool {
        match self {
            CallError::BadRpc { reason, .. } => {
                // {'EXIT', {undef, Stack}}
                matches!(reason, Term::Tuple(t) if t.elements.len() == 2
                    && super::term::is_atom(&t.elements[0], "EXIT")
                    && matches!(&t.elements[1], Term::Tuple(u) if u.elements.first().is_some_and(|e| super::term::is_atom(e, "undef"))))
            }
            _ => false,
        }
    }

    pub fn is_disconnect(&self) -> bool {
        matches!(self, CallError::Disconnected { .. })
    }
}

/// ` from ORIGIN`, or nothing if the cookie's origin is not known.
fn from_origin(origin: &str) -> String {
    match origin {
        "" => String::new(),
        o => format!(" from {o}"),
    }
}
