//! EPMD, the port mapper: registering this node (and so holding the name as a
//! lock) and looking up the distribution port of a target node.
//!
//! `ERL_EPMD_PORT` is honoured for both, as `erl` does.

use erl_dist::epmd::{EpmdClient, EpmdError, NodeEntry, DEFAULT_EPMD_PORT};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

const EPMD_TIMEOUT: Duration = Duration::from_secs(5);

/// The port EPMD listens on here and on target hosts.
pub fn epmd_port() -> u16 {
    std::env::var("ERL_EPMD_PORT")
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(DEFAULT_EPMD_PORT)
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    #[error("could not reach EPMD on `{host}` port {port}: {source}")]
    Unreachable {
        host: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("no node `{name}` registered in EPMD on `{host}`")]
    NotRegistered { name: String, host: String },
    #[error("EPMD on `{host}` answered badly: {detail}")]
    Protocol { host: String, detail: String },
}

/// The distribution port of node `name` on `host`.
pub async fn lookup(host: &str, name: &str) -> Result<u16, LookupError> {
    let port = epmd_port();
    let unreachable = |source| LookupError::Unreachable {
        host: host.to_owned(),
        port,
        source,
    };
    let asked = async {
        let stream = super::resolve::connect(host, port)
            .await
            .map_err(unreachable)?;
        let _ = stream.set_nodelay(true);
        EpmdClient::new(stream.compat())
            .get_node(name)
            .await
            .map_err(|e| match e {
                EpmdError::Io(source) => unreachable(source),
                other => LookupError::Protocol {
                    host: host.to_owned(),
                    detail: other.to_string(),
                },
            })
    };
    let entry = tokio::time::timeout(EPMD_TIMEOUT, asked)
        .await
        .map_err(|_| unreachable(std::io::ErrorKind::TimedOut.into()))??;
    match entry {
        Some(entry) => Ok(entry.port),
        None => Err(LookupError::NotRegistered {
            name: name.to_owned(),
            host: host.to_owned(),
        }),
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    #[error(
        "the name `{name}` is already registered in the local EPMD: another hotswap-node is running (or pass another `--name`)"
    )]
    NameTaken { name: String },
    /// No EPMD holds the name, and another run on this machine holds it
    /// ([`super::name_lock`]).
    #[error(transparent)]
    Held(#[from] super::name_lock::NameLockError),
    #[error("the local EPMD refused to register `{name}`: {detail}")]
    Refused { name: String, detail: String },
    #[error("no EPMD answers on port {port} and `epmd -daemon` could not start one: {detail}")]
    NoEpmd { port: u16, detail: String },
}

/// A live registration: EPMD keeps the name while this socket stays open.
#[derive(Debug)]
pub struct Registration {
    _socket: Compat<TcpStream>,
    pub creation: u32,
}

/// How long a name whose holder is gone may still be registered. EPMD
/// drops a name when it sees its holder's connection close, on a later turn
/// of its loop: a run started just after another of the same name (deploys
/// seconds apart, on a busy machine) can ask before that.
const GONE_HOLDER_GRACE: Duration = Duration::from_secs(2);

/// Registers `name` as a hidden node listening on `listen_port` in the local
/// EPMD, starting `epmd -daemon` first when none answers, like `erl` does.
/// A name still registered to a node that no longer listens (one that has
/// just gone) is asked for again until EPMD lets it go; one whose holder
/// listens is taken.
pub async fn register(name: &str, listen_port: u16) -> Result<Registration, RegisterError> {
    let deadline = tokio::time::Instant::now() + GONE_HOLDER_GRACE;
    loop {
        match register_once(name, listen_port).await {
            Err(RegisterError::NameTaken { .. })
                if tokio::time::Instant::now() < deadline && holder_gone(name).await =>
            {
                crate::fault::hold("name_held_by_the_gone").await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            other => return other,
        }
    }
}

/// Whether the node registered as `name` in the local EPMD is gone: its
/// port is free to listen on (or the name went meanwhile). Listening is
/// tried, not connecting, so that a holder that is there hears nothing.
async fn holder_gone(name: &str) -> bool {
    let Ok(stream) = connect_local(epmd_port()).await else {
        return false;
    };
    let asked = EpmdClient::new(stream.compat()).get_node(name);
    match tokio::time::timeout(EPMD_TIMEOUT, asked).await {
        Ok(Ok(Some(entry))) => std::net::TcpListener::bind(("0.0.0.0", entry.port)).is_ok(),
        Ok(Ok(None)) => true,
        _ => false,
    }
}

async fn register_once(name: &str, listen_port: u16) -> Result<Registration, RegisterError> {
    let port = epmd_port();
    let stream = match connect_local(port).await {
        Ok(stream) => stream,
        Err(_) => {
            start_epmd(port).await?;
            connect_local(port)
                .await
                .map_err(|e| RegisterError::NoEpmd {
                    port,
                    detail: e.to_string(),
                })?
        }
    };
    let entry = NodeEntry::new_hidden(name, listen_port);
    let registered = tokio::time::timeout(
        EPMD_TIMEOUT,
        EpmdClient::new(stream.compat()).register(entry),
    )
    .await
    .map_err(|_| RegisterError::Refused {
        name: name.to_owned(),
        detail: "no answer within 5 s".into(),
    })?;
    match registered {
        Ok((socket, creation)) => Ok(Registration {
            _socket: socket,
            creation: creation.get(),
        }),
        // EPMD answers code 1 when the name is in use.
        Err(EpmdError::RegisterNodeError { code: 1 }) => Err(RegisterError::NameTaken {
            name: name.to_owned(),
        }),
        Err(other) => Err(RegisterError::Refused {
            name: name.to_owned(),
            detail: other.to_string(),
        }),
    }
}

async fn connect_local(port: u16) -> std::io::Result<TcpStream> {
    let stream = tokio::time::timeout(EPMD_TIMEOUT, TcpStream::connect(("127.0.0.1", port)))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

async fn start_epmd(port: u16) -> Result<(), RegisterError> {
    let no_epmd = |detail: String| RegisterError::NoEpmd { port, detail };
    let status = tokio::process::Command::new("epmd")
        .arg("-daemon")
        .env("ERL_EPMD_PORT", port.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .map_err(|e| no_epmd(format!("`epmd`: {e}")))?;
    if !status.success() {
        return Err(no_epmd(format!("`epmd -daemon` exited with {status}")));
    }
    // The daemon forks; wait for it to listen.
    for _ in 0..50 {
        if connect_local(port).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(no_epmd("it did not start listening within 1 s".into()))
}
