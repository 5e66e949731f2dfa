//! `status`: per node, what a deploy would change.

use super::args::StatusArgs;
use super::error::CliError;
use super::setup::{open_session, project, settings};
use crate::deploy::{self, Options};
use crate::output::{Mode, Ui};
use crate::store::Store;

pub(super) async fn status_command(args: StatusArgs) -> Result<i32, CliError> {
    let mode = if args.json { Mode::Json } else { Mode::Text };
    let ui = Ui::new(Mode::Quiet);
    let settings = settings(&args.target)?;
    for w in &settings.warnings {
        Ui::new(mode).warn(w);
    }
    settings.require_nodes()?;
    let (modules, apps) = project(&settings).modules(&[])?;
    let options = Options {
        timeout: settings.timeout,
        via: settings.via.clone(),
        ..Default::default()
    };
    let store = Store::new(settings.snapshot_dir.clone());
    let session = match open_session(&settings, store, &settings.nodes, &options, &ui).await? {
        Ok(session) => session,
        Err(report) => return Err(nodes_error(&report.nodes)),
    };
    let statuses = deploy::status(&session, &modules, &apps)
        .await
        .map_err(|failed| nodes_error(&failed))?;
    if args.json {
        let doc = serde_json::json!({"ok": true, "nodes": statuses});
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(0);
    }
    for s in &statuses {
        println!(
            "{}: {} changed, {} new, {} unchanged, {} identical on disk (not loaded), {} loaded but absent locally",
            s.node,
            s.changed.len(),
            s.new.len(),
            s.unchanged.len(),
            s.on_disk.len(),
            s.absent_locally.len()
        );
        for (label, list) in [
            ("changed", &s.changed),
            ("new", &s.new),
            ("absent locally", &s.absent_locally),
        ] {
            if !list.is_empty() {
                println!("  {label}: {}", list.join(", "));
            }
        }
        for l in &s.would_migrate {
            println!(
                "  would migrate: {} of `{}`",
                deploy::report::describe_process(&l.pid, l.name.as_deref()),
                l.module
            );
        }
    }
    Ok(0)
}

fn nodes_error(failed: &[deploy::NodeReport]) -> CliError {
    CliError::Nodes(
        failed
            .iter()
            .flat_map(|r| r.failed.iter().map(|f| f.reason.clone()))
            .collect::<Vec<_>>()
            .join("\nerror: "),
    )
}
