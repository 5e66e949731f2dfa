//! Fleets behind one link (`--via`): targets in a network namespace behind
//! a link of 20 ms round trip (the test harness's delaying proxy) capped at
//! 10 Mbit/s each way (`tc tbf`), reached through a gateway beside them,
//! against direct connections from the tool to every target, in the same
//! run on the same nodes. And 64 targets on loopback: the tool's wall time
//! and peak memory as the number of targets grows. Run by scripts/bench
//! (`scripts/bench via`).
//!
//! `BENCH_RUNS` sets the runs per figure of the 30-module rows (default 5);
//! the real-world rows run once (`BENCH_SLOW_RUNS` for more: one direct
//! deploy to 16 targets sends 190 MB through 10 Mbit/s). An argument
//! filters scenarios by name (`link`, `real`, `scale`).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::netns::{Link, Shape};
use common::{ErlNode, NodeSpec};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{generate, hotswap_json, median, ms, runs};

/// The link's delay each way, and its rate cap.
const DELAY: Duration = Duration::from_millis(10);
const MBIT: u32 = 10;
const FLEETS: [usize; 3] = [2, 8, 16];

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
    if wanted("link") || wanted("real") {
        let link = match Link::new(Shape::delay_ms(DELAY.as_millis() as u64).rate_mbit(MBIT)) {
            Ok(link) => link,
            Err(why) => {
                eprintln!("via: cannot make a network namespace here ({why}); skipped");
                return;
            }
        };
        if wanted("link") {
            thirty_modules(&link, &v1, &v2);
        }
        if wanted("real") {
            real_world(&link, work.path());
        }
    }
    if wanted("scale") {
        scale(&v1, &v2);
    }
}

/// A node of the fleet behind `link`, with `code` on its path.
fn behind(link: &Link, tag: &str, cookie: &str, code: &Path) -> ErlNode {
    ErlNode::start(
        NodeSpec::new(tag)
            .cookie(cookie)
            .code_path(code)
            .behind(link),
    )
}

/// Has `gateway` connect to every one of `targets`.
fn mesh(gateway: &mut ErlNode, targets: &[ErlNode]) {
    let names: Vec<String> = targets.iter().map(|t| format!("'{}'", t.name)).collect();
    let up = gateway.eval(&format!(
        "lists:all(fun(N) -> net_kernel:connect_node(N) end, [{}]).",
        names.join(", ")
    ));
    assert_eq!(up, "true", "the gateway reaches every target");
}

fn load_thirty(node: &mut ErlNode) {
    node.eval("[code:ensure_loaded(list_to_atom(\"hs_bench_\" ++ integer_to_list(I))) || I <- lists:seq(1, 30)].");
}

fn names(nodes: &[ErlNode]) -> Vec<String> {
    nodes.iter().map(|n| n.name.clone()).collect()
}

/// The bytes the tool sends of the beams in `dirs`: each without the
/// chunks the VM never reads (debug info, mostly), as it sends them.
fn payload(dirs: &[&Path]) -> u64 {
    dirs.iter()
        .flat_map(|d| support::beams(d))
        .map(|p| {
            hotswap_node::beam::Module::read(&p)
                .expect("a beam")
                .loadable
                .len() as u64
        })
        .sum()
}

/// The beams' bytes as files.
fn file_bytes(dirs: &[&Path]) -> u64 {
    dirs.iter()
        .flat_map(|d| support::beams(d))
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// One deploy: its wall time (whole process) and the bytes this machine
/// sent into the namespace meanwhile. The timeout is ten minutes: a direct
/// deploy of megabytes to many targets through 10 Mbit/s takes minutes
/// (the default of 30 s would end it).
fn deploy(
    link: &Link,
    ebins: &[&Path],
    targets: &[String],
    cookie: &str,
    via: Option<&str>,
) -> (Duration, u64) {
    let mut extra = vec!["--verify", "--timeout", "600"];
    if let Some(gateway) = via {
        extra.extend(["--via", gateway]);
    }
    let before = link.sent_bytes();
    let (took, _) = hotswap_json(ebins, targets, cookie, &extra, &[]);
    (took, link.sent_bytes() - before)
}

/// 30 changed modules to 2, 8 and 16 targets, through the gateway and
/// directly, interleaved, versions alternating; and directly to one target,
/// the figure a deploy through the gateway is held to (plus 2 RTTs).
fn thirty_modules(link: &Link, v1: &Path, v2: &Path) {
    let cookie = common::random_cookie();
    let mut gateway = behind(link, "via_gw", &cookie, v1);
    let mut targets: Vec<ErlNode> = (0..16)
        .map(|_| behind(link, "via_t", &cookie, v1))
        .collect();
    for t in &mut targets {
        load_thirty(t);
    }
    mesh(&mut gateway, &targets);
    let size = payload(&[v1]);
    let rtt = DELAY * 2;
    println!(
        "\n30 changed modules ({:.0} KB as sent) behind a link of {} ms round trip and {MBIT} Mbit/s, deploy --verify, whole process; bytes this machine sent into the link:\n\n| targets | through the gateway | directly to each | direct ÷ gateway | bytes, gateway | bytes, direct | gateway − direct to 1 | Erlang's best, inside |\n|---|---|---|---|---|---|---|---|",
        size as f64 / 1e3,
        rtt.as_millis()
    );
    let all = names(&targets);
    let mut version = 0;
    let mut next = || {
        version += 1;
        if version % 2 == 0 {
            v1
        } else {
            v2
        }
    };
    // Each way's first deploy (no belief yet) is not measured.
    deploy(link, &[next()], &all, &cookie, Some(&gateway.name));
    deploy(link, &[next()], &all, &cookie, None);
    let mut one = Vec::new();
    for _ in 0..runs() {
        one.push(deploy(link, &[next()], &all[..1], &cookie, None).0);
        std::thread::sleep(Duration::from_millis(300));
    }
    let one = median(one);
    for n in FLEETS {
        let (mut via, mut direct, mut via_bytes, mut direct_bytes) =
            (vec![], vec![], vec![], vec![]);
        for _ in 0..runs() {
            let (t, b) = deploy(link, &[next()], &all[..n], &cookie, Some(&gateway.name));
            via.push(t);
            via_bytes.push(b);
            std::thread::sleep(Duration::from_millis(300));
            let (t, b) = deploy(link, &[next()], &all[..n], &cookie, None);
            direct.push(t);
            direct_bytes.push(b);
            std::thread::sleep(Duration::from_millis(300));
        }
        let (via, direct) = (median(via), median(direct));
        let inside = inside(link, &cookie, &all[..n], &mut next);
        // What the store believes the targets run again, for the next row.
        deploy(link, &[next()], &all, &cookie, Some(&gateway.name));
        println!(
            "| {n} | {} | {} | {:.1}× | {} | {} | {:+.1} RTT | {} |",
            ms(via),
            ms(direct),
            direct.as_secs_f64() / via.as_secs_f64(),
            kb(middle(via_bytes)),
            kb(middle(direct_bytes)),
            (via.as_secs_f64() - one.as_secs_f64()) / rtt.as_secs_f64(),
            ms(inside),
        );
    }
    println!(
        "\nDirectly to 1 target: {} (the baseline of the \"gateway − direct to 1\" column). \"Erlang's best, inside\": an operator node beside the gateway loading the same modules on the same targets with `erpc:multicall` of `code:atomic_load` (in flight: the modules already read, nothing crossing the link): the floor of what the targets' own work takes on this machine.",
        ms(one)
    );
}

/// Erlang's best from inside the link: an operator node in the targets'
/// namespace, `erpc:multicall` of `atomic_load` to `targets` (in flight),
/// versions alternating as `next` gives them.
fn inside<'a>(
    link: &Link,
    cookie: &str,
    targets: &[String],
    next: &mut dyn FnMut() -> &'a Path,
) -> Duration {
    let spec = NodeSpec::new("via_operator").cookie(cookie).behind(link);
    let mut operator = support::Operator::start_as(spec, targets);
    median(
        (0..runs())
            .map(|_| operator.erlang_best(&[next()]))
            .collect(),
    )
}

/// Debian's 436 real-world beams to 2, 8 and 16 fresh targets, through the
/// gateway and directly.
fn real_world(link: &Link, work: &Path) {
    let Some(ebins) = support::real_world_ebins() else {
        return;
    };
    let dirs: Vec<&Path> = ebins.iter().map(PathBuf::as_path).collect();
    let count: usize = dirs.iter().map(|d| support::beams(d).len()).sum();
    let size = payload(&dirs);
    let empty = work.join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let cookie = common::random_cookie();
    let slow_runs: usize = std::env::var("BENCH_SLOW_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    println!(
        "\n{count} real-world beams ({:.1} MB as files, {:.1} MB as sent: the payload) to fresh targets behind the same link, deploy --verify, whole process:\n\n| targets | through the gateway | directly to each | direct ÷ gateway | bytes, gateway | bytes ÷ payload |\n|---|---|---|---|---|---|",
        file_bytes(&dirs) as f64 / 1e6,
        size as f64 / 1e6
    );
    for n in FLEETS {
        let (mut via, mut direct, mut via_bytes) = (vec![], vec![], vec![]);
        for _ in 0..slow_runs {
            for through in [true, false] {
                let mut gateway = behind(link, "via_gw", &cookie, &empty);
                let targets: Vec<ErlNode> = (0..n)
                    .map(|_| behind(link, "via_fresh", &cookie, &empty))
                    .collect();
                mesh(&mut gateway, &targets);
                std::thread::sleep(Duration::from_secs(1));
                let gw = through.then_some(gateway.name.as_str());
                let (t, b) = deploy(link, &dirs, &names(&targets), &cookie, gw);
                match through {
                    true => {
                        via.push(t);
                        via_bytes.push(b);
                    }
                    false => direct.push(t),
                }
            }
        }
        let (via, direct) = (median(via), median(direct));
        let bytes = middle(via_bytes);
        println!(
            "| {n} | {} | {} | {:.1}× | {} | {:.3} |",
            ms(via),
            ms(direct),
            direct.as_secs_f64() / via.as_secs_f64(),
            kb(bytes),
            bytes as f64 / size as f64
        );
    }
}

/// 30 changed modules through a gateway to 2, 16 and 64 targets on
/// loopback: wall time and the tool's peak resident memory; and directly
/// to the 64.
fn scale(v1: &Path, v2: &Path) {
    let cookie = common::random_cookie();
    let mut gateway = ErlNode::start(NodeSpec::new("scale_gw").cookie(&cookie).code_path(v1));
    let mut targets: Vec<ErlNode> = (0..64)
        .map(|_| ErlNode::start(NodeSpec::new("scale_t").cookie(&cookie).code_path(v1)))
        .collect();
    for t in &mut targets {
        load_thirty(t);
    }
    mesh(&mut gateway, &targets);
    let all = names(&targets);
    println!(
        "\n30 changed modules to targets on loopback (2 cores shared with every node), deploy --verify, whole process, and the tool's peak resident memory:\n\n| targets | way | wall time | peak memory |\n|---|---|---|---|"
    );
    let mut version = 0;
    let mut next = || {
        version += 1;
        if version % 2 == 0 {
            v1
        } else {
            v2
        }
    };
    peak(&[next()], &all, &cookie, Some(&gateway.name));
    peak(&[next()], &all, &cookie, None);
    for (n, via) in [(2, true), (16, true), (64, true), (64, false)] {
        let gw = via.then_some(gateway.name.as_str());
        let measured: Vec<(Duration, u64)> = (0..runs().min(3))
            .map(|_| {
                let m = peak(&[next()], &all[..n], &cookie, gw);
                std::thread::sleep(Duration::from_millis(500));
                m
            })
            .collect();
        let wall = median(measured.iter().map(|m| m.0).collect());
        let rss = middle(measured.iter().map(|m| m.1).collect());
        let way = if via {
            "through the gateway"
        } else {
            "directly to each"
        };
        println!(
            "| {n} | {way} | {} | {:.1} MB |",
            ms(wall),
            rss as f64 / 1e3
        );
    }
}

/// A deploy run under `/usr/bin/time`: wall time and peak resident memory
/// (KB).
fn peak(ebins: &[&Path], targets: &[String], cookie: &str, via: Option<&str>) -> (Duration, u64) {
    let bin = support::binary();
    let home = ebins[0].parent().unwrap_or(ebins[0]);
    let mut cmd = std::process::Command::new("/usr/bin/time");
    cmd.args(["-f", "%M"]).arg(bin).args([
        "deploy",
        "-q",
        "--verify",
        "--no-build",
        "--cookie",
        cookie,
    ]);
    cmd.args(["--name", &common::unique("hss")]);
    for e in ebins {
        cmd.arg("--ebin").arg(e);
    }
    for t in targets {
        cmd.args(["--node", t]);
    }
    if let Some(gateway) = via {
        cmd.args(["--via", gateway]);
    }
    cmd.env("HOME", home).current_dir(home);
    let started = Instant::now();
    let out = cmd
        .output()
        .expect("/usr/bin/time runs (Debian package `time`)");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "deploy failed: {stderr}");
    let kb = stderr
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    (took, kb)
}

fn middle(mut xs: Vec<u64>) -> u64 {
    xs.sort_unstable();
    xs[xs.len() / 2]
}

fn kb(bytes: u64) -> String {
    format!("{:.1} KB", bytes as f64 / 1e3)
}
