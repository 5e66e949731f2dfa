//! A session: this tool's peer, the snapshot store, and connections to the
//! target nodes, opened once and borrowed by deploy, rollback and status.
//! A session that is held (the watch mode) may lose a node and connect to
//! it again: the set of connections changes, the session does not.

use super::options::Options;
use super::remote::{LockRequest, Remote};
use super::report::NodeReport;
use crate::output::Ui;
use crate::peer::{ConnectError, NodeName, Peer};
use crate::reach::{ports::Ports, Gateway, Reach, Route};
use crate::store::Store;
use futures::future::join_all;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

/// Why a session could not be opened.
#[derive(Debug)]
pub enum SessionError {
    /// This tool's node could not be started (its name is taken).
    Start(crate::peer::StartError),
    /// Some nodes could not be reached; a report for every node.
    Unreachable(Vec<NodeReport>),
}

#[derive(Debug)]
pub struct Session {
    reach: Reach,
    store: Store,
    remotes: Mutex<Vec<Remote>>,
    timeout: Duration,
}

impl Session {
    fn new(peer: Peer, store: Store, opts: &Options) -> Session {
        let ports = Ports::new(store.clone());
        Session {
            reach: Reach::new(peer, ports, opts.via.clone(), opts.timeout),
            store,
            remotes: Mutex::new(Vec::new()),
            timeout: opts.timeout,
        }
    }

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
    ) -> Result<Session, SessionError> {
        pack_scripts_ahead();
        let session = Session::new(peer, store, opts);
        let (registered, routes) = tokio::join!(
            session.reach.peer().registration(),
            session
                .reach
                .open_all(nodes, opts.cluster, |line| ui.line(line))
        );
        registered.map_err(SessionError::Start)?;
        let routes = routes.map_err(|unreached| {
            let reports = unreached
                .into_iter()
                .map(|(node, why)| {
                    let mut report = NodeReport::new(&node);
                    if let Some(why) = why {
                        report.fail(None, why);
                    }
                    report
                })
                .collect();
            SessionError::Unreachable(reports)
        })?;
        *session.connections() = routes.into_iter().map(|r| session.remote(r)).collect();
        Ok(session)
    }

    /// A session that goes on without the nodes it cannot reach yet: the
    /// ones reached are connected, the others come back with why, for
    /// [`Session::reconnect`] to try again.
    pub async fn hold(
        peer: Peer,
        store: Store,
        nodes: &[NodeName],
        opts: &Options,
    ) -> Result<(Session, Vec<(NodeName, String)>), crate::peer::StartError> {
        pack_scripts_ahead();
        peer.registration().await?;
        let session = Session::new(peer, store, opts);
        let tried = join_all(nodes.iter().map(|n| session.reconnect(n))).await;
        let missing = nodes
            .iter()
            .zip(tried)
            .filter_map(|(n, r)| r.err().map(|e| (n.clone(), e.to_string())))
            .collect();
        Ok((session, missing))
    }

    /// Connects to `node` (again), and puts the new route in place of any
    /// old one.
    pub async fn reconnect(&self, node: &NodeName) -> Result<Remote, ConnectError> {
        let remote = self.remote(self.reach.open(node).await?);
        let mut remotes = self.connections();
        remotes.retain(|r| r.node() != node.to_string());
        remotes.push(remote.clone());
        Ok(remote)
    }

    fn remote(&self, route: Route) -> Remote {
        Remote {
            link: route,
            timeout: self.timeout,
        }
    }

    /// The gateway of `--via`, once connected.
    pub fn gateway(&self) -> Option<Arc<Gateway>> {
        self.reach.gateway()
    }

    /// Closes every connection once what was sent on it (a lock's
    /// release) has reached its node, or after `limit`.
    pub async fn goodbye(&self, limit: Duration) {
        let routes: Vec<Route> = self.remotes().into_iter().map(|r| r.link).collect();
        self.reach.goodbye(&routes, limit).await;
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
        self.reach.peer()
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
        let name = self.peer().name().to_string();
        LockRequest {
            token: crate::random::u64(),
            owner: name.clone(),
            watched: self.reach.owner(),
            info: vec![
                ("node".into(), name),
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
    crate::peer::script::pack_ahead(&[&FLIGHT, &INSPECT, &APPLY]);
}
