//! The distribution peer against real `erl` nodes.

mod common;

use common::{peer_for, peer_with_cookie, unique, ErlNode, NodeSpec};
use hotswap_node::peer::term::{atom_term, Term};
use hotswap_node::peer::{CallError, ConnectError, Cookie, Peer, PeerOptions, StartError};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

fn int(i: i32) -> Term {
    hotswap_node::peer::term::int(i64::from(i))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_and_calls_erlang_node() {
    let node = ErlNode::start(NodeSpec::new("basic"));
    let peer = peer_for(&node).await;
    assert!(peer.is_registered());
    let conn = peer.connect(&node.node_name()).await.expect("connect");
    let name = conn.call("erlang", "node", vec![], T).await.expect("call");
    assert_eq!(name, atom_term(&node.name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binaries_sent_by_reference_arrive_whole() {
    use hotswap_node::peer::term::EtfWriter;
    use std::sync::Arc;
    let node = ErlNode::start(NodeSpec::new("shared"));
    let peer = peer_for(&node).await;
    let conn = peer.connect(&node.node_name()).await.expect("connect");
    let parts: Vec<Arc<Vec<u8>>> = [300_000usize, 10, 70_000]
        .iter()
        .map(|&n| Arc::new((0..n).map(|i| (i * 7 % 251) as u8).collect()))
        .collect();
    let mut w = EtfWriter::default();
    w.list_header(parts.len() as u32);
    for p in &parts {
        w.shared_binary(p);
    }
    w.nil();
    // erlang:md5/1 of the list: what the node received, read back there.
    let got = conn
        .call_encoded("erlang", "md5", &w.finish(), T)
        .await
        .expect("md5 on the node");
    let whole: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    let want = md5::compute(&whole).0.to_vec();
    assert_eq!(
        hotswap_node::peer::term::as_binary(&got).expect("a binary"),
        &want[..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_node_is_hidden_on_the_target() {
    let mut node = ErlNode::start(NodeSpec::new("hidden"));
    let peer = peer_for(&node).await;
    let conn = peer.connect(&node.node_name()).await.expect("connect");
    conn.call("erlang", "node", vec![], T).await.expect("call");
    let visible = node.eval("nodes().");
    let hidden = node.eval("nodes(hidden).");
    assert_eq!(visible, "[]");
    assert!(hidden.contains(&peer.name().to_string()), "{hidden}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_calls_in_flight_each_get_their_own_answer() {
    let node = ErlNode::start(NodeSpec::new("many"));
    let peer = peer_for(&node).await;
    let conn = peer.connect(&node.node_name()).await.expect("connect");
    let calls = (0..500).map(|i| {
        let conn = conn.clone();
        tokio::spawn(async move { (i, conn.call("erlang", "-", vec![int(i)], T).await) })
    });
    for handle in futures::future::join_all(calls).await {
        let (i, result) = handle.expect("task");
        assert_eq!(result.expect("call"), Term::FixInteger((-i).into()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_cookie_is_reported_as_such_quickly() {
    let node = ErlNode::start(NodeSpec::new("cookie"));
    let peer = peer_with_cookie(&node, "not-the-cookie-xyzzy").await;
    let started = Instant::now();
    let err = peer
        .connect(&node.node_name())
        .await
        .expect_err("must fail");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(err, ConnectError::CookieRejected { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("cookie") && text.contains(&node.name),
        "{text}"
    );
    assert!(!text.contains("not-the-cookie-xyzzy") && !text.contains(&node.cookie));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_node_is_named() {
    let node = ErlNode::start(NodeSpec::new("known"));
    let peer = peer_for(&node).await;
    let ghost: hotswap_node::peer::NodeName =
        format!("ghost_{}@{}", std::process::id(), common::short_host())
            .parse()
            .expect("name");
    let err = peer.connect(&ghost).await.expect_err("no such node");
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "no node `{}` registered in EPMD on `{}`",
            ghost.name(),
            ghost.host()
        )),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_call_timeout_fires_and_the_connection_stays_usable() {
    let mut node = ErlNode::start(NodeSpec::new("timeout"));
    let peer = peer_for(&node).await;
    let conn = peer.connect(&node.node_name()).await.expect("connect");
    hold_calls(&mut node);
    let err = conn
        .call(
            "gen_server",
            "call",
            vec![atom_term("hs_held"), atom_term("x"), atom_term("infinity")],
            Duration::from_millis(200),
        )
        .await
        .expect_err("times out");
    assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("gen_server:call/3"), "{err}");
    // The late reply arrives to nobody and is ignored: the process that
    // made the call answers it, then is waited for to end.
    assert_eq!(
        node.eval(
            "begin hs_held ! {answer, self()}, \
             receive {caller, C} -> M = monitor(process, C), \
               receive {'DOWN', M, _, _, _} -> answered end end end."
        ),
        "answered"
    );
    assert_eq!(
        conn.call("erlang", "abs", vec![int(-3)], T)
            .await
            .expect("call"),
        int(3)
    );
    let list = hotswap_node::peer::term::list(vec![int(-3), int(7)]);
    assert_eq!(
        conn.call("erlang", "hd", vec![list], T)
            .await
            .expect("call"),
        Term::FixInteger((-3).into())
    );
}

/// Registers `hs_held` on `node`: a process that takes one call, tells the
/// shell it came (`got`), and answers it when told (`{answer, Shell}`),
/// telling the shell which process called (`{caller, Pid}`).
fn hold_calls(node: &mut ErlNode) {
    let held = node.eval(
        "begin Shell = self(), P = spawn(fun() -> \
           receive {'$gen_call', {C, _} = From, _} -> Shell ! got, \
             receive {answer, S} -> gen:reply(From, done), S ! {caller, C} end end end), \
         register(hs_held, P) end.",
    );
    assert_eq!(held, "true");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_exceptions_become_badrpc_errors() {
    let node = ErlNode::start(NodeSpec::new("badrpc"));
    let peer = peer_for(&node).await;
    let conn = peer.connect(&node.node_name()).await.expect("connect");
    let err = conn
        .call("erlang", "error", vec![atom_term("boom")], T)
        .await
        .expect_err("raises");
    assert!(matches!(err, CallError::BadRpc { .. }), "{err:?}");
    assert!(err.to_string().contains("boom"), "{err}");
    let undef = conn
        .call("no_such_module", "f", vec![], T)
        .await
        .expect_err("undef");
    assert!(undef.is_undef(), "{undef:?}");
    assert!(undef.to_string().contains("undef"), "{undef}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_fails_pending_calls_promptly() {
    let mut node = ErlNode::start(NodeSpec::new("killed"));
    let peer = peer_for(&node).await;
    let conn = peer.connect(&node.node_name()).await.expect("connect");
    hold_calls(&mut node);
    let pending = {
        let conn = conn.clone();
        let args = vec![atom_term("hs_held"), atom_term("x"), atom_term("infinity")];
        tokio::spawn(async move {
            conn.call("gen_server", "call", args, Duration::from_secs(60))
                .await
        })
    };
    // The call is on the node, held there.
    assert_eq!(node.eval("receive got -> got end."), "got");
    let started = Instant::now();
    node.kill();
    let err = pending.await.expect("task").expect_err("fails");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.is_disconnect(), "{err:?}");
    let again = conn
        .call("erlang", "node", vec![], T)
        .await
        .expect_err("closed");
    assert!(again.is_disconnect(), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_ticktime_node_keeps_an_idle_connection() {
    let node = ErlNode::start(
        NodeSpec::new("ticks")
            .arg("-kernel")
            .arg("net_ticktime")
            .arg("4"),
    );
    let peer = peer_for(&node).await;
    let conn = peer.connect(&node.node_name()).await.expect("connect");
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert!(conn.closed_reason().is_none(), "{:?}", conn.closed_reason());
    assert_eq!(
        conn.call("erlang", "node", vec![], T)
            .await
            .expect("still up"),
        atom_term(&node.name)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_target_can_ping_us_back() {
    let node = ErlNode::start(NodeSpec::new("ping"));
    let peer = peer_for(&node).await;
    let conn = peer.connect(&node.node_name()).await.expect("connect");
    let me = atom_term(&peer.name().to_string());
    // Over the connection we opened.
    let pong = conn
        .call("net_adm", "ping", vec![me], T)
        .await
        .expect("call");
    assert_eq!(pong, atom_term("pong"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconnected_node_can_ping_us_through_epmd() {
    let node = ErlNode::start(NodeSpec::new("target"));
    let mut other = ErlNode::start(NodeSpec::new("other").cookie(&node.cookie));
    let peer = peer_for(&node).await;
    let answer = other.eval(&format!("net_adm:ping('{}').", peer.name()));
    assert_eq!(answer, "pong");
    assert_eq!(peer.incoming_connections(), 1);
    // A node with another cookie is refused.
    let mut stranger = ErlNode::start(NodeSpec::new("stranger"));
    assert_eq!(
        stranger.eval(&format!("net_adm:ping('{}').", peer.name())),
        "pang"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_with_the_same_name_is_refused() {
    let node = ErlNode::start(NodeSpec::new("lock"));
    let name = unique("hslock");
    let options = PeerOptions::new(Cookie::new(node.cookie.clone())).name(name.clone());
    let first = Peer::start(options.clone(), &[node.node_name()])
        .await
        .expect("first");
    let err = Peer::start(options.clone(), &[node.node_name()])
        .await
        .expect_err("second");
    assert!(matches!(err, StartError::Register(_)), "{err:?}");
    assert!(
        err.to_string().contains("another hotswap-node is running"),
        "{err}"
    );
    drop(first);
    // The name is free again once EPMD has seen the first one's socket
    // close.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Peer::start(options.clone(), &[node.node_name()]).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                assert!(matches!(e, StartError::Register(_)), "{e:?}");
                // Polled, not slept on: the loop ends on the condition.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("the name stayed taken after the first stopped: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_names_work_over_loopback_ip() {
    let node = ErlNode::start(NodeSpec::new("long").long_name("127.0.0.1"));
    let peer = peer_for(&node).await;
    assert_eq!(peer.name().host(), "127.0.0.1");
    let conn = peer.connect(&node.node_name()).await.expect("connect");
    assert_eq!(
        conn.call("erlang", "node", vec![], T).await.expect("call"),
        atom_term(&node.name)
    );
}

/// When a node still holds a connection from our name (an earlier run whose
/// socket it has not seen close), it answers `alive` and waits for us to
/// say the new connection wins. erl_dist 0.8 never sends that reply; the
/// handshake here does, so this must connect instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_answers_alive_gets_our_reply() {
    use hotswap_node::peer::handshake::{self, Identity};
    let node = ErlNode::start(NodeSpec::new("alive"));
    let peer = peer_for(&node).await;
    let first = peer
        .connect(&node.node_name())
        .await
        .expect("first connection");
    first.call("erlang", "node", vec![], T).await.expect("call");
    // A second handshake under the same name while the first is up.
    let port = hotswap_node::peer::epmd::lookup(node.node_name().host(), node.node_name().name())
        .await
        .expect("port");
    let stream = tokio::net::TcpStream::connect((node.node_name().host(), port))
        .await
        .expect("tcp");
    let me = Identity {
        name: peer.name().clone(),
        creation: 7,
    };
    let started = Instant::now();
    let result = handshake::client(
        stream,
        &me,
        &node.cookie,
        &node.node_name(),
        Duration::from_secs(5),
    )
    .await;
    assert!(result.is_ok(), "{:?}", result.err());
    assert!(started.elapsed() < Duration::from_secs(4));
    // The node dropped the old connection for the new one.
    let deadline = Instant::now() + Duration::from_secs(10);
    while first.closed_reason().is_none() {
        assert!(
            Instant::now() < deadline,
            "the old connection should be closed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_port_is_used_and_a_stale_one_falls_back_to_epmd() {
    let cookie = common::random_cookie();
    let a = ErlNode::start(NodeSpec::new("port_a").cookie(&cookie));
    let b = ErlNode::start(NodeSpec::new("port_b").cookie(&cookie));
    let host = common::short_host();
    let lookup = hotswap_node::peer::epmd::lookup;
    let (a_port, b_port) = (
        lookup(&host, &a.alive).await.expect("a in epmd"),
        lookup(&host, &b.alive).await.expect("b in epmd"),
    );
    let peer = peer_for(&a).await;
    let (conn, port) = peer
        .connect_remembered(&a.node_name(), Some(a_port))
        .await
        .expect("connect at the remembered port");
    assert_eq!(port, a_port);
    assert_eq!(
        conn.call("erlang", "node", vec![], T).await.expect("call"),
        atom_term(&a.name)
    );

    // The remembered port now belongs to another node with the same cookie:
    // that node is not taken for `a`.
    let (conn, port) = peer
        .connect_remembered(&a.node_name(), Some(b_port))
        .await
        .expect("falls back to EPMD");
    assert_eq!(port, a_port);
    assert_eq!(
        conn.call("erlang", "node", vec![], T).await.expect("call"),
        atom_term(&a.name)
    );

    // Nothing listens there any more.
    drop(b);
    let (_, port) = peer
        .connect_remembered(&a.node_name(), Some(b_port))
        .await
        .expect("falls back to EPMD");
    assert_eq!(port, a_port);
}

/// A script whose last function does not parse, never called, and the rest
/// calling one another, from the evaluator and from a process one of them
/// spawns. A function is parsed when a process first calls it, and one that
/// does not parse fails the call with the parser's error.
static FUNCTIONS: hotswap_node::peer::Script = hotswap_node::peer::Script::with_functions(
    "double(X) -> add(X, X).
     add(A, B) -> A + B.
     %% parsed(): the functions this process has parsed.
     parsed() -> lists:sort([N || {{hotswap_function, N}, _} <- get()]).
     elsewhere(X) ->
         Self = self(),
         spawn(fun() -> Self ! {elsewhere, double(X)} end),
         receive {elsewhere, V} -> V end.
     broken() -> ).\n",
    "{double(N), elsewhere(N), parsed()}.",
);
static BROKEN: hotswap_node::peer::Script =
    hotswap_node::peer::Script::with_functions("ok() -> ok.\nbroken() -> ).\n", "broken().");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_parses_only_the_functions_it_calls_and_names_one_that_does_not_parse() {
    use hotswap_node::peer::Bindings;
    let node = ErlNode::start(NodeSpec::new("functions"));
    let peer = peer_for(&node).await;
    let conn = peer.connect(&node.node_name()).await.expect("connect");
    let bindings = Bindings::new().set("N", &int(21)).encode();
    let value = conn
        .eval(&FUNCTIONS, &bindings, T)
        .await
        .expect("evaluated");
    let parsed: Vec<Term> = ["add", "double", "elsewhere", "parsed"]
        .iter()
        .map(|n| atom_term(n))
        .collect();
    let want = hotswap_node::peer::term::tuple(vec![
        int(42),
        int(42),
        hotswap_node::peer::term::list(parsed),
    ]);
    assert_eq!(value, want);
    let error = conn
        .eval(&BROKEN, &Bindings::new().encode(), T)
        .await
        .expect_err("broken() does not parse");
    assert!(
        matches!(error, CallError::BadRpc { .. }) && error.to_string().contains("'erl_parse'"),
        "{error}"
    );
}
