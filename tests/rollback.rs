//! `deploy --rollback` keeps deploy's promises: it is refused rather than
//! kill without `--force`, works per node, tells modules only on a node's
//! disk from absent ones, refuses drift, says when it cannot restore, and
//! runs under a per-node lock and a crash-safe store. Every outcome is read
//! back from the nodes themselves.

mod common;

use common::fault::FaultPoints;
use common::project::{node_json, start_node, start_node_with, Project};
use common::{unique, ErlNode, NodeSpec};
use std::path::Path;
use std::time::{Duration, Instant};

fn ebin(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn failures(json: &serde_json::Value, node: &ErlNode) -> String {
    node_json(json, node)["failed"].to_string()
}

#[test]
fn a_refused_deploy_is_not_rolled_back_and_rollback_kills_only_with_force() {
    let p = Project::new();
    let (v1, v2, v3) = (
        p.build(1, &["hs_loop"]),
        p.build(2, &["hs_loop"]),
        p.build(3, &["hs_loop"]),
    );
    let cookie = common::random_cookie();
    let mut node = start_node("rb_refused", &v1, &cookie, &["hs_loop"]);
    node.eval("hs_loop:start().");
    let (code, json, _) = p.deploy(&[&node], &["--ebin", &ebin(&v2)]);
    assert_eq!(code, 0, "{json}");
    // The looper stays in v1, which is now old code: v3 is refused.
    let (code, json, _) = p.deploy(&[&node], &["--ebin", &ebin(&v3)]);
    assert_eq!(code, 5, "{json}");
    assert_eq!(node.loaded_md5("hs_loop"), p.md5(&v2, "hs_loop"));

    // The rollback undoes v2 (not the refused v3), and putting v1 back
    // means purging the v1 the looper runs: refused without --force.
    let (code, json, stderr) = p.deploy(&[&node], &["--rollback"]);
    assert_eq!(code, 5, "{json}\n{stderr}");
    assert_eq!(node_json(&json, &node)["lingering"][0]["name"], "hs_looper");
    assert_eq!(node.eval("is_process_alive(whereis(hs_looper))."), "true");
    assert_eq!(node.loaded_md5("hs_loop"), p.md5(&v2, "hs_loop"));

    let (code, json, _) = p.deploy(&[&node], &["--rollback", "--force"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(node.loaded_md5("hs_loop"), p.md5(&v1, "hs_loop"));
    assert_eq!(node.eval("whereis(hs_looper)."), "undefined");
    // Nothing is left to roll back: the refused deploy changed nothing.
    let (code, json, _) = p.deploy(&[&node], &["--rollback"]);
    assert_eq!(code, 2, "{json}");
}

#[test]
fn rolling_back_one_node_leaves_the_other_rollbackable() {
    let p = Project::new();
    let mods = ["hs_greet", "hs_calc"];
    let (v1, v2) = (p.build(1, &mods), p.build(2, &mods));
    let cookie = common::random_cookie();
    let mut a = start_node("rb_a", &v1, &cookie, &mods);
    let mut b = start_node("rb_b", &v1, &cookie, &mods);
    let (code, json, _) = p.deploy(&[&a, &b], &["--ebin", &ebin(&v2)]);
    assert_eq!(code, 0, "{json}");

    let (code, json, _) = p.deploy(&[&a], &["--rollback"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(a.loaded_md5("hs_greet"), p.md5(&v1, "hs_greet"));
    assert_eq!(b.loaded_md5("hs_greet"), p.md5(&v2, "hs_greet"));

    let (code, json, _) = p.deploy(&[&b], &["--rollback"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(b.loaded_md5("hs_greet"), p.md5(&v1, "hs_greet"));
    assert_eq!(a.loaded_md5("hs_greet"), p.md5(&v1, "hs_greet"));
}

#[test]
fn modules_only_on_the_nodes_disk_are_not_absent() {
    let p = Project::new();
    let (v1, v2) = (p.build(1, &["hs_loop"]), p.build(2, &["hs_loop"]));
    let cookie = common::random_cookie();
    // Interactive mode: hs_loop is on the code path, loaded on first use.
    let mut node = start_node("rb_disk", &v1, &cookie, &[]);
    assert_eq!(node.loaded_md5("hs_loop"), "none");

    // Identical to the node's own copy: nothing is sent.
    let (code, json, _) = p.deploy(&[&node], &["--ebin", &ebin(&v1)]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(node_json(&json, &node)["loaded"], serde_json::json!([]));
    assert_eq!(node.loaded_md5("hs_loop"), "none");

    let (code, json, _) = p.deploy(&[&node], &["--ebin", &ebin(&v2)]);
    assert_eq!(code, 0, "{json}");
    node.eval("hs_loop:start().");
    assert_eq!(node.eval("hs_loop:version()."), "2");

    // Back to the node's own copy; the process using ours is not killed.
    let (code, json, stderr) = p.deploy(&[&node], &["--rollback"]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert!(!stderr.contains("Removed"), "{stderr}");
    assert_eq!(node.eval("hs_loop:version()."), "1");
    assert_eq!(node.loaded_md5("hs_loop"), p.md5(&v1, "hs_loop"));
    assert_eq!(node.eval("is_process_alive(whereis(hs_looper))."), "true");
}

#[test]
fn rollback_refuses_a_module_changed_since_unless_forced() {
    let (pa, pb) = (Project::new(), Project::new());
    let v1 = pa.build(1, &["hs_greet"]);
    let v2 = pa.build(2, &["hs_greet"]);
    let v3 = pb.build(3, &["hs_greet"]);
    let cookie = common::random_cookie();
    let mut node = start_node("rb_drift", &v1, &cookie, &["hs_greet"]);
    let (code, json, _) = pa.deploy(&[&node], &["--ebin", &ebin(&v2)]);
    assert_eq!(code, 0, "{json}");
    // Someone else deploys v3 from another checkout.
    let (code, json, _) = pb.deploy(&[&node], &["--ebin", &ebin(&v3)]);
    assert_eq!(code, 0, "{json}");

    let (code, json, _) = pa.deploy(&[&node], &["--rollback"]);
    assert_eq!(code, 5, "{json}");
    let failed = failures(&json, &node);
    assert!(failed.contains("hs_greet"), "{failed}");
    assert!(failed.contains(&pa.md5(&v2, "hs_greet")), "{failed}");
    assert!(failed.contains(&pb.md5(&v3, "hs_greet")), "{failed}");
    assert_eq!(node.loaded_md5("hs_greet"), pb.md5(&v3, "hs_greet"));

    let (code, json, _) = pa.deploy(&[&node], &["--rollback", "--force"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(node.loaded_md5("hs_greet"), pa.md5(&v1, "hs_greet"));
}

/// A rollback refused on one node changes no node, and leaves every
/// node's part of the deploy to roll back later: the node that was not
/// refused is not marked rolled back.
#[test]
fn a_rollback_refused_on_one_node_leaves_the_other_nodes_rollbackable() {
    let (pa, pb) = (Project::new(), Project::new());
    let v1 = pa.build(1, &["hs_greet"]);
    let v2 = pa.build(2, &["hs_greet"]);
    let v3 = pb.build(3, &["hs_greet"]);
    let cookie = common::random_cookie();
    let mut a = start_node("rb_ref_a", &v1, &cookie, &["hs_greet"]);
    let mut b = start_node("rb_ref_b", &v1, &cookie, &["hs_greet"]);
    let (code, json, _) = pa.deploy(&[&a, &b], &["--ebin", &ebin(&v2)]);
    assert_eq!(code, 0, "{json}");
    // Someone else deploys v3 to node b from another checkout.
    let (code, json, _) = pb.deploy(&[&b], &["--ebin", &ebin(&v3)]);
    assert_eq!(code, 0, "{json}");

    let (code, json, _) = pa.deploy(&[&a, &b], &["--rollback"]);
    assert_eq!(code, 5, "{json}");
    for n in json["nodes"].as_array().expect("nodes") {
        assert_eq!(n["rolled_back"], false, "{json}");
    }
    assert_eq!(a.loaded_md5("hs_greet"), pa.md5(&v2, "hs_greet"));
    assert_eq!(b.loaded_md5("hs_greet"), pb.md5(&v3, "hs_greet"));

    // Node a's part is still there to roll back.
    let (code, json, _) = pa.deploy(&[&a], &["--rollback"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(a.loaded_md5("hs_greet"), pa.md5(&v1, "hs_greet"));
}

/// The store cannot record a rollback that ran: the user is still told
/// what each node runs now, and that the store did not take it in.
#[test]
fn a_rollback_the_store_cannot_record_still_reports_each_node() {
    let p = Project::new();
    let (v1, v2) = (p.build(1, &["hs_greet"]), p.build(2, &["hs_greet"]));
    let cookie = common::random_cookie();
    let mut node = start_node("rb_unrec", &v1, &cookie, &["hs_greet"]);
    let (code, json, _) = p.deploy(&[&node], &["--ebin", &ebin(&v2)]);
    assert_eq!(code, 0, "{json}");

    let faults = FaultPoints::new();
    let env = faults.env(&["rollback_ran"]);
    let mut run = p.spawn_deploy(&[&node], &["--rollback"], &env);
    run.hold_at(&faults, "rollback_ran");
    // The snapshots folder goes; a file stands in its way.
    let snapshots = p.path().join(".hotswap/snapshots");
    let aside = p.path().join("snapshots-aside");
    std::fs::rename(&snapshots, &aside).expect("move the snapshots aside");
    std::fs::write(&snapshots, b"in the way").expect("a file in the way");
    faults.release("rollback_ran");
    let (code, json, stderr) = run.finish();

    assert_eq!(code, 1, "{json}\n{stderr}");
    assert_eq!(json["ok"], false, "{json}");
    assert!(json["error"].to_string().contains("store"), "{json}");
    assert_eq!(node_json(&json, &node)["rolled_back"], true, "{json}");
    assert_eq!(node.loaded_md5("hs_greet"), p.md5(&v1, "hs_greet"));
}

/// A node running v1 of hs_greet that is on none of its disks any more.
fn node_with_unsaved_code(p: &Project, tag: &str, cookie: &str) -> ErlNode {
    let dir = p.path().join(unique("gone"));
    common::copy_dir(&p.build(1, &["hs_greet"]), &dir);
    let node = start_node(tag, &dir, cookie, &["hs_greet"]);
    std::fs::remove_dir_all(&dir).expect("remove the node's copy");
    node
}

#[test]
fn a_rollback_that_cannot_restore_says_so_with_exit_6() {
    let p = Project::new();
    let v2 = p.build(2, &["hs_greet"]);
    let cookie = common::random_cookie();
    let mut a = node_with_unsaved_code(&p, "rb_lost_a", &cookie);
    let mut b = node_with_unsaved_code(&p, "rb_lost_b", &cookie);
    let (code, json, stderr) = p.deploy(&[&a, &b], &["--ebin", &ebin(&v2)]);
    assert_eq!(code, 0, "{json}");
    assert!(stderr.contains("cannot be snapshotted"), "{stderr}");

    let (code, json, _) = p.deploy(&[&a], &["--rollback"]);
    assert_eq!(code, 6, "{json}");
    assert_eq!(
        node_json(&json, &a)["not_restored"],
        serde_json::json!(["hs_greet"])
    );
    assert_eq!(a.loaded_md5("hs_greet"), p.md5(&v2, "hs_greet"));
    // Not rolled back, by the report or by the store: the next rollback
    // goes to the same deploy and says the same.
    assert_eq!(node_json(&json, &a)["rolled_back"], false, "{json}");
    let (code, json, _) = p.deploy(&[&a], &["--rollback"]);
    assert_eq!(code, 6, "{json}");
    assert_eq!(
        node_json(&json, &a)["not_restored"],
        serde_json::json!(["hs_greet"])
    );

    // Quiet does not hide it.
    let args = [
        "deploy",
        "--rollback",
        "-q",
        "--name",
        &unique("hs"),
        "--node",
        &b.name,
        "--cookie",
        &cookie,
    ];
    let out = p.run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("`hs_greet` was NOT restored"), "{stderr}");
    assert_eq!(b.loaded_md5("hs_greet"), p.md5(&v2, "hs_greet"));
}

#[test]
fn a_leftover_temporary_file_does_not_block_rollback() {
    let p = Project::new();
    let (v1, v2) = (p.build(1, &["hs_greet"]), p.build(2, &["hs_greet"]));
    let cookie = common::random_cookie();
    let mut node = start_node("rb_tmp", &v1, &cookie, &["hs_greet"]);
    let (code, json, _) = p.deploy(&[&node], &["--ebin", &ebin(&v2)]);
    assert_eq!(code, 0, "{json}");
    // What a crash while writing a manifest leaves behind, by a process
    // that cannot exist: above Linux's highest pid (2^22), not one (4242)
    // that another process of a busy machine may have.
    let stray = p
        .path()
        .join(".hotswap/snapshots/.tmp-4194305-20991231T235959Z-000000.json");
    std::fs::write(&stray, b"{\"id\": \"2099").expect("stray");

    let (code, json, _) = p.deploy(&[&node], &["--rollback", "--dry-run"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(
        node_json(&json, &node)["would_load"],
        serde_json::json!(["hs_greet"])
    );
    assert_eq!(node_json(&json, &node)["loaded"], serde_json::json!([]));
    assert_eq!(node.loaded_md5("hs_greet"), p.md5(&v2, "hs_greet"));

    let (code, json, _) = p.deploy(&[&node], &["--rollback", "--verify"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(node.loaded_md5("hs_greet"), p.md5(&v1, "hs_greet"));
    assert!(!stray.exists(), "the stray file is cleaned up");
}

/// A deploy of `ebin` to `node` through a link with 150 ms each way,
/// logging its steps (`-v`), run as `name`. Its first `step` line comes
/// once every node's lock is taken.
fn lock_is_gone(node: &mut ErlNode) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if node.eval("whereis(hotswap_deploy_lock).") == "undefined" {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn two_deploys_to_one_node_at_once_one_is_refused() {
    let (pa, pb) = (Project::new(), Project::new());
    let v1 = pa.build(1, &["hs_greet"]);
    let v2 = pa.build(2, &["hs_greet"]);
    let v2b = pb.build(2, &["hs_greet"]);
    let cookie = common::random_cookie();
    let mut node = start_node("rb_two", &v1, &cookie, &["hs_greet"]);
    // The first run holds the node's lock, its changes sent, before the
    // word to load.
    let faults = FaultPoints::new();
    let first = unique("first");
    let args = ["--ebin", &ebin(&v2), "--name", &first];
    let mut run = pa.spawn_deploy(&[&node], &args, &faults.env(&["apply_before_word"]));
    run.hold_at(&faults, "apply_before_word");

    let (code, json, _) = pb.deploy(&[&node], &["--ebin", &ebin(&v2b)]);
    assert_eq!(code, 3, "{json}");
    let failed = failures(&json, &node);
    assert!(
        failed.contains("locked") && failed.contains(&first),
        "{failed}"
    );

    faults.release("apply_before_word");
    let (code, json, stderr) = run.finish();
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert_eq!(node.loaded_md5("hs_greet"), pa.md5(&v2, "hs_greet"));
    assert!(lock_is_gone(&mut node), "the lock is left on the node");
}

#[test]
fn the_lock_of_a_killed_run_goes_and_the_next_deploy_works() {
    let p = Project::new();
    let (v1, v2) = (p.build(1, &["hs_greet"]), p.build(2, &["hs_greet"]));
    let cookie = common::random_cookie();
    let mut node = start_node_with(
        NodeSpec::new("rb_kill").cookie(&cookie).code_path(&v1),
        &["hs_greet"],
    );
    // Killed (SIGKILL) while it holds the node's lock, before the word.
    let faults = FaultPoints::new();
    let env = faults.env(&["apply_before_word"]);
    let mut run = p.spawn_deploy(&[&node], &["--ebin", &ebin(&v2)], &env);
    run.hold_at(&faults, "apply_before_word");
    assert_ne!(node.eval("whereis(hotswap_deploy_lock)."), "undefined");
    run.kill();

    assert!(lock_is_gone(&mut node), "the dead run's lock stays");
    assert_eq!(node.loaded_md5("hs_greet"), p.md5(&v1, "hs_greet"));
    let (code, json, _) = p.deploy(&[&node], &["--ebin", &ebin(&v2)]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(node.loaded_md5("hs_greet"), p.md5(&v2, "hs_greet"));
}

#[test]
fn the_store_keeps_the_newest_snapshots_per_node() {
    let p = Project::new();
    let builds: Vec<_> = (1..=4).map(|v| p.build(v, &["hs_greet"])).collect();
    std::fs::write(p.path().join("hotswap.toml"), "keep_snapshots = 2\n").expect("config");
    let cookie = common::random_cookie();
    let mut node = start_node("rb_keep", &builds[0], &cookie, &["hs_greet"]);
    for v in &builds[1..] {
        let (code, json, _) = p.deploy(&[&node], &["--ebin", &ebin(v)]);
        assert_eq!(code, 0, "{json}");
    }
    let out = p.run(&["snapshots", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    let objects = std::fs::read_dir(p.path().join(".hotswap/objects"))
        .expect("objects")
        .count();
    assert_eq!(objects, 3, "v2, v3 as priors and v4 as deployed");

    // The two kept can still be rolled back, one after the other.
    for back_to in [&builds[2], &builds[1]] {
        let (code, json, _) = p.deploy(&[&node], &["--rollback"]);
        assert_eq!(code, 0, "{json}");
        assert_eq!(node.loaded_md5("hs_greet"), p.md5(back_to, "hs_greet"));
    }
    let out = p.run(&["snapshots", "--prune"]);
    assert!(out.status.success());
    assert_eq!(snapshot_count(&p), 2, "pruning keeps the newest two");
}

fn snapshot_count(p: &Project) -> usize {
    let out = p.run(&["snapshots", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    list.as_array().map_or(0, Vec::len)
}

/// `keep_snapshots = 0` keeps every snapshot, as documented: neither a
/// deploy nor `snapshots --prune` removes any.
#[test]
fn keep_snapshots_0_keeps_every_snapshot() {
    let p = Project::new();
    let builds: Vec<_> = (1..=4).map(|v| p.build(v, &["hs_greet"])).collect();
    std::fs::write(p.path().join("hotswap.toml"), "keep_snapshots = 0\n").expect("config");
    let cookie = common::random_cookie();
    let node = start_node("rb_keep0", &builds[0], &cookie, &["hs_greet"]);
    for v in &builds[1..] {
        let (code, json, _) = p.deploy(&[&node], &["--ebin", &ebin(v)]);
        assert_eq!(code, 0, "{json}");
    }
    assert_eq!(snapshot_count(&p), 3);
    let out = p.run(&["snapshots", "--prune"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        snapshot_count(&p),
        3,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
