//! The one engine behind `deploy` and `--rollback`: a transaction over
//! nodes, read top to bottom in [`run`]:
//!
//! inspect (lock, state, old code) → snapshot → apply → verify → finish,
//!
//! with one abort path: whatever stops it after a node changed undoes
//! every node this run changed, by applying that node's priors the same
//! way. All nodes go through each step together, and each step costs one
//! round trip per node. Nothing changes on any node before every node has
//! passed every check; `--force` kills processes only in the apply step,
//! right before that node loads.
//!
//! Where the store believes it knows what the nodes run (what the last run
//! left there), a deploy goes faster: inspect and apply fly together
//! ([`super::flight`]). Each node prepares the changes that belief implies
//! (`code:prepare_loading/1`, most of a load's work) while the snapshot of
//! that belief is written, and loads on the tool's word: to one node, the
//! word follows the request at once; to several, it goes to each node once
//! every node has said it prepared. Nodes found running other code than
//! believed get their changes, and their snapshot, the usual way.

use super::belief::Beliefs;
use super::flight::{Flight, Ticket};
pub use super::goal::{Goal, Kind, Target, Work};
use super::migrate::Migration;
use super::remote::{
    Applied, Awaiting, Found, Held, Inspected, Lingering, LockRequest, Remote, State, Step,
};
use super::report::{describe_process, Failure, NodeReport, Outcome, Report};
use super::Options;
use crate::beam::{Md5, Module};
use crate::dist::term::{Encoded, Term};
use crate::dist::{Bindings, CallError, Listener};
use crate::output::Ui;
use crate::store::{Manifest, ModuleRecord, NodeOutcome, NodeRecord, Prior, SnapshotError, Store};
use futures::future::{join_all, BoxFuture, Either};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// A goal that changes the node, with what the node had before.
#[derive(Debug, Clone)]
struct Change {
    goal: usize,
    was: State,
    /// The node's own copy of what it ran, until the snapshot takes it.
    copy: Option<Vec<u8>>,
    prior: Prior,
}

/// One node's part in the run.
struct Part {
    remote: Remote,
    goals: Vec<Goal>,
    changes: Vec<Change>,
    /// The node's lock is ours, to release at the end.
    locked: bool,
    /// Something may have been loaded here in this run.
    changed: bool,
    /// What the node ran of each goal when inspected.
    states: Vec<Option<State>>,
    /// What the node ran of each changed module right after its apply step.
    running: Option<Vec<(String, Option<Md5>)>>,
    /// The node's `code_change` failed after it loaded: the process
    /// holding its processes suspended until the undo.
    keeper: Option<Term>,
    report: NodeReport,
}

/// Why the run stopped early.
struct Stop {
    outcome: Outcome,
    /// Nodes may have changed: undo them.
    undo: bool,
}

impl Stop {
    fn before_change(outcome: Outcome) -> Stop {
        Stop {
            outcome,
            undo: false,
        }
    }

    fn after_change(outcome: Outcome) -> Stop {
        Stop {
            outcome,
            undo: true,
        }
    }
}

/// How the flight went ([`super::flight`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flew {
    /// Not tried: not a deploy to nodes whose states are believed known.
    NotTried,
    /// The nodes were as believed, and loaded.
    Landed,
    /// Some node was not as believed, and none changed: the flight was
    /// every node's inspect step.
    Inspected,
}

/// A step's answer, on its way.
type Answer<T> = BoxFuture<'static, Result<T, CallError>>;

/// Where a step to one of several nodes (a flight, an apply step) stands
/// once the node has said it prepared, or answered without.
enum Heard<T> {
    Prepared(Answer<T>),
    Answered(Result<T, CallError>),
}

/// What a run leaves: the report, and for a deploy its manifest.
pub struct Finished {
    pub report: Report,
    pub manifest: Option<Manifest>,
    /// Every node came to its goals (but for those that could not be
    /// had: `not_restored`); nothing was stopped or undone.
    pub reached: bool,
}

struct Transaction<'a> {
    kind: Kind,
    /// What the processes of changed modules go through.
    migration: Migration,
    parts: Vec<Part>,
    store: &'a Store,
    opts: &'a Options,
    ui: &'a Ui,
    lock: LockRequest,
    manifest: Option<Manifest>,
    keeping: Option<tokio::task::JoinHandle<Result<(), SnapshotError>>>,
    started: Instant,
    /// When every node answered the apply step.
    running: Option<std::time::Duration>,
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
    let migration = match (opts.code_change, kind) {
        (false, _) => Migration::Off,
        (true, Kind::Deploy) => Migration::Up,
        (true, Kind::Rollback) => Migration::Down,
    };
    let mut t = Transaction {
        kind,
        migration,
        parts: work.into_iter().map(Part::new).collect(),
        store,
        opts,
        ui,
        lock,
        manifest: None,
        keeping: None,
        started,
        running: None,
        lap: Instant::now(),
    };
    let result = t.drive().await;
    let mut finished = t.finish(result).await;
    finished.report.elapsed = started.elapsed();
    finished.report.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    finished
}

impl Part {
    fn new(work: Work) -> Part {
        let mut report = NodeReport::new(&work.remote.node());
        report.not_restored = work.unrestorable;
        Part {
            report,
            remote: work.remote,
            goals: work.goals,
            changes: Vec::new(),
            locked: false,
            changed: false,
            states: Vec::new(),
            running: None,
            keeper: None,
        }
    }

    fn node(&self) -> &str {
        &self.report.node
    }
}

impl Transaction<'_> {
    async fn drive(&mut self) -> Result<(), Stop> {
        let flew = self.fly().await?;
        if flew != Flew::Landed {
            if flew == Flew::NotTried {
                self.inspect().await?;
            }
            self.step("inspect");
            if self.opts.dry_run {
                self.plan_migrations().await;
                return self.show_plan();
            }
            if self.parts.iter().all(|p| p.changes.is_empty()) {
                return Ok(());
            }
            self.check_interrupt(false)?;
            self.apply().await?;
        }
        self.running = Some(self.started.elapsed());
        self.step("apply");
        crate::fault::hold("applied").await;
        self.check_interrupt(true)?;
        if self.opts.verify || self.kind == Kind::Rollback {
            self.verify().await?;
            self.step("verify");
            self.check_interrupt(true)?;
        }
        Ok(())
    }

    /// A deploy to nodes whose states the store believes it knows sends
    /// each node inspect and apply in one request, and takes its snapshot
    /// from that belief meanwhile ([`super::flight`]). A node loads only if
    /// the belief holds, once the snapshot is on disk and, with several
    /// nodes, once every node has prepared; otherwise none changes, and
    /// the answers are the inspect step's.
    async fn fly(&mut self) -> Result<Flew, Stop> {
        let Some(beliefs) = self.beliefs() else {
            return Ok(Flew::NotTried);
        };
        self.check_interrupt(false)?;
        let go = awaiting(&self.lock, "flight");
        let lone = self.parts.len() == 1;
        let flights = self.send_flights(&beliefs, go, !lone);
        self.send_queued();
        let written = self.snapshot().and_then(|()| self.check_interrupt(false));
        self.step("snapshot");
        crate::fault::hold("flight_sent").await;
        let (answers, said_go) = match lone {
            true => {
                self.parts[0].remote.say(go, written.is_ok());
                let answers = join_all(flights.into_iter().map(|(_, answer)| answer)).await;
                (answers, written.is_ok())
            }
            false => {
                let steps = flights.into_iter().map(Some).collect();
                let (answers, said_go) = self.gather(steps, go, written.is_ok()).await;
                (answers.into_iter().flatten().collect(), said_go)
            }
        };
        for (p, answer) in self.parts.iter_mut().zip(&answers) {
            p.locked = !matches!(answer, Ok(Flight::Locked(_)));
            tracing::debug!("flight to {}: {}", p.node(), flight_text(answer));
        }
        // Told to abort, the nodes changed nothing.
        written?;
        if !said_go {
            self.check_interrupt(false)?;
        }
        let (kind, opts, ui) = (self.kind, self.opts, self.ui);
        let landings = join_all(
            self.parts
                .iter_mut()
                .zip(answers)
                .map(|(p, answer)| land(p, answer, said_go, kind, opts, ui)),
        )
        .await;
        let inspected = landings.contains(&Ok(Flew::Inspected));
        match stopping(landings.into_iter().filter_map(Result::err).collect()) {
            Some(outcome) => Err(Stop {
                outcome,
                undo: self.parts.iter().any(|p| p.changed),
            }),
            None if inspected => Ok(Flew::Inspected),
            None => Ok(Flew::Landed),
        }
    }

    /// Sends every node its flight (`telling`: one that says when it has
    /// prepared, for a deploy to several nodes); each future waits for an
    /// answer.
    fn send_flights(
        &self,
        beliefs: &[Vec<State>],
        go: Awaiting,
        telling: bool,
    ) -> Vec<(Option<Listener>, Answer<Flight>)> {
        let mut loads: HashMap<PlanKey, Encoded> = HashMap::new();
        let known = self.known_md5s();
        let timeout = self.parts[0].remote.timeout;
        self.parts
            .iter()
            .zip(beliefs)
            .map(|(p, believed)| {
                let (want, known) = wanted(p, &known);
                let steps = steps(p);
                let load = loads
                    .entry(plan_key(p))
                    .or_insert_with(|| super::remote::loads_payload(&steps));
                let migrate = self
                    .migration
                    .for_loads(super::remote::loads_of(&steps).into_iter())
                    .term(timeout, self.opts.care);
                let ticket = Ticket {
                    lock: &self.lock,
                    want: &want,
                    known: &known,
                    believed,
                    steps: &steps,
                    load,
                    force: self.opts.force,
                    migrate: &migrate,
                };
                if !telling {
                    return (None, Box::pin(p.remote.fly(&ticket, go)) as Answer<Flight>);
                }
                match p.remote.fly_telling(&ticket, go) {
                    Ok((prepared, answer)) => (Some(prepared), Box::pin(answer) as Answer<Flight>),
                    Err(e) => (None, Box::pin(std::future::ready(Err(e))) as Answer<Flight>),
                }
            })
            .collect()
    }

    /// Waits until every node sent a step (`steps`, in the order of the
    /// parts; `None` for a node sent nothing) has prepared or answered;
    /// then says go to every node if all of them prepared, `written` (the
    /// snapshot is on disk) and no Ctrl-C came, else abort to those that
    /// prepared. Every node's answer, and whether the word was go.
    async fn gather<T: Send + 'static>(
        &self,
        steps: Vec<Option<(Option<Listener>, Answer<T>)>>,
        go: Awaiting,
        written: bool,
    ) -> (Vec<Option<Result<T, CallError>>>, bool) {
        let limit = self.parts[0].remote.timeout;
        let heard = join_all(steps.into_iter().map(|step| async move {
            let (prepared, answer) = step?;
            let Some(prepared) = prepared else {
                return Some(Heard::Answered(answer.await));
            };
            // A node tells before it answers, on the same connection:
            // looked at first, its telling is never missed.
            let told = Box::pin(prepared.message(limit, go.step));
            Some(match futures::future::select(told, answer).await {
                Either::Left((Ok(_), answer)) => Heard::Prepared(answer),
                Either::Left((Err(_), answer)) => Heard::Answered(answer.await),
                Either::Right((answered, _)) => Heard::Answered(answered),
            })
        }))
        .await;
        crate::fault::hold(match go.step {
            "flight" => "flight_prepared",
            _ => "apply_prepared",
        })
        .await;
        let said_go = written
            && heard
                .iter()
                .flatten()
                .all(|h| matches!(h, Heard::Prepared(_)))
            && !self.opts.interrupted();
        for (p, h) in self.parts.iter().zip(&heard) {
            if let Some(Heard::Prepared(_)) = h {
                match go.step {
                    "flight" => tracing::debug!("flight to {}: {PREPARED}", p.node()),
                    _ => tracing::debug!("apply to {}: the node prepared the changes", p.node()),
                }
                p.remote.say_to_holder(go, said_go);
            }
        }
        let answers = join_all(heard.into_iter().map(|h| async move {
            match h? {
                Heard::Prepared(answer) => Some(answer.await),
                Heard::Answered(answered) => Some(answered),
            }
        }))
        .await;
        (answers, said_go)
    }

    /// What the store believes every node runs of every goal, if it
    /// believes it knows all of them and some node has changes, for a
    /// flight ([`Transaction::fly`]); sets the changes that belief implies.
    fn beliefs(&mut self) -> Option<Vec<Vec<State>>> {
        if !self.may_believe() {
            return None;
        }
        let mut known = Beliefs::read(self.store);
        let beliefs: Option<Vec<Vec<State>>> = self
            .parts
            .iter_mut()
            .map(|p| believe(p, &mut known))
            .collect();
        if beliefs.is_none() || self.parts.iter().all(|p| p.changes.is_empty()) {
            for p in &mut self.parts {
                p.changes.clear();
            }
            return None;
        }
        beliefs
    }

    fn may_believe(&self) -> bool {
        self.kind == Kind::Deploy && !self.opts.dry_run && !self.opts.all
    }

    /// Sends what gateways queued for their targets (`--via`): one
    /// message for every target of a step.
    fn send_queued(&self) {
        for p in &self.parts {
            p.remote.link.flush();
        }
    }

    /// Logs how long a step took, for `-v`.
    fn step(&mut self, name: &str) {
        tracing::debug!(
            "step {name} took {:.1} ms",
            self.lap.elapsed().as_secs_f64() * 1e3
        );
        self.lap = Instant::now();
    }

    fn check_interrupt(&self, changed: bool) -> Result<(), Stop> {
        if !self.opts.interrupted() {
            return Ok(());
        }
        Err(Stop {
            outcome: Outcome::Interrupted,
            undo: changed,
        })
    }

    /// Takes each node's lock and learns what it runs; decides what changes;
    /// refuses where old code is in use (without `--force`) or, for a
    /// rollback, where the node no longer runs what was deployed.
    async fn inspect(&mut self) -> Result<(), Stop> {
        let answers = join_all(self.ask_inspect()).await;
        let (kind, opts, ui) = (self.kind, self.opts, self.ui);
        let taken = self
            .parts
            .iter_mut()
            .zip(answers)
            .map(|(p, answer)| take_in(p, answer, kind, opts, ui));
        match stopping(taken.filter_map(Result::err).collect()) {
            Some(o) => Err(Stop::before_change(o)),
            None => Ok(()),
        }
    }

    /// Sends every node its inspect step; the futures wait for the answers.
    fn ask_inspect(&self) -> Vec<impl std::future::Future<Output = Result<Inspected, CallError>>> {
        let known = self.known_md5s();
        self.parts
            .iter()
            .map(|p| {
                let (want, known) = wanted(p, &known);
                p.remote
                    .inspect_step(&self.lock, &want, &known, self.opts.all)
            })
            .collect()
    }

    /// The MD5s the store holds of each goal's module, looked up once.
    fn known_md5s(&self) -> HashMap<&str, Vec<Md5>> {
        let mut known = HashMap::new();
        for g in self.parts.iter().flat_map(|p| &p.goals) {
            known
                .entry(g.module.as_str())
                .or_insert_with(|| self.store.known_md5s(&g.module));
        }
        known
    }

    /// For `--dry-run`: asks each node which processes the deploy would
    /// migrate (those of changed modules whose new code exports
    /// `code_change`), into its report.
    async fn plan_migrations(&mut self) {
        if self.migration != Migration::Up {
            return;
        }
        let asked = join_all(self.parts.iter().map(|p| {
            let modules: Vec<&str> = p
                .changes
                .iter()
                .filter(|c| matches!(c.was, State::Loaded(_)))
                .filter_map(|c| match &p.goals[c.goal].target {
                    Target::Load(m) if m.code_change => Some(m.name.as_str()),
                    _ => None,
                })
                .collect();
            async move { p.remote.callback_processes(&modules).await }
        }))
        .await;
        for (p, answer) in self.parts.iter_mut().zip(asked) {
            match answer {
                Ok(processes) => p.report.migrated = processes,
                Err(e) => self.ui.warn(&format!(
                    "which processes {} would migrate is unknown: {e}",
                    p.node()
                )),
            }
        }
    }

    fn show_plan(&mut self) -> Result<(), Stop> {
        for p in &mut self.parts {
            for c in &p.changes {
                let goal = &p.goals[c.goal];
                self.ui.line(&format!(
                    "Would {} {} on {}",
                    verb(self.kind, &goal.target, c.was),
                    goal.module,
                    p.report.node
                ));
                p.report.loaded.push(goal.module.clone());
            }
            for l in &p.report.migrated {
                self.ui.line(&format!(
                    "Would migrate {} of `{}` on {}",
                    describe_process(&l.pid, l.name.as_deref()),
                    l.module,
                    p.report.node
                ));
            }
        }
        Ok(())
    }

    /// Records what each node runs now of every module about to change, with
    /// its binary (from the store, else from the node's disk when that is
    /// what runs), before anything is touched.
    fn snapshot(&mut self) -> Result<(), Stop> {
        super::priors::capture(parts_view(&mut self.parts), self.store, self.ui);
        if self.parts.iter().any(|p| !p.report.ok) {
            return Err(Stop::before_change(Outcome::Failed));
        }
        if self.kind == Kind::Deploy {
            // A flight that found the node otherwise rewrites its snapshot.
            let mut manifest = self
                .manifest
                .take()
                .unwrap_or_else(|| Manifest::new(&self.lock.owner, BTreeMap::new()));
            manifest.nodes = self.records(|_| NodeOutcome::Pending);
            if let Err(e) = self.store.save(&manifest) {
                for p in &mut self.parts {
                    p.report.fail(None, e.to_string());
                }
                return Err(Stop::before_change(Outcome::Failed));
            }
            self.manifest = Some(manifest);
            if self.keeping.is_none() {
                self.keeping = Some(super::priors::keep_sent(self.store, self.loads()));
            }
        }
        Ok(())
    }
}

fn parts_view(parts: &mut [Part]) -> Vec<(&mut NodeReport, Vec<super::priors::Pending<'_>>)> {
    parts
        .iter_mut()
        .map(|p| {
            let goals = &p.goals;
            let pending = p
                .changes
                .iter_mut()
                .map(|c| super::priors::Pending {
                    module: goals[c.goal].module.as_str(),
                    was: c.was,
                    copy: c.copy.take(),
                    prior: &mut c.prior,
                })
                .collect();
            (&mut p.report, pending)
        })
        .collect()
}

impl Transaction<'_> {
    /// Every binary this run loads, for the store.
    fn loads(&self) -> Vec<Module> {
        let mut seen = BTreeMap::new();
        for p in &self.parts {
            for c in &p.changes {
                if let Target::Load(m) = &p.goals[c.goal].target {
                    seen.entry(m.md5.0).or_insert_with(|| m.clone());
                }
            }
        }
        seen.into_values().collect()
    }

    fn records(&self, outcome: impl Fn(&Part) -> NodeOutcome) -> BTreeMap<String, NodeRecord> {
        self.parts
            .iter()
            .filter(|p| !p.changes.is_empty())
            .map(|p| {
                let modules = p
                    .changes
                    .iter()
                    .map(|c| {
                        let goal = &p.goals[c.goal];
                        ModuleRecord {
                            module: goal.module.clone(),
                            prior: c.prior.clone(),
                            deployed: goal.target.md5().map(Md5::to_hex),
                        }
                    })
                    .collect();
                (
                    p.node().to_owned(),
                    NodeRecord {
                        outcome: outcome(p),
                        modules,
                    },
                )
            })
            .collect()
    }

    /// Loads every node's changes, all nodes at once, each atomically. The
    /// snapshot is written while the nodes prepare: they change nothing
    /// before the word that it is on disk and, with several nodes, that
    /// every node has prepared (found its processes to migrate idle, for
    /// one); they are told to abort if not, or if the run was interrupted.
    async fn apply(&mut self) -> Result<(), Stop> {
        let go = awaiting(&self.lock, "apply");
        let telling = self.parts.iter().filter(|p| !p.changes.is_empty()).count() > 1;
        let steps = self.ask_apply(go, telling);
        self.send_queued();
        let written = self.snapshot().and_then(|()| self.check_interrupt(false));
        crate::fault::hold("apply_before_word").await;
        self.step("snapshot");
        let (answers, said_go) = match telling {
            true => self.gather(steps, go, written.is_ok()).await,
            false => {
                for p in self.parts.iter().filter(|p| !p.changes.is_empty()) {
                    p.remote.say(go, written.is_ok());
                }
                let answers = join_all(steps.into_iter().map(|step| async move {
                    match step {
                        Some((_, answer)) => Some(answer.await),
                        None => None,
                    }
                }))
                .await;
                (answers, written.is_ok())
            }
        };
        // Told to abort, the nodes changed nothing.
        written?;
        if !said_go {
            self.check_interrupt(false)?;
        }
        let mut failures = Vec::new();
        for (p, answer) in self.parts.iter_mut().zip(answers) {
            match answer {
                None => {}
                // Another node did not prepare: this one changed nothing.
                Some(Ok(Applied::Aborted)) if !said_go => {}
                // Never told go, the node changed nothing.
                Some(Err(e)) if !said_go => {
                    p.report.fail(None, e.to_string());
                    failures.push(Outcome::Failed);
                }
                Some(answer) => failures.extend(applied(p, answer, self.kind, self.ui).err()),
            }
        }
        match stopping(failures) {
            Some(outcome) => Err(Stop::after_change(outcome)),
            None => Ok(()),
        }
    }

    /// Sends every node with changes its apply step, which waits for the
    /// word before changing anything (`telling`: and says when it has
    /// prepared, for a run to several nodes); the futures wait for the
    /// answers.
    fn ask_apply(
        &self,
        go: Awaiting,
        telling: bool,
    ) -> Vec<Option<(Option<Listener>, Answer<Applied>)>> {
        let (force, owner) = (self.opts.force, &self.lock.watched);
        let mut loads: HashMap<PlanKey, Encoded> = HashMap::new();
        self.parts
            .iter()
            .map(|p| {
                if p.changes.is_empty() {
                    return None;
                }
                let steps = steps(p);
                let load = loads
                    .entry(plan_key(p))
                    .or_insert_with(|| super::remote::loads_payload(&steps));
                let migrate = self
                    .migration
                    .for_loads(super::remote::loads_of(&steps).into_iter())
                    .term(self.opts.timeout, self.opts.care);
                let payload = |go: Term| {
                    let bindings = Bindings::new().set("Migrate", &migrate);
                    super::remote::apply_bindings(bindings, &steps, force, owner, go, load)
                };
                if !telling {
                    let answer = p.remote.apply_step(&payload(go.term()));
                    return Some((None, Box::pin(answer) as Answer<Applied>));
                }
                Some(match p.remote.link.listen() {
                    Ok((address, prepared)) => {
                        let answer = p.remote.apply_step(&payload(go.telling(address)));
                        (Some(prepared), Box::pin(answer) as Answer<Applied>)
                    }
                    Err(e) => (
                        None,
                        Box::pin(std::future::ready(Err(e))) as Answer<Applied>,
                    ),
                })
            })
            .collect()
    }

    /// Reads back what every changed node runs now.
    async fn verify(&mut self) -> Result<(), Stop> {
        let answers = join_all(self.parts.iter().map(read_back)).await;
        let mut mismatch = false;
        for (p, answer) in self.parts.iter_mut().zip(answers) {
            for failure in answer {
                p.report.fail(failure.module.as_deref(), failure.reason);
                mismatch = true;
            }
        }
        if mismatch {
            return Err(Stop::after_change(Outcome::VerifyMismatch));
        }
        Ok(())
    }

    /// The single way out: undo if needed, record, release, report.
    async fn finish(mut self, result: Result<(), Stop>) -> Finished {
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
            super::belief::remember(self.store, nodes);
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
            super::undo::undo(remote, undo_view(p, migration, care), store, force, ui)
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

/// What the store believes `p`'s node runs of each goal, if it believes
/// it knows all of them; sets the changes that implies, each with its
/// prior already in the store.
fn believe(p: &mut Part, known: &mut Beliefs) -> Option<Vec<State>> {
    let goals: Vec<(&str, Option<Md5>)> = p
        .goals
        .iter()
        .map(|g| (g.module.as_str(), g.target.md5()))
        .collect();
    let belief = known.of(p.node(), &goals)?;
    p.changes = belief
        .changes
        .into_iter()
        .map(|(goal, was)| Change {
            goal,
            was,
            copy: None,
            prior: Prior::Absent,
        })
        .collect();
    Some(belief.states)
}

/// Takes in what the node's inspect answer means for its goals. Returns
/// false when the node refuses (old code in use, or drift, without
/// `--force`).
fn plan(p: &mut Part, found: Vec<Found>, kind: Kind, opts: &Options, ui: &Ui) -> bool {
    p.states = found.iter().map(|f| Some(f.state)).collect();
    let d = super::plan::decide(&p.goals, found, kind, opts.all, opts.force);
    let refused = d.refused(opts.force);
    // Left in old code by an earlier run; it is in nobody's way.
    warn_lingering(&d.idle, &p.report.node, ui);
    p.report.lingering.extend(d.idle);
    p.report.unchanged.extend(d.unchanged);
    for (module, why) in d.drift {
        p.report.fail(Some(&module), why);
    }
    if !opts.force {
        p.report.lingering.extend(d.blocking);
    }
    if refused {
        p.report.ok = false;
    }
    p.changes = d
        .changes
        .into_iter()
        .map(|c| Change {
            goal: c.goal,
            was: c.was,
            copy: c.copy,
            prior: Prior::Absent,
        })
        .collect();
    !refused
}

/// Of the outcomes that stop the run, the one to report: a refusal says
/// less than a lock held or a failure, which say as much as each other
/// (the last one counts).
fn stopping(outcomes: Vec<Outcome>) -> Option<Outcome> {
    outcomes
        .iter()
        .rev()
        .find(|o| **o != Outcome::Refused)
        .or(outcomes.first())
        .copied()
}

fn locked_message(node: &str, held: &Held) -> String {
    let get = |k: &str| {
        held.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("?")
    };
    format!(
        "`{node}` is locked by another deploy or rollback: {} (user {} on {}, pid {}) since {}; try again when it is done",
        get("node"),
        get("user"),
        get("host"),
        get("pid"),
        get("since")
    )
}

fn verb(kind: Kind, target: &Target, was: State) -> &'static str {
    match (kind, target, was) {
        (_, Target::Remove, _) => "remove",
        (Kind::Rollback, Target::Load(_), _) => "restore",
        (Kind::Deploy, Target::Load(_), State::Absent) => "deploy (new)",
        (Kind::Deploy, Target::Load(_), _) => "deploy (changed)",
    }
}

/// What `p`'s changes do on its node.
/// The step of this run that waits for the word that the snapshot is on
/// disk: `"flight"` or `"apply"` (a flight that found the node otherwise
/// is followed by an apply step, which must not take the flight's word).
fn awaiting(lock: &LockRequest, step: &'static str) -> super::remote::Awaiting {
    super::remote::Awaiting {
        token: lock.token,
        step,
    }
}

/// Modules, each with the MD5 it is to run (`None`: not loaded).
type Goals<'a> = Vec<(&'a str, Option<Md5>)>;

/// Each of `p`'s goals (module, and the MD5 it is to run), and the MD5s
/// of it the store holds (from `known`).
fn wanted<'a>(p: &'a Part, known: &HashMap<&str, Vec<Md5>>) -> (Goals<'a>, Vec<Vec<Md5>>) {
    let want: Goals = p
        .goals
        .iter()
        .map(|g| (g.module.as_str(), g.target.md5()))
        .collect();
    let held = want
        .iter()
        .map(|(m, _)| known.get(m).cloned().unwrap_or_default())
        .collect();
    (want, held)
}

fn steps(p: &Part) -> Vec<Step<'_>> {
    p.changes
        .iter()
        .map(|c| p.goals[c.goal].target.step(&p.goals[c.goal].module))
        .collect()
}

/// Takes in one node's inspect answer; the outcome that stops the run
/// before anything changes, if it must.
fn take_in(
    p: &mut Part,
    answer: Result<Inspected, CallError>,
    kind: Kind,
    opts: &Options,
    ui: &Ui,
) -> Result<(), Outcome> {
    match answer {
        Ok(Ok(found)) => {
            p.locked = true;
            match plan(p, found, kind, opts, ui) {
                true => Ok(()),
                false => Err(Outcome::Refused),
            }
        }
        Ok(Err(held)) => {
            p.report.fail(None, locked_message(p.node(), &held));
            Err(Outcome::Locked)
        }
        Err(e) => {
            // The node may have taken the lock before the step failed (or
            // gave up waiting): the release at the end gives it back.
            p.locked = true;
            p.report.fail(None, e.to_string());
            Err(Outcome::Failed)
        }
    }
}

/// Why a node told go aborted.
const LOCK_WENT: &str =
    "the node's deploy lock went before the word to load came; nothing changed there";

/// Logged for a node of a step to several nodes that says it prepared.
const PREPARED: &str = "the node runs what was believed; it prepared the changes";

fn flight_text(answer: &Result<Flight, CallError>) -> &'static str {
    match answer {
        Ok(Flight::Landed(_, Applied::Done { .. })) => {
            "landed (inspected and loaded in one request)"
        }
        Ok(Flight::Landed(_, Applied::Aborted)) => "aborted; nothing changed",
        Ok(Flight::Landed(_, Applied::Refused { .. })) => "the node refused to prepare the changes",
        Ok(Flight::Landed(_, Applied::Stuck(_))) => {
            "old code came into use after the check; nothing changed"
        }
        Ok(Flight::Landed(_, Applied::Busy(_))) => {
            "processes to migrate did not answer in time; nothing changed"
        }
        Ok(Flight::Landed(_, Applied::MigrationFailed { .. })) => "a code_change failed",
        Ok(Flight::Landed(_, Applied::Forced { .. })) => {
            "old code was purged (--force), then the node failed"
        }
        Ok(Flight::Inspected(_)) => {
            "the node runs other code than believed; nothing was prepared, and the deploy goes on as after an inspect"
        }
        Ok(Flight::Locked(_)) => "locked",
        Err(_) => "no answer",
    }
}

/// Takes in one node's flight answer (`said_go`: the node was given the
/// word go); whether it landed or was inspected, or the outcome that stops
/// the run.
async fn land(
    p: &mut Part,
    answer: Result<Flight, CallError>,
    said_go: bool,
    kind: Kind,
    opts: &Options,
    ui: &Ui,
) -> Result<Flew, Outcome> {
    match answer {
        Ok(Flight::Landed(found, Applied::Aborted)) if !said_go => {
            inspected(p, found, kind, opts, ui)
        }
        Ok(Flight::Landed(_, Applied::Aborted)) => {
            p.report.fail(None, LOCK_WENT);
            Err(Outcome::Failed)
        }
        Ok(Flight::Landed(found, answer)) => {
            let believed_changes = std::mem::take(&mut p.changes);
            plan(p, found, kind, opts, ui);
            p.changes = believed_changes;
            if p.changes.is_empty() {
                // Believed as wanted already: the node only held still.
                return Ok(Flew::Landed);
            }
            applied(p, Ok(answer), kind, ui).map(|()| Flew::Landed)
        }
        Ok(Flight::Inspected(found)) => inspected(p, found, kind, opts, ui),
        Ok(Flight::Locked(held)) => {
            p.report.fail(None, locked_message(p.node(), &held));
            Err(Outcome::Locked)
        }
        Err(e) => {
            p.report.fail(None, e.to_string());
            p.changed = said_go && landed_anyway(p).await;
            Err(Outcome::Failed)
        }
    }
}

/// A flight that changed nothing on the node: its answer is an inspect's.
fn inspected(
    p: &mut Part,
    found: Vec<Found>,
    kind: Kind,
    opts: &Options,
    ui: &Ui,
) -> Result<Flew, Outcome> {
    match plan(p, found, kind, opts, ui) {
        true => Ok(Flew::Inspected),
        false => Err(Outcome::Refused),
    }
}

/// What a node is sent, for sharing one encoding among nodes sent the same.
type PlanKey = Vec<(String, Option<Md5>)>;

fn plan_key(p: &Part) -> PlanKey {
    p.changes
        .iter()
        .map(|c| {
            let g = &p.goals[c.goal];
            (g.module.clone(), g.target.md5())
        })
        .collect()
}

/// Takes in one node's apply answer; the outcome that stops the run if
/// it failed.
fn applied(
    p: &mut Part,
    answer: Result<Applied, crate::dist::CallError>,
    kind: Kind,
    ui: &Ui,
) -> Result<(), Outcome> {
    match answer {
        Ok(Applied::Forced {
            killed,
            doomed,
            then,
        }) => {
            p.report.forced(killed, doomed, ui);
            applied(p, Ok(*then), kind, ui)
        }
        Ok(Applied::Done {
            killed,
            lingering,
            running,
            migrated,
            doomed,
            not_migrated,
            watched,
            died,
        }) => {
            p.changed = true;
            p.running = Some(running);
            p.report.forced(killed, doomed, ui);
            for n in &not_migrated {
                ui.warn(&format!(
                    "{} on {} loaded without its code_change: it runs under `{}`, not one of OTP's own loops (`--migrate-custom-loops` migrates it)",
                    n.describe(),
                    p.node(),
                    n.detail
                ));
            }
            p.report.not_migrated.extend(not_migrated);
            for c in &p.changes {
                let goal = &p.goals[c.goal];
                ui.line(&done_line(kind, goal, c.was, p.node()));
                p.report.loaded.push(goal.module.clone());
            }
            for line in super::report::migrated_lines(&migrated, p.node()) {
                ui.line(&line);
            }
            p.report.took_in(migrated);
            p.report.watched(watched, &died, ui);
            warn_lingering(&lingering, p.node(), ui);
            p.report.lingering.extend(lingering);
            Ok(())
        }
        Ok(Applied::Stuck(stuck)) => {
            p.report.fail(
                None,
                "processes took up old code after the check; nothing was changed",
            );
            p.report.lingering = stuck;
            Err(Outcome::Failed)
        }
        Ok(Applied::Busy(busy)) => {
            for b in busy {
                p.report.fail(
                    Some(&b.module),
                    format!(
                        "{} did not answer to be suspended for its code_change: it is running {}; nothing was changed (`--no-code-change` loads without migrating)",
                        super::report::describe_process(&b.pid, b.name.as_deref()),
                        b.detail
                    ),
                );
            }
            Err(Outcome::Busy)
        }
        Ok(Applied::MigrationFailed {
            causes,
            left,
            changed,
            keeper,
        }) => {
            p.changed = changed;
            p.keeper = keeper;
            for c in causes {
                p.report.fail(
                    Some(&c.module),
                    format!(
                        "code_change of {} failed: {}; its state was kept",
                        super::report::describe_process(&c.pid, c.name.as_deref()),
                        c.detail
                    ),
                );
            }
            for l in left {
                p.report.not_restored.push(format!(
                    "{} (its code_change did not come back: {}; its state may be in the new shape)",
                    l.describe(),
                    l.detail
                ));
            }
            Err(Outcome::Failed)
        }
        Ok(Applied::Aborted) => {
            p.report.fail(None, LOCK_WENT);
            Err(Outcome::Failed)
        }
        Ok(Applied::Refused { reasons, changed }) => {
            p.changed = changed;
            for (m, why) in reasons {
                p.report.fail(Some(&m), format!("not loaded: {why}"));
            }
            Err(Outcome::Failed)
        }
        Err(e) => {
            // Whether the node got to load is unknown: undo to be safe.
            p.changed = true;
            p.report.fail(None, e.to_string());
            Err(Outcome::Failed)
        }
    }
}

fn done_line(kind: Kind, goal: &Goal, was: State, node: &str) -> String {
    match (kind, &goal.target, was) {
        (_, Target::Remove, _) => format!("Removed {} from {node}", goal.module),
        (Kind::Rollback, _, _) => format!("Restored {} on {node}", goal.module),
        (Kind::Deploy, _, State::Absent) => format!("Deployed {} to {node} (new)", goal.module),
        (Kind::Deploy, _, _) => format!("Deployed {} to {node} (changed)", goal.module),
    }
}

pub(super) fn warn_lingering(lingering: &[Lingering], node: &str, ui: &Ui) {
    for l in lingering {
        let next = match l.runs_old_code() {
            true => "it moves to the new code at its next external call",
            false => "the old code stays until a deploy of the module needs it gone",
        };
        ui.warn(&format!(
            "{} on {node} {}; {next}",
            describe_process(&l.pid, l.name.as_deref()),
            l.what()
        ));
    }
}

/// Each module this run changes on the node, with the MD5 it is to run.
fn changing(p: &Part) -> Vec<(&str, Option<Md5>)> {
    p.changes
        .iter()
        .map(|c| {
            let g = &p.goals[c.goal];
            (g.module.as_str(), g.target.md5())
        })
        .collect()
}

/// After a flight that got no answer: whether the node runs any of what
/// it was sent (or cannot be asked: then it may, and is undone).
async fn landed_anyway(p: &Part) -> bool {
    let want = changing(p);
    match p.remote.mismatches(&want).await {
        Ok(wrong) => wrong.len() < want.len(),
        Err(_) => true,
    }
}

/// What a changed node runs now that differs from its goals: as its apply
/// step read it back, else as asked in a round trip of its own.
async fn read_back(p: &Part) -> Vec<Failure> {
    let want = changing(p);
    let wrong = match p.running.as_ref().and_then(|r| mismatches(&want, r)) {
        Some(wrong) => Ok(wrong),
        None => p.remote.mismatches(&want).await,
    };
    match wrong {
        Ok(wrong) => wrong
            .into_iter()
            .map(|(i, state)| Failure {
                module: Some(want[i].0.to_owned()),
                reason: format!(
                    "verify: the node runs {}, expected {}",
                    show_state(state),
                    want[i].1.map_or_else(|| "nothing".into(), |m| m.to_hex())
                ),
            })
            .collect(),
        Err(e) => vec![Failure {
            module: None,
            reason: format!("verify: {e}"),
        }],
    }
}

/// Which of `want` (module, MD5 it must run or `None`: not loaded) differ
/// from `running`, with what runs instead; `None` if `running` lacks one.
fn mismatches(
    want: &[(&str, Option<Md5>)],
    running: &[(String, Option<Md5>)],
) -> Option<Vec<(usize, State)>> {
    let mut wrong = Vec::new();
    for (i, (module, md5)) in want.iter().enumerate() {
        let (_, now) = running.iter().find(|(m, _)| m == module)?;
        if now != md5 {
            wrong.push((i, now.map_or(State::Absent, State::Loaded)));
        }
    }
    Some(wrong)
}

pub(super) fn show_state(state: State) -> String {
    match state {
        State::Loaded(m) => m.to_hex(),
        State::OnDisk(_) | State::Absent => "nothing".into(),
    }
}

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
    care: super::migrate::Care,
) -> super::undo::UndoPart<'_> {
    super::undo::UndoPart {
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
