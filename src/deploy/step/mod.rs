//! The work of each instruction of a run's plan ([`crate::deploy::plan`]), a file
//! per step: each owns its request, its node script (`../node/*.erl`,
//! evaluated there by `erl_eval`), its answer's parser and its undo.
//!
//! - [`inspect`]: lock and inspect, and what the answer means.
//! - [`show`]: `--dry-run`'s account of what would change.
//! - [`snapshot`]: the priors, on disk before any node changes.
//! - [`apply`]: prepare, load and migrate, in one request per node; [`applied`]:
//!   what the node answers.
//! - [`word`]: go or abort, the point of no return.
//! - [`verify`]: reading back what runs.
//! - [`finish`]: the way out; [`undo`]: putting one node back.
//! - [`flight`]: lock, inspect and prepare fused into one request.
//! - [`after`]: the function called on each node once its change runs.

pub mod after;
pub mod applied;
pub mod apply;
pub mod finish;
pub mod flight;
pub mod inspect;
pub mod show;
pub mod snapshot;
pub mod undo;
pub mod verify;
pub mod word;
