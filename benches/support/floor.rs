//! The floor of a whole-process deploy, measured in the same run as what
//! is held against it: a process of this binary that starts and exits,
//! Erlang's own connect to the nodes (a hidden node, as the tool is), and
//! Erlang's best in flight (`Operator::erlang_best`). And a device-class
//! CPU: a node held to a tenth of one core by a cgroup (v1) CPU quota.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `hotswap-node --version`: starting this binary, parsing its arguments,
/// printing, exiting; as the user's shell waits for it.
pub fn process() -> Duration {
    let started = Instant::now();
    let out = Command::new(super::binary())
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .expect("hotswap-node");
    assert!(out.success());
    started.elapsed()
}

/// A hidden node that connects to the targets, as Erlang does it.
pub struct Connector {
    node: super::super::common::ErlNode,
    targets: String,
}

impl Connector {
    pub fn start(nodes: &[String], cookie: &str) -> Connector {
        let spec = super::super::common::NodeSpec::new("connector")
            .cookie(cookie)
            .arg("-hidden");
        let node = super::super::common::ErlNode::start(spec);
        let targets = nodes
            .iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(",");
        Connector { node, targets }
    }

    /// Connects to every target at once, each looked up in EPMD and shaken
    /// hands with (from disconnected, untimed): the time until all are up.
    pub fn connect_all(&mut self) -> Duration {
        let micros = self.node.eval(&format!(
            "(fun() -> Ns = [{}], [erlang:disconnect_node(N) || N <- Ns], \
             (fun W(0) -> ok; W(K) -> case [N || N <- Ns, lists:member(N, nodes(hidden))] of [] -> ok; _ -> timer:sleep(10), W(K - 1) end end)(300), \
             timer:sleep(100), Self = self(), \
             {{T, Up}} = timer:tc(fun() -> [spawn(fun() -> Self ! {{N, net_kernel:connect_node(N)}} end) || N <- Ns], \
             [receive {{N, R}} -> R end || N <- Ns] end), \
             true = lists:all(fun(R) -> R end, Up), T end)().",
            self.targets
        ));
        Duration::from_micros(
            micros
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("connector: {micros}")),
        )
    }
}

/// A node's OS process held to a tenth of one core: a CFS quota of 1 ms in
/// every 10 ms period (a short period, so that the node is slowed evenly,
/// not stopped for long stretches). Removed when dropped.
pub struct Throttle {
    dir: PathBuf,
    pid: String,
}

const CPU: &str = "/sys/fs/cgroup/cpu";

impl Throttle {
    /// `pid` held to a tenth of a core; `None` (and why, on stderr) where
    /// the cgroup cannot be made (not root, no cgroup v1 `cpu`).
    pub fn tenth_of_a_core(pid: &str) -> Option<Throttle> {
        let dir = PathBuf::from(CPU).join(format!("hotswap-bench-{}", std::process::id()));
        let made = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join("cpu.cfs_period_us"), "10000"))
            .and_then(|()| std::fs::write(dir.join("cpu.cfs_quota_us"), "1000"))
            .and_then(|()| std::fs::write(dir.join("cgroup.procs"), pid));
        match made {
            Ok(()) => Some(Throttle {
                dir,
                pid: pid.to_owned(),
            }),
            Err(e) => {
                eprintln!(
                    "bench: cannot hold a node to a tenth of a core ({}): {e}; that row is skipped",
                    dir.display()
                );
                let _ = std::fs::remove_dir(&dir);
                None
            }
        }
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        let _ = std::fs::write(PathBuf::from(CPU).join("cgroup.procs"), &self.pid);
        let _ = std::fs::remove_dir(&self.dir);
    }
}
