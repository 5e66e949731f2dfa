//! The content-addressed store of module binaries, and the snapshots that
//! say what each node ran before a deploy.
//!
//! Layout under the snapshot folder (`.hotswap/` in the project):
//! - `objects/<sha256>`: a module binary, named by its SHA-256.
//! - `md5/<md5>`: the SHA-256 of an object whose module has that MD5, so a
//!   later deploy can find what a node runs without asking the node.
//! - `snapshots/<id>.json`: one manifest per deploy.
//!
//! Every file is written to a temporary name and renamed into place, so a
//! crash leaves either the old file or the new one. Reading an object checks
//! its SHA-256: a damaged store is an error, never a silent load.

use crate::beam::{Md5, Sha256Sum};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

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

/// What a node ran before a deploy changed a module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Prior {
    /// The module was not loaded: rolling back removes it.
    Absent,
    /// The exact binary is in the store.
    Restorable { md5: String, sha256: String },
    /// The node ran this MD5 but its binary could not be had.
    Unrestorable { md5: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub module: String,
    #[serde(flatten)]
    pub prior: Prior,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub id: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// Per node, what it ran before, for each module this deploy changed.
    pub nodes: BTreeMap<String, Vec<Entry>>,
    #[serde(default)]
    pub rolled_back: bool,
}

impl Manifest {
    pub fn new(nodes: BTreeMap<String, Vec<Entry>>) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Manifest {
            id: format!("{}-{:03}", utc_stamp(now.as_secs()), now.subsec_millis()),
            created: now.as_secs(),
            nodes,
            rolled_back: false,
        }
    }

    /// The creation time as `YYYY-MM-DD HH:MM:SS UTC`.
    pub fn time(&self) -> String {
        let s = utc_stamp(self.created);
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
}

/// The store in one folder.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn object_path(&self, sha: Sha256Sum) -> PathBuf {
        self.root.join("objects").join(sha.to_hex())
    }

    /// Stores a module binary (once) and remembers which MD5 it has.
    pub fn put(&self, md5: Md5, bytes: &[u8]) -> Result<Sha256Sum, SnapshotError> {
        let sha = Sha256Sum::of(bytes);
        let path = self.object_path(sha);
        // Objects and index entries skip the fsync: a torn one fails its
        // SHA-256 check on read and is never loaded. Manifests are synced.
        if !path.is_file() {
            write_atomic(&path, bytes, false)?;
        }
        let index = self.root.join("md5").join(md5.to_hex());
        if std::fs::read_to_string(&index).ok().as_deref() != Some(sha.to_hex().as_str()) {
            write_atomic(&index, sha.to_hex().as_bytes(), false)?;
        }
        Ok(sha)
    }

    /// A stored binary whose module has this MD5, if the store has one
    /// intact. A damaged object is treated as absent here: the caller then
    /// asks the node instead.
    pub fn find_by_md5(&self, md5: Md5) -> Option<Sha256Sum> {
        let text = std::fs::read_to_string(self.root.join("md5").join(md5.to_hex())).ok()?;
        let sha = Sha256Sum::from_hex(text.trim())?;
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

    pub fn save(&self, manifest: &Manifest) -> Result<(), SnapshotError> {
        let path = self
            .root
            .join("snapshots")
            .join(format!("{}.json", manifest.id));
        let text = serde_json::to_vec_pretty(manifest).map_err(|e| SnapshotError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&path, &text, true)
    }

    /// All snapshots, oldest first. A manifest that does not parse is an
    /// error naming it.
    pub fn list(&self) -> Result<Vec<Manifest>, SnapshotError> {
        let dir = self.root.join("snapshots");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(SnapshotError::Read { path: dir, source }),
        };
        let mut manifests = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|source| SnapshotError::Read {
                    path: dir.clone(),
                    source,
                })?
                .path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = std::fs::read(&path).map_err(|source| SnapshotError::Read {
                path: path.clone(),
                source,
            })?;
            let manifest: Manifest =
                serde_json::from_slice(&text).map_err(|e| SnapshotError::CorruptManifest {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
            manifests.push(manifest);
        }
        manifests.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(manifests)
    }

    /// The newest snapshot not yet rolled back that covers any of `nodes`.
    pub fn latest_for(&self, nodes: &[String]) -> Result<Option<Manifest>, SnapshotError> {
        Ok(self
            .list()?
            .into_iter()
            .rev()
            .find(|m| !m.rolled_back && nodes.iter().any(|n| m.nodes.contains_key(n))))
    }
}

fn write_atomic(path: &Path, bytes: &[u8], sync: bool) -> Result<(), SnapshotError> {
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
    if sync {
        file.sync_all().map_err(fail)?;
    }
    drop(file);
    std::fs::rename(&tmp, path).map_err(fail)
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
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_calendar_times() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(1_795_392_000), "20261123T000000Z");
        assert_eq!(utc_stamp(951_782_400 + 3_661), "20000229T010101Z");
    }

    #[test]
    fn objects_are_checked_on_read() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::new(dir.path());
        let md5 = Md5([7; 16]);
        let sha = store.put(md5, b"module bytes").expect("put");
        assert_eq!(store.read(sha).expect("read"), b"module bytes");
        assert_eq!(store.find_by_md5(md5), Some(sha));
        std::fs::write(
            dir.path().join("objects").join(sha.to_hex()),
            b"module byte",
        )
        .expect("damage");
        assert!(matches!(
            store.read(sha),
            Err(SnapshotError::CorruptObject { .. })
        ));
        assert!(store.find_by_md5(md5).is_none());
    }

    #[test]
    fn truncated_manifests_are_reported() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::new(dir.path());
        let manifest = Manifest::new(BTreeMap::from([(
            "a@h".to_owned(),
            vec![Entry {
                module: "m".into(),
                prior: Prior::Absent,
            }],
        )]));
        store.save(&manifest).expect("save");
        assert_eq!(
            store.latest_for(&["a@h".into()]).expect("list"),
            Some(manifest.clone())
        );
        let path = dir
            .path()
            .join("snapshots")
            .join(format!("{}.json", manifest.id));
        let text = std::fs::read(&path).expect("read");
        std::fs::write(&path, &text[..text.len() / 2]).expect("truncate");
        assert!(matches!(
            store.list(),
            Err(SnapshotError::CorruptManifest { .. })
        ));
    }
}
