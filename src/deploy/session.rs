//! A session: this tool's peer, the snapshot store, and connections to the
//! target nodes, opened once and borrowed by deploy, rollback and status.
//! A session that is held (the watch mode) may lose a node and connect to
//! it again: the set of connections changes, the session does not.

use super::remote::{LockRequest, Remote};
use super::report::NodeReport;
use super::Options;
use crate::dist::{ConnectError, Gateway, Link, NodeName, Peer, Targets};
use crate::output::Ui;
use crate::store::Store;
use futures::future::join_all;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

/// Why a session could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// This tool's node could not be started (its name is taken).
    Start(crate::dist::StartError),
    /// Some nodes could not be reached; a report for every node.
    Unreachable(Vec<NodeReport>),
}

#[derive(Debug)]
pub struct Session {
    peer: Peer,
    store: Store,
    remotes: Mutex<Vec<Remote>>,
    /// With `--via`: the gateway every target is reached through.
    gateway: Mutex<Option<Arc<Gateway>>>,
    /// Held while a new gateway connection opens: one at a time.
    opening: tokio::sync::Mutex<()>,
    via: Option<NodeName>,
    timeout: Duration,
}

impl Session {
    /// Connects to every node at once (with `--cluster`, also to the nodes
    /// they are connected to), while the peer's own EPMD registration
    /// finishes. Any failure stops here, before anything changes: the
    /// reports name every node, failed or not.
    pub async fn connect(
        peer: Peer,
        store: Store,
        nodes: &[NodeName],
        opts: &Options,
        ui: &Ui,
    ) -> Result<Session, OpenError> {
        pack_scripts_ahead();
        let (registered, remotes) = tokio::join!(
            peer.registration(),
            connect_all(&peer, &store, nodes, opts, ui)
        );
        registered.map_err(OpenError::Start)?;
        let (remotes, gateway) = remotes.map_err(OpenError::Unreachable)?;
        Ok(Session {
            peer,
            store,
            remotes: Mutex::new(remotes),
            gateway: Mutex::new(gateway),
            opening: tokio::sync::Mutex::new(()),
            via: opts.via.clone(),
            timeout: opts.timeout,
        })
    }

    /// A session that goes on without the nodes it cannot reach yet: the
    /// ones reached are connected, the others come back with why, for
    /// [`Session::reconnect`] to try again.
    pub async fn hold(
        peer: Peer,
        store: Store,
        nodes: &[NodeName],
        opts: &Options,
    ) -> Result<(Session, Vec<(NodeName, String)>), crate::dist::StartError> {
        pack_scripts_ahead();
        peer.registration().await?;
        let session = Session {
            peer,
            store,
            remotes: Mutex::new(Vec::new()),
            gateway: Mutex::new(None),
            opening: tokio::sync::Mutex::new(()),
            via: opts.via.clone(),
            timeout: opts.timeout,
        };
        let tried = join_all(nodes.iter().map(|n| session.reconnect(n))).await;
        let missing = nodes
            .iter()
            .zip(tried)
            .filter_map(|(n, r)| r.err().map(|e| (n.clone(), e.to_string())))
            .collect();
        Ok((session, missing))
    }

    /// Connects to `node` (again), trying the port it had last time first,
    /// and puts the new connection in place of any old one.
    pub async fn reconnect(&self, node: &NodeName) -> Result<Remote, ConnectError> {
        if let Some(via) = &self.via {
            return self.reach_via(via, node).await;
        }
        let key = node.to_string();
        let remembered = self.store.ports().get(&key).copied();
        let (conn, port) = self.peer.connect_remembered(node, remembered).await?;
        let remote = Remote {
            link: Link::Direct(conn),
            timeout: self.timeout,
        };
        // Under the connections' lock: nodes connecting at once must not
        // each write the ports file from their own stale read of it.
        let mut remotes = self.connections();
        if remembered != Some(port) {
            let mut ports = self.store.ports();
            ports.insert(key.clone(), port);
            self.store.remember_ports(&ports);
        }
        remotes.retain(|r| r.node() != key);
        remotes.push(remote.clone());
        Ok(remote)
    }

    /// `node` reached through the gateway `via` (connected again if its
    /// connection is gone), in place of any old way to it.
    async fn reach_via(&self, via: &NodeName, node: &NodeName) -> Result<Remote, ConnectError> {
        let opening = self.opening.lock().await;
        let held = self.gateway().filter(|g| g.closed_reason().is_none());
        let gateway = match held {
            Some(gateway) => gateway,
            None => {
                let targets = Targets::Named(Vec::new());
                let (gateway, _) =
                    super::gateway::open(&self.peer, &self.store, via, &targets, self.timeout)
                        .await
                        .map_err(|e| match e {
                            super::gateway::OpenError::Connect(e) => e,
                            super::gateway::OpenError::Relay(e) => ConnectError::Handshake {
                                node: via.to_string(),
                                detail: format!("the relay did not start: {e}"),
                            },
                        })?;
                *self.gateway.lock().unwrap_or_else(|p| p.into_inner()) = Some(gateway.clone());
                gateway
            }
        };
        drop(opening);
        let link = Link::via(gateway, node.clone());
        // Whether the gateway reaches it (connecting if it must).
        link.call("erlang", "node", Vec::new(), self.timeout)
            .await
            .map_err(|e| ConnectError::Refused {
                node: node.to_string(),
                reason: format!("the gateway `{via}` cannot reach it: {e}"),
            })?;
        let remote = Remote {
            link,
            timeout: self.timeout,
        };
        let mut remotes = self.connections();
        remotes.retain(|r| r.node() != node.to_string());
        remotes.push(remote.clone());
        Ok(remote)
    }

    /// The gateway of `--via`, once connected.
    pub fn gateway(&self) -> Option<Arc<Gateway>> {
        self.gateway
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Closes every connection once what was sent on it (a lock's
    /// release) has reached its node, or after `limit`: a run that exits
    /// at once could lose it, and leave the node locked for the next run.
    pub async fn goodbye(&self, limit: std::time::Duration) {
        let remotes = self.remotes();
        match self.gateway() {
            Some(gateway) => gateway.connection().goodbye(limit).await,
            None => {
                futures::future::join_all(remotes.iter().map(|r| r.link.goodbye(limit))).await;
            }
        }
    }

    /// Whether `node` has no live connection.
    pub fn is_down(&self, node: &str) -> bool {
        !self
            .connections()
            .iter()
            .any(|r| r.node() == node && r.link.closed_reason().is_none())
    }

    /// Forgets the connection to `node` (it went away).
    pub fn forget(&self, node: &str) {
        self.connections().retain(|r| r.node() != node);
    }

    /// The nodes connected now.
    pub fn remotes(&self) -> Vec<Remote> {
        self.connections().clone()
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, Vec<Remote>> {
        self.remotes.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// What this run's node locks are taken with: a fresh token, and who
    /// we are for anyone refused. The lock also goes with our connection,
    /// or after a lease long enough for every step of a run to time out.
    pub fn lock_request(&self) -> LockRequest {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let watched = match self.gateway() {
            Some(gateway) => gateway.relay(),
            None => crate::dist::term::atom_term(&self.peer.name().to_string()),
        };
        LockRequest {
            token: crate::random::u64(),
            owner: self.peer.name().to_string(),
            watched,
            info: vec![
                ("node".into(), self.peer.name().to_string()),
                ("user".into(), user),
                ("host".into(), host),
                ("pid".into(), std::process::id().to_string()),
                ("since".into(), crate::store::utc_time(now.as_secs())),
            ],
            lease: self.timeout * 6,
        }
    }
}

/// Packs the scripts a run sends to the nodes while its connections open:
/// the flight first, the one a deploy after a deploy sends.
fn pack_scripts_ahead() {
    use super::step::{apply::APPLY, flight::FLIGHT, inspect::INSPECT};
    crate::dist::script::pack_ahead(&[&FLIGHT, &INSPECT, &APPLY]);
}

/// Every target's way, and the gateway if there is one; or a report for
/// every node, some failed.
type Connected = Result<(Vec<Remote>, Option<Arc<Gateway>>), Vec<NodeReport>>;

async fn connect_all(
    peer: &Peer,
    store: &Store,
    nodes: &[NodeName],
    opts: &Options,
    ui: &Ui,
) -> Connected {
    match &opts.via {
        Some(via) => super::gateway::connect_targets(peer, store, via, nodes, opts, ui)
            .await
            .map(|(remotes, gateway)| (remotes, Some(gateway))),
        None => connect_each(peer, store, nodes, opts, ui)
            .await
            .map(|remotes| (remotes, None)),
    }
}

async fn connect_each(
    peer: &Peer,
    store: &Store,
    nodes: &[NodeName],
    opts: &Options,
    ui: &Ui,
) -> Result<Vec<Remote>, Vec<NodeReport>> {
    let remembered = store.ports();
    let mut ports = remembered.clone();
    let mut wanted: Vec<NodeName> = Vec::new();
    for n in nodes {
        if !wanted.contains(n) {
            wanted.push(n.clone());
        }
    }
    let mut remotes: Vec<Remote> = Vec::new();
    let mut failures = Vec::new();
    let mut round = wanted;
    while !round.is_empty() {
        let results = join_all(
            round
                .iter()
                .map(|n| peer.connect_remembered(n, remembered.get(&n.to_string()).copied())),
        )
        .await;
        for (name, result) in round.iter().zip(results) {
            match result {
                Ok((conn, port)) => {
                    ports.insert(name.to_string(), port);
                    ui.line(&format!("Connected to {name}"));
                    remotes.push(Remote {
                        link: Link::Direct(conn),
                        timeout: opts.timeout,
                    });
                }
                Err(e) => {
                    let mut r = NodeReport::new(&name.to_string());
                    r.fail(None, e.to_string());
                    failures.push(r);
                }
            }
        }
        round = Vec::new();
        if opts.cluster && failures.is_empty() {
            round = cluster_peers(peer, &remotes).await;
        }
    }
    if ports != remembered {
        store.remember_ports(&ports);
    }
    if failures.is_empty() {
        Ok(remotes)
    } else {
        let mut reports: Vec<NodeReport> =
            remotes.iter().map(|r| NodeReport::new(&r.node())).collect();
        reports.extend(failures);
        Err(reports)
    }
}

/// Nodes the connected ones know that we are not connected to yet.
async fn cluster_peers(peer: &Peer, remotes: &[Remote]) -> Vec<NodeName> {
    let seen: Vec<String> = remotes.iter().map(Remote::node).collect();
    let known = join_all(remotes.iter().map(Remote::connected_nodes)).await;
    let mut round: Vec<NodeName> = Vec::new();
    for name in known.into_iter().flatten().flatten() {
        let Ok(name) = name.parse::<NodeName>() else {
            continue;
        };
        if !seen.contains(&name.to_string()) && !round.contains(&name) && name != *peer.name() {
            round.push(name);
        }
    }
    round
}
