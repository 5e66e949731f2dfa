//! The distribution handshake (protocol version 6), both sides, on top of
//! `erl_dist`, with the time limits and error wording a user needs.
//!
//! `erl_dist` 0.8 speaks `futures::io`; rather than the compat wrapper we hand
//! it a [`SharedStream`] over an `Arc<TcpStream>`. That keeps a second handle
//! on the socket, which fixes a bug: when a node answers `alive` (it still
//! holds a connection from an earlier `hotswap@host`), `erl_dist` builds the
//! `strue` status reply but never sends it and then waits forever. We send it
//! ourselves through the second handle. After the handshake the `Arc` is
//! unwrapped and the plain tokio stream goes on to the connection task.

use super::error::ConnectError;
use super::names::NodeName;
use erl_dist::handshake::{
    ClientSideHandshake, HandshakeError, HandshakeStatus, ServerSideHandshake,
};
use erl_dist::node::{Creation, LocalNode};
use erl_dist::DistributionFlags;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

/// The flags this node offers: what OTP 25 to 27 require, plus monitors (so a
/// remote `gen:call` to us works). Never `PUBLISHED` (we are hidden), never
/// the atom cache or `FRAGMENTS`, which the framing here does not implement.
pub fn local_flags() -> DistributionFlags {
    DistributionFlags::mandatory()
        | DistributionFlags::DIST_MONITOR
        | DistributionFlags::DIST_MONITOR_NAME
}

/// Who we are during a handshake.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: NodeName,
    pub creation: u32,
}

impl Identity {
    fn local_node(&self) -> LocalNode {
        let mut node = LocalNode::new(self.name.to_erl_dist(), Creation::new(self.creation));
        node.flags = local_flags();
        node
    }
}

/// What the other side told us about itself.
#[derive(Debug, Clone)]
pub struct Peer {
    pub name: String,
    pub flags: DistributionFlags,
}

/// Runs the client side of the handshake with `target` over `stream`.
pub async fn client(
    stream: TcpStream,
    me: &Identity,
    cookie: &str,
    target: &NodeName,
    limit: Duration,
) -> Result<(TcpStream, Peer), ConnectError> {
    let shared = Arc::new(stream);
    let outcome =
        tokio::time::timeout(limit, client_steps(shared.clone(), me, cookie, target)).await;
    let peer = match outcome {
        Ok(result) => result?,
        Err(_) => {
            return Err(ConnectError::HandshakeTimeout {
                node: target.to_string(),
                secs: limit.as_secs_f64(),
            })
        }
    };
    Ok((unshare(shared, target)?, peer))
}

async fn client_steps(
    shared: Arc<TcpStream>,
    me: &Identity,
    cookie: &str,
    target: &NodeName,
) -> Result<Peer, ConnectError> {
    let node = || target.to_string();
    let mut handshake =
        ClientSideHandshake::new(SharedStream(shared.clone()), me.local_node(), cookie);
    let status = handshake
        .execute_send_name(erl_dist::LOWEST_DISTRIBUTION_PROTOCOL_VERSION)
        .await
        .map_err(|e| describe(e, target, false))?;
    match status {
        HandshakeStatus::Ok | HandshakeStatus::OkSimultaneous => {}
        HandshakeStatus::Alive => {
            // Tell the node to drop the stale connection and take this one
            // (the reply `erl_dist` fails to send; see the module comment).
            write_raw(&shared, &[0, 5, b's', b't', b'r', b'u', b'e'])
                .await
                .map_err(|e| ConnectError::Io {
                    node: node(),
                    source: e,
                })?;
        }
        HandshakeStatus::Nok => {
            return Err(ConnectError::Refused {
                node: node(),
                reason: "it is already connecting to this node (simultaneous connect); try again"
                    .into(),
            })
        }
        HandshakeStatus::NotAllowed => {
            return Err(ConnectError::Refused {
                node: node(),
                reason: "not allowed (is `net_kernel:allow/1` in force on it?)".into(),
            })
        }
        HandshakeStatus::Named { .. } => {
            return Err(ConnectError::Handshake {
                node: node(),
                detail: "it assigned us a dynamic name we did not ask for".into(),
            })
        }
    }
    // On `alive`, erl_dist builds its own reply and drops it unsent; ours has
    // already gone out above, so the order on the wire is right.
    let (_, peer) = handshake
        .execute_rest(true)
        .await
        .map_err(|e| describe(e, target, true))?;
    Ok(Peer {
        name: peer.name.to_string(),
        flags: peer.flags,
    })
}

/// Runs the server side for a node that connects to us.
pub async fn server(
    stream: TcpStream,
    me: &Identity,
    cookie: &str,
    limit: Duration,
) -> Result<(TcpStream, Peer), String> {
    let shared = Arc::new(stream);
    let steps = async {
        let mut handshake =
            ServerSideHandshake::new(SharedStream(shared.clone()), me.local_node(), cookie);
        let name = handshake
            .execute_recv_name()
            .await
            .map_err(|e| e.to_string())?;
        let name = name
            .map(|n| n.to_string())
            .unwrap_or_else(|| "a dynamically named node".into());
        let (_, peer) = handshake
            .execute_rest(HandshakeStatus::Ok)
            .await
            .map_err(|e| match e {
                HandshakeError::CookieMismatch => {
                    format!("`{name}` sent a digest for another cookie")
                }
                other => format!("`{name}`: {other}"),
            })?;
        Ok::<_, String>(Peer {
            name: peer.name.to_string(),
            flags: peer.flags,
        })
    };
    let peer = tokio::time::timeout(limit, steps)
        .await
        .map_err(|_| format!("no handshake within {} s", limit.as_secs()))??;
    let stream =
        Arc::try_unwrap(shared).map_err(|_| "handshake still holds the socket".to_owned())?;
    Ok((stream, peer))
}

async fn write_raw(socket: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        socket.writable().await?;
        match socket.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn unshare(shared: Arc<TcpStream>, target: &NodeName) -> Result<TcpStream, ConnectError> {
    Arc::try_unwrap(shared).map_err(|_| ConnectError::Handshake {
        node: target.to_string(),
        detail: "internal: the handshake still holds the socket".into(),
    })
}

/// Words for a failed handshake. A node that dislikes our cookie does not
/// say so: it logs a warning and closes the socket while we wait for its
/// challenge acknowledgement, so a close at that point means the cookie.
fn describe(error: HandshakeError, target: &NodeName, after_status: bool) -> ConnectError {
    let node = target.to_string();
    match error {
        HandshakeError::CookieMismatch => ConnectError::CookieRejected { node },
        HandshakeError::Io(e)
            if after_status
                && matches!(
                    e.kind(),
                    io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::BrokenPipe
                ) =>
        {
            ConnectError::CookieRejected { node }
        }
        HandshakeError::Io(source) => ConnectError::Io { node, source },
        HandshakeError::NotAllowed => ConnectError::Refused {
            node,
            reason: "not allowed".into(),
        },
        other => ConnectError::Handshake {
            node,
            detail: other.to_string(),
        },
    }
}

/// A `futures::io` view of a shared tokio socket. Reads and writes go
/// straight to the socket (no buffering), so bytes are never stranded here.
struct SharedStream(Arc<TcpStream>);

impl futures::io::AsyncRead for SharedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }
}

impl futures::io::AsyncWrite for SharedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
