//! `hotswap-node watch` against real nodes: a Mix project rebuilt by the
//! warm build node, an umbrella, a rebar3 project rebuilt by rebar3,
//! `--no-build` folders of beams, a node restarted under the watcher, and
//! Ctrl-C. What a node runs is read back through its own shell.

mod common;

use common::project::{start_node_with, Project};
use common::watcher::{processes_named, Watcher};
use common::{copy_dir, elixir_ebin, mix_compile, rebar3_compile, unique, ErlNode, NodeSpec};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A Mix project being edited, and a device node running its own copy of
/// the first build (as firmware would).
struct MixDevice {
    root: tempfile::TempDir,
    dev: PathBuf,
    node: ErlNode,
}

impl MixDevice {
    /// Builds `project` (copied from `source`) and starts a device on a
    /// copy of its build output, with `apps` started.
    fn start(source: &Path, apps: &[&str]) -> MixDevice {
        let root = tempfile::tempdir().expect("tmp");
        let dev = root.path().join("dev");
        copy_dir(source, &dev);
        mix_compile(&dev);
        let device = root.path().join("device");
        copy_dir(&dev.join("_build"), &device);
        let mut spec = NodeSpec::new("wdevice")
            .code_path(&elixir_ebin("elixir"))
            .code_path(&elixir_ebin("logger"));
        for lib in std::fs::read_dir(device.join("dev/lib"))
            .expect("lib")
            .flatten()
        {
            spec = spec
                .code_path(&lib.path().join("consolidated"))
                .code_path(&lib.path().join("ebin"));
        }
        let mut node = ErlNode::start(spec);
        for app in apps {
            let started = node.eval(&format!("application:ensure_all_started({app})."));
            assert!(started.starts_with("{ok,"), "{started}");
        }
        MixDevice { root, dev, node }
    }

    fn watch(&self, extra: &[&str]) -> Watcher {
        self.watch_with(extra, &[])
    }

    fn watch_with(&self, extra: &[&str], env: &[(&str, String)]) -> Watcher {
        let name = unique("hsw");
        let mut args = vec![
            "--node",
            &self.node.name,
            "--cookie",
            &self.node.cookie,
            "--name",
            &name,
        ];
        args.extend(extra);
        let mut w = Watcher::start_with(&self.dev, self.root.path(), &args, env);
        w.wait_stderr("Watching");
        w
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.dev.join(file);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains(from), "{from} not in {file}");
        std::fs::write(&path, text.replace(from, to)).expect("write");
    }
}

/// Polls `expr` on `node` until it prints `want`, or fails the test.
fn node_comes_to(node: &mut ErlNode, expr: &str, want: &str, w: &mut Watcher) {
    let deadline = Instant::now() + common::watcher::CHANGE_LIMIT;
    loop {
        let got = node.eval(expr);
        if got == want {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "`{expr}` is {got}, not {want}; watch said:\n{}",
                w.everything_said()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What `watch -v` says once it has taken in a change, before its build.
const TAKEN_IN: &str = "changed; settled";

/// Sleeps until a wall-clock second has just begun.
fn start_of_a_second() {
    let into = |now: std::time::SystemTime| {
        now.duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_millis()
    };
    let ms = into(std::time::SystemTime::now());
    std::thread::sleep(Duration::from_millis(u64::from(1000 - ms) + 20));
}

fn assert_stopped_cleanly(w: Watcher) {
    let build_node = format!("hotswap_build_{}@", w.pid);
    assert_eq!(w.interrupt(), 0, "Ctrl-C exits 0");
    assert!(
        processes_named(&build_node).is_empty(),
        "the build node outlived the watcher"
    );
}

#[test]
fn an_edit_reaches_the_node_and_of_two_quick_saves_the_last_wins() {
    let mut d = MixDevice::start(&common::fixture("example"), &["example"]);
    let mut w = d.watch(&["-v"]);
    d.edit("lib/example.ex", ":world", ":earth");
    w.wait_loaded("Elixir.Example");
    assert_eq!(d.node.eval("'Elixir.Example':hello()."), "earth");
    w.wait_stderr(TAKEN_IN);
    // The build node's cookie is in no command line: every user of the
    // machine can read those.
    let build_node = processes_named(&format!("hotswap_build_{}@", w.pid));
    assert!(!build_node.is_empty(), "no build node runs");
    for pid in build_node {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(!cmdline.contains("setcookie"), "{cmdline}");
    }

    // Two saves of the same length, the second once the first one's change
    // was taken in (its build starting), both in one wall-clock second:
    // Mix's whole-second mtimes would miss the second save. A pair that
    // straddles a second proves nothing, and is made again.
    let file = d.dev.join("lib/example.ex");
    let second_of = |path: &Path| {
        let modified = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .expect("mtime");
        modified
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
    };
    let mut now = ":earth".to_owned();
    let mut proved = false;
    for pair in 1..=3 {
        let (first, second) = (format!(":mars{pair}a"), format!(":mars{pair}b"));
        start_of_a_second();
        d.edit("lib/example.ex", &now, &first);
        let first_second = second_of(&file);
        w.wait_stderr(TAKEN_IN);
        d.edit("lib/example.ex", &first, &second);
        proved = second_of(&file) == first_second;
        let want = second.trim_start_matches(':').to_owned();
        node_comes_to(&mut d.node, "'Elixir.Example':hello().", &want, &mut w);
        w.wait_stderr(TAKEN_IN);
        now = second;
        if proved {
            break;
        }
    }
    assert!(proved, "no two saves fell in one second");
    // The replaced code is purged while the session is still held.
    let old = "erlang:check_old_code('Elixir.Example').";
    node_comes_to(&mut d.node, old, "false", &mut w);
    // A save that changes nothing is built after every change before it:
    // none of them came back since.
    d.edit("lib/example.ex", &now, &now);
    w.wait_event("a build that changes nothing", |e| {
        e["event"] == "change" && e["modules"].as_array().is_some_and(Vec::is_empty)
    });
    let want = now.trim_start_matches(':').to_owned();
    assert_eq!(d.node.eval("'Elixir.Example':hello()."), want);
    // The counter process kept its state through every change.
    assert_eq!(d.node.eval("'Elixir.Example.Counter':increment()."), "1");
    assert_stopped_cleanly(w);
}

/// Saves that touch no protocol leave the node's protocols consolidated
/// (newer Mix deletes the consolidated protocols when told to skip
/// consolidating them, so the build must not tell it to); a save that adds
/// an implementation ships the protocol consolidated again, with it.
#[test]
fn the_nodes_protocols_stay_consolidated_through_saves() {
    let mut d = MixDevice::start(&common::fixture("example"), &["example"]);
    let consolidated = "'Elixir.Protocol':'consolidated?'('Elixir.Example.Describe').";
    assert_eq!(d.node.eval(consolidated), "true");
    let mut w = d.watch(&["-v"]);
    // The session's first build checks everything; the ones after it are
    // the quick ones.
    for (from, to) in [(":world", ":earth"), (":earth", ":mars")] {
        d.edit("lib/example.ex", from, to);
        let change = w.wait_loaded("Elixir.Example");
        assert_eq!(
            change["modules"],
            serde_json::json!(["Elixir.Example"]),
            "only the edited module is shipped"
        );
        w.wait_stderr(TAKEN_IN);
    }
    assert_eq!(d.node.eval("'Elixir.Example':hello()."), "mars");
    assert_eq!(d.node.eval(consolidated), "true");

    let text = std::fs::read_to_string(d.dev.join("lib/example/describe.ex")).expect("read");
    let added =
        "defimpl Example.Describe, for: Integer do\n  def describe(_), do: \"a number\"\nend\n";
    std::fs::write(
        d.dev.join("lib/example/describe.ex"),
        format!("{text}\n{added}"),
    )
    .expect("write");
    w.wait_loaded("Elixir.Example.Describe.Integer");
    assert_eq!(d.node.eval(consolidated), "true");
    assert_eq!(
        d.node.eval("'Elixir.Example.Describe':describe(7)."),
        "<<\"a number\">>"
    );
    assert_stopped_cleanly(w);
}

#[test]
fn a_compile_error_changes_nothing_and_the_fix_is_deployed() {
    let mut d = MixDevice::start(&common::fixture("example"), &["example"]);
    let before = d.node.loaded_md5("Elixir.Example");
    let faults = common::fault::FaultPoints::new();
    let mut w = d.watch_with(&[], &faults.env(&[]));
    d.edit("lib/example.ex", ":world", ":world(");
    let failed = w.wait_event("build_failed", |e| e["event"] == "build_failed");
    assert_eq!(failed["ok"], false);
    w.wait_stderr("lib/example.ex:");
    assert_eq!(d.node.loaded_md5("Elixir.Example"), before);
    assert_eq!(d.node.eval("'Elixir.Example':hello()."), "world");

    d.edit("lib/example.ex", ":world(", ":fixed");
    w.wait_loaded("Elixir.Example");
    assert_eq!(d.node.eval("'Elixir.Example':hello()."), "fixed");

    // The build node dies after the watcher saw it alive for the next
    // change, before the compile goes to it: the change says it stopped
    // and starts another.
    faults.arm("build_node_compile");
    d.edit("lib/example.ex", ":fixed", ":again");
    assert!(faults.reached("build_node_compile", &mut || w.running()));
    let build_node = processes_named(&format!("hotswap_build_{}@", w.pid));
    assert!(!build_node.is_empty(), "no build node runs");
    for pid in &build_node {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    // Gone, or a zombie the watcher has not reaped yet (no command line).
    while !processes_named(&format!("hotswap_build_{}@", w.pid)).is_empty() {
        assert!(Instant::now() < deadline, "the build node did not die");
        std::thread::sleep(Duration::from_millis(10));
    }
    faults.release("build_node_compile");
    w.wait_stderr("the build node stopped");
    w.wait_loaded("Elixir.Example");
    assert_eq!(d.node.eval("'Elixir.Example':hello()."), "again");
    assert_stopped_cleanly(w);
}

#[test]
fn an_umbrella_app_is_watched_and_deployed() {
    let source = tempfile::tempdir().expect("tmp");
    write_umbrella(source.path());
    let mut d = MixDevice::start(source.path(), &[]);
    assert_eq!(d.node.eval("'Elixir.Beta':value()."), "one");
    let mut w = d.watch(&[]);
    d.edit("apps/beta/lib/beta.ex", ":one", ":two");
    node_comes_to(&mut d.node, "'Elixir.Beta':value().", "two", &mut w);
    assert_eq!(d.node.eval("'Elixir.Alpha':value()."), "one");
    assert_stopped_cleanly(w);
}

/// A rebar3 project: each save runs `rebar3 compile` (there is no build
/// node for rebar3), and the module it rebuilt reaches the node, even a
/// save in the same second as the beam before it; a save that does not
/// compile changes nothing, and the fix is deployed.
#[test]
fn a_rebar3_project_is_rebuilt_by_rebar3_on_each_save() {
    let root = tempfile::tempdir().expect("tmp");
    let dev = root.path().join("dev");
    let source = |version: &str| {
        format!("-module(hs_rebar).\n-export([version/0]).\nversion() -> {version}.\n")
    };
    write(&dev.join("rebar.config"), "{erl_opts, [debug_info]}.\n");
    write(
        &dev.join("src/hs_rebar.app.src"),
        "{application, hs_rebar, [{vsn, \"0.1.0\"}, {applications, [kernel, stdlib]}]}.\n",
    );
    write(&dev.join("src/hs_rebar.erl"), &source("one"));
    rebar3_compile(&dev, root.path());
    let device = root.path().join("device");
    copy_dir(&dev.join("_build/default/lib/hs_rebar/ebin"), &device);
    let mut node = start_node_with(NodeSpec::new("wrebar").code_path(&device), &["hs_rebar"]);
    let name = unique("hsw");
    let mut w = Watcher::start(
        &dev,
        root.path(),
        &[
            "--node",
            &node.name,
            "--cookie",
            &node.cookie,
            "--name",
            &name,
        ],
    );
    let banner = w.wait_stderr("Watching");
    assert!(banner.contains("rebar3 compile"), "{banner}");

    write(&dev.join("src/hs_rebar.erl"), &source("two"));
    node_comes_to(&mut node, "hs_rebar:version().", "two", &mut w);

    // A save in the same second as the beam rebar3 wrote: rebar3 compares
    // the two files' times to the second, and would find the beam fresh.
    let before = node.loaded_md5("hs_rebar");
    let beam = dev.join("_build/default/lib/hs_rebar/ebin/hs_rebar.beam");
    let written = std::fs::metadata(&beam)
        .and_then(|m| m.modified())
        .expect("beam");
    let erl = dev.join("src/hs_rebar.erl");
    write(&erl, &source("three("));
    let file = std::fs::File::options()
        .write(true)
        .open(&erl)
        .expect("open");
    file.set_modified(written).expect("set mtime");
    let failed = w.wait_event("build_failed", |e| e["event"] == "build_failed");
    assert_eq!(failed["ok"], false);
    assert_eq!(node.loaded_md5("hs_rebar"), before);

    write(&dev.join("src/hs_rebar.erl"), &source("four"));
    node_comes_to(&mut node, "hs_rebar:version().", "four", &mut w);
    assert_stopped_cleanly(w);
}

fn write_umbrella(dir: &Path) {
    let files = [
        ("mix.exs", "defmodule Umb.MixProject do\n  use Mix.Project\n  def project, do: [apps_path: \"apps\", version: \"0.1.0\", deps: []]\nend\n".to_owned()),
        ("config/config.exs", "import Config\n".to_owned()),
    ];
    for (path, text) in files {
        write(&dir.join(path), &text);
    }
    for (app, module) in [("alpha", "Alpha"), ("beta", "Beta")] {
        let base = dir.join("apps").join(app);
        write(
            &base.join("mix.exs"),
            &format!(
                "defmodule {module}.MixProject do\n  use Mix.Project\n  def project, do: [app: :{app}, version: \"0.1.0\", build_path: \"../../_build\", config_path: \"../../config/config.exs\", deps_path: \"../../deps\", lockfile: \"../../mix.lock\", deps: []]\nend\n"
            ),
        );
        write(
            &base.join(format!("lib/{app}.ex")),
            &format!("defmodule {module} do\n  def value, do: :one\nend\n"),
        );
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// `watch --no-build --ebin watched` in the project, against `nodes`
/// (which share a cookie), with `extra` flags.
fn watch_folder(p: &Project, nodes: &[&ErlNode], extra: &[&str]) -> Watcher {
    let name = unique("hsw");
    let mut args = vec!["--no-build", "--ebin", "watched", "--name", &name];
    for n in nodes {
        args.extend(["--node", n.name.as_str()]);
    }
    args.extend(["--cookie", nodes[0].cookie.as_str()]);
    args.extend(extra);
    let mut w = Watcher::start(p.path(), p.path(), &args);
    w.wait_stderr("Watching");
    w
}

/// Moves `module`'s beam from `from` into `dir` as a build tool would:
/// written beside it, then renamed into place.
fn move_beam(from: &Path, dir: &Path, module: &str) {
    let name = format!("{module}.beam");
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::copy(from.join(&name), &tmp).expect("copy");
    std::fs::rename(&tmp, dir.join(&name)).expect("rename");
}

#[test]
fn no_build_follows_beams_moved_into_the_folder() {
    let p = Project::new();
    let v1 = p.build(1, &["hs_greet", "hs_calc"]);
    let v2 = p.build(2, &["hs_greet", "hs_extra"]);
    let watched = p.path().join("watched");
    copy_dir(&v1, &watched);
    let mut node = start_node_with(
        NodeSpec::new("wbeams").code_path(&v1),
        &["hs_greet", "hs_calc"],
    );
    let mut w = watch_folder(&p, &[&node], &[]);
    // A changed module and a new one.
    move_beam(&v2, &watched, "hs_greet");
    move_beam(&v2, &watched, "hs_extra");
    let mut loaded = std::collections::BTreeSet::new();
    while loaded.len() < 2 {
        let event = w.wait_event("a deploy", |e| e["event"] == "change");
        assert_eq!(event["ok"], true, "{event}");
        for m in event["modules"].as_array().expect("modules") {
            loaded.insert(m.as_str().expect("name").to_owned());
        }
    }
    assert_eq!(node.loaded_md5("hs_greet"), p.md5(&v2, "hs_greet"));
    assert_eq!(node.loaded_md5("hs_extra"), p.md5(&v2, "hs_extra"));
    assert_eq!(node.eval("hs_extra:extra()."), "only_in_v2");
    assert_stopped_cleanly(w);
}

/// What a deploy warns of reaches the watcher's user: here `--force`
/// killing a process that ran the code the change had to replace.
#[test]
fn a_deploys_warnings_reach_the_user() {
    let p = Project::new();
    let v: Vec<PathBuf> = (1..=3).map(|i| p.build(i, &["hs_loop"])).collect();
    let watched = p.path().join("watched");
    copy_dir(&v[0], &watched);
    let mut node = start_node_with(NodeSpec::new("wwarn").code_path(&v[0]), &["hs_loop"]);
    node.eval("hs_loop:start().");
    let mut w = watch_folder(&p, &[&node], &["--force"]);
    // v2 lands; the looper stays in v1, now old code. v3 needs v1 gone.
    move_beam(&v[1], &watched, "hs_loop");
    w.wait_loaded("hs_loop");
    move_beam(&v[2], &watched, "hs_loop");
    w.wait_loaded("hs_loop");
    let killed = w.wait_stderr("killed 1 process");
    assert!(killed.contains(&node.name), "{killed}");
    assert_eq!(node.eval("whereis(hs_looper)."), "undefined");
    assert_eq!(node.loaded_md5("hs_loop"), p.md5(&v[2], "hs_loop"));
    assert_stopped_cleanly(w);
}

/// A snapshot store that cannot be locked changes no node: the change is
/// refused with the reason, and the watcher goes on.
#[test]
fn a_store_that_cannot_be_locked_changes_no_node() {
    let p = Project::new();
    let v: Vec<PathBuf> = (1..=2).map(|i| p.build(i, &["hs_greet"])).collect();
    let watched = p.path().join("watched");
    copy_dir(&v[0], &watched);
    let mut node = start_node_with(NodeSpec::new("wlock").code_path(&v[0]), &["hs_greet"]);
    // The lock file cannot be opened: a folder stands in its place.
    std::fs::create_dir_all(p.path().join(".hotswap/lock")).expect("a folder in the way");
    let mut w = watch_folder(&p, &[&node], &[]);
    move_beam(&v[1], &watched, "hs_greet");
    let event = w.wait_event("a refused change", |e| e["event"] == "store_failed");
    assert!(event["error"].to_string().contains("lock"), "{event}");
    assert_eq!(node.loaded_md5("hs_greet"), p.md5(&v[0], "hs_greet"));
    assert_stopped_cleanly(w);
}

#[test]
fn two_nodes_get_every_change_together_the_second_prepared_on_both() {
    let p = Project::new();
    let v: Vec<PathBuf> = (1..=3).map(|i| p.build(i, &["hs_greet"])).collect();
    let watched = p.path().join("watched");
    copy_dir(&v[0], &watched);
    let cookie = common::random_cookie();
    let mut nodes: Vec<ErlNode> = ["wtwo_a", "wtwo_b"]
        .iter()
        .map(|tag| {
            let spec = NodeSpec::new(tag).cookie(&cookie).code_path(&v[0]);
            start_node_with(spec, &["hs_greet"])
        })
        .collect();
    let mut w = watch_folder(&p, &[&nodes[0], &nodes[1]], &["-v"]);
    for (i, ebin) in v.iter().enumerate().skip(1) {
        move_beam(ebin, &watched, "hs_greet");
        let event = w.wait_event("a deploy", |e| e["event"] == "change");
        assert_eq!(event["ok"], true, "{event}");
        assert_eq!(event["nodes"].as_array().map(Vec::len), Some(2), "{event}");
        for n in &mut nodes {
            let want = p.md5(ebin, "hs_greet");
            assert_eq!(n.loaded_md5("hs_greet"), want, "v{} on {}", i + 1, n.name);
        }
    }
    // The first change taught the session what both nodes run: the second
    // was prepared on both before either loaded it.
    let prepared = |w: &Watcher| {
        let lines = w
            .seen
            .iter()
            .filter(|l| l.contains("it prepared the changes"));
        lines.count()
    };
    while prepared(&w) < 2 {
        w.wait_stderr("it prepared the changes");
    }
    assert_eq!(prepared(&w), 2, "{}", w.seen.join("\n"));
    assert_stopped_cleanly(w);
}

#[test]
fn a_restarted_node_is_reconnected_and_caught_up() {
    let p = Project::new();
    let v1 = p.build(1, &["hs_greet"]);
    let v2 = p.build(2, &["hs_greet"]);
    let v3 = p.build(3, &["hs_greet"]);
    let watched = p.path().join("watched");
    copy_dir(&v1, &watched);
    let alive = unique("wreboot");
    let spec = NodeSpec::new("wreboot").alive(&alive).code_path(&v1);
    let mut node = start_node_with(spec.clone(), &["hs_greet"]);
    let spec = spec.cookie(&node.cookie);
    let mut w = watch_folder(&p, &[&node], &[]);
    move_beam(&v2, &watched, "hs_greet");
    w.wait_loaded("hs_greet");
    assert_eq!(node.eval("hs_greet:hello()."), "{hello,2}");

    node.kill();
    w.wait_event("node_down", |e| e["event"] == "node_down");
    // A change while the device is away, and it comes back on old firmware.
    move_beam(&v3, &watched, "hs_greet");
    // (Its v1 is not read here: the watcher may catch it up first. That
    // the catch-up loads hs_greet shows it ran something else.)
    let mut node = start_node_with(spec, &["hs_greet"]);
    w.wait_event("node_up", |e| e["event"] == "node_up");
    let caught = w.wait_loaded("hs_greet");
    assert_eq!(caught["event"], "catch_up", "{caught}");
    assert_eq!(node.eval("hs_greet:hello()."), "{hello,3}");
    assert_stopped_cleanly(w);
}

/// `Example.Counter` at each save of
/// [`a_genserver_whose_state_changes_shape_keeps_its_pid_and_count`]: its
/// state an integer (as built), then a map, a map with one more field, a
/// tuple; each version's `code_change` converts the one before.
const COUNTER_SAVES: [&str; 3] = [
    r#"defmodule Example.Counter do
  use GenServer
  def start_link(opts \\ []),
    do: GenServer.start_link(__MODULE__, Keyword.get(opts, :initial, 0), name: __MODULE__)
  def increment, do: GenServer.call(__MODULE__, :increment)
  def value, do: GenServer.call(__MODULE__, :value)
  @impl true
  def init(n), do: {:ok, %{count: n}}
  @impl true
  def handle_call(:increment, _from, %{count: n} = s), do: {:reply, n + 1, %{s | count: n + 1}}
  def handle_call(:value, _from, %{count: n} = s), do: {:reply, n, s}
  @impl true
  def code_change(_old, n, _extra) when is_integer(n), do: {:ok, %{count: n}}
end
"#,
    r#"defmodule Example.Counter do
  use GenServer
  def start_link(opts \\ []),
    do: GenServer.start_link(__MODULE__, Keyword.get(opts, :initial, 0), name: __MODULE__)
  def increment, do: GenServer.call(__MODULE__, :increment)
  def value, do: GenServer.call(__MODULE__, :value)
  @impl true
  def init(n), do: {:ok, %{count: n, step: 10}}
  @impl true
  def handle_call(:increment, _from, %{count: n, step: d} = s), do: {:reply, n + d, %{s | count: n + d}}
  def handle_call(:value, _from, %{count: n, step: _} = s), do: {:reply, n, s}
  @impl true
  def code_change(_old, %{count: _} = s, _extra), do: {:ok, Map.put_new(s, :step, 10)}
end
"#,
    r#"defmodule Example.Counter do
  use GenServer
  def start_link(opts \\ []),
    do: GenServer.start_link(__MODULE__, Keyword.get(opts, :initial, 0), name: __MODULE__)
  def increment, do: GenServer.call(__MODULE__, :increment)
  def value, do: GenServer.call(__MODULE__, :value)
  @impl true
  def init(n), do: {:ok, {:counter, n, 100}}
  @impl true
  def handle_call(:increment, _from, {:counter, n, d}), do: {:reply, n + d, {:counter, n + d, d}}
  def handle_call(:value, _from, {:counter, n, _} = s), do: {:reply, n, s}
  @impl true
  def code_change(_old, %{count: n, step: _}, _extra), do: {:ok, {:counter, n, 100}}
end
"#,
];

/// A supervised Elixir GenServer of a Mix app (its `config.exs` as the
/// seed's users have it) whose state changes shape across three saves:
/// each save migrates it, and the same process keeps counting. (With
/// `--no-code-change` the first call after the first save crashes it.)
#[test]
fn a_genserver_whose_state_changes_shape_keeps_its_pid_and_count() {
    let mut d = MixDevice::start(&common::fixture("example"), &["example"]);
    let counter = "'Elixir.Example.Counter'";
    d.node
        .eval(&format!("{counter}:increment(), {counter}:increment()."));
    let pid = d.node.eval("whereis('Elixir.Example.Counter').");
    let mut w = d.watch(&[]);
    let steps: [(&str, &str, &str); 3] = [
        ("2", "3", "#{count => 3}"),
        ("3", "13", "#{count => 13,step => 10}"),
        ("13", "113", "{counter,113,100}"),
    ];
    for (save, (before, after, state)) in COUNTER_SAVES.iter().zip(steps) {
        std::fs::write(d.dev.join("lib/example/counter.ex"), save).expect("write");
        let event = w.wait_loaded("Elixir.Example.Counter");
        assert_eq!(event["ok"], true, "{event}");
        let migrated = &event["report"]["nodes"][0]["migrated"];
        assert_eq!(migrated[0]["module"], "Elixir.Example.Counter", "{event}");
        assert_eq!(d.node.eval("whereis('Elixir.Example.Counter')."), pid);
        assert_eq!(d.node.eval(&format!("{counter}:value().")), before);
        assert_eq!(d.node.eval(&format!("{counter}:increment().")), after);
        assert_eq!(
            d.node.eval("sys:get_state('Elixir.Example.Counter')."),
            state
        );
    }
    assert_stopped_cleanly(w);
}

/// An inspect step that fails after it took the node's lock (here it
/// outlives `--timeout`: the node's loader is held, which the step needs to
/// find the node's own copy) gives the lock back: the next save is not
/// refused as locked by the watcher itself.
#[test]
fn a_failed_inspect_gives_the_lock_back() {
    let p = Project::new();
    let v: Vec<PathBuf> = (1..=3).map(|i| p.build(i, &["hs_greet"])).collect();
    let watched = p.path().join("watched");
    copy_dir(&v[0], &watched);
    let mut node = start_node_with(NodeSpec::new("winspect").code_path(&v[0]), &["hs_greet"]);
    let mut w = watch_folder(&p, &[&node], &["--timeout", "3"]);
    node.eval("erlang:suspend_process(whereis(erl_prim_loader)).");
    // The first save flies on the store's belief; the second, that belief
    // gone with the failure, inspects first.
    for version in [&v[1], &v[2]] {
        move_beam(version, &watched, "hs_greet");
        let event = w.wait_event("a failed change", |e| e["event"] == "change");
        assert_eq!(event["ok"], false, "{event}");
    }
    node.eval("erlang:resume_process(whereis(erl_prim_loader)).");
    move_beam(&v[1], &watched, "hs_greet");
    let event = w.wait_event("a change that loads", |e| {
        assert!(!e.to_string().contains("locked"), "{e}");
        e["event"] == "change" && e["ok"] == true
    });
    assert_eq!(event["modules"][0], "hs_greet", "{event}");
    assert_eq!(node.loaded_md5("hs_greet"), p.md5(&v[1], "hs_greet"));
    assert_stopped_cleanly(w);
}

/// A second Ctrl-C while a build command runs (a rebar3 project's, here a
/// configured one) quits at once, and the build's process group, which
/// the terminal's Ctrl-C does not reach, is stopped: nothing outlives the
/// watcher.
#[test]
fn a_second_ctrl_c_stops_the_build_under_way() {
    let root = tempfile::tempdir().expect("tmp");
    let dev = root.path().join("dev");
    write(&dev.join("rebar.config"), "{erl_opts, [debug_info]}.\n");
    write(
        &dev.join("src/hs_rebar.app.src"),
        "{application, hs_rebar, [{vsn, \"0.1.0\"}, {applications, [kernel, stdlib]}]}.\n",
    );
    write(
        &dev.join("src/hs_rebar.erl"),
        "-module(hs_rebar).\n-export([version/0]).\nversion() -> one.\n",
    );
    rebar3_compile(&dev, root.path());
    let node = start_node_with(
        NodeSpec::new("wbuild").code_path(&dev.join("_build/default/lib/hs_rebar/ebin")),
        &["hs_rebar"],
    );
    // A duration no other process sleeps, to find the build's processes.
    let marker = format!("sleep 60.{}", std::process::id());
    let started = root.path().join("started");
    write(
        &dev.join("hotswap.toml"),
        &format!("build = \"touch {}; {marker}\"\n", started.display()),
    );
    let faults = common::fault::FaultPoints::new();
    let name = unique("hsw");
    let args = [
        "--node",
        &node.name,
        "--cookie",
        &node.cookie,
        "--name",
        &name,
    ];
    let env = faults.env(&["interrupted", "quitting", "run_ended"]);
    let mut w = Watcher::start_with(&dev, root.path(), &args, &env);
    let deadline = Instant::now() + common::watcher::CHANGE_LIMIT;
    while !started.exists() {
        assert!(Instant::now() < deadline, "the build never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    w.signal_int();
    assert!(faults.reached("interrupted", &mut || w.running()));
    w.signal_int();
    faults.release("interrupted");
    // The second signal stops the build, and the run ends (the build
    // failed) while the quitting is under way: it still quits, 130, not 0
    // as a run that ended by itself.
    assert!(faults.reached("quitting", &mut || w.running()));
    assert!(faults.reached("run_ended", &mut || w.running()));
    faults.release("run_ended");
    faults.release("quitting");
    assert_eq!(w.wait_exit(), 130);
    let left = (0..200).find(|_| {
        let gone = processes_named(&marker).is_empty();
        if !gone {
            std::thread::sleep(Duration::from_millis(50));
        }
        gone
    });
    assert!(left.is_some(), "the build outlived the watcher");
}

/// A save while a `deploy` in another terminal holds the project's
/// snapshot store waits for it, off the watcher's runtime, and says so;
/// the change lands once that run is done.
#[test]
fn a_save_waits_for_a_deploy_that_holds_the_store_then_lands() {
    let p = Project::new();
    let v: Vec<PathBuf> = (1..=3).map(|i| p.build(i, &["hs_greet"])).collect();
    let watched = p.path().join("watched");
    copy_dir(&v[0], &watched);
    let mut node = start_node_with(NodeSpec::new("wstore").code_path(&v[0]), &["hs_greet"]);
    let mut w = watch_folder(&p, &[&node], &[]);
    let faults = common::fault::FaultPoints::new();
    let env = faults.env(&["apply_before_word"]);
    let ebin = common::project::arg(&v[1]);
    let mut deploy = p.spawn_deploy(&[&node], &["--ebin", &ebin], &env);
    deploy.hold_at(&faults, "apply_before_word");

    move_beam(&v[2], &watched, "hs_greet");
    w.wait_stderr("waiting for another hotswap-node run in this project");
    assert_eq!(node.loaded_md5("hs_greet"), p.md5(&v[0], "hs_greet"));
    faults.release("apply_before_word");
    let (code, json, stderr) = deploy.finish();
    assert_eq!(code, 0, "{json}\n{stderr}");
    w.wait_loaded("hs_greet");
    assert_eq!(node.loaded_md5("hs_greet"), p.md5(&v[2], "hs_greet"));
    assert_stopped_cleanly(w);
}

/// In a held session the node answers once the change runs, and the watch
/// after it (`--observe`) goes on apart: the next save lands while the
/// first change's window (ten minutes here) is still open. On Ctrl-C the
/// watches still under way are named before the watcher waits for them; a
/// second Ctrl-C quits without them.
#[test]
fn the_watch_after_a_change_does_not_hold_the_next_save() {
    let p = Project::new();
    let v: Vec<PathBuf> = (1..=3).map(|i| p.build(i, &["hs_counter"])).collect();
    let watched = p.path().join("watched");
    copy_dir(&v[0], &watched);
    let mut node = start_node_with(NodeSpec::new("wapart").code_path(&v[0]), &["hs_counter"]);
    node.eval("{ok, _} = hs_counter:start().");
    let pid = node.eval("whereis(hs_counter).");
    let mut w = watch_folder(&p, &[&node], &["--observe", "600000"]);
    for version in &v[1..] {
        move_beam(version, &watched, "hs_counter");
        let event = w.wait_loaded("hs_counter");
        assert_eq!(event["ok"], true, "{event}");
        let report = &event["report"]["nodes"][0];
        assert_eq!(report["migrated"][0]["pid"], pid.as_str(), "{event}");
        assert_eq!(report["watched"], 1, "{event}");
        assert_eq!(report["watched_apart"], true, "{event}");
        assert_eq!(node.loaded_md5("hs_counter"), p.md5(version, "hs_counter"));
    }
    assert_eq!(node.eval("whereis(hs_counter)."), pid);
    w.signal_int();
    let waiting = w.wait_stderr("waiting for the watch after the last change");
    assert!(
        waiting.contains("1 process on ") && waiting.contains(&node.name),
        "{waiting}"
    );
    w.signal_int();
    assert_eq!(w.wait_exit(), 130);
}

/// A watch after a change, reported apart, goes with the watcher: one that
/// quits without waiting for it leaves nothing watching on the node,
/// however long the window (here ten minutes).
#[test]
fn the_watch_after_a_change_ends_when_the_watcher_goes() {
    let p = Project::new();
    let v: Vec<PathBuf> = (1..=2).map(|i| p.build(i, &["hs_counter"])).collect();
    let watched = p.path().join("watched");
    copy_dir(&v[0], &watched);
    let mut node = start_node_with(NodeSpec::new("wgone").code_path(&v[0]), &["hs_counter"]);
    node.eval("{ok, _} = hs_counter:start().");
    // Who monitors the migrated process, read on the node itself.
    let monitors = "element(2, process_info(whereis(hs_counter), monitored_by)).";
    let before = node.eval(monitors);
    let mut w = watch_folder(&p, &[&node], &["--observe", "600000"]);
    move_beam(&v[1], &watched, "hs_counter");
    let event = w.wait_loaded("hs_counter");
    assert_eq!(
        event["report"]["nodes"][0]["watched_apart"], true,
        "{event}"
    );
    assert_ne!(node.eval(monitors), before, "nothing watches the process");
    w.signal_int();
    w.wait_stderr("waiting for the watch after the last change");
    w.signal_int();
    assert_eq!(w.wait_exit(), 130);
    common::comes_true(
        &mut node,
        |n| n.eval(monitors) == before,
        "the process unwatched after the watcher went",
    );
}

/// A watch after a change, reported apart, in which none died comes as a
/// later `observed` event that is ok, naming the node and what the change
/// loaded there, once its window (here 0.3 s) is over.
#[test]
fn a_watch_after_a_change_in_which_none_died_is_reported_ok() {
    let p = Project::new();
    let v: Vec<PathBuf> = (1..=2).map(|i| p.build(i, &["hs_counter"])).collect();
    let watched = p.path().join("watched");
    copy_dir(&v[0], &watched);
    let mut node = start_node_with(NodeSpec::new("wlived").code_path(&v[0]), &["hs_counter"]);
    node.eval("{ok, _} = hs_counter:start().");
    let pid = node.eval("whereis(hs_counter).");
    let mut w = watch_folder(&p, &[&node], &["--observe", "300"]);
    move_beam(&v[1], &watched, "hs_counter");
    let event = w.wait_loaded("hs_counter");
    assert_eq!(event["ok"], true, "{event}");
    let seen = w.wait_event("the watch after the change", |e| e["event"] == "observed");
    assert_eq!(seen["ok"], true, "{seen}");
    assert_eq!(seen["node"], node.name.as_str(), "{seen}");
    assert_eq!(seen["watched"], 1, "{seen}");
    assert_eq!(seen["died"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["changed_modules"][0], "hs_counter", "{seen}");
    assert_eq!(node.eval("whereis(hs_counter)."), pid);
    assert_stopped_cleanly(w);
}

/// A process that dies in the watch after its change, reported apart, is
/// named in a later `observed` event (not ok), and on stderr. The window is
/// ten minutes: the report comes as soon as every process watched is gone,
/// however long the dying takes on a busy machine.
#[test]
fn a_process_that_dies_after_a_watched_change_is_named_in_a_later_event() {
    let p = Project::new();
    let v: Vec<PathBuf> = (1..=2).map(|i| p.build(i, &["hs_counter"])).collect();
    let watched = p.path().join("watched");
    copy_dir(&v[0], &watched);
    let mut node = start_node_with(NodeSpec::new("wdied").code_path(&v[0]), &["hs_counter"]);
    node.eval("{ok, _} = hs_counter:start().");
    let pid = node.eval("whereis(hs_counter).");
    node.eval("persistent_term:put({hs_counter, code_change}, exit_after).");
    let mut w = watch_folder(&p, &[&node], &["--observe", "600000"]);
    move_beam(&v[1], &watched, "hs_counter");
    let event = w.wait_loaded("hs_counter");
    assert_eq!(event["ok"], true, "{event}");
    let seen = w.wait_event("the watch after the change", |e| e["event"] == "observed");
    assert_eq!(seen["ok"], false, "{seen}");
    assert_eq!(seen["died"][0]["pid"], pid.as_str(), "{seen}");
    let why = seen["died"][0]["detail"].to_string();
    assert!(why.contains("hs_died_after_its_change"), "{why}");
    let line = w.wait_stderr("died right after the change");
    assert!(line.contains(&pid) && line.contains(&node.name), "{line}");
    assert_eq!(node.eval("whereis(hs_counter)."), "undefined");
    assert_eq!(node.loaded_md5("hs_counter"), p.md5(&v[1], "hs_counter"));
    // A process that died because of the session is its exit code, as it
    // is a deploy's: 7, said last.
    w.signal_int();
    let said = w.wait_stderr("died right after this session's changes");
    assert!(said.contains("1 process"), "{said}");
    assert_eq!(w.wait_exit(), 7, "a death is the session's exit code");
}

/// A node that goes while the watch after its change is under way cannot
/// report it: the watcher says that whether its processes lived is not
/// known, in an `observed` event that is not ok, and on stderr.
#[test]
fn a_watch_after_a_change_cut_short_by_the_node_going_is_named_not_known() {
    let p = Project::new();
    let v: Vec<PathBuf> = (1..=2).map(|i| p.build(i, &["hs_counter"])).collect();
    let watched = p.path().join("watched");
    copy_dir(&v[0], &watched);
    let mut node = start_node_with(NodeSpec::new("wgone").code_path(&v[0]), &["hs_counter"]);
    node.eval("{ok, _} = hs_counter:start().");
    let mut w = watch_folder(&p, &[&node], &["--observe", "600000"]);
    move_beam(&v[1], &watched, "hs_counter");
    let event = w.wait_loaded("hs_counter");
    assert_eq!(
        event["report"]["nodes"][0]["watched_apart"], true,
        "{event}"
    );
    node.kill();
    let seen = w.wait_event("the watch cut short", |e| e["event"] == "observed");
    assert_eq!(seen["ok"], false, "{seen}");
    assert_eq!(seen["node"], node.name.as_str(), "{seen}");
    assert_eq!(seen["watched"], 1, "{seen}");
    assert!(seen["error"].is_string(), "{seen}");
    let line = w.wait_stderr("lived is not known");
    assert!(
        line.contains("1 process") && line.contains(&node.name),
        "{line}"
    );
    assert_stopped_cleanly(w);
}
