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
//! it goes when the process does, however it ends. A run that ends in good
//! order removes its file while it still holds the lock; one that opened
//! the file before that and locks it after finds the name no longer leads
//! to it, and opens the name again (so the folder does not grow by a file
//! per name ever used; a run that was killed leaves its file, which the
//! next run of that name takes over).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The held name; dropping it lets the name go and removes its file.
#[derive(Debug)]
pub struct NameLock {
    file: File,
    path: PathBuf,
}

impl Drop for NameLock {
    fn drop(&mut self) {
        // Removed while still locked (the file closes after this): whoever
        // locks it next finds it no longer named, and opens the name anew.
        if still_named(&self.path, &self.file) {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::debug!("cannot remove {}: {e}", self.path.display());
            }
        }
    }
}

/// How many times a run opens a name's file again when the file it locked
/// was removed meanwhile (its holder ended between the open and the lock).
const REOPENS: usize = 8;

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
    take_in(&folder(), name)
}

fn take_in(dir: &Path, name: &str) -> Result<Option<NameLock>, NameLockError> {
    let path = dir.join(file_name(name));
    for _ in 0..REOPENS {
        let file = match open(dir, &path) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!("cannot hold the name `{name}` in {}: {e}", dir.display());
                return Ok(None);
            }
        };
        match file.try_lock() {
            Ok(()) if still_named(&path, &file) => return Ok(Some(mark(file, path))),
            // Its holder removed it between our open and our lock.
            Ok(()) => continue,
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(NameLockError::Held {
                    name: name.to_owned(),
                    pid: holder(&file),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => {
                tracing::debug!("cannot lock the name `{name}`: {e}");
                return Ok(None);
            }
        }
    }
    tracing::debug!("the lock file of `{name}` kept going away; the name goes unheld");
    Ok(None)
}

/// Whether `path` still names the open `file` (the same inode).
fn still_named(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(named), Ok(open)) => named.dev() == open.dev() && named.ino() == open.ino(),
        _ => false,
    }
}

/// Opens (making it, and its shared folder, if need be) the lock file at
/// `path` in `dir`.
fn open(dir: &Path, path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::PermissionsExt;
    if !dir.is_dir() {
        std::fs::create_dir_all(dir)?;
        // Every user's runs share it; each removes only its own files.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path);
    match file {
        Ok(f) => {
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666));
            Ok(f)
        }
        // Another user's file: reading is enough to lock it (removing it
        // at the end is not, in the sticky folder: it stays).
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => File::open(path),
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
fn mark(mut file: File, path: PathBuf) -> NameLock {
    let pid = std::process::id().to_string();
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()));
    if let Err(e) = written {
        tracing::debug!("cannot write this process's id into the name's lock: {e}");
    }
    NameLock { file, path }
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
    fn a_name_let_go_leaves_no_file_and_a_late_locker_opens_it_anew() {
        let dir = tempfile::tempdir().expect("tmp");
        let name = "late@host";
        let path = dir.path().join(file_name(name));
        let first = take_in(dir.path(), name)
            .expect("free")
            .expect("a lock file");
        assert!(path.exists());
        // A second run opened the file, then the first ended before the
        // second could lock it.
        let late = open(dir.path(), &path).expect("open");
        drop(first);
        assert!(!path.exists(), "the file of a name let go stays");
        late.try_lock().expect("the old file is free");
        assert!(!still_named(&path, &late));
        // A third run makes a new file, which the late one's lock does not
        // hold.
        let third = take_in(dir.path(), name)
            .expect("free")
            .expect("a lock file");
        assert!(still_named(&path, &third.file));
        match take_in(dir.path(), name) {
            Err(NameLockError::Held { .. }) => {}
            other => panic!("taken twice: {other:?}"),
        }
        drop(third);
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }

    #[test]
    fn odd_characters_do_not_leave_the_folder() {
        assert_eq!(file_name("a/../b@h"), "a%2F..%2Fb@h");
    }
}
