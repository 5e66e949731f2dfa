//! `snapshots`: the store's list of snapshots, and `--prune`.

use super::args::SnapshotsArgs;
use super::error::CliError;
use super::setup::lock_store;
use crate::config::{Flags, Settings};
use crate::output::{Mode, Ui};
use crate::store::Store;

pub(super) fn snapshots_command(args: SnapshotsArgs) -> Result<i32, CliError> {
    let project = match &args.project {
        Some(p) => p.clone(),
        None => std::env::current_dir().map_err(CliError::Cwd)?,
    };
    let settings = Settings::load(
        &project,
        &Flags {
            config: args.config.clone(),
            ..Default::default()
        },
    )?;
    let store = Store::new(settings.snapshot_dir.clone());
    if args.prune {
        let _lock = lock_store(&store, &Ui::new(Mode::Text))?;
        let keep = settings.keep_snapshots;
        let pruned = store.prune(keep)?;
        let forgotten = match pruned.nodes {
            0 => String::new(),
            n => format!(
                "; forgot {} unseen for {} days",
                crate::deploy::report::count(n, "node"),
                crate::store::FORGET_AFTER.as_secs() / 86_400
            ),
        };
        let keeping = match keep {
            0 => "keeping every snapshot: `keep_snapshots = 0`".to_owned(),
            n => format!("keeping the newest {n} per node"),
        };
        eprintln!(
            "pruned {} and {} ({keeping}){forgotten}",
            crate::deploy::report::count(pruned.snapshots, "snapshot"),
            crate::deploy::report::count(pruned.objects, "stored module")
        );
    }
    let list = store.list()?;
    if args.json {
        let items: Vec<_> = list.iter().map(snapshot_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&items).unwrap_or_default()
        );
    } else if list.is_empty() {
        println!("no snapshots in `{}`", store.root().display());
    } else {
        for m in &list {
            let parts: Vec<String> = m
                .nodes
                .iter()
                .map(|(node, r)| format!("{node} ({})", outcome_name(r.outcome)))
                .collect();
            println!(
                "{}  {}  {} on {}",
                m.id,
                m.time(),
                crate::deploy::report::count(snapshot_modules(m).len(), "module"),
                parts.join(", ")
            );
        }
    }
    Ok(0)
}

fn snapshot_modules(m: &crate::store::Manifest) -> std::collections::BTreeSet<&str> {
    m.nodes
        .values()
        .flat_map(|r| r.modules.iter().map(|e| e.module.as_str()))
        .collect()
}

fn snapshot_json(m: &crate::store::Manifest) -> serde_json::Value {
    let outcomes: std::collections::BTreeMap<&str, &str> = m
        .nodes
        .iter()
        .map(|(n, r)| (n.as_str(), outcome_name(r.outcome)))
        .collect();
    serde_json::json!({
        "id": m.id,
        "time": m.time(),
        "tool": m.tool,
        "nodes": m.nodes.keys().collect::<Vec<_>>(),
        "outcomes": outcomes,
        "modules": snapshot_modules(m),
        "rolled_back": m.nodes.values().all(|r| r.outcome == crate::store::NodeOutcome::RolledBack),
    })
}

fn outcome_name(o: crate::store::NodeOutcome) -> &'static str {
    use crate::store::NodeOutcome::*;
    match o {
        Pending => "pending",
        Applied => "applied",
        Refused => "refused",
        Undone => "undone",
        NotUndone => "not undone",
        RolledBack => "rolled back",
    }
}
