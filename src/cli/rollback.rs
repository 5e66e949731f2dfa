//! `deploy --rollback`: each node's newest deploy still applied, undone.

use super::args::DeployArgs;
use super::deploy::{conclude, prepare};
use super::error::CliError;
use crate::deploy::rollback::Restoration;

pub(super) async fn rollback_command(args: DeployArgs) -> Result<i32, CliError> {
    let run = prepare(&args)?;
    let _lock = run.lock_store()?;
    let names: Vec<String> = run.settings.nodes.iter().map(ToString::to_string).collect();
    let restoration = Restoration::read(&run.store, &names)?;
    let with_work = restoration.nodes();
    let mut nodes = Vec::new();
    for node in &run.settings.nodes {
        if with_work.contains(&node.to_string()) {
            nodes.push(node.clone());
        } else {
            run.ui.line(&format!("Nothing to roll back on {node}"));
        }
    }
    let session = match run.open_session(&nodes).await? {
        Ok(session) => session,
        Err(report) => return Ok(conclude(&report, None, &run, args.output.timings).await),
    };
    let report = crate::deploy::rollback(&session, restoration, &run.options, &run.ui).await?;
    Ok(conclude(&report, Some(&session), &run, args.output.timings).await)
}
