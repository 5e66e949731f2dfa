//! Deploying modules to nodes, and rolling deploys back.
//!
//! Both are one engine: a [`plan`] of instructions written as data (lock →
//! inspect → prepare → snapshot → point of no return → apply → migrate →
//! verify → finish), folded over the nodes by one driver, [`run`], with a
//! single undo path. A deploy drives it with the local build as every
//! node's goal; a rollback ([`rollback`]) with each node's priors from its
//! newest applied deploy. A [`Session`] holds the peer and the connections
//! that deploy, rollback and [`status`] borrow.
//!
//! - [`plan`]: a run's instructions, in order.
//! - [`run`]: the driver that folds them, and the one way out.
//! - [`step`]: each instruction's work, a file each.
//! - [`part`]: one node's part in a run.
//! - [`goal`]: what a run is asked of each node.
//! - [`decide`]: which goals change a node, from what it runs.
//! - [`remote`]: one node, and what its requests have in common.
//! - [`session`]: the peer, connections to the targets, the run's lock.
//! - [`belief`]: what the store believes each node runs.
//! - [`process`]: a process on a node, as the user is told of it.
//! - [`report`]: what the user and scripts are told.

pub mod belief;
pub mod decide;
pub mod goal;
mod part;
pub mod plan;
pub mod process;
pub mod remote;
pub mod report;
pub mod rollback;
pub mod run;
pub mod session;
pub mod status;
pub mod step;

pub use step::{after, migrate};

pub use remote::Remote;
pub use report::{Failure, NodeReport, Outcome, Report};
pub use rollback::{rollback, RollbackError};
pub use session::Session;
pub use status::{status, NodeStatus};

use crate::beam::Module;
use run::{Goal, Kind, Target, Work};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub verify: bool,
    pub all: bool,
    pub force: bool,
    pub dry_run: bool,
    pub cluster: bool,
    /// Reach every target through this gateway node (`--via`).
    pub via: Option<crate::peer::NodeName>,
    /// Migrate the processes of a changed module through its
    /// `code_change` (`--no-code-change` turns it off).
    pub code_change: bool,
    /// Which processes migrate, and how long they are watched after.
    pub care: migrate::Care,
    pub timeout: Duration,
    /// Snapshots kept per node (0: never prune).
    pub keep: usize,
    /// Called on each node once its change runs.
    pub after: Option<after::Hook>,
    /// Set (by Ctrl-C) to stop between steps; the run then undoes what it
    /// changed.
    pub interrupted: Arc<AtomicBool>,
}

impl Options {
    fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            verify: false,
            all: false,
            force: false,
            dry_run: false,
            cluster: false,
            via: None,
            code_change: true,
            care: migrate::Care::default(),
            timeout: Duration::from_secs(30),
            keep: crate::store::DEFAULT_KEEP,
            after: None,
            interrupted: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Deploys `modules` (already validated) to every node of `session`.
pub async fn deploy(
    session: &Session,
    modules: &[Module],
    opts: &Options,
    ui: &crate::output::Ui,
) -> Report {
    let each = session
        .remotes()
        .into_iter()
        .map(|remote| (remote, modules.to_vec()))
        .collect();
    deploy_each(session, each, opts, ui).await
}

/// Deploys to each node its own list of modules, as one transaction: the
/// watch mode sends a node only what changed since it last caught up.
pub async fn deploy_each(
    session: &Session,
    each: Vec<(Remote, Vec<Module>)>,
    opts: &Options,
    ui: &crate::output::Ui,
) -> Report {
    let work = each
        .into_iter()
        .map(|(remote, modules)| Work {
            remote,
            goals: modules
                .into_iter()
                .map(|m| Goal {
                    module: m.name.clone(),
                    target: Target::Load(m),
                    expect: None,
                })
                .collect(),
            unrestorable: Vec::new(),
        })
        .collect();
    let lock = session.lock_request();
    run::run(Kind::Deploy, work, session.store(), lock, opts, ui)
        .await
        .report
}
