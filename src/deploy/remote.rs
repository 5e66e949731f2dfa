//! One node, as the deploy sees it: its link, and what every step's
//! request and answer have in common (module states, the lock, parsing
//! helpers). Each step's own request, node script and parser live in its
//! file under [`super::step`]. Speaks only through [`crate::peer`].

pub use super::process::{show_pid, Lingering};
use crate::beam::Md5;
use crate::peer::term::{self, atom_term, binary, list, tuple, Term};
use crate::peer::Call;
use crate::peer::CallError;
use crate::reach::Route;
use std::time::Duration;

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
    /// ([`crate::reach::route::Route::owner`]).
    pub watched: Term,
    pub info: Vec<(String, String)>,
    pub lease: Duration,
}

/// The lock is held by another run; what it says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held(pub Vec<(String, String)>);

/// An inspect step's answer: what the node runs, or who holds its lock.
pub type Inspected = Result<Vec<Found>, Held>;

/// One node, as the deploy sees it.
#[derive(Debug, Clone)]
pub struct Remote {
    pub link: Route,
    pub timeout: Duration,
}

impl Remote {
    pub fn node(&self) -> String {
        self.link.node().to_string()
    }

    /// Lets go of the node's deploy lock: a message to its holder, not a
    /// call. If it is lost, the lock still goes when this connection does.
    pub fn release(&self, lock: &LockRequest) {
        let message = tuple(vec![atom_term("release"), term::int(lock.token as i64)]);
        if let Err(e) = self.link.send("hotswap_deploy_lock", message) {
            tracing::debug!("the lock of {} was not released: {e}", self.node());
        }
    }

    /// The nodes this node is connected to (visible ones).
    pub async fn connected_nodes(&self) -> Result<Vec<String>, CallError> {
        let t = self
            .link
            .call(Call::new("erlang", "nodes", vec![]), self.timeout)
            .await?;
        Ok(term::as_list(&t)
            .unwrap_or_default()
            .iter()
            .filter_map(|n| term::as_atom(n).ok().map(str::to_owned))
            .collect())
    }

    pub(in crate::deploy) fn unexpected(
        &self,
        script: &str,
        expected: &str,
        got: &Term,
    ) -> CallError {
        CallError::Unexpected {
            node: self.node(),
            function: format!("the {script} script"),
            detail: format!("expected {expected}, but got {}", term::show(got)),
        }
    }
}

/// States as the inspect script reports them.
pub(in crate::deploy) fn states_term(states: &[State]) -> Term {
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
pub(in crate::deploy) fn mods_term(want: &[(&str, Option<Md5>)], known: &[Vec<Md5>]) -> Term {
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

pub(in crate::deploy) fn lock_term(lock: &LockRequest) -> Term {
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

pub(in crate::deploy) fn boolean(b: bool) -> Term {
    atom_term(if b { "true" } else { "false" })
}

pub(in crate::deploy) fn parse_state(t: &Term) -> Option<State> {
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

/// `[{Index, Value}]` with 1-based indexes below `asked`, as 0-based.
pub(in crate::deploy) fn indexed(list: &Term, asked: usize) -> Option<Vec<(usize, Term)>> {
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

pub(in crate::deploy) fn proplist(t: &Term) -> Vec<(String, String)> {
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
pub(in crate::deploy) fn said<'a>(t: &'a Term, tag: &str) -> Option<&'a Term> {
    let Term::List(l) = t else { return None };
    l.elements
        .iter()
        .find_map(|item| match term::as_tuple_n::<2>(item) {
            Ok([k, v]) if term::is_atom(k, tag) => Some(v),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::term::int;

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
