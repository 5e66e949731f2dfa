//! `--rollback`: per node, the newest deploy still applied there is run
//! backwards through the same engine as a deploy, its priors as the goal.
//! Each node's part of a manifest is marked rolled back on its own, so
//! rolling back one node leaves the others' parts to roll back later.

use super::goal::{Goal, Kind, Target, Work};
use super::options::Options;
use super::report::{Outcome, Report};
use super::session::Session;
use crate::beam::Md5;
use crate::output::Ui;
use crate::store::{Manifest, ModuleRecord, NodeOutcome, Prior, SnapshotError, Store};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RollbackError {
    #[error("no snapshot to roll back for {nodes}; `hotswap-node snapshots` lists what there is")]
    NoSnapshot { nodes: String },
    #[error("snapshot `{id}` cannot be restored: `{module}`: {detail}")]
    Damaged {
        id: String,
        module: String,
        detail: String,
    },
    #[error(transparent)]
    Store(#[from] SnapshotError),
}

/// Each node's newest applied deploy, with every binary it needs read and
/// checked: a damaged store refuses the rollback before any node is touched.
pub struct Restoration {
    candidates: BTreeMap<String, Manifest>,
    goals: BTreeMap<String, (Vec<Goal>, Vec<String>)>,
}

impl Restoration {
    pub fn read(store: &Store, nodes: &[String]) -> Result<Restoration, RollbackError> {
        let candidates = store.rollback_candidates(nodes)?;
        if candidates.is_empty() {
            return Err(RollbackError::NoSnapshot {
                nodes: nodes.join(", "),
            });
        }
        let mut goals = BTreeMap::new();
        for (node, manifest) in &candidates {
            let record = &manifest.nodes[node];
            let mut node_goals = Vec::new();
            let mut unrestorable = Vec::new();
            for m in &record.modules {
                match goal(m, store).map_err(|detail| RollbackError::Damaged {
                    id: manifest.id.clone(),
                    module: m.module.clone(),
                    detail,
                })? {
                    Some(g) => node_goals.push(g),
                    None => unrestorable.push(m.module.clone()),
                }
            }
            goals.insert(node.clone(), (node_goals, unrestorable));
        }
        Ok(Restoration { candidates, goals })
    }

    /// The nodes that have something to roll back.
    pub fn nodes(&self) -> Vec<String> {
        self.candidates.keys().cloned().collect()
    }
}

/// What a module must go back to; `None` when its prior was never had.
fn goal(m: &ModuleRecord, store: &Store) -> Result<Option<Goal>, String> {
    let expect = m.deployed.as_deref().and_then(Md5::from_hex);
    let target = match &m.prior {
        Prior::Absent => Target::Remove,
        prior => match super::step::snapshot::stored_module(&m.module, prior, store)? {
            None => return Ok(None),
            Some(module) => Target::Load(module),
        },
    };
    Ok(Some(Goal {
        module: m.module.clone(),
        target,
        expect,
    }))
}

/// Rolls back `restoration` on the session's nodes, and marks each node's part
/// of its manifest rolled back where that node is back on its priors.
pub async fn rollback(
    session: &Session,
    restoration: Restoration,
    opts: &Options,
    ui: &Ui,
) -> Result<Report, RollbackError> {
    let Restoration {
        candidates,
        mut goals,
    } = restoration;
    for (node, m) in &candidates {
        ui.line(&format!(
            "Rolling back {node} to before snapshot {} ({})",
            m.id,
            m.time()
        ));
    }
    let work = session
        .remotes()
        .iter()
        .filter_map(|remote| {
            let (goals, unrestorable) = goals.remove(&remote.node())?;
            Some(Work {
                remote: remote.clone(),
                goals,
                unrestorable,
            })
        })
        .collect();
    let lock = session.lock_request();
    let store = session.store();
    let finished = super::driver::run(Kind::Rollback, work, store, lock, opts, ui).await;
    let mut report = finished.report;
    // A run stopped anywhere changed no node, or undid what it changed:
    // every node's part is still to roll back.
    if finished.reached {
        crate::fault::hold("rollback_ran").await;
        // A node with a module not restored is not back on its priors:
        // the store keeps its part as applied, for the next rollback.
        for n in report.nodes.iter_mut() {
            n.rolled_back = n.ok && n.not_restored.is_empty();
        }
        let marked = mark(
            store,
            report
                .nodes
                .iter()
                .filter(|n| n.rolled_back)
                .map(|n| &n.node),
            &candidates,
        );
        if let Err(e) = marked {
            // The nodes changed: say what they run, and that the store
            // still shows the deploy as applied there (a later rollback
            // finds them changed since, and refuses).
            report.error = Some(format!(
                "{e}; the store still shows the rolled-back deploy as applied"
            ));
            report.ok = false;
            report.outcome = Outcome::Unrecorded;
        }
    }
    report.snapshot = candidates.values().map(|m| m.id.clone()).max();
    Ok(report)
}

/// Marks `nodes`' parts rolled back, saving each touched manifest once.
fn mark<'a>(
    store: &Store,
    nodes: impl Iterator<Item = &'a String>,
    candidates: &BTreeMap<String, Manifest>,
) -> Result<(), SnapshotError> {
    let mut touched: BTreeMap<String, Manifest> = BTreeMap::new();
    for node in nodes {
        let Some(m) = candidates.get(node) else {
            continue;
        };
        let entry = touched.entry(m.id.clone()).or_insert_with(|| m.clone());
        if let Some(r) = entry.nodes.get_mut(node) {
            r.outcome = NodeOutcome::RolledBack;
        }
    }
    for m in touched.values() {
        store.save(m)?;
    }
    Ok(())
}
