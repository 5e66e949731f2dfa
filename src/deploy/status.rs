//! `status`: per node, how the local modules compare with what runs there.
//! Changes nothing and takes no lock.

use super::remote::State;
use super::report::NodeReport;
use super::Session;
use crate::beam::{Md5, Module};
use crate::dist::CallError;
use futures::future::join_all;
use std::collections::BTreeSet;

/// Per node, how the local modules compare with what runs there.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeStatus {
    pub node: String,
    pub changed: Vec<String>,
    pub new: Vec<String>,
    pub unchanged: Vec<String>,
    /// Not loaded, but the node's own copy on its code path is identical.
    pub on_disk: Vec<String>,
    /// Loaded modules of the app that have no local file.
    pub absent_locally: Vec<String>,
    /// The processes a deploy would migrate through `code_change`: those
    /// of changed modules whose local build exports it.
    pub would_migrate: Vec<super::remote::Lingering>,
}

/// Compares without touching anything.
pub async fn status(
    session: &Session,
    modules: &[Module],
    apps: &[String],
) -> Result<Vec<NodeStatus>, Vec<NodeReport>> {
    let results = join_all(
        session
            .remotes()
            .iter()
            .map(|r| node_status(r, modules, apps)),
    )
    .await;
    let mut out = Vec::new();
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok(s) => out.push(s),
            Err((node, e)) => {
                let mut report = NodeReport::new(&node);
                report.fail(None, e.to_string());
                failed.push(report);
            }
        }
    }
    if failed.is_empty() {
        Ok(out)
    } else {
        Err(failed)
    }
}

async fn node_status(
    r: &super::remote::Remote,
    modules: &[Module],
    apps: &[String],
) -> Result<NodeStatus, (String, CallError)> {
    let fail = |e| (r.node(), e);
    let want: Vec<(&str, Option<Md5>)> = modules
        .iter()
        .map(|m| (m.name.as_str(), Some(m.md5)))
        .collect();
    let found = states(r, &want).await.map_err(fail)?;
    let mut s = NodeStatus {
        node: r.node(),
        changed: vec![],
        new: vec![],
        unchanged: vec![],
        on_disk: vec![],
        absent_locally: vec![],
        would_migrate: vec![],
    };
    for (m, state) in modules.iter().zip(found) {
        let list = match state {
            State::Absent => &mut s.new,
            State::OnDisk(x) if x == m.md5 => &mut s.on_disk,
            State::Loaded(x) if x == m.md5 => &mut s.unchanged,
            _ => &mut s.changed,
        };
        list.push(m.name.clone());
    }
    let migrating: Vec<&str> = modules
        .iter()
        .filter(|m| m.code_change && s.changed.contains(&m.name))
        .map(|m| m.name.as_str())
        .collect();
    s.would_migrate = r.callback_processes(&migrating).await.map_err(fail)?;
    let local: BTreeSet<&str> = want.iter().map(|(m, _)| *m).collect();
    let mut extra = BTreeSet::new();
    for app in apps {
        for m in r.app_modules(app).await.map_err(fail)?.unwrap_or_default() {
            if !local.contains(m.as_str()) {
                extra.insert(m);
            }
        }
    }
    let extra: Vec<String> = extra.into_iter().collect();
    let want: Vec<(&str, Option<Md5>)> = extra.iter().map(|m| (m.as_str(), None)).collect();
    let found = states(r, &want).await.map_err(fail)?;
    s.absent_locally = extra
        .iter()
        .zip(found)
        .filter(|(_, state)| matches!(state, State::Loaded(_)))
        .map(|(m, _)| m.clone())
        .collect();
    Ok(s)
}

async fn states(
    r: &super::remote::Remote,
    want: &[(&str, Option<Md5>)],
) -> Result<Vec<State>, CallError> {
    if want.is_empty() {
        return Ok(Vec::new());
    }
    match r.inspect(None, want, &[], false, false).await? {
        Ok(found) => Ok(found.into_iter().map(|f| f.state).collect()),
        Err(_) => Ok(Vec::new()),
    }
}
