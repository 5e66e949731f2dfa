//! The store's objects: module binaries named by their SHA-256, and the
//! index saying which object holds the module with a given MD5.

use super::error::SnapshotError;
use super::files::{sync_dir, write_atomic, write_synced};
use super::index;
use crate::beam::{Md5, Sha256Sum};
use std::path::{Path, PathBuf};

/// The store in one folder. Clones share the index, read once.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    index: std::sync::Arc<std::sync::Mutex<Option<index::Index>>>,
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
    pub(super) fn with_index<T>(&self, f: impl FnOnce(&mut index::Index, &Path) -> T) -> T {
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
    pub(super) fn write_index(
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

    pub(super) fn object_path(&self, sha: Sha256Sum) -> PathBuf {
        self.root.join("objects").join(sha.to_hex())
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
}
