//! Deploying modules to nodes, and rolling deploys back.
//!
//! Both are one engine, [`transaction`]: inspect (each node's lock, what it
//! runs, old code in the way) → snapshot → apply → verify, with a single
//! undo path. A deploy drives it with the local build as every node's goal;
//! a rollback ([`rollback`]) with each node's priors from its newest
//! applied deploy. A [`Session`] holds the peer and the connections that
//! deploy, rollback and [`status`] borrow.
//!
//! - [`session`]: the peer, connections to the targets, the run's lock.
//! - [`gateway`]: the targets reached through one node (`--via`).
//! - [`remote`]: what the engine asks one node (scripts in `node/`).
//! - [`goal`]: what a run is asked of each node.
//! - [`plan`]: which goals change a node, from what it runs.
//! - [`priors`]: the snapshot step. [`undo`]: putting one node back.
//! - [`belief`]: what the store believes each node runs.
//! - [`flight`]: inspect and apply in one round trip, for one node.
//! - [`migrate`]: `code_change` for the processes of a changed module.
//! - [`process`]: a process on a node, as the user is told of it.
//! - [`report`]: what the user and scripts are told.
//! - [`after`]: the function called on each node once its change runs.

pub mod after;
pub mod belief;
pub mod flight;
pub mod gateway;
pub mod goal;
pub mod migrate;
pub mod plan;
pub mod priors;
pub mod process;
pub mod remote;
pub mod report;
pub mod rollback;
pub mod session;
pub mod status;
pub mod transaction;
pub mod undo;
mod word;

pub use remote::Remote;
pub use report::{Failure, NodeReport, Outcome, Report};
pub use rollback::{rollback, RollbackError};
pub use session::Session;
pub use status::{status, NodeStatus};

use crate::beam::Module;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use transaction::{Goal, Kind, Target, Work};

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub verify: bool,
    pub all: bool,
    pub force: bool,
    pub dry_run: bool,
    pub cluster: bool,
    /// Reach every target through this gateway node (`--via`).
    pub via: Option<crate::dist::NodeName>,
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
    let remotes: Vec<Remote> = each.iter().map(|(r, _)| r.clone()).collect();
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
    let finished = transaction::run(Kind::Deploy, work, session.store(), lock, opts, ui).await;
    let mut report = finished.report;
    if let (Some(hook), true) = (&opts.after, finished.reached) {
        if !after::call(hook, &remotes, &mut report.nodes).await {
            report.fail_after();
        }
    }
    report
}
