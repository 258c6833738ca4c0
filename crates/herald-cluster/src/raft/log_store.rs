//! A Raft group's log on disk: one append-only file of entries, the vote
//! and the purge point beside it.
//!
//! Each entry is `len: u32 LE | crc32c: u32 LE | postcard bytes`. Opening
//! scans the file and cuts a torn tail (a crash mid-write leaves at most
//! one partial entry, never acked: the entry is acked only once written).
//! Memory holds each live entry's offset and the most recent entries
//! themselves; older ones are read back from the file when a lagging
//! follower needs them. Purged entries are dropped from memory at once and
//! from the file when they are most of it (rewritten, then renamed).

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{LogId, OptionalSend, StorageError, StorageIOError, Vote};
use parking_lot::Mutex;

use super::{Entry, NodeId, TypeConfig};

/// Entries kept in memory beyond those a snapshot has not covered.
const CACHED: usize = 4096;

/// One group's log; cheap to clone (readers share it).
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    file: File,
    /// Bytes of the file that hold whole entries.
    len: u64,
    /// Each live entry: its index, offset and length in the file.
    offsets: VecDeque<(u64, u64, u32)>,
    /// The newest entries, by index.
    cache: BTreeMap<u64, Entry>,
    last_purged: Option<LogId<NodeId>>,
    /// Bytes at the front of the file that only purged entries use.
    dead: u64,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    fsync: bool,
}

fn io_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_logs(&std::io::Error::other(e.to_string())).into()
}

impl LogStore {
    /// Opens (or creates) the log in `dir`. With `fsync`, appends and votes
    /// reach the disk before they count; without, they reach the kernel
    /// (safe against a process crash, as the stream store's interval policy).
    ///
    /// # Errors
    /// The directory or file cannot be read or written.
    pub fn open(dir: &Path, fsync: bool) -> std::io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("log");
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let last_purged: Option<LogId<NodeId>> = read_json(&dir.join("purged"))?;
        let vote = read_json(&dir.join("vote"))?;
        let committed = read_json(&dir.join("committed"))?;
        let mut offsets = VecDeque::new();
        let mut cache = BTreeMap::new();
        let mut at = 0usize;
        let mut dead = 0u64;
        while let Some((entry, len)) = decode(&bytes[at..]) {
            let index = entry.log_id.index;
            if last_purged.is_some_and(|p| index <= p.index) {
                dead = (at + len) as u64;
            } else {
                offsets.push_back((index, at as u64, len as u32));
                cache.insert(index, entry);
                if cache.len() > CACHED {
                    cache.pop_first();
                }
            }
            at += len;
        }
        if at < bytes.len() {
            tracing::warn!(log = %path.display(), cut = bytes.len() - at, "raft log: torn tail cut");
            file.set_len(at as u64)?;
        }
        Ok(LogStore {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_owned(),
                file,
                len: at as u64,
                offsets,
                cache,
                last_purged,
                dead,
                vote,
                committed,
                fsync,
            })),
        })
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces the file at `path` with `value` as JSON, atomically.
pub(crate) fn write_json<T: serde::Serialize>(
    path: &Path,
    value: &T,
) -> Result<(), StorageError<NodeId>> {
    let bytes = serde_json::to_vec(value).map_err(io_err)?;
    herald_store::write_atomic(path, &bytes).map_err(io_err)
}

/// One entry from the front of `bytes`, and its length; `None` when what
/// is there is not a whole, intact entry.
fn decode(bytes: &[u8]) -> Option<(Entry, usize)> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    let body = bytes.get(8..8 + len)?;
    if crc32c::crc32c(body) != crc {
        return None;
    }
    Some((postcard::from_bytes(body).ok()?, 8 + len))
}

/// Appends `entry` to `out`, encoded in place (no buffer of its own).
fn encode(entry: &Entry, out: &mut Vec<u8>) -> Result<u32, StorageError<NodeId>> {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    let mut body = std::mem::take(out);
    body = postcard::to_extend(entry, body).map_err(io_err)?;
    *out = body;
    let len = out.len() - start - 8;
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok((len + 8) as u32)
}

impl Inner {
    fn entry(&self, index: u64) -> Result<Option<Entry>, StorageError<NodeId>> {
        if let Some(e) = self.cache.get(&index) {
            return Ok(Some(e.clone()));
        }
        let Some(first) = self.offsets.front().map(|o| o.0) else {
            return Ok(None);
        };
        let Some(&(_, offset, len)) = index
            .checked_sub(first)
            .and_then(|i| self.offsets.get(usize::try_from(i).ok()?))
        else {
            return Ok(None);
        };
        let mut buf = vec![0; len as usize];
        self.file.read_exact_at(&mut buf, offset).map_err(io_err)?;
        decode(&buf)
            .map(|(e, _)| Some(e))
            .ok_or_else(|| io_err(format!("raft log entry {index} is damaged")))
    }

    fn last_log_id(&self) -> Option<LogId<NodeId>> {
        self.cache
            .last_key_value()
            .map(|(_, e)| e.log_id)
            .or(self.last_purged)
    }

    /// Rewrites the file without the purged front once that is most of it.
    fn compact(&mut self) -> Result<(), StorageError<NodeId>> {
        if self.dead < 64 << 20 || self.dead < self.len / 2 {
            return Ok(());
        }
        let tmp = self.dir.join("log.tmp");
        let mut out = File::create(&tmp).map_err(io_err)?;
        let mut buf = vec![0; (self.len - self.dead) as usize];
        self.file
            .read_exact_at(&mut buf, self.dead)
            .map_err(io_err)?;
        out.write_all(&buf).map_err(io_err)?;
        out.sync_data().map_err(io_err)?;
        std::fs::rename(&tmp, self.dir.join("log")).map_err(io_err)?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(self.dir.join("log"))
            .map_err(io_err)?;
        for o in &mut self.offsets {
            o.1 -= self.dead;
        }
        self.len -= self.dead;
        self.dead = 0;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        let inner = self.inner.lock();
        let (Some(first), Some(last)) = (
            inner.offsets.front().map(|o| o.0),
            inner.offsets.back().map(|o| o.0),
        ) else {
            return Ok(Vec::new());
        };
        let start = match range.start_bound() {
            std::ops::Bound::Included(&s) => s,
            std::ops::Bound::Excluded(&s) => s + 1,
            std::ops::Bound::Unbounded => first,
        }
        .max(first);
        let end = match range.end_bound() {
            std::ops::Bound::Included(&e) => e,
            std::ops::Bound::Excluded(&e) => e.saturating_sub(1),
            std::ops::Bound::Unbounded => last,
        }
        .min(last);
        let mut out = Vec::new();
        if start > end || matches!(range.end_bound(), std::ops::Bound::Excluded(&0)) {
            return Ok(out);
        }
        for index in start..=end {
            match inner.entry(index)? {
                Some(e) => out.push(e),
                None => break,
            }
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.inner.lock();
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: inner.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock();
        write_json(&inner.dir.join("vote"), vote)?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        // Kept in memory: the state machines persist their own applied
        // position, which is what recovery needs.
        self.inner.lock().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.inner.lock();
        let mut buf = Vec::new();
        let mut added = Vec::new();
        for entry in entries {
            let len = encode(&entry, &mut buf)?;
            added.push((entry, len));
        }
        let written = inner.file.write_all(&buf).and_then(|()| {
            if inner.fsync {
                inner.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = &written {
            tracing::error!("raft log append failed: {e}");
        }
        let mut offset = inner.len;
        for (entry, len) in added {
            let index = entry.log_id.index;
            inner.offsets.push_back((index, offset, len));
            inner.cache.insert(index, entry);
            offset += u64::from(len);
        }
        inner.len = offset;
        while inner.cache.len() > CACHED {
            inner.cache.pop_first();
        }
        drop(inner);
        callback.log_io_completed(written);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock();
        let Some(pos) = inner.offsets.iter().position(|o| o.0 >= log_id.index) else {
            return Ok(());
        };
        let cut = inner.offsets[pos].1;
        inner.offsets.truncate(pos);
        inner.cache.retain(|&i, _| i < log_id.index);
        inner.file.set_len(cut).map_err(io_err)?;
        inner.len = cut;
        // Entries the cache dropped that are live again.
        let first_cached = inner.cache.first_key_value().map(|(i, _)| *i);
        if first_cached.is_none()
            && let Some(&(index, _, _)) = inner.offsets.back()
            && let Some(e) = inner.entry(index)?
        {
            inner.cache.insert(index, e);
        }
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock();
        write_json(&inner.dir.join("purged"), &log_id)?;
        inner.last_purged = Some(log_id);
        while let Some(&(index, offset, len)) = inner.offsets.front() {
            if index > log_id.index {
                break;
            }
            inner.offsets.pop_front();
            inner.cache.remove(&index);
            inner.dead = offset + u64::from(len);
        }
        inner.compact()
    }
}
