//! What a run is asked: for each node, the goal of each module (deploy
//! or rollback alike), read by the transaction and by the plan.

use super::remote::Remote;
use super::step::apply::Step;
use crate::beam::{Md5, Module};

/// Deploy, or the rollback of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Deploy,
    Rollback,
}

/// What a module must come to on a node.
#[derive(Debug, Clone)]
pub enum Target {
    Load(Module),
    /// Unloaded: it was neither loaded nor on the node's code path.
    Remove,
}

impl Target {
    pub(super) fn md5(&self) -> Option<Md5> {
        match self {
            Target::Load(m) => Some(m.md5),
            Target::Remove => None,
        }
    }

    pub(super) fn step<'a>(&'a self, module: &'a str) -> Step<'a> {
        match self {
            Target::Load(m) => Step::Load(m),
            Target::Remove => Step::Remove(module),
        }
    }
}

/// One module's goal on one node.
#[derive(Debug, Clone)]
pub struct Goal {
    pub module: String,
    pub target: Target,
    /// For a rollback: the MD5 the deploy loaded. A node running anything
    /// else has drifted, and the goal is refused without `--force`.
    pub expect: Option<Md5>,
}

/// One node and what it must come to.
#[derive(Debug, Clone)]
pub struct Work {
    pub remote: Remote,
    pub goals: Vec<Goal>,
    /// Modules the run cannot bring back (a rollback whose prior binary was
    /// never had): reported as not restored.
    pub unrestorable: Vec<String>,
}
