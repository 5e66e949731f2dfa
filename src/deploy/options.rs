//! What the user asked of a run, as the engine takes it: made from the
//! settings and flags once per run, by the command line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub verify: bool,
    pub all: bool,
    pub force: bool,
    pub dry_run: bool,
    pub cluster: bool,
    /// Reach every target through this gateway node (`--via`).
    pub via: Option<crate::peer::NodeName>,
    /// Migrate the processes of a changed module through its
    /// `code_change` (`--no-code-change` turns it off).
    pub code_change: bool,
    /// Which processes migrate, and how long they are watched after.
    pub care: Care,
    pub timeout: Duration,
    /// Snapshots kept per node (0: never prune).
    pub keep: usize,
    /// Called on each node once its change runs.
    pub after: Option<Hook>,
    /// Set (by Ctrl-C) to stop between steps; the run then undoes what it
    /// changed.
    pub interrupted: Arc<AtomicBool>,
}

impl Options {
    pub(super) fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            verify: false,
            all: false,
            force: false,
            dry_run: false,
            cluster: false,
            via: None,
            code_change: true,
            care: Care::default(),
            timeout: Duration::from_secs(30),
            keep: crate::store::DEFAULT_KEEP,
            after: None,
            interrupted: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// What a migration takes care of besides `code_change` itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Care {
    /// Migrate processes whose `sys` loop is not OTP's own as well (a fork
    /// of gen_server, a hand-written loop): by default they load without
    /// migrating, and are named.
    pub any_loop: bool,
    /// How long after the change the processes it migrated or passed over
    /// are watched for dying.
    pub observe: Duration,
    /// Whether the nodes answer once the change runs and report the
    /// watch after it apart, when it is over (a held session: `watch`'s
    /// next change need not wait for the window).
    pub observe_apart: bool,
}

impl Default for Care {
    fn default() -> Self {
        Care {
            any_loop: false,
            observe: DEFAULT_OBSERVE,
            observe_apart: false,
        }
    }
}

/// How long the processes a change touched are watched after it, unless
/// configured: long enough for a process that cannot live with the new
/// code to meet its next message or timer.
pub const DEFAULT_OBSERVE: Duration = Duration::from_secs(1);

/// `Module.function` (Elixir) or `module:function` (Erlang).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub module: String,
    pub function: String,
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.module.strip_prefix("Elixir.") {
            Some(elixir) => write!(f, "{elixir}.{}", self.function),
            None => write!(f, "{}:{}", self.module, self.function),
        }
    }
}

impl std::str::FromStr for Hook {
    type Err = String;

    /// `mod:fun` names an Erlang module; `Mod.Sub.fun` an Elixir one
    /// (`Elixir.Mod.Sub`).
    fn from_str(text: &str) -> Result<Hook, String> {
        let bad = || {
            format!("`{text}` is not a function to call after a deploy: write `Module.function` (Elixir) or `module:function` (Erlang)")
        };
        let (module, function) = match text.split_once(':') {
            Some((m, f)) => (m.to_owned(), f),
            None => {
                let (m, f) = text.rsplit_once('.').ok_or_else(bad)?;
                let elixir = m.starts_with(|c: char| c.is_ascii_uppercase());
                (
                    if elixir {
                        format!("Elixir.{m}")
                    } else {
                        m.to_owned()
                    },
                    f,
                )
            }
        };
        let word = |s: &str| !s.is_empty() && !s.contains(char::is_whitespace);
        if !word(&module) || !word(function) || function.contains(['.', ':']) {
            return Err(bad());
        }
        Ok(Hook {
            module,
            function: function.to_owned(),
        })
    }
}
