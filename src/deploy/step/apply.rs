//! [`Instruction::Prepare`](crate::deploy::plan::Instruction::Prepare),
//! [`Instruction::Apply`](crate::deploy::plan::Instruction::Apply) and
//! [`Instruction::Migrate`](crate::deploy::plan::Instruction::Migrate):
//! each node with changes is sent them in one request (`node/apply.erl`),
//! prepares them (`code:prepare_loading/1`, most of a load's work, and
//! its processes to migrate found idle), waits for the word
//! ([`crate::deploy::step::word`]), then clears old code (killing its processes with
//! `--force`), loads everything at once, migrates its processes through
//! their `code_change`, removes, and lets go of the replaced code where
//! nobody runs it. Its undo is the same step with the priors
//! ([`crate::deploy::step::undo`]).

use crate::deploy::goal::{loads_of, Action, Goal, Kind, Target};
use crate::deploy::migrate::Migration;
use crate::deploy::observing::Apart;
use crate::deploy::part::{Part, PlanKey};
use crate::deploy::remote::{boolean, Remote, State};
use crate::deploy::report::warn_lingering;
use crate::deploy::report::Outcome;
use crate::deploy::run::{stopping, Answer, Answers, Run, Stop};
use crate::deploy::step::applied::Applied;
use crate::deploy::step::word::{awaiting, Awaiting, Sent};
use crate::output::Ui;
use crate::peer::term::{atom_term, charlist, list, Encoded, EtfWriter, Term};
use crate::peer::{Bindings, CallError, EvalArgs, Script};
use futures::future::join_all;
use std::collections::HashMap;

pub(in crate::deploy) static APPLY: Script = Script::with_functions(
    concat!(
        include_str!("../node/prelude.erl"),
        include_str!("../node/load.erl"),
        include_str!("../node/migrate.erl"),
        include_str!("../node/apply.erl"),
        include_str!("../node/purge.erl")
    ),
    include_str!("../node/apply_main.erl"),
);

/// Why a node told go aborted.
pub(in crate::deploy) const LOCK_WENT: &str =
    "the node's deploy lock went before the word to load came; nothing changed there";

impl Run<'_> {
    /// Whether the apply step goes to several nodes, which then say when
    /// they have prepared.
    fn telling(&self) -> bool {
        self.parts.iter().filter(|p| !p.changes.is_empty()).count() > 1
    }

    /// Gives each node about to change processes an address to report the
    /// watch after its change to ([`crate::deploy::observing`]), when the
    /// options say apart: a deploy whose loads migrate, or that `--force`
    /// may doom processes with.
    pub(in crate::deploy) fn listen_apart(&mut self) {
        let care = self.opts.care;
        if !care.observe_apart || care.observe.is_zero() || self.kind != Kind::Deploy {
            return;
        }
        for p in self.parts.iter_mut().filter(|p| !p.changes.is_empty()) {
            let steps = p.steps();
            let migrates = self.migration.for_loads(loads_of(&steps).into_iter()) != Migration::Off;
            if p.apart.is_some() || !(migrates || self.opts.force) {
                continue;
            }
            // A node not reached gets no address: its request fails anyway.
            if let Ok((address, listener)) = p.remote.link.listen() {
                p.apart = Some(Apart::new(
                    address,
                    listener,
                    care.observe + p.remote.timeout,
                ));
            }
        }
    }

    /// Sends every node with changes its apply step, which prepares and
    /// waits for the word before changing anything.
    pub fn prepare(&mut self) -> Vec<Sent<Applied>> {
        self.listen_apart();
        let go = awaiting(&self.lock, "apply");
        let prepared = self.ask_apply(go, self.telling());
        self.send_queued();
        prepared
    }

    /// Writes the snapshot while the nodes prepare: they change nothing
    /// before the word that it is on disk.
    pub async fn snapshot_while_prepared(&mut self) {
        self.written = self
            .snapshot()
            .and_then(|()| self.check_interrupt())
            .map_err(|stop| stop.outcome);
        crate::fault::hold("apply_before_word").await;
        self.lap("snapshot");
    }

    /// The word: go to every node if the snapshot is on disk and, with
    /// several nodes, every node has prepared (found its processes to
    /// migrate idle, for one); abort if not, or if the run was
    /// interrupted. Past it, a stop undoes what changed.
    pub async fn point_of_no_return(
        &mut self,
        steps: Vec<Sent<Applied>>,
    ) -> Result<Answers<Applied>, Stop> {
        let go = awaiting(&self.lock, "apply");
        let written = self.written.is_ok();
        let (answers, said_go) = match self.telling() {
            true => self.gather(steps, go, written).await,
            false => {
                for p in self.parts.iter().filter(|p| !p.changes.is_empty()) {
                    p.remote.say(go, written);
                }
                let answers = join_all(steps.into_iter().map(|step| async move {
                    match step {
                        Some((_, answer)) => Some(answer.await),
                        None => None,
                    }
                }))
                .await;
                (answers, written)
            }
        };
        // Told to abort, the nodes changed nothing.
        if let Err(outcome) = self.written {
            return Err(self.stop(outcome));
        }
        if !said_go {
            self.check_interrupt()?;
        }
        self.past_no_return = true;
        Ok((answers, said_go))
    }

    /// Takes in every node's apply answer.
    pub fn apply(&mut self, (answers, said_go): Answers<Applied>) -> Result<(), Stop> {
        let (kind, ui) = (self.kind, self.ui);
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
                Some(answer) => failures.extend(applied(p, answer, kind, ui).err()),
            }
        }
        match stopping(failures) {
            Some(outcome) => Err(self.stop(outcome)),
            None => Ok(()),
        }
    }

    /// Sends every node with changes its apply step, which waits for the
    /// word before changing anything (`telling`: and says when it has
    /// prepared, for a run to several nodes); the futures wait for the
    /// answers.
    fn ask_apply(&self, go: Awaiting, telling: bool) -> Vec<Sent<Applied>> {
        let (force, owner) = (self.opts.force, &self.lock.watched);
        let mut loads: HashMap<PlanKey, Encoded> = HashMap::new();
        self.parts
            .iter()
            .map(|p| {
                if p.changes.is_empty() {
                    return None;
                }
                let steps = p.steps();
                let load = loads
                    .entry(p.plan_key())
                    .or_insert_with(|| loads_payload(&steps));
                let migrate = p.migrate_term(&self.migration, self.opts.care);
                let payload = |go: Term| {
                    let bindings = Bindings::new().set("Migrate", &migrate);
                    apply_bindings(bindings, &steps, force, owner, go, load)
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
}

/// Takes in one node's apply answer; the outcome that stops the run if
/// it failed.
pub(in crate::deploy) fn applied(
    p: &mut Part,
    answer: Result<Applied, crate::peer::CallError>,
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
            apart,
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
            for line in crate::deploy::report::migrated_lines(&migrated, p.node()) {
                ui.line(&line);
            }
            p.report.took_in(migrated);
            match (apart, p.apart.take()) {
                (true, Some(apart)) => {
                    p.report.watched_apart(watched);
                    p.observing = Some(apart.observing(p.node(), watched));
                }
                _ => p.report.watched(watched, &died, ui),
            }
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
                        crate::deploy::report::describe_process(&b.pid, b.name.as_deref()),
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
                        crate::deploy::report::describe_process(&c.pid, c.name.as_deref()),
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

impl Remote {
    /// Runs `payload` ([`apply_payload`]) on the node: clears old code
    /// (killing its processes with `force`), loads everything at once,
    /// removes, and lets go of the replaced code where nobody runs it.
    pub async fn apply(&self, payload: &EvalArgs) -> Result<Applied, CallError> {
        self.apply_step(payload).await
    }

    /// [`Remote::apply`], whose request leaves now; the future waits for
    /// the answer.
    pub fn apply_step(
        &self,
        payload: &EvalArgs,
    ) -> impl std::future::Future<Output = Result<Applied, CallError>> + Send + 'static {
        let answer = self.link.eval(&APPLY, payload, self.timeout);
        let me = self.clone();
        async move {
            let answer = answer.await?;
            me.applied(&answer, &answer)
        }
    }
}

/// The bindings of the apply script, encoded once for every node that gets
/// the same steps, whatever their number: module binaries are written
/// straight from the files' bytes.
/// With `go`, the node prepares, then changes nothing before the tool's
/// word for that step ([`Remote::say`]). `migrate`:
/// [`crate::deploy::migrate::Migration::term`].
pub fn apply_payload(
    steps: &[Action<'_>],
    force: bool,
    owner: &Term,
    go: Option<Awaiting>,
    migrate: &Term,
) -> EvalArgs {
    let go = go.map_or_else(|| atom_term("none"), Awaiting::term);
    let load = loads_payload(steps);
    let bindings = Bindings::new().set("Migrate", migrate);
    apply_bindings(bindings, steps, force, owner, go, &load)
}

fn removes_of(steps: &[Action<'_>]) -> Vec<Term> {
    steps
        .iter()
        .filter_map(|s| match s {
            Action::Remove(m) => Some(atom_term(m)),
            Action::Load(_) => None,
        })
        .collect()
}

/// `bindings` with apply's (`Owner`, `Force`, `Remove`, `Go`, and `Load`:
/// [`loads_payload`] of `steps`), encoded.
pub(in crate::deploy) fn apply_bindings(
    bindings: Bindings,
    steps: &[Action<'_>],
    force: bool,
    owner: &Term,
    go: Term,
    load: &Encoded,
) -> EvalArgs {
    bindings
        .set("Go", &go)
        .set("Owner", owner)
        .set("Force", &boolean(force))
        .set("Remove", &list(removes_of(steps)))
        .with_shared("Load", load)
}

/// The modules `steps` load, `[{Module, File, Binary}]` as
/// `code:atomic_load/1` takes them, each binary without the chunks the VM
/// never reads (`Module::loadable`): encoded once for every node sent the
/// same steps. The binaries are not copied (megabytes, for a release's
/// worth of modules): the payload refers to the modules' own bytes.
pub fn loads_payload(steps: &[Action<'_>]) -> Encoded {
    let modules = loads_of(steps);
    let mut w = EtfWriter::default();
    w.list_header(modules.len() as u32);
    for m in modules {
        w.tuple_header(3)
            .term(&atom_term(&m.name))
            .term(&charlist(&m.path.to_string_lossy()))
            .shared_binary(&m.loadable);
    }
    w.nil();
    w.finish()
}
