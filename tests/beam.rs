//! The BEAM reader against OTP itself: for every fixture, the module name and
//! MD5 must equal what `beam_lib:md5/1` says and what the VM reports once the
//! module is loaded.

mod common;

use common::{elixir_ebin, erlc, fixture, mix_compile_example, unique};
use hotswap_node::beam::{parse, BeamError, Module, ModuleError};
use hotswap_node::project::discover::{self, Search};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Erlang fixtures compiled plain and with `+compressed`, plus the Elixir
/// example compiled by Mix; built once per test process.
fn compiled() -> &'static Vec<PathBuf> {
    static FILES: OnceLock<Vec<PathBuf>> = OnceLock::new();
    FILES.get_or_init(|| {
        let root = common::scratch("beams");
        let sources: Vec<PathBuf> = ["hs_plain", "hs_unicode", "hs_funs", "hs_onload", "hs_big"]
            .iter()
            .map(|m| fixture(&format!("erl/{m}.erl")))
            .collect();
        erlc(&sources, &root.join("plain"), &[]);
        erlc(&sources, &root.join("compressed"), &["+compressed"]);
        let project = mix_compile_example(&root);
        let mut files = beams(&root.join("plain"));
        files.extend(beams(&root.join("compressed")));
        files.extend(beams(&project.join("_build/dev/lib/example/ebin")));
        files.extend(beams(&project.join("_build/dev/lib/example/consolidated")));
        files
    })
}

fn beams(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "beam"))
        .collect();
    files.sort();
    files
}

/// For each file: module, beam_lib's MD5, and the MD5 the VM reports after
/// loading it, all as OTP computes them.
fn otp_md5s(files: &[PathBuf]) -> Vec<(String, String, String)> {
    let list = files
        .iter()
        .map(|f| format!("\"{}\"", f.display()))
        .collect::<Vec<_>>()
        .join(",");
    let script = format!(
        "Hex = fun(B) -> lists:flatten([io_lib:format(\"~2.16.0b\", [X]) || <<X>> <= B]) end,
         lists:foreach(fun(F) ->
             {{ok, {{M, Md5}}}} = beam_lib:md5(F),
             {{ok, Bin}} = file:read_file(F),
             code:purge(M), code:delete(M), code:purge(M),
             {{module, M}} = code:load_binary(M, F, Bin),
             io:format(\"~ts ~s ~s~n\", [atom_to_binary(M, utf8), Hex(Md5), Hex(M:module_info(md5))])
         end, [{list}]),
         halt().",
    );
    let out = Command::new("erl")
        .args(["-noshell", "-pa"])
        .arg(elixir_ebin("elixir"))
        .args(["-eval", &script])
        .output()
        .expect("erl runs");
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        out.status.success(),
        "erl failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            (
                parts[0].to_owned(),
                parts[1].to_owned(),
                parts[2].to_owned(),
            )
        })
        .collect()
}

#[test]
fn names_and_md5s_match_beam_lib_and_the_loaded_module() {
    let files = compiled();
    let otp = otp_md5s(files);
    assert_eq!(otp.len(), files.len());
    for (file, (module, lib_md5, loaded_md5)) in files.iter().zip(&otp) {
        let ours = Module::read(file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&ours.name, module, "{}", file.display());
        assert_eq!(
            &ours.md5.to_hex(),
            lib_md5,
            "beam_lib md5 of {}",
            file.display()
        );
        assert_eq!(lib_md5, loaded_md5, "loaded md5 of {}", file.display());
    }
    // The fixtures cover what they claim to.
    assert!(files
        .iter()
        .any(|f| f.to_string_lossy().contains("compressed")));
    assert!(otp.iter().any(|(m, _, _)| m == "Elixir.Example.Describe"));
    assert!(otp.iter().any(|(m, _, _)| m == "Elixir.Enumerable"));
}

/// Whether each file exports code_change/3 or /4, as beam_lib reads it.
fn otp_code_change(files: &[PathBuf]) -> Vec<bool> {
    let list = files
        .iter()
        .map(|f| format!("\"{}\"", f.display()))
        .collect::<Vec<_>>()
        .join(",");
    let script = format!(
        "lists:foreach(fun(F) ->
             {{ok, {{_, [{{exports, Es}}]}}}} = beam_lib:chunks(F, [exports]),
             io:format(\"~p~n\", [lists:member({{code_change, 3}}, Es) orelse lists:member({{code_change, 4}}, Es)])
         end, [{list}]),
         halt()."
    );
    let out = Command::new("erl")
        .args(["-noshell", "-eval", &script])
        .output()
        .expect("erl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l == "true")
        .collect()
}

#[test]
fn code_change_exports_are_read_as_beam_lib_reads_them() {
    let mut files = compiled().clone();
    let root = common::scratch("code_change");
    let sources = ["hs_counter", "hs_machine"].map(|m| fixture(&format!("deploy/{m}.erl")));
    erlc(&sources, &root, &[]);
    files.extend(beams(&root));
    let otp = otp_code_change(&files);
    assert_eq!(otp.len(), files.len());
    for (file, exports) in files.iter().zip(&otp) {
        let ours = Module::read(file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ours.code_change, *exports, "{}", file.display());
    }
    let counter = files
        .iter()
        .find(|f| f.ends_with("Elixir.Example.Counter.beam"));
    let counter = Module::read(counter.expect("the example's counter")).expect("module");
    assert!(counter.code_change, "`use GenServer` defines code_change/3");
    assert!(otp.iter().filter(|e| **e).count() >= 3 && otp.contains(&false));
}

#[test]
fn compressed_beams_are_gzip_and_read_the_same() {
    let files = compiled();
    let plain = files
        .iter()
        .find(|f| f.ends_with("plain/hs_funs.beam"))
        .expect("plain");
    let packed = files
        .iter()
        .find(|f| f.ends_with("compressed/hs_funs.beam"))
        .expect("compressed");
    let bytes = std::fs::read(packed).expect("read");
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "erlc +compressed writes gzip");
    let a = Module::read(plain).expect("plain");
    let b = Module::read(packed).expect("packed");
    assert_eq!(a.md5, b.md5);
    assert_ne!(a.sha256(), b.sha256());
}

#[test]
fn unicode_module_atoms_survive() {
    let file = compiled()
        .iter()
        .find(|f| f.ends_with("plain/hs_unicode.beam"))
        .expect("unicode");
    let parsed = parse(&std::fs::read(file).expect("read")).expect("parse");
    assert_eq!(parsed.name, "hs_unicode");
}

#[test]
fn file_level_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let real = compiled()
        .iter()
        .find(|f| f.ends_with("plain/hs_plain.beam"))
        .expect("plain");
    let bytes = std::fs::read(real).expect("read");

    let renamed = dir.path().join("other_name.beam");
    std::fs::write(&renamed, &bytes).expect("write");
    let err = Module::read(&renamed).expect_err("name mismatch");
    assert!(matches!(err, ModuleError::NameMismatch { .. }), "{err}");
    assert!(
        err.to_string().contains("other_name.beam") && err.to_string().contains("`hs_plain`"),
        "{err}"
    );

    let cut = dir.path().join("hs_cut.beam");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let err = Module::read(&cut).expect_err("truncated");
    assert!(
        matches!(
            err,
            ModuleError::Invalid {
                source: BeamError::FormPastEnd { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("hs_cut.beam"), "{err}");

    let text = dir.path().join("notes.beam");
    std::fs::write(&text, b"just some notes").expect("write");
    let err = Module::read(&text).expect_err("not beam");
    assert!(
        err.to_string().contains("notes.beam") && err.to_string().contains("not a BEAM file"),
        "{err}"
    );

    let missing = dir.path().join("gone.beam");
    assert!(matches!(
        Module::read(&missing),
        Err(ModuleError::Io { .. })
    ));
}

#[test]
fn two_files_defining_one_module_are_refused() {
    let a = tempfile::tempdir().expect("tmp");
    let b = tempfile::tempdir().expect("tmp");
    let real = compiled()
        .iter()
        .find(|f| f.ends_with("plain/hs_plain.beam"))
        .expect("plain");
    std::fs::copy(real, a.path().join("hs_plain.beam")).expect("copy");
    std::fs::copy(real, b.path().join("hs_plain.beam")).expect("copy");
    let search = Search {
        project: a.path().to_owned(),
        ebin: vec![a.path().to_owned(), b.path().to_owned()],
        ..Default::default()
    };
    let found = discover::find(&search).expect("found");
    let errors = discover::read_modules(&found.files).expect_err("duplicate");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .to_string()
            .contains("module `hs_plain` is defined twice"),
        "{}",
        errors[0]
    );
}

#[test]
fn a_mix_build_yields_app_modules_with_consolidated_protocols() {
    let root = std::env::temp_dir().join(unique("hotswap_mix"));
    let project = mix_compile_example(&root);
    let found = discover::find(&Search::from_env(project.clone())).expect("found");
    assert_eq!(found.apps, vec!["example".to_owned()]);
    let modules = discover::read_modules(&found.files).expect("valid");
    let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
    assert!(names.contains(&"Elixir.Example"), "{names:?}");
    assert!(names.contains(&"Elixir.Example.Counter"), "{names:?}");
    // The protocol comes from `consolidated`, not `ebin`.
    let describe = modules
        .iter()
        .find(|m| m.name == "Elixir.Example.Describe")
        .expect("protocol");
    assert!(
        describe.path.to_string_lossy().contains("consolidated"),
        "{}",
        describe.path.display()
    );
    let _ = std::fs::remove_dir_all(root);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = parse(&bytes);
        let mut beamish = b"FOR1\0\0\0\0BEAM".to_vec();
        beamish.extend(&bytes);
        let _ = parse(&beamish);
    }

    #[test]
    fn truncated_and_corrupted_real_beams_never_panic(pick in 0usize..64, cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), value in any::<u8>()) {
        let files = compiled();
        let bytes = std::fs::read(&files[pick % files.len()]).expect("read");
        let cut = cut.index(bytes.len() + 1);
        let _ = parse(&bytes[..cut]);
        let mut corrupted = bytes.clone();
        let at = flip.index(corrupted.len());
        corrupted[at] = value;
        let _ = parse(&corrupted);
    }
}
