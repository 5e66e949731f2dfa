//! A real application none of us wrote, under load: RabbitMQ from Debian's
//! packages, started by the test, with a client publishing persistent
//! messages with confirms and consuming them through RabbitMQ's own Erlang
//! client. Three of its modules that its running processes use (the
//! channel, the queue process and its backing queue, which hands the
//! message store funs of its own) are rebuilt from their debug_info with
//! one added function, deployed with default flags, then rolled back.
//! Nothing may die quietly: every queue and channel process is read back
//! alive from the node, what the node runs is read back by MD5, and every
//! message the broker confirmed must reach the consumer. Written first,
//! this failed: the queues died at the purge that followed each run.

mod common;

use common::project::Project;
use common::{unique, ErlNode, NodeSpec};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const CTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";
const CHANGED: [&str; 3] = [
    "rabbit_channel",
    "rabbit_amqqueue_process",
    "rabbit_variable_queue",
];

/// RabbitMQ's plugins folder (its applications, the AMQP client among
/// them), where the package is installed.
fn plugins() -> Option<PathBuf> {
    let lib = Path::new("/usr/lib/rabbitmq/lib");
    let server = std::fs::read_dir(lib).ok()?.flatten().find(|e| {
        e.file_name()
            .to_string_lossy()
            .starts_with("rabbitmq_server-")
    })?;
    Some(server.path().join("plugins"))
}

/// The plugins folder, or None after saying why the test is skipped (a
/// failure under CI, where scripts/setup installs the package).
fn installed() -> Option<PathBuf> {
    match (Path::new(SERVER).exists(), plugins()) {
        (true, Some(p)) => Some(p),
        _ => {
            common::cannot_run_here(
                "RabbitMQ is not installed (apt-get install rabbitmq-server; scripts/setup does)",
            );
            None
        }
    }
}

/// A RabbitMQ node of its own: its name, files and ports. Stopped (its
/// whole process group) when dropped.
struct Rabbit {
    child: Child,
    name: String,
    cookie: String,
    amqp_port: u16,
    dir: tempfile::TempDir,
}

impl Rabbit {
    fn start() -> Rabbit {
        let dir = tempfile::tempdir().expect("tmp");
        let cookie = common::random_cookie();
        let cookie_file = dir.path().join(".erlang.cookie");
        std::fs::write(&cookie_file, &cookie).expect("cookie");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cookie_file, std::fs::Permissions::from_mode(0o400))
            .expect("cookie mode");
        std::fs::write(dir.path().join("enabled_plugins"), "[].").expect("plugins");
        std::fs::write(dir.path().join("rabbitmq.conf"), "loopback_users = none\n").expect("conf");
        let alive = unique("rabbit");
        let name = format!("{alive}@{}", common::short_host());
        let (amqp_port, dist_port) = (common::unused_port(), common::unused_port());
        let at = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
        use std::os::unix::process::CommandExt;
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log");
        let child = Command::new(SERVER)
            .env("HOME", dir.path())
            .env("RABBITMQ_NODENAME", &name)
            .env("RABBITMQ_NODE_PORT", amqp_port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", at("mnesia"))
            .env("RABBITMQ_LOG_BASE", at("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", at("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", at("rabbitmq.conf"))
            .env("RABBITMQ_LOGS", "-")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("rabbitmq-server runs");
        let rabbit = Rabbit {
            child,
            name,
            cookie,
            amqp_port,
            dir,
        };
        rabbit.await_startup(&alive);
        rabbit
    }

    /// Waits for EPMD to know the node, then for RabbitMQ to have booted.
    fn await_startup(&self, alive: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let names = Command::new("epmd").arg("-names").output().expect("epmd");
            if String::from_utf8_lossy(&names.stdout).contains(&format!("name {alive} at")) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not register:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let ready = Command::new(CTL)
            .env("HOME", self.dir.path())
            .args(["-n", &self.name, "await_startup", "--timeout", "60"])
            .output()
            .expect("rabbitmqctl runs");
        assert!(
            ready.status.success(),
            "{} did not boot: {}\n{}",
            self.name,
            String::from_utf8_lossy(&ready.stderr),
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// `CHANGED`, each rebuilt from the debug_info of the installed beam with
/// one function added (`hotswap_probe/0`), into `out`.
fn rebuild(plugins: &Path, out: &Path) {
    std::fs::create_dir_all(out).expect("ebin");
    let rabbit = std::fs::read_dir(plugins)
        .expect("plugins")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("rabbit-"))
        .expect("the rabbit application")
        .path()
        .join("ebin");
    let beams: Vec<String> = CHANGED
        .iter()
        .map(|m| format!("\"{}\"", rabbit.join(format!("{m}.beam")).display()))
        .collect();
    let expr = format!(
        "[begin \
           {{ok, {{M, [{{debug_info, {{debug_info_v1, B, D}}}}]}}}} = beam_lib:chunks(F, [debug_info]), \
           {{ok, Forms}} = B:debug_info(erlang_v1, M, D, []), \
           {{Head, [Mod | Rest]}} = lists:splitwith(fun(X) -> element(3, X) =/= module end, Forms), \
           {{eof, L}} = lists:last(Rest), \
           Probe = {{function, L, hotswap_probe, 0, [{{clause, L, [], [], [{{atom, L, ok}}]}}]}}, \
           New = Head ++ [Mod, {{attribute, L, export, [{{hotswap_probe, 0}}]}} | lists:droplast(Rest)] ++ [Probe, {{eof, L}}], \
           {{ok, M, Bin}} = compile:forms(New, [debug_info]), \
           ok = file:write_file(filename:join(\"{}\", atom_to_list(M) ++ \".beam\"), Bin) \
         end || F <- [{}]], halt().",
        out.display(),
        beams.join(", ")
    );
    let done = Command::new("erl")
        .args(["-noshell", "-eval", &expr])
        .output()
        .expect("erl runs");
    assert!(
        done.status.success(),
        "rebuild: {}",
        String::from_utf8_lossy(&done.stdout)
    );
}

/// A deploy to the RabbitMQ node: exit code and JSON.
fn deploy(p: &Project, rabbit: &Rabbit, extra: &[&str]) -> (i32, Value, String) {
    let mut args = vec![
        "deploy",
        "--json",
        "--node",
        &rabbit.name,
        "--cookie",
        &rabbit.cookie,
    ];
    let name = unique("hs");
    args.extend(["--name", &name]);
    args.extend(extra);
    let out = p.run(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{stderr}"));
    assert!(!stdout.contains(&rabbit.cookie) && !stderr.contains(&rabbit.cookie));
    (out.status.code().unwrap_or(-1), json, stderr)
}

/// What the client node reads of the RabbitMQ node, through rpc.
fn on(client: &mut ErlNode, rabbit: &Rabbit, call: &str) -> String {
    client.eval(&format!("rpc:call('{}', {call}).", rabbit.name))
}

/// The pids of the broker's queue and channel processes.
fn workers(client: &mut ErlNode, rabbit: &Rabbit) -> String {
    let queues = on(
        client,
        rabbit,
        "rabbit_amqqueue, info_all, [<<\"/\">>, [pid]]",
    );
    let channels = on(client, rabbit, "rabbit_channel, list, []");
    format!("{queues} {channels}")
}

fn md5s(client: &mut ErlNode, rabbit: &Rabbit) -> String {
    on(
        client,
        rabbit,
        &format!(
            "lists, map, [fun(M) -> erlang:md5(term_to_binary(M:module_info(md5))) end, [{}]]",
            CHANGED.join(", ")
        ),
    )
}

#[test]
fn a_broker_under_load_takes_a_deploy_and_a_rollback_of_its_own_modules_and_nothing_dies() {
    let Some(plugins) = installed() else { return };
    let rabbit = Rabbit::start();
    let p = Project::new();
    let ebin = p.path().join("ebin_plus");
    rebuild(&plugins, &ebin);

    // The client is compiled against RabbitMQ's own AMQP client.
    let load_ebin = p.path().join("load");
    std::fs::create_dir_all(&load_ebin).expect("ebin");
    let compiled = Command::new("erlc")
        .env("ERL_LIBS", &plugins)
        .arg("-o")
        .arg(&load_ebin)
        .arg(common::fixture("rabbitmq/hs_amqp_load.erl"))
        .output()
        .expect("erlc runs");
    assert!(
        compiled.status.success(),
        "{}",
        String::from_utf8_lossy(&compiled.stdout)
    );
    let mut client = ErlNode::start(
        NodeSpec::new("rabbit_client")
            .cookie(&rabbit.cookie)
            .code_path(&load_ebin)
            .env("ERL_LIBS", &plugins.to_string_lossy()),
    );
    assert_eq!(
        client.eval(&format!("hs_amqp_load:start({}, 3).", rabbit.amqp_port)),
        "ok"
    );
    let before = workers(&mut client, &rabbit);
    let original = md5s(&mut client, &rabbit);

    // The deploy, with default flags, under load.
    let ebin_arg = ebin.to_string_lossy().into_owned();
    let (code, json, stderr) = deploy(&p, &rabbit, &["--ebin", &ebin_arg]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert_eq!(
        on(&mut client, &rabbit, "rabbit_channel, hotswap_probe, []"),
        "ok",
        "the node runs the rebuilt modules"
    );
    let deployed = md5s(&mut client, &rabbit);
    assert_ne!(deployed, original);

    // The rollback: the original code back, or refused (exit 5) with each
    // process that keeps the code it would purge named; nothing dies.
    let (code, json, stderr) = deploy(&p, &rabbit, &["--rollback"]);
    match code {
        0 => assert_eq!(md5s(&mut client, &rabbit), original),
        5 => {
            let node = &json["nodes"][0];
            let named = node["lingering"].as_array().expect("lingering");
            assert!(!named.is_empty(), "{json}");
            assert!(named.iter().all(|l| l["why"].is_string()), "{json}");
            assert_eq!(md5s(&mut client, &rabbit), deployed, "nothing changed");
        }
        _ => panic!("exit {code}: {json}\n{stderr}"),
    }

    // The broker goes on confirming: each confirm passes through the
    // funs its queues keep. Every queue and channel process lives: a queue
    // that died is restarted under a new pid, a channel that died leaves
    // the list.
    assert_eq!(client.eval("hs_amqp_load:more(300)."), "ok");
    let after = workers(&mut client, &rabbit);
    if after != before {
        eprintln!("{}", rabbit.log());
    }
    assert_eq!(after, before, "the same processes");
    // Every message confirmed reached the consumer, and no channel or
    // connection closed.
    let result = client.eval("hs_amqp_load:stop().");
    if !result.contains("lost => []") {
        eprintln!("{}", rabbit.log());
    }
    assert!(result.contains("lost => []"), "{result}");
    assert!(result.contains("errors => []"), "{result}");
    let queues = on(
        &mut client,
        &rabbit,
        "rabbit_amqqueue, info_all, [<<\"/\">>, [pid]]",
    );
    assert!(before.starts_with(&queues), "queues restarted: {queues}");
}
