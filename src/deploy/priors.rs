//! The snapshot step: what each node runs now of every module about to
//! change, with the binary that puts it back. The binary comes from the
//! store when an earlier deploy kept that MD5, else from the node's code
//! path if (and only if) the file there is what the node runs; otherwise
//! the module is not restorable and the user is warned before anything
//! changes.

use super::remote::{Remote, State};
use super::report::NodeReport;
use crate::beam::{Md5, Module, Sha256Sum};
use crate::output::Ui;
use crate::store::{Prior, SnapshotError, Store};
use futures::future::join_all;
use std::collections::HashMap;

/// One node's changes, as the snapshot step fills in their priors.
pub struct PartPriors<'a> {
    pub remote: &'a Remote,
    pub report: &'a mut NodeReport,
    pub changes: Vec<(&'a str, State, &'a mut Prior)>,
}

/// Fills in every change's prior; failures are written to the node's report.
pub async fn capture(parts: &mut [PartPriors<'_>], store: &Store, ui: &Ui) {
    // Nodes mostly run the same versions: each MD5 is looked up once.
    let mut stored: HashMap<Md5, Option<Sha256Sum>> = HashMap::new();
    for p in parts.iter_mut() {
        for (name, was, prior) in &mut p.changes {
            let Some(md5) = was.md5() else { continue };
            let sha = *stored.entry(md5).or_insert_with(|| store.find_by_md5(md5));
            // A kept copy is a cache until a manifest names it as a prior.
            if let Some(Err(e)) = sha.map(|sha| store.make_durable(sha)) {
                p.report.fail(Some(name), e.to_string());
            }
            **prior = prior_of(*was, sha);
        }
    }
    join_all(parts.iter_mut().map(|p| fetch(p, store, ui))).await;
}

fn prior_of(was: State, sha: Option<Sha256Sum>) -> Prior {
    let sha256 = sha.map(Sha256Sum::to_hex);
    match was {
        State::Loaded(md5) => Prior::Loaded {
            md5: md5.to_hex(),
            sha256,
        },
        State::OnDisk(md5) => Prior::OnDisk {
            md5: md5.to_hex(),
            sha256,
        },
        State::Absent => Prior::Absent,
    }
}

/// Asks the node for the binaries the store lacks, in one round.
async fn fetch(p: &mut PartPriors<'_>, store: &Store, ui: &Ui) {
    let missing: Vec<usize> = (0..p.changes.len())
        .filter(|&i| {
            let (_, was, prior) = &p.changes[i];
            was.md5().is_some() && prior.object().is_none()
        })
        .collect();
    if missing.is_empty() {
        return;
    }
    let names: Vec<&str> = missing.iter().map(|&i| p.changes[i].0).collect();
    let objects = match p.remote.object_code(&names).await {
        Ok(o) => o,
        Err(e) => return p.report.fail(None, e.to_string()),
    };
    for (&i, object) in missing.iter().zip(objects) {
        let (name, was, prior) = &mut p.changes[i];
        let Some(md5) = was.md5() else { continue };
        match keep_if_running(store, md5, object) {
            Ok(Some(sha)) => **prior = prior_of(*was, Some(sha)),
            Ok(None) => ui.warn(&format!(
                "`{name}` on {} cannot be snapshotted (the loaded code is not on its disk); a rollback will not restore it",
                p.report.node
            )),
            Err(e) => p.report.fail(Some(name), e.to_string()),
        }
    }
}

/// Stores `object` durably if it is the code with `md5`.
fn keep_if_running(
    store: &Store,
    md5: Md5,
    object: Option<Vec<u8>>,
) -> Result<Option<Sha256Sum>, SnapshotError> {
    let Some(bytes) = object else { return Ok(None) };
    match crate::beam::parse(&bytes) {
        Ok(parsed) if parsed.md5 == md5 => store.put(md5, &bytes, true).map(Some),
        _ => Ok(None),
    }
}

/// Keeps every binary being loaded, so the next snapshot of these nodes
/// needs nothing from them. Only a later run reads these, so the writing
/// goes on in the background while this one goes on, unsynced: a copy is a
/// cache (checked by SHA-256 when read) until a snapshot names it as a
/// prior, which syncs it first.
pub fn keep_sent(
    store: &Store,
    modules: Vec<Module>,
) -> tokio::task::JoinHandle<Result<(), SnapshotError>> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        for m in modules {
            store.put(m.md5, &m.bytes, false)?;
        }
        Ok(())
    })
}
