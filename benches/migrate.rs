//! What migrating running processes through `code_change` costs: one
//! module (`hs_counter`) run by 1, 100 and 1,000 gen_server processes,
//! deployed with migration and with `--no-code-change` (the baseline, in
//! the same run, interleaved, each on its own node), on loopback and over
//! a 20 ms round trip. Figures: the whole process (as a user waits for the
//! command, one deploy every few hundred ms) and the longest suspension of
//! a process, as the node measured it (`suspended_ms`: from the first
//! suspend sent to the last resume answered, in flight), against the
//! window of OTP's release handler's way (sys:suspend, change_code and
//! resume one process after the other, compiled, on a node of its own
//! with as many processes: `benches/support/release_handler_way.erl`).
//! Run by scripts/bench.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::{ErlNode, NodeSpec};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{hotswap_json, median, ms, runs};

fn main() {
    // `cargo test --all-targets` runs benches without `--bench`: only check they build.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let work = tempfile::tempdir().expect("tmp");
    let builds: Vec<PathBuf> = (1..=2)
        .map(|v| {
            let out = work.path().join(format!("v{v}"));
            let source = common::fixture("deploy/hs_counter.erl");
            common::erlc(&[source], &out, &[&format!("-DVSN={v}")]);
            out
        })
        .collect();
    let way = work.path().join("release_handler_way");
    let source =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/support/release_handler_way.erl");
    common::erlc(&[source], &way, &[]);
    println!("\nOne module run by N processes, with migration (code_change) and without (--no-code-change); whole process, and the longest suspension (in flight, as the node measured it):\n\n| link | processes | with migration | without | ratio | longest suspension | release handler's way | vs its way |\n|---|---|---|---|---|---|---|---|");
    let delay = Duration::from_millis(10);
    let link = common::slowlink::SlowLink::start(hotswap_node::peer::epmd::epmd_port(), delay);
    let slow = vec![("ERL_EPMD_PORT", link.epmd_port.to_string())];
    for (label, env) in [("loopback", Vec::new()), ("20 ms RTT", slow)] {
        for n in [1usize, 100, 1000] {
            println!("{}", row(label, n, &builds, &way, &env));
        }
    }
}

/// A node running v1 of the counter in `n` processes.
fn counters(n: usize, cookie: &str, v1: &Path, way: &Path) -> ErlNode {
    let spec = NodeSpec::new("mig")
        .cookie(cookie)
        .code_path(v1)
        .code_path(way);
    let mut node = ErlNode::start(spec);
    let started = node.eval(&format!(
        "length([P || _ <- lists:seq(1, {n}), {{ok, P}} <- [gen_server:start(hs_counter, [], [])]])."
    ));
    assert_eq!(started, n.to_string());
    node
}

fn row(label: &str, n: usize, builds: &[PathBuf], way: &Path, env: &[(&str, String)]) -> String {
    let cookie = common::random_cookie();
    let migrating = counters(n, &cookie, &builds[0], way);
    let plain = counters(n, &cookie, &builds[0], way);
    let mut otp = counters(n, &cookie, &builds[0], way);
    let (mut with, mut without, mut suspended) = (Vec::new(), Vec::new(), Vec::new());
    let mut windows = Vec::new();
    for r in 0..runs() {
        let ebin = &builds[(r + 1) % 2];
        // Without the watch after the change (`--observe`, a second by
        // default), which is no part of migrating.
        let (took, json) = hotswap_json(
            &[ebin],
            std::slice::from_ref(&migrating.name),
            &cookie,
            &["--observe", "0"],
            env,
        );
        let report = &json["nodes"][0];
        assert_eq!(
            report["migrated"].as_array().map_or(0, Vec::len),
            n,
            "{json}"
        );
        with.push(took);
        let longest = report["suspended_ms"].as_f64().unwrap_or(f64::NAN);
        suspended.push(Duration::from_secs_f64(longest / 1e3));
        std::thread::sleep(Duration::from_millis(300));
        let extra = ["--no-code-change"];
        let (took, _) = hotswap_json(
            &[ebin],
            std::slice::from_ref(&plain.name),
            &cookie,
            &extra,
            env,
        );
        without.push(took);
        std::thread::sleep(Duration::from_millis(300));
        let us = otp.eval("release_handler_way:window(hs_counter, 1).");
        windows.push(Duration::from_micros(us.parse().unwrap_or(0)));
    }
    let (w, wo) = (median(with), median(without));
    let (s, otp) = (median(suspended), median(windows));
    format!(
        "| {label} | {n} | {} | {} | {:.2}× | {:.2} ms | {:.2} ms | {:.2}× |",
        ms(w),
        ms(wo),
        w.as_secs_f64() / wo.as_secs_f64().max(1e-9),
        s.as_secs_f64() * 1e3,
        otp.as_secs_f64() * 1e3,
        s.as_secs_f64() / otp.as_secs_f64().max(1e-9)
    )
}
