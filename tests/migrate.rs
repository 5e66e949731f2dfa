//! A deploy migrates the processes whose callback module changes, as a
//! release upgrade does: suspended, loaded, `code_change`, resumed. The
//! fixtures' state changes shape with every version and is answered only
//! in the running version's shape, so a process left unmigrated crashes on
//! its next call. Every outcome is read back from the nodes: the same
//! pid, its count, the shape of its state, that nobody is left suspended.

mod common;

use common::fault::FaultPoints;
use common::project::{node_json, start_node, Project};
use common::ErlNode;
use std::path::{Path, PathBuf};

fn ebin(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A node running v1 of the counter, counted to `bumps`; the project built
/// at v1 and v2.
fn one_counter(tag: &str, bumps: usize) -> (Project, PathBuf, PathBuf, ErlNode) {
    let p = Project::new();
    let (v1, v2) = (p.build(1, &["hs_counter"]), p.build(2, &["hs_counter"]));
    let cookie = common::random_cookie();
    let mut node = start_node(tag, &v1, &cookie, &["hs_counter"]);
    node.eval("{ok, _} = hs_counter:start().");
    node.eval(&format!(
        "[hs_counter:bump() || _ <- lists:seq(1, {bumps})]."
    ));
    (p, v1, v2, node)
}

/// The counter's pid, count and state, as the node shows them.
fn counter(node: &mut ErlNode) -> (String, String, String) {
    let pid = node.eval("whereis(hs_counter).");
    let count = node.eval("hs_counter:count().");
    let state = node.eval("sys:get_state(hs_counter).");
    (pid, count, state)
}

/// Whether the process is running (not suspended), as sys reports it.
fn running(node: &mut ErlNode, name: &str) -> bool {
    let status = node.eval(&format!(
        "lists:nth(2, element(4, sys:get_status({name}, 1000)))."
    ));
    status == "running"
}

#[test]
fn a_deploy_migrates_a_gen_server_up_and_a_rollback_migrates_it_down() {
    let (p, v1, v2, mut node) = one_counter("mig_up", 3);
    let (pid, count, state) = counter(&mut node);
    assert_eq!(count, "3");
    assert_eq!(state, "#{count => 3,vsn => 1}");

    let (code, json, stderr) = p.deploy(&[&node], &["--ebin", &ebin(&v2), "--verify"]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    let report = node_json(&json, &node);
    assert_eq!(report["migrated"][0]["module"], "hs_counter", "{json}");
    assert_eq!(report["migrated"][0]["name"], "hs_counter", "{json}");
    assert!(report["suspended_ms"].as_f64().is_some(), "{json}");
    assert!(
        stderr.contains("Migrated 1 process of `hs_counter`"),
        "{stderr}"
    );
    assert_eq!(
        counter(&mut node),
        (pid.clone(), "3".into(), "{counter,2,3}".into()),
        "the same process, its count, in the new shape"
    );
    assert_eq!(node.eval("hs_counter:bump()."), "4");
    assert!(running(&mut node, "hs_counter"));
    assert_eq!(report["watched"], 1, "{json}");
    assert!(report.get("died").is_none(), "{json}");
    assert!(stderr.contains("after the change: none died"), "{stderr}");

    let (code, json, stderr) = p.deploy(&[&node], &["--rollback"]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert_eq!(node.loaded_md5("hs_counter"), p.md5(&v1, "hs_counter"));
    assert_eq!(
        counter(&mut node),
        (pid, "4".into(), "#{count => 4,vsn => 1}".into()),
        "back in the old shape through {{down, Vsn}}"
    );
    assert!(running(&mut node, "hs_counter"));
}

#[test]
fn a_gen_statem_is_migrated_through_its_code_change_4() {
    let p = Project::new();
    let (v1, v2) = (p.build(1, &["hs_machine"]), p.build(2, &["hs_machine"]));
    let cookie = common::random_cookie();
    let mut node = start_node("mig_statem", &v1, &cookie, &["hs_machine"]);
    node.eval("{ok, _} = hs_machine:start().");
    node.eval("[hs_machine:push() || _ <- [1, 2]].");
    let pid = node.eval("whereis(hs_machine).");

    let (code, json, stderr) = p.deploy(&[&node], &["--ebin", &ebin(&v2)]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert_eq!(node.eval("whereis(hs_machine)."), pid);
    assert_eq!(node.eval("hs_machine:count()."), "2");
    assert_eq!(node.eval("sys:get_state(hs_machine)."), "{busy,{data,2,2}}");
}

#[test]
fn without_code_change_the_process_keeps_its_state_as_it_was() {
    let (p, _v1, v2, mut node) = one_counter("mig_off", 1);

    let (code, json, stderr) = p.deploy(&[&node], &["--ebin", &ebin(&v2), "--no-code-change"]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert!(node_json(&json, &node).get("migrated").is_none(), "{json}");
    assert_eq!(
        node.eval("sys:get_state(hs_counter)."),
        "#{count => 1,vsn => 1}",
        "loaded, not migrated"
    );
}

/// Waits, on the node, until the process registered as `name` runs
/// `function` (`Module:Function/Arity`): a node-side trigger reached.
fn wait_in(node: &mut ErlNode, name: &str, function: &str) {
    let (m, rest) = function.split_once(':').expect("M:F/A");
    let (f, a) = rest.split_once('/').expect("F/A");
    let reached = node.eval(&format!(
        "(fun W(0) -> timeout; W(N) -> \
           case catch process_info(whereis({name}), current_function) of \
             {{current_function, {{{m}, {f}, {a}}}}} -> reached; \
             _ -> timer:sleep(5), W(N - 1) end end)(6000)."
    ));
    assert_eq!(reached, "reached", "{name} never ran {function}");
}

/// Two nodes running v1 with a counter counted to 1; the project built
/// at v1 and v2.
fn two_counters(
    tag: &str,
) -> (
    Project,
    std::path::PathBuf,
    std::path::PathBuf,
    ErlNode,
    ErlNode,
) {
    let p = Project::new();
    let (v1, v2) = (p.build(1, &["hs_counter"]), p.build(2, &["hs_counter"]));
    let cookie = common::random_cookie();
    let mut a = start_node(&format!("{tag}_a"), &v1, &cookie, &["hs_counter"]);
    let mut b = start_node(&format!("{tag}_b"), &v1, &cookie, &["hs_counter"]);
    for n in [&mut a, &mut b] {
        n.eval("{ok, _} = hs_counter:start().");
        n.eval("hs_counter:bump().");
    }
    (p, v1, v2, a, b)
}

/// The node runs v1, its counter in v1's shape, running, the same pid.
fn untouched(p: &Project, v1: &Path, node: &mut ErlNode, pid: &str) {
    assert_eq!(node.loaded_md5("hs_counter"), p.md5(v1, "hs_counter"));
    assert_eq!(node.eval("whereis(hs_counter)."), pid);
    assert!(running(node, "hs_counter"), "left suspended");
    assert_eq!(
        node.eval("sys:get_state(hs_counter)."),
        "#{count => 1,vsn => 1}"
    );
}

#[test]
fn a_busy_process_refuses_the_deploy_on_every_node_with_exit_5() {
    let (p, v1, v2, mut a, mut b) = two_counters("mig_busy");
    let (pid_a, pid_b) = (
        a.eval("whereis(hs_counter)."),
        b.eval("whereis(hs_counter)."),
    );
    b.eval("spawn(fun() -> gen_server:call(hs_counter, block, infinity) end).");
    wait_in(&mut b, "hs_counter", "hs_counter:handle_call/3");

    let (code, json, stderr) = p.deploy(&[&a, &b], &["--ebin", &ebin(&v2), "--timeout", "3"]);
    assert_eq!(code, 5, "{json}\n{stderr}");
    let failed = node_json(&json, &b)["failed"].to_string();
    assert!(failed.contains("hs_counter:handle_call/3"), "{failed}");
    assert!(failed.contains("(hs_counter)"), "named: {failed}");
    assert_eq!(
        node_json(&json, &a)["rolled_back"],
        false,
        "a never changed: {json}"
    );
    untouched(&p, &v1, &mut a, &pid_a);
    assert_eq!(b.loaded_md5("hs_counter"), p.md5(&v1, "hs_counter"));

    // Once the call is over, the same deploy goes through.
    b.eval("hs_counter ! hs_unblock.");
    untouched(&p, &v1, &mut b, &pid_b);
    let (code, json, stderr) = p.deploy(&[&a, &b], &["--ebin", &ebin(&v2)]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert_eq!(b.eval("sys:get_state(hs_counter)."), "{counter,2,1}");
}

#[test]
fn a_busy_process_refuses_a_flight_before_any_node_changes() {
    let (p, v1, v2, mut a, mut b) = two_counters("mig_busyfl");
    // Deployed and rolled back by the tool: the store holds both builds
    // and believes it knows what the nodes run, so the next deploy flies.
    p.deploy_ok(&[&a, &b], &["--ebin", &ebin(&v2)]);
    p.deploy_ok(&[&a, &b], &["--rollback"]);
    let pid_a = a.eval("whereis(hs_counter).");
    b.eval("spawn(fun() -> gen_server:call(hs_counter, block, infinity) end).");
    wait_in(&mut b, "hs_counter", "hs_counter:handle_call/3");

    let (code, json, stderr) = p.deploy(&[&a, &b], &["--ebin", &ebin(&v2), "--timeout", "3"]);
    assert_eq!(code, 5, "{json}\n{stderr}");
    assert_eq!(
        node_json(&json, &a)["rolled_back"],
        false,
        "a never changed: {json}"
    );
    untouched(&p, &v1, &mut a, &pid_a);
    assert_eq!(b.loaded_md5("hs_counter"), p.md5(&v1, "hs_counter"));
    b.eval("hs_counter ! hs_unblock.");
}

#[test]
fn a_code_change_that_crashes_on_one_node_puts_both_back_and_nobody_dies() {
    let (p, v1, v2, mut a, mut b) = two_counters("mig_crash");
    let (pid_a, pid_b) = (
        a.eval("whereis(hs_counter)."),
        b.eval("whereis(hs_counter)."),
    );
    b.eval("persistent_term:put({hs_counter, code_change}, crash).");

    let (code, json, stderr) = p.deploy(&[&a, &b], &["--ebin", &ebin(&v2)]);
    assert_eq!(code, 1, "{json}\n{stderr}");
    let failed = node_json(&json, &b)["failed"].to_string();
    assert!(failed.contains("refused_to_migrate"), "{failed}");
    // a was migrated up, then down with the undo; b was held suspended
    // until the undo brought v1 back.
    assert_eq!(node_json(&json, &a)["rolled_back"], true, "{json}");
    assert_eq!(node_json(&json, &b)["rolled_back"], true, "{json}");
    untouched(&p, &v1, &mut a, &pid_a);
    untouched(&p, &v1, &mut b, &pid_b);
    assert_eq!(a.eval("hs_counter:bump()."), "2");
    assert_eq!(b.eval("hs_counter:bump()."), "2");
}

#[test]
fn a_tool_killed_during_a_code_change_leaves_no_process_suspended() {
    let (p, _v1, v2, mut node) = one_counter("mig_kill", 1);
    let pid = node.eval("whereis(hs_counter).");
    node.eval("persistent_term:put({hs_counter, code_change}, hold).");

    let deploy = p.spawn_deploy(&[&node], &["--ebin", &ebin(&v2)], &[]);
    // Suspended, loaded, in its code_change: the tool goes, hard.
    wait_in(&mut node, "hs_counter", "hs_counter:code_change/3");
    deploy.kill();
    node.eval("hs_counter ! hs_release.");

    node.eval("timer:sleep(100).");
    assert!(running(&mut node, "hs_counter"), "left suspended");
    assert_eq!(node.eval("whereis(hs_counter)."), pid);
    assert_eq!(node.eval("sys:get_state(hs_counter)."), "{counter,2,1}");
    assert_eq!(node.eval("hs_counter:bump()."), "2");
}

#[test]
fn a_rollback_whose_code_change_crashes_on_one_node_leaves_both_on_the_deploy() {
    let (p, _v1, v2, mut a, mut b) = two_counters("mig_down");
    p.deploy_ok(&[&a, &b], &["--ebin", &ebin(&v2)]);
    let (pid_a, pid_b) = (
        a.eval("whereis(hs_counter)."),
        b.eval("whereis(hs_counter)."),
    );
    b.eval("persistent_term:put({hs_counter, code_change}, crash).");

    let (code, json, stderr) = p.deploy(&[&a, &b], &["--rollback"]);
    assert_eq!(code, 1, "{json}\n{stderr}");
    assert!(
        node_json(&json, &b)["failed"]
            .to_string()
            .contains("refused_to_migrate"),
        "{json}"
    );
    // a was rolled back and migrated down, then brought back up to the
    // deploy with the undo; b's counter never left the deploy's shape.
    for (n, pid) in [(&mut a, &pid_a), (&mut b, &pid_b)] {
        assert_eq!(n.loaded_md5("hs_counter"), p.md5(&v2, "hs_counter"));
        assert_eq!(n.eval("whereis(hs_counter)."), *pid);
        assert!(running(n, "hs_counter"), "left suspended");
        assert_eq!(n.eval("sys:get_state(hs_counter)."), "{counter,2,1}");
    }
    // Once b's code_change works, the rollback goes through.
    b.eval("persistent_term:erase({hs_counter, code_change}).");
    let (code, json, stderr) = p.deploy(&[&a, &b], &["--rollback"]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert_eq!(
        b.eval("sys:get_state(hs_counter)."),
        "#{count => 1,vsn => 1}"
    );
}

#[test]
fn status_and_dry_run_name_the_processes_a_deploy_would_migrate() {
    let (p, _v1, v2, mut node) = one_counter("mig_plan", 0);
    let cookie = node.cookie.clone();
    let pid = node.eval("whereis(hs_counter).");
    let shown = pid.trim_start_matches('<').trim_end_matches('>');

    let (code, json, stderr) = p.deploy(&[&node], &["--ebin", &ebin(&v2), "--dry-run"]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert_eq!(
        node_json(&json, &node)["would_migrate"][0]["name"],
        "hs_counter",
        "{json}"
    );
    assert!(node_json(&json, &node).get("migrated").is_none(), "{json}");
    assert!(stderr.contains("Would migrate process <"), "{stderr}");
    assert!(stderr.contains(shown), "{stderr}");
    assert_eq!(
        node.eval("sys:get_state(hs_counter)."),
        "#{count => 0,vsn => 1}"
    );

    let out = p.run(&[
        "status",
        "--json",
        "--node",
        &node.name,
        "--cookie",
        &cookie,
        "--ebin",
        &ebin(&v2),
        "--name",
        &common::unique("hs"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    let status = &json["nodes"][0];
    assert_eq!(status["would_migrate"][0]["module"], "hs_counter", "{json}");
    assert_eq!(status["would_migrate"][0]["name"], "hs_counter", "{json}");
}

#[test]
fn the_after_deploy_call_runs_in_the_new_code_and_its_failure_is_named_not_undone() {
    let p = Project::new();
    let (v1, v2, v3) = (
        p.build(1, &["hs_counter"]),
        p.build(2, &["hs_counter"]),
        p.build(3, &["hs_counter"]),
    );
    let cookie = common::random_cookie();
    let mut node = start_node("mig_after", &v1, &cookie, &["hs_counter"]);

    let args = ["--ebin", &ebin(&v2), "--after", "hs_counter:reloaded"];
    let (code, json, stderr) = p.deploy(&[&node], &args);
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert_eq!(
        node.eval("persistent_term:get(hs_reloaded)."),
        "{2,[hs_counter]}",
        "called once the new code runs, with what changed"
    );

    // Nothing changed: nothing to call.
    node.eval("persistent_term:erase(hs_reloaded).");
    let (code, json, _) = p.deploy(&[&node], &args);
    assert_eq!(code, 0, "{json}");
    assert_eq!(node.eval("persistent_term:get(hs_reloaded, none)."), "none");

    let args = ["--ebin", &ebin(&v3), "--after", "hs_counter:broken_hook"];
    let (code, json, stderr) = p.deploy(&[&node], &args);
    assert_eq!(code, 1, "{json}\n{stderr}");
    let failed = node_json(&json, &node)["failed"].to_string();
    assert!(failed.contains("hs_counter:broken_hook"), "{failed}");
    assert!(failed.contains("not_today"), "{failed}");
    assert_eq!(
        node_json(&json, &node)["rolled_back"],
        false,
        "not undone: {json}"
    );
    assert_eq!(node.loaded_md5("hs_counter"), p.md5(&v3, "hs_counter"));

    let (code, _, stderr) = p.deploy(&[&node], &["--ebin", &ebin(&v3), "--after", "redraw"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("`redraw` is not a function"), "{stderr}");
}

#[test]
fn a_gen_event_handler_under_a_dynamic_child_is_migrated_up_and_down() {
    let p = Project::new();
    let (v1, v2) = (p.build(1, &["hs_handler"]), p.build(2, &["hs_handler"]));
    let cookie = common::random_cookie();
    let mut node = start_node("mig_event", &v1, &cookie, &["hs_handler"]);
    node.eval("hs_handler:start_sup().");
    node.eval("gen_event:sync_notify(hs_events, tick), gen_event:sync_notify(hs_events, tick).");
    let manager = node.eval("whereis(hs_events).");

    let (code, json, stderr) = p.deploy(&[&node], &["--ebin", &ebin(&v2)]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert_eq!(
        node_json(&json, &node)["migrated"][0]["name"],
        "hs_events",
        "{json}"
    );
    assert_eq!(node.eval("whereis(hs_events)."), manager);
    assert_eq!(node.eval("hs_handler:count()."), "2");
    assert_eq!(
        node.eval("gen_event:sync_notify(hs_events, tick), hs_handler:count()."),
        "3"
    );
    assert!(running(&mut node, "hs_events"));

    let (code, json, stderr) = p.deploy(&[&node], &["--rollback"]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert_eq!(node.eval("whereis(hs_events)."), manager);
    assert_eq!(node.eval("hs_handler:count()."), "3");
}

/// A code_change that does not come back in time: the node is put back
/// to v1 and the process named (exit 6), its state possibly in the new
/// shape; once its code_change ends, it is resumed, never left suspended.
#[test]
fn a_code_change_that_does_not_come_back_is_named_with_exit_6_and_resumed_later() {
    let (p, v1, v2, mut node) = one_counter("mig_slow", 1);
    let pid = node.eval("whereis(hs_counter).");
    node.eval("persistent_term:put({hs_counter, code_change}, hold).");

    // Each migration step may take a sixth of the 3 s timeout.
    let (code, json, stderr) = p.deploy(&[&node], &["--ebin", &ebin(&v2), "--timeout", "3"]);
    assert_eq!(code, 6, "{json}\n{stderr}");
    let report = node_json(&json, &node);
    let failed = report["failed"].to_string();
    assert!(failed.contains("code_change of process"), "{failed}");
    assert!(failed.contains("timeout"), "{failed}");
    let left = report["not_restored"].to_string();
    assert!(
        left.contains("did not come back") && left.contains("(hs_counter)"),
        "{left}"
    );
    assert_eq!(node.loaded_md5("hs_counter"), p.md5(&v1, "hs_counter"));

    node.eval("persistent_term:erase({hs_counter, code_change}), hs_counter ! hs_release.");
    assert_eq!(node.eval("whereis(hs_counter)."), pid);
    assert!(running(&mut node, "hs_counter"), "left suspended");
}

/// A node running v1 of hs_custom (a sys loop of its own), counted to 2;
/// the project built at v1 and v2.
fn one_custom(tag: &str) -> (Project, PathBuf, ErlNode, String) {
    let p = Project::new();
    let (v1, v2) = (p.build(1, &["hs_custom"]), p.build(2, &["hs_custom"]));
    let cookie = common::random_cookie();
    let mut node = start_node(tag, &v1, &cookie, &["hs_custom"]);
    node.eval("{ok, _} = hs_custom:start().");
    node.eval("[hs_custom:bump() || _ <- [1, 2]].");
    let pid = node.eval("whereis(hs_custom).");
    (p, v2, node, pid)
}

#[test]
fn a_process_under_a_sys_loop_of_its_own_loads_without_migrating_and_goes_on() {
    let (p, v2, mut node, pid) = one_custom("mig_custom");

    let (code, json, stderr) = p.deploy(&[&node], &["--ebin", &ebin(&v2)]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    let report = node_json(&json, &node);
    assert_eq!(report["not_migrated"][0]["name"], "hs_custom", "{json}");
    assert_eq!(report["not_migrated"][0]["detail"], "hs_custom", "{json}");
    assert!(report.get("migrated").is_none(), "{json}");
    assert!(stderr.contains("runs under `hs_custom`"), "{stderr}");
    assert_eq!(node.eval("whereis(hs_custom)."), pid, "the same process");
    assert_eq!(node.eval("hs_custom:bump()."), "3", "in the code it runs");
}

#[test]
fn a_custom_loop_migrated_when_asked_dies_at_resume_and_the_run_says_so_with_exit_7() {
    let (p, v2, mut node, pid) = one_custom("mig_custom_any");

    let (code, json, stderr) =
        p.deploy(&[&node], &["--ebin", &ebin(&v2), "--migrate-custom-loops"]);
    assert_eq!(code, 7, "{json}\n{stderr}");
    let report = node_json(&json, &node);
    assert_eq!(report["died"][0]["name"], "hs_custom", "{json}");
    assert_eq!(report["died"][0]["pid"], pid.as_str(), "{json}");
    let why = report["died"][0]["detail"].to_string();
    assert!(why.contains("hs_custom_cannot_continue"), "{why}");
    assert!(stderr.contains("died right after the change"), "{stderr}");
    assert_eq!(json["ok"], false, "{json}");
    // The change stays: the node runs v2.
    assert_eq!(node.loaded_md5("hs_custom"), p.md5(&v2, "hs_custom"));
    assert_eq!(node.eval("whereis(hs_custom)."), "undefined");
}

#[test]
fn a_gen_server_that_dies_right_after_its_code_change_is_named_with_exit_7() {
    let (p, _v1, v2, mut node) = one_counter("mig_died", 1);
    let pid = node.eval("whereis(hs_counter).");
    node.eval("persistent_term:put({hs_counter, code_change}, exit_after).");

    let (code, json, stderr) = p.deploy(&[&node], &["--ebin", &ebin(&v2)]);
    assert_eq!(code, 7, "{json}\n{stderr}");
    let report = node_json(&json, &node);
    assert_eq!(report["migrated"][0]["pid"], pid.as_str(), "{json}");
    assert_eq!(report["died"][0]["pid"], pid.as_str(), "{json}");
    let why = report["died"][0]["detail"].to_string();
    assert!(why.contains("hs_died_after_its_change"), "{why}");
    assert_eq!(node.loaded_md5("hs_counter"), p.md5(&v2, "hs_counter"));
}

#[test]
fn a_gen_server_that_entered_its_loop_from_another_module_is_found_and_migrated() {
    let p = Project::new();
    let v1 = p.build(1, &["hs_counter", "hs_entry"]);
    let v2 = p.build(2, &["hs_counter"]);
    let cookie = common::random_cookie();
    let mut node = start_node("mig_entered", &v1, &cookie, &["hs_counter", "hs_entry"]);
    node.eval("{ok, _} = hs_entry:start(hs_counter).");
    assert_eq!(node.eval("hs_counter:bump()."), "1");
    assert_eq!(
        node.eval("proc_lib:translate_initial_call(whereis(hs_counter))."),
        "{hs_entry,init,1}",
        "it started under another module"
    );
    let pid = node.eval("whereis(hs_counter).");

    let (code, json, stderr) = p.deploy(&[&node], &["--ebin", &ebin(&v2)]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert_eq!(
        node_json(&json, &node)["migrated"][0]["pid"],
        pid.as_str(),
        "{json}"
    );
    assert_eq!(node.eval("whereis(hs_counter)."), pid);
    assert_eq!(node.eval("sys:get_state(hs_counter)."), "{counter,2,1}");
    assert_eq!(node.eval("hs_counter:bump()."), "2");
}

#[test]
fn a_process_that_exits_after_the_check_is_passed_over_not_reported_busy() {
    let (p, _v1, v2, mut a, mut b) = two_counters("mig_gone");
    let pid_a = a.eval("whereis(hs_counter).");
    // Both nodes have checked their processes and prepared; the tool holds
    // before its word. Then node b's counter exits.
    let faults = FaultPoints::new();
    let env = faults.env(&["apply_prepared"]);
    let mut run = p.spawn_deploy(&[&a, &b], &["--ebin", &ebin(&v2)], &env);
    run.hold_at(&faults, "apply_prepared");
    let gone = b.eval(
        "begin P = whereis(hs_counter), M = monitor(process, P), exit(P, kill), \
         receive {'DOWN', M, _, _, _} -> gone end end.",
    );
    assert_eq!(gone, "gone");
    faults.release("apply_prepared");

    let (code, json, stderr) = run.finish();
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert_eq!(b.loaded_md5("hs_counter"), p.md5(&v2, "hs_counter"));
    assert_eq!(
        node_json(&json, &a)["migrated"][0]["pid"],
        pid_a.as_str(),
        "{json}"
    );
    assert_eq!(a.eval("sys:get_state(hs_counter)."), "{counter,2,1}");
}

#[test]
fn what_force_killed_is_reported_when_the_node_then_refuses() {
    let p = Project::new();
    let v1 = p.build(1, &["hs_loop", "hs_counter"]);
    let v2 = p.build(2, &["hs_loop"]);
    let v3 = p.build(3, &["hs_loop", "hs_counter"]);
    let cookie = common::random_cookie();
    let mut a = start_node("mig_forced_a", &v1, &cookie, &["hs_loop", "hs_counter"]);
    let mut b = start_node("mig_forced_b", &v1, &cookie, &["hs_loop", "hs_counter"]);
    for n in [&mut a, &mut b] {
        n.eval("hs_loop:start().");
        n.eval("{ok, _} = hs_counter:start().");
    }
    // The loopers stay in v1, old code in v3's way.
    p.deploy_ok(&[&a, &b], &["--ebin", &ebin(&v2)]);

    // Both nodes have checked and prepared; then b's counter turns busy,
    // so that b, once its forced purge has killed the looper, cannot
    // suspend it and refuses.
    let faults = FaultPoints::new();
    let env = faults.env(&["apply_prepared"]);
    let args = ["--ebin", &ebin(&v3), "--force", "--timeout", "3"];
    let mut run = p.spawn_deploy(&[&a, &b], &args, &env);
    run.hold_at(&faults, "apply_prepared");
    b.eval("spawn(fun() -> gen_server:call(hs_counter, block, infinity) end).");
    wait_in(&mut b, "hs_counter", "hs_counter:handle_call/3");
    faults.release("apply_prepared");

    let (code, json, stderr) = run.finish();
    assert_eq!(code, 5, "{json}\n{stderr}");
    assert_eq!(
        b.eval("whereis(hs_looper)."),
        "undefined",
        "b's looper was killed"
    );
    assert_eq!(node_json(&json, &b)["killed"], 1, "{json}");
    assert!(
        stderr.contains(&format!("killed 1 process on {}", b.name)),
        "{stderr}"
    );
    b.eval("hs_counter ! hs_unblock.");
}

#[test]
fn a_process_held_for_an_undo_that_never_comes_goes_on_only_in_code_its_state_fits() {
    let (p, _v1, v2, mut node) = one_counter("mig_held", 2);
    let pid = node.eval("whereis(hs_counter).");
    node.eval("persistent_term:put({hs_counter, code_change}, crash_once).");

    // v2 loads, the counter's code_change fails, and the node holds it
    // suspended in v1's shape for the tool's undo; the tool dies first.
    let faults = FaultPoints::new();
    let env = faults.env(&["undo"]);
    let mut run = p.spawn_deploy(&[&node], &["--ebin", &ebin(&v2)], &env);
    run.hold_at(&faults, "undo");
    run.kill();

    // v1 is not back, so the counter is not resumed in v1's shape under
    // v2: it is migrated again (this time its code_change works), then
    // resumed. Waited for on the node, as the keeper hears the tool go.
    let resumed = node.eval(
        "(fun W(0) -> suspended; W(N) -> \
           case lists:nth(2, element(4, sys:get_status(hs_counter, 1000))) of \
             running -> running; _ -> timer:sleep(20), W(N - 1) end end)(500).",
    );
    assert_eq!(resumed, "running");
    assert_eq!(node.loaded_md5("hs_counter"), p.md5(&v2, "hs_counter"));
    assert_eq!(node.eval("whereis(hs_counter)."), pid, "the same process");
    assert_eq!(node.eval("sys:get_state(hs_counter)."), "{counter,2,2}");
    assert_eq!(node.eval("hs_counter:bump()."), "3");
}

/// A deploy killed in the watch after its change (here a ten-minute
/// window) leaves nothing watching on the node: the node's watch goes with
/// the tool, as its lock does (the migrated process's monitors, read on
/// the node, come back to what they were).
#[test]
fn the_watch_after_a_change_goes_with_a_deploy_killed_in_it() {
    let (p, _v1, v2, mut node) = one_counter("mig_gone", 1);
    let monitors = "element(2, process_info(whereis(hs_counter), monitored_by)).";
    let before = node.eval(monitors);
    let run = p.spawn_deploy(
        &[&node],
        &["--ebin", &ebin(&v2), "--observe", "600000"],
        &[],
    );
    let want = p.md5(&v2, "hs_counter");
    let in_window =
        |node: &mut ErlNode| node.loaded_md5("hs_counter") == want && node.eval(monitors) != before;
    common::comes_true(&mut node, in_window, "the change and its watch");
    run.kill();
    common::comes_true(&mut node, |n| n.eval(monitors) == before, "the watch gone");
    assert_eq!(node.eval("hs_counter:bump()."), "2");
}
