//! One process per data directory: an exclusive OS file lock on
//! `herald.lock`, held for as long as the [`DataDirLock`] lives.
//!
//! Two processes appending to the same segment files would corrupt each
//! other's streams, so the second one must not start. The lock is the
//! kernel's (`flock` on Unix), not the file's existence: it goes away with
//! the process that held it, so a lock file left by a killed process never
//! blocks a restart. The holder writes its PID into the file, so the one
//! refused can say who holds the directory.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::StoreError;

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "herald.lock";

/// An exclusive hold on a data directory; released on drop.
#[derive(Debug)]
pub struct DataDirLock {
    /// Kept open: closing it releases the lock.
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Takes the directory's lock without waiting.
    ///
    /// # Errors
    /// [`StoreError::Locked`] when another process (or another server in
    /// this one) holds it; [`StoreError::Io`] when the lock file cannot be
    /// opened or written.
    pub fn acquire(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::io("open", &path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    dir: dir.to_owned(),
                    pid: read_pid(&mut file),
                });
            }
            Err(TryLockError::Error(e)) => return Err(StoreError::io("lock", &path, e)),
        }
        let pid = std::process::id();
        let written = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{pid}"));
        written.map_err(|e| StoreError::io("write", &path, e))?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The PID the holder wrote, if the file has one.
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_hold_is_refused_with_the_holders_pid_and_freed_on_drop() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = DataDirLock::acquire(dir.path()).expect("first hold");
        match DataDirLock::acquire(dir.path()) {
            Err(StoreError::Locked { dir: locked, pid }) => {
                assert_eq!(locked, dir.path());
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        DataDirLock::acquire(dir.path()).expect("free again after drop");
    }

    #[test]
    fn a_stale_lock_file_does_not_block() {
        let dir = tempfile::tempdir().expect("temp dir");
        // What a killed process leaves: the file with its PID, no lock.
        std::fs::write(dir.path().join(LOCK_FILE), "999999\n").expect("write");
        let lock = DataDirLock::acquire(dir.path()).expect("stale file is no hold");
        let text = std::fs::read_to_string(lock.path()).expect("read");
        assert_eq!(text.trim(), std::process::id().to_string());
    }
}
