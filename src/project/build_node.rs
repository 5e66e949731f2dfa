//! Mix's warm build node: one hidden Elixir node for a `watch` session,
//! running the project's Mix, that recompiles in tens of milliseconds
//! where `mix compile` boots a VM each time. It is driven over this tool's
//! own peer, listens on loopback only, has a random cookie, and halts when
//! our connection to it drops.

use super::command::BuildError;
use crate::output::Mode;
use crate::peer::term;
use crate::peer::{Connection, Cookie, NodeName, Peer, Script};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// How much `mix compile` must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Compile {
    /// Sources only, none touching protocols: skip the deps check, and
    /// protocol consolidation where Mix can skip it and keep what it
    /// consolidated before.
    Quick,
    Full,
    /// A save Mix would not see ([`Saves`]): recompile everything.
    Force,
}

static COMPILE: Script = Script::new(include_str!("node/compile.erl"));
static GUARD: Script = Script::new(include_str!("node/guard.erl"));
/// The environment variable that hands the build node its cookie.
const COOKIE_VAR: &str = "HOTSWAP_BUILD_COOKIE";

/// A compile may take long (the first one of a big project).
const COMPILE_LIMIT: Duration = Duration::from_secs(600);
/// How long a build node may take to come up.
const START_LIMIT: Duration = Duration::from_secs(60);

/// The warm build node of a session.
pub struct BuildNode {
    pub name: NodeName,
    child: Child,
    conn: Connection,
    /// Compiled once already: Mix checked dependencies and protocols.
    warm: bool,
    /// This Mix consolidates protocols as it compiles (Elixir 1.19 on),
    /// only those whose implementations changed, and deletes the
    /// consolidated protocols when told to skip consolidating: a quick
    /// compile must not tell it to.
    consolidates_as_it_compiles: bool,
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
            .stdout(super::command::chatter(mode))
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
        let guard = crate::peer::eval::Bindings::new()
            .set("OwnerName", &term::atom_term(&peer.name().to_string()))
            .encode();
        let ready = conn
            .eval(&GUARD, &guard, START_LIMIT + Duration::from_secs(5))
            .await
            .map_err(|e| e.to_string())?;
        let Some(consolidates_as_it_compiles) = ready_answer(&ready) else {
            let _ = child.kill().await;
            return Err("Mix did not load the project in time".into());
        };
        Ok(BuildNode {
            name,
            child,
            conn,
            warm: false,
            consolidates_as_it_compiles,
        })
    }

    /// Why the node is gone, if it is.
    pub(super) fn gone(&mut self) -> Option<String> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(format!("it exited with {status}"));
        }
        self.conn.closed_reason()
    }

    pub(super) async fn compile(&mut self, how: Compile) -> Result<Result<(), BuildError>, String> {
        let args: &[&str] = match how {
            Compile::Quick if self.warm && self.consolidates_as_it_compiles => &["--no-deps-check"],
            Compile::Quick if self.warm => &["--no-deps-check", "--no-protocol-consolidation"],
            Compile::Force => &["--force"],
            _ => &[],
        };
        let args: Vec<term::Term> = args
            .iter()
            .map(|a| term::binary(a.as_bytes().to_vec()))
            .collect();
        let bindings = crate::peer::eval::Bindings::new()
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
            "ok" | "noop" => Ok(()),
            "error" => Err(BuildError::Compile(format!(
                "the build failed ({} shown above)",
                crate::deploy::report::count(
                    usize::try_from(term::as_int(detail).unwrap_or(1)).unwrap_or(1),
                    "error"
                )
            ))),
            _ => Err(BuildError::Compile(
                term::as_text(detail).unwrap_or_else(|_| bad()),
            )),
        })
    }

    /// Halts the node and reaps it.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// The guard's answer: `{ok, ConsolidatesAsItCompiles}` once Mix loaded
/// the project, `None` for anything else.
fn ready_answer(answer: &term::Term) -> Option<bool> {
    let [status, consolidates] = term::as_tuple_n::<2>(answer).ok()?;
    if !term::is_atom(status, "ok") {
        return None;
    }
    Some(term::is_atom(consolidates, "true"))
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
/// src/project/node/guard.erl) within [`START_LIMIT`], the tool is gone: the
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_says_ready_and_how_mix_consolidates() {
        let answer = |a: &str, b: &str| term::tuple(vec![term::atom_term(a), term::atom_term(b)]);
        assert_eq!(ready_answer(&answer("ok", "true")), Some(true));
        assert_eq!(ready_answer(&answer("ok", "false")), Some(false));
        assert_eq!(ready_answer(&answer("error", "true")), None);
        assert_eq!(ready_answer(&term::atom_term("timeout")), None);
    }

    #[test]
    fn the_users_erl_options_come_first_and_ours_are_kept() {
        let ours = "-nocookie -hidden -kernel inet_dist_use_interface {127,0,0,1}";
        assert_eq!(erl_options(None), ours);
        assert_eq!(erl_options(Some("  ")), ours);
        assert_eq!(erl_options(Some(" +S 1:1 ")), format!("+S 1:1 {ours}"));
    }
}
