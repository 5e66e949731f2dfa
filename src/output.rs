//! Everything the user sees while a command runs: progress lines, warnings,
//! and on a terminal one progress bar per node. The one factory for bars is
//! here; they are hidden when output is not a terminal, with `TERM=dumb`,
//! `NO_COLOR`, `--quiet` or `--json`.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only errors.
    Quiet,
    /// Lines on stdout.
    Text,
    /// Progress on stderr; stdout is kept for the one JSON document.
    Json,
}

#[derive(Debug)]
pub struct Ui {
    mode: Mode,
    bars: Option<MultiProgress>,
    /// Progress lines are shown (not for a command that prints its own).
    lines: bool,
}

impl Mode {
    /// The mode `--json` and `-q` ask for (`--json` wins).
    pub fn from_flags(json: bool, quiet: bool) -> Mode {
        match (json, quiet) {
            (true, _) => Mode::Json,
            (false, true) => Mode::Quiet,
            (false, false) => Mode::Text,
        }
    }
}

impl Ui {
    pub fn new(mode: Mode) -> Self {
        let fancy = mode == Mode::Text
            && std::io::stderr().is_terminal()
            && std::env::var_os("NO_COLOR").is_none()
            && std::env::var("TERM").map(|t| t != "dumb").unwrap_or(false);
        Ui {
            mode,
            bars: fancy.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            lines: true,
        }
    }

    /// A silent UI, for library callers and tests.
    pub fn quiet() -> Self {
        Ui {
            mode: Mode::Quiet,
            bars: None,
            lines: false,
        }
    }

    /// Warnings as `mode` shows them, and no progress lines: for a command
    /// that reports each step its own way (`watch`).
    pub fn warnings_only(mode: Mode) -> Self {
        Ui {
            mode,
            bars: None,
            lines: false,
        }
    }

    /// A progress line, like `Connected to app@host`.
    pub fn line(&self, text: &str) {
        if !self.lines {
            return;
        }
        match (self.mode, &self.bars) {
            (Mode::Quiet, _) => {}
            (Mode::Text, Some(bars)) => {
                let _ = bars.println(text);
            }
            (Mode::Text, None) => println!("{text}"),
            (Mode::Json, _) => eprintln!("{text}"),
        }
    }

    pub fn warn(&self, text: &str) {
        if self.mode == Mode::Quiet {
            return;
        }
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(format!("warning: {text}"));
            }
            None => eprintln!("warning: {text}"),
        }
    }

    /// A bar for one node's progress through `steps` steps; hidden unless fancy.
    pub fn node_bar(&self, node: &str, steps: u64) -> ProgressBar {
        let Some(bars) = &self.bars else {
            return ProgressBar::hidden();
        };
        let style = ProgressStyle::with_template("{prefix:.bold} [{bar:20}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = bars.add(ProgressBar::new(steps).with_style(style));
        bar.set_prefix(node.to_owned());
        bar
    }
}
