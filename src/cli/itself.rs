//! What the command line prints of itself, written from the same clap
//! definitions as the arguments: a shell's completion script and the
//! manual page.

use super::args::Cli;
use super::error::CliError;
use clap::CommandFactory;
use std::io::Write;

/// Prints the completion script for `shell`.
pub(super) fn completions(shell: clap_complete::Shell) -> Result<i32, CliError> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "hotswap-node", &mut script);
    if shell == clap_complete::Shell::Bash {
        // clap_complete spells a hyphenated binary's commands two ways in
        // bash (clap-rs/clap#6421): the loop that reads the words arrives
        // at `hotswap__node__subcmd__deploy`, the arms wait for
        // `hotswap__subcmd__node__subcmd__deploy`, and no command's flags
        // ever complete. One spelling for both.
        let text =
            String::from_utf8_lossy(&script).replace("hotswap__subcmd__node", "hotswap__node");
        script = text.into_bytes();
    }
    print(&script)
}

/// Prints the manual page, as roff: the tool's (`hotswap-node(1)`, which
/// names its commands' pages), or one command's (`hotswap-node-deploy(1)`).
pub(super) fn man(command: Option<&str>) -> Result<i32, CliError> {
    let tool = Cli::command();
    let page = match command.and_then(|name| tool.find_subcommand(name)) {
        Some(sub) => {
            let name = format!("hotswap-node-{}", sub.get_name());
            let usage = format!("hotswap-node {}", sub.get_name());
            let version = tool.get_version().unwrap_or_default().to_owned();
            sub.clone().name(name).bin_name(usage).version(version)
        }
        None => tool,
    };
    let mut roff = Vec::new();
    render(page, &mut roff).map_err(CliError::Stdout)?;
    print(&roff)
}

/// The page of `command`: its sections as clap_mangen writes them, and its
/// help's closing text (what it watches, its exit codes) as roff sections
/// of their own, each exit code a tagged paragraph.
fn render(command: clap::Command, out: &mut Vec<u8>) -> std::io::Result<()> {
    let after = command
        .get_after_help()
        .map(ToString::to_string)
        .unwrap_or_default();
    let page = clap_mangen::Man::new(command.clone().after_help(None::<&str>));
    page.render_title(out)?;
    page.render_name_section(out)?;
    page.render_synopsis_section(out)?;
    page.render_description_section(out)?;
    page.render_options_section(out)?;
    if command.has_subcommands() {
        page.render_subcommands_section(out)?;
    }
    let (prose, codes) = split_after_help(&after);
    if !prose.is_empty() {
        writeln!(out, ".SH NOTES\n{}", escape(&prose))?;
    }
    if !codes.is_empty() {
        writeln!(out, ".SH \"EXIT STATUS\"")?;
        for (code, meaning) in codes {
            writeln!(out, ".TP\n\\fB{code}\\fR\n{}", escape(&meaning))?;
        }
    }
    page.render_version_section(out)
}

/// A help's closing text split into its prose and its exit codes, each
/// code with its meaning on one line (`Exit codes:`, then `  N    text`
/// with continuation lines indented further).
fn split_after_help(text: &str) -> (String, Vec<(String, String)>) {
    let (prose, codes) = text.split_once("Exit codes:").unwrap_or((text, ""));
    let mut entries: Vec<(String, String)> = Vec::new();
    for line in codes.lines() {
        let trimmed = line.trim();
        let starts_code = line.starts_with("  ") && !line.starts_with("   ");
        match (starts_code, trimmed.split_once(char::is_whitespace)) {
            (true, Some((code, meaning))) if code.chars().all(|c| c.is_ascii_digit()) => {
                entries.push((code.to_owned(), meaning.trim().to_owned()))
            }
            _ => {
                if let (Some((_, meaning)), false) = (entries.last_mut(), trimmed.is_empty()) {
                    meaning.push(' ');
                    meaning.push_str(trimmed);
                }
            }
        }
    }
    let prose = prose.split_whitespace().collect::<Vec<_>>().join(" ");
    (prose, entries)
}

/// Text as roff reads it literally: hyphens and backslashes escaped.
fn escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    match escaped.starts_with(['.', '\'']) {
        true => format!("\\&{escaped}"),
        false => escaped,
    }
}

fn print(bytes: &[u8]) -> Result<i32, CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(CliError::Stdout)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_helps_exit_codes_become_one_entry_each() {
        let (prose, codes) = split_after_help(
            "Watches the sources,\nthen deploys.\n\nExit codes:\n  0    stopped\n  2    usage or\n       input error\n  130  interrupted",
        );
        assert_eq!(prose, "Watches the sources, then deploys.");
        assert_eq!(
            codes,
            vec![
                ("0".into(), "stopped".into()),
                ("2".into(), "usage or input error".into()),
                ("130".into(), "interrupted".into()),
            ]
        );
        assert_eq!(escape(".a-b\\c"), "\\&.a\\-b\\ec");
    }
}
