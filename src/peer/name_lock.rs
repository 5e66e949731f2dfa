//! This tool's node name, held on this machine by a lock file when no
//! EPMD holds it: with `--dist-port`, under TLS, or where no EPMD can be
//! had. A node that hears a second connection from a name it is connected
//! to asks whether the first is still alive, and the answer drops it: two
//! runs under one name would knock each other off a node, each getting
//! past the other's deploy lock. EPMD refuses a name registered twice; this
//! lock does the same for runs that register nowhere.
//!
//! The files are in one folder of the machine's temporary directory,
//! shared by every user (sticky, as `/tmp` is), one per name, each holding
//! its run's process id for the refusal's message. The lock is `flock`'s:
//! it goes when the process does, however it ends.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;

/// The held name; dropping it lets the name go.
#[derive(Debug)]
pub struct NameLock {
    _file: File,
}

/// Why the name could not be held.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NameLockError {
    #[error(
        "another hotswap-node on this machine runs as `{name}`{} and no EPMD holds the name: a second connection under it would drop the first's; wait for it, or give this run a name of its own with `--name`",
        by_pid(pid)
    )]
    Held { name: String, pid: Option<u32> },
}

fn by_pid(pid: &Option<u32>) -> String {
    match pid {
        Some(pid) => format!(" (pid {pid})"),
        None => String::new(),
    }
}

/// The folder of the lock files.
fn folder() -> PathBuf {
    std::env::temp_dir().join("hotswap-node.names")
}

/// Holds `name` (`alive@host`) for this process. `Ok(None)` when no lock
/// file can be made here (the name then goes unheld, as without this
/// module); an error only when another process holds the name.
pub fn take(name: &str) -> Result<Option<NameLock>, NameLockError> {
    let dir = folder();
    let file = match open(&dir, name) {
        Ok(f) => f,
        Err(e) => {
            tracing::debug!("cannot hold the name `{name}` in {}: {e}", dir.display());
            return Ok(None);
        }
    };
    match file.try_lock() {
        Ok(()) => Ok(Some(mark(file))),
        Err(std::fs::TryLockError::WouldBlock) => Err(NameLockError::Held {
            name: name.to_owned(),
            pid: holder(&file),
        }),
        Err(std::fs::TryLockError::Error(e)) => {
            tracing::debug!("cannot lock the name `{name}`: {e}");
            Ok(None)
        }
    }
}

/// Opens (making it, and its shared folder, if need be) the lock file of
/// `name` in `dir`.
fn open(dir: &std::path::Path, name: &str) -> std::io::Result<File> {
    use std::os::unix::fs::PermissionsExt;
    if !dir.is_dir() {
        std::fs::create_dir_all(dir)?;
        // Every user's runs share it; each removes only its own files.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777))?;
    }
    let path = dir.join(file_name(name));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path);
    match file {
        Ok(f) => {
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666));
            Ok(f)
        }
        // Another user's file: reading is enough to lock it.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => File::open(&path),
        Err(e) => Err(e),
    }
}

/// A node name as a file name: anything but letters, digits, `_`, `-`,
/// `.` and `@` as `%XX`.
fn file_name(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'@' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Writes our process id into the held file, for a refused run to name.
fn mark(mut file: File) -> NameLock {
    let pid = std::process::id().to_string();
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()));
    if let Err(e) = written {
        tracing::debug!("cannot write this process's id into the name's lock: {e}");
    }
    NameLock { _file: file }
}

/// The process id the holder wrote, if it can be read.
fn holder(mut file: &File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_held_once_and_let_go_with_its_lock() {
        let name = format!("name_lock_test_{}@host", std::process::id());
        let held = take(&name).expect("free").expect("a lock file");
        // flock is per open file: a second open in this process conflicts
        // as another process's would.
        match take(&name) {
            Err(NameLockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("taken twice: {other:?}"),
        }
        drop(held);
        assert!(take(&name).expect("free again").is_some());
    }

    #[test]
    fn odd_characters_do_not_leave_the_folder() {
        assert_eq!(file_name("a/../b@h"), "a%2F..%2Fb@h");
    }
}
