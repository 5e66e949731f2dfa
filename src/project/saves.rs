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

/// Sources as they were when a build started: what it could have compiled
/// at best. A save during the build is not in it, so the next change
/// finds that save unbuilt.
#[derive(Debug)]
pub struct Before(Vec<(PathBuf, Option<Content>)>);

/// A source's size and the digest of its content.
type Content = (u64, [u8; 32]);

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

    /// `changed` as they are now, before a build.
    pub fn before(changed: &BTreeSet<PathBuf>) -> Before {
        Before(
            changed
                .iter()
                .map(|path| {
                    (
                        path.clone(),
                        now(path).map(|(size, digest, _)| (size, digest)),
                    )
                })
                .collect(),
        )
    }

    /// Remembers the sources as they were `before` a build that has just
    /// finished, as built now.
    pub fn built(&mut self, before: Before) {
        let built = unix_second(std::time::SystemTime::now()).unwrap_or(0);
        for (path, seen) in before.0 {
            match seen {
                Some((size, digest)) => self.built.insert(
                    path,
                    Seen {
                        size,
                        digest,
                        built,
                    },
                ),
                None => self.built.remove(&path),
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
        saves.built(Saves::before(&set));
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
        saves.built(Saves::before(&set));
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

    #[test]
    fn a_save_during_a_build_is_not_taken_for_built() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("a.ex");
        let set = BTreeSet::from([file.clone()]);
        std::fs::write(&file, ":mars1").expect("write");
        let mut saves = Saves::default();
        let before = Saves::before(&set);
        // The build compiles :mars1; the same-size :mars2 lands meanwhile.
        std::fs::write(&file, ":mars2").expect("write");
        saves.built(before);
        assert!(saves.missed_by_mix(&set), "the build never saw :mars2");
    }
}
