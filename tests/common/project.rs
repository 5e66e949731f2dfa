//! A project folder of deploy fixture builds, and the real binary run in
//! it against real nodes.

use super::{erlc_of, fixture, unique, ErlNode, NodeSpec, Otp};
use hotswap_node::beam::Module;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A project folder holding builds of the deploy fixtures, one `ebin`
/// folder per version.
pub struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Self {
        Project {
            dir: tempfile::tempdir().expect("tmp"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Compiles `modules` at version `vsn` into `ebin_v<vsn>`.
    pub fn build(&self, vsn: u32, modules: &[&str]) -> PathBuf {
        self.build_by(Otp::UnderTest, vsn, modules)
    }

    /// [`Project::build`] with the `erlc` of the given release.
    pub fn build_by(&self, otp: Otp, vsn: u32, modules: &[&str]) -> PathBuf {
        let suffix = if otp == Otp::Host { "_host" } else { "" };
        let out = self.path().join(format!("ebin_v{vsn}{suffix}"));
        let sources: Vec<PathBuf> = modules
            .iter()
            .map(|m| fixture(&format!("deploy/{m}.erl")))
            .collect();
        erlc_of(otp, &sources, &out, &[&format!("-DVSN={vsn}")]);
        out
    }

    pub fn md5(&self, ebin: &Path, module: &str) -> String {
        Module::read(&ebin.join(format!("{module}.beam")))
            .expect("module")
            .md5
            .to_hex()
    }

    /// Runs the binary in the project with a private HOME and no HOTSWAP_* leaking in.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    /// [`Project::run`] with more environment variables.
    pub fn run_with(&self, args: &[&str], env: &[(&str, String)]) -> Output {
        self.command(args, env).output().expect("binary runs")
    }

    fn command(&self, args: &[impl AsRef<std::ffi::OsStr>], env: &[(&str, String)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hotswap-node"));
        command
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.path())
            .env("PATH", super::tool_path())
            .env("HOME", self.path())
            .env_remove("HOTSWAP_NODES")
            .env_remove("HOTSWAP_COOKIE")
            .env_remove("HOTSWAP_APP_NAME")
            .env("NO_COLOR", "1");
        command
    }

    /// `deploy` against `nodes` with the test's own peer name, as JSON.
    pub fn deploy(&self, nodes: &[&ErlNode], extra: &[&str]) -> (i32, Value, String) {
        self.deploy_with(nodes, extra, &[])
    }

    /// [`Project::deploy`] with more environment variables.
    pub fn deploy_with(
        &self,
        nodes: &[&ErlNode],
        extra: &[&str],
        env: &[(&str, String)],
    ) -> (i32, Value, String) {
        let cookies = nodes.iter().map(|n| n.cookie.clone()).collect();
        let out = self
            .command(&self.deploy_args(nodes, extra), env)
            .output()
            .expect("binary runs");
        outcome(out, cookies)
    }

    /// [`Project::deploy_with`] left running, for a test to put a fault
    /// at one of its fault points ([`super::fault::FaultPoints`]).
    pub fn spawn_deploy(
        &self,
        nodes: &[&ErlNode],
        extra: &[&str],
        env: &[(&str, String)],
    ) -> Running {
        let cookies = nodes.iter().map(|n| n.cookie.clone()).collect();
        let child = self
            .command(&self.deploy_args(nodes, extra), env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary runs");
        Running { child, cookies }
    }

    fn deploy_args(&self, nodes: &[&ErlNode], extra: &[&str]) -> Vec<String> {
        let mut args = vec!["deploy".to_owned(), "--json".into()];
        if !extra.contains(&"--name") {
            args.extend(["--name".into(), unique("hs")]);
        }
        for n in nodes {
            args.push("--node".into());
            args.push(n.name.clone());
        }
        args.push("--cookie".into());
        args.push(nodes[0].cookie.clone());
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// [`Project::deploy`] that must succeed; its JSON and stderr.
    pub fn deploy_ok(&self, nodes: &[&ErlNode], extra: &[&str]) -> (Value, String) {
        let (code, json, stderr) = self.deploy(nodes, extra);
        assert_eq!(code, 0, "{json}\n{stderr}");
        (json, stderr)
    }
}

/// A deploy under way ([`Project::spawn_deploy`]).
pub struct Running {
    child: Child,
    cookies: Vec<String>,
}

impl Running {
    /// Whether the tool is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The tool's process id, to signal it.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the tool holds at `point`; fails the test, with what
    /// the tool said, if it exits first.
    pub fn hold_at(&mut self, faults: &super::fault::FaultPoints, point: &str) {
        if faults.reached(point, &mut || self.running()) {
            return;
        }
        let read = |pipe: Option<&mut dyn std::io::Read>| {
            let mut text = String::new();
            if let Some(p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        };
        let stdout = read(self.child.stdout.as_mut().map(|p| p as _));
        let stderr = read(self.child.stderr.as_mut().map(|p| p as _));
        panic!("the tool exited before fault point `{point}`:\n{stdout}\n{stderr}");
    }

    /// Kills the tool (SIGKILL) and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the tool to exit: its exit code, JSON and stderr.
    pub fn finish(self) -> (i32, Value, String) {
        outcome(self.child.wait_with_output().expect("wait"), self.cookies)
    }
}

/// A deploy's exit code, JSON document and stderr; no cookie in them.
fn outcome(out: Output, cookies: Vec<String>) -> (i32, Value, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("stdout is not one JSON document ({e}):\n{stdout}\nstderr:\n{stderr}")
    });
    for cookie in cookies {
        assert!(
            !stdout.contains(&cookie) && !stderr.contains(&cookie),
            "the cookie leaked"
        );
    }
    (out.status.code().unwrap_or(-1), json, stderr)
}

/// Loads `hs_greet` from `ebin` through the node's own shell, as someone
/// else than this tool would.
pub fn load_by_hand(node: &mut ErlNode, ebin: &Path) {
    let beam = ebin.join("hs_greet.beam");
    let loaded = node.eval(&format!(
        "{{ok, B}} = file:read_file(\"{0}\"), code:load_binary(hs_greet, \"{0}\", B).",
        beam.display()
    ));
    assert_eq!(loaded, "{module,hs_greet}");
}

/// A folder as a command-line argument.
pub fn arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

pub fn start_node(tag: &str, ebin: &Path, cookie: &str, load: &[&str]) -> ErlNode {
    start_node_with(NodeSpec::new(tag).cookie(cookie).code_path(ebin), load)
}

pub fn start_node_with(spec: NodeSpec, load: &[&str]) -> ErlNode {
    let mut node = ErlNode::start(spec);
    let list = load.join(",");
    let loaded = node.eval(&format!("[code:ensure_loaded(M) || M <- [{list}]]."));
    assert!(!loaded.contains("error"), "{loaded}");
    node
}

pub fn names(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().expect("str").to_owned())
        .collect();
    out.sort();
    out
}

pub fn node_json<'a>(json: &'a Value, node: &ErlNode) -> &'a Value {
    json["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["node"] == node.name.as_str())
        .expect("node in report")
}
