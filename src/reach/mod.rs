//! Reaching target nodes: one room for every way to a node, as OTP keeps
//! its distribution carriers behind one set of callbacks. A [`Route`] to a
//! node opens, reopens, says goodbye and names its owner (what the node's
//! lock holders watch), whichever way it goes:
//!
//! - directly, through this tool's peer ([`crate::peer::Peer`]): found
//!   through EPMD, at the port it had last time ([`ports`]), or at a fixed
//!   distribution port without EPMD (`--dist-port`); over TCP or TLS, the
//!   peer's carriers;
//! - through one gateway node ([`gateway`], `--via`), whose relay carries
//!   every request to the targets over the cluster's own connections.
//!
//! A fifth way is a variant of [`Route`] and a branch of [`Reach::open`].
//! Depends on the peer and the store's folder, on nothing about deploying.

pub mod gateway;
pub mod ports;
pub mod route;

pub use gateway::{Gateway, Targets};
pub use route::Route;

use crate::peer::term::{atom_term, Term};
use crate::peer::Call;
use crate::peer::{CallError, ConnectError, NodeName, Peer};
use futures::future::join_all;
use ports::Ports;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The ways this run reaches its nodes: the peer, the ports remembered,
/// and with `--via` the gateway, opened once and reopened if it goes.
#[derive(Debug)]
pub struct Reach {
    peer: Peer,
    ports: Ports,
    via: Option<NodeName>,
    gateway: Mutex<Option<Arc<Gateway>>>,
    /// Held while a new gateway connection opens: one at a time.
    opening: tokio::sync::Mutex<()>,
    timeout: Duration,
}

/// Why the gateway could not be had.
#[derive(Debug)]
pub enum GatewayError {
    /// Not reached.
    Connect(ConnectError),
    /// Reached, but its relay did not start.
    Relay(CallError),
}

/// Each node asked for, and why it could not be reached (`None`: it was).
pub type Unreached = Vec<(String, Option<String>)>;

impl Reach {
    pub fn new(peer: Peer, ports: Ports, via: Option<NodeName>, timeout: Duration) -> Reach {
        Reach {
            peer,
            ports,
            via,
            gateway: Mutex::new(None),
            opening: tokio::sync::Mutex::new(()),
            timeout,
        }
    }

    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Opens a route to every one of `nodes` at once (with `cluster`, also
    /// to the nodes they are connected to); or, if any cannot be reached,
    /// every node with why not. `said` is told of each node reached.
    pub async fn open_all(
        &self,
        nodes: &[NodeName],
        cluster: bool,
        said: impl Fn(&str) + Sync,
    ) -> Result<Vec<Route>, Unreached> {
        match &self.via {
            Some(via) => self.open_through(via, nodes, cluster, &said).await,
            None => self.open_each(nodes, cluster, &said).await,
        }
    }

    /// A route to `node` (again), trying the port it had last time first.
    pub async fn open(&self, node: &NodeName) -> Result<Route, ConnectError> {
        match &self.via {
            Some(via) => self.open_via(via, node).await,
            None => {
                let (conn, port) = self
                    .peer
                    .connect_remembered(node, self.ports.of(node))
                    .await?;
                self.ports.remember(&[(node.clone(), port)]);
                Ok(Route::Direct(conn))
            }
        }
    }

    /// The gateway of `--via`, once connected.
    pub fn gateway(&self) -> Option<Arc<Gateway>> {
        self.gateway
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What a node's processes watch to see this run go (a lock's holder):
    /// the gateway's relay, or this tool's node.
    pub fn owner(&self) -> Term {
        match self.gateway() {
            Some(gateway) => gateway.relay(),
            None => atom_term(&self.peer.name().to_string()),
        }
    }

    /// Closes every route once what was sent on it (a lock's release) has
    /// reached its node, or after `limit`: a run that exits at once could
    /// lose it, and leave the node locked for the next run.
    pub async fn goodbye(&self, routes: &[Route], limit: Duration) {
        match self.gateway() {
            Some(gateway) => gateway.connection().close_and_wait(limit).await,
            None => {
                join_all(routes.iter().map(|r| r.goodbye(limit))).await;
            }
        }
    }

    /// Direct routes to `nodes`, in rounds: with `cluster`, each round's
    /// nodes tell of the next.
    async fn open_each(
        &self,
        nodes: &[NodeName],
        cluster: bool,
        said: &(impl Fn(&str) + Sync),
    ) -> Result<Vec<Route>, Unreached> {
        let mut round: Vec<NodeName> = Vec::new();
        for n in nodes {
            if !round.contains(n) {
                round.push(n.clone());
            }
        }
        let (mut routes, mut failures, mut found) = (Vec::new(), Vec::new(), Vec::new());
        while !round.is_empty() {
            let tried = join_all(
                round
                    .iter()
                    .map(|n| self.peer.connect_remembered(n, self.ports.of(n))),
            )
            .await;
            for (name, result) in round.iter().zip(tried) {
                match result {
                    Ok((conn, port)) => {
                        found.push((name.clone(), port));
                        said(&format!("Connected to {name}"));
                        routes.push(Route::Direct(conn));
                    }
                    Err(e) => failures.push((name.to_string(), Some(e.to_string()))),
                }
            }
            round = Vec::new();
            if cluster && failures.is_empty() {
                round = self.cluster_peers(&routes).await;
            }
        }
        self.ports.remember(&found);
        if failures.is_empty() {
            return Ok(routes);
        }
        let mut unreached: Unreached = routes
            .iter()
            .map(|r| (r.node().to_string(), None))
            .collect();
        unreached.extend(failures);
        Err(unreached)
    }

    /// Nodes the routes' nodes know that no route leads to yet.
    async fn cluster_peers(&self, routes: &[Route]) -> Vec<NodeName> {
        let seen: Vec<&NodeName> = routes.iter().map(Route::node).collect();
        let known = join_all(routes.iter().map(|r| connected_nodes(r, self.timeout))).await;
        let mut round: Vec<NodeName> = Vec::new();
        for name in known.into_iter().flatten().flatten() {
            let Ok(name) = name.parse::<NodeName>() else {
                continue;
            };
            if !seen.contains(&&name) && !round.contains(&name) && name != *self.peer.name() {
                round.push(name);
            }
        }
        round
    }

    /// Routes to `nodes` (or with `cluster`, the gateway's whole cluster),
    /// each through the gateway `via`.
    async fn open_through(
        &self,
        via: &NodeName,
        nodes: &[NodeName],
        cluster: bool,
        said: &(impl Fn(&str) + Sync),
    ) -> Result<Vec<Route>, Unreached> {
        let targets = match cluster {
            true => Targets::Cluster,
            false => Targets::Named(nodes.to_vec()),
        };
        let (gateway, reached) = self.open_gateway(via, &targets).await.map_err(|e| {
            let why = match e {
                GatewayError::Connect(e) => e.to_string(),
                GatewayError::Relay(e) => {
                    format!("the relay did not start on the gateway: {e}")
                }
            };
            vec![(via.to_string(), Some(why))]
        })?;
        said(&format!("Connected to {via} (the gateway)"));
        let why = format!(
            "the gateway `{via}` cannot reach it within {:.1} s (is it up, with the cluster's cookie?)",
            gateway::reach_time(self.timeout).as_secs_f64()
        );
        let unreached: Unreached = reached
            .iter()
            .map(|(node, ok)| (node.to_string(), (!ok).then(|| why.clone())))
            .collect();
        if unreached.iter().any(|(_, why)| why.is_some()) {
            return Err(unreached);
        }
        Ok(reached
            .into_iter()
            .map(|(node, _)| Route::via(gateway.clone(), node))
            .collect())
    }

    /// `node` through the gateway `via` (connected again if its connection
    /// is gone).
    async fn open_via(&self, via: &NodeName, node: &NodeName) -> Result<Route, ConnectError> {
        let opening = self.opening.lock().await;
        let held = self.gateway().filter(|g| g.closed_reason().is_none());
        let gateway = match held {
            Some(gateway) => gateway,
            None => {
                let targets = Targets::Named(Vec::new());
                let (gateway, _) = self
                    .open_gateway(via, &targets)
                    .await
                    .map_err(|e| match e {
                        GatewayError::Connect(e) => e,
                        GatewayError::Relay(e) => ConnectError::Handshake {
                            node: via.to_string(),
                            detail: format!("the relay did not start: {e}"),
                        },
                    })?;
                gateway
            }
        };
        drop(opening);
        let route = Route::via(gateway, node.clone());
        // Whether the gateway reaches it (connecting if it must).
        route
            .call(Call::new("erlang", "node", Vec::new()), self.timeout)
            .await
            .map_err(|e| ConnectError::Refused {
                node: node.to_string(),
                reason: format!("the gateway `{via}` cannot reach it: {e}"),
            })?;
        Ok(route)
    }

    /// Connects to the gateway `via` (trying the port it had last time
    /// first) and starts its relay, which looks for `targets`: each, and
    /// whether the gateway reaches it.
    async fn open_gateway(
        &self,
        via: &NodeName,
        targets: &Targets,
    ) -> Result<(Arc<Gateway>, Vec<(NodeName, bool)>), GatewayError> {
        let (conn, port) = self
            .peer
            .connect_remembered(via, self.ports.of(via))
            .await
            .map_err(GatewayError::Connect)?;
        self.ports.remember(&[(via.clone(), port)]);
        let (gateway, reached) = Gateway::open(conn, targets, self.timeout)
            .await
            .map_err(GatewayError::Relay)?;
        *self.gateway.lock().unwrap_or_else(|p| p.into_inner()) = Some(gateway.clone());
        Ok((gateway, reached))
    }
}

/// The nodes `route`'s node is connected to (visible ones).
async fn connected_nodes(route: &Route, timeout: Duration) -> Result<Vec<String>, CallError> {
    let t = route
        .call(Call::new("erlang", "nodes", vec![]), timeout)
        .await?;
    Ok(crate::peer::term::as_list(&t)
        .unwrap_or_default()
        .iter()
        .filter_map(|n| crate::peer::term::as_atom(n).ok().map(str::to_owned))
        .collect())
}
