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
pub mod index;
pub mod manifest;

pub use beliefs::{NodeBeliefs, FORGET_AFTER};

pub use manifest::{Manifest, ModuleRecord, NodeOutcome, NodeRecord, Prior};

use crate::beam::{Md5, Sha256Sum};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Snapshots kept per node unless configured otherwise.
pub const DEFAULT_KEEP: usize = 100;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    #[error("cannot write the snapshot store at `{}`: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("snapshot store object `{}` is corrupt (its SHA-256 is {actual}); refusing to load it", path.display())]
    CorruptObject { path: PathBuf, actual: String },
    #[error("snapshot manifest `{}` is corrupt: {detail}", path.display())]
    CorruptManifest { path: PathBuf, detail: String },
}

/// The store in one folder. Clones share the index, read once.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    index: std::sync::Arc<std::sync::Mutex<Option<index::Index>>>,
}

/// The store's lock, held while a deploy or rollback runs; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: std::fs::File,
}

/// What [`Store::prune`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub snapshots: usize,
    pub objects: usize,
    /// Nodes unseen for [`FORGET_AFTER`], whose beliefs and port went.
    pub nodes: usize,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store {
            root: root.into(),
            index: Default::default(),
        }
    }

    /// Forgets the index read so far: a session held across runs reads it
    /// again under the store's lock, as other runs may have changed it.
    pub fn reload_index(&self) {
        *self.index.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Runs `f` on the index, reading it first if this run has not yet.
    fn with_index<T>(&self, f: impl FnOnce(&mut index::Index, &Path) -> T) -> T {
        let path = self.root.join("index");
        let mut guard = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let index = guard.get_or_insert_with(|| index::Index::read(&path));
        f(index, &path)
    }

    fn index_entries(
        &self,
        entries: impl IntoIterator<Item = (Md5, Sha256Sum, String)>,
    ) -> Result<(), SnapshotError> {
        self.write_index(|index, path| index.add(path, entries))
    }

    /// Runs `write`, which appends to the index file, on the index.
    fn write_index(
        &self,
        write: impl FnOnce(&mut index::Index, &Path) -> std::io::Result<()>,
    ) -> Result<(), SnapshotError> {
        self.with_index(|index, path| {
            write(index, path).map_err(|source| SnapshotError::Write {
                path: path.to_owned(),
                source,
            })
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn object_path(&self, sha: Sha256Sum) -> PathBuf {
        self.root.join("objects").join(sha.to_hex())
    }

    fn manifest_path(&self, id: &str) -> PathBuf {
        self.root.join("snapshots").join(format!("{id}.json"))
    }

    /// Takes the store's lock, waiting for another run that holds it
    /// (`waiting` is called once if so), then removes temporary files left
    /// by runs that crashed: whoever holds the lock is the only writer.
    pub fn lock(&self, waiting: impl FnOnce()) -> Result<StoreLock, SnapshotError> {
        let path = self.root.join("lock");
        let fail = |source| SnapshotError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.root).map_err(fail)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(fail)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                waiting();
                file.lock().map_err(fail)?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(fail(e)),
        }
        for dir in ["", "objects", "snapshots", "beliefs"] {
            remove_temporaries(&self.root.join(dir));
        }
        Ok(StoreLock { _file: file })
    }

    /// Stores the binary of `module` (once) and remembers which MD5 it has.
    /// `durable` syncs it to disk before returning.
    pub fn put(
        &self,
        module: &str,
        md5: Md5,
        bytes: &[u8],
        durable: bool,
    ) -> Result<Sha256Sum, SnapshotError> {
        let sha = Sha256Sum::of(bytes);
        if self.read(sha).is_err() {
            self.with_index(|index, _| index.unmark_durable(sha));
            write_atomic(&self.object_path(sha), bytes, durable)?;
        }
        self.index_entries([(md5, sha, module.to_owned())])?;
        Ok(sha)
    }

    /// Keeps copies of `modules` (name, MD5, bytes), each written in place
    /// and synced, then their folder (every read checks an object's
    /// SHA-256), so that a later snapshot naming them needs no sync of its
    /// own. A copy already there (same size) is not written again.
    pub fn keep_all(&self, modules: &[(&str, Md5, &[u8])]) -> Result<(), SnapshotError> {
        let dir = self.root.join("objects");
        std::fs::create_dir_all(&dir).map_err(|source| SnapshotError::Write {
            path: dir.clone(),
            source,
        })?;
        let mut entries = Vec::with_capacity(modules.len());
        let mut written = Vec::new();
        for &(module, md5, bytes) in modules {
            let sha = Sha256Sum::of(bytes);
            let path = self.object_path(sha);
            // One look per module sent, not a listing of the whole store.
            let there = std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64);
            if !there {
                write_synced(&path, bytes)?;
                written.push(sha);
            }
            entries.push((md5, sha, module.to_owned()));
        }
        if !written.is_empty() {
            sync_dir(&dir)?;
        }
        self.index_entries(entries)?;
        self.mark_durable(&written)
    }

    /// The MD5s of `module` the store has kept (some may since be pruned).
    pub fn known_md5s(&self, module: &str) -> Vec<Md5> {
        self.with_index(|index, _| index.md5s_of(module))
    }

    /// Syncs stored objects to disk, before a manifest names them: each
    /// file not synced already, then their folder once.
    pub fn make_durable(&self, shas: &[Sha256Sum]) -> Result<(), SnapshotError> {
        let pending: Vec<Sha256Sum> = self.with_index(|index, _| {
            shas.iter()
                .copied()
                .filter(|s| !index.is_durable(*s))
                .collect()
        });
        if pending.is_empty() {
            return Ok(());
        }
        for &sha in &pending {
            let path = self.object_path(sha);
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|source| SnapshotError::Write { path, source })?;
        }
        sync_dir(&self.root.join("objects"))?;
        self.mark_durable(&pending)
    }

    fn mark_durable(&self, shas: &[Sha256Sum]) -> Result<(), SnapshotError> {
        self.write_index(|index, path| index.mark_durable(path, shas))
    }

    /// The distribution port each node had when last connected to.
    pub fn ports(&self) -> BTreeMap<String, u16> {
        std::fs::read(self.root.join("ports.json"))
            .ok()
            .and_then(|text| serde_json::from_slice(&text).ok())
            .unwrap_or_default()
    }

    /// Remembers `ports`; only a cache (a stale port costs one failed
    /// attempt), so a failure to write it is not an error.
    pub fn remember_ports(&self, ports: &BTreeMap<String, u16>) {
        if let Ok(text) = serde_json::to_vec_pretty(ports) {
            let _ = write_atomic(&self.root.join("ports.json"), &text, false);
        }
    }

    /// How many snapshots the store holds, without reading them.
    pub fn count(&self) -> usize {
        files_in(&self.root.join("snapshots"))
            .map(|f| f.len())
            .unwrap_or(0)
    }

    /// Whether pruning to `keep` per node is worth a run: the store has
    /// grown a tenth of `keep` past what the last pruning left (with many
    /// nodes, more than `keep` snapshots is the normal state, and reading
    /// them all at every deploy would cost more than they weigh).
    pub fn prune_due(&self, keep: usize) -> bool {
        let left: usize = std::fs::read_to_string(self.root.join("pruned"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        self.count() > keep.max(left) + keep / 10
    }

    /// Whether the store has an object for `md5`, without reading it
    /// ([`Store::find_by_md5`] reads and checks it).
    pub fn holds(&self, md5: Md5) -> bool {
        self.with_index(|index, _| index.get(md5))
            .is_some_and(|sha| self.object_path(sha).is_file())
    }

    /// A stored binary whose module has this MD5, if the store has one
    /// intact. A damaged object is treated as absent here: the caller then
    /// asks the node instead.
    pub fn find_by_md5(&self, md5: Md5) -> Option<Sha256Sum> {
        let sha = self.with_index(|index, _| index.get(md5))?;
        self.read(sha).ok()?;
        Some(sha)
    }

    /// Reads an object, checking it is what its name says.
    pub fn read(&self, sha: Sha256Sum) -> Result<Vec<u8>, SnapshotError> {
        let path = self.object_path(sha);
        let bytes = std::fs::read(&path).map_err(|source| SnapshotError::Read {
            path: path.clone(),
            source,
        })?;
        let actual = Sha256Sum::of(&bytes);
        if actual != sha {
            return Err(SnapshotError::CorruptObject {
                path,
                actual: actual.to_hex(),
            });
        }
        Ok(bytes)
    }

    /// Writes a manifest durably (synced, renamed, folder synced).
    pub fn save(&self, manifest: &Manifest) -> Result<(), SnapshotError> {
        self.write_manifest(manifest, true)
    }

    /// Replaces a manifest without waiting for the disk: for an outcome
    /// whose loss to a crash is harmless, because the durable version it
    /// replaces (every node pending) means the same to a rollback.
    pub fn save_unsynced(&self, manifest: &Manifest) -> Result<(), SnapshotError> {
        self.write_manifest(manifest, false)
    }

    fn write_manifest(&self, manifest: &Manifest, durable: bool) -> Result<(), SnapshotError> {
        let path = self.manifest_path(&manifest.id);
        let text = serde_json::to_vec_pretty(manifest).map_err(|e| SnapshotError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&path, &text, durable)
    }

    /// Removes a snapshot that turned out to record nothing (a run that
    /// wrote its pending manifest, then changed no node after all).
    pub fn discard(&self, id: &str) -> Result<(), SnapshotError> {
        let path = self.manifest_path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(SnapshotError::Write { path, source }),
        }
    }

    /// All snapshots, oldest first. A manifest that does not parse is an
    /// error naming it; temporary files are not manifests.
    pub fn list(&self) -> Result<Vec<Manifest>, SnapshotError> {
        let dir = self.root.join("snapshots");
        let mut manifests = Vec::new();
        for path in files_in(&dir)? {
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if hidden || path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = std::fs::read(&path).map_err(|source| SnapshotError::Read {
                path: path.clone(),
                source,
            })?;
            let manifest =
                Manifest::from_json(&text).map_err(|e| SnapshotError::CorruptManifest {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
            manifests.push(manifest);
        }
        manifests.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(manifests)
    }

    /// For each of `nodes`, the newest manifest whose part for that node
    /// may still be running there.
    pub fn rollback_candidates(
        &self,
        nodes: &[String],
    ) -> Result<BTreeMap<String, Manifest>, SnapshotError> {
        let mut found = BTreeMap::new();
        for manifest in self.list()?.into_iter().rev() {
            for node in nodes {
                let open = manifest
                    .nodes
                    .get(node)
                    .is_some_and(|r| r.outcome.rollbackable());
                if open && !found.contains_key(node) {
                    found.insert(node.clone(), manifest.clone());
                }
            }
        }
        Ok(found)
    }

    /// Keeps the newest `keep` snapshots of each node (a snapshot goes when
    /// no node still counts it among its newest), then removes the objects
    /// and index entries no remaining snapshot needs, and forgets nodes
    /// unseen for [`FORGET_AFTER`].
    pub fn prune(&self, keep: usize) -> Result<Pruned, SnapshotError> {
        // 0 keeps every snapshot (and still collects what none needs).
        let keep = if keep == 0 { usize::MAX } else { keep };
        let manifests = self.list()?;
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        let mut kept = Vec::new();
        let mut pruned = Pruned::default();
        for m in manifests.iter().rev() {
            let mut wanted = false;
            for node in m.nodes.keys() {
                let n = seen.entry(node.as_str()).or_default();
                *n += 1;
                wanted |= *n <= keep;
            }
            if wanted {
                kept.push(m);
            } else {
                remove(&self.manifest_path(&m.id))?;
                pruned.snapshots += 1;
            }
        }
        if pruned.snapshots > 0 {
            sync_dir(&self.root.join("snapshots"))?;
        }
        pruned.objects = self.collect_garbage(&kept)?;
        pruned.nodes = self.forget_unseen_nodes()?;
        let left = kept.len().to_string();
        write_atomic(&self.root.join("pruned"), left.as_bytes(), false)?;
        Ok(pruned)
    }

    /// Removes objects that none of `kept` names, as a prior or as what it
    /// deployed, and index entries pointing at nothing.
    fn collect_garbage(&self, kept: &[&Manifest]) -> Result<usize, SnapshotError> {
        let mut md5s = BTreeSet::new();
        let mut live: BTreeSet<String> = BTreeSet::new();
        for record in kept.iter().flat_map(|m| m.nodes.values()) {
            for module in &record.modules {
                live.extend(module.prior.object().map(str::to_owned));
                md5s.extend(module.prior.md5().and_then(Md5::from_hex));
                md5s.extend(module.deployed.as_deref().and_then(Md5::from_hex));
            }
        }
        let text = self.with_index(|index, _| {
            live.extend(
                md5s.iter()
                    .filter_map(|m| index.get(*m))
                    .map(Sha256Sum::to_hex),
            );
            index.retain(|md5, sha| md5s.contains(&md5) && live.contains(&sha.to_hex()));
            index.to_text()
        });
        write_atomic(&self.root.join("index"), text.as_bytes(), false)?;
        let mut removed = 0;
        for path in files_in(&self.root.join("objects"))? {
            if !name_in(&path, &live) {
                remove(&path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn name_in(path: &Path, set: &BTreeSet<String>) -> bool {
    path.file_name()
        .is_some_and(|n| set.contains(n.to_string_lossy().as_ref()))
}

fn files_in(dir: &Path) -> Result<Vec<PathBuf>, SnapshotError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SnapshotError::Read {
                path: dir.to_owned(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| SnapshotError::Read {
            path: dir.to_owned(),
            source,
        })?;
        out.push(entry.path());
    }
    Ok(out)
}

fn remove(path: &Path) -> Result<(), SnapshotError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(SnapshotError::Write {
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Temporary files are only ever written by the lock's holder.
/// Removes the temporary files ([`write_atomic`]'s `.tmp-<pid>-<name>`) of
/// writers that are gone. Those of a live process are left alone: a
/// `watch` remembering a node's port writes without the store's lock while
/// a `deploy` takes it.
fn remove_temporaries(dir: &Path) {
    for path in files_in(dir).unwrap_or_default() {
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let Some(rest) = name.strip_prefix(".tmp-") else {
            continue;
        };
        let writer = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if !writer.is_some_and(process_lives) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Whether a process `pid` exists (signal 0 checks without sending).
fn process_lives(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let sent = unsafe { libc::kill(pid, 0) };
    sent == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> Result<(), SnapshotError> {
    let fail = |source| SnapshotError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let mut file = std::fs::File::create(&tmp).map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    if durable {
        file.sync_all().map_err(fail)?;
    }
    drop(file);
    std::fs::rename(&tmp, path).map_err(fail)?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` in place and syncs the file.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    let fail = |source| SnapshotError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::create(path).map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)
}

/// Makes a folder's entries (a rename, a removal) durable.
fn sync_dir(dir: &Path) -> Result<(), SnapshotError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| SnapshotError::Write {
            path: dir.to_owned(),
            source,
        })
}

/// `YYYY-MM-DD HH:MM:SS UTC` for a Unix time.
pub fn utc_time(secs: u64) -> String {
    let s = utc_stamp(secs);
    format!(
        "{}-{}-{} {}:{}:{} UTC",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    )
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time, without a date library.
fn utc_stamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;
