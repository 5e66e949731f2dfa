//! A deploy that is interrupted (Ctrl-C) or loses a node half-way must not
//! leave any node half-changed. The link runs through a delaying proxy so
//! the deploy is reliably in flight when the fault hits.

mod common;

use common::slowlink::SlowLink;
use common::{erlc, fixture, unique, wait_for, ErlNode, NodeSpec};
use hotswap_node::beam::Module;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MODULES: [&str; 3] = ["hs_greet", "hs_calc", "hs_extra"];

fn build(root: &Path, vsn: u32) -> PathBuf {
    let out = root.join(format!("v{vsn}"));
    let sources: Vec<PathBuf> = MODULES
        .iter()
        .map(|m| fixture(&format!("deploy/{m}.erl")))
        .collect();
    erlc(&sources, &out, &[&format!("-DVSN={vsn}")]);
    out
}

fn md5(ebin: &Path, module: &str) -> String {
    Module::read(&ebin.join(format!("{module}.beam")))
        .expect("module")
        .md5
        .to_hex()
}

fn start(tag: &str, cookie: &str, v1: &Path) -> ErlNode {
    let mut n = ErlNode::start(NodeSpec::new(tag).cookie(cookie).code_path(v1));
    n.eval("[code:ensure_loaded(M) || M <- [hs_greet, hs_calc]].");
    n
}

/// Starts a deploy of `v2` over a link with `delay` each way.
fn spawn_deploy(
    root: &Path,
    link: &SlowLink,
    nodes: &[&ErlNode],
    v2: &Path,
) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hotswap-node"));
    cmd.args([
        "deploy",
        "--json",
        "--no-build",
        "--verify",
        // Says when the apply step is about to leave (see below).
        "-v",
        "--name",
        &unique("hs"),
        "--cookie",
        &nodes[0].cookie,
        "--ebin",
    ])
    .arg(v2)
    .current_dir(root)
    .env("HOME", root)
    .env("ERL_EPMD_PORT", link.epmd_port.to_string())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for n in nodes {
        cmd.args(["--node", &n.name]);
    }
    cmd.spawn().expect("binary runs")
}

fn assert_v1(node: &mut ErlNode, v1: &Path) {
    assert_eq!(
        node.loaded_md5("hs_greet"),
        md5(v1, "hs_greet"),
        "{}",
        node.name
    );
    assert_eq!(
        node.loaded_md5("hs_calc"),
        md5(v1, "hs_calc"),
        "{}",
        node.name
    );
    assert_eq!(node.loaded_md5("hs_extra"), "none", "{}", node.name);
}

/// Two nodes on v1 and a deploy of v2 to both, under way over a link with
/// 150 ms each way (the whole deploy takes a few seconds).
struct InFlight {
    _root: tempfile::TempDir,
    v1: PathBuf,
    a: ErlNode,
    b: ErlNode,
    _link: SlowLink,
    child: std::process::Child,
}

/// With `believed`, after deploys of v2 and back to v1 over the same link,
/// so that the store believes it knows what the nodes run and holds its
/// binaries: the deploy under way flies (`src/deploy/flight.rs`).
fn deploy_in_flight(tag: &str, believed: bool) -> InFlight {
    let root = tempfile::tempdir().expect("tmp");
    let (v1, v2) = (build(root.path(), 1), build(root.path(), 2));
    let cookie = common::random_cookie();
    let a = start(&format!("{tag}_a"), &cookie, &v1);
    let b = start(&format!("{tag}_b"), &cookie, &v1);
    let link = SlowLink::start(
        hotswap_node::dist::epmd::epmd_port(),
        Duration::from_millis(150),
    );
    let earlier: &[&PathBuf] = if believed { &[&v2, &v1] } else { &[] };
    for v in earlier {
        let done = spawn_deploy(root.path(), &link, &[&a, &b], v);
        let done = done.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert!(done.status.success(), "{stderr}");
    }
    let child = spawn_deploy(root.path(), &link, &[&a, &b], &v2);
    InFlight {
        _root: root,
        v1,
        a,
        b,
        _link: link,
        child,
    }
}

/// What an interrupted deploy left: its exit code, its report and its
/// stderr, and how long it took to stop once interrupted.
struct Interrupted {
    code: Option<i32>,
    json: serde_json::Value,
    stderr: String,
    stopping: Duration,
}

/// Sends `child` SIGINT once it has written its snapshot.
fn interrupt_after_snapshot(mut child: std::process::Child) -> Interrupted {
    let stderr = wait_for(&mut child, "step snapshot took", 1);
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait");
    let stopping = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = stderr.join().expect("stderr");
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("one JSON document ({e}): {stdout}\n{stderr}"));
    Interrupted {
        code: out.status.code(),
        json,
        stderr,
        stopping,
    }
}

#[test]
fn ctrl_c_mid_deploy_undoes_what_this_run_changed() {
    // The temp dir and the proxy live as long as `f`: until the end.
    let mut f = deploy_in_flight("intr", false);
    // Interrupt as the apply step leaves: the nodes load while the answers
    // cross the link, and the run must undo them.
    let run = interrupt_after_snapshot(f.child);
    assert!(
        run.stopping < Duration::from_secs(10),
        "took {:?} to stop",
        run.stopping
    );
    let (json, stderr) = (&run.json, &run.stderr);
    assert_eq!(run.code, Some(130), "{json}\n{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(json["ok"], false);
    for n in json["nodes"].as_array().expect("nodes") {
        assert_eq!(n["rolled_back"], true, "{n}");
    }
    assert_v1(&mut f.a, &f.v1);
    assert_v1(&mut f.b, &f.v1);
}

#[test]
fn ctrl_c_before_every_node_has_prepared_changes_nothing() {
    let mut f = deploy_in_flight("intr_fly", true);
    // The snapshot is written as the flights leave; each node tells it has
    // prepared a round trip later. Interrupted in between, the run must
    // tell them to abort rather than load and undo.
    let run = interrupt_after_snapshot(f.child);
    let (json, stderr) = (&run.json, &run.stderr);
    assert_eq!(run.code, Some(130), "{json}\n{stderr}");
    for n in json["nodes"].as_array().expect("nodes") {
        assert_eq!(n["loaded"], serde_json::json!([]), "{n}\n{stderr}");
        assert_eq!(n["rolled_back"], false, "nothing to undo: {n}\n{stderr}");
    }
    assert_v1(&mut f.a, &f.v1);
    assert_v1(&mut f.b, &f.v1);
}

#[test]
fn a_node_lost_mid_deploy_rolls_the_others_back() {
    // The temp dir and the proxy live as long as `f`: until the end.
    let mut f = deploy_in_flight("lost", false);
    let stderr = wait_for(&mut f.child, "Connected to", 2);
    f.b.kill();
    let out = f.child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        stderr.join().expect("stderr")
    );
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    let nodes = json["nodes"].as_array().expect("nodes");
    let lost = nodes
        .iter()
        .find(|n| n["node"] == f.b.name.as_str())
        .expect("b reported");
    assert_eq!(lost["ok"], false);
    assert!(lost["failed"].to_string().contains("connection"), "{lost}");
    assert_v1(&mut f.a, &f.v1);
}
