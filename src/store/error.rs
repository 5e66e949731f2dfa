//! The store's one error: a file that could not be read or written, or
//! one whose content is not what its name says.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    #[error("cannot write the snapshot store at `{}`: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("snapshot store object `{}` is corrupt (its SHA-256 is {actual}); refusing to load it", path.display())]
    CorruptObject { path: PathBuf, actual: String },
    #[error("snapshot manifest `{}` is corrupt: {detail}", path.display())]
    CorruptManifest { path: PathBuf, detail: String },
}
