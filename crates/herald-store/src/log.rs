//! A stream's log on disk: a directory of append-only segment files.
//!
//! Segments are named by their base sequence and ordered by it; the highest
//! one is the *active* segment, the only one appended to. When the active
//! segment has reached [`LogOptions::max_segment_bytes`], the next message
//! seals it (fsync, then an index file of its records) and starts a new
//! segment whose base is that message's sequence. Retention removes whole
//! sealed segments ([`FileLog::remove_segments_before`]).
//!
//! [`FileLog::open`] is also recovery: sealed segments are read through their
//! index files (no payloads read); the active segment, and any sealed one
//! whose index is missing or does not match, is scanned record by record
//! with CRC checks, and cut at the first torn or corrupt record. What was cut
//! or rebuilt is listed in the [`RecoveryReport`] and logged at `warn`.
//!
//! The byte layouts of segment and index files are described in
//! `segment.rs`.

mod recover;
#[cfg(test)]
mod tests;

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::StoreError;
use crate::record::{Location, Record, RecoveredRecord, StoredMessage};
use crate::segment::codec::{self, Head};
use crate::segment::index::{self, IndexBuilder};
use crate::segment::{self, FILE_HEADER_LEN, Segment};
use recover::{Recovery, list};

/// How a [`FileLog`] lays out its files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// Size at which the active segment is sealed and a new one started (on
    /// the next message). A segment can exceed it by one append batch.
    pub max_segment_bytes: u64,
    /// Never split one append across two segments (two writes): roll before
    /// it instead, and let a segment end an append past its size. A
    /// replica's round and its applied mark are one append, so a crash
    /// leaves both or neither.
    pub whole_appends: bool,
}

impl Default for LogOptions {
    /// 64 MiB segments, appends split where a segment fills.
    fn default() -> Self {
        Self {
            max_segment_bytes: 64 << 20,
            whole_appends: false,
        }
    }
}

/// What recovery found when a log was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files in the log.
    pub segments: usize,
    /// Records recovered.
    pub records: u64,
    /// Bytes cut off torn or corrupt segment tails.
    pub truncated_bytes: u64,
    /// Index files that were missing or did not match their segment, and
    /// were rebuilt by scanning it.
    pub rebuilt_indexes: usize,
    /// One line per thing dropped or repaired, naming the file and offset.
    pub problems: Vec<String>,
}

/// What a log holds, as recovered by [`FileLog::open`].
#[derive(Debug)]
pub struct LogState {
    /// Every record of every segment, in log order.
    pub records: Vec<RecoveredRecord>,
    /// Base sequence of the active segment.
    pub active_base: u64,
    /// What recovery found.
    pub report: RecoveryReport,
}

/// A stream's log: append, read back, drop old segments.
///
/// Reads take `&self` and use positional reads, so a caller may serve them
/// under a read lock while appends wait for the write lock.
pub struct FileLog {
    dir: PathBuf,
    options: LogOptions,
    /// Sealed segments, by ascending base.
    sealed: Vec<Segment>,
    active: Segment,
    /// Index entries of the active segment, written out when it is sealed.
    active_index: IndexBuilder,
    /// Encoding buffer, reused by every append.
    buf: Vec<u8>,
}

impl Drop for FileLog {
    /// A log closed in order leaves no preallocated zeros behind; one that
    /// crashed leaves them, and recovery reads them as the end of the data.
    fn drop(&mut self) {
        if let Err(e) = self.active.trim() {
            tracing::warn!("trimming {}: {e}", self.active.path.display());
        }
    }
}

impl fmt::Debug for FileLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileLog")
            .field("dir", &self.dir)
            .field("options", &self.options)
            .field("sealed", &self.sealed.len())
            .field("active_base", &self.active.base)
            .field("active_len", &self.active.len)
            .finish_non_exhaustive()
    }
}

/// How far ahead of its data the active segment file is extended.
const PREALLOCATE_BYTES: u64 = 4 << 20;

/// An encoding buffer grown past this by one big batch is not kept: a
/// stream that saw one burst should not hold its memory for good.
const KEEP_BUF_BYTES: usize = 4 << 20;

impl FileLog {
    /// Opens the log in `dir` (creating the directory if needed) and
    /// recovers it. An empty directory gets one empty active segment with
    /// base `first_seq`; otherwise `first_seq` is not used.
    ///
    /// # Errors
    /// I/O errors, and [`StoreError::Corrupt`] for a segment file that is
    /// not a herald segment (unknown magic or version): it is left alone.
    /// Torn or corrupt records are not errors: they are cut off and reported.
    pub fn open(
        dir: &Path,
        first_seq: u64,
        options: LogOptions,
    ) -> Result<(FileLog, LogState), StoreError> {
        fs::create_dir_all(dir).map_err(|e| StoreError::io("create directory", dir, e))?;
        let mut bases = list(dir)?;
        let mut recovery = Recovery {
            dir,
            records: Vec::new(),
            report: RecoveryReport::default(),
        };
        let Some(last) = bases.pop() else {
            let active = Segment::create(dir, first_seq)?;
            return Ok(recovery.finish(options, Vec::new(), active, IndexBuilder::default()));
        };
        let mut sealed = Vec::with_capacity(bases.len());
        for base in bases {
            sealed.push(recovery.sealed(base)?);
        }
        let (active, index) = recovery.active(last)?;
        Ok(recovery.finish(options, sealed, active, index))
    }

    /// Appends `records` in order and returns where each one went. The batch
    /// reaches the file in one write, unless a message in it starts a new
    /// segment: before a message is written, an active segment already
    /// holding `max_segment_bytes` is sealed and a new one started with the
    /// message's sequence as base. Not synced: see [`FileLog::sync`].
    ///
    /// # Errors
    /// A record too large for the format (subject over 64 KiB, record over
    /// 64 MiB) fails the whole batch before anything is written
    /// ([`io::ErrorKind::InvalidInput`]). An I/O error may leave a prefix of
    /// the batch written (when a segment was sealed on the way).
    pub fn append(&mut self, records: &[Record]) -> Result<Vec<Location>, StoreError> {
        let mut heads = Vec::with_capacity(records.len());
        for record in records {
            let head = Head::of(record).map_err(|reason| {
                let err = io::Error::new(io::ErrorKind::InvalidInput, reason);
                StoreError::io("append", &self.active.path, err)
            })?;
            heads.push(head);
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let result = self.append_encoded(records, &heads, &mut buf);
        if buf.capacity() <= KEEP_BUF_BYTES {
            self.buf = buf;
        }
        result
    }

    fn append_encoded(
        &mut self,
        records: &[Record],
        heads: &[Head],
        buf: &mut Vec<u8>,
    ) -> Result<Vec<Location>, StoreError> {
        let mut locations = Vec::with_capacity(records.len());
        let mut mark = self.active_index.mark();
        let mut last_msg = self.active.last_msg;
        for (record, head) in records.iter().zip(heads) {
            if let Record::Message(m) = record {
                let size = self.active.len + buf.len() as u64;
                // A segment holding only its header is never sealed, and the
                // new base must be above the old one: names are unique and
                // ordered. With `whole_appends`, only before the batch.
                if (buf.is_empty() || !self.options.whole_appends)
                    && size >= self.options.max_segment_bytes
                    && size > FILE_HEADER_LEN
                    && m.seq > self.active.base
                {
                    self.write(buf, mark, last_msg)?;
                    self.roll(m.seq)?;
                    mark = self.active_index.mark();
                    last_msg = None;
                }
                last_msg = last_msg.max(Some(m.seq));
            }
            let offset = self.active.len + buf.len() as u64;
            codec::encode(record, head, buf);
            self.active_index
                .push(head, offset, &codec::subject_of(record));
            locations.push(Location {
                segment: self.active.base,
                offset,
                len: head.len,
            });
        }
        self.write(buf, mark, last_msg)?;
        Ok(locations)
    }

    /// Writes the encoded records in `buf` at the end of the active segment.
    fn write(
        &mut self,
        buf: &mut Vec<u8>,
        mark: index::Mark,
        last_msg: Option<u64>,
    ) -> Result<(), StoreError> {
        if buf.is_empty() {
            return Ok(());
        }
        let active = &mut self.active;
        active.reserve(active.len + buf.len() as u64, PREALLOCATE_BYTES)?;
        if let Err(e) = active.file.write_all_at(buf, active.len) {
            self.active_index.rollback(mark);
            // Best effort: positional writes start at `len` anyway, so the
            // next append overwrites a partial write; trimming it now only
            // spares recovery from cutting it if nothing follows.
            let _ = active.trim();
            return Err(StoreError::io("write", &active.path, e));
        }
        active.len += buf.len() as u64;
        active.last_msg = last_msg;
        buf.clear();
        Ok(())
    }

    /// Seals the active segment and starts segment `base`.
    fn roll(&mut self, base: u64) -> Result<(), StoreError> {
        self.active.trim()?;
        let active = &self.active;
        active
            .file
            .sync_all()
            .map_err(|e| StoreError::io("fsync", &active.path, e))?;
        let index_path = segment::index_path(&self.dir, active.base);
        self.active_index.write(&index_path, active.len)?;
        let next = Segment::create(&self.dir, base)?;
        self.sealed.push(std::mem::replace(&mut self.active, next));
        self.active_index.clear();
        Ok(())
    }

    /// Flushes the active segment to disk (fdatasync). Sealed segments were
    /// synced when sealed.
    ///
    /// # Errors
    /// The I/O error of the sync.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.active
            .file
            .sync_data()
            .map_err(|e| StoreError::io("fsync", &self.active.path, e))
    }

    /// The active segment's file, for a caller that syncs it without holding
    /// its own lock (group commit). If the segment is sealed meanwhile, the
    /// seal has synced it already.
    pub fn active_file(&self) -> Arc<File> {
        Arc::clone(&self.active.file)
    }

    /// Reads back the message at `location`, verifying its CRC.
    ///
    /// # Errors
    /// [`StoreError::Gone`] if its segment was removed;
    /// [`StoreError::Corrupt`] if the bytes there fail their checks or are
    /// not a message record; an I/O error from the read.
    pub fn read(&self, location: &Location) -> Result<StoredMessage, StoreError> {
        self.segment(location.segment)
            .ok_or(StoreError::Gone)?
            .read(location)
    }

    /// Reads the message at `location` and those after it in its segment,
    /// up to about `window` bytes, with one read.
    ///
    /// # Errors
    /// As [`read`](Self::read), for the first message.
    pub fn read_ahead(
        &self,
        location: &Location,
        window: u64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.segment(location.segment)
            .ok_or(StoreError::Gone)?
            .read_ahead(location, window)
    }

    fn segment(&self, base: u64) -> Option<&Segment> {
        if base == self.active.base {
            return Some(&self.active);
        }
        let i = self.sealed.binary_search_by_key(&base, |s| s.base).ok()?;
        self.sealed.get(i)
    }

    /// Deletes, oldest first, every sealed segment (never the active one)
    /// whose messages all have sequences below `first_live_seq`, or which
    /// holds no message and lies wholly before it, with its index file.
    /// Returns the bytes freed.
    ///
    /// # Errors
    /// An I/O error from removing a file; segments removed before it stay
    /// removed.
    pub fn remove_segments_before(&mut self, first_live_seq: u64) -> Result<u64, StoreError> {
        let mut dead = 0;
        for (i, seg) in self.sealed.iter().enumerate() {
            let next_base = self.sealed.get(i + 1).map_or(self.active.base, |s| s.base);
            let below = match seg.last_msg {
                Some(last) => last < first_live_seq,
                // Any message it removed came before the next segment's base.
                None => next_base <= first_live_seq,
            };
            if !below {
                break;
            }
            dead += 1;
        }
        self.remove_oldest(dead)
    }

    /// Deletes the `n` oldest sealed segments, oldest first.
    fn remove_oldest(&mut self, n: usize) -> Result<u64, StoreError> {
        let mut freed = 0;
        let mut removed = 0;
        let mut result = Ok(());
        for seg in &self.sealed[..n] {
            if let Err(e) = seg.remove_files(&self.dir) {
                result = Err(e);
                break;
            }
            freed += seg.len;
            removed += 1;
        }
        self.sealed.drain(..removed);
        if removed > 0 {
            segment::sync_dir(&self.dir)?;
        }
        result.map(|()| freed)
    }

    /// Purges everything: deletes every segment and index file and starts
    /// an empty active segment with base `next_seq`.
    ///
    /// Crash-safe: a `Purge` of everything below `next_seq` is appended and
    /// synced first, and segments are deleted oldest first, so a crash part
    /// way leaves either that purge record in the log or nothing of the old
    /// log. (A crash after the last old segment is deleted but before the
    /// new one exists leaves an empty directory.)
    ///
    /// # Errors
    /// I/O errors; an [`io::ErrorKind::InvalidInput`] one if `next_seq` is
    /// below the active segment's base.
    pub fn reset(&mut self, next_seq: u64) -> Result<(), StoreError> {
        if next_seq < self.active.base {
            let reason = format!("reset to {next_seq}, below base {}", self.active.base);
            let err = io::Error::new(io::ErrorKind::InvalidInput, reason);
            return Err(StoreError::io("reset", &self.active.path, err));
        }
        self.append(&[Record::Purge {
            below: next_seq,
            filter: None,
        }])?;
        self.sync()?;
        if next_seq == self.active.base {
            // The active segment holds no message (sealed bases are message
            // sequences below it), and a new one would need its name: empty
            // it in place, after the older segments are gone.
            self.remove_oldest(self.sealed.len())?;
            self.active.truncate(FILE_HEADER_LEN)?;
            self.active.last_msg = None;
        } else {
            let next = Segment::create(&self.dir, next_seq)?;
            self.sealed.push(std::mem::replace(&mut self.active, next));
            self.remove_oldest(self.sealed.len())?;
        }
        self.active_index.clear();
        Ok(())
    }

    /// Gives back the active segment's preallocated tail (an orderly stop).
    ///
    /// # Errors
    /// The truncation failed.
    pub fn trim(&mut self) -> Result<(), StoreError> {
        self.active.trim()
    }

    /// Bytes of all segment files (index files not counted).
    pub fn disk_bytes(&self) -> u64 {
        self.sealed.iter().map(|s| s.len).sum::<u64>() + self.active.len
    }

    /// Deletes the log's directory and everything in it.
    ///
    /// # Errors
    /// The I/O error of the removal.
    pub fn destroy(self) -> Result<(), StoreError> {
        let dir = self.dir.clone();
        drop(self);
        fs::remove_dir_all(&dir).map_err(|e| StoreError::io("remove directory", &dir, e))
    }
}
