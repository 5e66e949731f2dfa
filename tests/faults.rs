//! Faults: peers that stall, babble or hang up, missing EPMDs, and deploys
//! too big for a careless implementation. Each ends with a clean error
//! within its time limit, and nodes' state read back where there is one.

mod common;

use common::{erlc, unique, ErlNode, NodeSpec};
use hotswap_node::peer::handshake::{self, Identity};
use hotswap_node::peer::{epmd, CallError, ConnectError, Cookie, NodeName, Peer, PeerOptions};
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// A fake node registered in the local EPMD whose listener does `behave`
/// with each connection.
async fn fake_node<F, Fut>(behave: F) -> (NodeName, epmd::Registration)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("0.0.0.0:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let alive = unique("fake");
    let registration = epmd::register(&alive, port).await.expect("register fake");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(behave(stream));
        }
    });
    let name = NodeName::new(&alive, &common::short_host()).expect("name");
    (name, registration)
}

async fn peer(target: &NodeName, cookie: &str, connect_timeout: Duration) -> Peer {
    common::init_logging();
    let mut options = PeerOptions::new(Cookie::new(cookie)).name(unique("hs"));
    options.connect_timeout = connect_timeout;
    Peer::start(options, std::slice::from_ref(target))
        .await
        .expect("peer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_never_answers_the_handshake_times_out() {
    let (name, _reg) = fake_node(|stream| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(stream);
    })
    .await;
    let peer = peer(&name, "c", Duration::from_secs(2)).await;
    let started = Instant::now();
    let err = peer.connect(&name).await.expect_err("stalls");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(err, ConnectError::HandshakeTimeout { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(name.name()), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_sends_garbage_during_the_handshake_is_an_error() {
    let (name, _reg) = fake_node(|mut stream| async move {
        let _ = stream
            .write_all(b"\x00\x10HTTP/1.1 400 Bad Request\r\n\r\n")
            .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let peer = peer(&name, "c", Duration::from_secs(3)).await;
    let started = Instant::now();
    let err = peer.connect(&name).await.expect_err("garbage");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(err.to_string().contains(name.name()), "{err}");
}

/// A fake node that completes a real handshake, then does `after`.
async fn handshaking_node<F, Fut>(cookie: &'static str, after: F) -> (NodeName, epmd::Registration)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let alive = unique("fakehs");
    let me = NodeName::new(&alive, &common::short_host()).expect("name");
    let listener = TcpListener::bind("0.0.0.0:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let registration = epmd::register(&alive, port).await.expect("register");
    let identity = Identity {
        name: me.clone(),
        creation: registration.creation,
    };
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let identity = identity.clone();
            tokio::spawn(async move {
                if let Ok((stream, _)) =
                    handshake::server(stream, &identity, cookie, Duration::from_secs(5)).await
                {
                    after(stream).await;
                }
            });
        }
    });
    (me, registration)
}

async fn call_fails_promptly(name: &NodeName, cookie: &str) -> CallError {
    let peer = peer(name, cookie, Duration::from_secs(5)).await;
    let conn = peer.connect(name).await.expect("handshake completes");
    let started = Instant::now();
    let err = conn
        .call("erlang", "node", vec![], Duration::from_secs(10))
        .await
        .expect_err("fails");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_frames_close_the_connection_with_a_clear_error() {
    let (name, _reg) = handshaking_node("c1", |mut stream| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // A frame with a bogus term tag.
        let _ = stream.write_all(&[0, 0, 0, 5, 112, 131, 82, 1, 2]).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let err = call_fails_promptly(&name, "c1").await;
    assert!(err.is_disconnect(), "{err:?}");
    assert!(
        err.to_string().contains("malformed") || err.to_string().contains("tag"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_in_the_middle_of_a_frame_is_reported() {
    let (name, _reg) = handshaking_node("c2", |mut stream| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = stream.write_all(&[0, 0, 1, 0, 112, 131]).await;
        let _ = stream.shutdown().await;
    })
    .await;
    let err = call_fails_promptly(&name, "c2").await;
    assert!(err.to_string().contains("middle of a frame"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_host_without_epmd_is_named() {
    let target: NodeName = "app@127.0.0.2".parse().expect("name");
    let peer = peer(
        &"x@127.0.0.1".parse().expect("name"),
        "c",
        Duration::from_secs(2),
    )
    .await;
    let err = peer.connect(&target).await.expect_err("no epmd there");
    let text = err.to_string();
    // Loopback addresses other than 127.0.0.1 usually have no EPMD bound.
    assert!(
        text.contains("EPMD") && text.contains("127.0.0.2"),
        "{text}"
    );
}

#[test]
fn without_a_local_epmd_the_tool_starts_one() {
    // A port where no EPMD runs: the tool must start one there, as erl does.
    let port = common::unused_port();
    let dir = tempfile::tempdir().expect("tmp");
    erlc(&[common::fixture("deploy/hs_calc.erl")], dir.path(), &[]);
    let out = Command::new(env!("CARGO_BIN_EXE_hotswap-node"))
        .args([
            "status",
            "--node",
            &format!("nobody@{}", common::short_host()),
            "--cookie",
            "c",
            "--ebin",
        ])
        .arg(dir.path())
        .env("ERL_EPMD_PORT", port.to_string())
        .env("HOME", dir.path())
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let names = Command::new("epmd")
        .args(["-port", &port.to_string(), "-names"])
        .output()
        .expect("epmd");
    let started_one = names.status.success();
    let _ = Command::new("epmd")
        .args(["-port", &port.to_string(), "-kill"])
        .output();
    assert!(started_one, "no EPMD on port {port} after the run");
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("no node `nobody` registered in EPMD"),
        "{stderr}"
    );
}

/// 2,000 small modules and one of 5 MB (a big literal) in one deploy, at
/// default settings, checked on the node.
#[test]
fn two_thousand_modules_and_a_five_megabyte_beam_in_one_deploy() {
    let dir = tempfile::tempdir().expect("tmp");
    let ebin = dir.path().join("ebin");
    std::fs::create_dir_all(&ebin).expect("mkdir");
    // Small modules straight from forms: compiling 2,000 files would
    // dominate the test's time.
    let script = format!(
        "lists:foreach(fun(I) ->
            Name = list_to_atom(\"hs_bench_\" ++ integer_to_list(I)),
            Forms = [{{attribute, 1, module, Name}}, {{attribute, 1, export, [{{version, 0}}]}},
                     {{function, 1, version, 0, [{{clause, 1, [], [], [{{integer, 1, 1}}]}}]}}],
            {{ok, Name, Bin}} = compile:forms(Forms, [binary]),
            ok = file:write_file(filename:join(\"{dir}\", atom_to_list(Name) ++ \".beam\"), Bin)
         end, lists:seq(1, 2000)),
         Big = rand:bytes(5000000),
         Forms = [{{attribute, 1, module, hs_huge}}, {{attribute, 1, export, [{{big, 0}}]}},
                  {{function, 1, big, 0, [{{clause, 1, [], [], [{{bin, 1, [{{bin_element, 1, {{string, 1, binary_to_list(Big)}}, default, default}}]}}]}}]}}],
         {{ok, hs_huge, HugeBin}} = compile:forms(Forms, [binary]),
         ok = file:write_file(filename:join(\"{dir}\", \"hs_huge.beam\"), HugeBin),
         halt().",
        dir = ebin.display()
    );
    let status = Command::new("erl")
        .args(["-noshell", "-eval", &script])
        .status()
        .expect("erl");
    assert!(status.success());
    let huge = std::fs::metadata(ebin.join("hs_huge.beam"))
        .expect("huge")
        .len();
    assert!(huge > 5_000_000, "{huge}");

    let mut node = ErlNode::start(NodeSpec::new("big"));
    let out = Command::new(env!("CARGO_BIN_EXE_hotswap-node"))
        .args([
            "deploy",
            "-q",
            "--json",
            "--verify",
            "--name",
            &unique("hs"),
            "--node",
            &node.name,
            "--cookie",
            &node.cookie,
            "--ebin",
        ])
        .arg(&ebin)
        .env("HOME", dir.path())
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(
        json["nodes"][0]["loaded"].as_array().map(Vec::len),
        Some(2001)
    );
    assert_eq!(node.eval("byte_size(hs_huge:big())."), "5000000");
    assert_eq!(node.eval("hs_bench_2000:version()."), "1");
    assert_local_md5(&mut node, &ebin, "hs_huge");
}

fn assert_local_md5(node: &mut ErlNode, ebin: &Path, module: &str) {
    let local =
        hotswap_node::beam::Module::read(&ebin.join(format!("{module}.beam"))).expect("read");
    assert_eq!(node.loaded_md5(module), local.md5.to_hex());
}

#[test]
fn a_world_readable_config_with_a_cookie_gets_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("hotswap.toml");
    let mut f = std::fs::File::create(&path).expect("create");
    writeln!(f, "nodes = [\"a@b\"]\ncookie = \"leaky-cookie-123\"").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = Command::new(env!("CARGO_BIN_EXE_hotswap-node"))
        .args(["deploy", "--no-build", "--dry-run", "-v"])
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stderr.contains("holds the cookie") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    assert!(!stderr.contains("leaky-cookie-123") && !stdout.contains("leaky-cookie-123"));
}
