//! `--timings`: where a run's wall time went, stage by stage, against real
//! nodes. The stages must cover the run (what none covers is said), lie
//! within the process's own wall time as measured from outside, name each
//! node's connection and its part of the work, and count the round trips;
//! asking for them changes nothing else the run prints. Each deploy's
//! effect is read back from the nodes.

mod common;

use common::project::{arg, start_node, Project};
use common::watcher::Watcher;
use common::{unique, ErlNode};
use serde_json::Value;
use std::path::Path;
use std::time::Instant;

fn stages(timings: &Value) -> &Vec<Value> {
    timings["stages"].as_array().expect("stages")
}

/// The rows of `stage` (and of `node`, if given).
fn rows<'a>(timings: &'a Value, stage: &str, node: Option<&str>) -> Vec<&'a Value> {
    stages(timings)
        .iter()
        .filter(|s| s["stage"].as_str().is_some_and(|n| n.starts_with(stage)))
        .filter(|s| node.is_none_or(|node| s["node"] == node))
        .collect()
}

fn ms(v: &Value) -> f64 {
    v.as_f64().expect("a number of milliseconds")
}

/// Every stage lies within the total, and the stages and the time between
/// them add up to it.
fn consistent(timings: &Value, wall_ms: f64) {
    let total = ms(&timings["total_ms"]);
    assert!(
        total > 0.0 && total <= wall_ms,
        "{total} ms of {wall_ms} ms: {timings:#}"
    );
    let mut spans: Vec<(f64, f64)> = Vec::new();
    for s in stages(timings) {
        let (at, took) = (ms(&s["at_ms"]), ms(&s["took_ms"]));
        assert!(at >= 0.0 && took >= 0.0 && at + took <= total + 0.01, "{s}");
        spans.push((at, at + took));
    }
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut covered, mut reach) = (0.0, 0.0_f64);
    for (from, to) in spans {
        covered += (to - from.max(reach)).max(0.0);
        reach = reach.max(to);
    }
    let between = ms(&timings["between_stages_ms"]);
    assert!(
        (covered + between - total).abs() < 0.05,
        "{covered} + {between} != {total}"
    );
}

fn runs(node: &mut ErlNode, p: &Project, ebin: &Path) {
    assert_eq!(
        node.loaded_md5("hs_greet"),
        p.md5(ebin, "hs_greet"),
        "{}",
        node.name
    );
}

#[test]
fn a_deploy_says_where_its_time_went_stage_by_stage_and_node_by_node() {
    let p = Project::new();
    let v: Vec<_> = (1..=4).map(|i| p.build(i, &["hs_greet"])).collect();
    let cookie = common::random_cookie();
    let mut a = start_node("tm_a", &v[0], &cookie, &["hs_greet"]);
    let mut b = start_node("tm_b", &v[0], &cookie, &["hs_greet"]);

    // First deploy: nothing known, so each node is looked up in EPMD and
    // inspected before the apply step.
    let started = Instant::now();
    let (json, _) = p.deploy_ok(&[&a, &b], &["--ebin", &arg(&v[1]), "--timings"]);
    let wall = started.elapsed().as_secs_f64() * 1e3;
    let t = &json["timings"];
    consistent(t, wall);
    for stage in [
        "start",
        "settings",
        "store lock",
        "peer start",
        "read beams",
        "lock and inspect",
    ] {
        assert_eq!(rows(t, stage, None).len(), 1, "{stage}: {t:#}");
    }
    for n in [&a, &b] {
        let connect = rows(t, "connect", Some(&n.name));
        assert_eq!(connect.len(), 1, "{t:#}");
        let parts = connect[0]["parts"].as_object().expect("parts");
        let names: Vec<&str> = parts.keys().map(String::as_str).collect();
        for part in ["epmd", "tcp", "handshake"] {
            assert!(names.contains(&part), "{names:?}");
        }
        // EPMD two, TCP one, the handshake two.
        assert_eq!(connect[0]["trips"], 5, "{t:#}");
        for stage in [
            "node: prepare",
            "node: wait for the word",
            "node: load and migrate",
        ] {
            assert_eq!(rows(t, stage, Some(&n.name)).len(), 1, "{stage}: {t:#}");
        }
    }
    // Connecting 5, then inspect, apply, the word and goodbye: one
    // request each to every node.
    assert_eq!(rows(t, "lock and inspect", None)[0]["trips"], 1, "{t:#}");
    assert_eq!(rows(t, "goodbye", None)[0]["trips"], 1, "{t:#}");
    assert_eq!(t["round_trips"], 9, "{t:#}");
    runs(&mut a, &p, &v[1]);
    runs(&mut b, &p, &v[1]);

    // Then the ports are remembered and the states believed: one flight.
    let started = Instant::now();
    let (json, _) = p.deploy_ok(&[&a, &b], &["--ebin", &arg(&v[2]), "--timings"]);
    let wall = started.elapsed().as_secs_f64() * 1e3;
    let t = &json["timings"];
    consistent(t, wall);
    let flight = rows(
        t,
        "flight (lock, inspect, prepare, word, load, migrate)",
        None,
    );
    assert_eq!(flight.len(), 1, "{t:#}");
    assert!(rows(t, "lock and inspect", None).is_empty(), "{t:#}");
    for n in [&a, &b] {
        let connect = rows(t, "connect", Some(&n.name));
        let parts = connect[0]["parts"].as_object().expect("parts");
        assert!(!parts.contains_key("epmd"), "{t:#}");
        assert_eq!(
            rows(t, "node: load and migrate", Some(&n.name)).len(),
            1,
            "{t:#}"
        );
    }
    runs(&mut a, &p, &v[2]);
    runs(&mut b, &p, &v[2]);

    // In text, the table goes to stderr; stdout is the report as ever.
    let name = unique("hs");
    let mut args = vec![
        "deploy",
        "--ebin",
        v[3].to_str().expect("utf-8"),
        "--timings",
    ];
    args.extend([
        "--node", &a.name, "--node", &b.name, "--cookie", &cookie, "--name", &name,
    ]);
    let out = p.run(&args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains("Timings") && stdout.contains("done in"),
        "{stdout}"
    );
    assert!(stderr.contains("Timings of this run: "), "{stderr}");
    assert!(
        stderr.contains(&format!("connect {} (tcp ", a.name)),
        "{stderr}"
    );
    assert!(stderr.contains("between the stages"), "{stderr}");
    runs(&mut a, &p, &v[3]);
    runs(&mut b, &p, &v[3]);

    // Without the flag, no timings.
    let (json, stderr) = p.deploy_ok(&[&a, &b], &["--ebin", &arg(&v[0])]);
    assert!(
        json.get("timings").is_none() && !stderr.contains("Timings"),
        "{json}"
    );
    runs(&mut a, &p, &v[0]);
}

#[test]
fn watch_says_where_each_change_went() {
    let p = Project::new();
    let v1 = p.build(1, &["hs_greet"]);
    let v2 = p.build(2, &["hs_greet"]);
    let watched = p.path().join("watched");
    common::copy_dir(&v1, &watched);
    let cookie = common::random_cookie();
    let mut node = start_node("tm_w", &v1, &cookie, &["hs_greet"]);
    let name = unique("hsw");
    let args = [
        "--no-build",
        "--ebin",
        "watched",
        "--name",
        &name,
        "--node",
        &node.name,
        "--cookie",
        &cookie,
        "--timings",
    ];
    let mut w = Watcher::start(p.path(), p.path(), &args);
    w.wait_stderr("Watching");
    let beam = "hs_greet.beam";
    let tmp = watched.join(format!(".{beam}.tmp"));
    std::fs::copy(v2.join(beam), &tmp).expect("copy");
    std::fs::rename(&tmp, watched.join(beam)).expect("rename");
    let event = w.wait_loaded("hs_greet");
    let t = &event["timings"];
    assert!(ms(&t["total_ms"]) > 0.0, "{event}");
    assert_eq!(rows(t, "read beams", None).len(), 1, "{event}");
    assert_eq!(
        rows(t, "node: load and migrate", Some(&node.name)).len(),
        1,
        "{event}"
    );
    // The connection was made before the change: not in it.
    assert!(rows(t, "connect", None).is_empty(), "{event}");
    assert_eq!(w.interrupt(), 0);
    assert_eq!(node.loaded_md5("hs_greet"), p.md5(&v2, "hs_greet"));
}
