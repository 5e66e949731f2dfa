//! Deciding, from what a node runs, which goals change it: where deploy
//! and rollback differ (what counts as already there, drift), decided
//! without a node, so that it is tested in-process.

use super::goal::{Goal, Kind, Target};
use super::remote::{Found, Lingering, State};
use crate::beam::Md5;
use crate::store::Prior;

/// One goal that changes the node, with what the node had before.
#[derive(Debug, Clone)]
pub struct Change {
    /// The goal's index among the node's goals.
    pub goal: usize,
    pub was: State,
    /// The node's own copy of what it ran, until the snapshot takes it.
    pub copy: Option<Vec<u8>>,
    /// What the snapshot recorded of it.
    pub prior: Prior,
}

/// What a node's inspect answer means for its goals.
#[derive(Debug, Default)]
pub struct Decision {
    pub changes: Vec<Change>,
    pub unchanged: Vec<String>,
    /// Processes in old code that a change needs gone (a refusal unless
    /// `--force`, which kills them when loading).
    pub blocking: Vec<Lingering>,
    /// Processes in old code of a module that does not change: a warning.
    pub idle: Vec<Lingering>,
    /// Rollback only: (module, why) where the node no longer runs what was
    /// deployed; refused unless `--force`.
    pub drift: Vec<(String, String)>,
}

impl Decision {
    /// Whether the node refuses the run.
    pub fn refused(&self, force: bool) -> bool {
        !self.drift.is_empty() || (!force && !self.blocking.is_empty())
    }
}

/// Decides each goal from what inspect `found` (same order as `goals`).
pub fn decide(goals: &[Goal], found: Vec<Found>, kind: Kind, all: bool, force: bool) -> Decision {
    let mut d = Decision::default();
    for (i, (goal, f)) in goals.iter().zip(found).enumerate() {
        let there = match &goal.target {
            Target::Load(m) => f.state.md5() == Some(m.md5),
            Target::Remove => !matches!(f.state, State::Loaded(_)),
        };
        if there && !(all && kind == Kind::Deploy) {
            d.idle.extend(f.stuck);
            d.unchanged.push(goal.module.clone());
            continue;
        }
        if let (Some(expected), false) = (goal.expect, force) {
            if f.state != State::Loaded(expected) {
                d.drift
                    .push((goal.module.clone(), drift_message(expected, f.state)));
                continue;
            }
        }
        d.blocking.extend(f.stuck);
        d.changes.push(Change {
            goal: i,
            was: f.state,
            copy: f.copy,
            prior: Prior::Absent,
        });
    }
    d
}

fn drift_message(expected: Md5, now: State) -> String {
    let now = match now {
        State::Loaded(m) => format!("runs {m}"),
        State::OnDisk(m) => format!("has {m} on disk, not loaded"),
        State::Absent => "does not have it".into(),
    };
    format!(
        "the node {now}, not {expected} as deployed: changed since (another deploy, a reboot?); left alone. Pass `--force` to roll it back anyway"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beam::Module;
    use std::sync::Arc;

    fn module(name: &str, md5: u8) -> Module {
        Module {
            name: name.into(),
            md5: Md5([md5; 16]),
            bytes: Arc::new(Vec::new()),
            loadable: Arc::new(Vec::new()),
            path: name.into(),
            code_change: false,
        }
    }

    fn load(name: &str, md5: u8, expect: Option<u8>) -> Goal {
        Goal {
            module: name.into(),
            target: Target::Load(module(name, md5)),
            expect: expect.map(|e| Md5([e; 16])),
        }
    }

    fn found(state: State, stuck: usize) -> Found {
        Found {
            state,
            stuck: (0..stuck)
                .map(|i| Lingering {
                    module: "m".into(),
                    pid: format!("<0.{i}.0>"),
                    name: None,
                    why: None,
                })
                .collect(),
            copy: None,
        }
    }

    const A: Md5 = Md5([1; 16]);

    #[test]
    fn a_deploy_skips_what_runs_or_sits_identical_on_disk() {
        let goals = [load("a", 1, None), load("b", 1, None), load("c", 1, None)];
        let answer = vec![
            found(State::Loaded(A), 0),
            found(State::OnDisk(A), 0),
            found(State::Absent, 0),
        ];
        let d = decide(&goals, answer, Kind::Deploy, false, false);
        assert_eq!(d.unchanged, ["a", "b"]);
        assert_eq!(d.changes.len(), 1);
        assert_eq!(d.changes[0].was, State::Absent);
    }

    #[test]
    fn all_sends_everything_but_a_rollback_never_redoes_what_is_back() {
        let deploy = [load("a", 1, None)];
        let d = decide(
            &deploy,
            vec![found(State::Loaded(A), 0)],
            Kind::Deploy,
            true,
            false,
        );
        assert_eq!(d.changes.len(), 1);
        let rollback = [load("a", 1, Some(2))];
        let d = decide(
            &rollback,
            vec![found(State::Loaded(A), 0)],
            Kind::Rollback,
            true,
            false,
        );
        assert!(d.changes.is_empty() && d.unchanged == ["a"]);
    }

    #[test]
    fn old_code_in_the_way_refuses_unless_forced_and_idle_old_code_only_warns() {
        let goals = [load("a", 2, None), load("b", 1, None)];
        let answer = || vec![found(State::Loaded(A), 1), found(State::Loaded(A), 2)];
        let d = decide(&goals, answer(), Kind::Deploy, false, false);
        assert_eq!((d.blocking.len(), d.idle.len()), (1, 2));
        assert!(d.refused(false));
        assert!(!d.refused(true), "--force kills them when loading");
        assert_eq!(d.changes.len(), 1);
    }

    #[test]
    fn a_rollback_refuses_drift_unless_forced() {
        // Deployed 2 over 1; the node now runs 3.
        let goals = [load("a", 1, Some(2))];
        let now = || vec![found(State::Loaded(Md5([3; 16])), 0)];
        let d = decide(&goals, now(), Kind::Rollback, false, false);
        assert!(d.changes.is_empty() && d.refused(false));
        assert!(d.drift[0].1.contains(&Md5([2; 16]).to_hex()));
        assert!(d.drift[0].1.contains(&Md5([3; 16]).to_hex()));
        let d = decide(&goals, now(), Kind::Rollback, false, true);
        assert_eq!(d.changes.len(), 1);
        assert!(!d.refused(true));
    }

    #[test]
    fn removing_is_done_once_nothing_is_loaded() {
        let goals = [Goal {
            module: "a".into(),
            target: Target::Remove,
            expect: Some(A),
        }];
        let d = decide(
            &goals,
            vec![found(State::OnDisk(A), 0)],
            Kind::Rollback,
            false,
            false,
        );
        assert_eq!(d.unchanged, ["a"]);
        let d = decide(
            &goals,
            vec![found(State::Loaded(A), 0)],
            Kind::Rollback,
            false,
            false,
        );
        assert_eq!(d.changes.len(), 1);
    }
}
