//! One segment file of a [`FileLog`](crate::log::FileLog), and the on-disk
//! formats of segments and their index files.
//!
//! # Segment file: `<base>.seg`
//!
//! `<base>` is the segment's base sequence, zero-padded to 20 digits
//! (`00000000000000000001.seg`), so names sort in log order. All integers
//! are little-endian.
//!
//! ```text
//! file header (16 bytes)
//!  0       8       12      16
//!  +-------+-------+-------+
//!  | magic |version|reservd|   magic = "HRLD-SEG", version = 1, reserved = 0
//!  +-------+-------+-------+
//! then records back to back, each:
//!  0     4    5     6      8     16     24      28      32
//!  +-----+----+-----+------+-----+------+-------+-------+---------+---------+---------+-------+
//!  | len |kind|flags|subj  | seq | time | hdr   | pay-  | subject | headers | payload | crc32c|
//!  |     |    |     |len   |     |      | len   | load  |         |         |         |       |
//!  | u32 | u8 | u8  | u16  | u64 | i64  | u32   | u32   |         |         |         |  u32  |
//!  +-----+----+-----+------+-----+------+-------+-------+---------+---------+---------+-------+
//! ```
//!
//! - `len` is the whole record, itself and the CRC included: 36 bytes at
//!   least, 64 MiB at most; anything else is corruption.
//! - `kind`: 1 message, 2 delete, 3 purge. `flags` bit 0: a message has a
//!   header block, a purge has a filter (so `Some(empty)` differs from `None`).
//! - Message: `seq`, `time` (ns since the epoch), subject, headers, payload.
//!   Delete: the removed seq in `seq`, everything else empty or 0.
//!   Purge: `below` in `seq`, the filter pattern in the subject field.
//! - The CRC32C covers every byte of the record before it.
//!
//! All lengths sit in the fixed head, so a reader checks the head alone
//! (limits, kind, lengths that add up) before trusting `len` to read more.
//!
//! # Index file: `<base>.idx` (sealed segments only)
//!
//! ```text
//!  0       8       12       16           24      32
//!  +-------+-------+--------+------------+-------+---------+--------+
//!  | magic |version|reserved| segment len| count | entries | crc32c |
//!  +-------+-------+--------+------------+-------+---------+--------+
//!  magic = "HRLD-IDX", version = 1; the CRC covers everything before it.
//! entry:
//!  0    1     2        4     8     16     24       32           40
//!  +----+-----+--------+-----+-----+------+--------+------------+---------+
//!  |kind|flags|subj len| len | seq | time | offset | stored size| subject |
//!  | u8 | u8  |  u16   | u32 | u64 | i64  |  u64   |    u64     |         |
//!  +----+-----+--------+-----+-----+------+--------+------------+---------+
//! ```
//!
//! An index is trusted only if its CRC holds, its `segment len` equals the
//! segment file's length, and its entries tile the file exactly (the first
//! at offset 16, each next one at the previous offset + len).

pub(crate) mod codec;
pub(crate) mod index;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;

use self::codec::{HEAD_LEN, Kind};
use self::index::IndexBuilder;
use crate::error::StoreError;
use crate::record::{Location, RecoveredRecord, StoredMessage};

const MAGIC: &[u8; 8] = b"HRLD-SEG";
const VERSION: u32 = 1;
/// Bytes of the file header; the first record starts here.
pub(crate) const FILE_HEADER_LEN: u64 = 16;

fn file_header() -> [u8; FILE_HEADER_LEN as usize] {
    let mut h = [0; FILE_HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// The path of segment `base`'s file in `dir`.
pub(crate) fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.seg"))
}

/// The path of segment `base`'s index file in `dir`.
pub(crate) fn index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.idx"))
}

/// The base and extension of a file name this module writes, if it is one.
pub(crate) fn parse_name(name: &str) -> Option<(u64, &str)> {
    let (digits, ext) = name.split_once('.')?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, ext))
}

/// Fsyncs a directory, so files created, renamed or removed in it stay so
/// after a power loss.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync directory", dir, e))
}

/// Where and why a scan stopped before the end of a segment.
#[derive(Debug)]
pub(crate) struct Damage {
    pub(crate) offset: u64,
    pub(crate) reason: String,
}

/// An open segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Base sequence: the name, and [`Location::segment`].
    pub(crate) base: u64,
    pub(crate) path: PathBuf,
    /// Shared so a group commit can fsync it without the log's lock.
    pub(crate) file: Arc<File>,
    /// Bytes of the file that hold valid data; appends go here.
    pub(crate) len: u64,
    /// The file's length: the active segment is extended ahead of its data
    /// in steps (zeros after `len`), so that an fdatasync after an append
    /// need not also commit a new file size to the journal.
    pub(crate) allocated: u64,
    /// The highest message seq in it, if it holds a message.
    pub(crate) last_msg: Option<u64>,
}

impl Segment {
    /// Creates segment `base` in `dir` with its file header, durably.
    pub(crate) fn create(dir: &Path, base: u64) -> Result<Segment, StoreError> {
        let path = segment_path(dir, base);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| StoreError::io("create", &path, e))?;
        file.write_all_at(&file_header(), 0)
            .and_then(|()| file.sync_all())
            .map_err(|e| StoreError::io("write header", &path, e))?;
        sync_dir(dir)?;
        Ok(Segment {
            base,
            path,
            file: Arc::new(file),
            len: FILE_HEADER_LEN,
            allocated: FILE_HEADER_LEN,
            last_msg: None,
        })
    }

    /// Opens existing segment `base` in `dir`. Its header is not checked yet
    /// ([`Segment::check_header`]), and `len` is the file's length.
    pub(crate) fn open(dir: &Path, base: u64) -> Result<Segment, StoreError> {
        let path = segment_path(dir, base);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io("open", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StoreError::io("stat", &path, e))?
            .len();
        Ok(Segment {
            base,
            path,
            file: Arc::new(file),
            len,
            allocated: len,
            last_msg: None,
        })
    }

    /// Checks the file header. A file too short to hold one, or whose header
    /// is all zeros, was cut off while being created: it gets a fresh header
    /// and the bytes it had are returned as damage. A header with another
    /// magic or version is an error: that file is not ours to repair.
    pub(crate) fn check_header(&mut self) -> Result<Option<Damage>, StoreError> {
        let mut header = [0; FILE_HEADER_LEN as usize];
        let torn = if self.len < FILE_HEADER_LEN {
            "file header is cut short"
        } else {
            self.file
                .read_exact_at(&mut header, 0)
                .map_err(|e| StoreError::io("read header", &self.path, e))?;
            if header == file_header() {
                return Ok(None);
            }
            if header.iter().any(|&b| b != 0) {
                return Err(StoreError::Corrupt {
                    path: self.path.clone(),
                    offset: 0,
                    reason: "not a herald segment file (unknown magic or version)".to_owned(),
                });
            }
            "file header is zeroed"
        };
        self.truncate(0)?;
        self.file
            .write_all_at(&file_header(), 0)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| StoreError::io("write header", &self.path, e))?;
        self.len = FILE_HEADER_LEN;
        Ok(Some(Damage {
            offset: 0,
            reason: torn.to_owned(),
        }))
    }

    /// Reads and verifies every record after the file header, pushing each
    /// to `out` and `index`. Stops at the first record that is cut short or
    /// fails a check, and returns where and why; `len` is left as the
    /// file's length (the caller decides to truncate).
    pub(crate) fn scan(
        &mut self,
        out: &mut Vec<RecoveredRecord>,
        index: &mut IndexBuilder,
    ) -> Result<Option<Damage>, StoreError> {
        let read_err = |e| StoreError::io("read", &self.path, e);
        let mut reader = BufReader::with_capacity(256 << 10, &*self.file);
        reader
            .seek(SeekFrom::Start(FILE_HEADER_LEN))
            .map_err(read_err)?;
        let mut record = Vec::new();
        let mut offset = FILE_HEADER_LEN;
        while offset < self.len {
            let left = self.len - offset;
            let damage = |reason: String| Ok(Some(Damage { offset, reason }));
            if left < HEAD_LEN as u64 {
                return damage(format!("record head cut short ({left} bytes)"));
            }
            let mut head = [0; HEAD_LEN];
            reader.read_exact(&mut head).map_err(read_err)?;
            if head.iter().all(|&b| b == 0) && zeros_to_end(&mut reader, left - HEAD_LEN as u64)? {
                // The preallocated tail of an active segment: the data ends here.
                self.len = offset;
                return Ok(None);
            }
            let parsed = match codec::parse_head(&head) {
                Ok(parsed) => parsed,
                Err(reason) => return damage(reason),
            };
            if u64::from(parsed.len) > left {
                return damage(format!(
                    "record of {} bytes cut short at {left}",
                    parsed.len
                ));
            }
            record.clear();
            record.extend_from_slice(&head);
            record.resize(parsed.len as usize, 0);
            reader
                .read_exact(&mut record[HEAD_LEN..])
                .map_err(read_err)?;
            if let Err(reason) = codec::check_crc(&record) {
                return damage(reason);
            }
            let location = self.location(offset, parsed.len);
            out.push(codec::recovered(&parsed, &record, location));
            index.push(&parsed, offset, &record[parsed.subject()]);
            if parsed.kind == Kind::Message {
                self.last_msg = self.last_msg.max(Some(parsed.seq));
            }
            offset += u64::from(parsed.len);
        }
        Ok(None)
    }

    /// Extends the file so that `needed` bytes fit, in steps of `step`.
    pub(crate) fn reserve(&mut self, needed: u64, step: u64) -> Result<(), StoreError> {
        if needed <= self.allocated {
            return Ok(());
        }
        let target = needed.max(self.allocated + step);
        self.file
            .set_len(target)
            .map_err(|e| StoreError::io("extend", &self.path, e))?;
        self.allocated = target;
        Ok(())
    }

    /// Gives back the preallocated zeros after the data (before sealing).
    pub(crate) fn trim(&mut self) -> Result<(), StoreError> {
        if self.allocated > self.len {
            self.file
                .set_len(self.len)
                .map_err(|e| StoreError::io("trim", &self.path, e))?;
            self.allocated = self.len;
        }
        Ok(())
    }

    fn location(&self, offset: u64, len: u32) -> Location {
        Location {
            segment: self.base,
            offset,
            len,
        }
    }

    /// Cuts the file to `len` bytes, durably.
    pub(crate) fn truncate(&mut self, len: u64) -> Result<(), StoreError> {
        self.file
            .set_len(len)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| StoreError::io("truncate", &self.path, e))?;
        self.len = len;
        self.allocated = len;
        Ok(())
    }

    /// Reads back and verifies the message record at `location`.
    /// Reads the message at `location` and the message records that follow
    /// it, up to about `window` bytes in one read (a consumer reading in
    /// order then pays one system call per window, not per message).
    pub(crate) fn read_ahead(
        &self,
        location: &Location,
        window: u64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let first = self.read(location)?;
        let start = location.offset + u64::from(location.len);
        let end = self.len.min(start.saturating_add(window));
        let mut out = vec![first];
        if end <= start {
            return Ok(out);
        }
        let mut buf = BytesMut::zeroed((end - start) as usize);
        if self.file.read_exact_at(&mut buf, start).is_err() {
            return Ok(out);
        }
        let buf = buf.freeze();
        let mut pos = 0usize;
        while pos + codec::HEAD_LEN <= buf.len() {
            let Some(head_bytes) = buf[pos..pos + codec::HEAD_LEN].first_chunk() else {
                break;
            };
            let Ok(head) = codec::parse_head(head_bytes) else {
                break;
            };
            let len = head.len as usize;
            if pos + len > buf.len() || codec::check_crc(&buf[pos..pos + len]).is_err() {
                break;
            }
            if head.kind == Kind::Message {
                out.push(codec::message(&head, &buf.slice(pos..pos + len)));
            }
            pos += len;
        }
        Ok(out)
    }

    pub(crate) fn read(&self, location: &Location) -> Result<StoredMessage, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            path: self.path.clone(),
            offset: location.offset,
            reason,
        };
        let end = location.offset.saturating_add(u64::from(location.len));
        if location.offset < FILE_HEADER_LEN || end > self.len {
            return Err(corrupt(format!(
                "location {}+{} outside the segment's {} bytes",
                location.offset, location.len, self.len
            )));
        }
        if location.len > codec::MAX_RECORD_LEN {
            return Err(corrupt(format!("record length {} too large", location.len)));
        }
        let mut buf = BytesMut::zeroed(location.len as usize);
        self.file
            .read_exact_at(&mut buf, location.offset)
            .map_err(|e| StoreError::io("read", &self.path, e))?;
        let head = codec::head_of(&buf).map_err(corrupt)?;
        codec::check_crc(&buf).map_err(corrupt)?;
        if head.kind != Kind::Message {
            return Err(corrupt(format!("a {:?} record, not a message", head.kind)));
        }
        Ok(codec::message(&head, &buf.freeze()))
    }

    /// Deletes the segment's file and its index file, if any.
    pub(crate) fn remove_files(&self, dir: &Path) -> Result<(), StoreError> {
        fs::remove_file(&self.path).map_err(|e| StoreError::io("remove", &self.path, e))?;
        remove_if_exists(&index_path(dir, self.base))
    }
}

/// Deletes a file that may not exist.
pub(crate) fn remove_if_exists(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::io("remove", path, e)),
        _ => Ok(()),
    }
}

/// Whether the next `n` bytes of `reader` are all zeros.
fn zeros_to_end(reader: &mut impl Read, mut n: u64) -> Result<bool, StoreError> {
    let mut chunk = [0u8; 8192];
    while n > 0 {
        let take = n.min(chunk.len() as u64) as usize;
        if reader.read_exact(&mut chunk[..take]).is_err() {
            return Ok(false);
        }
        if chunk[..take].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        n -= take as u64;
    }
    Ok(true)
}
