//! Files as the store writes them: under a temporary name, synced and
//! renamed, its folder synced; and the temporaries of writers that died.

use super::error::SnapshotError;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

pub(super) fn name_in(path: &Path, set: &BTreeSet<String>) -> bool {
    path.file_name()
        .is_some_and(|n| set.contains(n.to_string_lossy().as_ref()))
}

pub(super) fn files_in(dir: &Path) -> Result<Vec<PathBuf>, SnapshotError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SnapshotError::Read {
                path: dir.to_owned(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| SnapshotError::Read {
            path: dir.to_owned(),
            source,
        })?;
        out.push(entry.path());
    }
    Ok(out)
}

pub(super) fn remove(path: &Path) -> Result<(), SnapshotError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(SnapshotError::Write {
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Removes the temporary files ([`write_atomic`]'s `.tmp-<pid>-<name>`) of
/// writers that are gone. Those of a live process are left alone: a
/// `watch` remembering a node's port writes without the store's lock while
/// a `deploy` takes it.
pub(super) fn remove_temporaries(dir: &Path) {
    for path in files_in(dir).unwrap_or_default() {
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let Some(rest) = name.strip_prefix(".tmp-") else {
            continue;
        };
        let writer = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if !writer.is_some_and(process_lives) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Whether a process `pid` exists (signal 0 checks without sending).
pub(super) fn process_lives(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let sent = unsafe { libc::kill(pid, 0) };
    sent == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

pub(super) fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> Result<(), SnapshotError> {
    let fail = |source| SnapshotError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let mut file = std::fs::File::create(&tmp).map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    if durable {
        file.sync_all().map_err(fail)?;
    }
    drop(file);
    std::fs::rename(&tmp, path).map_err(fail)?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` in place and syncs the file.
pub(super) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    let fail = |source| SnapshotError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::create(path).map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)
}

/// Makes a folder's entries (a rename, a removal) durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), SnapshotError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| SnapshotError::Write {
            path: dir.to_owned(),
            source,
        })
}
