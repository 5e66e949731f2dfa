//! What the command line prints of itself: completion scripts that real
//! shells load and complete with, and manual pages that `man` renders,
//! every command's, written from the same definitions as its arguments.

mod common;

use std::path::Path;
use std::process::Command;

fn tool(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hotswap-node"))
        .args(args)
        .output()
        .expect("hotswap-node runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `script` in `shell` (`shell -c script`); its stdout.
fn shell(shell: &str, script: &str, dir: &Path) -> String {
    let out = Command::new(shell)
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("the shell runs");
    assert!(
        out.status.success(),
        "{shell}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bash_completes_the_commands_and_their_flags() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("c.bash"), tool(&["completions", "bash"])).expect("write");
    let complete = |words: &str| {
        shell(
            "bash",
            &format!(
                "source ./c.bash; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
                 _hotswap__node hotswap-node \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
                 printf '%s\\n' \"${{COMPREPLY[@]}}\""
            ),
            dir.path(),
        )
    };
    let commands = complete("hotswap-node ''");
    for c in [
        "deploy",
        "status",
        "snapshots",
        "watch",
        "completions",
        "man",
    ] {
        assert!(commands.lines().any(|l| l == c), "{c} in {commands}");
    }
    let flags = complete("hotswap-node deploy --ro");
    assert_eq!(flags.trim(), "--rollback", "{flags}");
}

#[test]
fn zsh_and_fish_load_their_scripts() {
    let dir = tempfile::tempdir().expect("tmp");
    if has("zsh") {
        std::fs::write(
            dir.path().join("_hotswap-node"),
            tool(&["completions", "zsh"]),
        )
        .expect("write");
        shell("zsh", "zsh -n _hotswap-node", dir.path());
    } else {
        common::cannot_run_here("no zsh (scripts/setup installs it)");
    }
    if has("fish") {
        std::fs::write(dir.path().join("c.fish"), tool(&["completions", "fish"])).expect("write");
        let offered = shell(
            "fish",
            "source c.fish; complete --do-complete 'hotswap-node deploy --dry'",
            dir.path(),
        );
        assert!(offered.starts_with("--dry-run"), "{offered}");
        let commands = shell(
            "fish",
            "source c.fish; complete --do-complete 'hotswap-node '",
            dir.path(),
        );
        assert!(
            commands.lines().any(|l| l.starts_with("watch")),
            "{commands}"
        );
    } else {
        common::cannot_run_here("no fish (scripts/setup installs it)");
    }
}

#[test]
fn every_command_has_a_page_man_renders() {
    if !has("man") || !has("groff") {
        common::cannot_run_here("no man or groff (scripts/setup installs them)");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    for (command, says) in [
        ("", "hotswap-node-deploy(1)"),
        ("deploy", "--rollback"),
        ("status", "--json"),
        ("snapshots", "hotswap-node-snapshots"),
        ("watch", "--settle"),
        ("completions", "SHELL"),
        ("man", "COMMAND"),
    ] {
        let page = dir.path().join("page.1");
        let args: Vec<&str> = std::iter::once("man")
            .chain((!command.is_empty()).then_some(command))
            .collect();
        std::fs::write(&page, tool(&args)).expect("write");
        // groff's warnings are errors here: a page that renders wrong fails.
        let checked = shell("sh", "groff -man -ww -z page.1 2>&1", dir.path());
        assert!(checked.is_empty(), "{command}: {checked}");
        let shown = shell("sh", "MANWIDTH=100 man -l page.1 | col -b", dir.path());
        assert!(shown.contains(says), "{command}: {shown}");
        if command == "deploy" || command.is_empty() {
            assert!(
                shown.contains("EXIT STATUS") && shown.contains("130"),
                "{shown}"
            );
        }
    }
}
