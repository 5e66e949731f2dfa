//! What the deploy engine asks of one node. Each question is one round
//! trip: a node script (`node/*.erl`, evaluated there by `erl_eval`) or a
//! pipelined batch of `rex` calls. Speaks only through [`crate::dist`];
//! turns the answers into plain Rust values.

use super::migrate::{Migrated, ProcessNote};
use super::process::processes;
pub use super::process::{show_pid, Lingering};
use crate::beam::{Md5, Module};
use crate::dist::term::{self, atom_term, binary, charlist, list, tuple, Encoded, EtfWriter, Term};
use crate::dist::{Bindings, CallError, EvalArgs, Link, Script};
use std::time::Duration;

pub(super) static INSPECT: Script = Script::with_functions(
    concat!(
        include_str!("node/prelude.erl"),
        include_str!("node/inspect.erl"),
        include_str!("node/purge.erl")
    ),
    include_str!("node/inspect_main.erl"),
);
pub(super) static APPLY: Script = Script::with_functions(
    concat!(
        include_str!("node/prelude.erl"),
        include_str!("node/load.erl"),
        include_str!("node/migrate.erl"),
        include_str!("node/apply.erl"),
        include_str!("node/purge.erl")
    ),
    include_str!("node/apply_main.erl"),
);

pub(super) static STATUS: Script = Script::with_functions(
    concat!(
        include_str!("node/prelude.erl"),
        include_str!("node/inspect.erl"),
        include_str!("node/migrate.erl")
    ),
    include_str!("node/status_main.erl"),
);

pub(super) static CALLBACKS: Script = Script::with_functions(
    concat!(
        include_str!("node/prelude.erl"),
        include_str!("node/migrate.erl")
    ),
    include_str!("node/callbacks_main.erl"),
);

/// A step of the run holding a node's lock that waits for the tool's word
/// before changing anything: its snapshot is written meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Awaiting {
    pub token: u64,
    pub step: &'static str,
}

impl Awaiting {
    /// `{Token, Step}`, as the node's scripts key the word.
    pub(super) fn term(self) -> Term {
        tuple(vec![term::int(self.token as i64), atom_term(self.step)])
    }

    /// `{Token, Step, Tell}`: the node first tells `tell` (`{Pid, Ref}`,
    /// [`crate::dist::Connection::listen`]) it has prepared.
    pub(super) fn telling(self, tell: Term) -> Term {
        tuple(vec![
            term::int(self.token as i64),
            atom_term(self.step),
            tell,
        ])
    }
}

/// What a node has of a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Loaded(Md5),
    /// Not loaded, but on the node's code path (loaded on first use).
    OnDisk(Md5),
    Absent,
}

impl State {
    /// The MD5 the node runs, or would load on first use.
    pub fn md5(self) -> Option<Md5> {
        match self {
            State::Loaded(m) | State::OnDisk(m) => Some(m),
            State::Absent => None,
        }
    }
}

/// One module as [`Remote::inspect`] found it.
#[derive(Debug, Clone)]
pub struct Found {
    pub state: State,
    /// Processes keeping old code that must go before it can change.
    pub stuck: Vec<Lingering>,
    /// For a module about to change: the node's own copy of what it runs,
    /// when that is on its code path (for the snapshot).
    pub copy: Option<Vec<u8>>,
}

/// What the node's deploy lock is taken with, and shows to others.
#[derive(Debug, Clone)]
pub struct LockRequest {
    pub token: u64,
    /// This tool's node, as the snapshot names it.
    pub owner: String,
    /// What a node's lock holder watches, to let go when this tool goes:
    /// this tool's node, or under `--via` the gateway's relay
    /// ([`Link::owner`]).
    pub watched: Term,
    pub info: Vec<(String, String)>,
    pub lease: Duration,
}

/// The lock is held by another run; what it says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held(pub Vec<(String, String)>);

/// An inspect step's answer: what the node runs, or who holds its lock.
pub type Inspected = Result<Vec<Found>, Held>;

/// A module and what to do with it, for [`Remote::apply`].
#[derive(Debug, Clone)]
pub enum Step<'a> {
    Load(&'a Module),
    Remove(&'a str),
}

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

/// What `status` learns of a node in its one request.
#[derive(Debug, Clone)]
pub struct StatusFound {
    /// One per module asked about.
    pub states: Vec<State>,
    /// The processes a deploy would migrate through `code_change`.
    pub callbacks: Vec<Lingering>,
    /// Loaded modules of the node's applications that are not local.
    pub extra: Vec<String>,
}

/// One node, as the deploy sees it.
#[derive(Debug, Clone)]
pub struct Remote {
    pub link: Link,
    pub timeout: Duration,
}

impl Remote {
    pub fn node(&self) -> String {
        self.link.node().to_string()
    }

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

    /// Reads back, without taking the lock or purging, which of `want`
    /// (module, MD5 it must run, or `None`: not loaded) the node does not
    /// run as wanted: their indexes, with what the node has instead.
    pub async fn mismatches(
        &self,
        want: &[(&str, Option<Md5>)],
    ) -> Result<Vec<(usize, State)>, CallError> {
        if want.is_empty() {
            return Ok(Vec::new());
        }
        let found = match self.inspect(None, want, &[], false, false).await? {
            Ok(found) => found,
            // Only a lock request is answered `locked`.
            Err(_) => return Ok(Vec::new()),
        };
        Ok(want
            .iter()
            .zip(found)
            .enumerate()
            .filter(|(_, ((_, md5), f))| match md5 {
                Some(md5) => f.state != State::Loaded(*md5),
                None => matches!(f.state, State::Loaded(_)),
            })
            .map(|(i, (_, f))| (i, f.state))
            .collect())
    }

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

    /// Gives the step `step` that waits for it ([`apply_payload`], a
    /// flight) the word, through the lock's holder ([`super::word`]): go
    /// (the snapshot is on disk) or abort (nothing may change). Not waited
    /// for: a step told nothing aborts when the holder goes with this
    /// connection. The script tries for as long as a call may take.
    pub fn say(&self, step: Awaiting, go: bool) {
        let word = if go { "go" } else { "abort" };
        let tries = self.timeout.as_millis().min(3_600_000) as u64;
        let args = super::word::say_args(step.term(), word, tries);
        let link = self.link.clone();
        let timeout = self.timeout;
        tokio::spawn(async move { link.call("erl_eval", "exprs", args, timeout).await });
    }

    /// Gives the flight `step`, which has told the tool it prepared (so
    /// its run's holder is there), the word: go or abort. One message
    /// straight to the holder ([`super::word::message`]); not waited for,
    /// as with [`Remote::say`].
    pub fn say_to_holder(&self, step: Awaiting, go: bool) {
        let word = if go { "go" } else { "abort" };
        let (link, timeout) = (&self.link, self.timeout);
        let sent = link.listen().and_then(|(address, taken)| {
            let message = super::word::message(step.term(), word, &address)
                .ok_or_else(|| self.unexpected("word", "{Pid, Ref}", &address))?;
            link.send("hotswap_deploy_lock", message)?;
            Ok(taken)
        });
        match sent {
            Ok(taken) => {
                tokio::spawn(async move { taken.message(timeout, "the deploy lock").await });
            }
            // The step aborts when the holder goes with this connection.
            Err(e) => tracing::debug!("the word {word} was not sent: {e}"),
        }
    }

    /// Reads apply's value (`value`, part of `answer`).
    pub(super) fn applied(&self, value: &Term, answer: &Term) -> Result<Applied, CallError> {
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
                    migrated: super::migrate::migrated(migrated)
                        .ok_or_else(|| bad("the processes migrated"))?,
                    doomed: said(more, "doomed").map(processes).unwrap_or_default(),
                    not_migrated: said(more, "not_migrated")
                        .map(super::migrate::notes)
                        .unwrap_or_default(),
                    watched: said(more, "watched")
                        .and_then(|n| term::as_int(n).ok())
                        .and_then(|n| usize::try_from(n).ok())
                        .unwrap_or(0),
                    died: said(more, "died")
                        .map(super::migrate::notes)
                        .unwrap_or_default(),
                })
            }
            [tag, stuck] if term::is_atom(tag, "stuck") => Ok(Applied::Stuck(processes(stuck))),
            [tag, busy] if term::is_atom(tag, "busy") => {
                Ok(Applied::Busy(super::migrate::notes(busy)))
            }
            [tag, causes, left, changed, keeper] if term::is_atom(tag, "migrate_failed") => {
                Ok(Applied::MigrationFailed {
                    causes: super::migrate::notes(causes),
                    left: super::migrate::notes(left),
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

    /// Lets go of the node's deploy lock: a message to its holder, not a
    /// call. If it is lost, the lock still goes when this connection does.
    pub fn release(&self, lock: &LockRequest) {
        let message = tuple(vec![atom_term("release"), term::int(lock.token as i64)]);
        if let Err(e) = self.link.send("hotswap_deploy_lock", message) {
            tracing::debug!("the lock of {} was not released: {e}", self.node());
        }
    }

    /// The processes whose callback module is one of `modules`: those a
    /// deploy of them would migrate (if their new code exports
    /// `code_change`). Read-only; no lock.
    pub async fn callback_processes(&self, modules: &[&str]) -> Result<Vec<Lingering>, CallError> {
        if modules.is_empty() {
            return Ok(Vec::new());
        }
        let mods = list(modules.iter().map(|m| atom_term(m)).collect());
        let bindings = Bindings::new().set("Mods", &mods).encode();
        let answer = self.link.eval(&CALLBACKS, &bindings, self.timeout).await?;
        match term::as_list(&answer) {
            Ok(_) => Ok(processes(&answer)),
            Err(e) => Err(self.unexpected("callbacks", &e.to_string(), &answer)),
        }
    }

    /// The status step ([`super::status`]): what the node runs of `want`,
    /// the processes of `migrating` (those whose local build exports
    /// `code_change`) a deploy would migrate, and the loaded modules of
    /// `apps` not in `want`. The request leaves now; the future waits for
    /// the answer.
    pub fn status_step(
        &self,
        want: &[(&str, Option<Md5>)],
        migrating: &[&str],
        apps: &[String],
    ) -> impl std::future::Future<Output = Result<StatusFound, CallError>> + Send + 'static {
        let bindings = Bindings::new()
            .set("Mods", &mods_term(want, &[]))
            .set(
                "Migrating",
                &list(migrating.iter().map(|m| atom_term(m)).collect()),
            )
            .set("Apps", &list(apps.iter().map(|a| atom_term(a)).collect()))
            .encode();
        let answer = self.link.eval(&STATUS, &bindings, self.timeout);
        let (me, asked) = (self.clone(), want.len());
        async move {
            let answer = answer.await?;
            let bad = |detail: &str| me.unexpected("status", detail, &answer);
            let [states, callbacks, extra] =
                term::as_tuple_n::<3>(&answer).map_err(|e| bad(&e.to_string()))?;
            let states = term::as_list(states)
                .map_err(|e| bad(&e.to_string()))?
                .iter()
                .map(parse_state)
                .collect::<Option<Vec<State>>>()
                .filter(|s| s.len() == asked)
                .ok_or_else(|| bad("a state per module"))?;
            let extra = term::as_list(extra)
                .map_err(|e| bad(&e.to_string()))?
                .iter()
                .map(|m| term::as_atom(m).map(str::to_owned))
                .collect::<Result<Vec<String>, _>>()
                .map_err(|e| bad(&e.to_string()))?;
            Ok(StatusFound {
                states,
                callbacks: processes(callbacks),
                extra,
            })
        }
    }

    /// The nodes this node is connected to (visible ones).
    pub async fn connected_nodes(&self) -> Result<Vec<String>, CallError> {
        let t = self
            .link
            .call("erlang", "nodes", vec![], self.timeout)
            .await?;
        Ok(term::as_list(&t)
            .unwrap_or_default()
            .iter()
            .filter_map(|n| term::as_atom(n).ok().map(str::to_owned))
            .collect())
    }

    pub(super) fn unexpected(&self, script: &str, expected: &str, got: &Term) -> CallError {
        CallError::Unexpected {
            node: self.node(),
            function: format!("the {script} script"),
            detail: format!("expected {expected}, but got {}", term::show(got)),
        }
    }
}

/// Inspect's bindings: `Lock`, `Mods`, `All` and `Check`.
pub(super) fn inspect_bindings(
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

/// States as the inspect script reports them.
pub(super) fn states_term(states: &[State]) -> Term {
    list(states.iter().map(state_term).collect())
}

/// A state as the inspect script reports it.
fn state_term(state: &State) -> Term {
    let tagged = |tag: &str, md5: &Md5| tuple(vec![atom_term(tag), binary(md5.0.to_vec())]);
    match state {
        State::Loaded(md5) => tagged("loaded", md5),
        State::OnDisk(md5) => tagged("on_disk", md5),
        State::Absent => atom_term("absent"),
    }
}

/// `[{Module, Want, Known}]` for the inspect script: `Want` the MD5 the
/// module is to run (or `absent`), `Known` the MD5s of it the store has.
fn mods_term(want: &[(&str, Option<Md5>)], known: &[Vec<Md5>]) -> Term {
    let mods = want
        .iter()
        .enumerate()
        .map(|(i, (m, md5))| {
            let want = md5.map_or_else(|| atom_term("absent"), |m| binary(m.0.to_vec()));
            let known = known
                .get(i)
                .map(|k| k.iter().map(|m| binary(m.0.to_vec())).collect())
                .unwrap_or_default();
            tuple(vec![atom_term(m), want, list(known)])
        })
        .collect();
    list(mods)
}

/// The bindings of the apply script, encoded once for every node that gets
/// the same steps, whatever their number: module binaries are written
/// straight from the files' bytes.
/// With `go`, the node prepares, then changes nothing before the tool's
/// word for that step ([`Remote::say`]). `migrate`:
/// [`super::migrate::Migration::term`].
pub fn apply_payload(
    steps: &[Step<'_>],
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

/// The modules `steps` load.
pub(super) fn loads_of<'a>(steps: &[Step<'a>]) -> Vec<&'a Module> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Load(m) => Some(*m),
            Step::Remove(_) => None,
        })
        .collect()
}

fn removes_of(steps: &[Step<'_>]) -> Vec<Term> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Remove(m) => Some(atom_term(m)),
            Step::Load(_) => None,
        })
        .collect()
}

/// `bindings` with apply's (`Owner`, `Force`, `Remove`, `Go`, and `Load`:
/// [`loads_payload`] of `steps`), encoded.
pub(super) fn apply_bindings(
    bindings: Bindings,
    steps: &[Step<'_>],
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
pub fn loads_payload(steps: &[Step<'_>]) -> Encoded {
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

fn lock_term(lock: &LockRequest) -> Term {
    let info = lock
        .info
        .iter()
        .map(|(k, v)| tuple(vec![atom_term(k), binary(v.as_bytes().to_vec())]))
        .collect();
    tuple(vec![
        term::int(lock.token as i64),
        lock.watched.clone(),
        list(info),
        term::int(lock.lease.as_millis().min(u128::from(u32::MAX)) as i64),
    ])
}

fn boolean(b: bool) -> Term {
    atom_term(if b { "true" } else { "false" })
}

fn parse_state(t: &Term) -> Option<State> {
    if term::is_atom(t, "absent") {
        return Some(State::Absent);
    }
    let [tag, md5] = term::as_tuple_n::<2>(t).ok()?;
    let md5 = Md5(term::as_binary(md5).ok()?.try_into().ok()?);
    match term::as_atom(tag).ok()? {
        "loaded" => Some(State::Loaded(md5)),
        "on_disk" => Some(State::OnDisk(md5)),
        _ => None,
    }
}

/// `[{Module, Md5 | false}]`.
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

/// `[{Index, Value}]` with 1-based indexes below `asked`, as 0-based.
fn indexed(list: &Term, asked: usize) -> Option<Vec<(usize, Term)>> {
    term::as_list(list)
        .ok()?
        .into_iter()
        .map(|item| {
            let [index, value] = term::as_tuple_n::<2>(&item).ok()?;
            let i = usize::try_from(term::as_int(index).ok()?).ok()?;
            (1..=asked).contains(&i).then(|| (i - 1, value.clone()))
        })
        .collect()
}

pub(super) fn proplist(t: &Term) -> Vec<(String, String)> {
    term::as_list(t)
        .unwrap_or_default()
        .iter()
        .filter_map(|item| {
            let [k, v] = term::as_tuple_n::<2>(item).ok()?;
            Some((term::as_atom(k).ok()?.to_owned(), term::as_text(v).ok()?))
        })
        .collect()
}

/// The value of `tag` in a list of `{Tag, Value}`: what an answer says
/// besides its fixed parts, so that it can say more later.
fn said<'a>(t: &'a Term, tag: &str) -> Option<&'a Term> {
    let Term::List(l) = t else { return None };
    l.elements
        .iter()
        .find_map(|item| match term::as_tuple_n::<2>(item) {
            Ok([k, v]) if term::is_atom(k, tag) => Some(v),
            _ => None,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::term::int;

    fn pair(i: i64, value: &str) -> Term {
        tuple(vec![int(i), atom_term(value)])
    }

    #[test]
    fn indexed_entries_are_one_based_and_must_name_a_module_asked_about() {
        let entries = list(vec![pair(1, "a"), pair(3, "c")]);
        let found = indexed(&entries, 3).expect("in range");
        assert_eq!(
            found,
            vec![(0, atom_term("a")), (2, atom_term("c"))],
            "1-based on the node, 0-based here"
        );
        assert_eq!(indexed(&entries, 2), None, "3 of 2 modules");
        assert_eq!(indexed(&list(vec![pair(0, "a")]), 2), None, "0 is no index");
        assert_eq!(indexed(&list(vec![atom_term("a")]), 2), None, "not a pair");
    }
}
