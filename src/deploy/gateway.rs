//! A session's way to its targets through one gateway node (`--via`): the
//! only connection, to the gateway, and its relay ([`crate::dist::relay`]),
//! which finds the targets and carries every step to them.

use super::remote::Remote;
use super::report::NodeReport;
use super::Options;
use crate::dist::{CallError, ConnectError, Gateway, Link, NodeName, Peer, Targets};
use crate::output::Ui;
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;

/// Why the gateway could not be had.
#[derive(Debug)]
pub enum OpenError {
    /// Not reached.
    Connect(ConnectError),
    /// Reached, but its relay did not start.
    Relay(CallError),
}

/// Connects to the gateway `via` (trying the port it had last time first)
/// and starts its relay, which looks for `targets`: each, and whether the
/// gateway reaches it.
pub async fn open(
    peer: &Peer,
    store: &Store,
    via: &NodeName,
    targets: &Targets,
    timeout: Duration,
) -> Result<(Arc<Gateway>, Vec<(NodeName, bool)>), OpenError> {
    let remembered = store.ports();
    let (conn, port) = peer
        .connect_remembered(via, remembered.get(&via.to_string()).copied())
        .await
        .map_err(OpenError::Connect)?;
    if remembered.get(&via.to_string()) != Some(&port) {
        let mut ports = remembered;
        ports.insert(via.to_string(), port);
        store.remember_ports(&ports);
    }
    Gateway::open(conn, targets, timeout)
        .await
        .map_err(OpenError::Relay)
}

/// The targets, `nodes` or with `--cluster` the gateway's whole cluster,
/// each reached through the gateway `via`; or a report for every node
/// when one cannot be reached.
pub async fn connect_targets(
    peer: &Peer,
    store: &Store,
    via: &NodeName,
    nodes: &[NodeName],
    opts: &Options,
    ui: &Ui,
) -> Result<(Vec<Remote>, Arc<Gateway>), Vec<NodeReport>> {
    let fail = |detail: String| {
        let mut r = NodeReport::new(&via.to_string());
        r.fail(None, detail);
        vec![r]
    };
    let targets = match opts.cluster {
        true => Targets::Cluster,
        false => Targets::Named(nodes.to_vec()),
    };
    let (gateway, reached) = match open(peer, store, via, &targets, opts.timeout).await {
        Ok(opened) => opened,
        Err(OpenError::Connect(e)) => return Err(fail(e.to_string())),
        Err(OpenError::Relay(e)) => {
            return Err(fail(format!("the relay did not start on the gateway: {e}")))
        }
    };
    ui.line(&format!("Connected to {via} (the gateway)"));
    let mut remotes = Vec::new();
    let mut reports = Vec::new();
    for (node, ok) in reached {
        let mut report = NodeReport::new(&node.to_string());
        if !ok {
            report.fail(
                None,
                format!(
                    "the gateway `{via}` cannot reach it within {:.1} s (is it up, with the cluster's cookie?)",
                    crate::dist::relay::reach_time(opts.timeout).as_secs_f64()
                ),
            );
        }
        reports.push(report);
        remotes.push(Remote {
            link: Link::via(gateway.clone(), node),
            timeout: opts.timeout,
        });
    }
    if reports.iter().any(|r| !r.ok) {
        return Err(reports);
    }
    Ok((remotes, gateway))
}
