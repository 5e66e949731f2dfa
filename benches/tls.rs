//! TLS distribution against plain distribution, measured in the same run
//! on the same machine, interleaved: the same deploys to plain nodes and
//! to nodes on `-proto_dist inet_tls` that require a client certificate.
//! Run by scripts/bench (`scripts/bench tls`).
//!
//! `BENCH_RUNS` sets the runs per figure (default 5); an argument filters
//! scenarios by name (`loopback`, `real`, `slow`).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::tls::Pki;
use common::{ErlNode, NodeSpec};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{generate, hotswap_timed, median, ms, runs, Operator};

fn main() {
    // `cargo test --all-targets` runs benches without `--bench`: only check they build.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let work = tempfile::tempdir().expect("tmp");
    let v1 = generate(&work.path().join("v1_30"), 30, 1);
    let v2 = generate(&work.path().join("v2_30"), 30, 2);
    let pki = Pki::new("bench_tls");

    println!("\nTLS 1.3 against plain, loopback, 2 nodes (TLS nodes require a client certificate):\n\n| scenario | plain | TLS | TLS ÷ plain |\n|---|---|---|---|");
    if wanted("loopback") {
        for row in thirty_modules(&pki, &v1, &v2) {
            println!("{row}");
        }
        println!("{}", erlang_connect(&pki));
    }
    if wanted("real") {
        for row in real_world(&pki).unwrap_or_default() {
            println!("{row}");
        }
    }
    if wanted("slow") {
        slow_link(&pki, work.path());
    }
}

/// A node `tag`, plain or on TLS `version` with the node certificate.
fn spec(pki: &Pki, tag: &str, tls: Option<&str>, cookie: &str) -> NodeSpec {
    let spec = NodeSpec::new(tag).cookie(cookie);
    match tls {
        Some(version) => spec.tls(&pki.dist_optfile(&pki.node, version)),
        None => spec,
    }
}

/// Two nodes, plain or TLS, holding the 30 modules of `ebin` loaded.
fn pair(pki: &Pki, tls: Option<&str>, cookie: &str, ebin: &Path) -> Vec<ErlNode> {
    (0..2)
        .map(|_| {
            let mut node = ErlNode::start(spec(pki, "bench_tls", tls, cookie).code_path(ebin));
            node.eval("[code:ensure_loaded(list_to_atom(\"hs_bench_\" ++ integer_to_list(I))) || I <- lists:seq(1, 30)].");
            node
        })
        .collect()
}

fn names(nodes: &[ErlNode]) -> Vec<String> {
    nodes.iter().map(|n| n.name.clone()).collect()
}

/// Connect and deploy 30 changed modules to 2 nodes, plain and TLS in
/// each run, versions alternating: the whole process, and in flight.
fn thirty_modules(pki: &Pki, v1: &Path, v2: &Path) -> Vec<String> {
    let cookie = common::random_cookie();
    let plain = pair(pki, None, &cookie, v1);
    let tls = pair(pki, Some("tlsv1.3"), &cookie, v1);
    let args = pki.tool_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (mut plain_wall, mut plain_flight, mut tls_wall, mut tls_flight) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in 0..runs() {
        let ebin = if r % 2 == 0 { v2 } else { v1 };
        // Which goes first alternates; each finds nodes that have finished
        // purging, and the other pair idle.
        for tls_turn in [r % 2 == 1, r % 2 == 0] {
            if tls_turn {
                let (wall, flight) = hotswap_timed(&[ebin], &names(&tls), &cookie, &args, &[]);
                tls_wall.push(wall);
                tls_flight.push(flight);
            } else {
                let (wall, flight) = hotswap_timed(&[ebin], &names(&plain), &cookie, &[], &[]);
                plain_wall.push(wall);
                plain_flight.push(flight);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    vec![
        row(
            "connect + 30 changed modules, whole process",
            median(plain_wall),
            median(tls_wall),
        ),
        row(
            "30 changed modules, in flight (once connected)",
            median(plain_flight),
            median(tls_flight),
        ),
    ]
}

/// The nodes' own cost of a TLS connection: an Erlang node connecting to
/// another (`net_adm:ping`, then disconnecting), plain and TLS 1.3, timed
/// on the connecting node. What TLS adds here, the nodes add to any
/// client's connection.
fn erlang_connect(pki: &Pki) -> String {
    let cookie = common::random_cookie();
    let time_pings = |tls: Option<&str>| {
        let empty = tempfile::tempdir().expect("tmp");
        let target = &fresh(pki, tls, &cookie, empty.path())[0];
        let mut pinger = ErlNode::start(spec(pki, "bench_pinger", tls, &cookie));
        let micros = pinger.eval(&format!(
            "T = lists:map(fun(_) -> {{U, pong}} = timer:tc(net_adm, ping, ['{0}']), true = erlang:disconnect_node('{0}'), timer:sleep(100), U end, lists:seq(1, {1})), lists:nth({1} div 2 + 1, lists:sort(T)).",
            target.name,
            runs().max(3)
        ));
        Duration::from_micros(micros.trim().parse().unwrap_or(0))
    };
    let plain = time_pings(None);
    let tls = time_pings(Some("tlsv1.3"));
    row(
        "Erlang's own connect, node to node (net_adm:ping)",
        plain,
        tls,
    )
}

/// Debian's 436 real-world beams to 2 fresh nodes with --verify, whole
/// process, plain and TLS; and Erlang's best way to load them
/// (`erpc:multicall` of `atomic_load` from an operator node, in flight),
/// plain and TLS: what TLS costs the nodes themselves for that payload.
fn real_world(pki: &Pki) -> Option<Vec<String>> {
    let ebins = support::real_world_ebins()?;
    let dirs: Vec<&Path> = ebins.iter().map(PathBuf::as_path).collect();
    let count: usize = dirs.iter().map(|d| support::beams(d).len()).sum();
    let cookie = common::random_cookie();
    let empty = tempfile::tempdir().expect("tmp");
    let args = pki.tool_args();
    let mut tls_args: Vec<&str> = args.iter().map(String::as_str).collect();
    tls_args.push("--verify");
    let (mut plain, mut tls, mut best_plain, mut best_tls) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs() {
        let nodes = fresh(pki, None, &cookie, empty.path());
        plain.push(hotswap_timed(&dirs, &names(&nodes), &cookie, &["--verify"], &[]).0);
        let nodes = fresh(pki, Some("tlsv1.3"), &cookie, empty.path());
        tls.push(hotswap_timed(&dirs, &names(&nodes), &cookie, &tls_args, &[]).0);
        let nodes = fresh(pki, None, &cookie, empty.path());
        best_plain.push(
            Operator::start_as(spec(pki, "operator", None, &cookie), &names(&nodes))
                .erlang_best(&dirs),
        );
        let nodes = fresh(pki, Some("tlsv1.3"), &cookie, empty.path());
        let mut op = Operator::start_as(
            spec(pki, "operator", Some("tlsv1.3"), &cookie),
            &names(&nodes),
        );
        best_tls.push(op.erlang_best(&dirs));
    }
    Some(vec![
        row(
            &format!("{count} real-world beams to 2 fresh nodes, --verify, whole process"),
            median(plain),
            median(tls),
        ),
        row(
            &format!("{count} real-world beams, Erlang's best (erpc:multicall of atomic_load, in flight)"),
            median(best_plain),
            median(best_tls),
        ),
    ])
}

/// Two nodes without the modules, left idle a second, as a deploy finds
/// nodes that are up.
fn fresh(pki: &Pki, tls: Option<&str>, cookie: &str, empty: &Path) -> Vec<ErlNode> {
    let nodes = (0..2)
        .map(|_| ErlNode::start(spec(pki, "bench_fresh", tls, cookie).code_path(empty)))
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    nodes
}

fn row(name: &str, plain: Duration, tls: Duration) -> String {
    format!(
        "| {name} | {} | {} | {:.2}× |",
        ms(plain),
        ms(tls),
        tls.as_secs_f64() / plain.as_secs_f64()
    )
}

/// At 20 ms round trip (the EPMD-aware delaying proxy), connect + 30
/// changed modules to 2 nodes: plain, TLS 1.3 and TLS 1.2, in round trips
/// and in bytes sent to the nodes.
fn slow_link(pki: &Pki, work: &Path) {
    let delay = Duration::from_millis(10);
    let rtt = 2 * delay;
    let link = common::slowlink::SlowLink::start(hotswap_node::peer::epmd::epmd_port(), delay);
    let env = vec![("ERL_EPMD_PORT", link.epmd_port.to_string())];
    let a = generate(&work.join("slow_a"), 30, 1);
    let b = generate(&work.join("slow_b"), 30, 2);
    let cookie = common::random_cookie();
    let args = pki.tool_args();
    let tls_args: Vec<&str> = args.iter().map(String::as_str).collect();
    println!(
        "\nSlow link, {} ms round trip (proxy on loopback), connect + 30 changed modules to 2 nodes; whole process, and bytes sent to the nodes (connections included):\n\n| distribution | whole process | in RTTs | bytes sent |\n|---|---|---|---|",
        rtt.as_millis()
    );
    let kinds = [
        ("plain", None),
        ("TLS 1.3", Some("tlsv1.3")),
        ("TLS 1.2", Some("tlsv1.2")),
    ];
    let pairs: Vec<Vec<ErlNode>> = kinds
        .iter()
        .map(|(_, version)| pair(pki, *version, &cookie, &a))
        .collect();
    let mut took = vec![Vec::new(); kinds.len()];
    let mut bytes = vec![Vec::new(); kinds.len()];
    // Interleaved, each deploy finding every node idle.
    for r in 0..runs() {
        let ebin = if r % 2 == 0 { &b } else { &a };
        for (i, (_, version)) in kinds.iter().enumerate() {
            let extra: &[&str] = if version.is_some() { &tls_args } else { &[] };
            let before = link.sent_to_nodes();
            took[i].push(hotswap_timed(&[ebin], &names(&pairs[i]), &cookie, extra, &env).0);
            bytes[i].push(link.sent_to_nodes() - before);
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    for (i, (label, _)) in kinds.iter().enumerate() {
        let mut sent = bytes[i].clone();
        sent.sort_unstable();
        let t = median(took[i].clone());
        println!(
            "| {label} | {} | {:.1} | {:.1} KB |",
            ms(t),
            t.as_secs_f64() / rtt.as_secs_f64(),
            sent[sent.len() / 2] as f64 / 1e3
        );
    }
}
