//! `hotswap-node watch`: build on each save and deploy what changed, over
//! connections held for the whole session. Read top to bottom in
//! [`Watch::run`]: hold the session → build once and catch every node up →
//! then, until Ctrl-C, on each change build → deploy, and on each node
//! that comes back catch it up.
//!
//! Every deploy is the one engine's transaction ([`deploy::deploy_each`]):
//! a node is sent the modules whose local MD5 differs from what it was last
//! brought to, and the transaction still plans against what it runs.
//!
//! - [`sources`]: what is watched, and the settle window.
//! - [`nodes`]: noticing a node go, and connecting to it again.
//! - [`lines`]: the line (or JSON object) printed per change.

pub mod lines;
pub mod nodes;
pub mod sources;

use crate::beam::{Md5, Module};
use crate::deploy::observing::Observing;
use crate::deploy::{self, Options, Remote, Report, Session};
use crate::output::{Mode, Ui};
use crate::project::Builder;
use crate::store::{Store, StoreLock};
use crate::timings;
use lines::Cause;
use nodes::NodeEvent;
use sources::Sources;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Finds and reads the modules of the build output.
pub type FindModules = Arc<dyn Fn() -> Result<Vec<Module>, String> + Send + Sync>;

/// What the watch mode was asked for, besides the deploy options.
pub struct WatchOptions {
    pub project: PathBuf,
    pub settle: Duration,
    pub mode: Mode,
    /// `--timings`: where each change's time went.
    pub timings: bool,
}

/// A watch session.
pub struct Watch {
    session: Arc<Session>,
    sources: Sources,
    builder: Builder,
    find: FindModules,
    opts: Options,
    watch: WatchOptions,
    ui: Ui,
    /// The last good build.
    modules: Vec<Module>,
    /// Per node: the MD5 of each module of ours that it runs.
    synced: HashMap<String, HashMap<String, Md5>>,
    events: mpsc::UnboundedSender<NodeEvent>,
    /// The watches after the changes that the nodes report apart, under
    /// way: each node and how many processes it watches.
    observing: JoinSet<lines::Seen>,
    pending: HashMap<tokio::task::Id, (String, usize)>,
    /// Processes that died right after this session's changes.
    died: usize,
}

/// How a watch session ended.
pub struct Ended {
    /// Processes that died right after its changes, each named when seen:
    /// the session exits 7 for them, as a deploy does.
    pub died: usize,
}

impl Watch {
    pub fn new(
        session: Session,
        sources: Sources,
        builder: Builder,
        find: FindModules,
        opts: Options,
        watch: WatchOptions,
    ) -> (Watch, mpsc::UnboundedReceiver<NodeEvent>) {
        let (events, incoming) = mpsc::unbounded_channel();
        let ui = Ui::new(watch.mode);
        let w = Watch {
            session: Arc::new(session),
            sources,
            builder,
            find,
            opts,
            watch,
            ui,
            modules: Vec::new(),
            synced: HashMap::new(),
            events,
            observing: JoinSet::new(),
            pending: HashMap::new(),
            died: 0,
        };
        (w, incoming)
    }

    /// Watches until `stop` is set; the change in flight finishes (or,
    /// interrupted between steps, is undone) and the build node stops.
    pub async fn run(
        mut self,
        missing: Vec<(crate::peer::NodeName, String)>,
        mut incoming: mpsc::UnboundedReceiver<NodeEvent>,
        stop: crate::interrupt::Interrupt,
    ) -> Ended {
        for remote in self.session.remotes() {
            nodes::follow(remote, self.events.clone());
        }
        for (node, why) in missing {
            lines::node_down(self.watch.mode, &node.to_string(), &why);
            nodes::reconnect(self.session.clone(), node, self.events.clone());
        }
        self.change(&BTreeSet::new(), Cause::Start).await;
        lines::watching(&self.ui, &self.sources, &self.builder, &self.session);
        loop {
            tokio::select! {
                biased;
                () = stop.wait() => break,
                Some(event) = incoming.recv() => self.node_event(event).await,
                Some(seen) = self.observing.join_next_with_id(), if !self.observing.is_empty() => self.seen(seen),
                changed = self.sources.next(self.watch.settle) => self.change(&changed, Cause::Change).await,
            }
        }
        self.last_watches().await;
        self.builder.stop().await;
        Ended { died: self.died }
    }

    /// Has each watch after the change that a node reports apart told
    /// when it ends ([`Watch::seen`]).
    fn observe(&mut self, report: &Report, observing: Vec<Observing>) {
        for o in observing {
            let modules = report
                .nodes
                .iter()
                .find(|n| n.node == o.node)
                .map(|n| n.loaded.clone())
                .unwrap_or_default();
            let what = (o.node.clone(), o.watched);
            let task = self.observing.spawn(async move {
                let (node, watched) = (o.node.clone(), o.watched);
                let observed = o.outcome().await;
                lines::Seen {
                    node,
                    watched,
                    modules,
                    observed,
                }
            });
            self.pending.insert(task.id(), what);
        }
    }

    /// Says how a watch after a change ended.
    fn seen(&mut self, done: Result<(tokio::task::Id, lines::Seen), tokio::task::JoinError>) {
        let seen = match done {
            Ok((id, seen)) => {
                self.pending.remove(&id);
                seen
            }
            Err(e) => {
                let Some((node, watched)) = self.pending.remove(&e.id()) else {
                    return;
                };
                lines::Seen {
                    node,
                    watched,
                    modules: Vec::new(),
                    observed: deploy::observing::Observed::Unknown(e.to_string()),
                }
            }
        };
        if let deploy::observing::Observed::Died(died) = &seen.observed {
            self.died += died.len();
        }
        lines::observed(self.watch.mode, &seen);
    }

    /// On the way out, waits for the watches after the last changes to
    /// end (a second Ctrl-C quits without them, named here first).
    async fn last_watches(&mut self) {
        if self.observing.is_empty() {
            return;
        }
        lines::waiting_for_watches(self.pending.values());
        while let Some(seen) = self.observing.join_next_with_id().await {
            self.seen(seen);
        }
    }

    /// Builds, then deploys what differs to every connected node.
    async fn change(&mut self, changed: &BTreeSet<PathBuf>, cause: Cause) {
        let started = Instant::now();
        timings::clear();
        let peer = self.session.peer();
        if self.builder.runs_a_command() {
            let beams: Vec<PathBuf> = self.modules.iter().map(|m| m.path.clone()).collect();
            crate::project::stale::date_back(changed, &beams);
        }
        // A change in flight finishes its build even on Ctrl-C.
        let stop = std::future::pending();
        let built = self.builder.build(peer, &self.watch.project, changed, stop);
        if let Err(why) = timings::measure("build", None, built).await {
            lines::build_failed(self.watch.mode, &why.to_string());
            return;
        }
        let build = started.elapsed();
        // Reading and hashing every beam is file work: off the runtime.
        let find = self.find.clone();
        let found = tokio::task::spawn_blocking(move || {
            let _timed = timings::Timed::start("read beams");
            find()
        })
        .await
        .unwrap_or_else(|e| Err(format!("reading the build output failed: {e}")));
        tracing::debug!(
            "reading the build output took {:.1} ms",
            (started.elapsed() - build).as_secs_f64() * 1e3
        );
        match found {
            Ok(modules) => self.modules = modules,
            Err(e) => {
                lines::build_failed(self.watch.mode, &e);
                return;
            }
        }
        let remotes = self.session.remotes();
        let report = self.deploy(remotes).await;
        let timings = timings::take(started);
        tracing::debug!("change handled in {:.1} ms", timings.total_ms());
        match report {
            Ok(report) => {
                let timings = self.watch.timings.then_some(&timings);
                lines::change(
                    &self.ui,
                    self.watch.mode,
                    report.as_ref(),
                    build,
                    cause,
                    timings,
                )
            }
            Err(why) => lines::store_failed(self.watch.mode, &why),
        }
    }

    /// The line (or JSON event) for a deploy, or for one the store refused.
    fn tell(&self, report: Result<Option<Report>, String>, build: Duration, cause: Cause) {
        match report {
            Ok(report) => lines::change(
                &self.ui,
                self.watch.mode,
                report.as_ref(),
                build,
                cause,
                None,
            ),
            Err(why) => lines::store_failed(self.watch.mode, &why),
        }
    }

    async fn node_event(&mut self, event: NodeEvent) {
        timings::clear();
        match event {
            NodeEvent::Down { node, reason } => {
                if !self.session.is_down(&node) {
                    return;
                }
                self.session.forget(&node);
                self.synced.remove(&node);
                lines::node_down(self.watch.mode, &node, &reason);
                if let Ok(name) = node.parse() {
                    nodes::reconnect(self.session.clone(), name, self.events.clone());
                }
                // A change it failed was undone everywhere: the others
                // take it again now, not at the next save.
                let report = self.deploy(self.session.remotes()).await;
                self.tell(report, Duration::ZERO, Cause::CatchUp);
            }
            NodeEvent::Up(remote) => {
                lines::node_up(&self.ui, self.watch.mode, &remote.node());
                nodes::follow(remote.clone(), self.events.clone());
                let report = self.deploy(vec![remote]).await;
                self.tell(report, Duration::ZERO, Cause::CatchUp);
            }
        }
    }

    /// Sends each node what it lacks of the last good build; `None` when
    /// every node already runs all of it; an error, and no node changed,
    /// when the snapshot store cannot be locked.
    async fn deploy(&mut self, remotes: Vec<Remote>) -> Result<Option<Report>, String> {
        let each: Vec<(Remote, Vec<Module>)> = remotes
            .into_iter()
            .map(|r| {
                let synced = self.synced.get(&r.node());
                let lacking = self
                    .modules
                    .iter()
                    .filter(|m| synced.and_then(|s| s.get(&m.name)) != Some(&m.md5))
                    .cloned()
                    .collect();
                (r, lacking)
            })
            .filter(|(_, lacking): &(Remote, Vec<Module>)| !lacking.is_empty())
            .collect();
        if each.is_empty() {
            return Ok(None);
        }
        let store = self.session.store().clone();
        let _lock = self.lock_store(&store).await?;
        let ui = Ui::warnings_only(self.watch.mode);
        let (report, observing) = deploy::deploy_each(&self.session, each, &self.opts, &ui).await;
        self.absorb(&report);
        self.died += report.nodes.iter().map(|n| n.died.len()).sum::<usize>();
        self.observe(&report, observing);
        Ok(Some(report))
    }

    /// Takes the snapshot store's lock (waiting, and saying so, while a
    /// `deploy` in another terminal holds it) off the runtime's threads.
    async fn lock_store(&self, store: &Store) -> Result<StoreLock, String> {
        let mode = self.watch.mode;
        let locking = store.clone();
        let taken = tokio::task::spawn_blocking(move || {
            let lock = locking.lock(|| {
                Ui::warnings_only(mode)
                    .warn("waiting for another hotswap-node run in this project to finish")
            })?;
            locking.reload_index();
            Ok::<_, crate::store::SnapshotError>(lock)
        })
        .await;
        match taken {
            Ok(Ok(lock)) => Ok(lock),
            Ok(Err(e)) => Err(format!("cannot lock the snapshot store: {e}")),
            Err(e) => Err(format!("cannot lock the snapshot store: {e}")),
        }
    }

    /// Remembers what each node that took the change now runs.
    fn absorb(&mut self, report: &Report) {
        let md5s: HashMap<&str, Md5> = self
            .modules
            .iter()
            .map(|m| (m.name.as_str(), m.md5))
            .collect();
        for node in report.nodes.iter().filter(|n| n.ok) {
            let synced = self.synced.entry(node.node.clone()).or_default();
            for m in node.loaded.iter().chain(&node.unchanged) {
                if let Some(md5) = md5s.get(m.as_str()) {
                    synced.insert(m.clone(), *md5);
                }
            }
        }
    }
}
