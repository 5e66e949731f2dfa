//! Undoing one node: the apply step run on its priors. Used when a run
//! fails after a node changed; kills processes only with `--force`, and
//! names every module it could not put back. The processes the run
//! migrated are migrated back ([`crate::deploy::migrate`]).

use super::applied::Applied;
use super::apply::apply_payload;
use crate::beam::{Md5, Module};
use crate::deploy::goal::{loads_of, Action};
use crate::deploy::remote::Remote;
use crate::deploy::report::NodeReport;
use crate::output::Ui;
use crate::store::{Prior, Store};

/// One changed node's priors and its report.
pub struct UndoPart<'a> {
    /// What the processes of the changed modules go through on the way
    /// back.
    pub migration: crate::deploy::migrate::Migration,
    pub care: crate::deploy::migrate::Care,
    pub report: &'a mut NodeReport,
    pub priors: Vec<(String, Prior)>,
}

/// Brings the node back to `part.priors`; what does not come back is
/// listed in the report's `not_restored`.
pub async fn undo(remote: Remote, part: UndoPart<'_>, store: &Store, force: bool, ui: &Ui) {
    let UndoPart {
        migration,
        care,
        report,
        priors,
    } = part;
    let mut binaries: Vec<(usize, Module)> = Vec::new();
    let mut lost = Vec::new();
    for (i, (module, prior)) in priors.iter().enumerate() {
        match crate::deploy::step::snapshot::stored_module(module, prior, store) {
            Ok(Some(m)) => binaries.push((i, m)),
            Ok(None) if *prior == Prior::Absent => {}
            Ok(None) => lost.push(format!("`{module}`: its prior binary was never captured")),
            Err(why) => lost.push(format!("`{module}`: {why}")),
        }
    }
    let steps: Vec<Action> = priors
        .iter()
        .enumerate()
        .filter_map(|(i, (module, prior))| match prior {
            Prior::Absent => Some(Action::Remove(module)),
            _ => binaries
                .iter()
                .find(|(j, _)| *j == i)
                .map(|(_, m)| Action::Load(m)),
        })
        .collect();
    let loads = loads_of(&steps).into_iter();
    let migrate = migration.for_loads(loads).term(remote.timeout, care, None);
    let payload = apply_payload(&steps, force, &remote.link.owner(), None, &migrate);
    let answer = match remote.apply(&payload).await {
        Ok(Applied::Forced {
            killed,
            doomed,
            then,
        }) => {
            report.forced(killed, doomed, ui);
            Ok(*then)
        }
        other => other,
    };
    match answer {
        Ok(Applied::Stuck(stuck)) => {
            lost.push(format!(
                "old code is in use by {}; pass `--force` to kill them",
                stuck
                    .iter()
                    .map(|l| crate::deploy::report::describe_process(&l.pid, l.name.as_deref()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            report.lingering.extend(stuck);
        }
        Ok(Applied::Refused { reasons, .. }) => {
            lost.extend(reasons.into_iter().map(|(m, why)| format!("`{m}`: {why}")))
        }
        Ok(Applied::Done {
            killed,
            doomed,
            watched,
            died,
            ..
        }) => {
            report.forced(killed, doomed, ui);
            report.watched(watched, &died, ui);
        }
        // A node says what a forced purge did once, around its answer.
        Ok(Applied::Forced { .. }) => lost.push("the node answered in an unknown shape".into()),
        Ok(Applied::Busy(busy)) => lost.extend(busy.iter().map(|b| {
            format!(
                "{} did not answer to be suspended for its code_change (running {})",
                b.describe(),
                b.detail
            )
        })),
        Ok(Applied::MigrationFailed { causes, left, .. }) => {
            lost.extend(causes.iter().chain(&left).map(|c| {
                format!(
                    "{}: its code_change failed on the way back ({}); the prior code was not loaded",
                    c.describe(),
                    c.detail
                )
            }))
        }
        // Only a step that waits for a word aborts, and an undo waits for none.
        Ok(Applied::Aborted) => lost.push("the node aborted the undo".into()),
        Err(e) => lost.push(e.to_string()),
    }
    let missing = read_back(&remote, &priors).await;
    report.not_restored.extend(missing);
    if report.not_restored.is_empty() {
        report.rolled_back = true;
        report.loaded.clear();
        ui.line(&format!("Rolled back {}", report.node));
    } else {
        for why in lost {
            report.fail(None, format!("rollback: {why}"));
        }
        ui.warn(&format!(
            "{} could not be rolled back entirely: {} not restored",
            report.node,
            report.not_restored.join(", ")
        ));
    }
}

/// The modules whose state on the node is not their prior's (all of them
/// when the node cannot be asked).
async fn read_back(remote: &Remote, priors: &[(String, Prior)]) -> Vec<String> {
    let want: Vec<(&str, Option<Md5>)> = priors
        .iter()
        .map(|(m, p)| (m.as_str(), p.md5().and_then(Md5::from_hex)))
        .collect();
    match remote.mismatches(&want).await {
        Ok(wrong) => wrong
            .into_iter()
            .map(|(i, _)| priors[i].0.clone())
            .collect(),
        Err(_) => priors.iter().map(|(m, _)| m.clone()).collect(),
    }
}
