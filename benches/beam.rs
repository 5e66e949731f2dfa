//! Reading and fingerprinting ~1,000 real beams (OTP's and Elixir's own),
//! against `beam_lib:md5/1` over the same files inside an Erlang VM,
//! measured in the same run.

#[path = "../tests/common/mod.rs"]
mod common;

use hotswap_node::beam::{read_all, Module};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn main() {
    // `cargo test --all-targets` runs benches without `--bench`: only check they build.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mut files: Vec<PathBuf> = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/erlang/lib")
        .expect("OTP installed")
        .filter_map(|e| e.ok().map(|e| e.path().join("ebin")))
        .collect();
    dirs.push(common::elixir_ebin("elixir"));
    for dir in dirs {
        if let Ok(entries) = std::fs::read_dir(dir) {
            files.extend(
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "beam")),
            );
        }
    }
    files.sort();
    files.truncate(1000);
    let n = files.len();
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();

    let median = |f: &dyn Fn() -> Duration| {
        let mut v: Vec<Duration> = (0..7).map(|_| f()).collect();
        v.sort();
        v[3]
    };
    let one_core = median(&|| {
        let started = Instant::now();
        for f in &files {
            Module::read(f).expect("valid beam");
        }
        started.elapsed()
    });
    let parallel = median(&|| {
        let started = Instant::now();
        assert!(read_all(&files).iter().all(|r| r.is_ok()));
        started.elapsed()
    });
    let list = files
        .iter()
        .map(|f| format!("\"{}\"", f.display()))
        .collect::<Vec<_>>()
        .join(",");
    let out = std::process::Command::new("erl")
        .args(["-noshell", "-eval"])
        .arg(format!(
            "Fs = [{list}], [beam_lib:md5(F) || F <- Fs], Ts = lists:sort([element(1, timer:tc(fun() -> [{{ok, _}} = beam_lib:md5(F) || F <- Fs] end)) || _ <- lists:seq(1, 7)]), io:format(\"~b~n\", [lists:nth(4, Ts)]), halt()."
        ))
        .output()
        .expect("erl");
    let base = Duration::from_micros(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0),
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "\n{n} beams, {:.1} MB, median of 7 (files in page cache):\n",
        bytes as f64 / 1e6
    );
    println!("| read + validate + MD5 | time | vs beam_lib:md5 |\n|---|---|---|");
    println!(
        "| hotswap-node, one core | {:.1} ms | {:.1}× faster |",
        ms(one_core),
        ms(base) / ms(one_core)
    );
    println!(
        "| hotswap-node, all cores | {:.1} ms | {:.1}× faster |",
        ms(parallel),
        ms(base) / ms(parallel)
    );
    println!(
        "| beam_lib:md5/1 in erl (MD5 only) | {:.1} ms | 1× |",
        ms(base)
    );
}
