//! A deploy to several nodes whose states the store believes it knows
//! flies to every node: each prepares the changes, says so, and loads them
//! only on the word, given once every node has prepared. A belief that no
//! longer holds on one node is caught there: no node loads in that
//! request, every node gets its changes the usual way, and the snapshot is
//! what each really ran. A node whose lock goes before the word stops the
//! run, and the other node is put back. Read back from the nodes.

mod common;

use common::fault::FaultPoints;
use common::project::{arg, load_by_hand, node_json, start_node, start_node_with, Project};
use common::{ErlNode, NodeSpec, Otp};
use std::path::{Path, PathBuf};

/// A project with `hs_greet` built at versions 1 to `versions`, and two
/// nodes running version 1.
fn greeters(tag: &str, versions: u32) -> (Project, Vec<PathBuf>, [ErlNode; 2]) {
    let p = Project::new();
    let v: Vec<PathBuf> = (1..=versions).map(|i| p.build(i, &["hs_greet"])).collect();
    let cookie = common::random_cookie();
    let a = start_node(&format!("{tag}_a"), &v[0], &cookie, &["hs_greet"]);
    let b = start_node(&format!("{tag}_b"), &v[0], &cookie, &["hs_greet"]);
    (p, v, [a, b])
}

fn all_run(p: &Project, nodes: [&mut ErlNode; 2], ebin: &Path) {
    all_run_module(p, nodes, ebin, "hs_greet");
}

/// Both nodes run `module` as built in `ebin`, read back from them.
fn all_run_module(p: &Project, nodes: [&mut ErlNode; 2], ebin: &Path, module: &str) {
    for n in nodes {
        let want = p.md5(ebin, module);
        assert_eq!(n.loaded_md5(module), want, "{}", n.name);
    }
}

const PREPARED: &str = "it prepared the changes";
const MISSED: &str = "runs other code than believed; nothing was prepared";

#[test]
fn a_redeploy_to_two_nodes_is_prepared_on_both_then_loaded_and_rolls_back() {
    let (p, v, [mut a, mut b]) = greeters("st_lands", 3);
    let (v2, v3) = (&v[1], &v[2]);
    let (_, stderr) = p.deploy_ok(&[&a, &b], &["--ebin", &arg(v2), "-v"]);
    assert!(
        !stderr.contains(PREPARED),
        "nothing was known yet:\n{stderr}"
    );

    let (_, stderr) = p.deploy_ok(&[&a, &b], &["--ebin", &arg(v3), "-v", "--verify"]);
    assert_eq!(stderr.matches(PREPARED).count(), 2, "{stderr}");
    all_run(&p, [&mut a, &mut b], v3);
    for n in [&mut a, &mut b] {
        // The lock, and the prepared code it kept, go (soon after the run).
        let gone = n.eval(
            "(fun W(0) -> held; W(N) -> case whereis(hotswap_deploy_lock) of \
             undefined -> gone; _ -> timer:sleep(50), W(N - 1) end end)(40).",
        );
        assert_eq!(gone, "gone", "{}", n.name);
    }

    p.deploy_ok(&[&a, &b], &["--rollback"]);
    all_run(&p, [&mut a, &mut b], v2);
}

#[test]
fn a_wrong_belief_on_one_node_is_caught_and_its_snapshot_is_what_it_ran() {
    let (p, v, [mut a, mut b]) = greeters("st_wrong", 4);
    let (v2, v3, v4) = (&v[1], &v[2], &v[3]);
    // The store comes to hold v3, and to believe both nodes run v2.
    for v in [&v2, &v3, &v2] {
        p.deploy_ok(&[&a, &b], &["--ebin", &arg(v)]);
    }

    // Behind this tool's back, someone loads v3 on node b.
    load_by_hand(&mut b, v3);

    let (_, stderr) = p.deploy_ok(&[&a, &b], &["--ebin", &arg(v4), "-v"]);
    assert_eq!(stderr.matches(PREPARED).count(), 1, "{stderr}");
    assert_eq!(stderr.matches(MISSED).count(), 1, "{stderr}");
    all_run(&p, [&mut a, &mut b], v4);

    // Each node's snapshot holds what it ran: v2 on a, v3 on b.
    p.deploy_ok(&[&a, &b], &["--rollback"]);
    assert_eq!(a.loaded_md5("hs_greet"), p.md5(v2, "hs_greet"));
    assert_eq!(b.loaded_md5("hs_greet"), p.md5(v3, "hs_greet"));
}

#[test]
fn a_lock_lost_on_one_node_before_the_word_stops_the_run_and_both_nodes_stay() {
    let (p, v, [mut a, mut b]) = greeters("st_lost", 3);
    let (v2, v3) = (&v[1], &v[2]);
    p.deploy_ok(&[&a, &b], &["--ebin", &arg(v2)]);

    // Both nodes have prepared and the tool holds before its word; on node
    // a, something kills the deploy lock's holder then (a node restarting
    // its processes, say). Only then does the word go out.
    let faults = FaultPoints::new();
    let env = faults.env(&["flight_prepared"]);
    let mut run = p.spawn_deploy(&[&a, &b], &["--ebin", &arg(v3), "-v"], &env);
    run.hold_at(&faults, "flight_prepared");
    let killed = a.eval(
        "begin H = whereis(hotswap_deploy_lock), M = monitor(process, H), exit(H, kill), \
         receive {'DOWN', M, _, _, _} -> killed end end.",
    );
    assert_eq!(killed, "killed");
    faults.release("flight_prepared");

    let (code, json, stderr) = run.finish();
    assert_eq!(code, 1, "{json}\n{stderr}");
    assert_eq!(stderr.matches(PREPARED).count(), 2, "{stderr}");
    let said = json.to_string();
    assert!(
        said.contains("the node's deploy lock went before the word to load came"),
        "{said}"
    );
    // Node b had loaded v3: it was put back. Node a never changed.
    all_run(&p, [&mut a, &mut b], v2);
}

#[test]
fn a_node_locked_by_another_run_has_the_prepared_node_abort_and_nothing_changes() {
    let (p, v, [mut a, mut b]) = greeters("st_held", 3);
    let (v2, v3) = (&v[1], &v[2]);
    p.deploy_ok(&[&a, &b], &["--ebin", &arg(v2)]);

    // Another run holds node b's lock (it answers who holds it), once the
    // last run's holder has gone.
    let held = b.eval(
        "begin Shell = self(), spawn(fun() -> \
           Take = fun T(0) -> gave_up; T(N) -> \
             case catch register(hotswap_deploy_lock, self()) of \
               true -> held; _ -> timer:sleep(10), T(N - 1) end end, \
           Shell ! Take(500), \
           W = fun W() -> receive \
             {who, From, Ref} -> From ! {Ref, 'other@elsewhere', [{node, \"other@elsewhere\"}]}, W() \
           after 20000 -> done end end, W() end), \
         receive Said when Said =:= held; Said =:= gave_up -> Said end end.",
    );
    assert_eq!(held, "held");

    let (code, json, stderr) = p.deploy(&[&a, &b], &["--ebin", &arg(v3), "-v"]);
    assert_eq!(code, 3, "{json}\n{stderr}");
    assert!(
        node_json(&json, &b)["failed"]
            .to_string()
            .contains("other@elsewhere"),
        "{json}"
    );
    // Node a prepared, was told to abort, and said so.
    assert_eq!(stderr.matches(PREPARED).count(), 1, "{stderr}");
    let aborted = format!("flight to {}: aborted; nothing changed", a.name);
    assert!(stderr.contains(&aborted), "{stderr}");
    all_run(&p, [&mut a, &mut b], v2);
}

#[test]
fn force_kills_old_code_in_the_way_on_every_node_before_preparing() {
    let p = Project::new();
    let v: Vec<PathBuf> = (1..=3).map(|i| p.build(i, &["hs_loop"])).collect();
    let cookie = common::random_cookie();
    let mut a = start_node("st_force_a", &v[0], &cookie, &["hs_loop"]);
    let mut b = start_node("st_force_b", &v[0], &cookie, &["hs_loop"]);
    for n in [&mut a, &mut b] {
        n.eval("hs_loop:start().");
    }
    // v2 lands; each node's looper stays in v1, now old code in use.
    p.deploy_ok(&[&a, &b], &["--ebin", &arg(&v[1])]);

    // v3 needs v1 gone: only --force may kill the loopers for it. Preparing
    // does not mind old code; each node kills after the word, before it
    // finishes.
    let (json, stderr) = p.deploy_ok(&[&a, &b], &["--ebin", &arg(&v[2]), "--force", "-v"]);
    assert_eq!(stderr.matches(PREPARED).count(), 2, "{stderr}");
    for n in [&mut a, &mut b] {
        assert_eq!(n.eval("whereis(hs_looper)."), "undefined", "{json}");
        assert_eq!(n.loaded_md5("hs_loop"), p.md5(&v[2], "hs_loop"), "{stderr}");
    }
}

/// A cluster of two OTP releases, as while a fleet is being upgraded: a
/// node of this machine's OTP (25) refuses the newer release's build of a
/// module (`badfile`: a record update compiles to an instruction OTP 25
/// lacks) when it prepares it, and the node that accepted it never loads
/// it. Runs where a newer release is under test (scripts/test-otp).
#[test]
fn a_node_refusing_to_prepare_leaves_every_node_as_it_was() {
    if !common::under_test_otp("a node on OTP 25 refusing what a newer erlc built") {
        return;
    }
    let p = Project::new();
    // v1 and v2 from this machine's erlc load on both nodes; v3 from the
    // newer one's does not load on this machine's OTP.
    let v1 = p.build_by(Otp::Host, 1, &["hs_tally"]);
    let v2 = p.build_by(Otp::Host, 2, &["hs_tally"]);
    let v3 = p.build(3, &["hs_tally"]);
    let cookie = common::random_cookie();
    let older = NodeSpec::new("st_older").cookie(&cookie).code_path(&v1);
    let mut older = start_node_with(older.host_otp(), &["hs_tally"]);
    let mut newer = start_node("st_newer", &v1, &cookie, &["hs_tally"]);
    // The store comes to hold v2 and to believe both nodes run it.
    p.deploy_ok(&[&older, &newer], &["--ebin", &arg(&v2)]);

    let (code, json, stderr) = p.deploy(&[&older, &newer], &["--ebin", &arg(&v3), "-v"]);
    assert_eq!(code, 1, "{json}\n{stderr}");
    assert!(
        stderr.contains("the node refused to prepare the changes"),
        "{stderr}"
    );
    assert_eq!(stderr.matches(PREPARED).count(), 1, "{stderr}");
    let failed = node_json(&json, &older)["failed"].to_string();
    assert!(failed.contains("another OTP release"), "{failed}");
    assert_eq!(node_json(&json, &newer)["rolled_back"], false, "{json}");
    for n in [&mut older, &mut newer] {
        assert_eq!(n.eval("hs_tally:version()."), "2");
    }
    all_run_module(&p, [&mut older, &mut newer], &v2, "hs_tally");
}
