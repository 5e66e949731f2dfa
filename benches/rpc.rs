//! RPC speed on loopback: median round trip of one `rex` call, and calls
//! per second with 100 in flight, against Erlang's own `rpc:call/4` from a
//! second node to the same target, measured in the same run.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{ErlNode, NodeSpec};
use hotswap_node::peer::{Cookie, Peer, PeerOptions};
use std::time::{Duration, Instant};

const SEQUENTIAL: usize = 2000;
const IN_FLIGHT: usize = 100;
const TOTAL: usize = 20_000;

fn main() {
    // `cargo test --all-targets` runs benches without `--bench`: only check they build.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let target = ErlNode::start(NodeSpec::new("rpcbench"));
    let mut other = ErlNode::start(NodeSpec::new("rpcbase").cookie(&target.cookie));

    let (median_rtt, per_sec) = runtime.block_on(async {
        let peer = Peer::start(
            PeerOptions::new(Cookie::new(target.cookie.clone())).name(common::unique("hsrpc")),
            &[target.node_name()],
        )
        .await
        .expect("peer");
        let conn = peer.connect(&target.node_name()).await.expect("connect");
        let t = Duration::from_secs(10);
        for _ in 0..200 {
            conn.call("erlang", "node", vec![], t)
                .await
                .expect("warm up");
        }
        let mut rtts = Vec::with_capacity(SEQUENTIAL);
        for _ in 0..SEQUENTIAL {
            let started = Instant::now();
            conn.call("erlang", "node", vec![], t).await.expect("call");
            rtts.push(started.elapsed());
        }
        rtts.sort();
        let started = Instant::now();
        let workers: Vec<_> = (0..IN_FLIGHT)
            .map(|_| {
                let conn = conn.clone();
                tokio::spawn(async move {
                    for _ in 0..TOTAL / IN_FLIGHT {
                        conn.call("erlang", "node", vec![], t).await.expect("call");
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.expect("worker");
        }
        (
            rtts[rtts.len() / 2],
            TOTAL as f64 / started.elapsed().as_secs_f64(),
        )
    });

    let base_rtt_us: f64 = other
        .eval(&format!(
            "T = '{}', rpc:call(T, erlang, node, []), {{Us, _}} = timer:tc(fun() -> [rpc:call(T, erlang, node, []) || _ <- lists:seq(1, {SEQUENTIAL})] end), Us / {SEQUENTIAL}.",
            target.name
        ))
        .parse()
        .unwrap_or(f64::NAN);
    let raw = other
        .eval(&format!(
            "T2 = '{}', Self = self(), {{Us2, _}} = timer:tc(fun() -> Ps = [spawn(fun() -> [rpc:call(T2, erlang, node, []) || _ <- lists:seq(1, {})], Self ! done end) || _ <- lists:seq(1, {IN_FLIGHT})], [receive done -> ok end || _ <- Ps] end), {TOTAL} / (Us2 / 1.0e6).",
            target.name,
            TOTAL / IN_FLIGHT
        ));
    let base_per_sec: f64 = raw.parse().unwrap_or_else(|_| {
        eprintln!("baseline throughput run said: {raw}");
        f64::NAN
    });
    let rtt_us = median_rtt.as_secs_f64() * 1e6;
    println!(
        "\n| rex on loopback | hotswap-node | Erlang node's rpc:call | ratio |\n|---|---|---|---|"
    );
    println!("| round trip (median of {SEQUENTIAL}; Erlang: mean) | {rtt_us:.0} µs | {base_rtt_us:.0} µs | {:.2}× |", base_rtt_us / rtt_us);
    println!(
        "| calls/s, {IN_FLIGHT} in flight | {per_sec:.0} | {base_per_sec:.0} | {:.2}× |",
        per_sec / base_per_sec
    );
}
