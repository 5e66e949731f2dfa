//! A deploy that is interrupted (Ctrl-C) or loses a node half-way must not
//! leave any node half-changed. Each fault lands at a named point of the
//! run (`src/fault.rs`): the tool holds there, the test interrupts it or
//! kills a node, then lets it go on.

mod common;

use common::fault::FaultPoints;
use common::{erlc, fixture, unique, ErlNode, NodeSpec};
use hotswap_node::beam::Module;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

/// Starts a deploy of `ebin` to `nodes`, holding at `hold`.
fn spawn_deploy(
    root: &Path,
    nodes: &[&ErlNode],
    ebin: &Path,
    faults: &FaultPoints,
    hold: &[&str],
) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hotswap-node"));
    cmd.args([
        "deploy",
        "--json",
        "--no-build",
        "--verify",
        "-v",
        "--name",
        &unique("hs"),
        "--cookie",
        &nodes[0].cookie,
        "--ebin",
    ])
    .arg(ebin)
    .current_dir(root)
    .env("HOME", root)
    .envs(faults.env(hold))
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for n in nodes {
        cmd.args(["--node", &n.name]);
    }
    cmd.spawn().expect("binary runs")
}

fn assert_v1(node: &mut ErlNode, v1: &Path) {
    for m in ["hs_greet", "hs_calc"] {
        assert_eq!(node.loaded_md5(m), md5(v1, m), "{} {m}", node.name);
    }
    assert_eq!(node.loaded_md5("hs_extra"), "none", "{}", node.name);
}

/// Two nodes on v1 and a deploy of v2 to both, held at `hold`.
struct InFlight {
    _root: tempfile::TempDir,
    v1: PathBuf,
    a: ErlNode,
    b: ErlNode,
    faults: FaultPoints,
    child: std::process::Child,
}

/// With `believed`, after deploys of v2 and back to v1, so that the store
/// believes it knows what the nodes run and holds its binaries: the deploy
/// under way flies (`src/deploy/flight.rs`).
fn deploy_in_flight(tag: &str, believed: bool, hold: &str) -> InFlight {
    let root = tempfile::tempdir().expect("tmp");
    let (v1, v2) = (build(root.path(), 1), build(root.path(), 2));
    let cookie = common::random_cookie();
    let a = start(&format!("{tag}_a"), &cookie, &v1);
    let b = start(&format!("{tag}_b"), &cookie, &v1);
    let faults = FaultPoints::new();
    let earlier: &[&PathBuf] = if believed { &[&v2, &v1] } else { &[] };
    for v in earlier {
        let done = spawn_deploy(root.path(), &[&a, &b], v, &faults, &[]);
        let done = done.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert!(done.status.success(), "{stderr}");
    }
    let mut child = spawn_deploy(root.path(), &[&a, &b], &v2, &faults, &[hold]);
    let held = faults.reached(hold, &mut || matches!(child.try_wait(), Ok(None)));
    if !held {
        let out = child.wait_with_output().expect("wait");
        panic!(
            "the tool exited before fault point `{hold}`:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    InFlight {
        _root: root,
        v1,
        a,
        b,
        faults,
        child,
    }
}

/// What the run left: its exit code, its report and its stderr.
struct Ended {
    code: Option<i32>,
    json: serde_json::Value,
    stderr: String,
}

impl InFlight {
    /// Interrupts the held run (SIGINT), waits until it has taken the
    /// interrupt in, lets it go on from `hold` and waits for its end.
    fn interrupt(mut self, hold: &str) -> (Ended, Self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let stderr = common::wait_for(&mut self.child, "interrupted:", 1);
        self.faults.release(hold);
        self.end(stderr)
    }

    fn end(mut self, stderr: std::thread::JoinHandle<String>) -> (Ended, Self) {
        let child = std::mem::replace(&mut self.child, Command::new("true").spawn().expect("true"));
        let out = child.wait_with_output().expect("wait");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = stderr.join().expect("stderr");
        let json = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("one JSON document ({e}): {stdout}\n{stderr}"));
        let ended = Ended {
            code: out.status.code(),
            json,
            stderr,
        };
        (ended, self)
    }
}

#[test]
fn ctrl_c_mid_deploy_undoes_what_this_run_changed() {
    // Interrupted once the nodes have loaded: the run must undo them.
    let (run, mut f) = deploy_in_flight("intr", false, "applied").interrupt("applied");
    let (json, stderr) = (&run.json, &run.stderr);
    assert_eq!(run.code, Some(130), "{json}\n{stderr}");
    assert_eq!(json["ok"], false);
    for n in json["nodes"].as_array().expect("nodes") {
        assert_eq!(n["rolled_back"], true, "{n}");
    }
    assert_v1(&mut f.a, &f.v1);
    assert_v1(&mut f.b, &f.v1);
}

#[test]
fn ctrl_c_before_the_word_of_an_apply_step_changes_nothing() {
    // Every node has prepared; interrupted before the word, the run tells
    // them to abort rather than load and undo.
    let (run, mut f) =
        deploy_in_flight("intr_apply", false, "apply_prepared").interrupt("apply_prepared");
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
fn ctrl_c_before_the_word_to_a_flight_changes_nothing() {
    // Every node has prepared; interrupted before the word, the run must
    // tell them to abort rather than load and undo.
    let (run, mut f) =
        deploy_in_flight("intr_fly", true, "flight_prepared").interrupt("flight_prepared");
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
fn a_node_lost_before_the_word_has_the_other_undone_and_is_named() {
    // Both nodes have prepared their changes; node b dies before the word
    // to load. Node a loads on the word, and must be put back. Whether b
    // took the word before it went cannot be known: it is named as
    // possibly changed (exit 6).
    let mut f = deploy_in_flight("lost", false, "apply_prepared");
    f.b.kill();
    f.faults.release("apply_prepared");
    let stderr = common::drain_stderr(&mut f.child);
    let (run, mut f) = f.end(stderr);
    let (json, stderr) = (&run.json, &run.stderr);
    assert_eq!(run.code, Some(6), "{json}\n{stderr}");
    let nodes = json["nodes"].as_array().expect("nodes");
    let node = |n: &ErlNode| {
        nodes
            .iter()
            .find(|r| r["node"] == n.name.as_str())
            .cloned()
            .expect("reported")
    };
    let lost = node(&f.b);
    assert_eq!(lost["ok"], false);
    assert!(lost["failed"].to_string().contains("connection"), "{lost}");
    assert_eq!(
        lost["not_restored"],
        serde_json::json!(["hs_greet"]),
        "{json}"
    );
    assert_eq!(node(&f.a)["rolled_back"], true, "{json}");
    let changed = format!("Deployed hs_greet to {} (changed)", f.a.name);
    let undone = format!("Rolled back {}", f.a.name);
    assert!(
        stderr.contains(&changed) && stderr.contains(&undone),
        "{stderr}"
    );
    assert_v1(&mut f.a, &f.v1);
}

/// Ctrl-C while the build runs stops the build (its whole process group)
/// and the run: exit 130, nothing deployed. The build says when it has
/// started by writing a file: no timing is guessed.
#[test]
fn ctrl_c_during_the_build_stops_it_and_deploys_nothing() {
    let root = tempfile::tempdir().expect("tmp");
    let v1 = build(root.path(), 1);
    let cookie = common::random_cookie();
    let mut node = start("intr_build", &cookie, &v1);
    // A duration no other process sleeps, to find the build's processes.
    let marker = format!("sleep 60.{}", std::process::id());
    let started = root.path().join("started");
    std::fs::write(
        root.path().join("hotswap.toml"),
        format!(
            "build = \"touch started; {marker}; touch finished\"\n\
             nodes = [\"{}\"]\ncookie = \"{cookie}\"\n",
            node.name
        ),
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hotswap-node"))
        .args(["deploy", "--json", "--name", &unique("hs")])
        .current_dir(root.path())
        .env("HOME", root.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the build never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let stderr = common::drain_stderr(&mut child);
    let out = child.wait_with_output().expect("wait");
    let stderr = stderr.join().expect("stderr");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stderr.contains("interrupted during the build"), "{stderr}");
    assert!(!root.path().join("finished").exists());
    // The build's group was stopped, not left running.
    let left = (0..200).find(|_| {
        let gone = common::watcher::processes_named(&marker).is_empty();
        if !gone {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        gone
    });
    assert!(left.is_some(), "the build outlived the run");
    assert_v1(&mut node, &v1);
}

/// A second Ctrl-C quits at once, even while the run is held between
/// steps, and even when it comes while the first is being taken in (held
/// there by a fault point), and says what that may leave; the node
/// changes nothing once the tool is gone (its lock goes with the
/// connection).
#[test]
fn a_second_ctrl_c_quits_a_deploy_at_once() {
    let mut f = deploy_in_flight("intr_twice", false, "apply_before_word");
    let interrupt = |child: &std::process::Child| {
        let status = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    f.faults.arm("interrupted");
    interrupt(&f.child);
    let child = &mut f.child;
    assert!(
        f.faults
            .reached("interrupted", &mut || matches!(child.try_wait(), Ok(None))),
        "the tool exited at the first Ctrl-C"
    );
    let stderr = common::drain_stderr(&mut f.child);
    interrupt(&f.child);
    f.faults.release("interrupted");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let out = loop {
        if let Some(status) = f.child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = f.child.kill();
            let _ = f.child.wait();
            panic!(
                "the second Ctrl-C was lost:\n{}",
                stderr.join().expect("stderr")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let stderr = stderr.join().expect("stderr");
    assert_eq!(out.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted:"), "{stderr}");
    assert!(stderr.contains("quitting now"), "{stderr}");
    let gone = f.a.eval(
        "(fun W(0) -> held; W(N) -> case whereis(hotswap_deploy_lock) of \
         undefined -> gone; _ -> timer:sleep(50), W(N - 1) end end)(200).",
    );
    assert_eq!(gone, "gone");
    assert_v1(&mut f.a, &f.v1);
    assert_v1(&mut f.b, &f.v1);
}
