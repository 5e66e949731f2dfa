//! Old code goes only when a load needs its slot, and only after a look at
//! who would die: a process that keeps a fun made by the old code (on its
//! stack, in its dictionary, in its state) is named and the run refused,
//! never killed quietly by a purge; `--force` purges all the same and names
//! who is doomed. Every outcome is read back from the node: which version
//! it runs, and what each keeper's fun still makes.

mod common;

use common::project::{node_json, start_node, Project};
use common::ErlNode;
use serde_json::Value;
use std::path::Path;

const KEEPERS: [&str; 3] = ["hs_on_stack", "hs_in_dictionary", "hs_in_state"];

fn ebin(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// What each keeper's fun makes of 1, asked on the node.
fn asked(node: &mut ErlNode) -> Vec<String> {
    KEEPERS
        .iter()
        .map(|k| node.eval(&format!("hs_keeper:ask({k}).")))
        .collect()
}

/// The `why` of each process named for `module`, by registered name.
fn whys(named: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = named
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap_or("?").to_owned(),
                l["why"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn expected_whys() -> Vec<(String, String)> {
    vec![
        ("hs_in_dictionary".into(), "fun_in_dictionary".into()),
        ("hs_in_state".into(), "fun_in_state".into()),
        ("hs_on_stack".into(), "fun_on_stack".into()),
    ]
}

#[test]
fn keepers_of_old_funs_survive_a_deploy_and_are_named_before_a_purge_would_kill_them() {
    let p = Project::new();
    let v1 = p.build(1, &["hs_holder", "hs_keeper"]);
    let v2 = p.build(2, &["hs_holder"]);
    let v3 = p.build(3, &["hs_holder"]);
    let cookie = common::random_cookie();
    let mut node = start_node("funs", &v1, &cookie, &["hs_holder", "hs_keeper"]);
    assert_eq!(node.eval("hs_keeper:start()."), "ok");
    assert_eq!(asked(&mut node), vec!["{1,1}"; 3]);

    // v2 lands; v1, which made the keepers' funs, stays as old code.
    let (code, json, stderr) = p.deploy(&[&node], &["--ebin", &ebin(&v2)]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert_eq!(node.loaded_md5("hs_holder"), p.md5(&v2, "hs_holder"));
    assert_eq!(node.eval("erlang:check_old_code(hs_holder)."), "true");
    assert_eq!(asked(&mut node), vec!["{1,1}"; 3], "every keeper lives");

    // v3 needs v1's slot: refused, each keeper named with where its fun is.
    let (code, json, stderr) = p.deploy(&[&node], &["--ebin", &ebin(&v3)]);
    assert_eq!(code, 5, "{json}\n{stderr}");
    assert_eq!(whys(&node_json(&json, &node)["lingering"]), expected_whys());
    assert_eq!(node.loaded_md5("hs_holder"), p.md5(&v2, "hs_holder"));
    assert_eq!(asked(&mut node), vec!["{1,1}"; 3], "nothing was purged");

    // A rollback to v1 needs the slot as well.
    let (code, json, stderr) = p.deploy(&[&node], &["--rollback"]);
    assert_eq!(code, 5, "{json}\n{stderr}");
    assert_eq!(whys(&node_json(&json, &node)["lingering"]), expected_whys());
    assert_eq!(node.loaded_md5("hs_holder"), p.md5(&v2, "hs_holder"));
    assert_eq!(asked(&mut node), vec!["{1,1}"; 3]);

    // --force purges all the same, and names who is doomed.
    let (code, json, stderr) = p.deploy(&[&node], &["--ebin", &ebin(&v3), "--force"]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert_eq!(whys(&node_json(&json, &node)["doomed"]), expected_whys());
    assert!(stderr.contains("which --force purged"), "{stderr}");
    // The doomed are watched after the change like any process it touched.
    assert_eq!(node_json(&json, &node)["watched"], 3, "{json}");
    assert_eq!(node.loaded_md5("hs_holder"), p.md5(&v3, "hs_holder"));
    for answer in asked(&mut node) {
        assert!(answer.contains("badfun"), "{answer}");
    }
}

#[test]
fn old_code_that_made_funs_nobody_keeps_goes_when_the_next_load_needs_it() {
    let p = Project::new();
    let v1 = p.build(1, &["hs_holder"]);
    let (v2, v3) = (p.build(2, &["hs_holder"]), p.build(3, &["hs_holder"]));
    let cookie = common::random_cookie();
    let mut node = start_node("funs_free", &v1, &cookie, &["hs_holder"]);
    // A fun of the current code, kept: it is not the old code's.
    node.eval("register(hs_current, spawn(fun() -> F = hs_holder:make(), receive {From, x} -> From ! F(1) end end)).");

    p.deploy_ok(&[&node], &["--ebin", &ebin(&v2)]);
    node.eval("register(hs_fresh, spawn(fun() -> put(f, hs_holder:make()), receive {From, x} -> From ! (get(f))(1) end end)).");
    let (json, stderr) = p.deploy_ok(&[&node], &["--ebin", &ebin(&v3)]);
    assert!(
        node_json(&json, &node).get("doomed").is_none(),
        "{json}\n{stderr}"
    );
    assert_eq!(node.loaded_md5("hs_holder"), p.md5(&v3, "hs_holder"));
    // The fun made by v2 (old now, but its slot is not needed yet) works.
    assert_eq!(
        node.eval("hs_fresh ! {self(), x}, receive R -> R after 5000 -> timeout end."),
        "{2,1}"
    );
}
