//! What the store believes each node runs: what the last run left there
//! (`.hotswap/beliefs/`). A hint, never trusted without the node's own
//! check: it lets a deploy take its snapshot, and have the nodes prepare
//! their changes, before the nodes have answered.

use super::remote::State;
use crate::beam::Md5;
use crate::store::{NodeBeliefs, Store};
use std::collections::HashMap;

/// What one node is believed to run of each goal, and which goals that
/// belief says change (by index, with what runs now).
pub struct Belief {
    pub states: Vec<State>,
    pub changes: Vec<(usize, State)>,
}

/// The store's beliefs about the nodes asked for, and which priors it
/// holds, each read at most once per run.
pub struct Beliefs<'a> {
    store: &'a Store,
    holds: HashMap<Md5, bool>,
}

impl<'a> Beliefs<'a> {
    pub fn read(store: &'a Store) -> Self {
        Beliefs {
            store,
            holds: HashMap::new(),
        }
    }

    /// What `node` is believed to run of each goal (module, MD5 it is to
    /// run); `None` when a state is unknown or a prior's binary is not in
    /// the store.
    pub fn of(&mut self, node: &str, goals: &[(&str, Option<Md5>)]) -> Option<Belief> {
        let modules: Vec<&str> = goals.iter().map(|(m, _)| *m).collect();
        let believed = believed(&self.store.beliefs_of(node), &modules)?;
        let mut changes = Vec::new();
        for (i, ((_, want), was)) in goals.iter().zip(&believed).enumerate() {
            if was.md5() == *want {
                continue;
            }
            if was.md5().is_some_and(|md5| !self.holds(md5)) {
                return None;
            }
            changes.push((i, *was));
        }
        Some(Belief {
            states: believed,
            changes,
        })
    }

    fn holds(&mut self, md5: Md5) -> bool {
        let store = self.store;
        *self.holds.entry(md5).or_insert_with(|| store.holds(md5))
    }
}

/// What `beliefs` (a node's, from the store) say it runs of each of
/// `modules`; `None` when any is unknown.
fn believed(beliefs: &NodeBeliefs, modules: &[&str]) -> Option<Vec<State>> {
    modules
        .iter()
        .map(|m| beliefs.get(*m).and_then(|s| parse_belief(s)))
        .collect()
}

/// One node's modules and what it runs of each (`None`: unknown).
pub type NodeStates = (String, Vec<(String, Option<State>)>);

/// Remembers what nodes run of some modules (`None`: unknown now).
pub fn remember(store: &Store, nodes: Vec<NodeStates>) {
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

/// The state a belief's text names (`loaded:<md5>`, `on_disk:<md5>`,
/// `absent`); `None` for anything else.
pub fn parse_belief(text: &str) -> Option<State> {
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
        let store = Store::new(dir.path());
        let md5 = Md5([7; 16]);
        let of = |node: &str| store.beliefs_of(node);
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
