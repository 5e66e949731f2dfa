//! Fleets behind one node (`--via`): a gateway and targets meshed among
//! themselves in a network namespace of their own. The gateway is reached
//! at the namespace's address; the targets are named after the namespace's
//! loopback (`t@127.0.0.1`), which from this machine is another place: the
//! tool cannot reach them but through the gateway. What each target runs
//! is read back from the target's own shell. Faults land at the tool's
//! fault points (`src/fault.rs`). Skipped, with a message, where this
//! machine cannot make namespaces.

mod common;

use common::fault::FaultPoints;
use common::netns::{Link, Shape};
use common::project::{arg, start_node_with, Project};
use common::watcher::Watcher;
use common::{copy_dir, unique, ErlNode, NodeSpec, Otp};
use serde_json::Value;
use std::path::Path;

/// A target `alive@127.0.0.1` in `link`'s namespace, running `code`.
fn target_spec(link: &Link, cookie: &str, code: &Path, alive: &str) -> NodeSpec {
    let mut spec = NodeSpec::new("via_t")
        .alive(alive)
        .cookie(cookie)
        .code_path(code)
        .long_name("127.0.0.1");
    spec.netns = Some(link.ns());
    spec
}

/// Moves `module`'s beam from `from` into `dir` as a build tool would.
fn move_beam(from: &Path, dir: &Path, module: &str) {
    let name = format!("{module}.beam");
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::copy(from.join(&name), &tmp).expect("copy");
    std::fs::rename(&tmp, dir.join(&name)).expect("rename");
}

/// A gateway and its targets, in one namespace.
struct Fleet {
    link: Link,
    gateway: ErlNode,
    targets: Vec<ErlNode>,
}

impl Fleet {
    /// A gateway and `n` targets running `code`, with `load` loaded, all
    /// connected to each other; or `None` (the test skips) with the reason.
    fn start(n: usize, code: &Path, load: &[&str]) -> Option<Fleet> {
        Fleet::start_on(Otp::UnderTest, &vec![Otp::UnderTest; n], code, load, &|s| s)
    }

    /// [`Fleet::start`] with the gateway on `gateway`'s OTP release, and a
    /// target on each of `targets`'; every node's spec finished by `dress`.
    fn start_on(
        gateway: Otp,
        targets: &[Otp],
        code: &Path,
        load: &[&str],
        dress: &dyn Fn(NodeSpec) -> NodeSpec,
    ) -> Option<Fleet> {
        let link = match Link::new(Shape::delay_ms(0)) {
            Ok(link) => link,
            Err(why) => {
                common::cannot_run_here(&format!("cannot make a network namespace ({why})"));
                return None;
            }
        };
        let cookie = common::random_cookie();
        let mut spec = NodeSpec::new("via_gw")
            .cookie(&cookie)
            .code_path(code)
            .behind(&link);
        spec.otp = gateway;
        let gateway = start_node_with(dress(spec), load);
        let targets: Vec<ErlNode> = targets
            .iter()
            .map(|otp| {
                let mut spec = target_spec(&link, &cookie, code, &unique("via_t"));
                spec.otp = *otp;
                start_node_with(dress(spec), load)
            })
            .collect();
        let mut fleet = Fleet {
            link,
            gateway,
            targets,
        };
        fleet.mesh();
        Some(fleet)
    }

    /// Connects every node to every other.
    fn mesh(&mut self) {
        let all = self.names().join("', '");
        let names = format!("['{}', '{all}']", self.gateway.name);
        for node in std::iter::once(&mut self.gateway).chain(self.targets.iter_mut()) {
            let up = node.eval(&format!(
                "lists:all(fun(N) -> net_kernel:connect_node(N) end, {names})."
            ));
            assert_eq!(
                up,
                "true",
                "{} joins the mesh\n{}",
                node.name,
                node.log_text()
            );
        }
    }

    fn names(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.name.clone()).collect()
    }

    /// `watch --no-build --ebin watched --via GATEWAY` in the project,
    /// following every target, with `extra`; once it is watching.
    fn watch(&self, p: &Project, extra: &[&str]) -> Watcher {
        let name = unique("hsw");
        let mut args = vec!["--no-build", "--ebin", "watched", "--name", &name];
        args.extend([
            "--via",
            &self.gateway.name,
            "--cookie",
            &self.gateway.cookie,
        ]);
        for t in &self.targets {
            args.extend(["--node", t.name.as_str()]);
        }
        args.extend(extra);
        let mut w = Watcher::start_with(p.path(), p.path(), &args, &[]);
        w.wait_stderr("Watching");
        w
    }

    /// `deploy --json --via GATEWAY` to every target, with `extra`.
    fn deploy(&self, p: &Project, extra: &[&str]) -> (i32, Value, String) {
        self.deploy_with(p, extra, &[])
    }

    fn deploy_with(
        &self,
        p: &Project,
        extra: &[&str],
        env: &[(&str, String)],
    ) -> (i32, Value, String) {
        let targets: Vec<&ErlNode> = self.targets.iter().collect();
        let mut args = vec!["--via", self.gateway.name.as_str()];
        args.extend(extra);
        p.deploy_with(&targets, &args, env)
    }

    /// The MD5 each target runs of `module`, from its own shell.
    fn running(&mut self, module: &str) -> Vec<String> {
        self.targets
            .iter_mut()
            .map(|t| t.loaded_md5(module))
            .collect()
    }

    /// Bytes of TCP payload this machine has sent into the namespace so
    /// far: the kernel's count of bytes less the headers of each packet
    /// (Ethernet 14, IPv4 20, TCP 20 and its timestamps 12), which vary
    /// with how the sends were cut into packets, more under load.
    fn sent(&self) -> u64 {
        const HEADERS: u64 = 14 + 20 + 20 + 12;
        self.link.sent_bytes() - self.link.sent_packets() * HEADERS
    }
}

#[test]
fn deploy_verify_status_and_rollback_reach_three_targets_through_the_gateway() {
    let p = Project::new();
    let v1 = p.build(1, &["hs_greet"]);
    let v2 = p.build(2, &["hs_greet"]);
    let Some(mut fleet) = Fleet::start(3, &v1, &["hs_greet"]) else {
        return;
    };
    // The targets are out of the tool's reach but for the gateway.
    let (code, json, _) = p.deploy(
        &[&fleet.targets[0]],
        &["--ebin", &arg(&v2), "--timeout", "3"],
    );
    assert_eq!(code, 3, "a target reached directly: {json}");

    // --dry-run says what would change, and changes nothing.
    let (code, json, stderr) = fleet.deploy(&p, &["--ebin", &arg(&v2), "--dry-run"]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    for name in fleet.names() {
        assert!(stderr.contains(&format!("on {name}")), "{name}: {stderr}");
    }
    assert_eq!(fleet.running("hs_greet"), vec![p.md5(&v1, "hs_greet"); 3]);

    let (code, json, stderr) = fleet.deploy(&p, &["--ebin", &arg(&v2), "--verify"]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    let want = p.md5(&v2, "hs_greet");
    assert_eq!(fleet.running("hs_greet"), vec![want.clone(); 3]);
    assert_eq!(
        fleet.gateway.loaded_md5("hs_greet"),
        p.md5(&v1, "hs_greet"),
        "the gateway is no target"
    );
    let reported: Vec<&str> = json["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["node"].as_str().expect("name"))
        .collect();
    let mut names = fleet.names();
    names.sort();
    let mut seen: Vec<String> = reported.iter().map(|s| s.to_string()).collect();
    seen.sort();
    assert_eq!(seen, names, "one entry per target");

    // status, through the gateway.
    let mut args = vec![
        "status",
        "--json",
        "--via",
        fleet.gateway.name.as_str(),
        "--ebin",
    ];
    let v2_arg = arg(&v2);
    args.push(&v2_arg);
    let names = fleet.names();
    for n in &names {
        args.extend(["--node", n.as_str()]);
    }
    let cookie = fleet.gateway.cookie.clone();
    args.extend(["--cookie", cookie.as_str()]);
    let out = p.run(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_str(&text).expect("json");
    for node in status["nodes"].as_array().expect("nodes") {
        assert_eq!(node["unchanged"], serde_json::json!(["hs_greet"]), "{node}");
    }

    // A second deploy of the same build changes nothing.
    let (code, json, stderr) = fleet.deploy(&p, &["--ebin", &arg(&v2)]);
    assert_eq!(code, 0, "{json}\n{stderr}");

    let (code, json, stderr) = fleet.deploy(&p, &["--rollback"]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert_eq!(fleet.running("hs_greet"), vec![p.md5(&v1, "hs_greet"); 3]);
}

#[test]
fn each_module_crosses_the_uplink_once_whatever_the_number_of_targets() {
    let p = Project::new();
    let v1 = p.build(1, &["hs_greet"]);
    let big = big_modules(&p, 1);
    let Some(fleet) = Fleet::start(3, &v1, &[]) else {
        return;
    };
    let payload: u64 = std::fs::read_dir(&big)
        .expect("ebin")
        .map(|e| e.expect("entry").metadata().expect("size").len())
        .sum();
    let before = fleet.sent();
    let (code, json, stderr) = fleet.deploy(&p, &["--ebin", &arg(&big), "--verify"]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    let sent = fleet.sent() - before;
    // Once is the payload and the requests around it; twice, or once per
    // target, is twice or three times the payload. Halfway between once
    // and twice leaves room for the requests and for retransmissions of a
    // loaded machine, and none for a second crossing.
    let limit = payload + payload / 2;
    eprintln!("sent {sent} bytes for {payload} bytes of modules");
    assert!(
        sent <= limit,
        "sent {sent} bytes for {payload} bytes of modules to 3 targets (limit {limit})"
    );
}

/// Ten modules of some 60 KB each (a literal of random bytes, which the
/// beam's compression cannot shrink), at version `vsn`.
fn big_modules(p: &Project, vsn: u32) -> std::path::PathBuf {
    let src = p.path().join("big_src");
    std::fs::create_dir_all(&src).expect("mkdir");
    let sources: Vec<std::path::PathBuf> = (1..=10)
        .map(|i| {
            let m = format!("hs_via_big_{i:02}");
            let path = src.join(format!("{m}.erl"));
            let bytes: Vec<String> = (0..60_000)
                .map(|_| (hotswap_node::random::u64() % 256).to_string())
                .collect();
            let text = format!(
                "-module({m}).\n-export([pad/0, v/0]).\npad() -> <<{}>>.\nv() -> ?VSN.\n",
                bytes.join(",")
            );
            std::fs::write(&path, text).expect("write");
            path
        })
        .collect();
    let out = p.path().join(format!("big_v{vsn}"));
    common::erlc(&sources, &out, &[&format!("-DVSN={vsn}")]);
    out
}

/// A fleet at v2 of `hs_greet` (v1 before), deployed by the tool, and a
/// deploy of v3 to it held at `point`.
fn held_at(
    point: &str,
) -> Option<(
    Project,
    Fleet,
    [std::path::PathBuf; 3],
    FaultPoints,
    common::project::Running,
)> {
    let p = Project::new();
    let v = [1, 2, 3].map(|i| p.build(i, &["hs_greet"]));
    let fleet = Fleet::start(3, &v[0], &["hs_greet"])?;
    let (code, json, stderr) = fleet.deploy(&p, &["--ebin", &arg(&v[1])]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    let faults = FaultPoints::new();
    let env = faults.env(&[point]);
    let targets: Vec<&ErlNode> = fleet.targets.iter().collect();
    let v3 = arg(&v[2]);
    let args = [
        "--via",
        fleet.gateway.name.as_str(),
        "--ebin",
        v3.as_str(),
        "-v",
    ];
    let mut run = p.spawn_deploy(&targets, &args, &env);
    run.hold_at(&faults, point);
    Some((p, fleet, v, faults, run))
}

#[test]
fn a_target_lost_between_prepare_and_go_is_named_and_the_others_are_put_back() {
    let Some((p, mut fleet, v, faults, run)) = held_at("flight_prepared") else {
        return;
    };
    // Every target has prepared; one leaves the cluster before the word.
    let mut lost = fleet.targets.pop().expect("a target");
    lost.kill();
    faults.release("flight_prepared");
    let (code, json, stderr) = run.finish();
    // Whether it took the word before it went cannot be known: it is
    // named as possibly changed (exit 6). The others loaded, and were put
    // back.
    assert_eq!(code, 6, "{json}\n{stderr}");
    let report = json["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["node"] == lost.name.as_str())
        .expect("the lost target is reported");
    assert!(
        report["failed"].to_string().contains("left the cluster"),
        "{report}"
    );
    assert_eq!(
        report["not_restored"],
        serde_json::json!(["hs_greet"]),
        "{report}"
    );
    for t in &fleet.targets {
        let r = common::project::node_json(&json, t);
        assert_eq!(r["rolled_back"], true, "{r}");
    }
    assert_eq!(fleet.running("hs_greet"), vec![p.md5(&v[1], "hs_greet"); 2]);
}

#[test]
fn the_gateway_lost_before_the_word_changes_no_target() {
    let Some((p, mut fleet, v, faults, run)) = held_at("flight_prepared") else {
        return;
    };
    // Every target has prepared and waits for the word; the gateway goes.
    fleet.gateway.kill();
    faults.release("flight_prepared");
    let (code, json, stderr) = run.finish();
    // The tool cannot know whether the word got through: every target is
    // named as possibly changed. None did: their locks went with the
    // gateway's relay, and a prepared target that loses its lock aborts.
    assert_eq!(code, 6, "{json}\n{stderr}");
    for t in &fleet.targets {
        let r = common::project::node_json(&json, t);
        assert!(r["failed"].to_string().contains("gateway"), "{r}");
    }
    assert_eq!(fleet.running("hs_greet"), vec![p.md5(&v[1], "hs_greet"); 3]);
    // Every lock goes with the relay: each holder hears its relay is gone.
    for t in &mut fleet.targets {
        let gone = t.eval(
            "case whereis(hotswap_deploy_lock) of undefined -> gone; H -> \
             M = monitor(process, H), receive {'DOWN', M, _, _, _} -> gone after 10000 -> held end end.",
        );
        assert_eq!(gone, "gone", "{}", t.name);
    }
}

#[test]
fn watch_through_the_gateway_follows_a_target_that_leaves_and_rejoins() {
    let p = Project::new();
    let v = [1, 2, 3].map(|i| p.build(i, &["hs_greet"]));
    let Some(mut fleet) = Fleet::start(2, &v[0], &["hs_greet"]) else {
        return;
    };
    let watched = p.path().join("watched");
    copy_dir(&v[0], &watched);
    let cookie = fleet.gateway.cookie.clone();
    let names = fleet.names();
    let mut w = fleet.watch(&p, &["-v"]);
    let md5 = |i: usize| p.md5(&v[i], "hs_greet");

    move_beam(&v[1], &watched, "hs_greet");
    w.wait_loaded("hs_greet");
    assert_eq!(fleet.running("hs_greet"), vec![md5(1); 2]);

    // One target leaves the cluster; a save lands on the other meanwhile.
    let alive = fleet.targets[1].alive.clone();
    fleet.targets[1].kill();
    w.wait_stderr(&format!("{} is gone", names[1]));
    move_beam(&v[2], &watched, "hs_greet");
    w.wait_loaded("hs_greet");
    assert_eq!(fleet.targets[0].loaded_md5("hs_greet"), md5(2));

    // It comes back under its name, running v1: the watcher catches it up.
    fleet.targets[1] = start_node_with(
        target_spec(&fleet.link, &cookie, &v[0], &alive),
        &["hs_greet"],
    );
    fleet.mesh();
    w.wait_stderr(&format!("{} is back", names[1]));
    w.wait_loaded("hs_greet");
    assert_eq!(fleet.running("hs_greet"), vec![md5(2); 2]);
    assert_eq!(w.interrupt(), 0);
}

/// The watch after a change, reported apart, comes through the gateway:
/// the target's observer reports to the relay, which passes it on. The
/// process that died after its change is named; the window is ten minutes,
/// the report coming as soon as every process watched is gone. The other
/// target runs no process of the module: nothing is watched there.
#[test]
fn the_watch_after_a_change_is_reported_through_the_gateway() {
    let p = Project::new();
    let v = [1, 2].map(|i| p.build(i, &["hs_counter"]));
    let Some(mut fleet) = Fleet::start(2, &v[0], &["hs_counter"]) else {
        return;
    };
    fleet.targets[0].eval("{ok, _} = hs_counter:start().");
    let pid = fleet.targets[0].eval("whereis(hs_counter).");
    fleet.targets[0].eval("persistent_term:put({hs_counter, code_change}, exit_after).");
    let watched = p.path().join("watched");
    copy_dir(&v[0], &watched);
    let names = fleet.names();
    let mut w = fleet.watch(&p, &["--observe", "600000"]);

    move_beam(&v[1], &watched, "hs_counter");
    let event = w.wait_loaded("hs_counter");
    assert_eq!(event["ok"], true, "{event}");
    let seen = w.wait_event("the watch after the change", |e| e["event"] == "observed");
    assert_eq!(seen["node"], names[0].as_str(), "{seen}");
    assert_eq!(seen["ok"], false, "{seen}");
    assert_eq!(seen["died"][0]["pid"], pid.as_str(), "{seen}");
    assert_eq!(
        fleet.running("hs_counter"),
        vec![p.md5(&v[1], "hs_counter"); 2]
    );
    assert_eq!(fleet.targets[0].eval("whereis(hs_counter)."), "undefined");
    // The death is the session's exit code.
    assert_eq!(w.interrupt(), 7);
}

/// Through the gateway too, a watch after a change goes with the watcher:
/// once it quits without waiting, its relay goes, and nothing watches the
/// migrated process on the target any more (read on the target).
#[test]
fn the_watch_after_a_change_through_the_gateway_ends_when_the_watcher_goes() {
    let p = Project::new();
    let v = [1, 2].map(|i| p.build(i, &["hs_counter"]));
    let Some(mut fleet) = Fleet::start(1, &v[0], &["hs_counter"]) else {
        return;
    };
    fleet.targets[0].eval("{ok, _} = hs_counter:start().");
    let monitors = "element(2, process_info(whereis(hs_counter), monitored_by)).";
    let before = fleet.targets[0].eval(monitors);
    let watched = p.path().join("watched");
    copy_dir(&v[0], &watched);
    let mut w = fleet.watch(&p, &["--observe", "600000"]);
    move_beam(&v[1], &watched, "hs_counter");
    let event = w.wait_loaded("hs_counter");
    assert_eq!(event["ok"], true, "{event}");
    assert_ne!(fleet.targets[0].eval(monitors), before, "nothing watches");
    w.signal_int();
    w.wait_stderr("waiting for the watch after the last change");
    w.signal_int();
    assert_eq!(w.wait_exit(), 130);
    common::comes_true(
        &mut fleet.targets[0],
        |n| n.eval(monitors) == before,
        "the process unwatched after the watcher went",
    );
}

#[test]
fn a_target_still_held_by_a_finished_run_is_waited_for_not_refused() {
    let p = Project::new();
    let (v1, v2) = (p.build(1, &["hs_greet"]), p.build(2, &["hs_greet"]));
    let Some(mut fleet) = Fleet::start(2, &v1, &["hs_greet"]) else {
        return;
    };
    // The lock holder of a run that has just finished: its relay on the
    // gateway is gone, and it has not heard yet. It looks only once it
    // has answered who it is, then goes when it hears, as a real holder
    // does.
    let gateway = fleet.gateway.name.clone();
    let held = fleet.targets[1].eval(&format!(
        "begin Shell = self(), Dead = rpc:call('{gateway}', erlang, spawn, [erlang, is_atom, [x]]), \
         spawn(fun() -> true = register(hotswap_deploy_lock, self()), Shell ! held, \
           receive {{who, From, Ref}} -> From ! {{Ref, Dead, [{{node, <<\"old@run\">>}}]}} \
           after 20000 -> ok end, \
           M = monitor(process, Dead), receive {{'DOWN', M, _, _, _}} -> gone end end), \
         receive held -> held end end."
    ));
    assert_eq!(held, "held");
    let (code, json, stderr) = fleet.deploy(&p, &["--ebin", &arg(&v2)]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert_eq!(fleet.running("hs_greet"), vec![p.md5(&v2, "hs_greet"); 2]);
}

/// The relay passes on to the tool only the answers it was told to
/// expect: messages any process of the cluster sends it are dropped, not
/// carried over the tool's link.
#[test]
fn the_relay_passes_on_only_what_the_tool_awaits() {
    let p = Project::new();
    let (v1, v2) = (p.build(1, &["hs_greet"]), p.build(2, &["hs_greet"]));
    let Some(mut fleet) = Fleet::start(1, &v1, &["hs_greet"]) else {
        return;
    };
    let faults = FaultPoints::new();
    let targets: Vec<&ErlNode> = fleet.targets.iter().collect();
    let gateway = fleet.gateway.name.clone();
    let mut run = p.spawn_deploy(
        &targets,
        &["--via", &gateway, "--ebin", &arg(&v2), "-v"],
        &faults.env(&["apply_before_word"]),
    );
    run.hold_at(&faults, "apply_before_word");
    // The target's lock holder names its owner: the relay.
    let target = fleet.targets[0].name.clone();
    let sent = fleet.gateway.eval(&format!(
        "begin R = make_ref(), {{hotswap_deploy_lock, '{target}'}} ! {{who, self(), R}}, \
         receive {{R, Relay, _}} -> \
           [Relay ! {{make_ref(), {{junk, N}}}} || N <- lists:seq(1, 50)], \
           Relay ! just_junk, sent \
         after 5000 -> no_holder end end."
    ));
    assert_eq!(sent, "sent");
    faults.release("apply_before_word");
    let (code, json, stderr) = run.finish();
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert!(!stderr.contains("junk"), "{stderr}");
    assert_eq!(fleet.running("hs_greet"), vec![p.md5(&v2, "hs_greet")]);
}

#[test]
fn a_target_locked_by_a_live_run_refuses_and_no_target_changes() {
    let p = Project::new();
    let (v1, v2) = (p.build(1, &["hs_greet"]), p.build(2, &["hs_greet"]));
    let Some(mut fleet) = Fleet::start(3, &v1, &["hs_greet"]) else {
        return;
    };
    // Another run, through the same gateway, holds one target's lock.
    let gateway = fleet.gateway.name.clone();
    let held = fleet.targets[2].eval(&format!(
        "begin Shell = self(), Relay = rpc:call('{gateway}', erlang, spawn, [timer, sleep, [30000]]), \
         spawn(fun() -> true = register(hotswap_deploy_lock, self()), Shell ! held, \
           W = fun W() -> receive {{who, From, Ref}} -> \
             From ! {{Ref, Relay, [{{node, <<\"other@laptop\">>}}]}}, W() \
           after 20000 -> ok end end, W() end), \
         receive held -> held end end."
    ));
    assert_eq!(held, "held");
    let (code, json, stderr) = fleet.deploy(&p, &["--ebin", &arg(&v2)]);
    assert_eq!(code, 3, "{json}\n{stderr}");
    let locked = common::project::node_json(&json, &fleet.targets[2]);
    assert!(
        locked["failed"].to_string().contains("other@laptop"),
        "{locked}"
    );
    assert_eq!(fleet.running("hs_greet"), vec![p.md5(&v1, "hs_greet"); 3]);
}

#[test]
fn cluster_through_the_gateway_reaches_every_node_it_is_connected_to_and_itself() {
    let p = Project::new();
    let (v1, v2) = (p.build(1, &["hs_greet"]), p.build(2, &["hs_greet"]));
    let Some(mut fleet) = Fleet::start(2, &v1, &["hs_greet"]) else {
        return;
    };
    let (gateway, cookie) = (fleet.gateway.name.clone(), fleet.gateway.cookie.clone());
    let v2_arg = arg(&v2);
    let name = unique("hs");
    let args = [
        "deploy",
        "--json",
        "--name",
        &name,
        "--via",
        &gateway,
        "--cluster",
        "--ebin",
        &v2_arg,
        "--cookie",
        &cookie,
        "--verify",
    ];
    let out = p.run(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_str(&text).expect("json");
    let mut reported: Vec<String> = json["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["node"].as_str().expect("name").to_owned())
        .collect();
    reported.sort();
    let mut want = fleet.names();
    want.push(gateway.clone());
    want.sort();
    assert_eq!(reported, want);
    let md5 = p.md5(&v2, "hs_greet");
    assert_eq!(fleet.running("hs_greet"), vec![md5.clone(); 2]);
    assert_eq!(fleet.gateway.loaded_md5("hs_greet"), md5);
}

#[test]
fn status_through_the_gateway_sends_its_question_once_for_every_target() {
    let p = Project::new();
    let v1 = p.build(1, &["hs_greet"]);
    let Some(fleet) = Fleet::start(3, &v1, &["hs_greet"]) else {
        return;
    };
    let (gateway, cookie) = (fleet.gateway.name.clone(), fleet.gateway.cookie.clone());
    let v1_arg = arg(&v1);
    let names = fleet.names();
    // What a status to `targets` sends into the namespace.
    let sent_for = |targets: &[String]| {
        let name = unique("hs");
        let mut args = vec![
            "status", "--json", "--name", &name, "--via", &gateway, "--ebin", &v1_arg, "--cookie",
            &cookie,
        ];
        for t in targets {
            args.extend(["--node", t.as_str()]);
        }
        let before = fleet.sent();
        let out = p.run(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        fleet.sent() - before
    };
    // The first run also asks EPMD for the gateway's port.
    sent_for(&names[..1]);
    let one = sent_for(&names[..1]);
    let three = sent_for(&names);
    // The script (kilobytes) goes once; each more target adds its name and
    // the reference its answer comes back under.
    assert!(
        three < one + 2 * 1000,
        "status to 1 target sent {one} bytes, to 3 targets {three}"
    );
}

#[test]
fn a_cluster_mixing_two_otp_releases_takes_one_deploy_through_the_gateway() {
    // Under scripts/test-otp: the gateway and one target on this machine's
    // OTP, one target on the release under test (27 or 29); the modules
    // built by the oldest. Under scripts/test there is one release only.
    if !common::under_test_otp("a cluster of two OTP releases") {
        return;
    }
    let p = Project::new();
    let (v1, v2) = (
        p.build_by(Otp::Host, 1, &["hs_greet"]),
        p.build_by(Otp::Host, 2, &["hs_greet"]),
    );
    let mixed = [Otp::Host, Otp::UnderTest];
    let Some(mut fleet) = Fleet::start_on(Otp::Host, &mixed, &v1, &["hs_greet"], &|s| s) else {
        return;
    };
    let releases: Vec<String> = fleet
        .targets
        .iter_mut()
        .map(|t| t.eval("erlang:system_info(otp_release)."))
        .collect();
    assert_ne!(releases[0], releases[1], "a mixed cluster");
    let (code, json, stderr) = fleet.deploy(&p, &["--ebin", &arg(&v2), "--verify"]);
    assert_eq!(code, 0, "{releases:?}: {json}\n{stderr}");
    assert_eq!(
        fleet.running("hs_greet"),
        vec![p.md5(&v2, "hs_greet"); 2],
        "{releases:?}"
    );
    let (code, json, stderr) = fleet.deploy(&p, &["--rollback"]);
    assert_eq!(code, 0, "{releases:?}: {json}\n{stderr}");
    assert_eq!(
        fleet.running("hs_greet"),
        vec![p.md5(&v1, "hs_greet"); 2],
        "{releases:?}"
    );
}

#[test]
fn a_gen_server_on_each_target_is_migrated_and_the_after_call_made_through_the_gateway() {
    let p = Project::new();
    let (v1, v2) = (p.build(1, &["hs_counter"]), p.build(2, &["hs_counter"]));
    let Some(mut fleet) = Fleet::start(2, &v1, &["hs_counter"]) else {
        return;
    };
    let mut pids = Vec::new();
    for t in &mut fleet.targets {
        t.eval("{ok, _} = hs_counter:start().");
        t.eval("[hs_counter:bump() || _ <- lists:seq(1, 3)].");
        pids.push(t.eval("whereis(hs_counter)."));
    }
    let (code, json, stderr) = fleet.deploy(
        &p,
        &[
            "--ebin",
            &arg(&v2),
            "--verify",
            "--after",
            "hs_counter:reloaded",
        ],
    );
    assert_eq!(code, 0, "{json}\n{stderr}");
    for (t, pid) in fleet.targets.iter_mut().zip(&pids) {
        let report = common::project::node_json(&json, t);
        assert_eq!(report["migrated"][0]["name"], "hs_counter", "{json}");
        // The same process, its state in v2's shape, goes on counting.
        assert_eq!(&t.eval("whereis(hs_counter)."), pid);
        assert_eq!(t.eval("sys:get_state(hs_counter)."), "{counter,2,3}");
        assert_eq!(t.eval("hs_counter:bump()."), "4");
        assert_eq!(
            t.eval("persistent_term:get(hs_reloaded)."),
            "{2,[hs_counter]}"
        );
    }
}

#[test]
fn a_target_the_gateway_cannot_reach_is_named_and_nothing_changes() {
    let p = Project::new();
    let (v1, v2) = (p.build(1, &["hs_greet"]), p.build(2, &["hs_greet"]));
    let Some(mut fleet) = Fleet::start(2, &v1, &["hs_greet"]) else {
        return;
    };
    let missing = format!("{}@127.0.0.1", unique("nobody"));
    let (code, json, stderr) = fleet.deploy(&p, &["--ebin", &arg(&v2), "--node", &missing]);
    assert_eq!(code, 3, "{json}\n{stderr}");
    let report = json["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["node"] == missing.as_str())
        .expect("the missing target is reported");
    assert!(
        report["failed"].to_string().contains("cannot reach it"),
        "{report}"
    );
    assert_eq!(fleet.running("hs_greet"), vec![p.md5(&v1, "hs_greet"); 2]);
}

/// Targets on hosts that do not answer (addresses of the namespace's own
/// network that nobody has: each connect waits for ARP) are connected to
/// at once, not one after another past `--timeout`: each is named, and
/// nothing changes on the targets that are up.
#[test]
fn targets_that_are_down_are_each_named_within_the_timeout() {
    let p = Project::new();
    let (v1, v2) = (p.build(1, &["hs_greet"]), p.build(2, &["hs_greet"]));
    let Some(mut fleet) = Fleet::start(1, &v1, &["hs_greet"]) else {
        return;
    };
    let subnet = fleet
        .link
        .device_ip
        .rsplit_once('.')
        .expect("an IPv4 address")
        .0
        .to_owned();
    let down: Vec<String> = (201..=203)
        .map(|i| format!("{}@{subnet}.{i}", unique("down")))
        .collect();
    let mut args = vec![
        "--ebin".to_owned(),
        arg(&v2),
        "--timeout".into(),
        "5".into(),
    ];
    for d in &down {
        args.extend(["--node".to_owned(), d.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, json, stderr) = fleet.deploy(&p, &args);
    assert_eq!(code, 3, "{json}\n{stderr}");
    for d in &down {
        let report = json["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["node"] == d.as_str())
            .unwrap_or_else(|| panic!("{d} is not named: {json}"));
        assert!(
            report["failed"].to_string().contains("cannot reach it"),
            "{report}"
        );
    }
    assert_eq!(fleet.running("hs_greet"), vec![p.md5(&v1, "hs_greet")]);
}

#[test]
fn a_cluster_on_tls_distribution_takes_a_deploy_through_its_gateway() {
    // Every node speaks TLS distribution, among themselves too. A node
    // checks the nodes it connects to by their host as a DNS name, here
    // an address: the namespace's loopback, or the gateway's address.
    let pki = common::tls::Pki::new("via_tls");
    let mut names = vec!["127.0.0.1".to_owned()];
    names.extend((0..=250).map(|n| format!("10.{}.{n}.2", common::netns::subnet())));
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let node = pki.node_for_names("node_by_address", &names);
    let optfile = pki.dist_optfile(&node, "tlsv1.3");
    let p = Project::new();
    let (v1, v2) = (p.build(1, &["hs_greet"]), p.build(2, &["hs_greet"]));
    let tls = |spec: NodeSpec| spec.tls(&optfile);
    let Some(mut fleet) = Fleet::start_on(
        Otp::UnderTest,
        &[Otp::UnderTest; 2],
        &v1,
        &["hs_greet"],
        &tls,
    ) else {
        return;
    };
    let tool = pki.tool_args();
    let mut args: Vec<&str> = tool.iter().map(String::as_str).collect();
    let v2_arg = arg(&v2);
    args.extend(["--ebin", &v2_arg, "--verify"]);
    let (code, json, stderr) = fleet.deploy(&p, &args);
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert_eq!(fleet.running("hs_greet"), vec![p.md5(&v2, "hs_greet"); 2]);
    for t in &mut fleet.targets {
        assert_eq!(
            t.eval("init:get_argument(proto_dist)."),
            "{ok,[[\"inet_tls\"]]}"
        );
    }
    let mut args: Vec<&str> = tool.iter().map(String::as_str).collect();
    args.push("--rollback");
    let (code, json, stderr) = fleet.deploy(&p, &args);
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert_eq!(fleet.running("hs_greet"), vec![p.md5(&v1, "hs_greet"); 2]);
}
