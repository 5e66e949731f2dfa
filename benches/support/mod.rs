//! Shared by the benchmarks: timing helpers, module generation, and the
//! seed's way as a baseline. (The slow-link proxy lives in tests/common.)
#![allow(dead_code)]

pub mod floor;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

pub fn runs() -> usize {
    std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
}

/// Compiles `n` modules `hs_bench_<i>` from the fixture template at
/// version `vsn` into `dir`, in one `erl` run. `pad` adds that many
/// generated functions per module, for a realistic size.
pub fn generate(dir: &Path, n: usize, vsn: u32) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    let template = super::common::fixture("bench/hs_bench.erl");
    let script = format!(
        "lists:foreach(fun(I) ->
            Name = list_to_atom(\"hs_bench_\" ++ integer_to_list(I)),
            {{ok, Name, Bin}} = compile:file(\"{}\", [binary, {{d, 'MOD', Name}}, {{d, 'VSN', {vsn}}}]),
            ok = file:write_file(filename:join(\"{}\", atom_to_list(Name) ++ \".beam\"), Bin)
         end, lists:seq(1, {n})), halt().",
        template.display(),
        dir.display()
    );
    let status = Command::new("erl")
        .args(["-noshell", "-eval", &script])
        .status()
        .expect("erl");
    assert!(status.success(), "module generation failed");
    dir.to_owned()
}

/// The ebin folders of Debian's ejabberd, jose, luerl and cowlib, which
/// scripts/bench unpacks into target/bench-beams; `None` (and a word on
/// stderr) when they are not there.
pub fn real_world_ebins() -> Option<Vec<PathBuf>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-beams");
    let ebins: Vec<PathBuf> = [
        "usr/lib/erlang/lib/jose-1.11.5/ebin",
        "usr/lib/erlang/lib/luerl-1/ebin",
        "usr/lib/erlang/lib/cowlib-1.3.0/ebin",
        "usr/lib/x86_64-linux-gnu/ejabberd-23.01-1/ebin",
    ]
    .iter()
    .map(|d| root.join(d))
    .collect();
    if !ebins.iter().all(|d| d.is_dir()) {
        eprintln!(
            "real-world beams: not in {} (scripts/bench unpacks them); skipped",
            root.display()
        );
        return None;
    }
    Some(ebins)
}

pub fn beams(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "beam"))
        .collect();
    v.sort();
    v
}

/// Runs `hotswap-node deploy` and returns its wall time.
pub fn hotswap(
    ebin: &Path,
    nodes: &[String],
    cookie: &str,
    extra: &[&str],
    env: &[(&str, String)],
) -> Duration {
    hotswap_timed(&[ebin], nodes, cookie, extra, env).0
}

/// The binary measured: this checkout's release build, or another one
/// (`HOTSWAP_BENCH_BIN`, such as an earlier commit's, to compare a change
/// in the same conditions).
pub fn binary() -> PathBuf {
    match std::env::var_os("HOTSWAP_BENCH_BIN") {
        Some(bin) if !bin.is_empty() => PathBuf::from(bin),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/hotswap-node"),
    }
}

/// Runs `hotswap-node deploy --json` on `ebins`; returns its wall time and
/// its time in flight: once connected, until every node runs the new code
/// (`running_ms`).
pub fn hotswap_timed(
    ebins: &[&Path],
    nodes: &[String],
    cookie: &str,
    extra: &[&str],
    env: &[(&str, String)],
) -> (Duration, Duration) {
    let (took, json) = hotswap_json(ebins, nodes, cookie, extra, env);
    let in_flight = json["running_ms"].as_f64().unwrap_or(0.0);
    (took, Duration::from_secs_f64(in_flight / 1e3))
}

/// Runs `hotswap-node deploy --json` on `ebins`, which must succeed; its
/// wall time and its report.
pub fn hotswap_json(
    ebins: &[&Path],
    nodes: &[String],
    cookie: &str,
    extra: &[&str],
    env: &[(&str, String)],
) -> (Duration, serde_json::Value) {
    let ebin = ebins[0];
    let mut cmd = Command::new(binary());
    cmd.args([
        "deploy",
        "--json",
        "--no-build",
        "--cookie",
        cookie,
        "--name",
        &super::common::unique("hsb"),
    ]);
    for e in ebins {
        cmd.arg("--ebin").arg(e);
    }
    for n in nodes {
        cmd.args(["--node", n]);
    }
    // Run in the ebin's parent: the snapshot store goes there, not in the repo.
    let home = ebin.parent().unwrap_or(ebin);
    cmd.args(extra).env("HOME", home).current_dir(home);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = cmd.stderr(Stdio::piped()).output().expect("hotswap-node");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "hotswap-node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = serde_json::from_slice(&out.stdout).expect("one JSON document");
    (took, json)
}

/// An operator node connected to the targets: Erlang's best way to load
/// code on them, and the purge that gives every contender a node without
/// old code to start from.
pub struct Operator {
    node: super::common::ErlNode,
    targets: String,
}

impl Operator {
    pub fn start(nodes: &[String], cookie: &str) -> Operator {
        Operator::start_as(
            super::common::NodeSpec::new("operator").cookie(cookie),
            nodes,
        )
    }

    /// [`Operator::start`] as the node `spec` describes (a TLS node).
    pub fn start_as(spec: super::common::NodeSpec, nodes: &[String]) -> Operator {
        let mut node = super::common::ErlNode::start(spec.code_path(compiled_flight_ebin()));
        let targets = nodes
            .iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(",");
        let pongs = node.eval(&format!("[net_adm:ping(N) || N <- [{targets}]]."));
        assert!(
            !pongs.contains("pang"),
            "operator cannot reach the targets: {pongs}"
        );
        Operator { node, targets }
    }

    fn modules_expr(ebins: &[&Path]) -> String {
        let dirs: Vec<String> = ebins
            .iter()
            .map(|e| format!("\"{}\"", e.display()))
            .collect();
        format!(
            "Fs = lists:append([filelib:wildcard(D ++ \"/*.beam\") || D <- [{}]]), \
             Ms = [{{list_to_atom(filename:basename(F, \".beam\")), F, element(2, file:read_file(F))}} || F <- Fs]",
            dirs.join(",")
        )
    }

    /// Purges old code of the modules in `ebins` on every target (untimed).
    pub fn purge(&mut self, ebins: &[&Path]) {
        // Each in a fun of its own: the shell keeps bindings between calls.
        self.node.eval(&format!(
            "(fun() -> {}, erpc:multicall([{}], lists, foreach, [fun code:soft_purge/1, [M || {{M, _, _}} <- Ms]]), ok end)().",
            Self::modules_expr(ebins),
            self.targets
        ));
    }

    /// `erpc:multicall(Nodes, code, atomic_load, [Modules])` of the beams of
    /// `ebins`: that call's time (in flight), old code purged first, untimed.
    pub fn erlang_best(&mut self, ebins: &[&Path]) -> Duration {
        self.purge(ebins);
        let micros = self.node.eval(&format!(
            "(fun() -> {}, {{T, Rs}} = timer:tc(erpc, multicall, [[{}], code, atomic_load, [Ms]]), [{{ok, ok}} = R || R <- Rs], T end)().",
            Self::modules_expr(ebins),
            self.targets
        ));
        Duration::from_micros(
            micros
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("operator: {micros}")),
        )
    }
}

impl Operator {
    /// hotswap-node's flight of the beams of `ebin` to every target, as
    /// compiled code ([`compiled_flight_ebin`]): its time in flight.
    pub fn compiled_flight(&mut self, ebin: &Path) -> Duration {
        let micros = self.node.eval(&format!(
            "compiled_flight:time([{}], \"{}\").",
            self.targets,
            ebin.display()
        ));
        Duration::from_micros(
            micros
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("compiled flight: {micros}")),
        )
    }
}

/// A folder with benches/support/compiled_flight.erl compiled, and
/// hotswap_flight: the functions and main part of the tool's flight
/// (src/deploy/node/) as one module, its main part as `flight/1` of the
/// flight's bindings. Built once per process.
pub fn compiled_flight_ebin() -> &'static Path {
    static EBIN: OnceLock<PathBuf> = OnceLock::new();
    EBIN.get_or_init(|| {
        let dir = super::common::scratch("compiled_flight");
        let module = dir.join("hotswap_flight.erl");
        std::fs::write(&module, flight_module()).expect("hotswap_flight.erl");
        let driver =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/support/compiled_flight.erl");
        super::common::erlc(&[module, driver], &dir, &[]);
        dir
    })
}

fn flight_module() -> String {
    let node = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/deploy/node");
    let read = |f: &str| std::fs::read_to_string(node.join(f)).expect("node script");
    let main = read("flight_main.erl");
    let main: Vec<&str> = main.lines().filter(|l| !l.starts_with("%%")).collect();
    let functions: String = [
        "prelude.erl",
        "load.erl",
        "migrate.erl",
        "apply.erl",
        "inspect.erl",
        "purge.erl",
    ]
    .iter()
    .map(|f| read(f))
    .collect();
    format!(
        "-module(hotswap_flight).\n-export([flight/1]).\n\
         flight(#{{'Lock' := Lock, 'Mods' := Mods, 'Check' := Check, 'All' := All, \
         'Believed' := Believed, 'Load' := Load, 'Remove' := Remove, 'Force' := Force, \
         'Owner' := Owner, 'Go' := Go, 'Migrate' := Migrate}}) ->\n{}\n{functions}",
        main.join("\n")
    )
}

/// The seed's way: a visible Elixir node connects to every target and, for
/// two passes, loads every module on every node with one sequential
/// `:rpc.call(node, :code, :load_binary, …)` each. Returns wall time of the
/// whole run (as `mix upload.hotswap` after compiling) and of its load loop.
pub fn baseline(
    ebin: &Path,
    nodes: &[String],
    cookie: &str,
    env: &[(&str, String)],
) -> (Duration, Duration) {
    baseline_with(&[ebin], nodes, cookie, env)
}

/// [`baseline`] for the beams of several folders.
pub fn baseline_many(ebins: &[&Path], nodes: &[String], cookie: &str) -> (Duration, Duration) {
    baseline_with(ebins, nodes, cookie, &[])
}

fn baseline_with(
    ebins: &[&Path],
    nodes: &[String],
    cookie: &str,
    env: &[(&str, String)],
) -> (Duration, Duration) {
    let ebin = ebins
        .iter()
        .map(|e| e.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/baseline_upload.exs");
    let mut cmd = Command::new("elixir");
    cmd.args(["--sname", &super::common::unique("me"), "--cookie", cookie])
        .arg(script)
        .arg(ebin)
        .args(nodes);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = cmd.output().expect("elixir");
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "baseline failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let micros: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("load_us "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (took, Duration::from_micros(micros))
}
