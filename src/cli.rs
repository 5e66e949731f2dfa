//! The command line: arguments (clap), and each command wired from
//! configuration through discovery to the deploy. Errors come back to
//! `main` as [`CliError`], which knows its exit code.

use crate::beam::discover::{self, DiscoverError, ProjectKind, Search};
use crate::beam::stale;
use crate::beam::{Module, ModuleError};
use crate::build_command::{self, BuildError};
use crate::config::{ConfigError, Flags, Settings, TlsFlags};
use crate::deploy::rollback::Plan;
use crate::deploy::session::OpenError;
use crate::deploy::{self, Options, Outcome, Report, RollbackError, Session};
use crate::dist::epmd::RegisterError;
use crate::dist::tls::TlsError;
use crate::dist::{Peer, PeerOptions, StartError, Tls};
use crate::interrupt::Interrupt;
use crate::output::{Mode, Ui};
use crate::store::{SnapshotError, Store, StoreLock};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    the build or the deploy failed on some node (nodes changed were rolled
       back), or the nodes changed but the snapshot store could not record it
  2    usage, configuration or input error (nothing was sent)
  3    could not connect to or authenticate with a node, or another run holds
       its lock (nothing was changed)
  4    --verify found a node running other code (the change was rolled back)
  5    refused: processes run old code, or (rollback) a node no longer runs what
       was deployed; pass --force to kill them or overwrite (nothing was changed)
  6    a rollback or undo left modules not restored (named): nodes may run
       mixed versions
  130  interrupted by Ctrl-C or SIGTERM (nodes changed were rolled back; during
       the build, nothing was deployed); a second Ctrl-C quits at once";

/// Hot-swap changed BEAM modules onto running Erlang and Elixir nodes.
///
/// Runs as a hidden Erlang node `hotswap@HOST`, compares the local build with
/// what each node runs, and loads only the changed modules, atomically per
/// node and consistently across all of them.
#[derive(Debug, Parser)]
#[command(name = "hotswap-node", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build, then load the changed modules on every node (or roll back).
    #[command(after_help = EXIT_CODES)]
    Deploy(DeployArgs),
    /// Show per node which local modules are changed, new or unchanged.
    #[command(after_help = EXIT_CODES)]
    Status(StatusArgs),
    /// List the snapshots taken before deploys (newest last).
    Snapshots(SnapshotsArgs),
    /// Rebuild on each save and deploy what changed, over held connections.
    #[command(after_help = WATCH_HELP)]
    Watch(WatchArgs),
}

const WATCH_HELP: &str = "\
Watches the project's sources (Mix: lib/, config/, mix.exs, umbrella apps/;
rebar3: src/, include/, rebar.config), or with --no-build, --ebin or .beam
paths the compiled modules themselves. A Mix project is rebuilt by a warm
build node; other projects by their build command. Each change is deployed
as `deploy` would (a snapshot each: `deploy --rollback` undoes the last).
Nodes that go away are reconnected and caught up. Ctrl-C stops (exit 0).

Exit codes:
  0    stopped by Ctrl-C (or SIGTERM)
  2    usage, configuration or input error
  3    this tool's node could not start";

#[derive(Debug, Args, Clone)]
pub struct Target {
    /// A node to deploy to, `name@host`; repeat for more. Overrides the configured list.
    #[arg(long = "node", value_name = "NODE")]
    pub nodes: Vec<String>,
    /// The distribution cookie (visible to other local users in `ps`; prefer HOTSWAP_COOKIE).
    #[arg(long, value_name = "COOKIE")]
    pub cookie: Option<String>,
    /// Configuration file instead of ./hotswap.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A folder of .beam files to deploy; repeat for more. Replaces the project's build output.
    #[arg(long = "ebin", value_name = "DIR")]
    pub ebin: Vec<PathBuf>,
    /// This tool's node name, `NAME` or `NAME@host` (default `hotswap`; `watch`: `hotswap_watch`).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Seconds to wait for a node's answer.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Connect to the nodes' distribution port directly, without EPMD (nodes
    /// started with `-erl_epmd_port N -start_epmd false`, or ERL_DIST_PORT).
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub dist_port: Option<u16>,
    /// TLS distribution (`-proto_dist inet_tls`): the PEM file of the CAs
    /// that sign the nodes' certificates.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// TLS: this tool's certificate (PEM), for nodes that require one.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// TLS: the private key of `--tls-cert` (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// TLS: verify the node's certificate chain but not that it names the
    /// node's host.
    #[arg(long)]
    pub tls_skip_host_check: bool,
    /// TLS: the nodes' own `-ssl_dist_optfile`, for the CA, certificate and
    /// key (client side first) the flags above do not give.
    #[arg(long, value_name = "FILE")]
    pub tls_optfile: Option<PathBuf>,
    /// The project folder (default: the current one).
    #[arg(short = 'C', long, value_name = "DIR")]
    pub project: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// .beam files to deploy instead of the project's build output.
    #[arg(value_name = "PATHS")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub target: Target,
    /// After loading, check every node runs exactly what was sent; roll back if not.
    #[arg(long)]
    pub verify: bool,
    /// Undo, per node, the newest deploy still applied there, instead of deploying.
    #[arg(long, conflicts_with_all = ["all", "paths", "no_build", "cluster"])]
    pub rollback: bool,
    /// Send every module, even those the node already runs.
    #[arg(long)]
    pub all: bool,
    /// Kill processes still running old code of a module being replaced;
    /// with --rollback, also roll back modules changed since the deploy.
    #[arg(long)]
    pub force: bool,
    /// Show what would be loaded; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Load without calling `code_change` for the processes of changed
    /// modules (they keep their state as it is).
    #[arg(long)]
    pub no_code_change: bool,
    /// Call this function on each node once its change runs, with the
    /// changed modules: `Module.function` (Elixir) or `module:function`.
    #[arg(long, value_name = "MOD:FUN")]
    pub after: Option<String>,
    /// Skip the build step.
    #[arg(long)]
    pub no_build: bool,
    /// Also deploy to every node the targets are connected to.
    #[arg(long)]
    pub cluster: bool,
    /// Print one JSON document on stdout; progress goes to stderr.
    #[arg(long)]
    pub json: bool,
    /// Print nothing but errors.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log what happens on the wire (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// .beam files to follow instead of the project's build output.
    #[arg(value_name = "PATHS")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub target: Target,
    /// After each load, check every node runs exactly what was sent; undo if not.
    #[arg(long)]
    pub verify: bool,
    /// Kill processes still running old code of a module being replaced.
    #[arg(long)]
    pub force: bool,
    /// Load without calling `code_change` for the processes of changed
    /// modules (they keep their state as it is).
    #[arg(long)]
    pub no_code_change: bool,
    /// Call this function on each node once its change runs, with the
    /// changed modules: `Module.function` (Elixir) or `module:function`.
    #[arg(long, value_name = "MOD:FUN")]
    pub after: Option<String>,
    /// Do not build: follow the build output (or --ebin folders) instead.
    #[arg(long)]
    pub no_build: bool,
    /// How long files must be quiet before a change counts, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5)]
    pub settle: u64,
    /// Print one JSON object per event on stdout; progress goes to stderr.
    #[arg(long)]
    pub json: bool,
    /// Print nothing but errors.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log what happens on the wire (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: Target,
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// The project folder (default: the current one).
    #[arg(short = 'C', long, value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// Configuration file instead of ./hotswap.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Remove all but the newest `keep_snapshots` (default 100) snapshots per
    /// node, and the stored binaries no snapshot needs.
    #[arg(long)]
    pub prune: bool,
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Everything that stops a command before or besides a deploy report.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\nerror: "))]
    Modules(Vec<ModuleError>),
    #[error("no modules to deploy in {0}")]
    NoModules(String),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("the build (`{command}`) failed: {detail}; nothing was deployed")]
    Build { command: String, detail: String },
    #[error(transparent)]
    Rollback(Box<RollbackError>),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("{0}")]
    Nodes(String),
    #[error("cannot find the current folder: {0}")]
    Cwd(std::io::Error),
    #[error("cannot watch `{}`: {detail}", path.display())]
    Watch { path: PathBuf, detail: String },
    #[error("interrupted during the build; nothing was deployed")]
    Interrupted,
    #[error("{0}")]
    Hook(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Config(_)
            | CliError::Discover(_)
            | CliError::Modules(_)
            | CliError::NoModules(_)
            | CliError::Cwd(_)
            | CliError::Hook(_)
            | CliError::Tls(_)
            | CliError::Watch { .. } => 2,
            CliError::Start(StartError::Register(RegisterError::NameTaken { .. }))
            | CliError::Start(StartError::Name(_)) => 2,
            CliError::Start(_) | CliError::Nodes(_) => 3,
            CliError::Rollback(e) if matches!(**e, RollbackError::NoSnapshot { .. }) => 2,
            CliError::Build { .. } | CliError::Rollback(_) | CliError::Snapshot(_) => 1,
            CliError::Interrupted => 130,
        }
    }
}

impl From<RollbackError> for CliError {
    fn from(e: RollbackError) -> Self {
        CliError::Rollback(Box::new(e))
    }
}

/// Runs a parsed command line; returns the exit code of a completed run.
pub async fn run(cli: Cli, json_requested: &mut bool) -> Result<i32, CliError> {
    match cli.command {
        Command::Deploy(args) => {
            *json_requested = args.json;
            deploy_command(args).await
        }
        Command::Status(args) => {
            *json_requested = args.json;
            status_command(args).await
        }
        Command::Snapshots(args) => {
            *json_requested = args.json;
            snapshots_command(args)
        }
        Command::Watch(args) => {
            *json_requested = args.json;
            crate::watch::command::watch_command(args).await
        }
    }
}

pub(crate) fn settings(target: &Target) -> Result<Settings, CliError> {
    let project = match &target.project {
        Some(p) => p.clone(),
        None => std::env::current_dir().map_err(CliError::Cwd)?,
    };
    let flags = Flags {
        config: target.config.clone(),
        nodes: target.nodes.clone(),
        cookie: target.cookie.clone(),
        ebin: target.ebin.clone(),
        timeout: target.timeout,
        name: target.name.clone(),
        dist_port: target.dist_port,
        tls: TlsFlags {
            ca: target.tls_ca.clone(),
            cert: target.tls_cert.clone(),
            key: target.tls_key.clone(),
            skip_host_check: target.tls_skip_host_check,
            optfile: target.tls_optfile.clone(),
        },
    };
    let settings = Settings::load(&project, &flags)?;
    if !settings.cookie_source.is_empty() {
        tracing::debug!("the cookie comes from {}", settings.cookie_source);
    }
    Ok(settings)
}

/// The after-deploy call: `--after`, else `after_deploy` in the
/// configuration.
pub(crate) fn after_hook(
    settings: &Settings,
    flag: &Option<String>,
) -> Result<Option<deploy::after::Hook>, CliError> {
    flag.as_ref()
        .or(settings.after_deploy.as_ref())
        .map(|text| text.parse().map_err(CliError::Hook))
        .transpose()
}

pub(crate) async fn start_peer(settings: &Settings) -> Result<Peer, CliError> {
    Ok(Peer::launch(peer_options(settings)?, &settings.nodes).await?)
}

/// How the peer starts: our name, the cookie, how long a connection may
/// take.
pub(crate) fn peer_options(settings: &Settings) -> Result<PeerOptions, CliError> {
    let mut options = PeerOptions::new(settings.cookie()?.clone());
    options.name = settings.name.clone();
    options.connect_timeout = settings.timeout.min(std::time::Duration::from_secs(10));
    options.dist_port = settings.dist_port;
    options.tls = settings.tls.as_ref().map(Tls::load).transpose()?;
    Ok(options)
}

/// Finds and validates every module; any invalid file refuses the whole run.
pub(crate) fn local_modules(
    settings: &Settings,
    paths: &[PathBuf],
) -> Result<(Vec<Module>, Vec<String>), CliError> {
    let mut search = Search::from_env(settings.project.clone());
    search.app_name = settings.app_name.clone();
    search.ebin = settings.ebin.clone();
    search.files = paths.to_vec();
    let found = discover::find(&search)?;
    let modules = discover::read_modules(&found.files).map_err(CliError::Modules)?;
    if modules.is_empty() {
        return Err(CliError::NoModules(settings.project.display().to_string()));
    }
    Ok((modules, found.apps))
}

async fn deploy_command(args: DeployArgs) -> Result<i32, CliError> {
    let mode = Mode::from_flags(args.json, args.quiet);
    let ui = Ui::new(mode);
    let settings = settings(&args.target)?;
    for w in &settings.warnings {
        ui.warn(w);
    }
    settings.require_nodes()?;
    settings.cookie()?;
    let store = Store::new(settings.snapshot_dir.clone());
    let interrupt = Interrupt::listen(
        "interrupted: finishing the step in flight, then undoing this run's changes",
    );
    let options = Options {
        verify: args.verify,
        all: args.all,
        force: args.force,
        dry_run: args.dry_run,
        cluster: args.cluster,
        code_change: settings.code_change && !args.no_code_change,
        after: after_hook(&settings, &args.after)?,
        timeout: settings.timeout,
        keep: settings.keep_snapshots,
        interrupted: interrupt.flag(),
    };
    if args.rollback {
        return rollback_command(&settings, store, &options, &ui, mode).await;
    }
    if !args.no_build && args.paths.is_empty() && settings.ebin.is_empty() {
        if let Some(command) = &settings.build {
            date_back_for_rebar3(&settings);
            build(command, &settings, mode, &interrupt).await?;
        }
    }
    let _lock = lock_store(&store, &ui)?;
    let (modules, session) =
        read_while_connecting(&settings, &args.paths, store, &options, &ui).await?;
    let session = match session {
        Ok(session) => session,
        Err(report) => return Ok(print_report(&report, mode)),
    };
    let report = deploy::deploy(&session, &modules, &options, &ui).await;
    let code = print_report(&report, mode);
    session.goodbye(GOODBYE_LIMIT.min(settings.timeout)).await;
    Ok(code)
}

/// How long a run that is done waits for its nodes to have had its last
/// words (the release of their locks) before it exits.
const GOODBYE_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads and hashes the modules while the nodes are reached (three round
/// trips on a device's link). A bad file is the error reported, whichever
/// finishes first, and stops the run before anything is asked of a node.
async fn read_while_connecting(
    settings: &Settings,
    paths: &[PathBuf],
    store: Store,
    options: &Options,
    ui: &Ui,
) -> Result<(Vec<Module>, Result<Session, Report>), CliError> {
    let reading = {
        let (settings, paths) = (settings.clone(), paths.to_vec());
        tokio::task::spawn_blocking(move || local_modules(&settings, &paths))
    };
    let read = async {
        match reading.await {
            Ok(read) => read.map(|(modules, _apps)| modules),
            // As if it had been read here: its panic is this thread's.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    };
    let connecting = open_session(settings, store, &settings.nodes, options, ui);
    tokio::pin!(read, connecting);
    tokio::select! {
        read = &mut read => {
            let modules = read?;
            Ok((modules, connecting.await?))
        }
        session = &mut connecting => Ok((read.await?, session?)),
    }
}

async fn rollback_command(
    settings: &Settings,
    store: Store,
    options: &Options,
    ui: &Ui,
    mode: Mode,
) -> Result<i32, CliError> {
    let _lock = lock_store(&store, ui)?;
    let names: Vec<String> = settings.nodes.iter().map(ToString::to_string).collect();
    let plan = Plan::read(&store, &names)?;
    let with_work = plan.nodes();
    let mut nodes = Vec::new();
    for node in &settings.nodes {
        if with_work.contains(&node.to_string()) {
            nodes.push(node.clone());
        } else {
            ui.line(&format!("Nothing to roll back on {node}"));
        }
    }
    let session = match open_session(settings, store, &nodes, options, ui).await? {
        Ok(session) => session,
        Err(report) => return Ok(print_report(&report, mode)),
    };
    let report = deploy::rollback(&session, plan, options, ui).await?;
    let code = print_report(&report, mode);
    session.goodbye(GOODBYE_LIMIT.min(settings.timeout)).await;
    Ok(code)
}

/// Takes the snapshot store's lock for this run, waiting (and saying so)
/// while another run in this project holds it.
fn lock_store(store: &Store, ui: &Ui) -> Result<StoreLock, CliError> {
    Ok(store.lock(|| {
        ui.warn(&format!(
            "waiting for another hotswap-node run using `{}` to finish",
            store.root().display()
        ))
    })?)
}

/// Starts the peer and connects to `nodes`; a node that cannot be reached
/// gives the report to print instead.
async fn open_session(
    settings: &Settings,
    store: Store,
    nodes: &[crate::dist::NodeName],
    options: &Options,
    ui: &Ui,
) -> Result<Result<Session, Report>, CliError> {
    let peer = start_peer(settings).await?;
    match Session::connect(peer, store, nodes, options, ui).await {
        Ok(session) => Ok(Ok(session)),
        Err(OpenError::Start(e)) => Err(e.into()),
        Err(OpenError::Unreachable(reports)) => {
            Ok(Err(Report::new(reports, Outcome::Unreachable, None)))
        }
    }
}

fn print_report(report: &Report, mode: Mode) -> i32 {
    match mode {
        Mode::Json => println!("{}", report.to_json()),
        Mode::Text => println!("{}", report.summary()),
        Mode::Quiet => {
            if report.outcome != Outcome::Success {
                eprintln!("{}", report.summary());
            }
        }
    }
    report.outcome.exit_code()
}

/// rebar3 tells what to rebuild by file times, to the second: before it
/// builds, the beams of sources saved in their own second are dated back
/// ([`stale`]), so a save made just after the last build is not skipped.
/// Before the first build there is nothing to date back.
fn date_back_for_rebar3(settings: &Settings) {
    let mut search = Search::from_env(settings.project.clone());
    search.app_name = settings.app_name.clone();
    let Ok(found) = discover::find(&search) else {
        return;
    };
    if found.kind != ProjectKind::Rebar3 {
        return;
    }
    if let Ok(dirs) = discover::rebar_source_dirs(&settings.project) {
        stale::date_back_ambiguous(&stale::erl_sources(&dirs), &found.files);
    }
}

/// Runs the build command in the project, its output shown (on stderr in
/// JSON mode, so stdout stays one document); Ctrl-C stops it.
async fn build(
    command: &str,
    settings: &Settings,
    mode: Mode,
    interrupt: &Interrupt,
) -> Result<(), CliError> {
    if mode == Mode::Text {
        println!("Building with `{command}`");
    }
    let built = build_command::run(command, &settings.project, mode, interrupt.wait()).await;
    match built {
        Ok(()) => Ok(()),
        Err(BuildError::Failed(detail)) => Err(CliError::Build {
            command: command.to_owned(),
            detail,
        }),
        Err(BuildError::Interrupted) => Err(CliError::Interrupted),
    }
}

async fn status_command(args: StatusArgs) -> Result<i32, CliError> {
    let mode = if args.json { Mode::Json } else { Mode::Text };
    let ui = Ui::new(Mode::Quiet);
    let settings = settings(&args.target)?;
    for w in &settings.warnings {
        Ui::new(mode).warn(w);
    }
    settings.require_nodes()?;
    let (modules, apps) = local_modules(&settings, &[])?;
    let options = Options {
        timeout: settings.timeout,
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

fn snapshots_command(args: SnapshotsArgs) -> Result<i32, CliError> {
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
