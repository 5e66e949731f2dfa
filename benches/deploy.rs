//! Deploy speed against the seed's way (`mix upload.hotswap`'s loop,
//! scripts/baseline_upload.exs), measured in the same run on the same
//! nodes and beams, interleaved; medians and ratios. Run by scripts/bench.
//!
//! `BENCH_RUNS` sets the runs per figure (default 5); an argument filters
//! scenarios by name (`cargo bench --bench deploy -- slow`).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::{ErlNode, NodeSpec};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::floor::{self, Connector};
use support::{baseline, generate, hotswap, hotswap_timed, median, ms, runs, Operator};

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
    let mut rows = Vec::new();
    let mut flights = Vec::new();

    for k in [1usize, 2, 16] {
        let name = format!(
            "30 changed modules to {k} node{}",
            if k > 1 { "s" } else { "" }
        );
        if wanted(&name) {
            let (row, flight) = changed_modules(&name, &v1, &v2, k);
            rows.push(row);
            flights.push(flight);
        }
    }
    if wanted("no-change") {
        rows.push(no_change(&v1));
    }
    if wanted("elixir") {
        rows.push(large_payload());
    }
    if wanted("real") {
        if let Some((row, flight)) = real_world() {
            rows.push(row);
            flights.push(flight);
        }
    }
    if wanted("device") {
        if let Some((row, flight)) = device(&v1, &v2) {
            rows.push(row);
            flights.push(flight);
        }
    }
    println!("\nWhole process (as a user waits for the command; the floor: a process of this binary that starts and exits, Erlang's own connect to the nodes as a hidden node, and Erlang's best in flight, each measured in the same run):\n\n| scenario | hotswap-node | seed's way | vs seed | floor | vs floor |\n|---|---|---|---|---|---|");
    for r in &rows {
        println!("{r}");
    }
    println!("\nIn flight (once connected, until every node runs the new code; hotswap-node: lock, inspect, snapshot, load):\n\n| scenario | hotswap-node | seed's load loop | Erlang's best | same flight compiled | vs seed | vs Erlang's best |\n|---|---|---|---|---|---|---|");
    for f in &flights {
        println!("{f}");
    }
    if wanted("recording") {
        recording(&v1, &v2);
    }
    if wanted("slow") {
        slow_link(work.path());
    }
    if wanted("memory") {
        peak_memory();
    }
}

fn start_nodes(k: usize, cookie: &str, ebin: &Path, load: bool) -> Vec<ErlNode> {
    (0..k)
        .map(|_| {
            let mut n = ErlNode::start(NodeSpec::new("bench").cookie(cookie).code_path(ebin));
            if load {
                n.eval("[code:ensure_loaded(list_to_atom(\"hs_bench_\" ++ integer_to_list(I))) || I <- lists:seq(1, 30)].");
            }
            n
        })
        .collect()
}

/// `k` nodes without the modules, left idle for a second before a
/// contender's run: a deploy finds nodes that are up, not booting, and
/// Erlang's best gets that much and more while its operator node starts.
fn fresh_nodes(k: usize, cookie: &str, empty: &Path) -> Vec<ErlNode> {
    let nodes = start_nodes(k, cookie, empty, false);
    std::thread::sleep(Duration::from_secs(1));
    nodes
}

fn names(nodes: &[ErlNode]) -> Vec<String> {
    nodes.iter().map(|n| n.name.clone()).collect()
}

/// Every run changes all 30 modules for hotswap-node and for Erlang's
/// best: the seed's way loads version A (it loads everything regardless),
/// hotswap-node deploys B, an operator node's erpc:multicall loads A.
fn changed_modules(name: &str, v1: &Path, v2: &Path, k: usize) -> (String, String) {
    let cookie = common::random_cookie();
    let nodes = start_nodes(k, &cookie, v1, true);
    let targets = names(&nodes);
    let mut operator = Operator::start(&targets, &cookie);
    let mut connector = Connector::start(&targets, &cookie);
    let (mut hot, mut flight, mut base, mut base_loop, mut best) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut compiled, mut process, mut connect) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..runs() {
        let (a, b) = if r % 2 == 0 { (v1, v2) } else { (v2, v1) };
        let (wall, inner) = baseline(a, &targets, &cookie, &[]);
        base.push(wall);
        base_loop.push(inner);
        // Every contender starts from a node without old code.
        operator.purge(&[a]);
        let (wall, in_flight) = hotswap_timed(&[b], &targets, &cookie, &[], &[]);
        hot.push(wall);
        flight.push(in_flight);
        std::thread::sleep(Duration::from_millis(200));
        best.push(operator.erlang_best(&[a]));
        std::thread::sleep(Duration::from_millis(200));
        compiled.push(operator.compiled_flight(b));
        process.push(floor::process());
        connect.push(connector.connect_all());
    }
    let (h, b) = (median(hot), median(base));
    let (p, c, e) = (median(process), median(connect), median(best.clone()));
    eprintln!(
        "{name}: the floor {} = a process that starts and exits {} + Erlang's connect {} + Erlang's best in flight {}",
        ms(p + c + e),
        ms(p),
        ms(c),
        ms(e)
    );
    let floor = if k == 1 {
        vm_floor(&nodes[0], v1, v2)
    } else {
        String::new()
    };
    eprintln!(
        "{name}: hotswap-node {} (whole run), seed {} (whole run), seed's load loop alone {}{floor}",
        ms(h),
        ms(b),
        ms(median(base_loop.clone()))
    );
    (
        row(name, h, b, Some(p + c + e)),
        flight_row(
            name,
            median(flight),
            median(base_loop),
            median(best),
            Some(median(compiled)),
        ),
    )
}

/// What `--timings`' recording costs a deploy, since it is always on (the
/// flag only prints it): 30 changed modules to 2 nodes, its whole process
/// (median), against the stages and round trips one such deploy records,
/// recorded as the tool records them, and the node's five clock reads in
/// its apply step, evaluated by `erl_eval` as the step is (per node; the
/// nodes read theirs at the same time).
fn recording(v1: &Path, v2: &Path) {
    let cookie = common::random_cookie();
    let mut nodes = start_nodes(2, &cookie, v1, true);
    let targets = names(&nodes);
    let mut whole = Vec::new();
    let mut last = serde_json::Value::Null;
    for r in 0..runs() {
        let ebin = if r % 2 == 0 { v2 } else { v1 };
        let (took, json) = support::hotswap_json(&[ebin], &targets, &cookie, &["--timings"], &[]);
        whole.push(took);
        last = json;
        std::thread::sleep(Duration::from_millis(200));
    }
    let stages: Vec<Option<String>> = last["timings"]["stages"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s["node"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let trips = last["timings"]["round_trips"].as_u64().unwrap_or(0) as usize;
    const TIMES: u32 = 10_000;
    let started = Instant::now();
    for _ in 0..TIMES {
        for node in &stages {
            hotswap_node::timings::since("bench", node.as_deref(), Instant::now());
        }
        for _ in 0..trips {
            hotswap_node::timings::trip(&targets[0]);
        }
        hotswap_node::timings::clear();
    }
    let tool = started.elapsed() / TIMES;
    let node_us: f64 = nodes[0]
        .eval(
            "{ok, Ts, _} = erl_scan:string(\"T0 = erlang:monotonic_time(microsecond), \
             T1 = erlang:monotonic_time(microsecond), T2 = erlang:monotonic_time(microsecond), \
             T3 = erlang:monotonic_time(microsecond), T4 = erlang:monotonic_time(microsecond), \
             [T0, T1, T2, T3, T4].\"), {ok, Es} = erl_parse:parse_exprs(Ts), \
             {Us, _} = timer:tc(fun() -> [erl_eval:exprs(Es, #{}) || _ <- lists:seq(1, 1000)] end), \
             Us / 1000.",
        )
        .trim()
        .parse()
        .unwrap_or(f64::NAN);
    let w = median(whole);
    let cost = tool.as_secs_f64() * 1e6 + node_us;
    println!(
        "\nRecording where the time goes (always on; `--timings` only prints it), 30 changed modules to 2 nodes: the {} stages and {trips} round trips one deploy records take the tool {:.1} us to record, and each node's five clock reads {node_us:.1} us in its apply step: {:.3} % of the deploy's whole process ({}).",
        stages.len(),
        tool.as_secs_f64() * 1e6,
        cost / (w.as_secs_f64() * 1e6) * 100.0,
        ms(w)
    );
    drop(nodes.drain(..));
}

/// 30 changed modules to one node held to a tenth of one core, as a
/// Nerves device's CPU is to this machine's: hotswap-node in flight and as
/// a whole process, against Erlang's best on the same node and the floor.
fn device(v1: &Path, v2: &Path) -> Option<(String, String)> {
    let cookie = common::random_cookie();
    let mut nodes = start_nodes(1, &cookie, v1, true);
    let pid = nodes[0].eval("os:getpid().");
    let throttle = floor::Throttle::tenth_of_a_core(pid.trim().trim_matches('"'))?;
    let targets = names(&nodes);
    let mut operator = Operator::start(&targets, &cookie);
    let mut connector = Connector::start(&targets, &cookie);
    let (mut hot, mut flight, mut best, mut process, mut connect) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // The node runs v1: hotswap-node brings it v2, Erlang's best v1 again.
    for _ in 0..runs() {
        operator.purge(&[v1]);
        let (wall, in_flight) = hotswap_timed(&[v2], &targets, &cookie, &[], &[]);
        hot.push(wall);
        flight.push(in_flight);
        std::thread::sleep(Duration::from_millis(200));
        best.push(operator.erlang_best(&[v1]));
        std::thread::sleep(Duration::from_millis(200));
        process.push(floor::process());
        connect.push(connector.connect_all());
    }
    drop(throttle);
    let name = "30 changed modules to 1 node held to a tenth of a core";
    let (p, c, e) = (median(process), median(connect), median(best.clone()));
    eprintln!(
        "{name}: the floor {} = process {} + Erlang's connect {} + Erlang's best {}",
        ms(p + c + e),
        ms(p),
        ms(c),
        ms(e)
    );
    let h = median(hot);
    Some((
        format!(
            "| {name} | {} | — | — | {} | {:.2}× its time |",
            ms(h),
            ms(p + c + e),
            h.as_secs_f64() / (p + c + e).as_secs_f64()
        ),
        format!(
            "| {name} | {} | — | {} | — | — | {:.2}× its time |",
            ms(median(flight.clone())),
            ms(e),
            median(flight).as_secs_f64() / e.as_secs_f64()
        ),
    ))
}

/// The VM's own work for 30 modules in one node: `code:atomic_load/1`, then
/// `code:soft_purge/1` of each. The load is timed twice: right after the
/// node read the files and purged (caches warm, schedulers awake), and
/// again after 300 ms idle, as a deploy finds a node.
fn vm_floor(node: &ErlNode, v1: &Path, v2: &Path) -> String {
    let mut op = ErlNode::start(NodeSpec::new("floor30").cookie(&node.cookie));
    let (mut loads, mut purges, mut idle) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..runs() {
        let dir = if r % 2 == 0 { v1 } else { v2 };
        let out = op.eval(&format!(
            "(fun() -> Fs = filelib:wildcard(\"{}/*.beam\"), Ms = [{{list_to_atom(filename:basename(F, \".beam\")), F, element(2, file:read_file(F))}} || F <- Fs], \
             Purge = fun() -> [code:soft_purge(M) || {{M, _, _}} <- Ms] end, Purge(), {{T1, ok}} = timer:tc(code, atomic_load, [Ms]), \
             {{T2, _}} = timer:tc(Purge), timer:sleep(300), {{T3, ok}} = timer:tc(code, atomic_load, [Ms]), Purge(), {{T1, T2, T3}} end)().",
            dir.display()
        ));
        let nums: Vec<u64> = out
            .trim_matches(|c| c == '{' || c == '}')
            .split(',')
            .filter_map(|x| x.trim().parse().ok())
            .collect();
        if let [load, purge, after_idle] = nums[..] {
            loads.push(Duration::from_micros(load));
            purges.push(Duration::from_micros(purge));
            idle.push(Duration::from_micros(after_idle));
        }
    }
    if loads.is_empty() {
        return String::new();
    }
    format!(
        "; the VM's own atomic_load of the 30 in one node {} ({} on a node idle for 300 ms), then their soft_purge {}",
        ms(median(loads)),
        ms(median(idle)),
        ms(median(purges))
    )
}

/// Debian's ejabberd, jose, luerl and cowlib beams (scripts/bench unpacks
/// them into target/bench-beams) to 2 fresh nodes with --verify, against an
/// operator node's erpc:multicall of atomic_load on 2 other fresh nodes.
fn real_world() -> Option<(String, String)> {
    let ebins = support::real_world_ebins()?;
    let dirs: Vec<&Path> = ebins.iter().map(PathBuf::as_path).collect();
    let count: usize = dirs.iter().map(|d| support::beams(d).len()).sum();
    let size: u64 = dirs
        .iter()
        .flat_map(|d| support::beams(d))
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let cookie = common::random_cookie();
    let empty = tempfile::tempdir().expect("tmp");
    let (mut hot, mut flight, mut best, mut base, mut base_loop) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut own = Vec::new();
    for _ in 0..runs() {
        let nodes = fresh_nodes(2, &cookie, empty.path());
        let (wall, in_flight) = hotswap_timed(&dirs, &names(&nodes), &cookie, &["--verify"], &[]);
        hot.push(wall);
        flight.push(in_flight);
        let nodes = fresh_nodes(2, &cookie, empty.path());
        best.push(Operator::start(&names(&nodes), &cookie).erlang_best(&dirs));
        let nodes = fresh_nodes(2, &cookie, empty.path());
        let (wall, inner) = support::baseline_many(&dirs, &names(&nodes), &cookie);
        base.push(wall);
        base_loop.push(inner);
        own.push(own_atomic_load(&cookie, &dirs));
    }
    let name = format!(
        "{count} real-world beams ({:.0} MB) to 2 fresh nodes, --verify",
        size as f64 / 1e6
    );
    let own = median(own);
    eprintln!(
        "{name}: whole process {} against one VM's own atomic_load of them {} ({:.2}×)",
        ms(median(hot.clone())),
        ms(own),
        median(hot.clone()).as_secs_f64() / own.as_secs_f64()
    );
    Some((
        row(
            &format!("{name} (floor: one VM's own atomic_load)"),
            median(hot),
            median(base),
            Some(own),
        ),
        flight_row(&name, median(flight), median(base_loop), median(best), None),
    ))
}

/// One fresh VM's own `code:atomic_load/1` of the beams of `dirs`, read
/// from disk first (untimed).
fn own_atomic_load(cookie: &str, dirs: &[&Path]) -> Duration {
    let mut fresh = ErlNode::start(NodeSpec::new("own").cookie(cookie));
    let list: Vec<String> = dirs
        .iter()
        .map(|d| format!("\"{}\"", d.display()))
        .collect();
    let micros = fresh.eval(&format!(
        "(fun() -> Fs = lists:append([filelib:wildcard(D ++ \"/*.beam\") || D <- [{}]]), \
         L = [{{list_to_atom(filename:basename(F, \".beam\")), F, element(2, file:read_file(F))}} || F <- Fs], \
         {{T, ok}} = timer:tc(code, atomic_load, [L]), T end)().",
        list.join(",")
    ));
    Duration::from_micros(micros.trim().parse().unwrap_or(0))
}

/// `compiled`: the same flight as compiled code on the nodes
/// (benches/support/compiled_flight.erl), where measured.
fn flight_row(
    name: &str,
    hot: Duration,
    seed: Duration,
    best: Duration,
    compiled: Option<Duration>,
) -> String {
    format!(
        "| {name} | {} | {} | {} | {} | {:.1}× faster | {:.2}× its time |",
        ms(hot),
        ms(seed),
        ms(best),
        compiled.map_or("—".to_owned(), ms),
        seed.as_secs_f64() / hot.as_secs_f64(),
        hot.as_secs_f64() / best.as_secs_f64()
    )
}

/// A whole-process row: against the seed's way and, where measured, the
/// floor (a process that starts and exits, Erlang's connect, Erlang's best
/// in flight).
fn row(name: &str, hot: Duration, base: Duration, floor: Option<Duration>) -> String {
    let (floor, vs) = match floor {
        Some(f) => (
            ms(f),
            format!("{:.2}× its time", hot.as_secs_f64() / f.as_secs_f64()),
        ),
        None => ("—".to_owned(), "—".to_owned()),
    };
    format!(
        "| {name} | {} | {} | {:.1}× faster | {floor} | {vs} |",
        ms(hot),
        ms(base),
        base.as_secs_f64() / hot.as_secs_f64()
    )
}

fn no_change(v1: &Path) -> String {
    let cookie = common::random_cookie();
    let nodes = start_nodes(2, &cookie, v1, true);
    let targets = names(&nodes);
    let mut operator = Operator::start(&targets, &cookie);
    let mut hot = Vec::new();
    let mut base = Vec::new();
    for _ in 0..runs() {
        base.push(baseline(v1, &targets, &cookie, &[]).0);
        // The seed's way leaves old code behind; hotswap-node starts from a
        // node without, as after its own deploys.
        operator.purge(&[v1]);
        hot.push(hotswap(v1, &targets, &cookie, &[], &[]));
    }
    row(
        "no-change redeploy, 30 modules, 2 nodes",
        median(hot),
        median(base),
        None,
    )
}

/// Elixir's own ~300 beams to 2 fresh nodes, against the VM's own
/// `code:atomic_load/1` of the same beams measured inside a node (the floor).
fn large_payload() -> String {
    let ebin = common::elixir_ebin("elixir");
    let cookie = common::random_cookie();
    let count = support::beams(&ebin).len();
    let mut hot = Vec::new();
    let mut floor = Vec::new();
    let mut base = Vec::new();
    let empty = tempfile::tempdir().expect("tmp");
    for _ in 0..runs() {
        let nodes = fresh_nodes(2, &cookie, empty.path());
        hot.push(hotswap(&ebin, &names(&nodes), &cookie, &[], &[]));
        let nodes = fresh_nodes(2, &cookie, empty.path());
        base.push(baseline(&ebin, &names(&nodes), &cookie, &[]).0);
        let mut fresh = ErlNode::start(NodeSpec::new("floor").cookie(&cookie));
        let micros = fresh.eval(&format!(
            "Fs = filelib:wildcard(\"{}/*.beam\"), L = [{{list_to_atom(filename:basename(F, \".beam\")), F, element(2, file:read_file(F))}} || F <- Fs], {{T, ok}} = timer:tc(code, atomic_load, [L]), T.",
            ebin.display()
        ));
        floor.push(Duration::from_micros(micros.trim().parse().unwrap_or(0)));
    }
    let (h, f) = (median(hot), median(floor));
    eprintln!(
        "{count} Elixir beams to 2 fresh nodes: hotswap-node {}, VM's own atomic_load in one node {} ({:.1}× the floor)",
        ms(h),
        ms(f),
        h.as_secs_f64() / f.as_secs_f64().max(1e-9)
    );
    row(
        &format!(
            "{count} Elixir beams to 2 fresh nodes (floor: atomic_load in-node {})",
            ms(f)
        ),
        h,
        median(base),
        None,
    )
}

/// At 20 ms round trip, wall time in round trips for 3, 30 and 300 modules.
fn slow_link(work: &Path) {
    let delay = Duration::from_millis(10);
    let rtt = 2 * delay;
    let link = common::slowlink::SlowLink::start(hotswap_node::peer::epmd::epmd_port(), delay);
    let env = vec![("ERL_EPMD_PORT", link.epmd_port.to_string())];
    println!("\nSlow link, {} ms round trip (proxy on loopback), 1 node; whole process, and bytes sent to the node (connection included). hotswap-node's first deploy is to a node just started, which its snapshot store knows nothing of; a warm one (the median of the others) follows a deploy to it a moment before:\n\n| modules | first deploy | in RTTs | warm deploy | in RTTs | bytes sent (warm) | seed's way | in RTTs | bytes sent |\n|---|---|---|---|---|---|---|---|---|", rtt.as_millis());
    for n in [1usize, 3, 30, 300] {
        let a = generate(&work.join(format!("slow_a_{n}")), n, 1);
        let b = generate(&work.join(format!("slow_b_{n}")), n, 2);
        let cookie = common::random_cookie();
        let mut node = ErlNode::start(NodeSpec::new("slow").cookie(&cookie).code_path(&a));
        node.eval(&format!("[code:ensure_loaded(list_to_atom(\"hs_bench_\" ++ integer_to_list(I))) || I <- lists:seq(1, {n})]."));
        let targets = vec![node.name.clone()];
        let mut operator = Operator::start(&targets, &cookie);
        let (mut hot, mut base, mut hot_bytes, mut base_bytes) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let sent = |run: &mut dyn FnMut() -> Duration, bytes: &mut Vec<u64>| {
            let before = link.sent_to_nodes();
            let took = run();
            bytes.push(link.sent_to_nodes() - before);
            took
        };
        // The first deploy, then at least one warm one.
        for r in 0..runs().max(2) {
            let (x, y) = if r % 2 == 0 { (&a, &b) } else { (&b, &a) };
            base.push(sent(
                &mut || baseline(x, &targets, &cookie, &env).0,
                &mut base_bytes,
            ));
            operator.purge(&[x.as_path()]);
            hot.push(sent(
                &mut || hotswap(y, &targets, &cookie, &[], &env),
                &mut hot_bytes,
            ));
        }
        let first = hot.remove(0);
        hot_bytes.remove(0);
        let (h, bl) = (median(hot), median(base));
        let in_rtt = |d: Duration| d.as_secs_f64() / rtt.as_secs_f64();
        let kb = |mut v: Vec<u64>| {
            v.sort_unstable();
            format!("{:.1} KB", v[v.len() / 2] as f64 / 1e3)
        };
        println!(
            "| {n} | {} | {:.1} | {} | {:.1} | {} | {} | {:.0} | {} |",
            ms(first),
            in_rtt(first),
            ms(h),
            in_rtt(h),
            kb(hot_bytes),
            ms(bl),
            in_rtt(bl),
            kb(base_bytes)
        );
    }
}

/// Peak resident memory of hotswap-node sending Elixir's beams to 16 nodes.
fn peak_memory() {
    let ebin = common::elixir_ebin("elixir");
    let cookie = common::random_cookie();
    let empty = tempfile::tempdir().expect("tmp");
    let nodes = start_nodes(16, &cookie, empty.path(), false);
    let bin = support::binary();
    let mut cmd = std::process::Command::new("/usr/bin/time");
    cmd.args(["-f", "%M"]).arg(bin).args([
        "deploy",
        "-q",
        "--no-build",
        "--cookie",
        &cookie,
        "--name",
        &common::unique("hsm"),
    ]);
    cmd.arg("--ebin").arg(&ebin).current_dir(empty.path());
    for n in &nodes {
        cmd.args(["--node", &n.name]);
    }
    let started = Instant::now();
    match cmd.output() {
        Ok(out) if out.status.success() => {
            let kb = String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("?")
                .trim()
                .to_owned();
            let size: u64 = support::beams(&ebin)
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum();
            println!(
                "\nPeak memory, {} beams ({:.1} MB) to 16 nodes: {kb} KB resident, in {}",
                support::beams(&ebin).len(),
                size as f64 / 1e6,
                ms(started.elapsed())
            );
        }
        Ok(out) => eprintln!(
            "peak memory run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("peak memory needs /usr/bin/time (Debian package `time`): {e}"),
    }
}
