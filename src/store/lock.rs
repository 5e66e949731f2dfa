//! The store's lock: one run at a time uses the store.

use super::error::SnapshotError;
use super::files::remove_temporaries;
use super::objects::Store;

/// The store's lock, held while a deploy or rollback runs; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: std::fs::File,
}

impl Store {
    /// Takes the store's lock, waiting for another run that holds it
    /// (`waiting` is called once if so), then removes temporary files left
    /// by runs that crashed: whoever holds the lock is the only writer.
    pub fn lock(&self, waiting: impl FnOnce()) -> Result<StoreLock, SnapshotError> {
        let path = self.root().join("lock");
        let fail = |source| SnapshotError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(self.root()).map_err(fail)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(fail)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                waiting();
                file.lock().map_err(fail)?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(fail(e)),
        }
        for dir in ["", "objects", "snapshots", "beliefs"] {
            remove_temporaries(&self.root().join(dir));
        }
        Ok(StoreLock { _file: file })
    }
}
