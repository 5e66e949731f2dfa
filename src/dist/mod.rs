//! The Erlang distribution peer: this tool as a hidden node `hotswap@HOST`.
//!
//! It owns everything about talking to BEAM nodes and nothing about
//! deploying: names ([`names`]), the port mapper ([`epmd`]), the handshake
//! ([`handshake`]), framing ([`frame`]), a live connection with its ticks
//! ([`connection`]), calls through `rex` ([`rpc`]) and expressions
//! evaluated there ([`eval`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use hotswap_node::dist::{Cookie, Peer, PeerOptions};
//! let target = "app@myhost".parse()?;
//! let peer = Peer::start(PeerOptions::new(Cookie::new("secret")), std::slice::from_ref(&target)).await?;
//! let node = peer.connect(&target).await?;
//! let name = node.call("erlang", "node", vec![], std::time::Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```

pub mod connection;
pub mod epmd;
pub mod error;
pub mod eval;
pub mod frame;
pub mod handshake;
pub mod names;
pub mod rpc;
pub mod term;

pub use connection::{Connection, Ticks};
pub use error::{CallError, ConnectError, StartError};
pub use eval::Bindings;
pub use names::NodeName;
pub use rpc::Call;

use handshake::Identity;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// The shared secret. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Cookie(String);

impl Cookie {
    pub fn new(secret: impl Into<String>) -> Self {
        Cookie(secret.into())
    }

    /// The secret itself, for the handshake digest and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cookie(<hidden>)")
    }
}

impl fmt::Display for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hidden>")
    }
}

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
}

impl PeerOptions {
    pub fn new(cookie: Cookie) -> Self {
        PeerOptions {
            name: None,
            cookie,
            connect_timeout: Duration::from_secs(5),
            ticks: Ticks::default(),
        }
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// This tool as a running hidden node. Dropping it unregisters the name and
/// stops listening; connections live on while their handles do.
#[derive(Debug)]
pub struct Peer {
    identity: Identity,
    options: PeerOptions,
    registered: bool,
    _registration: Option<epmd::Registration>,
    listener: Option<tokio::task::JoinHandle<()>>,
    incoming: Arc<Mutex<Vec<Connection>>>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(listener) = self.listener.take() {
            listener.abort();
        }
    }
}

impl Peer {
    /// Chooses the node name for `targets`, listens, and registers the name
    /// as a hidden node in the local EPMD (starting one if none runs). If no
    /// EPMD can be had, goes on unregistered with a warning: outgoing
    /// connections still work, but nodes cannot ping us.
    pub async fn start(options: PeerOptions, targets: &[NodeName]) -> Result<Peer, StartError> {
        let name = names::local_name(options.name.as_deref(), targets)?;
        let listener = TcpListener::bind(("0.0.0.0", 0))
            .await
            .map_err(StartError::Listen)?;
        let port = listener.local_addr().map_err(StartError::Listen)?.port();
        let (registration, creation) = match epmd::register(name.name(), port).await {
            Ok(r) => {
                let creation = r.creation;
                (Some(r), creation)
            }
            Err(e @ epmd::RegisterError::NameTaken { .. }) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(
                    "{e}; going on unregistered (nodes cannot connect back to `{name}`)"
                );
                (None, random_creation())
            }
        };
        let identity = Identity { name, creation };
        let incoming = Arc::new(Mutex::new(Vec::new()));
        let listener = registration.as_ref().map(|_| {
            tokio::spawn(accept_loop(
                listener,
                identity.clone(),
                options.clone(),
                incoming.clone(),
            ))
        });
        Ok(Peer {
            identity,
            registered: registration.is_some(),
            _registration: registration,
            options,
            listener,
            incoming,
        })
    }

    /// Our own node name.
    pub fn name(&self) -> &NodeName {
        &self.identity.name
    }

    /// Whether EPMD holds our name (and so nodes can connect to us).
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// Looks `target` up in its host's EPMD, connects and shakes hands.
    pub async fn connect(&self, target: &NodeName) -> Result<Connection, ConnectError> {
        Ok(self.connect_via(target, None).await?.0)
    }

    /// As [`Peer::connect`], trying `remembered` (the port `target` had
    /// last time) first: that saves the two round trips of the EPMD
    /// lookup. A port that no longer leads to `target` costs one failed
    /// attempt, then EPMD is asked. Returns the port that worked.
    pub async fn connect_via(
        &self,
        target: &NodeName,
        remembered: Option<u16>,
    ) -> Result<(Connection, u16), ConnectError> {
        if let Some(port) = remembered {
            let limit = self.options.connect_timeout.min(Duration::from_secs(2));
            match self.connect_at(target, port, limit, true).await {
                Ok(conn) => return Ok((conn, port)),
                Err(e) => tracing::debug!(node = %target, port, "remembered port failed: {e}"),
            }
        }
        let port = epmd::lookup(target.host(), target.name()).await?;
        let conn = self
            .connect_at(target, port, self.options.connect_timeout, false)
            .await?;
        Ok((conn, port))
    }

    /// Connects to `target` at `port` and shakes hands within `limit`;
    /// with `same_name`, refuses a node of another name there.
    async fn connect_at(
        &self,
        target: &NodeName,
        port: u16,
        limit: Duration,
        same_name: bool,
    ) -> Result<Connection, ConnectError> {
        let addr = format!("{}:{port}", target.host());
        let stream = tokio::time::timeout(limit, TcpStream::connect((target.host(), port)))
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
        let (stream, peer) = handshake::client(
            stream,
            &self.identity,
            self.options.cookie.expose(),
            target,
            limit,
        )
        .await?;
        if same_name && peer.name != target.to_string() {
            return Err(ConnectError::Handshake {
                node: target.to_string(),
                detail: format!("port {port} belongs to `{}`", peer.name),
            });
        }
        tracing::debug!(node = %peer.name, flags = peer.flags.bits(), "connected");
        Ok(Connection::start(
            stream,
            target.clone(),
            &self.identity.name,
            self.identity.creation,
            self.options.ticks,
        ))
    }

    /// How many nodes have connected to us and are still connected.
    pub fn incoming_connections(&self) -> usize {
        let mut list = self.incoming.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|c| c.closed_reason().is_none());
        list.len()
    }
}

async fn accept_loop(
    listener: TcpListener,
    identity: Identity,
    options: PeerOptions,
    incoming: Arc<Mutex<Vec<Connection>>>,
) {
    loop {
        let Ok((stream, from)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let identity = identity.clone();
        let options = options.clone();
        let incoming = incoming.clone();
        tokio::spawn(async move {
            match handshake::server(
                stream,
                &identity,
                options.cookie.expose(),
                options.connect_timeout,
            )
            .await
            {
                Ok((stream, peer)) => {
                    tracing::debug!(node = %peer.name, %from, "accepted a connection");
                    let Ok(name) = peer.name.parse::<NodeName>() else {
                        return;
                    };
                    let connection = Connection::start(
                        stream,
                        name,
                        &identity.name,
                        identity.creation,
                        options.ticks,
                    );
                    let mut list = incoming.lock().unwrap_or_else(|p| p.into_inner());
                    list.retain(|c| c.closed_reason().is_none());
                    list.push(connection);
                }
                Err(reason) => {
                    tracing::warn!("refused a distribution connection from {from}: {reason}")
                }
            }
        });
    }
}

fn random_creation() -> u32 {
    // Any nonzero value; only EPMD hands out meaningful ones.
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(1)
        | 1)
    .max(4)
}
