//! A run under way: its plan, every node's part, and what the instructions
//! so far left for those to come; the state [`super::driver`] folds the
//! plan over and every step ([`super::step`]) reads and writes.

use super::goal::Kind;
use super::migrate::Migration;
use super::options::Options;
use super::part::Part;
use super::plan::Plan;
use super::remote::LockRequest;
use super::report::{Outcome, Report};
use crate::beam::Md5;
use crate::output::Ui;
use crate::peer::CallError;
use crate::store::{Manifest, SnapshotError, Store};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Why the run stopped early.
pub(super) struct Stop {
    pub outcome: Outcome,
    /// Nodes may have changed: undo them.
    pub undo: bool,
}

/// Every node's answer to a step (`None`: a node sent nothing), and
/// whether the word was go.
pub(super) type Answers<T> = (Vec<Option<Result<T, CallError>>>, bool);

/// A request's answer, on its way.
pub(super) type Answer<T> = BoxFuture<'static, Result<T, CallError>>;

/// What a run leaves: the report, and for a deploy its manifest.
pub struct Finished {
    pub report: Report,
    pub manifest: Option<Manifest>,
    /// Every node came to its goals (but for those that could not be
    /// had: `not_restored`); nothing was stopped or undone.
    pub reached: bool,
    /// The watches after the change that the nodes report apart.
    pub observing: Vec<super::observing::Observing>,
}

/// A run under way: the plan, every node's part, and what the
/// instructions so far left for those to come.
pub(super) struct Run<'a> {
    pub kind: Kind,
    pub plan: Plan,
    /// What the processes of changed modules go through.
    pub migration: Migration,
    pub parts: Vec<Part>,
    pub store: &'a Store,
    pub opts: &'a Options,
    pub ui: &'a Ui,
    pub lock: LockRequest,
    pub manifest: Option<Manifest>,
    /// The sent binaries on their way into the store.
    pub keeping: Option<tokio::task::JoinHandle<Result<(), SnapshotError>>>,
    /// Whether the snapshot is on disk, once [`Instruction::Snapshot`] ran.
    pub written: Result<(), Outcome>,
    /// Past the point of no return: a stop undoes.
    pub past_no_return: bool,
    started: Instant,
    /// When every node answered the apply step.
    pub running: Option<Duration>,
    lap: Instant,
}

impl<'a> Run<'a> {
    /// A run of `plan` over `parts`, started at `started`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: Kind,
        plan: Plan,
        parts: Vec<Part>,
        store: &'a Store,
        lock: LockRequest,
        opts: &'a Options,
        ui: &'a Ui,
        started: Instant,
    ) -> Run<'a> {
        let migration = match (opts.code_change, kind) {
            (false, _) => Migration::Off,
            (true, Kind::Deploy) => Migration::Up,
            (true, Kind::Rollback) => Migration::Down,
        };
        Run {
            kind,
            plan,
            migration,
            parts,
            store,
            opts,
            ui,
            lock,
            manifest: None,
            keeping: None,
            written: Ok(()),
            past_no_return: false,
            started,
            running: None,
            lap: Instant::now(),
        }
    }
}

impl Run<'_> {
    /// Every node answered its apply step (or landed its flight).
    pub async fn applied(&mut self) -> Result<(), Stop> {
        self.running = Some(self.started.elapsed());
        self.lap("apply");
        crate::fault::hold("applied").await;
        self.check_interrupt()
    }

    /// Why the run stops with `outcome`: past the point of no return, it
    /// undoes.
    pub fn stop(&self, outcome: Outcome) -> Stop {
        Stop {
            outcome,
            undo: self.past_no_return,
        }
    }

    /// A stop if Ctrl-C came.
    pub fn check_interrupt(&self) -> Result<(), Stop> {
        match self.opts.interrupted() {
            true => Err(self.stop(Outcome::Interrupted)),
            false => Ok(()),
        }
    }

    /// Sends what gateways queued for their targets (`--via`): one
    /// message for every target of a step.
    pub fn send_queued(&self) {
        for p in &self.parts {
            p.remote.link.flush();
        }
    }

    /// Logs how long a step took, for `-v`.
    pub fn lap(&mut self, name: &str) {
        tracing::debug!(
            "step {name} took {:.1} ms",
            self.lap.elapsed().as_secs_f64() * 1e3
        );
        self.lap = Instant::now();
    }

    /// The MD5s the store holds of each goal's module, looked up once.
    pub fn known_md5s(&self) -> HashMap<&str, Vec<Md5>> {
        let mut known = HashMap::new();
        for g in self.parts.iter().flat_map(|p| &p.goals) {
            known
                .entry(g.module.as_str())
                .or_insert_with(|| self.store.known_md5s(&g.module));
        }
        known
    }
}

/// Of the outcomes that stop the run, the one to report: a refusal says
/// less than a lock held or a failure, which say as much as each other
/// (the last one counts).
pub(super) fn stopping(outcomes: Vec<Outcome>) -> Option<Outcome> {
    outcomes
        .iter()
        .rev()
        .find(|o| **o != Outcome::Refused)
        .or(outcomes.first())
        .copied()
}
