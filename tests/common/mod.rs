//! The real-node test harness: `erl` nodes with unique names and random
//! cookies, waited for in EPMD with a hard deadline, killed and reaped on
//! drop. Each node runs `hotswap_test_shell`, so a test can ask the node
//! things over its stdin, independently of the distribution code under test.
//!
//! With `HOTSWAP_TEST_OTP_ROOT` set to a Debian root holding another OTP
//! release (`scripts/test-otp` builds and mounts one), nodes, `erlc`, `mix`
//! and `elixir` run inside it: same network, same EPMD, same `/tmp` and
//! repository paths.
#![allow(dead_code)]

pub mod fault;
pub mod netns;
pub mod project;
pub mod slowlink;
pub mod tls;
pub mod watcher;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const NODE_START_LIMIT: Duration = Duration::from_secs(30);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name no other test in any process uses: `tag_<pid>_<n>`.
/// Says why a test cannot run on this machine, and the test then skips;
/// under CI (`CI=true`), where everything a test needs is installed,
/// fails instead: a skip there would pass a feature nobody tested.
pub fn cannot_run_here(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("this test cannot run here, and under CI every test must: {why}");
    }
    eprintln!("skipped: {why}");
}

/// Whether a newer OTP release is under test (`scripts/test-otp`); if
/// not, says that the test runs only there. Not a failure under CI, where
/// `scripts/test-otp` runs it.
pub fn under_test_otp(what: &str) -> bool {
    if otp_root().is_some() {
        return true;
    }
    eprintln!(
        "skipped here: {what} runs under scripts/test-otp, with a newer OTP release under test"
    );
    false
}

pub fn unique(tag: &str) -> String {
    format!(
        "{tag}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A folder for this test process's compiled fixtures, under Cargo's tmp
/// folder for tests (not `/tmp`): `<tag>-<pid>`. Those of processes that
/// are gone are removed first, so they do not pile up run after run.
pub fn scratch(tag: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let prefix = format!("{tag}-");
    for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = root.join(format!("{prefix}{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// A TCP port nothing listens on, for a process the test starts to listen
/// there later, or for a port that must stay silent. A port the kernel
/// picks (`bind` to 0) and the test lets go can be handed by the kernel to
/// any other socket before the test's own process binds it: CI met a node
/// that could not listen ("eaddrinuse") for it. So the port is taken
/// outside the kernel's ephemeral range (`ip_local_port_range`), where the
/// kernel hands out none by itself, from a cursor seeded by this process's
/// id, skipping a port that is bound already.
pub fn unused_port() -> u16 {
    static CURSOR: AtomicU32 = AtomicU32::new(0);
    let (low, high) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut parts = text.split_whitespace().map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .unwrap_or((32768, 60999));
    let (first, span) = if low >= 12000 {
        (10000, low - 10000)
    } else {
        (high + 1, 65535 - high)
    };
    assert!(
        span >= 1000,
        "no room outside the ephemeral ports {low}-{high}"
    );
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..span {
        let step = CURSOR.fetch_add(1, Ordering::Relaxed);
        let port = (first + seed.wrapping_add(step.wrapping_mul(13)) % span) as u16;
        let free = ["0.0.0.0", "127.0.0.1"]
            .iter()
            .all(|ip| std::net::TcpListener::bind((*ip, port)).is_ok());
        if free {
            return port;
        }
    }
    panic!("no free port in {first}..{}", first + span);
}

/// A fresh random cookie.
pub fn random_cookie() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("cookie{:016x}", h.finish())
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    repo_root().join("fixtures").join(rel)
}

/// The short host name, as `erl -sname` sees it.
pub fn short_host() -> String {
    hotswap_node::peer::names::short_host_name().expect("host name")
}

/// The root of the OTP release under test, if not this machine's own.
pub fn otp_root() -> Option<PathBuf> {
    std::env::var_os("HOTSWAP_TEST_OTP_ROOT").map(PathBuf::from)
}

/// An Erlang or Elixir tool of the release under test. Inside a root the
/// working folder is `/`: give it absolute paths.
pub fn otp_tool(name: &str) -> Command {
    otp_tool_of(name, Otp::UnderTest)
}

/// Which OTP release a node or tool runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Otp {
    /// The release under test: this machine's, or the one in
    /// `HOTSWAP_TEST_OTP_ROOT`.
    #[default]
    UnderTest,
    /// This machine's own, whatever is under test (a mixed cluster).
    Host,
}

fn otp_tool_of(name: &str, otp: Otp) -> Command {
    match (otp_root(), otp) {
        (Some(root), Otp::UnderTest) => {
            let mut cmd = Command::new("chroot");
            cmd.arg(root).arg(name);
            cmd
        }
        _ => Command::new(name),
    }
}

/// A folder holding a `mix` that runs the release under test's Mix in the
/// folder it is called from, to put first in the tool's PATH; `None` when
/// testing this machine's own release.
pub fn mix_shim() -> Option<PathBuf> {
    let root = otp_root()?;
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    Some(
        DIR.get_or_init(|| {
            let dir = scratch("mix_shim");
            let script = format!(
                r#"#!/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin exec chroot '{}' sh -c 'cd "$0" && exec mix "$@"' "$PWD" "$@"
"#,
                root.display()
            );
            let path = dir.join("mix");
            std::fs::write(&path, script).expect("shim");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            dir
        })
        .clone(),
    )
}

/// PATH for running the tool, with [`mix_shim`] first when there is one.
pub fn tool_path() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    match mix_shim() {
        Some(dir) => {
            let mut dirs = vec![dir];
            dirs.extend(std::env::split_paths(&path));
            std::env::join_paths(dirs).expect("PATH")
        }
        None => path,
    }
}

/// Compiles Erlang sources with `erlc` into `out`, with extra `erlc` options.
pub fn erlc(sources: &[PathBuf], out: &Path, options: &[&str]) {
    erlc_of(Otp::UnderTest, sources, out, options);
}

/// [`erlc`] of the given release.
pub fn erlc_of(otp: Otp, sources: &[PathBuf], out: &Path, options: &[&str]) {
    std::fs::create_dir_all(out).expect("out dir");
    let status = otp_tool_of("erlc", otp)
        .args(options)
        .arg("-o")
        .arg(out)
        .args(sources)
        .status()
        .expect("erlc runs (scripts/setup installs it)");
    assert!(status.success(), "erlc failed for {sources:?}");
}

/// The directory holding the compiled test shell; compiled once per
/// process and release.
pub fn shell_ebin(otp: Otp) -> &'static Path {
    static UNDER_TEST: OnceLock<PathBuf> = OnceLock::new();
    static HOST: OnceLock<PathBuf> = OnceLock::new();
    let (cell, tag) = match otp {
        Otp::UnderTest => (&UNDER_TEST, "shell"),
        Otp::Host => (&HOST, "shell_host"),
    };
    cell.get_or_init(|| {
        let dir = scratch(tag);
        erlc_of(otp, &[fixture("erl/hotswap_test_shell.erl")], &dir, &[]);
        dir
    })
}

#[derive(Debug, Clone, Default)]
pub struct NodeSpec {
    pub tag: String,
    pub cookie: Option<String>,
    pub code_paths: Vec<PathBuf>,
    pub extra_args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub long_name_host: Option<String>,
    /// The exact name before `@` (a node restarted under its old name).
    pub alive: Option<String>,
    pub otp: Otp,
    /// The network namespace the node runs in ([`netns::Link`]).
    pub netns: Option<String>,
}

impl NodeSpec {
    pub fn new(tag: &str) -> Self {
        NodeSpec {
            tag: tag.to_owned(),
            ..Default::default()
        }
    }

    pub fn cookie(mut self, cookie: &str) -> Self {
        self.cookie = Some(cookie.to_owned());
        self
    }

    pub fn code_path(mut self, dir: &Path) -> Self {
        self.code_paths.push(dir.to_owned());
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.extra_args.push(arg.to_owned());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn alive(mut self, alive: &str) -> Self {
        self.alive = Some(alive.to_owned());
        self
    }

    pub fn long_name(mut self, host: &str) -> Self {
        self.long_name_host = Some(host.to_owned());
        self
    }

    /// Runs the node behind `link`, reached at the link's device address.
    pub fn behind(self, link: &netns::Link) -> Self {
        let mut spec = self.long_name(&link.device_ip);
        spec.netns = Some(link.ns());
        spec
    }

    /// Runs the node on this machine's own OTP release.
    pub fn host_otp(mut self) -> Self {
        self.otp = Otp::Host;
        self
    }
}

/// A running `erl` node. Killed and reaped when dropped.
pub struct ErlNode {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    pub alive: String,
    pub name: String,
    pub cookie: String,
    log: PathBuf,
    netns: Option<String>,
}

impl ErlNode {
    pub fn start(spec: NodeSpec) -> ErlNode {
        let alive = spec.alive.clone().unwrap_or_else(|| unique(&spec.tag));
        let cookie = spec.cookie.clone().unwrap_or_else(random_cookie);
        let log = std::env::temp_dir().join(format!("{alive}.log"));
        let stderr = std::fs::File::create(&log).expect("log file");
        let (flag, name) = match &spec.long_name_host {
            Some(host) => ("-name", format!("{alive}@{host}")),
            None => ("-sname", format!("{alive}@{}", short_host())),
        };
        let mut cmd = otp_tool_of("erl", spec.otp);
        cmd.arg(flag)
            .arg(&name)
            .args(["-setcookie", &cookie, "-noshell"]);
        // -pa puts each directory in front of those before it: given in
        // reverse, the code path starts in the spec's order.
        cmd.arg("-pa")
            .args(spec.code_paths.iter().rev())
            .arg(shell_ebin(spec.otp));
        cmd.args(&spec.extra_args)
            .args(["-s", "hotswap_test_shell", "start"])
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if let Some(ns) = &spec.netns {
            let env: Vec<_> = cmd
                .get_envs()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
                .collect();
            cmd = netns::in_namespace(ns, &cmd);
            cmd.envs(env)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(&log).expect("log file"));
        }
        let mut child = cmd.spawn().expect("erl runs (scripts/setup installs it)");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut node = ErlNode {
            child: Some(child),
            stdin,
            stdout,
            alive,
            name,
            cookie,
            log,
            netns: spec.netns.clone(),
        };
        node.wait_registered(spec.otp);
        node
    }

    /// Waits until the node answers its shell and EPMD knows it, or fails the test.
    fn wait_registered(&mut self, otp: Otp) {
        let deadline = Instant::now() + NODE_START_LIMIT;
        // The shell answering means the VM is up; then poll EPMD.
        let up = self.eval("node().");
        assert!(
            up.contains(&self.alive),
            "node {} did not start: {up}\n{}",
            self.name,
            self.log_text()
        );
        if let (Ok(release), Otp::UnderTest) = (std::env::var("HOTSWAP_TEST_OTP_RELEASE"), otp) {
            let runs = self.eval("erlang:system_info(otp_release).");
            assert_eq!(runs, format!("\"{release}\""), "the node runs another OTP");
        }
        loop {
            let mut epmd = Command::new("epmd");
            epmd.arg("-names");
            if let Some(ns) = &self.netns {
                epmd = netns::in_namespace(ns, &epmd);
            }
            let names = epmd.output().expect("epmd runs");
            let text = String::from_utf8_lossy(&names.stdout);
            if text
                .lines()
                .any(|l| l.starts_with(&format!("name {} at port", self.alive)))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {} not registered in EPMD within {:?}\n{}",
                self.name,
                NODE_START_LIMIT,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Evaluates `expr` (ending in a dot) on the node through its own shell,
    /// returning the printed result.
    pub fn eval(&mut self, expr: &str) -> String {
        let stdin = self.stdin.as_mut().expect("node stdin open");
        writeln!(stdin, "{}", expr.replace('\n', " ")).expect("write to node");
        stdin.flush().expect("flush");
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).expect("read from node");
            assert!(
                n > 0,
                "node {} exited while evaluating `{expr}`\n{}",
                self.name,
                self.log_text()
            );
            if let Some(rest) = line.strip_prefix("=> ") {
                return rest.trim_end().to_owned();
            }
        }
    }

    /// The MD5 the node reports for a loaded module, as lowercase hex, or
    /// `none` when it is not loaded.
    pub fn loaded_md5(&mut self, module: &str) -> String {
        let out = self.eval(&format!(
            "case code:is_loaded('{module}') of false -> none; _ -> lists:flatten([io_lib:format(\"~2.16.0b\", [B]) || <<B>> <= erlang:get_module_info('{module}', md5)]) end."
        ));
        out.trim_matches('"').to_owned()
    }

    pub fn node_name(&self) -> hotswap_node::peer::NodeName {
        self.name.parse().expect("node name")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the node now (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ErlNode {
    fn drop(&mut self) {
        self.stdin.take();
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A peer with a unique local name, so tests can run side by side.
pub async fn peer_for(node: &ErlNode) -> hotswap_node::peer::Peer {
    peer_with_cookie(node, &node.cookie).await
}

pub async fn peer_with_cookie(node: &ErlNode, cookie: &str) -> hotswap_node::peer::Peer {
    use hotswap_node::peer::{Cookie, Peer, PeerOptions};
    init_logging();
    Peer::start(
        PeerOptions::new(Cookie::new(cookie)).name(unique("hs")),
        &[node.node_name()],
    )
    .await
    .expect("peer starts")
}

/// Shows the library's logs in a failing test's output (`RUST_LOG=debug`).
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Copies `fixtures/example` into `root/example` and compiles it there
/// with Mix (never in the source tree).
pub fn mix_compile_example(root: &Path) -> PathBuf {
    let project = root.join("example");
    copy_dir(&fixture("example"), &project);
    mix_compile(&project);
    project
}

pub fn mix_compile(project: &Path) {
    let status = Command::new("mix")
        .arg("compile")
        .current_dir(project)
        .env("PATH", tool_path())
        .env("MIX_ENV", "dev")
        .stdout(Stdio::null())
        .status()
        .expect("mix runs (scripts/setup installs it)");
    assert!(
        status.success(),
        "mix compile failed in {}",
        project.display()
    );
}

/// `rebar3 compile` in `project`, with `home` as HOME (rebar3 keeps its
/// cache there).
pub fn rebar3_compile(project: &Path, home: &Path) {
    let status = Command::new("rebar3")
        .arg("compile")
        .current_dir(project)
        .env("HOME", home)
        .stdout(Stdio::null())
        .status()
        .expect("rebar3 runs (scripts/setup installs it)");
    assert!(
        status.success(),
        "rebar3 compile failed in {}",
        project.display()
    );
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            if entry.file_name() != "_build" {
                copy_dir(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// The ebin folder of one of Elixir's own applications (`elixir`, `logger`).
pub fn elixir_ebin(app: &str) -> PathBuf {
    let out = otp_tool("elixir")
        .args(["-e", &format!("IO.puts(:code.lib_dir(:{app}, :ebin))")])
        .output()
        .expect("elixir runs");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Reads the child's stderr until `count` lines contain `marker`; returns
/// what was read, and keeps draining in the background.
pub fn wait_for(
    child: &mut std::process::Child,
    marker: &str,
    count: usize,
) -> std::thread::JoinHandle<String> {
    let (reader, rx) = read_stderr(child, marker, count);
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the deploy reached the marker");
    reader
}

/// Reads the child's stderr to its end in the background.
pub fn drain_stderr(child: &mut std::process::Child) -> std::thread::JoinHandle<String> {
    read_stderr(child, "", usize::MAX).0
}

/// Reads the child's stderr in the background, and says on the channel
/// once `count` lines contained `marker`.
fn read_stderr(
    child: &mut std::process::Child,
    marker: &str,
    count: usize,
) -> (
    std::thread::JoinHandle<String>,
    std::sync::mpsc::Receiver<()>,
) {
    use std::io::{BufRead, BufReader};
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let marker = marker.to_owned();
    let reader = std::thread::spawn(move || {
        let mut seen = 0;
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(&marker) {
                seen += 1;
                if seen == count {
                    let _ = tx.send(());
                }
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    (reader, rx)
}

/// Polls `ok` on `node` until it holds; fails the test, naming `what`, if
/// it does not within [`watcher::CHANGE_LIMIT`], a bound that only a node
/// that never gets there reaches.
pub fn comes_true(node: &mut ErlNode, ok: impl Fn(&mut ErlNode) -> bool, what: &str) {
    let deadline = std::time::Instant::now() + watcher::CHANGE_LIMIT;
    while !ok(node) {
        assert!(std::time::Instant::now() < deadline, "never came: {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
