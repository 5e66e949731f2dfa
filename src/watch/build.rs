//! Building on each change. A Mix project gets a warm build node: one
//! hidden Elixir node for the session, running the project's Mix, that
//! recompiles in tens of milliseconds where `mix compile` boots a VM each
//! time. It is driven over this tool's own peer, listens on loopback only,
//! has a random cookie, and halts when our connection to it drops. If it
//! dies it is started again; if it cannot start, and for rebar3 or a
//! configured `build`, the build command runs per change.

use super::saves::Saves;
use crate::build_command::BuildError;
use crate::dist::term;
use crate::dist::{Connection, Cookie, NodeName, Peer, Script};
use crate::output::Mode;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

static COMPILE: Script = Script::new(include_str!("node/compile.erl"));
static GUARD: Script = Script::new(include_str!("node/guard.erl"));
/// The environment variable that hands the build node its cookie.
const COOKIE_VAR: &str = "HOTSWAP_BUILD_COOKIE";

/// A compile may take long (the first one of a big project).
const COMPILE_LIMIT: Duration = Duration::from_secs(600);
/// How long a build node may take to come up.
const START_LIMIT: Duration = Duration::from_secs(60);

/// How a build went.
#[derive(Debug, PartialEq, Eq)]
pub enum Built {
    /// The build output may have changed.
    Ok,
    /// The build failed; its own output said why.
    Failed(String),
}

/// How much `mix compile` must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compile {
    /// Sources only, none touching protocols: skip the deps check and
    /// protocol consolidation.
    Quick,
    Full,
    /// A save Mix would not see ([`Saves`]): recompile everything.
    Force,
}

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
    /// Mix projects whose build is `mix compile` get a build node; any
    /// other build command runs per change.
    pub fn for_project(project: &Path, build: Option<&str>, mode: Mode) -> Builder {
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

    /// Builds after `changed` changed (all of the project the first time).
    pub async fn build(
        &mut self,
        peer: &Peer,
        project: &Path,
        changed: &BTreeSet<PathBuf>,
    ) -> Built {
        let fallback = match self {
            Builder::Nothing => return Built::Ok,
            Builder::Command { command, mode } => {
                return run_command(command, project, *mode).await
            }
            Builder::Mix {
                node,
                project,
                mode,
                command,
                saves,
            } => {
                if changed.iter().any(|p| needs_fresh_mix(project, p)) {
                    stop(node).await;
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
                        if built == Built::Ok {
                            saves.built(before);
                        }
                        return built;
                    }
                    None => (command.clone(), *mode),
                }
            }
        };
        *self = Builder::Command {
            command: fallback.0,
            mode: fallback.1,
        };
        self.build_again(project).await
    }

    async fn build_again(&self, project: &Path) -> Built {
        match self {
            Builder::Command { command, mode } => run_command(command, project, *mode).await,
            _ => Built::Ok,
        }
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
) -> Option<Built> {
    if let Some(why) = slot.as_mut().and_then(|n| n.gone()) {
        eprintln!("warning: the build node stopped ({why}); starting a new one");
        stop(slot).await;
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
        match slot.as_mut()?.compile(how).await {
            Ok(built) => return Some(built),
            Err(e) if attempt == 0 => {
                eprintln!("warning: the build node failed ({e}); starting a new one")
            }
            Err(e) => eprintln!("warning: the build node failed again ({e}); running the build command on each change instead"),
        }
        stop(slot).await;
    }
    None
}

async fn stop(slot: &mut Option<Box<BuildNode>>) {
    if let Some(node) = slot.take() {
        node.stop().await;
    }
}

/// Whether `mix compile` may skip checking dependencies and consolidating
/// protocols: only sources changed (a changed `mix.exs` or lock starts a
/// fresh node anyway), and none defines a protocol or an implementation,
/// so the consolidated protocols cannot change. Saves a third of a build.
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

/// The warm build node of a session.
pub struct BuildNode {
    pub name: NodeName,
    child: Child,
    conn: Connection,
    /// Compiled once already: Mix checked dependencies and protocols.
    warm: bool,
}

impl BuildNode {
    /// Starts `mix run --no-start --no-compile --no-halt` in the project as
    /// a hidden node on loopback with a random cookie, and connects to it.
    /// The cookie travels in the environment, which only its user can read,
    /// not in a command line, which every user of the machine can: the node
    /// starts without one (`-nocookie`: nobody can connect) and becomes
    /// distributed once Mix has loaded the project ([`ready`]).
    pub async fn start(peer: &Peer, project: &Path, mode: Mode) -> Result<BuildNode, String> {
        let name: NodeName = format!("hotswap_build_{}@127.0.0.1", std::process::id())
            .parse()
            .map_err(|e| format!("{e}"))?;
        let cookie = crate::random::secret_hex(32)
            .map_err(|e| format!("no random source for the build node's cookie: {e}"))?;
        let cookie = Cookie::new(cookie);
        let options = erl_options(std::env::var("ELIXIR_ERL_OPTIONS").ok().as_deref());
        let mut child = Command::new("mix")
            .args(["run", "--no-start", "--no-compile", "--no-halt", "-e"])
            .arg(ready(&name))
            .current_dir(project)
            .env("ELIXIR_ERL_OPTIONS", options)
            .env(COOKIE_VAR, cookie.expose())
            .stdin(Stdio::null())
            .stdout(crate::build_command::chatter(mode))
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run `mix`: {e}"))?;
        let started = Instant::now();
        let conn = loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("`mix run` exited with {status}"));
            }
            match peer.connect_private(&name, &cookie).await {
                Ok(conn) => break conn,
                Err(_) if started.elapsed() < START_LIMIT => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => {
                    let _ = child.kill().await;
                    return Err(e.to_string());
                }
            }
        };
        let guard = crate::dist::eval::Bindings::new()
            .set("OwnerName", &term::atom_term(&peer.name().to_string()))
            .encode();
        let ready = conn
            .eval(&GUARD, &guard, START_LIMIT + Duration::from_secs(5))
            .await
            .map_err(|e| e.to_string())?;
        if !term::is_atom(&ready, "ok") {
            let _ = child.kill().await;
            return Err("Mix did not load the project in time".into());
        }
        Ok(BuildNode {
            name,
            child,
            conn,
            warm: false,
        })
    }

    /// Why the node is gone, if it is.
    fn gone(&mut self) -> Option<String> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(format!("it exited with {status}"));
        }
        self.conn.closed_reason()
    }

    async fn compile(&mut self, how: Compile) -> Result<Built, String> {
        let args: &[&str] = match how {
            Compile::Quick if self.warm => &["--no-deps-check", "--no-protocol-consolidation"],
            Compile::Force => &["--force"],
            _ => &[],
        };
        let args: Vec<term::Term> = args
            .iter()
            .map(|a| term::binary(a.as_bytes().to_vec()))
            .collect();
        let bindings = crate::dist::eval::Bindings::new()
            .set("Args", &term::list(args))
            .encode();
        let answer = self
            .conn
            .eval(&COMPILE, &bindings, COMPILE_LIMIT)
            .await
            .map_err(|e| e.to_string())?;
        let bad = || format!("unexpected answer {}", term::show(&answer));
        let [status, detail] = term::as_tuple_n::<2>(&answer).map_err(|_| bad())?;
        self.warm = true;
        Ok(match term::as_atom(status).map_err(|_| bad())? {
            "ok" | "noop" => Built::Ok,
            "error" => Built::Failed(format!(
                "the build failed ({} shown above)",
                crate::deploy::report::count(
                    usize::try_from(term::as_int(detail).unwrap_or(1)).unwrap_or(1),
                    "error"
                )
            )),
            _ => Built::Failed(term::as_text(detail).unwrap_or_else(|_| bad())),
        })
    }

    /// Halts the node and reaps it.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// The build node's VM flags: the user's own `ELIXIR_ERL_OPTIONS`, then
/// ours (hidden, on loopback only, no cookie until [`ready`] sets one),
/// which win where both set the same thing.
fn erl_options(user: Option<&str>) -> String {
    let ours = "-nocookie -hidden -kernel inet_dist_use_interface {127,0,0,1}";
    match user.map(str::trim) {
        Some(user) if !user.is_empty() => format!("{user} {ours}"),
        _ => ours.to_owned(),
    }
}

/// Run by `mix run` once the project is loaded: makes the node distributed
/// as `name`, sets the cookie from the environment (and clears it there),
/// and says the node is ready. If no tool has taken it in hand (the guard,
/// src/watch/node/guard.erl) within [`START_LIMIT`], the tool is gone: the
/// node halts.
fn ready(name: &NodeName) -> String {
    format!(
        "{{:ok, _}} = :net_kernel.start([:\"{name}\", :longnames]); \
         :erlang.set_cookie(node(), String.to_atom(System.fetch_env!(\"{COOKIE_VAR}\"))); \
         System.delete_env(\"{COOKIE_VAR}\"); \
         spawn(fn -> Process.sleep({}); Process.whereis(:hotswap_build_guard) || System.halt(0) end); \
         Process.register(spawn(fn -> Process.sleep(:infinity) end), :hotswap_build_ready)",
        START_LIMIT.as_millis()
    )
}

/// Runs the build command, its output shown as `deploy` shows it; a
/// change in flight finishes its build even on Ctrl-C.
async fn run_command(command: &str, project: &Path, mode: Mode) -> Built {
    let stop = std::future::pending();
    match crate::build_command::run(command, project, mode, stop).await {
        Ok(()) => Built::Ok,
        Err(BuildError::Failed(how)) => Built::Failed(format!("the build (`{command}`) {how}")),
        Err(BuildError::Interrupted) => Built::Failed("the build was interrupted".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_erl_options_come_first_and_ours_are_kept() {
        let ours = "-nocookie -hidden -kernel inet_dist_use_interface {127,0,0,1}";
        assert_eq!(erl_options(None), ours);
        assert_eq!(erl_options(Some("  ")), ours);
        assert_eq!(erl_options(Some(" +S 1:1 ")), format!("+S 1:1 {ours}"));
    }

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
