//! Devices behind a real link (`tests/common/netns.rs`: a network namespace
//! per device, a veth pair with `tc netem` delay, loss and cuts): a device
//! rebooted again and again under `watch`, links cut in the middle of a
//! deploy, and a lossy link. What each node runs is read back from the
//! node itself. Faults land at the tool's fault points (`src/fault.rs`).
//! Skipped, with a message, where this machine cannot make namespaces.

mod common;

use common::fault::FaultPoints;
use common::netns::{Link, Shape};
use common::project::{start_node_with, Project};
use common::watcher::Watcher;
use common::{copy_dir, unique, ErlNode, NodeSpec};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A link shaped by `shape`, or `None` (the test skips) with the reason.
fn link_or_skip(shape: Shape) -> Option<Link> {
    match Link::new(shape) {
        Ok(link) => Some(link),
        Err(why) => {
            common::cannot_run_here(&format!("cannot make a network namespace ({why})"));
            None
        }
    }
}

/// Moves `module`'s beam from `from` into `dir` as a build tool would.
fn move_beam(from: &Path, dir: &Path, module: &str) {
    let name = format!("{module}.beam");
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::copy(from.join(&name), &tmp).expect("copy");
    std::fs::rename(&tmp, dir.join(&name)).expect("rename");
}

/// How long the watcher may take to catch up a device once it is up and
/// reachable: its longest wait between attempts (5 s) plus 1 s.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(6);

/// A device that reboots under `watch`, and the session following it.
struct Rebooting {
    p: Project,
    versions: Vec<PathBuf>,
    watched: PathBuf,
    spec: NodeSpec,
    node: ErlNode,
    link: Link,
    faults: FaultPoints,
    w: Watcher,
    /// The version (index into `versions`) the session last deployed.
    current: usize,
}

impl Rebooting {
    fn start(link: Link) -> Rebooting {
        let p = Project::new();
        let versions: Vec<PathBuf> = (1..=3).map(|i| p.build(i, &["hs_greet"])).collect();
        let watched = p.path().join("watched");
        copy_dir(&versions[0], &watched);
        let spec = NodeSpec::new("reboot")
            .alive(&unique("reboot"))
            .code_path(&versions[0])
            .behind(&link);
        let node = start_node_with(spec.clone(), &["hs_greet"]);
        let spec = spec.cookie(&node.cookie);
        let faults = FaultPoints::new();
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
            &node.cookie,
            "-v",
        ];
        let mut w = Watcher::start_with(p.path(), p.path(), &args, &faults.env(&[]));
        w.wait_stderr("Watching");
        let mut r = Rebooting {
            p,
            versions,
            watched,
            spec,
            node,
            link,
            faults,
            w,
            current: 0,
        };
        r.save();
        r
    }

    /// Saves the next version (v2, v3, v2, …) and waits until it runs.
    fn save(&mut self) {
        self.current = if self.current == 1 { 2 } else { 1 };
        move_beam(&self.versions[self.current], &self.watched, "hs_greet");
        self.w.wait_loaded("hs_greet");
        self.assert_current();
    }

    /// Saves the next version without waiting for it.
    fn save_in_background(&mut self) {
        self.current = if self.current == 1 { 2 } else { 1 };
        move_beam(&self.versions[self.current], &self.watched, "hs_greet");
    }

    fn assert_current(&mut self) {
        let want = self.p.md5(&self.versions[self.current], "hs_greet");
        assert_eq!(self.node.loaded_md5("hs_greet"), want, "{}", self.seen());
    }

    fn seen(&self) -> String {
        self.w.seen.join("\n")
    }

    /// The device's power is cut (its firmware will run v1 again): its
    /// node goes, then its kernel with every connection it held.
    fn power_off(&mut self) {
        self.node.kill();
        self.link.power_cycle();
    }

    /// The device boots on its firmware's code (v1).
    fn power_on(&mut self) {
        self.spec.netns = Some(self.link.ns());
        self.node = start_node_with(self.spec.clone(), &["hs_greet"]);
    }

    fn wait_down(&mut self) {
        self.w
            .wait_event("node_down", |e| e["event"] == "node_down");
    }

    /// The device is up and reachable from `since`: the watcher must be
    /// back and have caught it up within [`CATCH_UP_LIMIT`].
    fn assert_caught_up(&mut self, since: Instant, round: usize) {
        let caught = self.w.wait_event("the catch-up", |e| {
            e["event"] == "catch_up"
                && e["ok"] == true
                && e["modules"].as_array().is_some_and(|m| !m.is_empty())
        });
        let took = since.elapsed();
        assert!(
            took <= CATCH_UP_LIMIT,
            "round {round}: caught up {took:?} after the device was up: {caught}\n{}",
            self.seen()
        );
        self.assert_current();
    }

    /// Has the next deploy that `start` sets off held in flight (after its
    /// request went, before the word), cuts the power there, lets the tool
    /// go on, and boots the device again once the watcher saw it go.
    fn reboot_in_flight(&mut self, start: fn(&mut Rebooting)) {
        self.faults.arm("flight_sent");
        self.faults.arm("apply_before_word");
        start(self);
        let point = self.held_at("flight_sent", "apply_before_word");
        self.power_off();
        self.faults.release(point);
        self.wait_down();
        self.power_on();
    }

    /// Waits until the tool holds at `first` or `second` (both armed), and
    /// disarms the other.
    fn held_at(&mut self, first: &'static str, second: &'static str) -> &'static str {
        let dir_has = |point: &str| self.faults.armed(point);
        let started = Instant::now();
        loop {
            for (point, other) in [(first, second), (second, first)] {
                if !dir_has(point) {
                    self.faults.disarm(other);
                    assert!(self.faults.reached(point, &mut || true));
                    return point;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the tool reached neither {first} nor {second}:\n{}",
                self.seen()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A device rebooted 20 times under `watch`: plainly, during the catch-up
/// after the last reboot, in the middle of a deploy of a save, and while
/// its link is down. Each time, once it is up and reachable, the watcher
/// is back and has brought it to the last save within 6 s (its longest
/// wait between attempts, plus 1 s). The link has 20 ms of round trip.
#[test]
fn a_device_rebooted_20_times_is_caught_up_each_time() {
    let Some(link) = link_or_skip(Shape::delay_ms(10)) else {
        return;
    };
    let mut r = Rebooting::start(link);
    for round in 0..20 {
        match round % 4 {
            0 => {
                r.power_off();
                r.wait_down();
                r.power_on();
            }
            1 => {
                // The catch-up after this reboot is cut by the next one.
                r.power_off();
                r.wait_down();
                r.reboot_in_flight(Rebooting::power_on);
            }
            2 => {
                // A save's deploy is in flight when the power goes.
                r.reboot_in_flight(Rebooting::save_in_background);
            }
            _ => {
                // The link goes down while idle, the device reboots, the
                // link comes back: only the watcher's own ticks can find
                // that its connection is dead.
                r.link.wait_idle();
                r.link.cut();
                r.power_off();
                r.power_on();
                r.link.heal();
            }
        }
        r.assert_caught_up(Instant::now(), round);
    }
    let stopped = r.w.interrupt();
    assert_eq!(stopped, 0);
}

/// Two devices, each behind its own link with 20 ms of round trip, both
/// running v1 of `hs_greet`, and a project with v2.
struct Pair {
    p: Project,
    v1: PathBuf,
    v2: PathBuf,
    a: ErlNode,
    b: ErlNode,
    _link_a: Link,
    link_b: Link,
}

fn pair(tag: &str) -> Option<Pair> {
    let link_a = link_or_skip(Shape::delay_ms(10))?;
    let link_b = link_or_skip(Shape::delay_ms(10))?;
    let p = Project::new();
    let (v1, v2) = (p.build(1, &["hs_greet"]), p.build(2, &["hs_greet"]));
    let cookie = common::random_cookie();
    let spec = |side: &str, link: &Link| {
        NodeSpec::new(&format!("{tag}_{side}"))
            .cookie(&cookie)
            .code_path(&v1)
            .behind(link)
    };
    let a = start_node_with(spec("a", &link_a), &["hs_greet"]);
    let b = start_node_with(spec("b", &link_b), &["hs_greet"]);
    Some(Pair {
        p,
        v1,
        v2,
        a,
        b,
        _link_a: link_a,
        link_b,
    })
}

impl Pair {
    fn runs(&mut self, ebin_a: &Path, ebin_b: &Path) {
        let (want_a, want_b) = (
            self.p.md5(ebin_a, "hs_greet"),
            self.p.md5(ebin_b, "hs_greet"),
        );
        assert_eq!(self.a.loaded_md5("hs_greet"), want_a, "node a");
        assert_eq!(self.b.loaded_md5("hs_greet"), want_b, "node b");
    }
}

/// Which way the link to node b is cut.
#[derive(Clone, Copy, PartialEq)]
enum Cut {
    /// Both ways: the word to load does not reach node b.
    Both,
    /// The way back only: node b has the word and loads, but its answer
    /// does not come back.
    WayBack,
}

/// The link to node b is cut (`cut`) while the tool holds at `point` of a
/// deploy of v2 to both (with `--verify`, a 2 s timeout, and a flight when
/// `believed`), before the word to load goes. Node a is put back; node b,
/// whose answer never comes, is named (exit 6): whether it loaded cannot
/// be known. Once the link is back, b's lock goes, and the next deploy
/// brings both to v2, read back from each.
fn cut_at(point: &str, cut: Cut, believed: bool) {
    let tag = format!("cut_{}", &point[..5]);
    let Some(mut f) = pair(&tag) else {
        return;
    };
    let args = |ebin: &Path| {
        vec![
            "--ebin".to_owned(),
            ebin.to_string_lossy().into_owned(),
            "--verify".into(),
            "--timeout".into(),
            "2".into(),
        ]
    };
    if believed {
        // The store comes to believe both run v1.
        for v in [&f.v2, &f.v1] {
            let a = args(v);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            f.p.deploy_ok(&[&f.a, &f.b], &a);
        }
    }
    let faults = FaultPoints::new();
    let a = args(&f.v2);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut run = f.p.spawn_deploy(&[&f.a, &f.b], &a, &faults.env(&[point]));
    run.hold_at(&faults, point);
    match cut {
        Cut::Both => f.link_b.cut(),
        Cut::WayBack => f.link_b.cut_way_back(),
    }
    faults.release(point);
    let (code, json, stderr) = run.finish();

    assert_eq!(code, 6, "{json}\n{stderr}");
    let nodes = json["nodes"].as_array().expect("nodes");
    let b = nodes
        .iter()
        .find(|n| n["node"] == f.b.name.as_str())
        .expect("b");
    assert_eq!(b["not_restored"], serde_json::json!(["hs_greet"]), "{json}");
    // Node a's own answer came back: it is on v1 again.
    assert_eq!(f.a.loaded_md5("hs_greet"), f.p.md5(&f.v1, "hs_greet"));
    if cut == Cut::WayBack {
        // Node b had the word: it runs v2, as the tool could not know.
        assert_eq!(f.b.loaded_md5("hs_greet"), f.p.md5(&f.v2, "hs_greet"));
    }

    f.link_b.heal();
    let gone = f.b.eval(
        "(fun W(0) -> held; W(N) -> case whereis(hotswap_deploy_lock) of \
         undefined -> gone; _ -> timer:sleep(100), W(N - 1) end end)(300).",
    );
    assert_eq!(gone, "gone", "b's lock neither released nor expired");
    let a = args(&f.v2);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    f.p.deploy_ok(&[&f.a, &f.b], &a);
    let v2 = f.v2.clone();
    f.runs(&v2, &v2);
}

#[test]
fn a_link_cut_between_prepare_and_go_names_the_node_and_the_next_run_resolves_it() {
    cut_at("flight_prepared", Cut::Both, true);
}

#[test]
fn a_link_cut_before_the_word_names_the_node_and_the_next_run_resolves_it() {
    cut_at("apply_prepared", Cut::Both, false);
}

#[test]
fn a_link_cut_during_the_load_and_read_back_names_the_node_and_the_next_run_resolves_it() {
    cut_at("apply_prepared", Cut::WayBack, false);
}

#[test]
fn a_flight_whose_answer_is_cut_names_the_node_and_the_next_run_resolves_it() {
    cut_at("flight_prepared", Cut::WayBack, true);
}

/// 30 modules to 2 nodes, each behind a link with 20 ms of round trip and
/// 5 % loss each way, 20 runs alternating two builds: every run succeeds
/// within its timeout, and each node runs what the run sent.
#[test]
fn thirty_modules_to_two_nodes_over_a_lossy_link_20_times() {
    let Some(link_a) = link_or_skip(Shape::delay_ms(10).loss(5.0)) else {
        return;
    };
    let Some(link_b) = link_or_skip(Shape::delay_ms(10).loss(5.0)) else {
        return;
    };
    let p = Project::new();
    let modules: Vec<String> = (1..=30).map(|i| format!("hs_many_{i:02}")).collect();
    let builds: Vec<PathBuf> = (1..=2).map(|v| many(&p, &modules, v)).collect();
    let cookie = common::random_cookie();
    let spec = |side: &str, link: &Link| {
        NodeSpec::new(&format!("lossy_{side}"))
            .cookie(&cookie)
            .code_path(&builds[0])
            .behind(link)
    };
    let mut nodes = [
        start_node_with(spec("a", &link_a), &[]),
        start_node_with(spec("b", &link_b), &[]),
    ];
    for n in &mut nodes {
        let list = modules.join(",");
        n.eval(&format!("[code:ensure_loaded(M) || M <- [{list}]]."));
    }
    for run in 0..20 {
        let ebin = &builds[(run + 1) % 2];
        let started = Instant::now();
        let (code, json, stderr) = p.deploy(
            &[&nodes[0], &nodes[1]],
            &["--ebin", &ebin.to_string_lossy(), "--verify"],
        );
        assert_eq!(
            code,
            0,
            "run {run} after {:?}: {json}\n{stderr}",
            started.elapsed()
        );
        let want: Vec<String> = modules.iter().map(|m| p.md5(ebin, m)).collect();
        for n in &mut nodes {
            let list = modules.join(",");
            let got = n.eval(&format!(
                "[lists:flatten([io_lib:format(\"~2.16.0b\", [B]) \
                 || <<B>> <= erlang:get_module_info(M, md5)]) || M <- [{list}]]."
            ));
            for (m, md5) in modules.iter().zip(&want) {
                assert!(
                    got.contains(md5.as_str()),
                    "run {run}: {m} on {}: {got}",
                    n.name
                );
            }
        }
    }
}

/// `modules` built at version `vsn`, from generated sources.
fn many(p: &Project, modules: &[String], vsn: u32) -> PathBuf {
    let src = p.path().join("many_src");
    std::fs::create_dir_all(&src).expect("mkdir");
    let sources: Vec<PathBuf> = modules
        .iter()
        .map(|m| {
            let path = src.join(format!("{m}.erl"));
            let text = format!("-module({m}).\n-export([v/0]).\nv() -> ?VSN.\n");
            std::fs::write(&path, text).expect("write");
            path
        })
        .collect();
    let out = p.path().join(format!("many_v{vsn}"));
    common::erlc(&sources, &out, &[&format!("-DVSN={vsn}")]);
    out
}
