//! How this tool starts as a node: its name, the cookie, limits, and how
//! its targets are reached (without EPMD, over TLS).

use super::connection::Ticks;
use super::cookie::Cookie;
use super::tls::Tls;
use std::time::Duration;

/// How to start the peer.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// `alive` (the host is chosen to suit the targets) or a whole
    /// `alive@host`. Default `hotswap`.
    pub name: Option<String>,
    pub cookie: Cookie,
    /// Limit for TCP connect plus handshake with one node.
    pub connect_timeout: Duration,
    pub ticks: Ticks,
    /// The targets' distribution port: connect there without asking EPMD,
    /// and register with none (nodes without EPMD).
    pub dist_port: Option<u16>,
    /// TLS distribution to the targets. The peer then neither listens
    /// nor registers: nodes cannot connect back to it.
    pub tls: Option<Tls>,
}

impl PeerOptions {
    pub fn new(cookie: Cookie) -> Self {
        PeerOptions {
            name: None,
            cookie,
            connect_timeout: Duration::from_secs(5),
            ticks: Ticks::default(),
            dist_port: None,
            tls: None,
        }
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}
