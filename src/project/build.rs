//! The one builder: none (the watched files are the modules), the
//! project's build command ([`super::command`]), or for `watch` on a Mix
//! project Mix's warm build node ([`super::build_node`]), started when
//! first needed and again if it dies; if it cannot start, the build command
//! runs per change.

use super::build_node::{BuildNode, Compile};
pub use super::command::BuildError;
use super::saves::Saves;
use crate::output::Mode;
use crate::peer::Peer;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What builds the project on each change.
pub enum Builder {
    /// Nothing to build: the watched files are the modules.
    Nothing,
    /// A command per change.
    Command { command: String, mode: Mode },
    /// A warm Mix build node, started when first needed.
    Mix {
        node: Option<Box<BuildNode>>,
        project: PathBuf,
        mode: Mode,
        /// The command to fall back on if no node can be started.
        command: String,
        saves: Saves,
    },
}

impl Builder {
    /// The build of a one-shot run: the command, if any.
    pub fn once(build: Option<&str>, mode: Mode) -> Builder {
        match build {
            None => Builder::Nothing,
            Some(command) => Builder::Command {
                command: command.to_owned(),
                mode,
            },
        }
    }

    /// The build of a `watch` session: Mix projects whose build is `mix
    /// compile` get a build node; any other build command runs per change.
    pub fn warm(project: &Path, build: Option<&str>, mode: Mode) -> Builder {
        match build {
            None => Builder::Nothing,
            Some(command)
                if command.trim() == "mix compile" && project.join("mix.exs").is_file() =>
            {
                Builder::Mix {
                    node: None,
                    project: project.to_owned(),
                    mode,
                    command: command.to_owned(),
                    saves: Saves::default(),
                }
            }
            Some(command) => Builder::Command {
                command: command.to_owned(),
                mode,
            },
        }
    }

    /// Whether a build is a command run per change (which may compare
    /// file times to the second: see `beam/stale.rs`).
    pub fn runs_a_command(&self) -> bool {
        matches!(self, Builder::Command { .. })
    }

    /// A line for the `Watching` banner.
    pub fn describe(&self) -> String {
        match self {
            Builder::Nothing => "no build".into(),
            Builder::Command { command, .. } => format!("building with `{command}`"),
            Builder::Mix { node: Some(n), .. } => format!("build node {}", n.name),
            Builder::Mix { command, .. } => format!("building with `{command}`"),
        }
    }

    /// Builds after `changed` changed (all of the project the first
    /// time); a build command stops when `stop` is ready.
    pub async fn build(
        &mut self,
        peer: &Peer,
        project: &Path,
        changed: &BTreeSet<PathBuf>,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), BuildError> {
        let fallback = match self {
            Builder::Nothing => return Ok(()),
            Builder::Command { command, mode } => {
                return super::command::run(command, project, *mode, stop).await
            }
            Builder::Mix {
                node,
                project,
                mode,
                command,
                saves,
            } => {
                if changed.iter().any(|p| needs_fresh_mix(project, p)) {
                    stop_node(node).await;
                }
                let how = if saves.missed_by_mix(changed) {
                    Compile::Force
                } else if quick_compile(changed) {
                    Compile::Quick
                } else {
                    Compile::Full
                };
                let before = Saves::before(changed);
                match build_on_node(node, peer, project, *mode, how).await {
                    Some(built) => {
                        if built.is_ok() {
                            saves.built(before);
                        }
                        return built;
                    }
                    None => (command.clone(), *mode),
                }
            }
        };
        let (command, mode) = fallback;
        let built = super::command::run(&command, project, mode, stop).await;
        *self = Builder::Command { command, mode };
        built
    }

    /// Stops the build node, if one runs.
    pub async fn stop(self) {
        if let Builder::Mix {
            node: Some(node), ..
        } = self
        {
            node.stop().await;
        }
    }
}

/// Compiles on the build node, starting one if there is none or it died.
/// `None`: no node could be started, or a fresh one failed too; the
/// caller falls back on the command.
async fn build_on_node(
    slot: &mut Option<Box<BuildNode>>,
    peer: &Peer,
    project: &Path,
    mode: Mode,
    how: Compile,
) -> Option<Result<(), BuildError>> {
    if let Some(why) = slot.as_mut().and_then(|n| n.gone()) {
        eprintln!("warning: the build node stopped ({why}); starting a new one");
        stop_node(slot).await;
    }
    for attempt in 0..2 {
        if slot.is_none() {
            match BuildNode::start(peer, project, mode).await {
                Ok(node) => *slot = Some(Box::new(node)),
                Err(e) => {
                    eprintln!("warning: cannot start a build node ({e}); running the build command on each change instead");
                    return None;
                }
            }
        }
        crate::fault::hold("build_node_compile").await;
        let failed = match slot.as_mut()?.compile(how).await {
            Ok(built) => return Some(built),
            Err(e) => e,
        };
        // A node killed just before the compile is seen gone only by it:
        // said as a node that stopped, whichever noticed first.
        let what = match slot.as_mut().and_then(|n| n.gone()) {
            Some(why) => format!("stopped ({why})"),
            None => format!("failed ({failed})"),
        };
        match attempt {
            0 => eprintln!("warning: the build node {what}; starting a new one"),
            _ => eprintln!("warning: the build node {what} again; running the build command on each change instead"),
        }
        stop_node(slot).await;
    }
    None
}

async fn stop_node(slot: &mut Option<Box<BuildNode>>) {
    if let Some(node) = slot.take() {
        node.stop().await;
    }
}

/// Whether `mix compile` may skip checking dependencies and consolidating
/// protocols: only sources changed (a changed `mix.exs` or lock starts a
/// fresh node anyway), and none defines a protocol or an implementation,
/// so the consolidated protocols cannot change. Saves a third of a build.
/// (Mix from Elixir 1.19 consolidates as it compiles and cannot skip it;
/// there the quick compile skips the deps check only: see
/// `BuildNode::compile`.)
fn quick_compile(changed: &BTreeSet<PathBuf>) -> bool {
    !changed.is_empty()
        && changed.iter().all(|p| {
            std::fs::read_to_string(p).is_ok_and(|text| {
                !["defprotocol", "defimpl", "@derive", "Protocol."]
                    .iter()
                    .any(|k| text.contains(k))
            })
        })
}

/// A change that Mix reads only when it starts: the project file, the
/// lock file, or configuration.
fn needs_fresh_mix(project: &Path, path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let rel: Vec<_> = path
        .strip_prefix(project)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str())
        .collect();
    let in_config = match rel.as_slice() {
        [top, ..] if *top == "config" => true,
        [apps, _, top, ..] => *apps == "apps" && *top == "config",
        _ => false,
    };
    matches!(name, "mix.exs" | "mix.lock") || in_config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_and_project_files_make_a_full_build() {
        let dir = tempfile::tempdir().expect("tmp");
        let plain = dir.path().join("a.ex");
        let protocol = dir.path().join("b.ex");
        std::fs::write(&plain, "defmodule A do\n  def f, do: 1\nend\n").expect("write");
        std::fs::write(&protocol, "defimpl String.Chars, for: A do\nend\n").expect("write");
        assert!(quick_compile(&BTreeSet::from([plain.clone()])));
        assert!(!quick_compile(&BTreeSet::from([plain, protocol])));
        assert!(!quick_compile(&BTreeSet::new()));

        let project = Path::new("/p");
        assert!(needs_fresh_mix(project, Path::new("/p/mix.exs")));
        assert!(needs_fresh_mix(project, Path::new("/p/config/dev.exs")));
        assert!(!needs_fresh_mix(project, Path::new("/p/lib/config.ex")));
        assert!(!needs_fresh_mix(project, Path::new("/p/lib/a.ex")));
        assert!(!needs_fresh_mix(project, Path::new("/p/lib/config/a.ex")));
        assert!(needs_fresh_mix(
            project,
            Path::new("/p/apps/a/config/config.exs")
        ));
    }
}
