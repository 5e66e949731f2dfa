//! The driver: folds a run's [`Plan`] over its nodes, and is the single
//! way out. All nodes go through each instruction together, each request
//! one round trip per node. Whatever stops the run after the point of no
//! return undoes every node this run changed, by applying that node's
//! priors the same way ([`super::step::undo`]); before it, nothing changed.
//!
//! Deploy and rollback are this one engine: a deploy drives it with the
//! local build as every node's goal, a rollback with each node's priors.

pub use super::goal::{Goal, Kind, Target, Work};
use super::migrate::Migration;
use super::part::Part;
use super::plan::{Instruction, Plan};
use super::remote::LockRequest;
use super::report::{Outcome, Report};
use super::step::apply::Applied;
use super::step::flight::Flew;
use super::Options;
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
    /// The apply requests sent by [`Instruction::Prepare`], one per part
    /// (`None`: a node without changes), until the word.
    pub prepared: Vec<super::step::word::Sent<Applied>>,
    /// Whether the snapshot is on disk, once [`Instruction::Snapshot`] ran.
    pub written: Result<(), Outcome>,
    /// The apply answers, once the word was said, and whether it was go.
    pub answers: Option<Answers<Applied>>,
    /// Past the point of no return: a stop undoes.
    pub past_no_return: bool,
    started: Instant,
    /// When every node answered the apply step.
    pub running: Option<Duration>,
    lap: Instant,
}

/// Brings every node of `work` to its goals, or leaves them as they were.
pub async fn run(
    kind: Kind,
    work: Vec<Work>,
    store: &Store,
    lock: LockRequest,
    opts: &Options,
    ui: &Ui,
) -> Finished {
    let started = Instant::now();
    let plan = Plan::of(kind, opts);
    let migration = match (opts.code_change, kind) {
        (false, _) => Migration::Off,
        (true, Kind::Deploy) => Migration::Up,
        (true, Kind::Rollback) => Migration::Down,
    };
    tracing::debug!("plan: {plan}");
    let plan_has_after = plan.has(Instruction::After);
    let mut run = Run {
        kind,
        plan,
        migration,
        parts: work.into_iter().map(Part::new).collect(),
        store,
        opts,
        ui,
        lock,
        manifest: None,
        keeping: None,
        prepared: Vec::new(),
        written: Ok(()),
        answers: None,
        past_no_return: false,
        started,
        running: None,
        lap: Instant::now(),
    };
    let remotes: Vec<_> = run.parts.iter().map(|p| p.remote.clone()).collect();
    let result = run.drive().await;
    let mut finished = run.finish(result).await;
    finished.report.elapsed = started.elapsed();
    finished.report.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    if let (Some(hook), true) = (&opts.after, finished.reached && plan_has_after) {
        if !super::step::after::call(hook, &remotes, &mut finished.report.nodes).await {
            finished.report.fail_after();
        }
    }
    finished
}

impl Run<'_> {
    /// Folds the plan up to its way out ([`Instruction::Finish`], which
    /// [`Run::finish`] is, whatever stopped the run).
    async fn drive(&mut self) -> Result<(), Stop> {
        let plan = self.plan.clone();
        let mut rest = plan.instructions();
        while let Some((&instruction, after)) = rest.split_first() {
            rest = after;
            match instruction {
                Instruction::Lock => match self.fly().await? {
                    // The lock goes with the inspect request.
                    Flew::NotTried => {}
                    Flew::Inspected => {
                        self.lap("inspect");
                        rest = plan.after(Instruction::Inspect);
                    }
                    Flew::Landed => {
                        self.past_no_return = true;
                        self.applied().await?;
                        rest = plan.after(Instruction::Migrate);
                    }
                },
                Instruction::Inspect => {
                    self.inspect().await?;
                    self.lap("inspect");
                }
                Instruction::Show => self.show().await,
                Instruction::Prepare => {
                    if self.parts.iter().all(|p| p.changes.is_empty()) {
                        return Ok(());
                    }
                    self.check_interrupt()?;
                    self.prepare();
                }
                Instruction::Snapshot => self.snapshot_while_prepared().await,
                Instruction::PointOfNoReturn => self.point_of_no_return().await?,
                Instruction::Apply => {
                    self.apply()?;
                    self.applied().await?;
                }
                // The node migrates inside its apply step: taken in with it.
                Instruction::Migrate => {}
                Instruction::Verify => {
                    self.verify().await?;
                    self.lap("verify");
                    self.check_interrupt()?;
                }
                Instruction::Finish | Instruction::After => return Ok(()),
            }
        }
        Ok(())
    }

    /// Every node answered its apply step (or landed its flight).
    async fn applied(&mut self) -> Result<(), Stop> {
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
