//! What each node was last seen to run, one file per node
//! (`beliefs/<node>.json`, module → `loaded:<md5>`, `on_disk:<md5>` or
//! `absent`): a run reads and rewrites only the files of the nodes it
//! deploys to, however many nodes the store has met. Hints, written
//! unsynced: a deploy acts on them only with the node's own check. Files
//! not written for [`FORGET_AFTER`] go when the store is pruned.

use super::error::SnapshotError;
use super::files::{files_in, remove, write_atomic};
use super::objects::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// How long a node unseen keeps its beliefs (and remembered port).
pub const FORGET_AFTER: Duration = Duration::from_secs(30 * 24 * 3600);

/// One node's beliefs, module → state text.
pub type NodeBeliefs = BTreeMap<String, String>;

/// The beliefs a node's file holds; empty when it does not parse.
pub fn parse_beliefs(bytes: &[u8]) -> NodeBeliefs {
    serde_json::from_slice(bytes).unwrap_or_default()
}

impl Store {
    /// What `node` was last seen to run; empty when unknown or unreadable.
    pub fn beliefs_of(&self, node: &str) -> NodeBeliefs {
        std::fs::read(self.belief_path(node))
            .map(|bytes| parse_beliefs(&bytes))
            .unwrap_or_default()
    }

    /// Sets (or, with `None`, forgets) what nodes run of some modules: one
    /// read and one write of each of these nodes' files, and no other.
    pub fn update_beliefs(&self, changes: BTreeMap<String, BTreeMap<String, Option<String>>>) {
        for (node, modules) in changes {
            let mut mine = self.beliefs_of(&node);
            for (module, state) in modules {
                match state {
                    Some(state) => mine.insert(module, state),
                    None => mine.remove(&module),
                };
            }
            if let Ok(text) = serde_json::to_vec(&mine) {
                let _ = write_atomic(&self.belief_path(&node), &text, false);
            }
        }
    }

    /// Removes the beliefs of nodes unseen for [`FORGET_AFTER`] and the
    /// ports of nodes without beliefs, and the single `beliefs.json` of
    /// older versions; returns how many nodes were forgotten.
    pub(super) fn forget_unseen_nodes(&self) -> Result<usize, SnapshotError> {
        remove(&self.root().join("beliefs.json"))?;
        let now = SystemTime::now();
        let mut forgotten = 0;
        let mut known = BTreeSet::new();
        for path in files_in(&self.root().join("beliefs"))? {
            let Some(node) = node_of(&path) else { continue };
            let written = std::fs::metadata(&path).and_then(|m| m.modified());
            let age = written.map(|w| now.duration_since(w).unwrap_or_default());
            if age.is_ok_and(|age| age > FORGET_AFTER) {
                remove(&path)?;
                forgotten += 1;
            } else {
                known.insert(node);
            }
        }
        let mut ports = self.ports();
        let before = ports.len();
        ports.retain(|node, _| known.contains(node));
        if ports.len() != before {
            self.remember_ports(&ports);
        }
        Ok(forgotten)
    }

    fn belief_path(&self, node: &str) -> PathBuf {
        self.root()
            .join("beliefs")
            .join(format!("{}.json", file_stem(node)))
    }
}

/// `node` as a file name: letters, digits, `_`, `-`, `@` and inner dots
/// kept, any other byte as `%XX`, so that no name leaves the folder or
/// looks like a temporary file.
fn file_stem(node: &str) -> String {
    let mut stem = String::with_capacity(node.len());
    for (i, byte) in node.bytes().enumerate() {
        let plain = byte.is_ascii_alphanumeric()
            || matches!(byte, b'_' | b'-' | b'@')
            || (byte == b'.' && i > 0);
        if plain {
            stem.push(byte as char);
        } else {
            stem.push_str(&format!("%{byte:02X}"));
        }
    }
    stem
}

/// The node a beliefs file is of (the reverse of [`file_stem`]); `None`
/// for anything else in the folder.
fn node_of(path: &std::path::Path) -> Option<String> {
    let stem = path.file_name()?.to_str()?.strip_suffix(".json")?;
    if stem.starts_with('.') {
        return None;
    }
    let mut bytes = Vec::with_capacity(stem.len());
    let mut rest = stem.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_file_names_and_back() {
        for node in ["n@h", "a.b@host.example", ".x@h", "../up@h", "p%q@h", "ü@h"] {
            let stem = file_stem(node);
            assert!(!stem.contains('/') && !stem.starts_with('.'), "{stem}");
            let path = PathBuf::from(format!("{stem}.json"));
            assert_eq!(node_of(&path).as_deref(), Some(node));
        }
        assert_eq!(file_stem("dev@nerves-1234.local"), "dev@nerves-1234.local");
        assert_eq!(node_of(&PathBuf::from(".tmp-1-n@h.json")), None);
    }
}
