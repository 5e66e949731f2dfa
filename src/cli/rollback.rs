//! `deploy --rollback`: each node's newest deploy still applied, undone.

use super::args::DeployArgs;
use super::deploy::{prepare, print_report, GOODBYE_LIMIT};
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
        Err(report) => return Ok(print_report(&report, run.mode)),
    };
    let report = crate::deploy::rollback(&session, restoration, &run.options, &run.ui).await?;
    let code = print_report(&report, run.mode);
    session
        .goodbye(GOODBYE_LIMIT.min(run.settings.timeout))
        .await;
    Ok(code)
}
