//! The Erlang journey: a device node running a rebar3 release's apps (the
//! layout `rebar3 new release` makes: every app under `apps/`), a change
//! in one of them saved in the second of the last build, and
//! `hotswap-node deploy` from the project folder with only the node and
//! the cookie, building with `rebar3 compile`.

mod common;

use common::{copy_dir, rebar3_compile, unique, ErlNode, NodeSpec};
use std::path::Path;
use std::process::Command;

#[test]
fn deploy_from_a_rebar3_release_builds_and_sends_what_changed_in_any_app() {
    let root = tempfile::tempdir().expect("tmp");
    let dev = root.path().join("shoprel");
    write_release(&dev, "one");
    rebar3_compile(&dev, root.path());
    // The device runs its own copy of the build, like a release would.
    let device = root.path().join("device");
    let mut spec = NodeSpec::new("rbdevice");
    for app in ["shop", "pay"] {
        let ebin = device.join(app);
        copy_dir(&dev.join(format!("_build/default/lib/{app}/ebin")), &ebin);
        spec = spec.code_path(&ebin);
    }
    let mut node = ErlNode::start(spec);
    for app in ["shop", "pay"] {
        let started = node.eval(&format!("application:ensure_all_started({app})."));
        assert!(started.starts_with("{ok,"), "{started}");
    }
    let shop_before = node.loaded_md5("shop_cart");
    assert_eq!(node.eval("pay_card:version()."), "one");
    // shop_cart was saved well before it was built: nothing about it is
    // ambiguous, and its beam must be left alone (not dated back, not
    // rebuilt).
    let shop_beam = dev.join("_build/default/lib/shop/ebin/shop_cart.beam");
    let shop_built = mtime(&shop_beam);
    let shop_source = dev.join("apps/shop/src/shop_cart.erl");
    set_mtime(
        &shop_source,
        shop_built - std::time::Duration::from_secs(10),
    );

    // Saved in the second rebar3 wrote the beam in (a quick edit, or a
    // script): rebar3, comparing times to the second, would skip it.
    let beam = dev.join("_build/default/lib/pay/ebin/pay_card.beam");
    let built = std::fs::metadata(&beam)
        .and_then(|m| m.modified())
        .expect("beam");
    let source = dev.join("apps/pay/src/pay_card.erl");
    write(&source, &module("pay_card", "two"));
    set_mtime(&source, built);
    let out = Command::new(env!("CARGO_BIN_EXE_hotswap-node"))
        .args(["deploy", "--name", &unique("hs"), "--node", &node.name])
        .args(["--cookie", &node.cookie])
        .current_dir(&dev)
        .env("HOME", root.path())
        .env("PATH", common::tool_path())
        .env_remove("HOTSWAP_NODES")
        .env_remove("HOTSWAP_COOKIE")
        .env_remove("HOTSWAP_APP_NAME")
        .env_remove("REBAR_PROFILE")
        .output()
        .expect("binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Building with `rebar3 compile`"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("Deployed pay_card to {} (changed)", node.name)),
        "{stdout}"
    );
    assert!(!stdout.contains("Deployed shop_cart"), "{stdout}");
    assert_eq!(node.eval("pay_card:version()."), "two");
    assert_eq!(node.loaded_md5("shop_cart"), shop_before);
    assert_eq!(mtime(&shop_beam), shop_built, "shop_cart was rebuilt");
}

fn mtime(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime")
}

fn set_mtime(path: &Path, time: std::time::SystemTime) {
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open");
    file.set_modified(time).expect("set mtime");
}

/// A release with two apps, `shop` (module `shop_cart`) and `pay` (module
/// `pay_card`), each module's `version/0` returning `version`.
fn write_release(dir: &Path, version: &str) {
    write(&dir.join("rebar.config"), "{erl_opts, [debug_info]}.\n");
    for (app, name) in [("shop", "shop_cart"), ("pay", "pay_card")] {
        let src = dir.join("apps").join(app).join("src");
        write(
            &src.join(format!("{app}.app.src")),
            &format!("{{application, {app}, [{{vsn, \"0.1.0\"}}, {{applications, [kernel, stdlib]}}]}}.\n"),
        );
        write(&src.join(format!("{name}.erl")), &module(name, version));
    }
}

fn module(name: &str, version: &str) -> String {
    format!("-module({name}).\n-export([version/0]).\nversion() -> {version}.\n")
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}
