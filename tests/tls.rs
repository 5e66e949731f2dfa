//! TLS distribution (`-proto_dist inet_tls`): real nodes that require a
//! client certificate (`verify_peer`, `fail_if_no_peer_cert`), with
//! certificates the test makes. Deploy, verify, status, rollback and watch
//! work over TLS 1.2 and 1.3 and `inet6_tls`, configured by flags, the
//! environment, hotswap.toml or the node's own option file; every way TLS
//! goes wrong gets its own words and exit code, and leaves the node as it
//! was.

mod common;

use common::project::{arg, node_json, start_node_with, Project};
use common::tls::{Pair, Pki};
use common::watcher::Watcher;
use common::{unique, ErlNode, NodeSpec};
use serde_json::Value;

fn tls_node(tag: &str, optfile: &std::path::Path, ebin: &std::path::Path) -> ErlNode {
    start_node_with(
        NodeSpec::new(tag).code_path(ebin).tls(optfile),
        &["hs_greet"],
    )
}

/// Runs the binary; its exit code, and what it said on stdout and stderr.
fn run(p: &Project, args: &[String]) -> (i32, String) {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = p.run(&refs);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), said)
}

/// `deploy` of `ebin` to `node` with `tls` flags, not as JSON.
fn deploy_args(node: &ErlNode, ebin: &std::path::Path, tls: &[String]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "deploy".into(),
        "--name".into(),
        unique("hs"),
        "--node".into(),
        node.name.clone(),
        "--cookie".into(),
        node.cookie.clone(),
        "--ebin".into(),
        arg(ebin),
        "--timeout".into(),
        "3".into(),
    ];
    args.extend(tls.iter().cloned());
    args
}

/// `status --json` of `nodes` (one cookie) against `ebin`, which must
/// succeed.
fn status_of(
    p: &Project,
    nodes: &[&ErlNode],
    ebin: &std::path::Path,
    extra: &[&str],
    env: &[(&str, String)],
) -> Value {
    let name = unique("hs");
    let ebin = arg(ebin);
    let mut args = vec!["status", "--json", "--name", &name, "--ebin", &ebin];
    for n in nodes {
        args.extend(["--node", n.name.as_str()]);
    }
    args.extend(["--cookie", nodes[0].cookie.as_str()]);
    args.extend(extra);
    let out = p.run_with(&args, env);
    let status: Value = serde_json::from_slice(&out.stdout).expect("status json");
    assert_eq!(out.status.code(), Some(0), "{status}");
    status
}

#[test]
fn deploy_verify_status_and_rollback_over_tls_1_3_and_1_2() {
    let pki = Pki::new("tls_ok");
    let p = Project::new();
    let v1 = p.build(1, &["hs_greet"]);
    let v2 = p.build(2, &["hs_greet", "hs_extra"]);
    let cookie = common::random_cookie();
    let spec = |tag: &str, version: &str| {
        NodeSpec::new(tag)
            .cookie(&cookie)
            .code_path(&v1)
            .tls(&pki.dist_optfile(&pki.node, version))
    };
    let mut a = start_node_with(spec("tls13", "tlsv1.3"), &["hs_greet"]);
    let mut b = start_node_with(spec("tls12", "tlsv1.2"), &["hs_greet"]);
    let tls = pki.tool_args();
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();

    // Flags: deploy and verify, both nodes at once.
    let mut extra = vec!["--ebin", v2.to_str().expect("utf-8"), "--verify"];
    extra.extend(&tls);
    let (json, stderr) = p.deploy_ok(&[&a, &b], &extra);
    for n in [&a, &b] {
        assert_eq!(node_json(&json, n)["ok"], true, "{json}\n{stderr}");
    }
    for n in [&mut a, &mut b] {
        assert_eq!(n.loaded_md5("hs_greet"), p.md5(&v2, "hs_greet"));
        assert_eq!(n.eval("hs_extra:extra()."), "only_in_v2");
        // The node holds the tool's connection no longer, and it never
        // offered a plain one: its distribution is TLS only.
        assert_eq!(
            n.eval("init:get_argument(proto_dist)."),
            "{ok,[[\"inet_tls\"]]}"
        );
    }

    // The environment: status, which says the nodes run v2.
    let env = [
        ("HOTSWAP_TLS_CA", arg(&pki.ca)),
        ("HOTSWAP_TLS_CERT", pki.client.cert_arg()),
        ("HOTSWAP_TLS_KEY", pki.client.key_arg()),
    ];
    let status = status_of(&p, &[&a, &b], &v2, &[], &env);
    for n in status["nodes"].as_array().expect("nodes") {
        assert_eq!(n["changed"], serde_json::json!([]), "{status}");
        assert_eq!(n["new"], serde_json::json!([]), "{status}");
    }

    // The node's own -ssl_dist_optfile, one file for both sides.
    let optfile = arg(&pki.dist_optfile(&pki.node, "tlsv1.3"));
    let status = status_of(&p, &[&a], &v2, &["--tls-optfile", &optfile], &[]);
    assert_eq!(
        status["nodes"][0]["changed"],
        serde_json::json!([]),
        "{status}"
    );

    // hotswap.toml, paths relative to the project: the rollback.
    std::fs::copy(&pki.ca, p.path().join("ca.pem")).expect("copy");
    std::fs::write(
        p.path().join("hotswap.toml"),
        format!(
            "tls_ca = \"ca.pem\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            pki.client.cert.display(),
            pki.client.key.display()
        ),
    )
    .expect("write toml");
    let (code, json, stderr) = p.deploy(&[&a, &b], &["--rollback"]);
    assert_eq!(code, 0, "{json}\n{stderr}");
    for n in [&mut a, &mut b] {
        assert_eq!(n.loaded_md5("hs_greet"), p.md5(&v1, "hs_greet"));
        assert_eq!(n.loaded_md5("hs_extra"), "none");
    }
}

#[test]
fn each_tls_fault_has_its_own_words_and_exit_code_and_changes_nothing() {
    let pki = Pki::new("tls_bad");
    let p = Project::new();
    let v1 = p.build(1, &["hs_greet"]);
    let v2 = p.build(2, &["hs_greet"]);
    let ca = arg(&pki.ca);
    let good13 = tls_node("bad13", &pki.dist_optfile(&pki.node, "tlsv1.3"), &v1);
    let good12 = tls_node("bad12", &pki.dist_optfile(&pki.node, "tlsv1.2"), &v1);
    let expired = tls_node(
        "expired",
        &pki.dist_optfile(&pki.node_expired, "tlsv1.3"),
        &v1,
    );
    let elsewhere = tls_node(
        "elsewhere",
        &pki.dist_optfile(&pki.elsewhere, "tlsv1.3"),
        &v1,
    );
    let plain = start_node_with(NodeSpec::new("plain").code_path(&v1), &["hs_greet"]);
    let with = |files: &[&str]| files.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let client = (pki.client.cert_arg(), pki.client.key_arg());
    // The CA, and `pair` as this tool's certificate.
    let presenting = |pair: &Pair| {
        with(&[
            "--tls-ca",
            &ca,
            "--tls-cert",
            &pair.cert_arg(),
            "--tls-key",
            &pair.key_arg(),
        ])
    };
    let full = presenting(&pki.client);
    let mut nodes = [good13, good12, expired, elsewhere, plain];
    let [good13, good12, expired, elsewhere, plain] = [0, 1, 2, 3, 4];

    // (node, TLS flags, exit code, words the error must hold)
    let cases: Vec<(usize, Vec<String>, i32, &str)> = vec![
        (good13, vec![], 3, "speaks TLS distribution"),
        (plain, full.clone(), 3, "run TLS distribution"),
        (
            good12,
            with(&[
                "--tls-ca",
                &arg(&pki.other_ca),
                "--tls-cert",
                &client.0,
                "--tls-key",
                &client.1,
            ]),
            3,
            "not signed by a CA in",
        ),
        (expired, full.clone(), 3, "certificate has expired"),
        (elsewhere, full.clone(), 3, "--tls-skip-host-check"),
        (
            good13,
            with(&["--tls-ca", &ca]),
            3,
            "requires a client certificate",
        ),
        (
            good12,
            with(&["--tls-ca", &ca]),
            3,
            "may require a client certificate",
        ),
        (
            good13,
            with(&[
                "--tls-ca",
                &ca,
                "--tls-cert",
                &client.0,
                "--tls-key",
                &pki.node.key_arg(),
            ]),
            2,
            "does not match the certificate",
        ),
        (good13, presenting(&pki.client_expired), 2, "has expired"),
        (
            good12,
            presenting(&pki.stranger),
            3,
            "refused our certificate",
        ),
        (
            good13,
            with(&["--tls-ca", &ca, "--tls-cert", &client.0]),
            2,
            "--tls-cert without --tls-key",
        ),
    ];
    for (node, tls, code, words) in cases {
        let node = &mut nodes[node];
        let (got, stderr) = run(&p, &deploy_args(node, &v2, &tls));
        assert_eq!(got, code, "{tls:?} to {}: {stderr}", node.name);
        assert!(stderr.contains(words), "{tls:?} to {}: {stderr}", node.name);
        assert!(!stderr.contains(&node.cookie), "the cookie leaked");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(node.loaded_md5("hs_greet"), p.md5(&v1, "hs_greet"));
    }

    // With the host check skipped, the chain alone is verified.
    let mut tls = full.clone();
    tls.push("--tls-skip-host-check".into());
    let elsewhere = &mut nodes[elsewhere];
    let (got, stderr) = run(&p, &deploy_args(elsewhere, &v2, &tls));
    assert_eq!(got, 0, "{stderr}");
    assert_eq!(elsewhere.loaded_md5("hs_greet"), p.md5(&v2, "hs_greet"));
}

#[test]
fn watch_follows_saves_over_tls() {
    let pki = Pki::new("tls_watch");
    let p = Project::new();
    let v1 = p.build(1, &["hs_greet"]);
    let v2 = p.build(2, &["hs_greet"]);
    let watched = p.path().join("watched");
    common::copy_dir(&v1, &watched);
    let mut node = tls_node("tlsw", &pki.dist_optfile(&pki.node, "tlsv1.3"), &v1);
    let name = unique("hsw");
    let mut args = vec![
        "--no-build".to_owned(),
        "--ebin".into(),
        "watched".into(),
        "--name".into(),
        name,
        "--node".into(),
        node.name.clone(),
        "--cookie".into(),
        node.cookie.clone(),
    ];
    args.extend(pki.tool_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut w = Watcher::start(p.path(), p.path(), &args);
    w.wait_stderr("Watching");
    let tmp = watched.join(".hs_greet.beam.tmp");
    std::fs::copy(v2.join("hs_greet.beam"), &tmp).expect("copy");
    std::fs::rename(&tmp, watched.join("hs_greet.beam")).expect("rename");
    let event = w.wait_event("a deploy", |e| e["event"] == "change");
    assert_eq!(event["ok"], true, "{event}");
    assert_eq!(node.loaded_md5("hs_greet"), p.md5(&v2, "hs_greet"));
    assert_eq!(w.interrupt(), 0);
}

/// `-proto_dist inet6_tls`: a node named by its IPv6 address, reached over
/// IPv6 inside TLS, its certificate checked against that address.
#[test]
fn a_node_on_inet6_tls_is_deployed_to_verified_and_rolled_back() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        common::cannot_run_here("this machine has no IPv6 loopback");
        return;
    }
    let pki = Pki::new("tls_six");
    let p = Project::new();
    let (v1, v2) = (p.build(1, &["hs_greet"]), p.build(2, &["hs_greet"]));
    let optfile = pki.dist_optfile(&pki.node, "tlsv1.3");
    let spec = NodeSpec::new("tlssix")
        .code_path(&v1)
        .long_name("::1")
        .arg("-proto_dist")
        .arg("inet6_tls")
        .arg("-ssl_dist_optfile")
        .arg(&arg(&optfile));
    let mut node = start_node_with(spec, &["hs_greet"]);
    let tls = pki.tool_args();
    let mut extra: Vec<&str> = tls.iter().map(String::as_str).collect();
    let v2_arg = arg(&v2);
    extra.extend(["--ebin", &v2_arg, "--verify"]);
    let (code, json, stderr) = p.deploy(&[&node], &extra);
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert_eq!(node.loaded_md5("hs_greet"), p.md5(&v2, "hs_greet"));
    let mut extra: Vec<&str> = tls.iter().map(String::as_str).collect();
    extra.push("--rollback");
    let (code, json, stderr) = p.deploy(&[&node], &extra);
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert_eq!(node.loaded_md5("hs_greet"), p.md5(&v1, "hs_greet"));
}

/// Two TLS nodes, one whose certificate has expired: the run stops before
/// any node changes (exit 3), and the good node still runs what it ran.
#[test]
fn one_of_two_tls_nodes_failing_its_check_changes_neither() {
    let pki = Pki::new("tls_two");
    let p = Project::new();
    let (v1, v2) = (p.build(1, &["hs_greet"]), p.build(2, &["hs_greet"]));
    let cookie = common::random_cookie();
    let spec = |tag: &str, cert: &common::tls::Pair| {
        NodeSpec::new(tag)
            .cookie(&cookie)
            .code_path(&v1)
            .tls(&pki.dist_optfile(cert, "tlsv1.3"))
    };
    let mut good = start_node_with(spec("tlsgood", &pki.node), &["hs_greet"]);
    let mut bad = start_node_with(spec("tlsbad", &pki.node_expired), &["hs_greet"]);
    let tls = pki.tool_args();
    let mut extra: Vec<&str> = tls.iter().map(String::as_str).collect();
    let v2_arg = arg(&v2);
    extra.extend(["--ebin", &v2_arg, "--verify"]);
    let (code, json, stderr) = p.deploy(&[&good, &bad], &extra);
    assert_eq!(code, 3, "{json}\n{stderr}");
    assert!(
        node_json(&json, &bad)["failed"]
            .to_string()
            .contains("expired"),
        "{json}"
    );
    assert_eq!(good.loaded_md5("hs_greet"), p.md5(&v1, "hs_greet"));
    assert_eq!(bad.loaded_md5("hs_greet"), p.md5(&v1, "hs_greet"));
}

/// Version-1 certificates, as `openssl x509 -req` makes them: a node that
/// presents one, and this tool presenting one to a node, work as OTP's own
/// nodes take them; the node's is still checked: its chain (one from
/// another CA is refused), and the host its common name names.
#[test]
fn version_1_certificates_are_taken_as_otp_takes_them_and_still_checked() {
    let pki = Pki::new("tls_v1");
    let p = Project::new();
    let v1 = p.build(1, &["hs_greet"]);
    let v2 = p.build(2, &["hs_greet"]);
    let host = common::short_host();
    let node_v1 = pki.v1("node_v1", &host, &pki.ca);
    let client_v1 = pki.v1("client_v1", "hotswap", &pki.ca);
    let tls = vec![
        "--tls-ca".to_owned(),
        arg(&pki.ca),
        "--tls-cert".into(),
        client_v1.cert_arg(),
        "--tls-key".into(),
        client_v1.key_arg(),
    ];
    for version in ["tlsv1.3", "tlsv1.2"] {
        let mut node = tls_node("v1node", &pki.dist_optfile(&node_v1, version), &v1);
        let (got, said) = run(&p, &deploy_args(&node, &v2, &tls));
        assert_eq!(got, 0, "{version}: {said}");
        assert_eq!(node.loaded_md5("hs_greet"), p.md5(&v2, "hs_greet"));
    }

    // Refused, and for what: another CA's; another host's.
    let stranger = pki.v1("stranger_v1", &host, &pki.other_ca);
    let elsewhere = pki.v1("elsewhere_v1", "elsewhere.invalid", &pki.ca);
    for (pair, words) in [
        (&stranger, "not signed by a CA in"),
        (&elsewhere, "does not name the host"),
    ] {
        let mut node = tls_node("v1bad", &pki.dist_optfile(pair, "tlsv1.3"), &v1);
        let (got, said) = run(&p, &deploy_args(&node, &v2, &tls));
        assert_eq!(got, 3, "{said}");
        assert!(said.contains(words), "{said}");
        assert_eq!(node.loaded_md5("hs_greet"), p.md5(&v1, "hs_greet"));
    }
}

/// `--tls-skip-host-check` skips the host's name and nothing else: a
/// node's certificate from another CA, an expired one and a self-signed
/// one are still refused.
#[test]
fn skipping_the_host_check_still_refuses_a_bad_chain() {
    let pki = Pki::new("tls_skip");
    let p = Project::new();
    let v1 = p.build(1, &["hs_greet"]);
    let v2 = p.build(2, &["hs_greet"]);
    let mut tls = pki.tool_args();
    tls.push("--tls-skip-host-check".into());
    let cases = [
        (&pki.stranger, "not signed by a CA in"),
        (&pki.node_expired, "certificate has expired"),
        (&pki.self_signed, "not signed by a CA in"),
    ];
    for (pair, words) in cases {
        let mut node = tls_node("skipbad", &pki.dist_optfile(pair, "tlsv1.3"), &v1);
        let (got, said) = run(&p, &deploy_args(&node, &v2, &tls));
        assert_eq!(got, 3, "{}: {said}", pair.cert.display());
        assert!(said.contains(words), "{}: {said}", pair.cert.display());
        assert_eq!(node.loaded_md5("hs_greet"), p.md5(&v1, "hs_greet"));
    }
}
