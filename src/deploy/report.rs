//! What a deploy, rollback or status run tells its user: the JSON document
//! scripts rely on, the exit code, and the readable summary.

use super::migrate::{Migrated, ProcessNote};
pub use super::process::describe_process;
use super::process::Lingering;
use serde::Serialize;

/// How a run ended; each maps to one exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    /// A node refused or failed; every node changed in this run was undone.
    Failed,
    /// A node could not be reached or authenticated; nothing was changed.
    Unreachable,
    /// Another run holds a node's lock; nothing was changed.
    Locked,
    /// `--verify` found a node running other code than sent; undone.
    VerifyMismatch,
    /// Old code in use, or (rollback) a node no longer runs what was
    /// deployed, and `--force` was not given; nothing was changed.
    Refused,
    /// Stopped by Ctrl-C; nodes changed in this run were undone.
    Interrupted,
    /// A process to migrate could not be suspended in time (busy in a
    /// long call); nothing was changed.
    Busy,
    /// Every node runs the new code, but the after-deploy call failed on
    /// some (not undone).
    AfterFailed,
    /// A rollback or an undo left modules not restored: nodes may run
    /// mixed versions.
    NotRestored,
    /// Every node came to its goals, but the snapshot store could not
    /// record it ([`Report::error`] says why).
    Unrecorded,
    /// Every node came to its goals, but processes the change migrated or
    /// passed over died soon after it (named; the change stays).
    Died,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Failure {
    pub module: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct NodeReport {
    pub node: String,
    pub ok: bool,
    pub loaded: Vec<String>,
    pub unchanged: Vec<String>,
    pub failed: Vec<Failure>,
    pub lingering: Vec<Lingering>,
    /// Whether this node's changes were undone (or, for `--rollback`, the
    /// deploy was rolled back) in this run.
    pub rolled_back: bool,
    /// A dry run's `loaded`: what would load (a dry run never reads as
    /// loaded).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_load: Vec<String>,
    /// A dry run's `migrated`: the processes that would be migrated.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_migrate: Vec<Lingering>,
    /// Modules a rollback or undo could not put back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_restored: Vec<String>,
    /// The processes migrated through their module's `code_change`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub migrated: Vec<Lingering>,
    /// How long the longest of them was suspended, at most: from the first
    /// suspend to the last resume, as the node measured it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspended_ms: Option<f64>,
    /// With `--force`: the processes that keep a fun of old code the
    /// purge took, and die when they call it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub doomed: Vec<Lingering>,
    /// Processes of a changed module loaded without their `code_change`:
    /// their `sys` loop (`detail`) is not OTP's own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_migrated: Vec<ProcessNote>,
    /// How many processes were watched after the change (those migrated
    /// or passed over), when any were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watched: Option<usize>,
    /// Those of them that died while watched, with why (`detail`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub died: Vec<ProcessNote>,
    /// The watch after the change goes on on the node, which reports it
    /// apart (`watch`: a later `observed` event); `died` is not known yet.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub watched_apart: bool,
    /// How many processes `--force` killed for running old code.
    #[serde(skip_serializing_if = "is_zero")]
    pub killed: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl NodeReport {
    pub fn new(node: &str) -> Self {
        NodeReport {
            node: node.to_owned(),
            ok: true,
            ..Default::default()
        }
    }

    /// Records what the node migrated in its apply step.
    pub fn took_in(&mut self, migrated: Migrated) {
        if migrated.processes.is_empty() {
            return;
        }
        let ms = migrated.suspended.as_secs_f64() * 1e3;
        self.suspended_ms = Some(self.suspended_ms.map_or(ms, |m| m.max(ms)));
        self.migrated.extend(migrated.processes);
    }

    /// Records and says what `--force`'s purge of old code did on the node:
    /// the processes it killed (they ran that code), and those it doomed
    /// (each keeps a fun of that code, and dies when it calls it).
    pub fn forced(&mut self, killed: usize, doomed: Vec<Lingering>, ui: &crate::output::Ui) {
        self.killed += killed;
        if killed > 0 {
            ui.warn(&format!(
                "killed {} on {} running old code",
                count(killed, "process"),
                self.node
            ));
        }
        for l in &doomed {
            ui.warn(&format!(
                "{} on {} {}, which --force purged: it dies if it calls it",
                describe_process(&l.pid, l.name.as_deref()),
                self.node,
                l.what()
            ));
        }
        self.doomed.extend(doomed);
    }

    /// Records that `watched` processes were watched after the change and
    /// that `died` died meanwhile, and says so.
    pub fn watched(&mut self, watched: usize, died: &[ProcessNote], ui: &crate::output::Ui) {
        if watched == 0 {
            return;
        }
        *self.watched.get_or_insert(0) += watched;
        for d in died {
            ui.warn(&format!(
                "{} on {} died right after the change: {}",
                d.describe(),
                self.node,
                d.detail
            ));
        }
        if died.is_empty() {
            ui.line(&format!(
                "Watched {} on {} after the change: none died",
                count(watched, "process"),
                self.node
            ));
        }
        self.died.extend_from_slice(died);
    }

    /// `watched` processes are being watched after the change, by the
    /// node, which reports who died apart ([`crate::deploy::observing`]).
    pub fn watched_apart(&mut self, watched: usize) {
        if watched > 0 {
            *self.watched.get_or_insert(0) += watched;
            self.watched_apart = true;
        }
    }

    pub fn fail(&mut self, module: Option<&str>, reason: impl Into<String>) {
        self.ok = false;
        self.failed.push(Failure {
            module: module.map(str::to_owned),
            reason: reason.into(),
        });
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub snapshot: Option<String>,
    /// The run's time once connected (inspect to the end), in milliseconds.
    pub elapsed_ms: f64,
    /// From the same start until every node answered that it runs the new
    /// code; `null` when nothing was loaded.
    pub running_ms: Option<f64>,
    pub nodes: Vec<NodeReport>,
    /// What went wrong outside the nodes, after they changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub outcome: Outcome,
    /// Nothing was changed, and each node's `would_load` says what would.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    #[serde(skip)]
    pub elapsed: std::time::Duration,
}

impl Report {
    pub fn new(nodes: Vec<NodeReport>, outcome: Outcome, snapshot: Option<String>) -> Self {
        Report {
            ok: outcome == Outcome::Success,
            snapshot,
            nodes,
            error: None,
            outcome,
            dry_run: false,
            elapsed: Default::default(),
            elapsed_ms: 0.0,
            running_ms: None,
        }
    }

    /// Marks the report as a dry run's: what each node's plan would load
    /// and migrate moves to `would_load` and `would_migrate`.
    pub fn as_dry_run(&mut self) {
        self.dry_run = true;
        for n in &mut self.nodes {
            n.would_load = std::mem::take(&mut n.loaded);
            n.would_migrate = std::mem::take(&mut n.migrated);
        }
    }

    /// A run that reached its goals, but after which processes it touched
    /// died, fails with [`Outcome::Died`]; the change stays.
    pub fn fail_if_died(&mut self) {
        if self.outcome == Outcome::Success && self.nodes.iter().any(|n| !n.died.is_empty()) {
            self.ok = false;
            self.outcome = Outcome::Died;
        }
    }

    /// The run reached its goals, but the after-deploy call failed.
    pub fn fail_after(&mut self) {
        self.ok = false;
        if self.outcome == Outcome::Success {
            self.outcome = Outcome::AfterFailed;
        }
    }

    /// [`Report::to_json`], with `value` under `key` too.
    pub fn to_json_with(&self, key: &str, value: serde_json::Value) -> String {
        let mut doc = serde_json::to_value(self)
            .unwrap_or_else(|e| serde_json::json!({"ok": false, "error": e.to_string()}));
        if let Some(doc) = doc.as_object_mut() {
            doc.insert(key.to_owned(), value);
        }
        serde_json::to_string_pretty(&doc)
            .unwrap_or_else(|e| format!("{{\"ok\": false, \"error\": \"{e}\"}}"))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"ok\": false, \"error\": \"{e}\"}}"))
    }

    /// The closing lines of a text run: per node, then the verdict.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            out.push_str(&self.node_line(n));
            out.push('\n');
            for f in &n.failed {
                match &f.module {
                    Some(m) => out.push_str(&format!("  `{m}`: {}\n", f.reason)),
                    None => out.push_str(&format!("  {}\n", f.reason)),
                }
            }
            for l in n.lingering.iter().filter(|_| !n.ok) {
                out.push_str(&format!(
                    "  {} {}\n",
                    describe_process(&l.pid, l.name.as_deref()),
                    l.what()
                ));
            }
            for d in &n.died {
                out.push_str(&format!(
                    "  {} died right after the change: {}\n",
                    d.describe(),
                    d.detail
                ));
            }
            for m in &n.not_restored {
                out.push_str(&format!(
                    "  `{m}` was NOT restored: the node may run mixed versions\n"
                ));
            }
        }
        out.push_str(&self.verdict());
        out
    }

    fn node_line(&self, n: &NodeReport) -> String {
        let (verb, modules) = match self.dry_run {
            true => ("would load", n.would_load.len()),
            false => ("loaded", n.loaded.len()),
        };
        let mut line = format!(
            "{}: {} {}, {} unchanged",
            n.node,
            verb,
            count(modules, "module"),
            n.unchanged.len()
        );
        if n.rolled_back {
            line.push_str(", rolled back");
        }
        if !n.failed.is_empty() {
            line.push_str(&format!(", {} failed", n.failed.len()));
        }
        if n.killed > 0 {
            line.push_str(&format!(", {} killed", count(n.killed, "process")));
        }
        if !n.doomed.is_empty() {
            line.push_str(&format!(
                ", {} doomed (a fun of purged code)",
                count(n.doomed.len(), "process")
            ));
        }
        line
    }

    fn verdict(&self) -> String {
        if self.dry_run && self.outcome == Outcome::Success {
            return "dry run: nothing was changed".into();
        }
        match self.outcome {
            Outcome::Success => format!("done in {:.0?}", self.elapsed),
            Outcome::Failed => "failed; nodes changed in this run were rolled back".into(),
            Outcome::Unreachable => "not every node could be reached; nothing was changed".into(),
            Outcome::Locked => "another run holds a node's lock; nothing was changed".into(),
            Outcome::VerifyMismatch => "verification failed; the change was rolled back".into(),
            Outcome::Interrupted => "interrupted; nodes changed in this run were rolled back".into(),
            Outcome::Refused => "refused (see above); nothing was changed. Pass `--force` to purge old code all the same (processes running it are killed; those keeping its funs die when they call them) or overwrite changed modules".into(),
            Outcome::Busy => "refused: processes to migrate were busy (see above); no node was left changed. Try again once they are idle, or pass `--no-code-change` to load without migrating".into(),
            Outcome::AfterFailed => "every node runs the new code, but the after-deploy call failed where named above (nothing was undone)".into(),
            Outcome::NotRestored => "NOT RESTORED: the modules named above could not be put back; nodes may run mixed versions".into(),
            Outcome::Died => "every node runs the new code, but processes it touched died right after the change (named above; the change stays)".into(),
            Outcome::Unrecorded => format!(
                "every node above runs what it was brought to, but the snapshot store could not record it: {}",
                self.error.as_deref().unwrap_or("unknown error")
            ),
        }
    }
}

pub fn count(n: usize, what: &str) -> String {
    match (n, what) {
        (1, _) => format!("1 {what}"),
        (_, "process") => format!("{n} processes"),
        _ => format!("{n} {what}s"),
    }
}

/// One line per module a node migrated: `Migrated 3 processes of
/// `Sensor` on node (suspended 0.8 ms)`.
pub fn migrated_lines(migrated: &Migrated, node: &str) -> Vec<String> {
    let mut per_module: Vec<(&str, usize)> = Vec::new();
    for p in &migrated.processes {
        match per_module.iter_mut().find(|(m, _)| *m == p.module) {
            Some((_, n)) => *n += 1,
            None => per_module.push((&p.module, 1)),
        }
    }
    per_module
        .into_iter()
        .map(|(module, n)| {
            format!(
                "Migrated {} of `{module}` on {node} (suspended {:.1} ms)",
                count(n, "process"),
                migrated.suspended.as_secs_f64() * 1e3
            )
        })
        .collect()
}

/// Processes in old code the run leaves alone: said, with what becomes
/// of them.
pub fn warn_lingering(lingering: &[super::process::Lingering], node: &str, ui: &crate::output::Ui) {
    for l in lingering {
        let next = match l.runs_old_code() {
            true => "it moves to the new code at its next external call",
            false => "the old code stays until a deploy of the module needs it gone",
        };
        ui.warn(&format!(
            "{} on {node} {}; {next}",
            describe_process(&l.pid, l.name.as_deref()),
            l.what()
        ));
    }
}
