//! The distribution handshake (protocol version 6), both sides, on top of
//! `erl_dist`, with the time limits and error wording a user needs.
//!
//! `erl_dist` 0.8 speaks `futures::io` and 2-byte message prefixes; we hand
//! it a [`Reframe`] over the stream, which gives each message the prefix
//! the stream needs (2 bytes on TCP, 4 inside TLS) and carries one message
//! `erl_dist` gets wrong: when a node answers `alive` (it still holds a
//! connection from an earlier `hotswap@host`), `erl_dist` builds the
//! `strue` status reply but never sends it and then waits forever. We put
//! it in the [`Outbox`] ourselves. After the handshake the stream goes on
//! to the connection task.

use super::error::ConnectError;
use super::names::NodeName;
use super::reframe::{AnsweredInTls, Outbox, Reframe};
use super::stream::DistStream;
use erl_dist::handshake::{
    ClientSideHandshake, HandshakeError, HandshakeStatus, ServerSideHandshake,
};
use erl_dist::node::{Creation, LocalNode};
use erl_dist::DistributionFlags;
use std::io;
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
pub struct OtherSide {
    pub name: String,
    pub flags: DistributionFlags,
}

/// Runs the client side of the handshake with `target` over `stream`.
pub async fn client(
    stream: impl Into<DistStream>,
    me: &Identity,
    cookie: &str,
    target: &NodeName,
    limit: Duration,
) -> Result<(DistStream, OtherSide), ConnectError> {
    let outbox = Outbox::default();
    let stream = stream.into();
    let prefix = stream.handshake_prefix();
    let framed = Reframe::new(stream, prefix, outbox.clone());
    match tokio::time::timeout(limit, client_steps(framed, outbox, me, cookie, target)).await {
        Ok(result) => result,
        Err(_) => Err(ConnectError::HandshakeTimeout {
            node: target.to_string(),
            secs: limit.as_secs_f64(),
        }),
    }
}

async fn client_steps(
    framed: Reframe<DistStream>,
    outbox: Outbox,
    me: &Identity,
    cookie: &str,
    target: &NodeName,
) -> Result<(DistStream, OtherSide), ConnectError> {
    let node = || target.to_string();
    let mut handshake = ClientSideHandshake::new(framed, me.local_node(), cookie);
    let status = handshake
        .execute_send_name(erl_dist::LOWEST_DISTRIBUTION_PROTOCOL_VERSION)
        .await
        .map_err(|e| describe(e, target, false))?;
    match status {
        HandshakeStatus::Ok | HandshakeStatus::OkSimultaneous => {}
        HandshakeStatus::Alive => {
            // Tell the node to drop the stale connection and take this one
            // (the reply `erl_dist` fails to send; see the module comment).
            // It goes out before the next read.
            outbox.push(&[0, 5, b's', b't', b'r', b'u', b'e']);
        }
        HandshakeStatus::Nok => {
            // It holds a handshake from our name still pending: an earlier
            // attempt of ours that timed out over a slow or lossy link
            // (nodes never connect to us first). The caller waits for it
            // to go away.
            return Err(ConnectError::Pending {
                node: node(),
                secs: 0.0,
            });
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
    // On `alive`, erl_dist builds its own reply and drops it unsent; ours is
    // in the outbox, so the order on the wire is right.
    let (framed, peer) = handshake
        .execute_rest(true)
        .await
        .map_err(|e| describe(e, target, true))?;
    let peer = OtherSide {
        name: peer.name.to_string(),
        flags: peer.flags,
    };
    Ok((framed.into_inner(), peer))
}

/// Runs the server side for a node that connects to us.
pub async fn server(
    stream: TcpStream,
    me: &Identity,
    cookie: &str,
    limit: Duration,
) -> Result<(TcpStream, OtherSide), String> {
    let steps = async {
        let framed = Reframe::new(stream, 2, Outbox::default());
        let mut handshake = ServerSideHandshake::new(framed, me.local_node(), cookie);
        let name = handshake
            .execute_recv_name()
            .await
            .map_err(|e| e.to_string())?;
        let name = name
            .map(|n| n.to_string())
            .unwrap_or_else(|| "a dynamically named node".into());
        let (framed, peer) =
            handshake
                .execute_rest(HandshakeStatus::Ok)
                .await
                .map_err(|e| match e {
                    HandshakeError::CookieMismatch => {
                        format!("`{name}` sent a digest for another cookie")
                    }
                    other => format!("`{name}`: {other}"),
                })?;
        let peer = OtherSide {
            name: peer.name.to_string(),
            flags: peer.flags,
        };
        Ok((framed.into_inner(), peer))
    };
    tokio::time::timeout(limit, steps)
        .await
        .map_err(|_| format!("no handshake within {} s", limit.as_secs()))?
}

/// Words for a failed handshake. A node that dislikes our cookie does not
/// say so: it logs a warning and closes the socket while we wait for its
/// challenge acknowledgement, so a close at that point means the cookie.
fn describe(error: HandshakeError, target: &NodeName, after_status: bool) -> ConnectError {
    let node = target.to_string();
    match error {
        HandshakeError::Io(e) if e.get_ref().is_some_and(|inner| inner.is::<AnsweredInTls>()) => {
            ConnectError::SpeaksTls { node }
        }
        HandshakeError::CookieMismatch => ConnectError::CookieRejected {
            node,
            origin: String::new(),
        },
        HandshakeError::Io(e)
            if after_status
                && matches!(
                    e.kind(),
                    io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::BrokenPipe
                ) =>
        {
            ConnectError::CookieRejected {
                node,
                origin: String::new(),
            }
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
