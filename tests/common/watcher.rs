//! `hotswap-node watch --json` run as a user runs it, in the background:
//! its JSON events and its stderr read line by line, stopped with SIGINT,
//! killed and reaped if a test fails first.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// How long a change may take to show up (a build node's first start
/// included, on a loaded 2-core machine): a bound for a watcher that never
/// delivers, not a measure of speed. Four soaks at once beside a CI run
/// made one `rebar3 compile` take 30 to 40 s, and a save's build then
/// passed the 60 s this was; it is three times that.
pub const CHANGE_LIMIT: Duration = Duration::from_secs(180);

pub struct Watcher {
    child: Option<Child>,
    events: Receiver<Value>,
    stderr: Receiver<String>,
    /// Everything read so far, for failure messages.
    pub seen: Vec<String>,
    /// Stderr lines read while waiting for an event, which
    /// [`Watcher::wait_stderr`] has not looked at yet.
    unread: std::collections::VecDeque<String>,
    pub pid: u32,
}

impl Watcher {
    /// Starts `watch --json ARGS` in `dir` with a private HOME.
    pub fn start(dir: &Path, home: &Path, args: &[&str]) -> Watcher {
        Watcher::start_with(dir, home, args, &[])
    }

    /// [`Watcher::start`] with more environment variables.
    pub fn start_with(dir: &Path, home: &Path, args: &[&str], env: &[(&str, String)]) -> Watcher {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hotswap-node"))
            .arg("watch")
            .arg("--json")
            .args(args)
            .current_dir(dir)
            .env("PATH", super::tool_path())
            .env("HOME", home)
            .env("MIX_ENV", "dev")
            .env_remove("HOTSWAP_NODES")
            .env_remove("HOTSWAP_COOKIE")
            .env_remove("MIX_TARGET")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary runs");
        let (etx, events) = channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                if etx.send(value).is_err() {
                    return;
                }
            }
        });
        let (stx, stderr) = channel();
        let err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if stx.send(line).is_err() {
                    return;
                }
            }
        });
        Watcher {
            pid: child.id(),
            child: Some(child),
            events,
            stderr,
            seen: Vec::new(),
            unread: Default::default(),
        }
    }

    /// Waits for a stderr line containing `needle`: the first among those
    /// read since the last call (also while waiting for an event), or a
    /// new one.
    pub fn wait_stderr(&mut self, needle: &str) -> String {
        while let Some(line) = self.unread.pop_front() {
            if line.contains(needle) {
                return line;
            }
        }
        let deadline = Instant::now() + CHANGE_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no `{needle}` on stderr; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Waits for the next JSON event for which `wanted` holds.
    pub fn wait_event(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + CHANGE_LIMIT;
        loop {
            self.drain_stderr();
            match self.events.recv_timeout(Duration::from_millis(100)) {
                Ok(event) => {
                    self.seen.push(event.to_string());
                    if wanted(&event) {
                        return event;
                    }
                }
                Err(_) if Instant::now() < deadline => {}
                Err(_) => panic!("no {what}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// The next deploy that loaded `module` (a `start`, `change` or
    /// `catch_up` event).
    pub fn wait_loaded(&mut self, module: &str) -> Value {
        self.wait_event(&format!("deploy of `{module}`"), |e| {
            ["start", "change", "catch_up"].contains(&e["event"].as_str().unwrap_or_default())
                && e["modules"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|x| x == module))
        })
    }

    /// Everything the watcher has said so far, events and stderr, for a
    /// failure message (what is taken here is not waited for again).
    pub fn everything_said(&mut self) -> String {
        self.drain_stderr();
        while let Ok(event) = self.events.try_recv() {
            self.seen.push(event.to_string());
        }
        self.seen.join("\n")
    }

    fn drain_stderr(&mut self) {
        while let Ok(line) = self.stderr.try_recv() {
            self.seen.push(line.clone());
            self.unread.push_back(line);
        }
    }

    /// Sends SIGINT (Ctrl-C) and waits for the exit code.
    pub fn interrupt(mut self) -> i32 {
        self.signal_int();
        self.wait_exit()
    }

    /// Sends SIGINT (Ctrl-C), and goes on.
    pub fn signal_int(&mut self) {
        let child = self.child.as_ref().expect("running");
        let sent = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
    }

    /// Whether the watcher is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits (20 s at most) for the watcher to exit; its exit code.
    pub fn wait_exit(mut self) -> i32 {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.drain_stderr();
                panic!("watch did not stop on SIGINT:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The build node halts when our connection drops; make sure.
        for pid in processes_named(&format!("hotswap_build_{}@", self.pid)) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// The pids of processes whose command line contains `needle`.
pub fn processes_named(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) && pid != std::process::id() {
            found.push(pid);
        }
    }
    found
}
