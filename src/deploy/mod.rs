//! Deploying modules to nodes, read top to bottom in [`deploy`]:
//! connect → plan → snapshot → purge → load → verify → (rollback).
//!
//! All nodes go through each step together, and a step that fails on any
//! node stops the deploy before the next: so a node that refuses (old code
//! in use, a sticky module) leaves every node untouched, and a failure
//! during loading or verification rolls back every node changed in this
//! run. Each step costs one pipelined round of calls per node, whatever
//! the number of modules. This module speaks to nodes only through
//! [`remote`], which speaks only through [`crate::dist`].

pub mod remote;
pub mod report;

pub use report::{Failure, NodeReport, Outcome, Report};

use crate::beam::{Md5, Module, OnLoad, Sha256Sum};
use crate::dist::term::Encoded;
use crate::dist::{NodeName, Peer};
use crate::output::Ui;
use crate::snapshot::{Entry, Manifest, Prior, SnapshotError, Store};
use futures::future::join_all;
use indicatif::ProgressBar;
use remote::Remote;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub verify: bool,
    pub all: bool,
    pub force: bool,
    pub dry_run: bool,
    pub cluster: bool,
    pub timeout: Duration,
    /// Set (by Ctrl-C) to stop between steps; the deploy then undoes what
    /// it changed.
    pub interrupted: Arc<AtomicBool>,
}

impl Options {
    fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            verify: false,
            all: false,
            force: false,
            dry_run: false,
            cluster: false,
            timeout: Duration::from_secs(30),
            interrupted: Arc::new(AtomicBool::new(false)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    New,
    Changed,
}

/// Indexes into the deploy's modules, with how each differs on a node.
type Plan = Vec<(usize, Change)>;

/// One node's part in a deploy.
struct Target {
    remote: Remote,
    report: NodeReport,
    plan: Plan,
    priors: Vec<Entry>,
    /// Something was loaded here in this run (so a failure must undo it).
    changed: bool,
    bar: ProgressBar,
}

impl Target {
    fn names<'a>(&self, modules: &'a [Module]) -> Vec<&'a str> {
        self.plan
            .iter()
            .map(|&(i, _)| modules[i].name.as_str())
            .collect()
    }
}

/// Deploys `modules` (already validated) to `nodes`.
pub async fn deploy(
    peer: &Peer,
    modules: &[Module],
    store: &Store,
    nodes: &[NodeName],
    opts: &Options,
    ui: &Ui,
) -> Report {
    let started = Instant::now();
    let mut lap = Instant::now();
    let remotes = match connect_all(peer, nodes, opts, ui).await {
        Ok(r) => r,
        Err(reports) => return Report::new(reports, Outcome::Unreachable, None),
    };
    step("connect", &mut lap);
    let mut targets: Vec<Target> = remotes
        .into_iter()
        .map(|remote| Target {
            bar: ui.node_bar(&remote.node(), 5),
            report: NodeReport::new(&remote.node()),
            remote,
            plan: Vec::new(),
            priors: Vec::new(),
            changed: false,
        })
        .collect();

    // Plan: what each node runs now decides what it gets.
    let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
    let running = join_all(targets.iter().map(|t| t.remote.loaded_md5s(&names))).await;
    let mut current: Vec<Vec<Option<Md5>>> = Vec::new();
    for (t, result) in targets.iter_mut().zip(running) {
        t.bar.set_message("planning");
        match result {
            Ok(md5s) => {
                for (i, (module, md5)) in modules.iter().zip(&md5s).enumerate() {
                    match md5 {
                        None => t.plan.push((i, Change::New)),
                        Some(m) if *m != module.md5 || opts.all => {
                            t.plan.push((i, Change::Changed))
                        }
                        Some(_) => t.report.unchanged.push(module.name.clone()),
                    }
                }
                current.push(md5s);
            }
            Err(e) => {
                t.report.fail(None, e.to_string());
                current.push(Vec::new());
            }
        }
        t.bar.inc(1);
    }
    step("plan", &mut lap);
    if targets.iter().any(|t| !t.report.ok) {
        return finish(targets, Outcome::Failed, None, started);
    }
    if opts.dry_run {
        for t in &mut targets {
            for &(i, change) in &t.plan {
                ui.line(&format!(
                    "Would deploy {} to {} ({})",
                    modules[i].name,
                    t.report.node,
                    kind(change)
                ));
                t.report.loaded.push(modules[i].name.clone());
            }
        }
        let mut report = finish(targets, Outcome::Success, None, started);
        report.dry_run = true;
        return report;
    }
    if targets.iter().all(|t| t.plan.is_empty()) {
        return finish(targets, Outcome::Success, None, started);
    }

    if opts.interrupted() {
        return finish(targets, Outcome::Interrupted, None, started);
    }
    // Snapshot, before anything is touched. Nodes mostly run the same
    // versions, so each prior MD5 is looked up in the store once.
    let stored: HashMap<Md5, Option<Sha256Sum>> = targets
        .iter()
        .zip(&current)
        .flat_map(|(t, md5s)| {
            t.plan
                .iter()
                .filter_map(|&(i, _)| md5s.get(i).copied().flatten())
        })
        .collect::<BTreeSet<Md5>>()
        .into_iter()
        .map(|md5| (md5, store.find_by_md5(md5)))
        .collect();
    join_all(
        targets
            .iter_mut()
            .zip(&current)
            .map(|(t, md5s)| capture_priors(t, modules, md5s, &stored, store, ui)),
    )
    .await;
    if targets.iter().any(|t| !t.report.ok) {
        return finish(targets, Outcome::Failed, None, started);
    }
    let manifest = Manifest::new(
        targets
            .iter()
            .map(|t| (t.report.node.clone(), t.priors.clone()))
            .collect(),
    );
    if let Err(e) = store.save(&manifest) {
        for t in &mut targets {
            t.report.fail(None, e.to_string());
        }
        return finish(targets, Outcome::Failed, None, started);
    }
    let keeping = keep_sent(store, modules, &targets);
    let snapshot = Some(manifest.id.clone());
    step("snapshot", &mut lap);

    // Old code: a module whose previous version is still in use cannot take
    // a new one. Refuse the whole deploy unless told to kill.
    join_all(
        targets
            .iter_mut()
            .map(|t| clear_old_code(t, modules, opts.force, ui)),
    )
    .await;
    step("old code", &mut lap);
    if targets.iter().any(|t| !t.report.lingering.is_empty()) {
        kept(keeping, ui).await;
        return finish(targets, Outcome::Lingering, snapshot, started);
    }
    if targets.iter().any(|t| !t.report.ok) {
        kept(keeping, ui).await;
        return finish(targets, Outcome::Failed, snapshot, started);
    }

    if opts.interrupted() {
        kept(keeping, ui).await;
        return finish(targets, Outcome::Interrupted, snapshot, started);
    }
    // Load, all of a node's modules at once.
    // Each distinct set of modules is encoded once, whatever the node count.
    let mut payloads: HashMap<Vec<usize>, Encoded> = HashMap::new();
    for t in &targets {
        let key: Vec<usize> = t
            .plan
            .iter()
            .map(|&(i, _)| i)
            .filter(|&i| modules[i].on_load() == OnLoad::No)
            .collect();
        payloads.entry(key).or_insert_with_key(|key| {
            let batch: Vec<&Module> = key.iter().map(|&i| &modules[i]).collect();
            remote::load_payload(&batch)
        });
    }
    join_all(targets.iter_mut().map(|t| load(t, modules, &payloads, ui))).await;
    drop(payloads);
    step("load", &mut lap);
    if targets.iter().any(|t| !t.report.ok) {
        roll_back_changed(&mut targets, store, ui).await;
        kept(keeping, ui).await;
        return finish(targets, Outcome::Failed, snapshot, started);
    }
    if opts.interrupted() {
        roll_back_changed(&mut targets, store, ui).await;
        kept(keeping, ui).await;
        return finish(targets, Outcome::Interrupted, snapshot, started);
    }

    // Let go of the previous versions where nothing uses them any more.
    join_all(targets.iter_mut().map(|t| settle(t, modules, ui))).await;
    step("settle", &mut lap);

    if opts.interrupted() {
        roll_back_changed(&mut targets, store, ui).await;
        kept(keeping, ui).await;
        return finish(targets, Outcome::Interrupted, snapshot, started);
    }
    if opts.verify {
        join_all(targets.iter_mut().map(|t| verify(t, modules))).await;
        if targets.iter().any(|t| !t.report.ok) {
            roll_back_changed(&mut targets, store, ui).await;
            kept(keeping, ui).await;
            return finish(targets, Outcome::VerifyMismatch, snapshot, started);
        }
    }
    for t in &targets {
        t.bar.finish_with_message("done");
    }
    kept(keeping, ui).await;
    finish(targets, Outcome::Success, snapshot, started)
}

/// Waits for the background store writes; a failure there does not undo a
/// deploy, it only means a later snapshot must ask the nodes.
async fn kept(keeping: tokio::task::JoinHandle<Result<(), SnapshotError>>, ui: &Ui) {
    match keeping.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => ui.warn(&format!(
            "{e}; the next snapshot will fetch these modules from the nodes"
        )),
        Err(e) => ui.warn(&format!("storing the deployed modules failed: {e}")),
    }
}

/// Logs how long a step took, for `-v`.
fn step(name: &str, since: &mut Instant) {
    tracing::debug!(
        "step {name} took {:.1} ms",
        since.elapsed().as_secs_f64() * 1e3
    );
    *since = Instant::now();
}

fn kind(change: Change) -> &'static str {
    match change {
        Change::New => "new",
        Change::Changed => "changed",
    }
}

fn finish(
    targets: Vec<Target>,
    outcome: Outcome,
    snapshot: Option<String>,
    started: Instant,
) -> Report {
    let mut report = Report::new(
        targets
            .into_iter()
            .map(|t| {
                t.bar.finish_and_clear();
                t.report
            })
            .collect(),
        outcome,
        snapshot,
    );
    report.elapsed = started.elapsed();
    report
}

/// Connects to every node at once (and with `--cluster`, to the nodes they
/// are connected to). Any failure stops here, before anything changes.
pub async fn connect_all(
    peer: &Peer,
    nodes: &[NodeName],
    opts: &Options,
    ui: &Ui,
) -> Result<Vec<Remote>, Vec<NodeReport>> {
    let mut wanted: Vec<NodeName> = Vec::new();
    for n in nodes {
        if !wanted.contains(n) {
            wanted.push(n.clone());
        }
    }
    let mut remotes: Vec<Remote> = Vec::new();
    let mut failures = Vec::new();
    let mut round = wanted.clone();
    while !round.is_empty() {
        let results = join_all(round.iter().map(|n| peer.connect(n))).await;
        for (name, result) in round.iter().zip(results) {
            match result {
                Ok(conn) => {
                    ui.line(&format!("Connected to {name}"));
                    remotes.push(Remote {
                        conn,
                        timeout: opts.timeout,
                    });
                }
                Err(e) => {
                    let mut r = NodeReport::new(&name.to_string());
                    r.fail(None, e.to_string());
                    failures.push(r);
                }
            }
        }
        round = Vec::new();
        if opts.cluster && failures.is_empty() {
            let seen: Vec<_> = remotes.iter().map(|r| r.node()).collect();
            let peers = join_all(remotes.iter().map(|r| r.connected_nodes())).await;
            for name in peers.into_iter().flatten().flatten() {
                let Ok(name) = name.parse::<NodeName>() else {
                    continue;
                };
                if !seen.contains(&name.to_string())
                    && !round.contains(&name)
                    && name != *peer.name()
                {
                    round.push(name);
                }
            }
        }
    }
    if failures.is_empty() {
        Ok(remotes)
    } else {
        let mut reports: Vec<NodeReport> =
            remotes.iter().map(|r| NodeReport::new(&r.node())).collect();
        reports.extend(failures);
        Err(reports)
    }
}

/// Records what the node runs now for every module it is about to get.
/// The binary comes from the local store when an earlier deploy put that
/// MD5 there, else from the node's code path if (and only if) the file
/// there is what is loaded; otherwise the module is not restorable.
async fn capture_priors(
    t: &mut Target,
    modules: &[Module],
    md5s: &[Option<Md5>],
    stored: &HashMap<Md5, Option<Sha256Sum>>,
    store: &Store,
    ui: &Ui,
) {
    t.bar.set_message("snapshot");
    let mut ask = Vec::new();
    for &(i, change) in &t.plan {
        let name = &modules[i].name;
        match (change, md5s.get(i).copied().flatten()) {
            (Change::New, _) | (_, None) => t.priors.push(Entry {
                module: name.clone(),
                prior: Prior::Absent,
            }),
            (Change::Changed, Some(md5)) => match stored.get(&md5).copied().flatten() {
                Some(sha) => t.priors.push(Entry {
                    module: name.clone(),
                    prior: Prior::Restorable {
                        md5: md5.to_hex(),
                        sha256: sha.to_hex(),
                    },
                }),
                None => ask.push((name.as_str(), md5)),
            },
        }
    }
    if !ask.is_empty() {
        let names: Vec<&str> = ask.iter().map(|(n, _)| *n).collect();
        match t.remote.object_code(&names).await {
            Ok(objects) => {
                for ((name, md5), object) in ask.iter().zip(objects) {
                    let on_disk = object.and_then(|bytes| {
                        let parsed = crate::beam::parse(&bytes).ok()?;
                        (parsed.md5 == *md5).then_some(bytes)
                    });
                    let prior = match on_disk.map(|bytes| store.put(*md5, &bytes)) {
                        Some(Ok(sha)) => Prior::Restorable {
                            md5: md5.to_hex(),
                            sha256: sha.to_hex(),
                        },
                        Some(Err(e)) => {
                            t.report.fail(Some(name), e.to_string());
                            continue;
                        }
                        None => {
                            ui.warn(&format!(
                                "`{name}` on {} cannot be snapshotted (the loaded code is not on its disk); a rollback will not restore it",
                                t.report.node
                            ));
                            Prior::Unrestorable { md5: md5.to_hex() }
                        }
                    };
                    t.priors.push(Entry {
                        module: (*name).to_owned(),
                        prior,
                    });
                }
            }
            Err(e) => t.report.fail(None, e.to_string()),
        }
    }
    t.bar.inc(1);
}

/// Keeps every binary being sent, so the next snapshot of these nodes needs
/// nothing from them. Only a later deploy reads these, so the writing runs
/// in the background while this deploy goes on.
fn keep_sent(
    store: &Store,
    modules: &[Module],
    targets: &[Target],
) -> tokio::task::JoinHandle<Result<(), SnapshotError>> {
    let sent: BTreeSet<usize> = targets
        .iter()
        .flat_map(|t| t.plan.iter().map(|&(i, _)| i))
        .collect();
    let batch: Vec<(Md5, Arc<Vec<u8>>)> = sent
        .into_iter()
        .map(|i| (modules[i].md5, modules[i].bytes.clone()))
        .collect();
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        for (md5, bytes) in batch {
            store.put(md5, &bytes)?;
        }
        Ok(())
    })
}

/// Purges old code of the modules about to load. Where processes still run
/// it, either names them (and the deploy is refused) or, with `--force`,
/// kills them.
async fn clear_old_code(t: &mut Target, modules: &[Module], force: bool, ui: &Ui) {
    t.bar.set_message("old code");
    let names = t.names(modules);
    let result = async {
        let old = t.remote.has_old_code(&names).await?;
        let with_old: Vec<&str> = names
            .iter()
            .zip(&old)
            .filter(|(_, o)| **o)
            .map(|(n, _)| *n)
            .collect();
        let stuck = t.remote.soft_purge_stuck(&with_old).await?;
        if stuck.is_empty() {
            return Ok(());
        }
        let lingering = t.remote.lingering(&stuck).await?;
        if force {
            t.remote.purge(&stuck).await?;
            t.report.killed += lingering.len();
            ui.warn(&format!(
                "killed {} on {} running old code of {}",
                report::count(lingering.len(), "process"),
                t.report.node,
                stuck.join(", ")
            ));
        } else {
            for l in &lingering {
                ui.line(&format!(
                    "{} on {} still runs old code of `{}`",
                    describe_process(&l.pid, l.name.as_deref()),
                    t.report.node,
                    l.module
                ));
            }
            t.report.ok = false;
            t.report.lingering = lingering;
        }
        Ok::<(), crate::dist::CallError>(())
    }
    .await;
    if let Err(e) = result {
        t.report.fail(None, e.to_string());
    }
    t.bar.inc(1);
}

fn describe_process(pid: &str, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("process {pid} ({n})"),
        None => format!("process {pid}"),
    }
}

/// Loads the node's modules: all but `-on_load` ones in one atomic step,
/// then those one by one.
async fn load(
    t: &mut Target,
    modules: &[Module],
    payloads: &HashMap<Vec<usize>, Encoded>,
    ui: &Ui,
) {
    t.bar.set_message(format!("loading {}", t.plan.len()));
    let (single, batch): (Plan, Plan) = t
        .plan
        .iter()
        .copied()
        .partition(|&(i, _)| modules[i].on_load() != OnLoad::No);
    let batch_modules: Vec<&Module> = batch.iter().map(|&(i, _)| &modules[i]).collect();
    let key: Vec<usize> = batch.iter().map(|&(i, _)| i).collect();
    let payload = payloads
        .get(&key)
        .cloned()
        .unwrap_or_else(|| remote::load_payload(&batch_modules));
    match t.remote.atomic_load(&batch_modules, &payload).await {
        Ok(Ok(())) => {
            t.changed = !batch.is_empty();
            for &(i, change) in &batch {
                record_loaded(t, &modules[i], change, ui);
            }
        }
        Ok(Err(refusals)) => {
            for r in refusals {
                t.report
                    .fail(Some(&r.module), format!("not loaded: {}", r.reason));
            }
            return;
        }
        Err(e) => {
            // Whether the node got to load is unknown: undo to be safe.
            t.changed = true;
            t.report.fail(None, e.to_string());
            return;
        }
    }
    for &(i, change) in &single {
        let module = &modules[i];
        match t.remote.load_binary(module).await {
            Ok(Ok(())) => {
                t.changed = true;
                record_loaded(t, module, change, ui);
            }
            Ok(Err(r)) => {
                t.changed = true;
                t.report
                    .fail(Some(&r.module), format!("not loaded: {}", r.reason));
                return;
            }
            Err(e) => {
                t.changed = true;
                t.report.fail(Some(&module.name), e.to_string());
                return;
            }
        }
    }
    t.bar.inc(1);
}

fn record_loaded(t: &mut Target, module: &Module, change: Change, ui: &Ui) {
    ui.line(&format!(
        "Deployed {} to {} ({})",
        module.name,
        t.report.node,
        kind(change)
    ));
    t.report.loaded.push(module.name.clone());
}

/// After loading, the replaced versions are old code; purge them where no
/// process uses them, so the next deploy does not trip. Processes still in
/// them move on at their next external call: a warning, not a failure.
async fn settle(t: &mut Target, modules: &[Module], ui: &Ui) {
    let names = t.names(modules);
    let Ok(stuck) = t.remote.soft_purge_stuck(&names).await else {
        return;
    };
    if let Ok(lingering) = t.remote.lingering(&stuck).await {
        for l in &lingering {
            ui.warn(&format!(
                "{} on {} still runs the previous version of `{}`; it moves to the new code at its next external call",
                describe_process(&l.pid, l.name.as_deref()),
                t.report.node,
                l.module
            ));
        }
        t.report.lingering = lingering;
    }
    t.bar.inc(1);
}

/// Reads back what the node now runs and compares it with what was sent.
async fn verify(t: &mut Target, modules: &[Module]) {
    t.bar.set_message("verifying");
    let names = t.names(modules);
    match t.remote.loaded_md5s(&names).await {
        Ok(md5s) => {
            for (&(i, _), md5) in t.plan.iter().zip(md5s) {
                if md5 != Some(modules[i].md5) {
                    let found = md5
                        .map(|m| m.to_hex())
                        .unwrap_or_else(|| "nothing loaded".into());
                    t.report.fail(
                        Some(&modules[i].name),
                        format!("verify: the node runs {found}, expected {}", modules[i].md5),
                    );
                }
            }
        }
        Err(e) => t.report.fail(None, format!("verify: {e}")),
    }
    t.bar.inc(1);
}

async fn roll_back_changed(targets: &mut [Target], store: &Store, ui: &Ui) {
    join_all(targets.iter_mut().filter(|t| t.changed).map(|t| async {
        t.bar.set_message("rolling back");
        let entries = t.priors.clone();
        let restored = match load_restorable(&entries, store) {
            Ok(modules) => restore(&t.remote, &entries, &modules, &mut t.report).await,
            Err(e) => Err(e),
        };
        match restored {
            Ok(()) => {
                t.report.rolled_back = true;
                t.report.loaded.clear();
                ui.line(&format!("Rolled back {}", t.report.node));
            }
            Err(e) => t.report.fail(None, format!("rollback failed: {e}")),
        }
    }))
    .await;
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    #[error(transparent)]
    Store(#[from] SnapshotError),
    #[error("snapshot object for `{module}` is not a valid module: {detail}")]
    BadObject { module: String, detail: String },
    #[error(transparent)]
    Call(#[from] crate::dist::CallError),
    #[error("`{module}` could not be restored: {reason}")]
    Refused { module: String, reason: String },
    #[error("`{module}` runs {found} after the rollback, expected {expected}")]
    Mismatch {
        module: String,
        found: String,
        expected: String,
    },
}

/// The binaries a snapshot needs, read and checked before any node is
/// touched: a damaged store refuses the rollback.
pub fn load_restorable(entries: &[Entry], store: &Store) -> Result<Vec<Module>, RestoreError> {
    let mut out = Vec::new();
    for e in entries {
        if let Prior::Restorable { md5, sha256 } = &e.prior {
            let sha = Sha256Sum::from_hex(sha256).ok_or_else(|| RestoreError::BadObject {
                module: e.module.clone(),
                detail: format!("bad object name `{sha256}`"),
            })?;
            let bytes = store.read(sha)?;
            let module = Module::from_bytes(
                bytes,
                format!("{}/objects/{sha256}", store.root().display()).into(),
            )
            .map_err(|err| RestoreError::BadObject {
                module: e.module.clone(),
                detail: err.to_string(),
            })?;
            if module.name != e.module || module.md5.to_hex() != *md5 {
                return Err(RestoreError::BadObject {
                    module: e.module.clone(),
                    detail: format!("it holds `{}` with MD5 {}", module.name, module.md5),
                });
            }
            out.push(module);
        }
    }
    Ok(out)
}

/// Puts a node back to what `entries` recorded: prior binaries reloaded,
/// modules that were new removed, and the result checked by MD5. A
/// rollback must win, so processes in old code are killed if need be.
/// `restorable` is [`load_restorable`] of the same entries.
pub async fn restore(
    remote: &Remote,
    entries: &[Entry],
    restorable: &[Module],
    report: &mut NodeReport,
) -> Result<(), RestoreError> {
    let absent: Vec<&str> = entries
        .iter()
        .filter(|e| e.prior == Prior::Absent)
        .map(|e| e.module.as_str())
        .collect();
    for e in entries {
        if matches!(e.prior, Prior::Unrestorable { .. }) {
            report.not_restored.push(e.module.clone());
        }
    }
    let names: Vec<&str> = restorable.iter().map(|m| m.name.as_str()).collect();
    let stuck = remote.soft_purge_stuck(&names).await?;
    if !stuck.is_empty() {
        let killed = remote.purge(&stuck).await?;
        report.killed += killed.iter().filter(|k| **k).count();
    }
    let (single, batch): (Vec<&Module>, Vec<&Module>) =
        restorable.iter().partition(|m| m.on_load() != OnLoad::No);
    if let Err(refusals) = remote
        .atomic_load(&batch, &remote::load_payload(&batch))
        .await?
    {
        let r = refusals
            .into_iter()
            .next()
            .map(|r| (r.module, r.reason))
            .unwrap_or_default();
        return Err(RestoreError::Refused {
            module: r.0,
            reason: r.1,
        });
    }
    for module in single {
        if let Err(r) = remote.load_binary(module).await? {
            return Err(RestoreError::Refused {
                module: r.module,
                reason: r.reason,
            });
        }
    }
    remote.remove(&absent).await?;
    let _ = remote.soft_purge(&names).await;
    // Read back: restored ones run their recorded MD5, removed ones nothing.
    let all: Vec<&str> = names.iter().chain(&absent).copied().collect();
    let now = remote.loaded_md5s(&all).await?;
    for (name, found) in all.iter().zip(now) {
        let expected = restorable.iter().find(|m| m.name == *name).map(|m| m.md5);
        if found != expected {
            let show = |m: Option<Md5>| m.map(|m| m.to_hex()).unwrap_or_else(|| "nothing".into());
            return Err(RestoreError::Mismatch {
                module: (*name).to_owned(),
                found: show(found),
                expected: show(expected),
            });
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RollbackError {
    #[error("no snapshot to roll back for {nodes}; `hotswap-node snapshots` lists what there is")]
    NoSnapshot { nodes: String },
    #[error("snapshot `{id}` cannot be restored: {source}")]
    Damaged { id: String, source: RestoreError },
    #[error(transparent)]
    Store(#[from] SnapshotError),
}

/// Undoes the newest deploy to `nodes` that has not been undone yet.
pub async fn rollback(
    peer: &Peer,
    store: &Store,
    nodes: &[NodeName],
    opts: &Options,
    ui: &Ui,
) -> Result<Report, RollbackError> {
    let started = Instant::now();
    let names: Vec<String> = nodes.iter().map(ToString::to_string).collect();
    let Some(mut manifest) = store.latest_for(&names)? else {
        return Err(RollbackError::NoSnapshot {
            nodes: names.join(", "),
        });
    };
    // Read and check every object before touching any node.
    let mut restorable: HashMap<&str, Vec<Module>> = HashMap::new();
    for (node, entries) in &manifest.nodes {
        if names.contains(node) {
            let modules =
                load_restorable(entries, store).map_err(|source| RollbackError::Damaged {
                    id: manifest.id.clone(),
                    source,
                })?;
            restorable.insert(node.as_str(), modules);
        }
    }
    ui.line(&format!(
        "Rolling back snapshot {} ({})",
        manifest.id,
        manifest.time()
    ));
    let targets: Vec<NodeName> = nodes
        .iter()
        .filter(|n| manifest.nodes.contains_key(&n.to_string()))
        .cloned()
        .collect();
    let remotes = match connect_all(
        peer,
        &targets,
        &Options {
            cluster: false,
            ..opts.clone()
        },
        ui,
    )
    .await
    {
        Ok(r) => r,
        Err(reports) => {
            return Ok(Report::new(
                reports,
                Outcome::Unreachable,
                Some(manifest.id),
            ))
        }
    };
    let results = join_all(remotes.iter().map(|remote| async {
        let node = remote.node();
        let mut report = NodeReport::new(&node);
        let entries = manifest.nodes.get(&node).cloned().unwrap_or_default();
        let modules = restorable
            .get(node.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        match restore(remote, &entries, modules, &mut report).await {
            Ok(()) => {
                for e in &entries {
                    match e.prior {
                        Prior::Absent => ui.line(&format!("Removed {} from {node}", e.module)),
                        Prior::Restorable { .. } => {
                            ui.line(&format!("Restored {} on {node}", e.module));
                            report.loaded.push(e.module.clone());
                        }
                        Prior::Unrestorable { .. } => {}
                    }
                }
                report.rolled_back = true;
            }
            Err(e) => report.fail(None, e.to_string()),
        }
        report
    }))
    .await;
    let ok = results.iter().all(|r| r.ok);
    if ok {
        manifest.rolled_back = true;
        store.save(&manifest)?;
    }
    let mut report = Report::new(
        results,
        if ok {
            Outcome::Success
        } else {
            Outcome::Failed
        },
        Some(manifest.id),
    );
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Per node, how the local modules compare with what runs there.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeStatus {
    pub node: String,
    pub changed: Vec<String>,
    pub new: Vec<String>,
    pub unchanged: Vec<String>,
    /// Loaded modules of the app that have no local file.
    pub absent_locally: Vec<String>,
}

/// Compares without touching anything.
pub async fn status(
    peer: &Peer,
    modules: &[Module],
    apps: &[String],
    nodes: &[NodeName],
    opts: &Options,
    ui: &Ui,
) -> Result<Vec<NodeStatus>, Vec<NodeReport>> {
    let remotes = connect_all(peer, nodes, opts, ui).await?;
    let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
    let results = join_all(remotes.iter().map(|r| async {
        let mut s = NodeStatus {
            node: r.node(),
            changed: vec![],
            new: vec![],
            unchanged: vec![],
            absent_locally: vec![],
        };
        let md5s = r.loaded_md5s(&names).await.map_err(|e| (r.node(), e))?;
        for (m, md5) in modules.iter().zip(md5s) {
            match md5 {
                None => s.new.push(m.name.clone()),
                Some(x) if x != m.md5 => s.changed.push(m.name.clone()),
                Some(_) => s.unchanged.push(m.name.clone()),
            }
        }
        let local: BTreeSet<&str> = names.iter().copied().collect();
        let mut extra = BTreeMap::new();
        for app in apps {
            if let Some(app_modules) = r.app_modules(app).await.map_err(|e| (r.node(), e))? {
                for m in app_modules {
                    if !local.contains(m.as_str()) {
                        extra.insert(m, ());
                    }
                }
            }
        }
        let extra: Vec<String> = extra.into_keys().collect();
        let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
        let loaded = r.loaded_md5s(&refs).await.map_err(|e| (r.node(), e))?;
        s.absent_locally = extra
            .iter()
            .zip(loaded)
            .filter(|(_, l)| l.is_some())
            .map(|(m, _)| m.clone())
            .collect();
        Ok::<_, (String, crate::dist::CallError)>(s)
    }))
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
