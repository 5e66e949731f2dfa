//! Saves a build command would not see. rebar3, like most build tools,
//! rebuilds a module when its source is newer than its beam, comparing
//! times to the second: a save in the same second as the beam it last
//! wrote looks already built, and is silently skipped. (Mix has the same
//! blind spot; `watch`'s build node deals with it, see `watch/saves.rs`.)
//! Before such a build runs, the beams a save may concern are dated a
//! second before it, so the tool sees them stale.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Dates back the `beams` (the last build's) that `changed` files may have
/// been saved in the same second as: for an Erlang source, its own
/// module's beam; for anything else (a header, a config), every beam. A
/// file that is gone, or a beam that cannot be changed, is left as it is:
/// the build then behaves as it would without this.
pub fn date_back(changed: &BTreeSet<PathBuf>, beams: &[PathBuf]) {
    let by_module = by_module(beams);
    for path in changed {
        let Some(saved) = mtime(path) else { continue };
        let concerned: Vec<&PathBuf> = match is_erlang_source(path) {
            true => path
                .file_stem()
                .and_then(|m| by_module.get(m))
                .into_iter()
                .copied()
                .collect(),
            false => beams.iter().collect(),
        };
        for beam in concerned {
            if mtime(beam).is_some_and(|built| second(built) >= second(saved)) {
                date(beam, second(saved).saturating_sub(1));
            }
        }
    }
}

/// Dates back the beams of `sources` (every source of a project, changed
/// or not, as `deploy` knows no better) whose beam was written in the
/// same second as the source was saved: only there can the build tool not
/// tell which came first. A beam written in a later second was built from
/// the source as it is; one from an earlier second is stale already.
pub fn date_back_ambiguous(sources: &BTreeSet<PathBuf>, beams: &[PathBuf]) {
    let by_module = by_module(beams);
    for source in sources.iter().filter(|s| is_erlang_source(s)) {
        let Some(saved) = mtime(source) else { continue };
        let Some(beam) = source.file_stem().and_then(|m| by_module.get(m)) else {
            continue;
        };
        if mtime(beam).is_some_and(|built| second(built) == second(saved)) {
            date(beam, second(saved).saturating_sub(1));
        }
    }
}

fn by_module(beams: &[PathBuf]) -> HashMap<&OsStr, &PathBuf> {
    beams
        .iter()
        .filter_map(|b| Some((b.file_stem()?, b)))
        .collect()
}

/// Sets `beam`'s modification time to `secs` after the epoch.
fn date(beam: &Path, secs: u64) {
    let dated = std::fs::File::options()
        .write(true)
        .open(beam)
        .and_then(|f| f.set_modified(UNIX_EPOCH + Duration::from_secs(secs)));
    if let Err(e) = dated {
        tracing::debug!("cannot date back {}: {e}", beam.display());
    }
}

/// The Erlang sources under `dirs`, at any depth.
pub fn erl_sources(dirs: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let mut pending = dirs.to_vec();
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
            if path.is_dir() {
                pending.push(path);
            } else if is_erlang_source(&path) {
                found.insert(path);
            }
        }
    }
    found
}

fn is_erlang_source(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "erl")
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Whole seconds since the epoch, as build tools compare file times.
fn second(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(path: &Path, secs: u64, nanos: u32) {
        let f = std::fs::File::options()
            .write(true)
            .open(path)
            .expect("open");
        f.set_modified(UNIX_EPOCH + Duration::new(secs, nanos))
            .expect("set");
    }

    #[test]
    fn only_beams_built_in_the_second_of_a_save_or_later_are_dated_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = |name: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, b"x").expect("write");
            p
        };
        let (src, other_src, header) = (file("a.erl"), file("b.erl"), file("a.hrl"));
        let (a, b) = (file("a.beam"), file("b.beam"));
        let beams = [a.clone(), b.clone()];
        set(&src, 1_000, 900_000_000);
        set(&a, 1_000, 100_000_000); // same second, earlier within it
        set(&other_src, 1_000, 0);
        set(&b, 999, 0); // older: rebar3 sees b.erl is newer already
        date_back(&BTreeSet::from([src.clone(), other_src]), &beams);
        assert_eq!(mtime(&a), Some(UNIX_EPOCH + Duration::from_secs(999)));
        assert_eq!(mtime(&b), Some(UNIX_EPOCH + Duration::from_secs(999)));

        // A header may concern every module.
        set(&header, 2_000, 0);
        set(&a, 2_000, 500);
        set(&b, 1_500, 0);
        date_back(&BTreeSet::from([header]), &beams);
        assert_eq!(mtime(&a), Some(UNIX_EPOCH + Duration::from_secs(1_999)));
        assert_eq!(mtime(&b), Some(UNIX_EPOCH + Duration::from_secs(1_500)));
    }

    #[test]
    fn of_sources_not_known_to_have_changed_only_a_same_second_beam_is_dated_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = |name: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, b"x").expect("write");
            p
        };
        let (a_src, b_src, c_src) = (file("a.erl"), file("b.erl"), file("c.erl"));
        let (a, b, c) = (file("a.beam"), file("b.beam"), file("c.beam"));
        set(&a_src, 1_000, 900_000_000);
        set(&a, 1_000, 100_000_000); // same second: ambiguous
        set(&b_src, 1_000, 0);
        set(&b, 1_002, 0); // built after the save: up to date
        set(&c_src, 1_000, 0);
        set(&c, 990, 0); // older: stale already
        let sources = BTreeSet::from([a_src, b_src, c_src]);
        date_back_ambiguous(&sources, &[a.clone(), b.clone(), c.clone()]);
        assert_eq!(mtime(&a), Some(UNIX_EPOCH + Duration::from_secs(999)));
        assert_eq!(mtime(&b), Some(UNIX_EPOCH + Duration::from_secs(1_002)));
        assert_eq!(mtime(&c), Some(UNIX_EPOCH + Duration::from_secs(990)));
    }
}
