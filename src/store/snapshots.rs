//! The snapshots: one manifest per deploy, saying what each node ran
//! before it, listed, looked up for a rollback and pruned.

use super::error::SnapshotError;
use super::files::{files_in, name_in, remove, sync_dir, write_atomic};
use super::manifest::Manifest;
use super::objects::Store;
use crate::beam::{Md5, Sha256Sum};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub snapshots: usize,
    pub objects: usize,
    /// Nodes unseen for [`super::beliefs::FORGET_AFTER`], whose beliefs and port went.
    pub nodes: usize,
}

impl Store {
    fn manifest_path(&self, id: &str) -> PathBuf {
        self.root().join("snapshots").join(format!("{id}.json"))
    }

    /// How many snapshots the store holds, without reading them.
    pub fn count(&self) -> usize {
        files_in(&self.root().join("snapshots"))
            .map(|f| f.len())
            .unwrap_or(0)
    }

    /// Whether pruning to `keep` per node is worth a run: the store has
    /// grown a tenth of `keep` past what the last pruning left (with many
    /// nodes, more than `keep` snapshots is the normal state, and reading
    /// them all at every deploy would cost more than they weigh).
    pub fn prune_due(&self, keep: usize) -> bool {
        let left: usize = std::fs::read_to_string(self.root().join("pruned"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        self.count() > keep.max(left) + keep / 10
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
        let dir = self.root().join("snapshots");
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
    /// unseen for [`super::beliefs::FORGET_AFTER`].
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
            sync_dir(&self.root().join("snapshots"))?;
        }
        pruned.objects = self.collect_garbage(&kept)?;
        pruned.nodes = self.forget_unseen_nodes()?;
        let left = kept.len().to_string();
        write_atomic(&self.root().join("pruned"), left.as_bytes(), false)?;
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
        write_atomic(&self.root().join("index"), text.as_bytes(), false)?;
        let mut removed = 0;
        for path in files_in(&self.root().join("objects"))? {
            if !name_in(&path, &live) {
                remove(&path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
