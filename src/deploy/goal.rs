//! What a run is asked: for each node, the goal of each module (deploy
//! or rollback alike), read by every step of the run.

use super::remote::Remote;
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

    pub(super) fn action<'a>(&'a self, module: &'a str) -> Action<'a> {
        match self {
            Target::Load(m) => Action::Load(m),
            Target::Remove => Action::Remove(module),
        }
    }
}

/// A module and what to do with it, as a node's apply step takes it.
#[derive(Debug, Clone)]
pub enum Action<'a> {
    Load(&'a Module),
    Remove(&'a str),
}

/// The modules `actions` load.
pub fn loads_of<'a>(actions: &[Action<'a>]) -> Vec<&'a Module> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Load(m) => Some(*m),
            Action::Remove(_) => None,
        })
        .collect()
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
