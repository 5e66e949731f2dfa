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

use super::remote::{self, Applied, Found, Held, LockRequest, Remote, State, Step};
use crate::beam::Md5;
use crate::dist::term::{self, Encoded, Term};
use crate::dist::{CallError, Listener, Script};

pub(super) static FLIGHT: Script = Script::with_functions(
    concat!(
        include_str!("node/prelude.erl"),
        include_str!("node/load.erl"),
        include_str!("node/migrate.erl"),
        include_str!("node/apply.erl"),
        include_str!("node/inspect.erl"),
        include_str!("node/purge.erl")
    ),
    include_str!("node/flight_main.erl"),
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
    pub steps: &'a [Step<'a>],
    /// The modules `steps` load ([`remote::loads_payload`]), encoded once
    /// for every node sent the same.
    pub load: &'a Encoded,
    pub force: bool,
    /// `Migrate` ([`super::migrate::Migration::term`]).
    pub migrate: &'a Term,
}

impl Remote {
    /// Flies `ticket` to the node: one round trip. The request leaves now;
    /// the node prepares, then waits for the word for `go` ([`Remote::say`])
    /// before it changes anything. The future waits for the answer.
    pub fn fly(
        &self,
        ticket: &Ticket<'_>,
        go: remote::Awaiting,
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
        go: remote::Awaiting,
    ) -> Result<
        (
            Listener,
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
        let bindings =
            remote::inspect_bindings(Some(ticket.lock), ticket.want, ticket.known, false, true)
                .set("Believed", &remote::states_term(ticket.believed))
                .set("Migrate", ticket.migrate);
        let bindings = remote::apply_bindings(
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
