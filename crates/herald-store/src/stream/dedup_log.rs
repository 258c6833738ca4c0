//! A replicated stream's duplicate window on disk.
//!
//! Replicas decide duplicates when they apply a round, each from its own
//! table of message ids, so every replica's table must hold the same ids:
//! those of every message stored within the window, removed since or not.
//! Rebuilt from the live messages alone (as a single node does), a restarted
//! replica would forget the ids of removed ones and store a retried publish
//! the others call a duplicate — and its sequences would part from theirs.
//! So a replicated stream appends every stored id to `dedup.log` beside its
//! segments (`seq time id` per line, after the round's append, synced with
//! it), rebuilds its table from that file plus its live messages, and
//! rewrites the file with only the window when it has grown well past it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::StoreError;

/// One id: (id, seq, time).
pub(crate) type Entry = (String, u64, i64);

/// Lines written past which the file is rewritten, beyond twice the window's.
const SLACK: u64 = 10_000;

#[derive(Debug)]
pub(crate) struct DedupLog {
    path: PathBuf,
    file: Arc<File>,
    /// Lines in the file.
    lines: u64,
}

impl DedupLog {
    /// Opens (or creates) the file in `dir`; what it holds, in file order.
    /// A torn last line (a crash mid-write) is cut off.
    pub(crate) fn open(dir: &Path) -> Result<(Self, Vec<Entry>), StoreError> {
        let path = dir.join("dedup.log");
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(StoreError::io("read", &path, e)),
        };
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let entries: Vec<Entry> = String::from_utf8_lossy(&bytes[..whole])
            .lines()
            .filter_map(parse)
            .collect();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| StoreError::io("open", &path, e))?;
        if whole < bytes.len() {
            file.set_len(whole as u64)
                .map_err(|e| StoreError::io("truncate", &path, e))?;
        }
        let lines = entries.len() as u64;
        let file = Arc::new(file);
        Ok((Self { path, file, lines }, entries))
    }

    /// Appends the ids a round stored.
    pub(crate) fn append(&mut self, entries: &[(&str, u64, i64)]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let text = lines(entries.iter().map(|(id, seq, time)| (*id, *seq, *time)));
        (&*self.file)
            .write_all(text.as_bytes())
            .map_err(|e| StoreError::io("write", &self.path, e))?;
        self.lines += entries.len() as u64;
        Ok(())
    }

    /// Whether the file holds far more than the `live` ids of the window.
    pub(crate) fn wants_rewrite(&self, live: usize) -> bool {
        self.lines > 2 * live as u64 + SLACK
    }

    /// Replaces the file with `entries` (the window's ids), atomically.
    pub(crate) fn rewrite(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        let text = lines(
            entries
                .iter()
                .map(|(id, seq, time)| (id.as_str(), *seq, *time)),
        );
        crate::state_file::write_atomic(&self.path, text.as_bytes())?;
        self.file = Arc::new(
            std::fs::OpenOptions::new()
                .append(true)
                .open(&self.path)
                .map_err(|e| StoreError::io("open", &self.path, e))?,
        );
        self.lines = entries.len() as u64;
        Ok(())
    }

    /// The file, to sync with the stream's segment.
    pub(crate) fn file(&self) -> Arc<File> {
        Arc::clone(&self.file)
    }
}

/// `seq time id` lines.
fn lines<'a>(entries: impl Iterator<Item = (&'a str, u64, i64)>) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    for (id, seq, time) in entries {
        let _ = writeln!(text, "{seq} {time} {id}");
    }
    text
}

fn parse(line: &str) -> Option<Entry> {
    let mut parts = line.splitn(3, ' ');
    let seq = parts.next()?.parse().ok()?;
    let time = parts.next()?.parse().ok()?;
    let id = parts.next()?;
    (!id.is_empty()).then(|| (id.to_owned(), seq, time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_a_torn_line_is_left_out() {
        let dir = tempfile::tempdir().expect("dir");
        let (mut log, none) = DedupLog::open(dir.path()).expect("open");
        assert!(none.is_empty());
        log.append(&[("a b", 1, 10), ("c", 2, 20)]).expect("append");
        drop(log);
        let path = dir.path().join("dedup.log");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("file");
        file.write_all(b"3 30 ab").expect("torn");
        let (mut log, entries) = DedupLog::open(dir.path()).expect("reopen");
        assert_eq!(
            entries,
            [("a b".to_owned(), 1, 10), ("c".to_owned(), 2, 20)]
        );
        // What follows starts on a line of its own.
        log.append(&[("d", 4, 40)]).expect("append");
        let (_, entries) = DedupLog::open(dir.path()).expect("reopen");
        assert_eq!(entries.last(), Some(&("d".to_owned(), 4, 40)));
        log.rewrite(&[("c".to_owned(), 2, 20)]).expect("rewrite");
        let (_, entries) = DedupLog::open(dir.path()).expect("reopen");
        assert_eq!(entries, [("c".to_owned(), 2, 20)]);
    }
}
