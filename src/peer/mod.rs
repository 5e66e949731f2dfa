//! The Erlang distribution peer: this tool as a hidden node `hotswap@HOST`.
//!
//! It owns everything about talking to BEAM nodes and nothing about
//! deploying: names ([`names`]), the port mapper ([`epmd`]), the handshake
//! ([`handshake`], with [`reframe`]), over TCP or TLS ([`stream`],
//! [`tls`]), framing ([`frame`]), a live connection with its ticks
//! ([`connection`]), calls through `rex` ([`rpc`]), expressions
//! evaluated there ([`eval`]), packed for the wire ([`script`]), and plain
//! messages to and from the node's processes ([`message`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use hotswap_node::peer::{Cookie, Peer, PeerOptions};
//! let target = "app@myhost".parse()?;
//! let peer = Peer::start(PeerOptions::new(Cookie::new("secret")), std::slice::from_ref(&target)).await?;
//! let node = peer.connect(&target).await?;
//! let name = node.call("erlang", "node", vec![], std::time::Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```

mod cert_v1;
pub mod connection;
pub mod epmd;
pub mod error;
pub mod eval;
pub mod frame;
pub mod handshake;
pub mod message;
pub mod name_lock;
pub mod names;
pub mod reframe;
pub mod rpc;
pub mod script;
pub mod stream;
pub mod term;
pub mod tls;

pub use connection::{Connection, Ticks};
pub use error::{CallError, ConnectError, StartError};
pub use eval::{Bindings, EvalArgs};
pub use message::Listener;
pub use names::NodeName;
pub use rpc::Call;
pub use script::Script;
pub use tls::{Tls, TlsFiles};

use handshake::Identity;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stream::DistStream;
use tokio::net::{TcpListener, TcpStream};

/// The shared secret, and where it was found (for a node that refuses
/// it). Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Cookie(String, String);

impl Cookie {
    pub fn new(secret: impl Into<String>) -> Self {
        Cookie(secret.into(), String::new())
    }

    /// This cookie, found in `origin` (a flag, a variable, a file).
    pub fn from(self, origin: impl Into<String>) -> Self {
        Cookie(self.0, origin.into())
    }

    /// The secret itself, for the handshake digest and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Where it was found; empty if nobody said.
    pub fn origin(&self) -> &str {
        &self.1
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

/// This tool as a running hidden node. Dropping it unregisters the name and
/// stops listening; connections live on while their handles do.
#[derive(Debug)]
pub struct Peer {
    identity: Identity,
    options: PeerOptions,
    /// The EPMD registration under way, until [`Peer::registration`] takes it.
    pending:
        Mutex<Option<tokio::task::JoinHandle<Result<epmd::Registration, epmd::RegisterError>>>>,
    /// How it went: `Ok(true)` registered, `Ok(false)` going on without.
    registered: tokio::sync::OnceCell<Result<bool, epmd::RegisterError>>,
    /// Held while registered: EPMD keeps the name while its socket is open.
    registration: Mutex<Option<epmd::Registration>>,
    /// Held where no EPMD holds the name ([`name_lock`]).
    name_lock: Mutex<Option<name_lock::NameLock>>,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
    incoming: Arc<Mutex<Vec<Connection>>>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let listener = self.listener.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(listener) = listener.take() {
            listener.abort();
        }
        if let Some(pending) = self
            .pending
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            pending.abort();
        }
    }
}

impl Peer {
    /// Chooses the node name for `targets`, listens, and registers the name
    /// as a hidden node in the local EPMD (starting one if none runs). If no
    /// EPMD can be had, goes on unregistered with a warning: outgoing
    /// connections still work, but nodes cannot ping us.
    pub async fn start(options: PeerOptions, targets: &[NodeName]) -> Result<Peer, StartError> {
        let peer = Peer::launch(options, targets).await?;
        peer.registration().await?;
        Ok(peer)
    }

    /// As [`Peer::start`], but the EPMD registration goes on in the
    /// background, so that it is not a round trip on the way to the
    /// targets: [`Peer::connect_remembered`] waits for it only before the
    /// handshake (our name must be ours before a node hears it), and
    /// [`Peer::registration`] tells how it went.
    pub async fn launch(options: PeerOptions, targets: &[NodeName]) -> Result<Peer, StartError> {
        let name = names::local_name(options.name.as_deref(), targets)?;
        // Under TLS nodes could connect back only over TLS, which this
        // listener does not speak: no listener, no name in EPMD.
        let listener = match options.tls {
            None => Some(listen().await.map_err(StartError::Listen)?),
            Some(_) => None,
        };
        let port = match &listener {
            Some(l) => Some(l.local_addr().map_err(StartError::Listen)?.port()),
            None => None,
        };
        let alive = name.name().to_owned();
        // Without EPMD (a distribution port given), nothing is registered.
        let pending = port
            .filter(|_| options.dist_port.is_none())
            .map(|port| tokio::spawn(async move { epmd::register(&alive, port).await }));
        // Where no EPMD will hold the name, a lock on this machine does.
        let held = match pending {
            Some(_) => None,
            None => name_lock::take(&name.to_string()).map_err(epmd::RegisterError::from)?,
        };
        // Peers learn our creation from the handshake, not from EPMD.
        let identity = Identity {
            name,
            creation: random_creation(),
        };
        let incoming = Arc::new(Mutex::new(Vec::new()));
        let accepting = listener.map(|listener| {
            tokio::spawn(accept_loop(
                listener,
                identity.clone(),
                options.clone(),
                incoming.clone(),
            ))
        });
        Ok(Peer {
            identity,
            options,
            pending: Mutex::new(pending),
            registered: tokio::sync::OnceCell::new(),
            registration: Mutex::new(None),
            name_lock: Mutex::new(held),
            listener: Mutex::new(accepting),
            incoming,
        })
    }

    /// Waits for the EPMD registration: an error only when another
    /// instance holds our name; without an EPMD we go on unregistered.
    pub async fn registration(&self) -> Result<(), StartError> {
        let outcome = self
            .registered
            .get_or_init(|| async {
                let pending = self.lock(&self.pending).take();
                let result = match pending {
                    Some(task) => task.await.unwrap_or_else(|e| {
                        Err(epmd::RegisterError::Refused {
                            name: self.identity.name.to_string(),
                            detail: e.to_string(),
                        })
                    }),
                    None => return Ok(false),
                };
                match result {
                    Ok(registration) => {
                        *self.lock(&self.registration) = Some(registration);
                        Ok(true)
                    }
                    Err(e @ epmd::RegisterError::NameTaken { .. }) => Err(e),
                    Err(e) => {
                        let name = self.identity.name.to_string();
                        *self.lock(&self.name_lock) = name_lock::take(&name)?;
                        tracing::warn!(
                            "{e}; going on unregistered (nodes cannot connect back to `{}`)",
                            self.identity.name
                        );
                        if let Some(listener) = self.lock(&self.listener).take() {
                            listener.abort();
                        }
                        Ok(false)
                    }
                }
            })
            .await;
        match outcome {
            Ok(_) => Ok(()),
            Err(e) => Err(e.clone().into()),
        }
    }

    fn lock<'a, T>(&self, m: &'a Mutex<T>) -> std::sync::MutexGuard<'a, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Our own node name.
    pub fn name(&self) -> &NodeName {
        &self.identity.name
    }

    /// Whether EPMD holds our name (and so nodes can connect to us); false
    /// while the registration is still under way.
    pub fn is_registered(&self) -> bool {
        matches!(self.registered.get(), Some(Ok(true)))
    }

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
        let tls = self.options.tls.as_ref();
        if let Some(port) = self.options.dist_port {
            let limit = self.options.connect_timeout;
            let conn = self
                .connect_at(target, port, limit, true, &self.options.cookie, tls)
                .await?;
            return Ok((conn, port));
        }
        if let Some(port) = remembered {
            let limit = self.options.connect_timeout.min(Duration::from_secs(2));
            match self
                .connect_at(target, port, limit, true, &self.options.cookie, tls)
                .await
            {
                Ok(conn) => return Ok((conn, port)),
                Err(e) => tracing::debug!(node = %target, port, "remembered port failed: {e}"),
            }
        }
        if target.host() == self.identity.name.host() {
            // The same EPMD: ours may be the one our registration starts.
            let _ = self.registration().await;
        }
        let port = epmd::lookup(target.host(), target.name()).await?;
        let conn = self
            .connect_at(
                target,
                port,
                self.options.connect_timeout,
                false,
                &self.options.cookie,
                tls,
            )
            .await?;
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
        self.connect_at(
            target,
            port,
            self.options.connect_timeout,
            true,
            cookie,
            None,
        )
        .await
    }

    /// [`Peer::connect_at`], tried again while the node answers `nok`:
    /// it still holds a handshake of an earlier attempt from our name
    /// (one that timed out over a slow or lossy link) and drops it once
    /// that socket's close reaches it, or at its own setup time. Waits
    /// 50 ms, doubling up to 1 s, within `limit` in all.
    async fn connect_at(
        &self,
        target: &NodeName,
        port: u16,
        limit: Duration,
        same_name: bool,
        cookie: &Cookie,
        tls: Option<&Tls>,
    ) -> Result<Connection, ConnectError> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut pause = Duration::from_millis(50);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self
                .connect_once(target, port, left, same_name, cookie, tls)
                .await
            {
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

    /// Connects to `target` at `port` (over `tls` if given) and shakes
    /// hands within `limit`; with `same_name`, refuses a node of another
    /// name there.
    async fn connect_once(
        &self,
        target: &NodeName,
        port: u16,
        limit: Duration,
        same_name: bool,
        cookie: &Cookie,
        tls: Option<&Tls>,
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
        self.registration()
            .await
            .map_err(|e| ConnectError::Refused {
                node: target.to_string(),
                reason: e.to_string(),
            })?;
        let stream = match tls {
            Some(tls) => tls.connect(stream, target, limit).await?,
            None => DistStream::Plain(stream),
        };
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

/// The listener nodes connect back on (`net_adm:ping`): one socket on
/// IPv6 and IPv4 at once (`[::]`, not IPv6-only whatever the system's
/// default), so that nodes on either reach it; IPv4 only on a machine
/// without IPv6.
async fn listen() -> std::io::Result<TcpListener> {
    let dual = || -> std::io::Result<TcpListener> {
        let socket = tokio::net::TcpSocket::new_v6()?;
        socket2::SockRef::from(&socket).set_only_v6(false)?;
        socket.bind((std::net::Ipv6Addr::UNSPECIFIED, 0).into())?;
        socket.listen(128)
    };
    match dual() {
        Ok(listener) => Ok(listener),
        Err(_) => TcpListener::bind(("0.0.0.0", 0)).await,
    }
}

/// How long the listener waits after a failed accept before the next.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

async fn accept_loop(
    listener: TcpListener,
    identity: Identity,
    options: PeerOptions,
    incoming: Arc<Mutex<Vec<Connection>>>,
) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors (or memory), the next accept fails
                // the same way at once: wait rather than spin a core.
                tracing::debug!("accepting a connection failed: {e}");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
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
                        DistStream::Plain(stream),
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
    // Any value from 4 up; only EPMD hands out meaningful ones.
    (crate::random::u64() as u32).max(4)
}
