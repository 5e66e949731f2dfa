//! [`Instruction::Snapshot`](crate::deploy::plan::Instruction::Snapshot):
//! what each node runs now of every module about to
//! change, with the binary that puts it back. The binary comes from the
//! store when an earlier deploy kept that MD5, else from the node's own copy
//! on its code path, which the inspect step brought along when it is what
//! the node runs; otherwise the module is not restorable and the user is
//! warned before anything changes. No round trip of its own.

use crate::beam::{Md5, Module, Sha256Sum};
use crate::deploy::goal::{Kind, Target};
use crate::deploy::part::Part;
use crate::deploy::remote::State;
use crate::deploy::report::{NodeReport, Outcome};
use crate::deploy::run::{Run, Stop};
use crate::output::Ui;
use crate::store::{Manifest, ModuleRecord, NodeOutcome, NodeRecord, Prior, SnapshotError, Store};
use crate::timings::Timed;
use std::collections::BTreeMap;
use std::collections::HashMap;

/// One module about to change on a node.
pub struct AboutToChange<'a> {
    pub module: &'a str,
    pub was: State,
    /// The node's own copy of what it runs, if it sent one.
    pub copy: Option<Vec<u8>>,
    pub prior: &'a mut Prior,
}

/// Fills in every change's prior; failures are written to the node's report.
pub fn capture(parts: Vec<(&mut NodeReport, Vec<AboutToChange<'_>>)>, store: &Store, ui: &Ui) {
    // Nodes mostly run the same versions: each MD5 is looked up once.
    let mut stored: HashMap<Md5, Option<Sha256Sum>> = HashMap::new();
    let mut reports = Vec::new();
    for (report, pending) in parts {
        for p in pending {
            let Some(md5) = p.was.md5() else {
                *p.prior = Prior::Absent;
                continue;
            };
            let known = *stored.entry(md5).or_insert_with(|| store.find_by_md5(md5));
            let sha = match known {
                Some(sha) => Ok(Some(sha)),
                None => keep_if_running(store, p.module, md5, p.copy),
            };
            match sha {
                Ok(Some(sha)) => {
                    stored.insert(md5, Some(sha));
                    *p.prior = prior_of(p.was, Some(sha));
                }
                Ok(None) => {
                    ui.warn(&format!(
                        "`{}` on {} cannot be snapshotted (the loaded code is not on its disk); a rollback will not restore it",
                        p.module, report.node
                    ));
                    *p.prior = prior_of(p.was, None);
                }
                Err(e) => report.fail(Some(p.module), e.to_string()),
            }
        }
        reports.push(report);
    }
    // Every prior's binary reaches the disk before the manifest naming it:
    // all written first, then synced together.
    let shas: Vec<Sha256Sum> = stored.into_values().flatten().collect();
    if let Err(e) = store.make_durable(&shas) {
        for report in reports {
            report.fail(None, e.to_string());
        }
    }
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

/// Stores `copy` durably if it is the code with `md5`.
fn keep_if_running(
    store: &Store,
    module: &str,
    md5: Md5,
    copy: Option<Vec<u8>>,
) -> Result<Option<Sha256Sum>, SnapshotError> {
    let Some(bytes) = copy else { return Ok(None) };
    match crate::beam::parse(&bytes) {
        Ok(parsed) if parsed.md5 == md5 => store.put(module, md5, &bytes, false).map(Some),
        _ => Ok(None),
    }
}

/// The binary that puts `prior` of `module` back, read from the store and
/// checked to be that module with that MD5; `None` for an absent prior or
/// one whose binary was never had.
pub fn stored_module(module: &str, prior: &Prior, store: &Store) -> Result<Option<Module>, String> {
    let (Some(sha), Some(md5)) = (prior.object(), prior.md5()) else {
        return Ok(None);
    };
    let sha = Sha256Sum::from_hex(sha).ok_or_else(|| format!("bad object name `{sha}`"))?;
    let bytes = store.read(sha).map_err(|e| e.to_string())?;
    let path = store.root().join("objects").join(sha.to_hex());
    let m = Module::from_bytes(bytes, path).map_err(|e| e.to_string())?;
    if m.name != module || m.md5.to_hex() != md5 {
        return Err(format!(
            "the store holds `{}` with MD5 {} for it",
            m.name, m.md5
        ));
    }
    Ok(Some(m))
}

/// Keeps every binary being loaded, so the next snapshot of these nodes
/// needs nothing from them, not even a sync. Only a later run reads these,
/// so the writing and syncing go on in the background while this run
/// loads.
pub fn keep_sent(
    store: &Store,
    modules: Vec<Module>,
) -> tokio::task::JoinHandle<Result<(), SnapshotError>> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let _timed = Timed::start("store: the sent binaries (written, synced)");
        let batch: Vec<(&str, Md5, &[u8])> = modules
            .iter()
            .map(|m| (m.name.as_str(), m.md5, m.bytes.as_slice()))
            .collect();
        store.keep_all(&batch)
    })
}

impl Run<'_> {
    /// Records what each node runs now of every module about to change, with
    /// its binary (from the store, else from the node's disk when that is
    /// what runs), before anything is touched.
    pub fn snapshot(&mut self) -> Result<(), Stop> {
        let timed = Timed::start("snapshot: the priors");
        capture(parts_view(&mut self.parts), self.store, self.ui);
        drop(timed);
        if self.parts.iter().any(|p| !p.report.ok) {
            return Err(self.stop(Outcome::Failed));
        }
        if self.kind == Kind::Deploy {
            // A flight that found the node otherwise rewrites its snapshot.
            let mut manifest = self
                .manifest
                .take()
                .unwrap_or_else(|| Manifest::new(&self.lock.owner, BTreeMap::new()));
            manifest.nodes = self.records(|_| NodeOutcome::Pending);
            let timed = Timed::start("snapshot: manifest (written, synced)");
            let saved = self.store.save(&manifest);
            drop(timed);
            if let Err(e) = saved {
                for p in &mut self.parts {
                    p.report.fail(None, e.to_string());
                }
                return Err(self.stop(Outcome::Failed));
            }
            self.manifest = Some(manifest);
            if self.keeping.is_none() {
                self.keeping = Some(keep_sent(self.store, self.loads()));
            }
        }
        Ok(())
    }

    /// Every binary this run loads, for the store.
    fn loads(&self) -> Vec<Module> {
        let mut seen = BTreeMap::new();
        for p in &self.parts {
            for c in &p.changes {
                if let Target::Load(m) = &p.goals[c.goal].target {
                    seen.entry(m.md5.0).or_insert_with(|| m.clone());
                }
            }
        }
        seen.into_values().collect()
    }

    pub fn records(&self, outcome: impl Fn(&Part) -> NodeOutcome) -> BTreeMap<String, NodeRecord> {
        self.parts
            .iter()
            .filter(|p| !p.changes.is_empty())
            .map(|p| {
                let modules = p
                    .changes
                    .iter()
                    .map(|c| {
                        let goal = &p.goals[c.goal];
                        ModuleRecord {
                            module: goal.module.clone(),
                            prior: c.prior.clone(),
                            deployed: goal.target.md5().map(Md5::to_hex),
                        }
                    })
                    .collect();
                (
                    p.node().to_owned(),
                    NodeRecord {
                        outcome: outcome(p),
                        modules,
                    },
                )
            })
            .collect()
    }
}

fn parts_view(parts: &mut [Part]) -> Vec<(&mut NodeReport, Vec<AboutToChange<'_>>)> {
    parts
        .iter_mut()
        .map(|p| {
            let goals = &p.goals;
            let pending = p
                .changes
                .iter_mut()
                .map(|c| AboutToChange {
                    module: goals[c.goal].module.as_str(),
                    was: c.was,
                    copy: c.copy.take(),
                    prior: &mut c.prior,
                })
                .collect();
            (&mut p.report, pending)
        })
        .collect()
}
