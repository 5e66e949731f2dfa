//! What the look before a purge and the look-up of processes to migrate
//! cost on a node of 100,000 processes, 1,000 of them gen_servers of the
//! changed module (`node/purge.erl`, `node/migrate.erl`). Each figure is
//! the deploy's time in flight (`running_ms`: connected, until the node
//! runs the new code), median of the runs, against a baseline measured in
//! the same run, interleaved, on a node of its own with the same
//! processes:
//!
//! - the fun check: `hs_holder` (its code makes funs) deployed while its
//!   old code is still loaded, so that the load needs the slot and the
//!   node looks at every process first; baseline: the same deploy after
//!   an operator node purged the old code by hand (no look);
//! - the look-up: `hs_counter` deployed with migration (`--observe 0`: the
//!   watch after the change is not in flight's cost) to 1,000 processes;
//!   baseline: `--no-code-change`, which neither looks them up nor
//!   migrates them (so the figure includes migrating the 1,000);
//! - a module nobody runs whose old code made no funs (`hs_greet`): no
//!   look runs; against the same deploy on a node of 100 processes.
//!
//! Run by scripts/bench.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::{ErlNode, NodeSpec};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{hotswap_json, median, ms, runs};

const IDLE: usize = 100_000;
const SERVERS: usize = 1_000;

fn main() {
    // `cargo test --all-targets` runs benches without `--bench`: only check they build.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let work = tempfile::tempdir().expect("tmp");
    let build = |module: &str, v: u32| -> PathBuf {
        let out = work.path().join(format!("{module}_v{v}"));
        let source = common::fixture(&format!("deploy/{module}.erl"));
        common::erlc(&[source], &out, &[&format!("-DVSN={v}")]);
        out
    };
    let holder: Vec<PathBuf> = (1..=2).map(|v| build("hs_holder", v)).collect();
    let counter: Vec<PathBuf> = (1..=2).map(|v| build("hs_counter", v)).collect();
    let greet: Vec<PathBuf> = (1..=2).map(|v| build("hs_greet", v)).collect();
    println!(
        "\nOn a node of {IDLE} idle processes and {SERVERS} gen_servers of the changed module; time in flight (median):\n\n| what | with it | baseline | cost |\n|---|---|---|---|"
    );
    println!("{}", fun_check(&holder, &counter[0]));
    println!("{}", look_up(&counter));
    println!("{}", no_look(&greet, &counter[0]));
}

/// A node running v1 of `modules` from `v1` (and hs_counter from
/// `counter`), with `idle` idle processes and `servers` hs_counter
/// gen_servers.
fn crowded(
    cookie: &str,
    v1: &Path,
    counter: &Path,
    modules: &[&str],
    idle: usize,
    servers: usize,
) -> ErlNode {
    let spec = NodeSpec::new("crowd")
        .cookie(cookie)
        .code_path(v1)
        .code_path(counter)
        .arg("+P")
        .arg("1048576");
    let mut node = ErlNode::start(spec);
    let loaded = node.eval(&format!(
        "[code:ensure_loaded(M) || M <- [{}]].",
        modules.join(",")
    ));
    assert!(!loaded.contains("error"), "{loaded}");
    let spawned = node.eval(&format!(
        "length([spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, {idle})])."
    ));
    assert_eq!(spawned, idle.to_string());
    if servers > 0 {
        let started = node.eval(&format!(
            "length([P || _ <- lists:seq(1, {servers}), {{ok, P}} <- [gen_server:start(hs_counter, [], [])]])."
        ));
        assert_eq!(started, servers.to_string());
    }
    node
}

fn in_flight(json: &serde_json::Value) -> Duration {
    Duration::from_secs_f64(json["running_ms"].as_f64().unwrap_or(f64::NAN) / 1e3)
}

fn line(what: &str, with: Vec<Duration>, base: Vec<Duration>) -> String {
    let (w, b) = (median(with), median(base));
    format!(
        "| {what} | {} | {} | {:+.1} ms |",
        ms(w),
        ms(b),
        (w.as_secs_f64() - b.as_secs_f64()) * 1e3
    )
}

/// The fun check: the old code of `hs_holder` is loaded at every deploy
/// on one node, purged by hand before every deploy on the other.
fn fun_check(builds: &[PathBuf], counter: &Path) -> String {
    let cookie = common::random_cookie();
    let mut looked = crowded(&cookie, &builds[0], counter, &["hs_holder"], IDLE, SERVERS);
    let mut purged = crowded(&cookie, &builds[0], counter, &["hs_holder"], IDLE, SERVERS);
    let (mut with, mut base) = (Vec::new(), Vec::new());
    for r in 0..runs() + 1 {
        let ebin = &builds[(r + 1) % 2];
        let (_, json) = hotswap_json(&[ebin], &[looked.name.clone()], &cookie, &[], &[]);
        let old = looked.eval("erlang:check_old_code(hs_holder).");
        assert_eq!(old, "true", "hs_holder's old code stays");
        purged.eval("code:purge(hs_holder).");
        let (_, plain) = hotswap_json(&[ebin], &[purged.name.clone()], &cookie, &[], &[]);
        // The first deploy has no old code to look at on either node.
        if r > 0 {
            with.push(in_flight(&json));
            base.push(in_flight(&plain));
        }
    }
    line(
        "fun check before the purge (hs_holder, old code loaded)",
        with,
        base,
    )
}

/// The look-up of the processes to migrate, and their migration.
fn look_up(builds: &[PathBuf]) -> String {
    let cookie = common::random_cookie();
    let mut migrating = crowded(
        &cookie,
        &builds[0],
        &builds[0],
        &["hs_counter"],
        IDLE,
        SERVERS,
    );
    let mut plain = crowded(
        &cookie,
        &builds[0],
        &builds[0],
        &["hs_counter"],
        IDLE,
        SERVERS,
    );
    let (mut with, mut base) = (Vec::new(), Vec::new());
    for r in 0..runs() {
        let ebin = &builds[(r + 1) % 2];
        let (_, json) = hotswap_json(
            &[ebin],
            &[migrating.name.clone()],
            &cookie,
            &["--observe", "0"],
            &[],
        );
        let migrated = json["nodes"][0]["migrated"].as_array().map_or(0, Vec::len);
        assert_eq!(migrated, SERVERS, "{json}");
        with.push(in_flight(&json));
        let (_, json) = hotswap_json(
            &[ebin],
            &[plain.name.clone()],
            &cookie,
            &["--no-code-change"],
            &[],
        );
        base.push(in_flight(&json));
        // As a user's deploys seconds apart find them: the replaced code,
        // which made no funs, purged after the run.
        for node in [&mut migrating, &mut plain] {
            assert_eq!(node.eval(&purged("hs_counter")), "gone");
        }
    }
    line(
        "look-up and migration of 1,000 gen_servers (hs_counter)",
        with,
        base,
    )
}

/// Waits, on the node, for `module`'s old code to be purged (ten seconds
/// at most): `gone`, or `still_old`.
fn purged(module: &str) -> String {
    format!(
        "(fun W(0) -> still_old; W(N) -> case erlang:check_old_code({module}) of \
         false -> gone; true -> timer:sleep(10), W(N - 1) end end)(1000)."
    )
}

/// A module nobody runs whose old code made no funs: no look.
fn no_look(builds: &[PathBuf], counter: &Path) -> String {
    let cookie = common::random_cookie();
    let mut crowd = crowded(&cookie, &builds[0], counter, &["hs_greet"], IDLE, 0);
    let mut small = crowded(&cookie, &builds[0], counter, &["hs_greet"], 100, 0);
    let (mut with, mut base) = (Vec::new(), Vec::new());
    for r in 0..runs() {
        let ebin = &builds[(r + 1) % 2];
        let (_, json) = hotswap_json(&[ebin], &[crowd.name.clone()], &cookie, &[], &[]);
        with.push(in_flight(&json));
        let (_, json) = hotswap_json(&[ebin], &[small.name.clone()], &cookie, &[], &[]);
        base.push(in_flight(&json));
        // As a user's deploys seconds apart find it: the replaced code,
        // which made no funs, purged after the run.
        for node in [&mut crowd, &mut small] {
            assert_eq!(node.eval(&purged("hs_greet")), "gone");
        }
    }
    line(
        "hs_greet (no funs, nobody runs it): 100,000 processes against 100",
        with,
        base,
    )
}
