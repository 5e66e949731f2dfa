//! The release archives `scripts/dist` makes (target/dist): each holds a
//! static binary that runs, the aarch64 one under qemu-user as on a device
//! class of machine, and deploys to a real node; each is the one whose sum
//! `SHA256SUMS` lists and the Mix package pins (mix/checksums.exs), so that
//! `mix hotswap_node.install` would install exactly it.

mod common;

use common::project::{arg, start_node, Project};
use common::unique;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The archive of `target`, or `None` after saying why not (a failure
/// under CI, where scripts/test runs scripts/dist first).
fn archive(target: &str) -> Option<PathBuf> {
    let path = common::repo_root()
        .join("target/dist")
        .join(format!("hotswap-node-{VERSION}-{target}.tar.gz"));
    if path.is_file() {
        return Some(path);
    }
    common::cannot_run_here(&format!("no {} (scripts/dist makes it)", path.display()));
    None
}

/// The binary in `archive`, unpacked into `dir`.
fn unpack(archive: &Path, dir: &Path) -> PathBuf {
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .status()
        .expect("tar runs");
    assert!(status.success(), "unpacking {}", archive.display());
    let bin = dir.join(format!("hotswap-node-{VERSION}/hotswap-node"));
    assert!(bin.is_file(), "no hotswap-node in {}", archive.display());
    bin
}

fn sha256_hex(path: &Path) -> String {
    let data = std::fs::read(path).expect("read the archive");
    Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The archive's sum is the one SHA256SUMS lists and the package pins.
fn assert_pinned(archive: &Path) {
    let name = archive
        .file_name()
        .expect("a file")
        .to_string_lossy()
        .into_owned();
    let sum = sha256_hex(archive);
    let sums = std::fs::read_to_string(archive.with_file_name("SHA256SUMS")).expect("SHA256SUMS");
    assert!(
        sums.contains(&format!("{sum}  {name}")),
        "{name} not in SHA256SUMS:\n{sums}"
    );
    let pinned = std::fs::read_to_string(common::repo_root().join("mix/checksums.exs"))
        .expect("checksums.exs");
    assert!(
        pinned.contains(&format!("\"{name}\" => \"{sum}\"")),
        "mix/checksums.exs does not pin {name} as {sum}:\n{pinned}"
    );
}

/// Runs `runner` (the binary, or qemu with it) with `args` in `dir`.
fn run(runner: &[&Path], args: &[&str], dir: &Path) -> (i32, String) {
    let out = Command::new(runner[0])
        .args(&runner[1..])
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("HOTSWAP_NODES")
        .env_remove("HOTSWAP_COOKIE")
        .output()
        .expect("the binary runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), said)
}

/// The archive's binary says its version and deploys a changed module to
/// a real node, read back from the node.
fn runs_and_deploys(target: &str, qemu: Option<&Path>) {
    let Some(archive) = archive(target) else {
        return;
    };
    assert_pinned(&archive);
    let unpacked = tempfile::tempdir().expect("tmp");
    let bin = unpack(&archive, unpacked.path());
    let runner: Vec<&Path> = qemu.into_iter().chain([bin.as_path()]).collect();

    let p = Project::new();
    let (code, said) = run(&runner, &["--version"], p.path());
    assert_eq!(
        (code, said.trim()),
        (0, format!("hotswap-node {VERSION}").as_str())
    );

    // Its manual pages and completion scripts, the binary's own.
    let top = bin.parent().expect("the archive's folder");
    let (code, page) = run(&runner, &["man", "deploy"], p.path());
    assert_eq!(code, 0, "{page}");
    let shipped = std::fs::read_to_string(top.join("man/hotswap-node-deploy.1")).expect("man page");
    assert_eq!(shipped, page);
    for file in [
        "man/hotswap-node.1",
        "man/hotswap-node-watch.1",
        "completions/hotswap-node.bash",
        "completions/_hotswap-node",
        "completions/hotswap-node.fish",
    ] {
        let len = std::fs::metadata(top.join(file)).map_or(0, |m| m.len());
        assert!(len > 0, "{file} in {}", archive.display());
    }

    let (v1, v2) = (p.build(1, &["hs_greet"]), p.build(2, &["hs_greet"]));
    let cookie = common::random_cookie();
    let mut node = start_node("archive", &v1, &cookie, &["hs_greet"]);
    let (name, ebin) = (unique("hs"), arg(&v2));
    let args = [
        "deploy", "--name", &name, "--node", &node.name, "--cookie", &cookie, "--ebin", &ebin,
    ];
    let (code, said) = run(&runner, &args, p.path());
    assert_eq!(code, 0, "{said}");
    assert_eq!(node.loaded_md5("hs_greet"), p.md5(&v2, "hs_greet"));
}

#[test]
fn the_x86_64_archive_runs_here_and_deploys() {
    if std::env::consts::ARCH != "x86_64" {
        common::cannot_run_here("this machine is not x86_64");
        return;
    }
    runs_and_deploys("x86_64-unknown-linux-musl", None);
}

#[test]
fn the_aarch64_archive_runs_under_qemu_and_deploys() {
    let qemu = Path::new("/usr/bin/qemu-aarch64");
    if !qemu.exists() {
        common::cannot_run_here("no qemu-aarch64 (apt-get install qemu-user; scripts/setup does)");
        return;
    }
    runs_and_deploys("aarch64-unknown-linux-musl", Some(qemu));
}

/// A Mix project that depends on the package (mix/) installs this host's
/// archive from a server at its `base_url`, checked against the sums
/// scripts/dist pinned, and runs it through `mix hotswap_node`; a
/// tampered archive installs nothing; with `MIX_TARGET` naming a device,
/// the host's binary is still the one installed; and `mix upload.hotswap`,
/// configured as the seed's users have it, puts a change on a node that
/// runs the project.
#[test]
fn the_mix_package_installs_the_archive_and_runs_it() {
    let target = format!("{}-unknown-linux-musl", std::env::consts::ARCH);
    let Some(archive) = archive(&target) else {
        return;
    };
    let name = archive
        .file_name()
        .expect("a file")
        .to_string_lossy()
        .into_owned();
    let good = std::fs::read(&archive).expect("read the archive");
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let served = std::sync::Arc::new(std::sync::Mutex::new(good));
    let port = serve(name.clone(), served.clone());

    let project = tempfile::tempdir().expect("tmp");
    let dir = project.path();
    let package = common::repo_root().join("mix");
    std::fs::write(
        dir.join("mix.exs"),
        format!(
            "defmodule Probe.MixProject do\n  use Mix.Project\n  def project, do: [app: :probe, version: \"0.1.0\", \
             deps: [{{:hotswap_node, path: {:?}}}]]\nend\n",
            package.to_string_lossy()
        ),
    )
    .expect("mix.exs");
    std::fs::create_dir_all(dir.join("lib")).expect("lib");
    let probe = |v: u32| {
        let source = format!("defmodule Probe do\n  def v, do: {v}\nend\n");
        std::fs::write(dir.join("lib/probe.ex"), source).expect("probe.ex");
    };
    probe(1);
    let cookie = common::random_cookie();
    let ebin = dir.join("_build/dev/lib/probe/ebin");
    std::fs::create_dir_all(&ebin).expect("ebin");
    let mut node = start_node("mixprobe", &ebin, &cookie, &[]);
    std::fs::create_dir_all(dir.join("config")).expect("config");
    std::fs::write(
        dir.join("config/config.exs"),
        format!(
            "import Config\nconfig :hotswap_node, base_url: \"http://127.0.0.1:{port}/hotswap-node-$version-$target.tar.gz\"\n\
             config :mix_tasks_upload_hotswap, app_name: :probe, nodes: [:\"{}\"], cookie: :\"{cookie}\"\n",
            node.name
        ),
    )
    .expect("config.exs");
    let mix_as = |args: &[&str], mix_target: Option<&str>| {
        let mut command = Command::new("mix");
        command
            .args(args)
            .current_dir(dir)
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .env("MIX_ENV", "dev")
            .env_remove("MIX_TARGET");
        if let Some(target) = mix_target {
            command.env("MIX_TARGET", target);
        }
        let out = command.output().expect("mix runs");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), said)
    };
    let mix = |args: &[&str]| mix_as(args, None);

    // Tampered on the server: refused, nothing installed.
    *served.lock().expect("lock") = bad;
    let (code, said) = mix(&["hotswap_node.install"]);
    assert_ne!(code, 0, "{said}");
    assert!(said.contains("SHA-256") && said.contains(&name), "{said}");
    let installed = dir.join(format!("_build/hotswap_node-{target}"));
    assert!(!installed.exists(), "{said}");

    // For a device's build, still this host's binary: the device is not
    // where it runs.
    *served.lock().expect("lock") = std::fs::read(&archive).expect("read");
    let (code, said) = mix_as(&["hotswap_node.install"], Some("rpi4"));
    assert_eq!(code, 0, "{said}");
    assert!(installed.is_file(), "{said}");
    std::fs::remove_file(&installed).expect("remove");
    let (code, said) = mix(&["hotswap_node.install"]);
    assert_eq!(code, 0, "{said}");
    let (code, said) = mix(&["hotswap_node", "--version"]);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains(&format!("hotswap-node {VERSION}")), "{said}");
    let (code, said) = mix(&[
        "hotswap_node",
        "deploy",
        "--node",
        "nobody@nowhere.invalid",
        "--cookie",
        "c",
        "--ebin",
        ".",
    ]);
    assert_ne!(code, 0, "the binary's exit code is the task's: {said}");

    // The seed's task, through the binary: compile, then deploy the change.
    let (code, said) = mix(&["compile"]);
    assert_eq!(code, 0, "{said}");
    assert_eq!(node.eval("'Elixir.Probe':v()."), "1");
    // Saved again in the very second that compile started (as an editor's
    // on-save hook does), at the same size: Mix alone would take it for
    // compiled.
    probe(2);
    let manifest = dir.join("_build/dev/lib/probe/.mix/compile.elixir");
    let compiled = std::fs::metadata(&manifest)
        .and_then(|m| m.modified())
        .expect("the compile's manifest");
    std::fs::File::options()
        .write(true)
        .open(dir.join("lib/probe.ex"))
        .and_then(|f| f.set_modified(compiled))
        .expect("date the save");
    let (code, said) = mix(&["upload.hotswap", "--name", &unique("hsmix")]);
    assert_eq!(code, 0, "{said}");
    assert_eq!(node.eval("'Elixir.Probe':v()."), "2", "{said}");
}

/// Serves `file` (its current bytes) at `/NAME` over HTTP on a free port,
/// for as long as the test runs; 404 for anything else.
fn serve(name: String, file: std::sync::Arc<std::sync::Mutex<Vec<u8>>>) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let mut stream = reader.into_inner();
            let wanted = format!("GET /{name} ");
            let body = match request.starts_with(&wanted) {
                true => file.lock().map(|f| f.clone()).unwrap_or_default(),
                false => {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                    continue;
                }
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    port
}
