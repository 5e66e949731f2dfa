//! A deploy to one node whose state the store believes it knows inspects
//! and applies in one round trip. A belief that no longer holds changes
//! nothing by itself: the deploy goes on as after an inspect, and its
//! snapshot is what the node really ran. Read back from the node.

mod common;

use common::fault::FaultPoints;
use common::project::{arg, load_by_hand, node_json, start_node, Project};
use common::ErlNode;
use std::path::PathBuf;

/// A project with `hs_greet` built at versions 1 to `versions`, and a node
/// running version 1.
fn greeter(tag: &str, versions: u32) -> (Project, Vec<PathBuf>, ErlNode) {
    let p = Project::new();
    let v: Vec<PathBuf> = (1..=versions).map(|i| p.build(i, &["hs_greet"])).collect();
    let node = start_node(tag, &v[0], &common::random_cookie(), &["hs_greet"]);
    (p, v, node)
}

const LANDED: &str = "landed (inspected and loaded in one request)";
const MISSED: &str = "runs other code than believed";

#[test]
fn a_deploy_after_a_deploy_lands_in_one_flight_and_rolls_back() {
    let (p, v, mut node) = greeter("fl_lands", 3);
    let (v2, v3) = (&v[1], &v[2]);
    let (_, stderr) = p.deploy_ok(&[&node], &["--ebin", &arg(v2), "-v"]);
    assert!(!stderr.contains(LANDED), "nothing was known yet:\n{stderr}");

    let (json, stderr) = p.deploy_ok(&[&node], &["--ebin", &arg(v3), "-v", "--verify"]);
    assert!(stderr.contains(LANDED), "{stderr}");
    assert_eq!(node_json(&json, &node)["loaded"][0], "hs_greet");
    assert_eq!(node.loaded_md5("hs_greet"), p.md5(v3, "hs_greet"));

    p.deploy_ok(&[&node], &["--rollback"]);
    assert_eq!(node.loaded_md5("hs_greet"), p.md5(v2, "hs_greet"));
}

/// Without `--no-code-change` the plan has no migrate instruction: a
/// flight that landed still goes on to what follows its apply step, once
/// (the reshape's driver flew a second time, found the node locked by the
/// first flight's holder, and failed after the timeout).
#[test]
fn a_flight_without_migration_lands_once() {
    let (p, v, mut node) = greeter("fl_nocc", 3);
    let (v2, v3) = (&v[1], &v[2]);
    p.deploy_ok(&[&node], &["--ebin", &arg(v2), "--no-code-change"]);
    let (json, stderr) = p.deploy_ok(
        &[&node],
        &[
            "--ebin",
            &arg(v3),
            "-v",
            "--no-code-change",
            "--verify",
            "--timeout",
            "20",
        ],
    );
    assert_eq!(stderr.matches("flight to").count(), 1, "{stderr}");
    assert!(stderr.contains(LANDED), "{stderr}");
    assert_eq!(node_json(&json, &node)["loaded"][0], "hs_greet");
    assert_eq!(node.loaded_md5("hs_greet"), p.md5(v3, "hs_greet"));
}

#[test]
fn a_wrong_belief_changes_nothing_and_the_snapshot_is_what_the_node_ran() {
    let (p, v, mut node) = greeter("fl_wrong", 4);
    let (v2, v3, v4) = (&v[1], &v[2], &v[3]);
    // The store comes to hold v3, and to believe the node runs v2.
    for v in [&v2, &v3, &v2] {
        p.deploy_ok(&[&node], &["--ebin", &arg(v)]);
    }

    // Behind this tool's back, someone loads v3 on the node.
    load_by_hand(&mut node, v3);

    let (_, stderr) = p.deploy_ok(&[&node], &["--ebin", &arg(v4), "-v"]);
    assert!(stderr.contains(MISSED), "{stderr}");
    assert!(!stderr.contains(LANDED), "{stderr}");
    assert_eq!(node.loaded_md5("hs_greet"), p.md5(v4, "hs_greet"));

    // The snapshot holds v3, what the node ran, not the v2 believed.
    p.deploy_ok(&[&node], &["--rollback"]);
    assert_eq!(node.loaded_md5("hs_greet"), p.md5(v3, "hs_greet"));
}

#[test]
fn a_flight_that_finds_the_node_as_wanted_leaves_no_snapshot() {
    let (p, v, mut node) = greeter("fl_same", 3);
    let (v2, v3) = (&v[1], &v[2]);
    p.deploy_ok(&[&node], &["--ebin", &arg(v2)]);
    // Someone already loaded v3, which is what the next deploy sends.
    load_by_hand(&mut node, v3);
    let (json, stderr) = p.deploy_ok(&[&node], &["--ebin", &arg(v3), "-v"]);
    assert!(stderr.contains(MISSED), "{stderr}");
    assert_eq!(json["snapshot"], serde_json::Value::Null, "{json}");
    assert_eq!(node_json(&json, &node)["unchanged"][0], "hs_greet");
    let out = p.run(&["snapshots", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
}

/// The `say` messages in the queue of the node's lock holder, or `held by`
/// once a process other than those in `baseline` monitors the holder.
const HOLDER_STATE: &str =
    "{length([S || S <- element(2, process_info(whereis(hotswap_deploy_lock), messages)), \
    element(1, S) =:= say]), \
    length(element(2, process_info(whereis(hotswap_deploy_lock), monitored_by)))}.";

/// A lone flight to a node another run holds tells the holder its word
/// once, is told the lock is not its run's, and waits for that holder to
/// go: one message, not one a millisecond left in the other run's holder.
#[test]
fn a_flight_to_a_node_another_run_holds_sends_its_word_once() {
    let (p, v, mut node) = greeter("fl_flood", 3);
    let (v2, v3) = (&v[1], &v[2]);
    p.deploy_ok(&[&node], &["--ebin", &arg(v2)]);
    // Another project's run holds the node's lock, waiting for its word.
    let other = Project::new();
    let faults = FaultPoints::new();
    let env = faults.env(&["apply_before_word"]);
    let ov3 = other.build(3, &["hs_greet"]);
    let mut held = other.spawn_deploy(&[&node], &["--ebin", &arg(&ov3)], &env);
    held.hold_at(&faults, "apply_before_word");
    let before = node.eval(HOLDER_STATE);
    assert!(before.starts_with("{0,"), "{before}");

    let (code, json, stderr) = p.deploy(&[&node], &["--ebin", &arg(v3), "-v", "--timeout", "5"]);
    assert_eq!(code, 3, "{json}\n{stderr}");
    assert!(
        stderr.contains("flight to"),
        "a flight was tried:\n{stderr}"
    );
    // The word reached the other run's holder: it is either in its queue
    // or the flight's word watches that holder.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let now = loop {
        let now = node.eval(HOLDER_STATE);
        if now != before {
            break now;
        }
        assert!(std::time::Instant::now() < deadline, "the word never came");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(
        now.starts_with("{0,"),
        "the word is left in the other run's holder: {now}"
    );

    faults.release("apply_before_word");
    let (code, json, stderr) = held.finish();
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert_eq!(node.loaded_md5("hs_greet"), other.md5(&ov3, "hs_greet"));
}
