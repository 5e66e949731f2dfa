//! One node's part in a run: its goals, what changes there and what it
//! had, whether its lock is held and whether it changed, and its report.
//! Every step reads and writes it; none but the driver makes one.

use super::decide::Change;
use super::goal::{loads_of, Action};
use super::goal::{Goal, Work};
use super::migrate::Migration;
use super::observing::{Apart, Observing};
use super::remote::{Remote, State};
use super::report::NodeReport;
use crate::beam::Md5;
use crate::peer::term::Term;
use std::collections::HashMap;

pub(super) struct Part {
    pub remote: Remote,
    pub goals: Vec<Goal>,
    pub changes: Vec<Change>,
    /// The node's lock is ours, to release at the end.
    pub locked: bool,
    /// Something may have been loaded here in this run.
    pub changed: bool,
    /// What the node ran of each goal when inspected.
    pub states: Vec<Option<State>>,
    /// What the node ran of each changed module right after its apply step.
    pub running: Option<Vec<(String, Option<Md5>)>>,
    /// The node's `code_change` failed after it loaded: the process
    /// holding its processes suspended until the undo.
    pub keeper: Option<Term>,
    /// Where the node reports the watch after its change apart.
    pub apart: Option<Apart>,
    /// That watch, under way once the node answered it so.
    pub observing: Option<Observing>,
    pub report: NodeReport,
}

/// Modules, each with the MD5 it is to run (`None`: not loaded).
pub(super) type Goals<'a> = Vec<(&'a str, Option<Md5>)>;

/// What a node is sent, for sharing one encoding among nodes sent the same.
pub(super) type PlanKey = Vec<(String, Option<Md5>)>;

impl Part {
    pub fn new(work: Work) -> Part {
        let mut report = NodeReport::new(&work.remote.node());
        report.not_restored = work.unrestorable;
        Part {
            report,
            remote: work.remote,
            goals: work.goals,
            changes: Vec::new(),
            locked: false,
            changed: false,
            states: Vec::new(),
            running: None,
            keeper: None,
            apart: None,
            observing: None,
        }
    }

    pub fn node(&self) -> &str {
        &self.report.node
    }

    /// Each goal (module, and the MD5 it is to run), and the MD5s of it
    /// the store holds (from `known`).
    pub fn wanted(&self, known: &HashMap<&str, Vec<Md5>>) -> (Goals<'_>, Vec<Vec<Md5>>) {
        let want: Goals = self
            .goals
            .iter()
            .map(|g| (g.module.as_str(), g.target.md5()))
            .collect();
        let held = want
            .iter()
            .map(|(m, _)| known.get(m).cloned().unwrap_or_default())
            .collect();
        (want, held)
    }

    /// What the node's changes do, as its apply step takes them.
    pub fn steps(&self) -> Vec<Action<'_>> {
        self.changes
            .iter()
            .map(|c| self.goals[c.goal].target.action(&self.goals[c.goal].module))
            .collect()
    }

    pub fn plan_key(&self) -> PlanKey {
        self.changes
            .iter()
            .map(|c| {
                let g = &self.goals[c.goal];
                (g.module.clone(), g.target.md5())
            })
            .collect()
    }

    /// Each module this run changes on the node, with the MD5 it is to run.
    pub fn changing(&self) -> Goals<'_> {
        self.changes
            .iter()
            .map(|c| {
                let g = &self.goals[c.goal];
                (g.module.as_str(), g.target.md5())
            })
            .collect()
    }

    /// What the node's processes go through when it loads `migration`'s
    /// way: the migration term of its apply or flight request (with the
    /// address of [`Part::apart`], if any).
    pub fn migrate_term(&self, migration: &Migration, care: super::migrate::Care) -> Term {
        let steps = self.steps();
        let apart = self.apart.as_ref().map(|a| &a.address);
        migration
            .for_loads(loads_of(&steps).into_iter())
            .term(self.remote.timeout, care, apart)
    }
}
