//! [`Instruction::Finish`](crate::deploy::plan::Instruction::Finish): the
//! run's single way out, whatever stopped it. Undoes every node changed if
//! the run stopped past the point of no return, records what each node
//! runs for the next run's flight, writes the manifest's outcome, releases
//! every lock taken, and reports.

use crate::deploy::goal::Target;
use crate::deploy::migrate::Migration;
use crate::deploy::part::Part;
use crate::deploy::remote::State;
use crate::deploy::report::{Outcome, Report};
use crate::deploy::run::{Finished, Run, Stop};
use crate::store::NodeOutcome;
use futures::future::join_all;
use std::time::Instant;

impl Run<'_> {
    /// The single way out: undo if needed, record, release, report.
    pub async fn finish(mut self, result: Result<(), Stop>) -> Finished {
        let reached = result.is_ok() && !self.opts.dry_run;
        let mut outcome = match result {
            Ok(()) => Outcome::Success,
            Err(stop) => {
                if stop.undo {
                    self.undo().await;
                }
                stop.outcome
            }
        };
        if self.parts.iter().any(|p| !p.report.not_restored.is_empty()) {
            outcome = Outcome::NotRestored;
        }
        self.remember(outcome);
        self.keep(outcome).await;
        for p in &self.parts {
            if p.locked {
                p.remote.release(&self.lock);
            }
        }
        let observing = self
            .parts
            .iter_mut()
            .filter_map(|p| p.observing.take())
            .collect();
        let mut report = Report::new(
            self.parts.into_iter().map(|p| p.report).collect(),
            outcome,
            self.manifest.as_ref().map(|m| m.id.clone()),
        );
        if self.opts.dry_run {
            report.as_dry_run();
        }
        report.running_ms = self.running.map(|d| d.as_secs_f64() * 1e3);
        report.fail_if_died();
        Finished {
            report,
            manifest: self.manifest,
            reached,
            observing,
        }
    }

    /// Records what each node inspected runs now, for the next run's
    /// flight: as inspected, or as loaded if this run succeeded; a node
    /// changed and then undone is unknown for the modules it changed.
    fn remember(&self, outcome: Outcome) {
        let mut nodes = Vec::new();
        for p in self
            .parts
            .iter()
            .filter(|p| p.states.len() == p.goals.len())
        {
            let mut states: Vec<(String, Option<State>)> = p
                .goals
                .iter()
                .zip(&p.states)
                .map(|(g, s)| (g.module.clone(), *s))
                .collect();
            for c in p.changes.iter().filter(|_| p.changed) {
                states[c.goal].1 = match (outcome, &p.goals[c.goal].target) {
                    (Outcome::Success, Target::Load(m)) => Some(State::Loaded(m.md5)),
                    (Outcome::Success, Target::Remove) => Some(State::Absent),
                    _ => None,
                };
            }
            nodes.push((p.node().to_owned(), states));
        }
        if !nodes.is_empty() {
            crate::deploy::belief::remember(self.store, nodes);
        }
    }

    /// Puts every node this run changed back to its priors.
    async fn undo(&mut self) {
        crate::fault::hold("undo").await;
        let (force, ui, care) = (self.opts.force, self.ui, self.opts.care);
        let store = self.store;
        let back = self.migration.reversed();
        join_all(self.parts.iter_mut().filter(|p| p.changed).map(|p| {
            let migration = match p.keeper.take() {
                Some(keeper) => Migration::Release(keeper),
                None => back.clone(),
            };
            let remote = p.remote.clone();
            crate::deploy::step::undo::undo(remote, undo_view(p, migration, care), store, force, ui)
        }))
        .await;
    }

    /// Writes the manifest's outcome per node, once the sent binaries it
    /// names are safely stored.
    async fn keep(&mut self, outcome: Outcome) {
        let started = Instant::now();
        if let Some(keeping) = self.keeping.take() {
            match keeping.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => self.ui.warn(&format!(
                    "{e}; the next snapshot will fetch these modules from the nodes"
                )),
                Err(e) => self
                    .ui
                    .warn(&format!("storing the deployed modules failed: {e}")),
            }
        }
        let Some(mut manifest) = self.manifest.take() else {
            return;
        };
        manifest.nodes = self.records(|p| node_outcome(p, outcome));
        if manifest.nodes.is_empty() {
            // A flight found the node already as wanted: nothing to record.
            if let Err(e) = self.store.discard(&manifest.id) {
                self.ui.warn(&e.to_string());
            }
            return;
        }
        // Every node applied (or untouched) reads to a rollback as the
        // pending manifest already on disk does: that outcome need not wait
        // for the disk. Any other must survive a crash.
        let applied = manifest
            .nodes
            .values()
            .all(|n| n.outcome == NodeOutcome::Applied);
        let saved = match applied {
            true => self.store.save_unsynced(&manifest),
            false => self.store.save(&manifest),
        };
        if let Err(e) = saved {
            self.ui.warn(&format!(
                "{e}; the snapshot may show this deploy as pending"
            ));
        }
        if self.opts.keep > 0 && self.store.prune_due(self.opts.keep) {
            if let Err(e) = self.store.prune(self.opts.keep) {
                self.ui.warn(&format!("pruning the snapshot store: {e}"));
            }
        }
        self.manifest = Some(manifest);
        tracing::debug!(
            "storing the sent modules and the manifest took {:.1} ms more",
            started.elapsed().as_secs_f64() * 1e3
        );
    }
}

/// What the manifest records of `p`'s node once the run is over.
fn node_outcome(p: &Part, outcome: Outcome) -> NodeOutcome {
    match (p.changed, outcome) {
        (false, Outcome::Success) | (true, Outcome::Success) => NodeOutcome::Applied,
        (false, _) => NodeOutcome::Refused,
        (true, _) if p.report.not_restored.is_empty() => NodeOutcome::Undone,
        (true, _) => NodeOutcome::NotUndone,
    }
}

fn undo_view(
    p: &mut Part,
    migration: Migration,
    care: crate::deploy::migrate::Care,
) -> crate::deploy::step::undo::UndoPart<'_> {
    crate::deploy::step::undo::UndoPart {
        migration,
        care,
        report: &mut p.report,
        priors: p
            .changes
            .iter()
            .map(|c| (p.goals[c.goal].module.clone(), c.prior.clone()))
            .collect(),
    }
}
