//! The snapshot store: a content-addressed store of module binaries, and
//! one manifest per deploy saying what each node ran before it.
//!
//! Layout under the store folder (`.hotswap/` in the project):
//! - `objects/<sha256>`: a module binary, named by its SHA-256.
//! - `index`: which object holds the module with a given MD5 ([`index`]),
//!   so a later deploy finds what a node runs without asking the node.
//! - `snapshots/<id>.json`: one [`Manifest`] per deploy.
//! - `lock`: held (advisory, `flock`) by the run that uses the store.
//! - `ports.json`: each node's distribution port when last connected to,
//!   tried before asking EPMD.
//! - `beliefs/<node>.json`: what each node was last seen to run
//!   ([`beliefs`]).
//!
//! Crash safety: every file is written under a temporary name, synced and
//! renamed, and its folder synced; objects a manifest names are synced
//! before the manifest is written. The copies a deploy keeps of what it
//! sent are written in place and synced after it loaded, and marked as
//! synced in the index, so the next snapshot, which names them as priors,
//! need not sync them again. Temporary files are never listed, and are
//! removed by the next run that takes the lock. Reading an object checks
//! its SHA-256: a damaged store is an error, never a silent load.

pub mod beliefs;
mod error;
mod files;
pub mod index;
mod lock;
pub mod manifest;
mod objects;
mod ports;
mod snapshots;
mod time;

pub use beliefs::{NodeBeliefs, FORGET_AFTER};
pub use error::SnapshotError;
pub use lock::StoreLock;
pub use manifest::{Manifest, ModuleRecord, NodeOutcome, NodeRecord, Prior};
pub use objects::Store;
pub use snapshots::Pruned;
pub use time::utc_time;

/// Snapshots kept per node unless configured otherwise.
pub const DEFAULT_KEEP: usize = 100;

#[cfg(test)]
mod tests;
