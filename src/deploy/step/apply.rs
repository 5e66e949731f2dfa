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

use crate::beam::Md5;
use crate::deploy::goal::{loads_of, Action, Goal, Kind, Target};
use crate::deploy::migrate::{Migrated, ProcessNote};
use crate::deploy::part::{Part, PlanKey};
use crate::deploy::process::processes;
use crate::deploy::remote::{boolean, said, Lingering, Remote, State};
use crate::deploy::report::warn_lingering;
use crate::deploy::report::Outcome;
use crate::deploy::run::{stopping, Answer, Answers, Run, Stop};
use crate::deploy::step::word::{awaiting, Awaiting, Sent};
use crate::output::Ui;
use crate::peer::term::{self, atom_term, charlist, list, Encoded, EtfWriter, Term};
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

/// How [`Remote::apply`] went.
#[derive(Debug, Clone)]
pub enum Applied {
    /// Everything loaded or removed.
    Done {
        killed: usize,
        lingering: Vec<Lingering>,
        /// What the node ran of each changed module right after: its MD5,
        /// or `None` when not loaded.
        running: Vec<(String, Option<Md5>)>,
        /// The processes migrated by their `code_change`.
        migrated: Migrated,
        /// With `--force`: those that keep a fun made by the old code the
        /// purge took; each dies when it calls it.
        doomed: Vec<Lingering>,
        /// Loaded without migrating: their `sys` loop is not OTP's own
        /// (`detail` names it).
        not_migrated: Vec<ProcessNote>,
        /// How many processes were watched after the change.
        watched: usize,
        /// Those of them that died while watched (`detail`: why).
        died: Vec<ProcessNote>,
    },
    /// Processes to migrate did not answer in time (busy in a long call):
    /// nothing was changed.
    Busy(Vec<ProcessNote>),
    /// A `code_change` failed (`causes`); the processes already migrated
    /// were taken back. `left`: those whose state is in neither shape for
    /// sure. `changed`: the new code was loaded, and `keeper` holds the
    /// processes suspended until the undo loads the prior code.
    MigrationFailed {
        causes: Vec<ProcessNote>,
        left: Vec<ProcessNote>,
        changed: bool,
        keeper: Option<Term>,
    },
    /// Old code in use and no `--force`: nothing was changed.
    Stuck(Vec<Lingering>),
    /// Told to abort, or its lock went before the word came: nothing was
    /// changed.
    Aborted,
    /// The node refused; `changed` says whether some modules were loaded
    /// before it did.
    Refused {
        reasons: Vec<(String, String)>,
        changed: bool,
    },
    /// With `--force`: the purge of old code killed `killed` processes and
    /// doomed `doomed`, then the node failed as `then` says.
    Forced {
        killed: usize,
        doomed: Vec<Lingering>,
        then: Box<Applied>,
    },
}

/// Why a node told go aborted.
pub(in crate::deploy) const LOCK_WENT: &str =
    "the node's deploy lock went before the word to load came; nothing changed there";

impl Run<'_> {
    /// Whether the apply step goes to several nodes, which then say when
    /// they have prepared.
    fn telling(&self) -> bool {
        self.parts.iter().filter(|p| !p.changes.is_empty()).count() > 1
    }

    /// Sends every node with changes its apply step, which prepares and
    /// waits for the word before changing anything.
    pub fn prepare(&mut self) -> Vec<Sent<Applied>> {
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

    /// Reads apply's value (`value`, part of `answer`).
    pub(in crate::deploy) fn applied(
        &self,
        value: &Term,
        answer: &Term,
    ) -> Result<Applied, CallError> {
        let bad = |detail: &str| self.unexpected("apply", detail, answer);
        if term::is_atom(value, "aborted") {
            return Ok(Applied::Aborted);
        }
        let items = term::as_tuple(value).map_err(|e| bad(&e.to_string()))?;
        match items {
            [tag, killed, lingering, running, migrated, more] if term::is_atom(tag, "ok") => {
                Ok(Applied::Done {
                    killed: term::as_int(killed).unwrap_or(0).max(0) as usize,
                    lingering: processes(lingering),
                    running: parse_running(running).ok_or_else(|| bad("what the node runs"))?,
                    migrated: crate::deploy::migrate::migrated(migrated)
                        .ok_or_else(|| bad("the processes migrated"))?,
                    doomed: said(more, "doomed").map(processes).unwrap_or_default(),
                    not_migrated: said(more, "not_migrated")
                        .map(crate::deploy::migrate::notes)
                        .unwrap_or_default(),
                    watched: said(more, "watched")
                        .and_then(|n| term::as_int(n).ok())
                        .and_then(|n| usize::try_from(n).ok())
                        .unwrap_or(0),
                    died: said(more, "died")
                        .map(crate::deploy::migrate::notes)
                        .unwrap_or_default(),
                })
            }
            [tag, stuck] if term::is_atom(tag, "stuck") => Ok(Applied::Stuck(processes(stuck))),
            [tag, busy] if term::is_atom(tag, "busy") => {
                Ok(Applied::Busy(crate::deploy::migrate::notes(busy)))
            }
            [tag, causes, left, changed, keeper] if term::is_atom(tag, "migrate_failed") => {
                Ok(Applied::MigrationFailed {
                    causes: crate::deploy::migrate::notes(causes),
                    left: crate::deploy::migrate::notes(left),
                    changed: term::is_atom(changed, "true"),
                    keeper: matches!(keeper, Term::Pid(_)).then(|| keeper.clone()),
                })
            }
            [tag, killed, doomed, then] if term::is_atom(tag, "forced") => Ok(Applied::Forced {
                killed: term::as_int(killed).unwrap_or(0).max(0) as usize,
                doomed: processes(doomed),
                then: Box::new(self.applied(then, answer)?),
            }),
            [tag, errors, changed] if term::is_atom(tag, "error") => Ok(Applied::Refused {
                reasons: term::as_list(errors)
                    .unwrap_or_default()
                    .iter()
                    .map(refusal)
                    .collect(),
                changed: term::is_atom(changed, "true"),
            }),
            _ => Err(bad(
                "ok, stuck, busy, error, migrate_failed, forced or aborted",
            )),
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

fn parse_running(t: &Term) -> Option<Vec<(String, Option<Md5>)>> {
    term::as_list(t)
        .ok()?
        .iter()
        .map(|item| {
            let [m, md5] = term::as_tuple_n::<2>(item).ok()?;
            let md5 = match term::is_atom(md5, "false") {
                true => None,
                false => Some(Md5(term::as_binary(md5).ok()?.try_into().ok()?)),
            };
            Some((term::as_atom(m).ok()?.to_owned(), md5))
        })
        .collect()
}

fn refusal(t: &Term) -> (String, String) {
    match term::as_tuple_n::<2>(t) {
        Ok([m, why]) => (
            term::as_atom(m)
                .map(str::to_owned)
                .unwrap_or_else(|_| term::show(m)),
            explain(why),
        ),
        Err(_) => ("?".into(), term::show(t)),
    }
}

/// A node's reason for refusing a module, in words a user acts on.
fn explain(why: &Term) -> String {
    let raw = term::show(why);
    match term::as_atom(why) {
        Ok("sticky_directory") => {
            "it is sticky (part of kernel, stdlib or compiler) and the node refuses to replace it"
                .into()
        }
        Ok("not_purged") => "old code is still loaded".into(),
        Ok("badfile") => {
            "the node rejected the object code (compiled for another OTP release?)".into()
        }
        Ok("on_load_failure") => "its -on_load function failed".into(),
        _ => raw,
    }
}
