//! The project's build command (`mix compile`, `rebar3 compile`, or the
//! user's `build`), run the one way for `deploy` and `watch`: `sh -c` in
//! the project, with no standard input, in a process group of its own, so
//! that Ctrl-C reaches this tool and not the build: the tool decides. When
//! the caller's `stop` is ready (Ctrl-C during `deploy`'s build), the
//! build's whole group is told to stop (SIGTERM), and the shell killed.

use crate::output::Mode;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Stdio;
use tokio::process::Command;

/// Why a build did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// The build command ran and failed, or could not run: `how`, as in
    /// "exited with exit status: 1"; its own output said more.
    Command { command: String, how: String },
    /// The build node's compile failed; its output said why.
    Compile(String),
    /// Ctrl-C (or SIGTERM) stopped it.
    Interrupted,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Command { command, how } => write!(f, "the build (`{command}`) {how}"),
            BuildError::Compile(why) => f.write_str(why),
            BuildError::Interrupted => f.write_str("the build was interrupted"),
        }
    }
}

/// Runs `command` in `project` until it ends or `stop` is ready; its
/// output shown as `mode` wants: on stdout in text, on stderr when stdout
/// carries JSON, only on failure when quiet.
pub async fn run(
    command: &str,
    project: &Path,
    mode: Mode,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), BuildError> {
    // Quiet, the output is kept, to be shown only if the build fails.
    let quiet = mode == Mode::Quiet;
    let (stdout, stderr) = match quiet {
        true => (Stdio::piped(), Stdio::piped()),
        false => (chatter(mode), Stdio::inherit()),
    };
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(project)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(command, format!("could not start: {e}")))?;
    let group = child.id();
    // A second Ctrl-C quits without dropping `child`: it stops the group.
    let _quit = group.map(crate::interrupt::Group::stop_on_quit);
    let output = async {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let read = async {
            use tokio::io::AsyncReadExt;
            if let Some(mut s) = stdout {
                let _ = s.read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            use tokio::io::AsyncReadExt;
            if let Some(mut s) = stderr {
                let _ = s.read_to_end(&mut err).await;
            }
        };
        tokio::join!(read, read_err);
        (child.wait().await, out, err)
    };
    let (status, out, err) = tokio::select! {
        done = output => done,
        () = stop => {
            if let Some(group) = group {
                crate::interrupt::stop_group(group);
            }
            return Err(BuildError::Interrupted);
        }
    };
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => {
            if quiet {
                use std::io::Write;
                let _ = std::io::stderr().write_all(&out);
                let _ = std::io::stderr().write_all(&err);
            }
            Err(failed(command, format!("exited with {s}")))
        }
        Err(e) => Err(failed(command, format!("could not be waited for: {e}"))),
    }
}

fn failed(command: &str, how: String) -> BuildError {
    BuildError::Command {
        command: command.to_owned(),
        how,
    }
}

/// Where a build's (or the build node's) standard output goes: ours as
/// text, our stderr when stdout carries JSON lines, nowhere when quiet
/// (errors are on stderr).
pub fn chatter(mode: Mode) -> Stdio {
    match mode {
        Mode::Text => Stdio::inherit(),
        Mode::Json => match std::io::stderr().as_fd().try_clone_to_owned() {
            Ok(fd) => Stdio::from(fd),
            Err(_) => Stdio::null(),
        },
        Mode::Quiet => Stdio::null(),
    }
}
