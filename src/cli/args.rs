//! The command line's arguments (clap) and their help texts.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    the build or the deploy failed on some node, a `code_change` included
       (nodes changed were rolled back); or the nodes changed but the snapshot
       store could not record it, or the --after call failed (the new code
       stays); or standard output could not be written
  2    usage, configuration or input error, or another run on this machine
       runs under this tool's name (nothing was sent)
  3    could not connect to or authenticate with a node (TLS included), or
       another run holds its lock (nothing was changed)
  4    --verify found a node running other code (the change was rolled back)
  5    refused: processes run old code or keep funs it made, or (rollback) a
       node no longer runs what was deployed, pass --force to purge or
       overwrite all the same; or a process to migrate was busy in a long
       call (nothing was changed)
  6    a rollback or undo left modules not restored (named): nodes may run
       mixed versions; or a process whose code_change did not come back
       (named) may be left in its new state's shape
  7    every node runs the new code, but processes the change migrated or
       passed over died right after it (named; the change stays); watch
       exits 7 when any died after one of its changes
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
    /// Print the completion script for SHELL on stdout (e.g. `hotswap-node
    /// completions bash > /etc/bash_completion.d/hotswap-node`).
    Completions(CompletionsArgs),
    /// Print the manual page (roff) on stdout: `hotswap-node man | man -l -`;
    /// with a command, that command's (`hotswap-node man deploy`).
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The command whose page to print; none: the tool's own.
    #[arg(value_name = "COMMAND", value_parser = ["deploy", "status", "snapshots", "watch", "completions", "man"])]
    pub command: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
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
pub struct TargetArgs {
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
    /// Reach the targets through this node only (`name@host`): the tool
    /// connects to it alone, sends each module once, and the cluster's own
    /// connections carry it to every target (`--node`s, or `--cluster`: the
    /// node's whole cluster, itself included).
    #[arg(long, value_name = "NODE")]
    pub via: Option<String>,
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
    pub target: TargetArgs,
    /// Undo, per node, the newest deploy still applied there, instead of deploying.
    #[arg(long, conflicts_with_all = ["all", "paths", "no_build", "cluster"])]
    pub rollback: bool,
    /// Send every module, even those the node already runs.
    #[arg(long)]
    pub all: bool,
    /// Purge old code of a module being replaced all the same: processes
    /// running it are killed, those keeping its funs die when they call
    /// them (named); with --rollback, also roll back modules changed since
    /// the deploy.
    #[arg(long)]
    pub force: bool,
    /// Show what would be loaded; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Skip the build step.
    #[arg(long)]
    pub no_build: bool,
    /// Also deploy to every node the targets are connected to (with
    /// `--via`: to the gateway and every node it is connected to).
    #[arg(long)]
    pub cluster: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// .beam files to follow instead of the project's build output.
    #[arg(value_name = "PATHS")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Kill processes still running old code of a module being replaced.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Do not build: follow the build output (or --ebin folders) instead.
    #[arg(long)]
    pub no_build: bool,
    /// How long files must be quiet before a change counts, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5)]
    pub settle: u64,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// How each change is loaded: the flags `deploy` and `watch` share.
#[derive(Debug, Args, Clone)]
pub struct LoadArgs {
    /// After loading, check every node runs exactly what was sent; undo if not.
    #[arg(long)]
    pub verify: bool,
    /// Load without calling `code_change` for the processes of changed
    /// modules (they keep their state as it is).
    #[arg(long)]
    pub no_code_change: bool,
    /// Migrate processes whose `sys` loop is not OTP's own too (a fork of
    /// gen_server, a hand-written loop); by default they load without
    /// migrating, and are named.
    #[arg(long)]
    pub migrate_custom_loops: bool,
    /// How long to watch the processes a change migrated or passed over for
    /// dying, after it, in milliseconds (0: not at all; default 1000).
    #[arg(long, value_name = "MS")]
    pub observe: Option<u64>,
    /// Call this function on each node once its change runs, with the
    /// changed modules: `Module.function` (Elixir) or `module:function`.
    #[arg(long, value_name = "MOD:FUN")]
    pub after: Option<String>,
}

/// What a run prints: the flags `deploy` and `watch` share.
#[derive(Debug, Args, Clone, Copy)]
pub struct OutputArgs {
    /// Print JSON on stdout (`deploy`: one document; `watch`: one object
    /// per event); progress goes to stderr.
    #[arg(long)]
    pub json: bool,
    /// Print nothing but errors.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log what happens on the wire (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Say where the wall time went: each stage (settings, reading the
    /// beams, per node EPMD, TCP, TLS and handshake, each step of the
    /// plan, the store, goodbye) with its share and round trips, on stderr
    /// (`watch`: per change); with `--json`, a `timings` object.
    #[arg(long)]
    pub timings: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: TargetArgs,
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
