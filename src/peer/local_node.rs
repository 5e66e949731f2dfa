//! This tool as a running hidden node: its name, chosen to suit the
//! targets and registered with EPMD (or held by a lock on this machine
//! where no EPMD holds it), and the listener nodes connect back on.

use super::connection::Connection;
use super::epmd;
use super::error::StartError;
use super::handshake::Identity;
use super::listener::{accept_loop, listen};
use super::name_lock;
use super::names::{self, NodeName};
use super::options::PeerOptions;
use std::sync::{Arc, Mutex};

/// This tool as a running hidden node. Dropping it unregisters the name and
/// stops listening; connections live on while their handles do.
#[derive(Debug)]
pub struct Peer {
    pub(super) identity: Identity,
    pub(super) options: PeerOptions,
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

    /// How many nodes have connected to us and are still connected.
    pub fn incoming_connections(&self) -> usize {
        let mut list = self.incoming.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|c| c.closed_reason().is_none());
        list.len()
    }
}

fn random_creation() -> u32 {
    // Any value from 4 up; only EPMD hands out meaningful ones.
    (crate::random::u64() as u32).max(4)
}
