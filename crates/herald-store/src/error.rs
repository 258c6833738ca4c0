//! The store's error type.

use std::path::PathBuf;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("open", "write", "fsync", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A record on disk failed its checksum or does not parse.
    #[error("corrupt record in {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the record.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// A state file does not parse.
    #[error("bad state file {path}: {reason}")]
    BadState {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The record was removed from the log (its segment is gone).
    #[error("record is no longer in the log")]
    Gone,
    /// Another process holds the data directory.
    #[error(
        "data directory {} is in use by another herald{}",
        dir.display(),
        pid.map(|p| format!(" (PID {p})")).unwrap_or_default()
    )]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// The holder's PID, as it wrote it into the lock file.
        pid: Option<u32>,
    },
}

impl StoreError {
    /// An I/O error with what was done and where.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
