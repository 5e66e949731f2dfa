//! Deploying modules to nodes, and rolling deploys back.
//!
//! Both are one engine: a [`plan`] of instructions written as data (lock →
//! inspect → prepare → snapshot → point of no return → apply → migrate →
//! verify → finish), folded over the nodes by one driver, [`run`], with a
//! single undo path. A deploy drives it with the local build as every
//! node's goal; a rollback ([`rollback`](mod@rollback)) with each node's priors from its
//! newest applied deploy. A [`Session`] holds the peer and the connections
//! that deploy, rollback and [`status`](mod@status) borrow.
//!
//! - [`plan`]: a run's instructions, in order.
//! - [`run`]: the driver that folds them, and the one way out.
//! - [`step`]: each instruction's work, a file each.
//! - `part`: one node's part in a run.
//! - [`goal`]: what a run is asked of each node.
//! - [`decide`]: which goals change a node, from what it runs.
//! - [`migrate`]: what a changed module's processes go through, inside
//!   its apply step.
//! - [`remote`]: one node, and what its requests have in common.
//! - [`session`]: the peer, connections to the targets, the run's lock.
//! - [`belief`]: what the store believes each node runs.
//! - [`process`]: a process on a node, as the user is told of it.
//! - [`report`]: what the user and scripts are told.

pub mod belief;
pub mod decide;
pub mod driver;
pub mod goal;
pub mod migrate;
pub mod observing;
pub mod options;
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

pub use step::after;

pub use options::Options;
pub use remote::Remote;
pub use report::{Failure, NodeReport, Outcome, Report};
pub use rollback::{rollback, RollbackError};
pub use session::Session;
pub use status::{status, NodeStatus};

use crate::beam::Module;
use goal::{Goal, Kind, Target, Work};

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
    deploy_each(session, each, opts, ui).await.0
}

/// Deploys to each node its own list of modules, as one transaction: the
/// watch mode sends a node only what changed since it last caught up.
pub async fn deploy_each(
    session: &Session,
    each: Vec<(Remote, Vec<Module>)>,
    opts: &Options,
    ui: &crate::output::Ui,
) -> (Report, Vec<observing::Observing>) {
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
    let finished = driver::run(Kind::Deploy, work, session.store(), lock, opts, ui).await;
    (finished.report, finished.observing)
}
