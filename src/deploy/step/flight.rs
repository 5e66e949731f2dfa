//! Inspect and apply in one request, for a deploy to nodes whose states
//! this tool believes it knows (what it left there last time). The
//! snapshot is taken from that belief while each node takes the lock,
//! inspects and prepares: it changes nothing before the word that the
//! snapshot is on disk, and, with several nodes, that every node has
//! prepared. It loads only if it runs exactly what was believed and no old
//! code of a changing module is in use (unless `--force`). Otherwise
//! nothing changes, and its answer is an inspect step's: the deploy goes
//! on the usual way. On a slow link this is one round trip fewer per
//! deploy to one node; to several, the second round trip is a message to
//! each node instead of a script.

use super::applied::Applied;
use super::apply::{applied, loads_payload, LOCK_WENT};
use super::inspect::{decided, locked_message};
use super::verify::landed_anyway;
use crate::beam::Md5;
use crate::deploy::belief::Beliefs;
use crate::deploy::decide::Change;
use crate::deploy::goal::Action;
use crate::deploy::goal::Kind;
use crate::deploy::options::Options;
use crate::deploy::part::{Part, PlanKey};
use crate::deploy::remote::{self, Found, Held, LockRequest, Remote, State};
use crate::deploy::report::Outcome;
use crate::deploy::run::{stopping, Answer, Run, Stop};
use crate::deploy::step::word::awaiting;
use crate::output::Ui;
use crate::peer::term::{self, Encoded, Term};
use crate::peer::{CallError, Script};
use futures::future::join_all;
use std::collections::HashMap;

pub(in crate::deploy) static FLIGHT: Script = Script::with_functions(
    concat!(
        include_str!("../node/prelude.erl"),
        include_str!("../node/load.erl"),
        include_str!("../node/migrate.erl"),
        include_str!("../node/apply.erl"),
        include_str!("../node/inspect.erl"),
        include_str!("../node/purge.erl")
    ),
    include_str!("../node/flight_main.erl"),
);

/// How a flight went.
#[derive(Debug)]
pub enum Flight {
    /// The node was as believed and loaded: what inspect would have
    /// found, and what apply did.
    Landed(Vec<Found>, Applied),
    /// The node was not as believed; nothing changed. What it runs.
    Inspected(Vec<Found>),
    /// Another run holds the node's lock.
    Locked(Held),
}

/// What to send on a flight.
pub struct Ticket<'a> {
    pub lock: &'a LockRequest,
    /// Every goal: module and the MD5 it is to run (`None`: removed).
    pub want: &'a [(&'a str, Option<Md5>)],
    pub known: &'a [Vec<Md5>],
    /// What the node is believed to run of each module of `want`.
    pub believed: &'a [State],
    /// The changes, if the belief holds.
    pub steps: &'a [Action<'a>],
    /// The modules `steps` load ([`super::apply::loads_payload`]), encoded once
    /// for every node sent the same.
    pub load: &'a Encoded,
    pub force: bool,
    /// `Migrate` ([`crate::deploy::migrate::Migration::term`]).
    pub migrate: &'a Term,
}

impl Remote {
    /// Flies `ticket` to the node: one round trip. The request leaves now;
    /// the node prepares, then waits for the word for `go` ([`Remote::say`])
    /// before it changes anything. The future waits for the answer.
    pub fn fly(
        &self,
        ticket: &Ticket<'_>,
        go: super::word::Awaiting,
    ) -> impl std::future::Future<Output = Result<Flight, CallError>> + Send + 'static {
        self.send_flight(ticket, go.term())
    }

    /// As [`Remote::fly`], for one of several nodes: the node also says,
    /// to the listener returned, when it has prepared (its answer comes
    /// first if it does not), and the word for `go` may be given only then
    /// ([`Remote::say_to_holder`]).
    pub fn fly_telling(
        &self,
        ticket: &Ticket<'_>,
        go: super::word::Awaiting,
    ) -> Result<
        (
            crate::peer::Listener,
            impl std::future::Future<Output = Result<Flight, CallError>> + Send + 'static,
        ),
        CallError,
    > {
        let (address, prepared) = self.link.listen()?;
        Ok((prepared, self.send_flight(ticket, go.telling(address))))
    }

    fn send_flight(
        &self,
        ticket: &Ticket<'_>,
        go: Term,
    ) -> impl std::future::Future<Output = Result<Flight, CallError>> + Send + 'static {
        let bindings = super::inspect::inspect_bindings(
            Some(ticket.lock),
            ticket.want,
            ticket.known,
            false,
            true,
        )
        .set("Believed", &remote::states_term(ticket.believed))
        .set("Migrate", ticket.migrate);
        let bindings = super::apply::apply_bindings(
            bindings,
            ticket.steps,
            ticket.force,
            &ticket.lock.watched,
            go,
            ticket.load,
        );
        let answer = self.link.eval(&FLIGHT, &bindings, self.timeout);
        let (me, asked) = (self.clone(), ticket.want.len());
        async move { me.landing(&answer.await?, asked) }
    }

    fn landing(&self, answer: &Term, asked: usize) -> Result<Flight, CallError> {
        let bad = |detail: &str| self.unexpected("flight", detail, answer);
        let items = term::as_tuple(answer).map_err(|e| bad(&e.to_string()))?;
        match items {
            [tag, found, applied] if term::is_atom(tag, "landed") => Ok(Flight::Landed(
                self.found(found, asked, answer)?,
                self.applied(applied, answer)?,
            )),
            [tag, found] if term::is_atom(tag, "inspected") => {
                Ok(Flight::Inspected(self.found(found, asked, answer)?))
            }
            [tag, held] if term::is_atom(tag, "locked") => {
                Ok(Flight::Locked(Held(remote::proplist(held))))
            }
            _ => Err(bad("landed, inspected or locked")),
        }
    }
}

/// How the flight went ([`crate::deploy::step::flight`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flew {
    /// Not tried: not a deploy to nodes whose states are believed known.
    NotTried,
    /// The nodes were as believed, and loaded.
    Landed,
    /// Some node was not as believed, and none changed: the flight was
    /// every node's inspect step.
    Inspected,
}

impl Run<'_> {
    /// A deploy to nodes whose states the store believes it knows sends
    /// each node inspect and apply in one request, and takes its snapshot
    /// from that belief meanwhile ([`self`]). A node loads only if
    /// the belief holds, once the snapshot is on disk and, with several
    /// nodes, once every node has prepared; otherwise none changes, and
    /// the answers are the inspect step's.
    pub async fn fly(&mut self) -> Result<Flew, Stop> {
        let Some(beliefs) = self.beliefs() else {
            return Ok(Flew::NotTried);
        };
        self.check_interrupt()?;
        let go = awaiting(&self.lock, "flight");
        let lone = self.parts.len() == 1;
        self.listen_apart();
        let flights = self.send_flights(&beliefs, go, !lone);
        self.send_queued();
        let written = self.snapshot().and_then(|()| self.check_interrupt());
        self.lap("snapshot");
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
            self.check_interrupt()?;
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
        go: crate::deploy::step::word::Awaiting,
        telling: bool,
    ) -> Vec<(Option<crate::peer::Listener>, Answer<Flight>)> {
        let mut loads: HashMap<PlanKey, Encoded> = HashMap::new();
        let known = self.known_md5s();
        self.parts
            .iter()
            .zip(beliefs)
            .map(|(p, believed)| {
                let (want, known) = p.wanted(&known);
                let steps = p.steps();
                let load = loads
                    .entry(p.plan_key())
                    .or_insert_with(|| loads_payload(&steps));
                let migrate = p.migrate_term(&self.migration, self.opts.care);
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

    /// What the store believes every node runs of every goal, if it
    /// believes it knows all of them and some node has changes, for a
    /// flight ([`Run::fly`]); sets the changes that belief implies.
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
            prior: crate::store::Prior::Absent,
        })
        .collect();
    Some(belief.states)
}

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
            decided(p, found, kind, opts, ui);
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
    match decided(p, found, kind, opts, ui) {
        true => Ok(Flew::Inspected),
        false => Err(Outcome::Refused),
    }
}
