//! What the watch mode prints: one line per change (time, modules, nodes,
//! build and deploy time), or with `--json` one JSON object per line on
//! stdout; node comings and goings; the `Watching` banner.

use super::sources::Sources;
use crate::deploy::migrate::ProcessNote;
use crate::deploy::observing::Observed;
use crate::deploy::{Report, Session};
use crate::output::{Mode, Ui};
use crate::project::Builder;
use crate::timings::table::Timings;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

/// Why a deploy ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Watching began: every node is brought to the build.
    Start,
    /// A file changed.
    Change,
    /// A node came back and is brought to the build.
    CatchUp,
}

impl Cause {
    fn name(self) -> &'static str {
        match self {
            Cause::Start => "start",
            Cause::Change => "change",
            Cause::CatchUp => "catch_up",
        }
    }
}

pub fn watching(ui: &Ui, sources: &Sources, builder: &Builder, session: &Session) {
    let paths: Vec<String> = sources
        .roots()
        .iter()
        .map(|r| r.path.display().to_string())
        .collect();
    let nodes: Vec<String> = session.remotes().iter().map(|r| r.node()).collect();
    let nodes = if nodes.is_empty() {
        "no node connected yet".to_owned()
    } else {
        format!("connected to {}", nodes.join(", "))
    };
    ui.line(&format!(
        "Watching {} ({}; {nodes}); Ctrl-C to stop",
        paths.join(", "),
        builder.describe()
    ));
}

/// The line for one deploy; `report` is `None` when no node lacked anything.
pub fn change(
    ui: &Ui,
    mode: Mode,
    report: Option<&Report>,
    build: Duration,
    cause: Cause,
    timings: Option<&Timings>,
) {
    if report.is_none() && cause == Cause::CatchUp {
        // No node needed catching up (the one that went was the only one).
        return;
    }
    let time = clock();
    let build_ms = build.as_secs_f64() * 1e3;
    if mode == Mode::Json {
        let doc = json!({
            "event": cause.name(),
            "time": time,
            "ok": report.is_none_or(|r| r.ok),
            "modules": report.map(loaded).unwrap_or_default(),
            "nodes": report.map(|r| r.nodes.iter().map(|n| n.node.clone()).collect::<Vec<_>>()).unwrap_or_default(),
            "build_ms": build_ms,
            "deploy_ms": report.map(|r| r.elapsed_ms),
            "report": report,
            "timings": timings.map(Timings::to_json),
        });
        println!("{doc}");
        return;
    }
    change_line(ui, report, cause, &time, build_ms);
    if let Some(timings) = timings {
        eprintln!("{}", timings.table("change"));
    }
}

/// A change's line in text: what loaded where, and how long it took.
fn change_line(ui: &Ui, report: Option<&Report>, cause: Cause, time: &str, build_ms: f64) {
    let Some(report) = report else {
        if cause == Cause::Change {
            ui.line(&format!("{time}  nothing changed (build {build_ms:.0} ms)"));
        }
        return;
    };
    let nodes: Vec<&str> = report.nodes.iter().map(|n| n.node.as_str()).collect();
    let modules = loaded(report);
    let what = if modules.is_empty() {
        "nothing changed".to_owned()
    } else {
        modules.into_iter().collect::<Vec<_>>().join(", ")
    };
    let mut took = match cause {
        Cause::CatchUp => format!("deploy {:.0} ms", report.elapsed_ms),
        _ => format!("build {build_ms:.0} ms, deploy {:.0} ms", report.elapsed_ms),
    };
    let migrated: usize = report.nodes.iter().map(|n| n.migrated.len()).sum();
    if migrated > 0 {
        let suspended = report.nodes.iter().filter_map(|n| n.suspended_ms);
        took.push_str(&format!(
            "; migrated {}, suspended {:.1} ms",
            crate::deploy::report::count(migrated, "process"),
            suspended.fold(0.0, f64::max)
        ));
    }
    let label = match cause {
        Cause::Change => "",
        Cause::Start | Cause::CatchUp => "caught up: ",
    };
    let line = format!("{time}  {label}{what} → {} ({took})", nodes.join(", "));
    if report.ok {
        ui.line(&line);
    } else {
        eprintln!("{line}\n{}", report.summary());
    }
}

fn loaded(report: &Report) -> BTreeSet<String> {
    report
        .nodes
        .iter()
        .flat_map(|n| n.loaded.iter().cloned())
        .collect()
}

pub fn build_failed(mode: Mode, why: &str) {
    if mode == Mode::Json {
        println!(
            "{}",
            json!({"event": "build_failed", "time": clock(), "ok": false, "error": why})
        );
    }
    eprintln!("{}  {why}; no node was changed", clock());
}

/// A change the snapshot store refused (it could not be locked).
pub fn store_failed(mode: Mode, why: &str) {
    if mode == Mode::Json {
        println!(
            "{}",
            json!({"event": "store_failed", "time": clock(), "ok": false, "error": why})
        );
    }
    eprintln!("{}  {why}; no node was changed", clock());
}

pub fn node_down(mode: Mode, node: &str, reason: &str) {
    if mode == Mode::Json {
        println!(
            "{}",
            json!({"event": "node_down", "time": clock(), "node": node, "reason": reason})
        );
    }
    eprintln!(
        "{}  {node} is gone ({reason}); reconnecting in the background",
        clock()
    );
}

pub fn node_up(ui: &Ui, mode: Mode, node: &str) {
    if mode == Mode::Json {
        println!(
            "{}",
            json!({"event": "node_up", "time": clock(), "node": node})
        );
    }
    ui.line(&format!("{}  {node} is back; catching it up", clock()));
}

/// How a watch after a change, reported apart, ended on one node.
pub struct Seen {
    pub node: String,
    /// How many processes it watched.
    pub watched: usize,
    /// The modules the change loaded there.
    pub modules: Vec<String>,
    pub observed: Observed,
}

/// The line (or JSON event) for a watch after a change: who died, or that
/// whether they lived is not known. In text, nothing when all lived.
pub fn observed(mode: Mode, seen: &Seen) {
    let (died, error): (&[ProcessNote], Option<&str>) = match &seen.observed {
        Observed::Died(died) => (died, None),
        Observed::Unknown(why) => (&[], Some(why)),
    };
    if mode == Mode::Json {
        let doc = json!({
            "event": "observed",
            "time": clock(),
            "ok": died.is_empty() && error.is_none(),
            "node": seen.node,
            "changed_modules": seen.modules,
            "watched": seen.watched,
            "died": died,
            "error": error,
        });
        println!("{doc}");
    }
    for d in died {
        eprintln!(
            "{}  {} on {} died right after the change: {}",
            clock(),
            d.describe(),
            seen.node,
            d.detail
        );
    }
    if let Some(why) = error {
        eprintln!(
            "{}  whether the {} watched on {} after the change lived is not known: {why}",
            clock(),
            crate::deploy::report::count(seen.watched, "process"),
            seen.node
        );
    }
}

/// Names the watches after a change still under way as watch stops.
pub fn waiting_for_watches<'a>(pending: impl Iterator<Item = &'a (String, usize)>) {
    for (node, watched) in pending {
        eprintln!(
            "waiting for the watch after the last change of {} on {node} to end (Ctrl-C again to quit without it)",
            crate::deploy::report::count(*watched, "process"),
        );
    }
}

/// `HH:MM:SS.mmm` (UTC): changes come faster than once a second.
fn clock() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        now.subsec_millis()
    )
}
