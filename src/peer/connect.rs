//! Reaching a node from this one: its port (given, remembered, or asked
//! of its host's EPMD), TCP or TLS, and the handshake.

use super::connection::Connection;
use super::cookie::Cookie;
use super::epmd;
use super::error::ConnectError;
use super::handshake;
use super::local_node::Peer;
use super::names::NodeName;
use super::stream::DistStream;
use super::tls::Tls;
use crate::timings;
use std::time::{Duration, Instant};

/// A wait for our own EPMD registration as short as this is not worth a
/// part of its own in `--timings`.
const REGISTRATION_SEEN: Duration = Duration::from_micros(50);

impl Peer {
    /// Looks `target` up in its host's EPMD, connects and shakes hands.
    pub async fn connect(&self, target: &NodeName) -> Result<Connection, ConnectError> {
        Ok(self.connect_remembered(target, None).await?.0)
    }

    /// As [`Peer::connect`], trying `remembered` (the port `target` had
    /// last time) first: that saves the two round trips of the EPMD
    /// lookup. A port that no longer leads to `target` costs one failed
    /// attempt, then EPMD is asked. Returns the port that worked.
    pub async fn connect_remembered(
        &self,
        target: &NodeName,
        remembered: Option<u16>,
    ) -> Result<(Connection, u16), ConnectError> {
        let attempt = |port, same_name| Attempt {
            target,
            port,
            same_name,
            cookie: &self.options.cookie,
            tls: self.options.tls.as_ref(),
        };
        if let Some(port) = self.options.dist_port {
            let limit = self.options.connect_timeout;
            let conn = self.connect_at(&attempt(port, true), limit).await?;
            return Ok((conn, port));
        }
        if let Some(port) = remembered {
            let limit = self.options.connect_timeout.min(Duration::from_secs(2));
            let from = Instant::now();
            match self.connect_at(&attempt(port, true), limit).await {
                Ok(conn) => return Ok((conn, port)),
                Err(e) => {
                    timings::since("remembered port", Some(&target.to_string()), from);
                    tracing::debug!(node = %target, port, "remembered port failed: {e}")
                }
            }
        }
        if target.host() == self.identity.name.host() {
            // The same EPMD: ours may be the one our registration starts.
            let _ = self.registration().await;
        }
        let from = Instant::now();
        let port = epmd::lookup(target.host(), target.name()).await?;
        timings::span("epmd", Some(&target.to_string()), from, 2);
        let limit = self.options.connect_timeout;
        let conn = self.connect_at(&attempt(port, false), limit).await?;
        Ok((conn, port))
    }

    /// Connects to a node of our own making that has a cookie of its own
    /// (the watch mode's build node), found through EPMD, over plain TCP.
    pub async fn connect_private(
        &self,
        target: &NodeName,
        cookie: &Cookie,
    ) -> Result<Connection, ConnectError> {
        let _ = self.registration().await;
        let port = epmd::lookup(target.host(), target.name()).await?;
        let attempt = Attempt {
            target,
            port,
            same_name: true,
            cookie,
            tls: None,
        };
        self.connect_at(&attempt, self.options.connect_timeout)
            .await
    }

    /// [`Peer::connect_once`], tried again while the node answers `nok`:
    /// it still holds a handshake of an earlier attempt from our name
    /// (one that timed out over a slow or lossy link) and drops it once
    /// that socket's close reaches it, or at its own setup time. Waits
    /// 50 ms, doubling up to 1 s, within `limit` in all.
    async fn connect_at(
        &self,
        attempt: &Attempt<'_>,
        limit: Duration,
    ) -> Result<Connection, ConnectError> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut pause = Duration::from_millis(50);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.connect_once(attempt, left).await {
                Err(ConnectError::Pending { node, .. }) => {
                    crate::fault::hold("connect_pending").await;
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    if left <= pause {
                        return Err(ConnectError::Pending {
                            node,
                            secs: limit.as_secs_f64(),
                        });
                    }
                    tracing::debug!(%node, "the node still sets up an earlier connection; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    /// Makes `attempt` and shakes hands within `limit`.
    async fn connect_once(
        &self,
        attempt: &Attempt<'_>,
        limit: Duration,
    ) -> Result<Connection, ConnectError> {
        let Attempt {
            target,
            port,
            same_name,
            cookie,
            tls,
        } = *attempt;
        let addr = format!("{}:{port}", target.host());
        let node = target.to_string();
        let from = Instant::now();
        let stream = tokio::time::timeout(limit, super::resolve::connect(target.host(), port))
            .await
            .map_err(|_| ConnectError::Tcp {
                node: target.to_string(),
                addr: addr.clone(),
                source: std::io::ErrorKind::TimedOut.into(),
            })?
            .map_err(|source| ConnectError::Tcp {
                node: target.to_string(),
                addr,
                source,
            })?;
        let _ = stream.set_nodelay(true);
        timings::span("tcp", Some(&node), from, 1);
        let from = Instant::now();
        self.registration()
            .await
            .map_err(|e| ConnectError::Refused {
                node: target.to_string(),
                reason: e.to_string(),
            })?;
        if from.elapsed() >= REGISTRATION_SEEN {
            timings::since("our registration", Some(&node), from);
        }
        let from = Instant::now();
        let stream = match tls {
            // TLS 1.3: one round trip.
            Some(tls) => {
                let stream = tls.connect(stream, target, limit).await?;
                timings::span("tls", Some(&node), from, 1);
                stream
            }
            None => DistStream::Plain(stream),
        };
        let from = Instant::now();
        let (stream, peer) =
            handshake::client(stream, &self.identity, cookie.expose(), target, limit)
                .await
                .map_err(|e| match (tls, e) {
                    // Under TLS 1.3 a node refuses our certificate after the
                    // TLS handshake: the refusal comes as the first read.
                    (Some(tls), ConnectError::Io { node, source }) => {
                        match tls.explain_io(&source, target) {
                            Some(detail) => ConnectError::Tls { node, detail },
                            None => ConnectError::Io { node, source },
                        }
                    }
                    (_, ConnectError::CookieRejected { node, .. }) => {
                        ConnectError::CookieRejected {
                            node,
                            origin: cookie.origin().to_owned(),
                        }
                    }
                    (_, e) => e,
                })?;
        if same_name && peer.name != target.to_string() {
            return Err(ConnectError::Handshake {
                node: target.to_string(),
                detail: format!("port {port} belongs to `{}`", peer.name),
            });
        }
        timings::span("handshake", Some(&node), from, 2);
        tracing::debug!(node = %peer.name, flags = peer.flags.bits(), "connected");
        Ok(Connection::start(
            stream,
            target.clone(),
            &self.identity.name,
            self.identity.creation,
            self.options.ticks,
        ))
    }
}

/// One way to reach a node: at `port` (over `tls` if given), with `cookie`.
#[derive(Clone, Copy)]
struct Attempt<'a> {
    target: &'a NodeName,
    port: u16,
    /// Refuse a node of another name at `port` (a port not from EPMD).
    same_name: bool,
    cookie: &'a Cookie,
    tls: Option<&'a Tls>,
}
