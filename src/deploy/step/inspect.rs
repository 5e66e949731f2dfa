//! [`Instruction::Lock`](crate::deploy::plan::Instruction::Lock) and
//! [`Instruction::Inspect`](crate::deploy::plan::Instruction::Inspect): one
//! request per node takes its deploy lock, then says what it runs of each
//! goal and which processes keep old code; what that means for the node's
//! goals is decided here ([`crate::deploy::decide`]). Refuses where old
//! code is in use (without `--force`) or, for a rollback, where the node
//! no longer runs what was deployed. The lock's undo is its release, at
//! the end of every run.

use crate::beam::Md5;
use crate::deploy::decide::decide;
use crate::deploy::goal::Kind;
use crate::deploy::options::Options;
use crate::deploy::part::Part;
use crate::deploy::process::processes;
use crate::deploy::remote::{
    boolean, indexed, lock_term, mods_term, parse_state, proplist, Found, Held, Inspected,
    LockRequest, Remote,
};
use crate::deploy::report::{warn_lingering, Outcome};
use crate::deploy::run::{stopping, Run, Stop};
use crate::output::Ui;
use crate::peer::term::{self, atom_term, Term};
use crate::peer::CallError;
use crate::peer::{Bindings, EvalArgs, Script};
use futures::future::join_all;

impl Run<'_> {
    /// Takes each node's lock and learns what it runs; decides what changes.
    pub async fn inspect(&mut self) -> Result<(), Stop> {
        let answers = join_all(self.ask_inspect()).await;
        let (kind, opts, ui) = (self.kind, self.opts, self.ui);
        let taken = self
            .parts
            .iter_mut()
            .zip(answers)
            .map(|(p, answer)| take_in(p, answer, kind, opts, ui));
        match stopping(taken.filter_map(Result::err).collect()) {
            Some(o) => Err(self.stop(o)),
            None => Ok(()),
        }
    }

    /// Sends every node its inspect step; the futures wait for the answers.
    fn ask_inspect(&self) -> Vec<impl std::future::Future<Output = Result<Inspected, CallError>>> {
        let known = self.known_md5s();
        self.parts
            .iter()
            .map(|p| {
                let (want, known) = p.wanted(&known);
                p.remote
                    .inspect_step(&self.lock, &want, &known, self.opts.all)
            })
            .collect()
    }
}

/// Takes in what the node's inspect answer means for its goals. Returns
/// false when the node refuses (old code in use, or drift, without
/// `--force`).
pub(in crate::deploy) fn decided(
    p: &mut Part,
    found: Vec<Found>,
    kind: Kind,
    opts: &Options,
    ui: &Ui,
) -> bool {
    p.states = found.iter().map(|f| Some(f.state)).collect();
    let d = decide(&p.goals, found, kind, opts.all, opts.force);
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
    p.changes = d.changes;
    !refused
}

pub(in crate::deploy) fn locked_message(node: &str, held: &Held) -> String {
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
            match decided(p, found, kind, opts, ui) {
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

pub(in crate::deploy) static INSPECT: Script = Script::with_functions(
    concat!(
        include_str!("../node/prelude.erl"),
        include_str!("../node/inspect.erl"),
        include_str!("../node/purge.erl")
    ),
    include_str!("../node/inspect_main.erl"),
);

impl Remote {
    /// Takes the lock (if `lock` is given), then reports each module's
    /// state and, with `check`, the processes that keep old code, and for
    /// those about to change (differing from `want`, or all with `all`) the
    /// node's own copy unless its MD5 is among `known` (same order as
    /// `want`; missing entries know nothing).
    pub async fn inspect(
        &self,
        lock: Option<&LockRequest>,
        want: &[(&str, Option<Md5>)],
        known: &[Vec<Md5>],
        all: bool,
        check: bool,
    ) -> Result<Result<Vec<Found>, Held>, CallError> {
        let bindings = inspect_bindings(lock, want, known, all, check).encode();
        self.ask_inspect(&bindings, want.len()).await
    }

    /// The inspect step: as [`Remote::inspect`] with the lock. The request
    /// leaves now; the future waits for the answer.
    pub fn inspect_step(
        &self,
        lock: &LockRequest,
        want: &[(&str, Option<Md5>)],
        known: &[Vec<Md5>],
        all: bool,
    ) -> impl std::future::Future<Output = Result<Inspected, CallError>> + Send + 'static {
        let bindings = inspect_bindings(Some(lock), want, known, all, true).encode();
        self.ask_inspect(&bindings, want.len())
    }

    fn ask_inspect(
        &self,
        bindings: &EvalArgs,
        asked: usize,
    ) -> impl std::future::Future<Output = Result<Inspected, CallError>> + Send + 'static {
        let answer = self.link.eval(&INSPECT, bindings, self.timeout);
        let me = self.clone();
        async move {
            let answer = answer.await?;
            let bad = |detail: &str| me.unexpected("inspect", detail, &answer);
            match term::as_tuple(&answer).map_err(|e| bad(&e.to_string()))? {
                [tag, held] if term::is_atom(tag, "locked") => Ok(Err(Held(proplist(held)))),
                [tag, found] if term::is_atom(tag, "ok") => {
                    Ok(Ok(me.found(found, asked, &answer)?))
                }
                _ => Err(bad("ok or locked")),
            }
        }
    }

    /// Reads inspect's `{States, Stuck, Copies}`: a state per module asked
    /// about, then `{Index, Processes}` and `{Index, Binary}` for the few
    /// that have any (1-based indexes).
    pub(super) fn found(
        &self,
        value: &Term,
        asked: usize,
        answer: &Term,
    ) -> Result<Vec<Found>, CallError> {
        let bad = |detail: &str| self.unexpected("inspect", detail, answer);
        let [states, stuck, copies] =
            term::as_tuple_n::<3>(value).map_err(|e| bad(&e.to_string()))?;
        let states = term::as_list(states).map_err(|e| bad(&e.to_string()))?;
        if states.len() != asked {
            return Err(bad("one state per module"));
        }
        let mut found = Vec::with_capacity(asked);
        for state in &states {
            found.push(Found {
                state: parse_state(state).ok_or_else(|| bad("a module state"))?,
                stuck: Vec::new(),
                copy: None,
            });
        }
        for (i, procs) in indexed(stuck, asked).ok_or_else(|| bad("{Index, Processes}"))? {
            found[i].stuck = processes(&procs);
        }
        for (i, copy) in indexed(copies, asked).ok_or_else(|| bad("{Index, Binary}"))? {
            let copy = term::as_binary(&copy).map_err(|e| bad(&e.to_string()))?;
            found[i].copy = Some(copy.to_vec());
        }
        Ok(found)
    }
}

/// Inspect's bindings: `Lock`, `Mods`, `All` and `Check`.
pub(in crate::deploy) fn inspect_bindings(
    lock: Option<&LockRequest>,
    want: &[(&str, Option<Md5>)],
    known: &[Vec<Md5>],
    all: bool,
    check: bool,
) -> Bindings {
    Bindings::new()
        .set("Lock", &lock.map_or_else(|| atom_term("none"), lock_term))
        .set("Mods", &mods_term(want, known))
        .set("All", &boolean(all))
        .set("Check", &boolean(check))
}
