//! What the watch mode watches: a project's sources, or (without a build)
//! folders of `.beam` files, through the `notify` crate. Editors save in
//! several steps (a temp file, a rename, a metadata change), so changes
//! are gathered until the files have been quiet for a settle window.
//! Editor temp files and build output never count as changes.

use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// What counts as a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watched {
    /// Source files of a Mix or rebar3 project.
    Sources,
    /// Compiled modules: `.beam` files only.
    Beams,
}

/// A place to watch: a folder, and whether its subfolders count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub path: PathBuf,
    pub recursive: bool,
}

/// The folders of a project whose files are its source: the project file
/// itself, `lib/`, `src/`, `include/`, `config/`, and an umbrella's `apps/`.
pub fn project_roots(project: &Path) -> Vec<Root> {
    let mut roots = vec![Root {
        path: project.to_owned(),
        recursive: false,
    }];
    for dir in ["lib", "src", "include", "config", "apps"] {
        let path = project.join(dir);
        if path.is_dir() {
            roots.push(Root {
                path,
                recursive: true,
            });
        }
    }
    roots
}

/// Changes seen by the operating system, filtered, waiting to be taken.
pub struct Sources {
    events: mpsc::UnboundedReceiver<PathBuf>,
    /// Changes taken from `events` and not yet returned: kept here, not in
    /// [`Sources::next`]'s future, so that a `select!` dropping that future
    /// loses none.
    pending: BTreeSet<PathBuf>,
    roots: Vec<Root>,
    // Watching stops when this is dropped.
    _watcher: notify::RecommendedWatcher,
}

impl Sources {
    /// Starts watching `roots`.
    pub fn watch(roots: Vec<Root>, kind: Watched) -> Result<Sources, notify::Error> {
        let (tx, events) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                if matches!(event.kind, EventKind::Access(_)) {
                    return;
                }
                for path in event.paths {
                    if counts(&path, kind) {
                        let _ = tx.send(path);
                    }
                }
            })?;
        for root in &roots {
            let mode = if root.recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            watcher.watch(&root.path, mode)?;
        }
        Ok(Sources {
            events,
            pending: BTreeSet::new(),
            roots,
            _watcher: watcher,
        })
    }

    pub fn roots(&self) -> &[Root] {
        &self.roots
    }

    /// Waits for a change, then until nothing has changed for `settle`;
    /// returns every file that changed meanwhile. Cancel-safe.
    pub async fn next(&mut self, settle: Duration) -> BTreeSet<PathBuf> {
        if self.pending.is_empty() {
            match self.events.recv().await {
                Some(path) => self.pending.insert(path),
                // The watcher is gone: nothing will ever change again.
                None => return std::future::pending().await,
            };
        }
        let first = std::time::Instant::now();
        while let Ok(Some(path)) = tokio::time::timeout(settle, self.events.recv()).await {
            self.pending.insert(path);
        }
        tracing::debug!(
            "{} changed; settled {:.1} ms after the first event",
            self.pending.len(),
            first.elapsed().as_secs_f64() * 1e3
        );
        std::mem::take(&mut self.pending)
    }
}

/// Whether a change to `path` is a change of the project.
pub fn counts(path: &Path, kind: Watched) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if is_temp_file(name) {
        return false;
    }
    match kind {
        // The folders watched are build output themselves.
        Watched::Beams => name.ends_with(".beam"),
        Watched::Sources if in_build_output(path) => false,
        Watched::Sources => {
            const NAMES: [&str; 3] = ["mix.exs", "mix.lock", "rebar.config"];
            const EXTENSIONS: [&str; 10] = [
                ".ex", ".exs", ".erl", ".hrl", ".eex", ".heex", ".leex", ".yrl", ".xrl", ".app.src",
            ];
            NAMES.contains(&name) || EXTENSIONS.iter().any(|e| name.ends_with(e))
        }
    }
}

/// Editors' scratch files: Vim's swap files and `4913` probe, Emacs'
/// lock and auto-save files, backups, and the temp files many editors
/// write before renaming over the real one.
fn is_temp_file(name: &str) -> bool {
    name.starts_with(".#")
        || (name.starts_with('#') && name.ends_with('#'))
        || name.ends_with('~')
        || name == "4913"
        || [".swp", ".swx", ".swo", ".tmp", ".bak"]
            .iter()
            .any(|e| name.ends_with(e))
        || (name.starts_with('.') && name.contains(".tmp"))
}

fn in_build_output(path: &Path) -> bool {
    path.components().any(|c| {
        matches!(
            c.as_os_str().to_str(),
            Some("_build" | "deps" | ".hotswap" | ".git" | ".elixir_ls" | "node_modules")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_count_and_scratch_files_do_not() {
        let yes = [
            "/p/lib/a.ex",
            "/p/mix.exs",
            "/p/src/x.erl",
            "/p/src/x.app.src",
        ];
        for p in yes {
            assert!(counts(Path::new(p), Watched::Sources), "{p}");
        }
        let no = [
            "/p/lib/.a.ex.swp",
            "/p/lib/a.ex~",
            "/p/lib/.#a.ex",
            "/p/lib/#a.ex#",
            "/p/lib/4913",
            "/p/lib/a.txt",
            "/p/_build/dev/lib/p/ebin/a.ex",
            "/p/deps/x/lib/x.ex",
            "/p/lib/a.beam",
        ];
        for p in no {
            assert!(!counts(Path::new(p), Watched::Sources), "{p}");
        }
    }

    #[tokio::test]
    async fn a_change_taken_by_a_dropped_wait_is_returned_by_the_next() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = Root {
            path: dir.path().to_owned(),
            recursive: false,
        };
        let mut sources = Sources::watch(vec![root], Watched::Beams).expect("watch");
        let beam = dir.path().join("a.beam");
        std::fs::write(&beam, b"x").expect("write");
        // Dropped while it waits for the files to settle.
        let settle = Duration::from_secs(5);
        let dropped = tokio::time::timeout(Duration::from_millis(300), sources.next(settle)).await;
        assert!(dropped.is_err());
        let changed = tokio::time::timeout(
            Duration::from_secs(5),
            sources.next(Duration::from_millis(10)),
        )
        .await
        .expect("the change is still there");
        assert!(changed.contains(&beam), "{changed:?}");
    }

    #[test]
    fn beams_count_only_as_beams() {
        assert!(counts(Path::new("/e/a.beam"), Watched::Beams));
        assert!(!counts(Path::new("/e/a.ex"), Watched::Beams));
        assert!(!counts(Path::new("/e/.a.beam.tmp"), Watched::Beams));
        assert!(counts(
            Path::new("/p/_build/dev/lib/p/ebin/a.beam"),
            Watched::Beams
        ));
    }
}
