//! The tool's word to a step that waits for it before changing anything
//! (a flight, or an apply step sent before its snapshot was on disk): go,
//! or abort. It goes to the node's lock holder, keyed by run and step
//! (`node/inspect.erl`'s `hold`, `node/apply.erl`'s `await_go`). A flight
//! registers its holder itself, so the word may come before the holder is
//! there, or while a previous run's still is (which does not acknowledge
//! it). The word is therefore this expression, evaluated on the node:
//!
//! ```erlang
//! (fun Say(N, _) when N =< 0 -> lost;
//!      Say(N, D) ->
//!          Ref = make_ref(),
//!          catch hotswap_deploy_lock ! {say, Key, Word, self(), Ref},
//!          P = max(1, min(32, D - 32)),
//!          receive
//!              {Ref, taken} -> taken;
//!              {Ref, {not_mine, H}} ->
//!                  M = monitor(process, H),
//!                  receive {'DOWN', M, _, _, _} -> Say(N div 2, 1)
//!                  after N -> lost end
//!          after P -> Say(N - P, D + 1) end
//!  end)(Tries, 1)
//! ```
//!
//! Another run's holder answers `not_mine`: the word then waits for that
//! holder to go, one message to it, not one a millisecond (its run may
//! hold the lock for the whole of its lease). While no holder is there,
//! the word tries every millisecond for the first 32, then ever less
//! often, up to every 32 ms.
//!
//! sent as abstract syntax to `erl_eval:exprs/2`: without the evaluator's
//! bootstrap and a packed script, it is half the bytes, and a device behind
//! a slow link pays for every byte of every deploy.
//!
//! A step that has told the tool it prepared (a flight to several nodes)
//! has its run's holder there already: its word is the message alone,
//! sent straight to the holder (`message`).

//! The point of no return of a plan
//! ([`Instruction::PointOfNoReturn`](crate::deploy::plan::Instruction::PointOfNoReturn))
//! is this word: `Run::gather` says it once every node has prepared.

use crate::deploy::remote::LockRequest;
use crate::deploy::remote::Remote;
use crate::deploy::run::{Answer, Run};
use crate::peer::eval::ast::*;
use crate::peer::term::{self, atom_term, list, tuple, Term};
use crate::peer::Call;
use crate::peer::{CallError, Listener};
use futures::future::{join_all, Either};

/// The arguments of `erl_eval:exprs/2` that give `word` for `key` (the
/// run's lock token and step), trying for about `tries` milliseconds.
fn say_args(key: Term, word: &str, tries: u64) -> Vec<Term> {
    let bindings = list(vec![
        tuple(vec![atom_term("Key"), key]),
        tuple(vec![atom_term("Tries"), term::int(tries as i64)]),
        tuple(vec![atom_term("Word"), atom_term(word)]),
    ]);
    vec![list(vec![say()]), bindings]
}

/// `{say, Key, Word, Pid, Ref}`: `word` for `key`, acknowledged to
/// `reply_to` (`{Pid, Ref}`); `None` if `reply_to` is not such a pair.
fn message(key: Term, word: &str, reply_to: &Term) -> Option<Term> {
    let [pid, reference] = term::as_tuple_n::<2>(reply_to).ok()?;
    Some(tuple(vec![
        atom_term("say"),
        key,
        atom_term(word),
        pid.clone(),
        reference.clone(),
    ]))
}

fn say() -> Term {
    let message = tuple_of(vec![
        atom("say"),
        var("Key"),
        var("Word"),
        local("self", vec![]),
        var("Ref"),
    ]);
    let taken = clause(
        vec![tuple_of(vec![var("Ref"), atom("taken")])],
        vec![atom("taken")],
    );
    let not_mine = clause(
        vec![tuple_of(vec![
            var("Ref"),
            tuple_of(vec![atom("not_mine"), var("H")]),
        ])],
        vec![
            matching(var("M"), local("monitor", vec![atom("process"), var("H")])),
            receive_after(
                vec![clause(
                    vec![tuple_of(vec![
                        atom("DOWN"),
                        var("M"),
                        var("_"),
                        var("_"),
                        var("_"),
                    ])],
                    vec![apply(
                        var("Say"),
                        vec![op("div", var("N"), integer(2)), integer(1)],
                    )],
                )],
                var("N"),
                vec![atom("lost")],
            ),
        ],
    );
    let again = apply(
        var("Say"),
        vec![op("-", var("N"), var("P")), op("+", var("D"), integer(1))],
    );
    // max(1, min(32, D - 32)): 1 ms for the first 33 tries, then a
    // millisecond longer each time, up to 32.
    let pause = local(
        "max",
        vec![
            integer(1),
            local(
                "min",
                vec![
                    integer(MAX_PAUSE_MS),
                    op("-", var("D"), integer(FAST_TRIES)),
                ],
            ),
        ],
    );
    let attempt = clause(
        vec![var("N"), var("D")],
        vec![
            matching(var("Ref"), local("make_ref", vec![])),
            catching(op("!", atom("hotswap_deploy_lock"), message)),
            matching(var("P"), pause),
            receive_after(vec![taken, not_mine], var("P"), vec![again]),
        ],
    );
    let done = guarded(
        vec![var("N"), var("_")],
        op("=<", var("N"), integer(0)),
        vec![atom("lost")],
    );
    apply(
        named_fun("Say", vec![done, attempt]),
        vec![var("Tries"), integer(1)],
    )
}

/// The longest pause between two tries of the word while no holder is
/// there.
const MAX_PAUSE_MS: i64 = 32;

/// How many tries of the word come a millisecond apart before the pauses
/// grow: a flight registers its holder once the node has parsed its
/// request (a few milliseconds; some 30 on a device-class CPU), and the
/// word waits for it. Pauses that doubled from the first had it come up
/// to twice as late as the holder.
const FAST_TRIES: i64 = 32;

/// A step of the run holding a node's lock that waits for the tool's word
/// before changing anything: its snapshot is written meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Awaiting {
    pub token: u64,
    pub step: &'static str,
}

impl Awaiting {
    /// `{Token, Step}`, as the node's scripts key the word.
    pub fn term(self) -> Term {
        tuple(vec![term::int(self.token as i64), atom_term(self.step)])
    }

    /// `{Token, Step, Tell}`: the node first tells `tell` (`{Pid, Ref}`,
    /// [`crate::peer::Connection::listen`]) it has prepared.
    pub fn telling(self, tell: Term) -> Term {
        tuple(vec![
            term::int(self.token as i64),
            atom_term(self.step),
            tell,
        ])
    }
}

/// The step of this run that waits for the word that the snapshot is on
/// disk: `"flight"` or `"apply"` (a flight that found the node otherwise
/// is followed by an apply step, which must not take the flight's word).
pub fn awaiting(lock: &LockRequest, step: &'static str) -> Awaiting {
    Awaiting {
        token: lock.token,
        step,
    }
}

/// A step's request to one node, sent: with a listener for its word that
/// it prepared (a step to several nodes), and its answer on its way;
/// `None` for a node sent nothing.
pub type Sent<T> = Option<(Option<Listener>, Answer<T>)>;

/// Where a step to one of several nodes (a flight, an apply step) stands
/// once the node has said it prepared, or answered without.
enum Heard<T> {
    Prepared(Answer<T>),
    Answered(Result<T, CallError>),
}

/// Logged for a node of a step to several nodes that says it prepared.
pub const PREPARED: &str = "the node runs what was believed; it prepared the changes";

impl Remote {
    /// Gives the step `step` that waits for it (an apply step, a
    /// flight) the word, through the lock's holder ([`self`]): go
    /// (the snapshot is on disk) or abort (nothing may change). Not waited
    /// for: a step told nothing aborts when the holder goes with this
    /// connection. The script tries for as long as a call may take.
    pub fn say(&self, step: Awaiting, go: bool) {
        let word = if go { "go" } else { "abort" };
        let tries = self.timeout.as_millis().min(3_600_000) as u64;
        let args = say_args(step.term(), word, tries);
        // Sent now, not when the task first runs: a run that ends right
        // after must not say goodbye before its word.
        let answer = self
            .link
            .call(Call::new("erl_eval", "exprs", args), self.timeout);
        tokio::spawn(answer);
    }

    /// Gives the flight `step`, which has told the tool it prepared (so
    /// its run's holder is there), the word: go or abort. One message
    /// straight to the holder (`message`); not waited for,
    /// as with [`Remote::say`].
    pub fn say_to_holder(&self, step: Awaiting, go: bool) {
        let word = if go { "go" } else { "abort" };
        let (link, timeout) = (&self.link, self.timeout);
        let sent = link.listen().and_then(|(address, taken)| {
            let message = message(step.term(), word, &address)
                .ok_or_else(|| self.unexpected("word", "{Pid, Ref}", &address))?;
            link.send("hotswap_deploy_lock", message)?;
            Ok(taken)
        });
        match sent {
            Ok(taken) => {
                // The holder answers: a round trip, as a request is.
                crate::timings::trip(&self.node());
                tokio::spawn(async move { taken.message(timeout, "the deploy lock").await });
            }
            // The step aborts when the holder goes with this connection.
            Err(e) => tracing::debug!("the word {word} was not sent: {e}"),
        }
    }
}

impl Run<'_> {
    /// Waits until every node sent a step (`steps`, in the order of the
    /// parts; `None` for a node sent nothing) has prepared or answered;
    /// then says go to every node if all of them prepared, `written` (the
    /// snapshot is on disk) and no Ctrl-C came, else abort to those that
    /// prepared. Every node's answer, and whether the word was go.
    pub async fn gather<T: Send + 'static>(
        &self,
        steps: Vec<Sent<T>>,
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
}
