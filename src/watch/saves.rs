//! Saves that Mix would not see. Mix tells a changed source by its size
//! and its mtime in whole seconds (older Mix against the manifest's mtime,
//! newer against the mtime recorded for that source at its last compile):
//! a file saved again within the second it was last built, at the same
//! size, is taken for unchanged, and the node would keep the previous
//! save. Touching the file would make editors warn that it changed on
//! disk; instead such a save asks for a forced build.

use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// A source as it was when last built.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    size: u64,
    second: u64,
    digest: [u8; 32],
}

#[derive(Debug, Default)]
pub struct Saves {
    built: HashMap<PathBuf, Seen>,
}

impl Saves {
    /// Whether Mix would miss a change among `changed`: same size, same
    /// mtime second as when built, other content.
    pub fn missed_by_mix(&self, changed: &BTreeSet<PathBuf>) -> bool {
        changed
            .iter()
            .any(|path| match (self.built.get(path), seen(path)) {
                (Some(before), Some(now)) => {
                    before.size == now.size
                        && before.second == now.second
                        && before.digest != now.digest
                }
                _ => false,
            })
    }

    /// Remembers `changed` as built.
    pub fn built(&mut self, changed: &BTreeSet<PathBuf>) {
        for path in changed {
            match seen(path) {
                Some(s) => self.built.insert(path.clone(), s),
                None => self.built.remove(path),
            };
        }
    }
}

fn seen(path: &Path) -> Option<Seen> {
    let meta = std::fs::metadata(path).ok()?;
    let second = meta
        .modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_secs();
    let content = std::fs::read(path).ok()?;
    Some(Seen {
        size: meta.len(),
        second,
        digest: Sha256::digest(&content).into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_same_size_save_in_the_built_second_is_missed() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("a.ex");
        let set = BTreeSet::from([file.clone()]);
        std::fs::write(&file, "value 1").expect("write");
        let mut saves = Saves::default();
        assert!(!saves.missed_by_mix(&set), "never built: Mix sees it");
        saves.built(&set);
        assert!(!saves.missed_by_mix(&set), "unchanged");
        std::fs::write(&file, "value 22").expect("write");
        assert!(!saves.missed_by_mix(&set), "another size: Mix sees it");
        saves.built(&set);
        std::fs::write(&file, "value 33").expect("write");
        let second = |p: &Path| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .map(|t| {
                    t.duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0)
                })
                .unwrap_or(0)
        };
        let same_second = saves.built.get(&file).map(|s| s.second) == Some(second(&file));
        assert_eq!(saves.missed_by_mix(&set), same_second);
    }
}
