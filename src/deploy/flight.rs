//! Inspect and apply in one round trip, for a deploy to a single node
//! whose state this tool believes it knows (what it left there last time).
//! The snapshot is taken from that belief before anything is sent; the
//! node loads only if it runs exactly what was believed and no old code
//! of a changing module is in use (unless `--force`). Otherwise nothing
//! changes, and its answer is an inspect step's: the deploy goes on the
//! usual way. On a slow link this is one round trip fewer per deploy.

use super::remote::{self, Applied, Found, Held, LockRequest, Remote, State, Step};
use crate::beam::Md5;
use crate::dist::term::{self, list};
use crate::dist::{Bindings, CallError};

const FLIGHT: &str = concat!(
    include_str!("node/prelude.erl"),
    include_str!("node/inspect.erl"),
    include_str!("node/load.erl"),
    include_str!("node/apply.erl"),
    include_str!("node/flight_main.erl")
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
    pub force: bool,
}

impl Remote {
    /// Flies `ticket` to the node: one round trip.
    pub async fn fly(&self, ticket: &Ticket<'_>) -> Result<Flight, CallError> {
        let bindings = Bindings::new()
            .set("Lock", &remote::lock_term(ticket.lock))
            .set("Mods", &remote::mods_term(ticket.want, ticket.known))
            .set("All", &remote::boolean(false))
            .set("Check", &remote::boolean(true))
            .set(
                "Believed",
                &list(ticket.believed.iter().map(remote::state_term).collect()),
            );
        let bindings =
            remote::apply_bindings(bindings, ticket.steps, ticket.force, &ticket.lock.owner)
                .encode();
        let answer = self.conn.eval(FLIGHT, &bindings, self.timeout).await?;
        let bad = |detail: &str| self.unexpected("flight", detail, &answer);
        let items = term::as_tuple(&answer).map_err(|e| bad(&e.to_string()))?;
        let asked = ticket.want.len();
        match items {
            [tag, found, applied] if term::is_atom(tag, "landed") => Ok(Flight::Landed(
                self.found(found, asked, &answer)?,
                self.applied(applied, &answer)?,
            )),
            [tag, found] if term::is_atom(tag, "inspected") => {
                Ok(Flight::Inspected(self.found(found, asked, &answer)?))
            }
            [tag, held] if term::is_atom(tag, "locked") => {
                Ok(Flight::Locked(Held(remote::proplist(held))))
            }
            _ => Err(bad("landed, inspected or locked")),
        }
    }
}

/// What `beliefs` (a node's, from the store) say it runs of each of
/// `modules`; `None` when any is unknown.
pub fn believed(
    beliefs: &std::collections::BTreeMap<String, String>,
    modules: &[&str],
) -> Option<Vec<State>> {
    modules
        .iter()
        .map(|m| beliefs.get(*m).and_then(|s| parse_belief(s)))
        .collect()
}

/// One node's modules and what it runs of each (`None`: unknown).
pub type NodeStates = (String, Vec<(String, Option<State>)>);

/// Remembers what nodes run of some modules (`None`: unknown now).
pub fn remember(store: &crate::store::Store, nodes: Vec<NodeStates>) {
    let changes = nodes
        .into_iter()
        .map(|(node, states)| {
            let states = states
                .into_iter()
                .map(|(m, s)| (m, s.map(|s| belief_text(&s))))
                .collect();
            (node, states)
        })
        .collect();
    store.update_beliefs(changes);
}

fn belief_text(state: &State) -> String {
    match state {
        State::Loaded(md5) => format!("loaded:{}", md5.to_hex()),
        State::OnDisk(md5) => format!("on_disk:{}", md5.to_hex()),
        State::Absent => "absent".into(),
    }
}

fn parse_belief(text: &str) -> Option<State> {
    match text.split_once(':') {
        Some(("loaded", hex)) => Md5::from_hex(hex).map(State::Loaded),
        Some(("on_disk", hex)) => Md5::from_hex(hex).map(State::OnDisk),
        None if text == "absent" => Some(State::Absent),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beliefs_round_trip_through_the_store() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = crate::store::Store::new(dir.path());
        let md5 = Md5([7; 16]);
        let of = |node: &str| store.all_beliefs().remove(node).unwrap_or_default();
        assert_eq!(believed(&of("n@h"), &["a"]), None);
        let states = vec![
            ("a".into(), Some(State::Loaded(md5))),
            ("b".into(), Some(State::Absent)),
            ("c".into(), Some(State::OnDisk(md5))),
        ];
        remember(&store, vec![("n@h".into(), states)]);
        assert_eq!(
            believed(&of("n@h"), &["b", "a", "c"]),
            Some(vec![State::Absent, State::Loaded(md5), State::OnDisk(md5)])
        );
        remember(&store, vec![("n@h".into(), vec![("a".into(), None)])]);
        assert_eq!(believed(&of("n@h"), &["a", "b"]), None);
        assert_eq!(believed(&of("other@h"), &["b"]), None);
    }
}
