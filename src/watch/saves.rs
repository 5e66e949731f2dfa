//! Saves that Mix would not see. Mix tells a changed source by its size
//! and its mtime in whole seconds (older Mix against the manifest's mtime,
//! that is when it last compiled; newer against the mtime recorded for
//! that source at its last compile): a file saved again at the same size,
//! with an mtime no later than the second its last build finished, may be
//! taken for unchanged, and the node would keep the previous save.
//! Touching the file would make editors warn that it changed on disk;
//! instead such a save asks for a forced build.

use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// A source as it was when last built.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    size: u64,
    digest: [u8; 32],
    /// The second (Unix time) that build finished in.
    built: u64,
}

#[derive(Debug, Default)]
pub struct Saves {
    built: HashMap<PathBuf, Seen>,
}

impl Saves {
    /// Whether Mix may miss a change among `changed`: same size, other
    /// content, saved no later than the second its last build finished.
    pub fn missed_by_mix(&self, changed: &BTreeSet<PathBuf>) -> bool {
        changed
            .iter()
            .any(|path| match (self.built.get(path), now(path)) {
                (Some(before), Some((size, digest, second))) => {
                    before.size == size && before.digest != digest && second <= before.built
                }
                _ => false,
            })
    }

    /// Remembers `changed` as built, now.
    pub fn built(&mut self, changed: &BTreeSet<PathBuf>) {
        let built = unix_second(std::time::SystemTime::now()).unwrap_or(0);
        for path in changed {
            match now(path) {
                Some((size, digest, _)) => self.built.insert(
                    path.clone(),
                    Seen {
                        size,
                        digest,
                        built,
                    },
                ),
                None => self.built.remove(path),
            };
        }
    }
}

/// A file's size, content digest and mtime second now.
fn now(path: &Path) -> Option<(u64, [u8; 32], u64)> {
    let meta = std::fs::metadata(path).ok()?;
    let second = unix_second(meta.modified().ok()?)?;
    let content = std::fs::read(path).ok()?;
    Some((meta.len(), Sha256::digest(&content).into(), second))
}

fn unix_second(t: std::time::SystemTime) -> Option<u64> {
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_same_size_save_up_to_the_second_its_build_finished_is_missed() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("a.ex");
        let set = BTreeSet::from([file.clone()]);
        std::fs::write(&file, "value 1").expect("write");
        let mut saves = Saves::default();
        assert!(!saves.missed_by_mix(&set), "never built: Mix sees it");
        saves.built(&set);
        assert!(!saves.missed_by_mix(&set), "unchanged");
        let save_at = |text: &str, second: u64| {
            std::fs::write(&file, text).expect("write");
            let at = UNIX_EPOCH + std::time::Duration::from_secs(second);
            let f = std::fs::File::options()
                .write(true)
                .open(&file)
                .expect("open");
            f.set_modified(at).expect("mtime");
        };
        let now = unix_second(std::time::SystemTime::now()).expect("clock");
        // Saved in one second, its build finished in the next.
        save_at("value 22", now - 1);
        assert!(!saves.missed_by_mix(&set), "another size: Mix sees it");
        saves.built(&set);
        let built = saves.built[&file].built;
        // Saved in the second the build finished, or (clocks) before it.
        save_at("value 33", built);
        assert!(saves.missed_by_mix(&set));
        save_at("value 44", built - 5);
        assert!(saves.missed_by_mix(&set));
        // A later second: Mix sees it by its mtime.
        save_at("value 55", built + 1);
        assert!(!saves.missed_by_mix(&set));
    }
}
