//! The developer loop: from saving a file to the node running the new
//! code, in a Mix app of 30 modules on a local "device" node. A poller on
//! the device calls the changed function every millisecond and stamps the
//! moment its value changes; the edit is stamped just before the file is
//! written (same clock). Measured in the same run for the seed's own task
//! (`mix upload.hotswap`, vendored from benches/loop/upload_hotswap.ex),
//! `hotswap-node deploy` (whole process: `mix compile`, connect, deploy)
//! and `hotswap-node watch` (started once). Then, over a 20 ms round-trip
//! link, a changed `.beam` moved into a folder `watch --no-build` follows.
//!
//! Contenders run one after another (a watcher would also see the others'
//! edits), each edit at the start of a fresh second so that Mix's
//! whole-second staleness check cannot favour or miss anyone.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::{copy_dir, elixir_ebin, ErlNode, NodeSpec};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};
use support::{generate, median, ms, runs};

const MODULES: usize = 30;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let work = tempfile::tempdir().expect("tmp");
    let app = loop_app(work.path());
    let mut device = start_device(&app, work.path());
    poll(&mut device, "'Elixir.LoopApp':value()");
    let mut value = 0;
    let seed = measure(&mut device, &app, &mut value, |app| {
        run_quietly(Command::new("mix").arg("upload.hotswap").current_dir(app))
    });
    let deploy = measure(&mut device, &app, &mut value, |app| {
        run_quietly(
            Command::new(support::binary())
                .args(["deploy", "-q", "--name", "hsloop"])
                .current_dir(app),
        )
    });
    let watcher = Watcher::start(
        Command::new(support::binary())
            .args(["watch", "--json", "--name", "hsloopw"])
            .current_dir(&app),
    );
    let watch = measure(&mut device, &app, &mut value, |_| {});
    let (build, load) = watcher.stop();
    let watcher = Watcher::start(
        Command::new(support::binary())
            .args(["watch", "--json", "--no-code-change", "--name", "hsloopn"])
            .current_dir(&app),
    );
    let unmigrated = measure(&mut device, &app, &mut value, |_| {});
    watcher.stop();
    let (s, d, w) = (median(seed), median(deploy), median(watch));
    let u = median(unmigrated);
    println!("\nEdit → running, Mix app of {MODULES} modules, 1 node on loopback (whole loop: from writing the file to the node's poller seeing the new value; median of {}):\n", runs());
    println!("| contender | edit → running | vs the seed's task |\n|---|---|---|");
    println!(
        "| `mix upload.hotswap` (the seed's task) | {} | 1.0× |",
        ms(s)
    );
    println!(
        "| `hotswap-node deploy` (runs `mix compile`) | {} | {:.1}× |",
        ms(d),
        ratio(s, d)
    );
    println!(
        "| `hotswap-node watch` (held session, build node) | {} | {:.1}× |",
        ms(w),
        ratio(s, w)
    );
    println!(
        "\nThe edited module is a GenServer with one process: `watch` migrates it through its `code_change` at every change; `watch --no-code-change` ({}) does not: {:.2}× its time.",
        ms(u),
        w.as_secs_f64() / u.as_secs_f64().max(1e-9)
    );
    println!(
        "\n`watch`'s own report per change (median): build {build:.1} ms, deploy {load:.1} ms."
    );
    device_class(&mut device, &app, &mut value, work.path());
    slow_link(work.path());
}

/// The same loop with the device held to a tenth of one core (a cgroup CPU
/// quota), as a Nerves device's CPU is to this machine's: `watch`'s edit →
/// running and its deploy step, against Erlang's best on the same node
/// (an operator's `erpc` `code:atomic_load/1` of the changed module, its
/// old code purged first, untimed).
fn device_class(device: &mut ErlNode, app: &Path, value: &mut u64, work: &Path) {
    let pid = device.eval("os:getpid().");
    let Some(throttle) = support::floor::Throttle::tenth_of_a_core(pid.trim().trim_matches('"'))
    else {
        return;
    };
    let watcher = Watcher::start(
        Command::new(support::binary())
            .args(["watch", "--json", "--name", "hsloopd"])
            .current_dir(app),
    );
    let watch = measure(device, app, value, |_| {});
    let (build, deploy) = watcher.stop();
    let one = work.join("device_one");
    std::fs::create_dir_all(&one).expect("mkdir");
    let beam = "Elixir.LoopApp.beam";
    std::fs::copy(
        app.join("_build/dev/lib/loop_app/ebin").join(beam),
        one.join(beam),
    )
    .expect("the built module");
    let spec = NodeSpec::new("loopop")
        .long_name("127.0.0.1")
        .cookie(&device.cookie);
    let mut operator = support::Operator::start_as(spec, std::slice::from_ref(&device.name));
    let best: Vec<Duration> = (0..runs()).map(|_| operator.erlang_best(&[&one])).collect();
    drop(operator);
    drop(throttle);
    let (w, b) = (median(watch), median(best));
    println!(
        "\nThe device held to a tenth of one core (cgroup CPU quota, 1 ms in every 10 ms): `watch` edit → running {}; its deploy step {deploy:.1} ms (build {build:.1} ms), against Erlang's best load of the changed module on the same node {}: {:.2}× its time.",
        ms(w),
        ms(b),
        deploy / (b.as_secs_f64() * 1e3)
    );
}

fn ratio(base: Duration, x: Duration) -> f64 {
    base.as_secs_f64() / x.as_secs_f64()
}

/// A Mix app `loop_app`: `LoopApp.value/0` (the function edited) and 29
/// more modules, the seed's task vendored in, configured for the device.
fn loop_app(work: &Path) -> PathBuf {
    let app = work.join("loop_app");
    let write = |rel: &str, text: &str| {
        let path = app.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write("mix.exs", "defmodule LoopApp.MixProject do\n  use Mix.Project\n  def project, do: [app: :loop_app, version: \"0.1.0\", deps: []]\n  def application, do: [extra_applications: [:logger]]\nend\n");
    write("README.md", "The benchmark's throwaway app.\n");
    write("lib/loop_app.ex", &value_source(0));
    for i in 1..MODULES {
        write(
            &format!("lib/loop_app/m{i}.ex"),
            &format!("defmodule LoopApp.M{i} do\n  def id, do: {i}\n  def twice(x), do: x * 2 + {i}\n  def label, do: \"module {i}\"\nend\n"),
        );
    }
    let task = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/loop/upload_hotswap.ex");
    std::fs::create_dir_all(app.join("lib/mix/tasks")).expect("mkdir");
    std::fs::copy(task, app.join("lib/mix/tasks/upload.hotswap.ex"))
        .expect("vendor the seed's task");
    app
}

/// `LoopApp`, a GenServer (one process runs it on the device) whose
/// `value/0` is edited.
fn value_source(v: u64) -> String {
    format!("defmodule LoopApp do\n  use GenServer\n  def value, do: {v}\n  @impl true\n  def init(n), do: {{:ok, n}}\n  @impl true\n  def handle_call(:get, _from, n), do: {{:reply, n, n}}\nend\n")
}

/// Configures the app for a long-named device (the seed's task starts
/// `me@localhost`, a long name), builds it, and starts the device on its
/// own copy of the build.
fn start_device(app: &Path, work: &Path) -> ErlNode {
    let cookie = common::random_cookie();
    let alive = common::unique("loopdev");
    let name = format!("{alive}@127.0.0.1");
    std::fs::create_dir_all(app.join("config")).expect("mkdir");
    std::fs::write(
        app.join("config/config.exs"),
        format!("import Config\n\nconfig :mix_tasks_upload_hotswap,\n  app_name: :loop_app,\n  nodes: [:\"{name}\"],\n  cookie: :\"{cookie}\"\n"),
    )
    .expect("config");
    common::mix_compile(app);
    let copy = work.join("device");
    copy_dir(&app.join("_build/dev/lib/loop_app"), &copy);
    let mut node = ErlNode::start(
        NodeSpec::new("loopdev")
            .alive(&alive)
            .long_name("127.0.0.1")
            .cookie(&cookie)
            .code_path(&elixir_ebin("elixir"))
            .code_path(&elixir_ebin("logger"))
            .code_path(&copy.join("ebin")),
    );
    let loaded = node.eval("application:load(loop_app), [code:ensure_loaded(M) || M <- element(2, application:get_key(loop_app, modules))].");
    assert!(!loaded.contains("error"), "{loaded}");
    let started =
        node.eval("gen_server:start({local, 'Elixir.LoopApp'}, 'Elixir.LoopApp', 0, []).");
    assert!(started.starts_with("{ok,"), "{started}");
    node
}

/// Starts the poller: it calls `expr` every millisecond and, when the
/// value changes, records it with the time (µs) in a persistent term.
fn poll(node: &mut ErlNode, expr: &str) {
    node.eval(&format!(
        "Poll = fun Loop(Last) -> V = {expr}, case V of Last -> timer:sleep(1), Loop(Last); _ -> persistent_term:put(loop_stamp, {{V, os:system_time(microsecond)}}), Loop(V) end end, persistent_term:put(loop_stamp, {{{expr}, 0}}), spawn(fun() -> Poll({expr}) end), ok."
    ));
}

/// Waits until the poller saw `value`; returns when, in µs since the epoch.
fn stamp_of(node: &mut ErlNode, value: u64) -> u128 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = node.eval("persistent_term:get(loop_stamp).");
        let inner = got.trim_start_matches('{').trim_end_matches('}');
        if let Some((v, t)) = inner.split_once(',') {
            if v.trim() == value.to_string() {
                return t.trim().parse().expect("stamp");
            }
        }
        assert!(
            Instant::now() < deadline,
            "the node never ran value {value}: {got}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_micros()
}

/// Edits `LoopApp.value/0` to a new value `runs()` times, each at the start
/// of a fresh second, running `after` after the edit (nothing for watch);
/// returns the edit → running times.
fn measure(
    node: &mut ErlNode,
    app: &Path,
    value: &mut u64,
    after: impl Fn(&Path),
) -> Vec<Duration> {
    let mut times = Vec::new();
    for _ in 0..runs() {
        let ms = u64::from(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .expect("clock")
                .subsec_millis(),
        );
        std::thread::sleep(Duration::from_millis(1000 - ms + 100));
        *value += 1;
        let edited = now_us();
        std::fs::write(app.join("lib/loop_app.ex"), value_source(*value)).expect("edit");
        after(app);
        let ran = stamp_of(node, *value);
        times.push(Duration::from_micros(
            u64::try_from(ran.saturating_sub(edited)).unwrap_or(0),
        ));
    }
    times
}

fn run_quietly(cmd: &mut Command) {
    let out = cmd.env("MIX_ENV", "dev").output().expect("runs");
    assert!(
        out.status.success(),
        "{:?} failed:\n{}{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `watch --json` in the background; its JSON lines are kept for the
/// build and deploy times it reports.
struct Watcher {
    child: Child,
    lines: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl Watcher {
    fn start(cmd: &mut Command) -> Watcher {
        let mut child = cmd
            .env("MIX_ENV", "dev")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("watch runs");
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Watching") {
                    let _ = ready_tx.send(());
                }
            }
        });
        ready
            .recv_timeout(Duration::from_secs(120))
            .expect("watch is ready");
        Watcher { child, lines }
    }

    /// Stops it (SIGINT); returns its median build and deploy times (ms)
    /// over the changes it reported.
    fn stop(mut self) -> (f64, f64) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let mut build = Vec::new();
        let mut deploy = Vec::new();
        while let Ok(v) = self.lines.try_recv() {
            if v["event"] == "change" && v["ok"] == true {
                build.push(v["build_ms"].as_f64().unwrap_or(0.0));
                deploy.push(v["deploy_ms"].as_f64().unwrap_or(0.0));
            }
        }
        (median_f(build), median_f(deploy))
    }
}

fn median_f(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// A changed `.beam` moved into a folder `watch --no-build` follows, over
/// a 20 ms round-trip link: how many round trips until the node runs it.
fn slow_link(work: &Path) {
    let delay = Duration::from_millis(10);
    let rtt = 2 * delay;
    let link = common::slowlink::SlowLink::start(hotswap_node::peer::epmd::epmd_port(), delay);
    let v1 = generate(&work.join("slow_v1"), MODULES, 1);
    let v2 = generate(&work.join("slow_v2"), MODULES, 2);
    let watched = work.join("slow_watched");
    copy_dir(&v1, &watched);
    let cookie = common::random_cookie();
    let mut node = ErlNode::start(NodeSpec::new("loopslow").cookie(&cookie).code_path(&v1));
    node.eval(&format!("[code:ensure_loaded(list_to_atom(\"hs_bench_\" ++ integer_to_list(I))) || I <- lists:seq(1, {MODULES})]."));
    poll(&mut node, "hs_bench_1:version()");
    let watcher = Watcher::start(
        Command::new(support::binary())
            .args(["watch", "--json", "--no-build", "--ebin"])
            .arg(&watched)
            .args([
                "--name", "hsloops", "--node", &node.name, "--cookie", &cookie,
            ])
            .env("ERL_EPMD_PORT", link.epmd_port.to_string())
            .current_dir(work),
    );
    let mut times = Vec::new();
    for r in 0..runs() {
        let (from, version) = if r % 2 == 0 { (&v2, 2) } else { (&v1, 1) };
        let tmp = watched.join(".hs_bench_1.beam.tmp");
        std::fs::copy(from.join("hs_bench_1.beam"), &tmp).expect("copy");
        let moved = now_us();
        std::fs::rename(&tmp, watched.join("hs_bench_1.beam")).expect("move");
        let ran = stamp_of(&mut node, version);
        times.push(Duration::from_micros(
            u64::try_from(ran.saturating_sub(moved)).unwrap_or(0),
        ));
        std::thread::sleep(Duration::from_millis(300));
    }
    let (_, load) = watcher.stop();
    let t = median(times);
    println!(
        "\nOver a {} ms round-trip link (proxy on loopback), `watch --no-build`: a changed beam of {MODULES} moved into the watched folder runs on the node {} later = {:.1} round trips (its deploy step: {load:.1} ms).",
        rtt.as_millis(),
        ms(t),
        t.as_secs_f64() / rtt.as_secs_f64()
    );
}
