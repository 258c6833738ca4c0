//! A sealed segment's index file (layout in the parent module's docs): what
//! recovery needs of each record, so opening a big sealed segment reads a
//! few bytes per record instead of every payload.
//!
//! The active segment keeps its entries in memory as an [`IndexBuilder`]
//! (filled by appends and by the recovery scan) and writes them out once,
//! when it is sealed. That costs 40 bytes plus the subject per record while
//! the segment is active, and saves re-reading the whole segment at seal time.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use bytes::Bytes;
use herald_core::Subject;

use super::FILE_HEADER_LEN;
use super::codec::{self, FLAG_PRESENT, Head, Kind, MAX_RECORD_LEN, MIN_RECORD_LEN};
use crate::error::StoreError;
use crate::record::{Location, RecoveredRecord};

const MAGIC: &[u8; 8] = b"HRLD-IDX";
const VERSION: u32 = 1;
/// magic, version, reserved, segment length, entry count.
const HEAD_LEN: usize = 32;
/// kind, flags, subject length, record length, seq, time, offset, stored size.
const ENTRY_LEN: usize = 40;
const CRC_LEN: usize = 4;

/// The entries of a segment's index, encoded, in record order.
#[derive(Default)]
pub(crate) struct IndexBuilder {
    entries: Vec<u8>,
    count: u64,
}

/// How far an [`IndexBuilder`] was filled, to undo a failed append.
#[derive(Clone, Copy)]
pub(crate) struct Mark(usize, u64);

impl IndexBuilder {
    /// Adds the entry of the record with head `head` at `offset`.
    pub(crate) fn push(&mut self, head: &Head, offset: u64, subject: &[u8]) {
        let stored_size = if head.kind == Kind::Message {
            head.stored_size()
        } else {
            0
        };
        let e = &mut self.entries;
        e.push(head.kind as u8);
        e.push(head.flags);
        // Fits: subject length was checked against MAX_SUBJECT_LEN (u16::MAX).
        e.extend_from_slice(&(subject.len() as u16).to_le_bytes());
        e.extend_from_slice(&head.len.to_le_bytes());
        e.extend_from_slice(&head.seq.to_le_bytes());
        e.extend_from_slice(&head.time.to_le_bytes());
        e.extend_from_slice(&offset.to_le_bytes());
        e.extend_from_slice(&stored_size.to_le_bytes());
        e.extend_from_slice(subject);
        self.count += 1;
    }

    pub(crate) fn mark(&self) -> Mark {
        Mark(self.entries.len(), self.count)
    }

    pub(crate) fn rollback(&mut self, mark: Mark) {
        self.entries.truncate(mark.0);
        self.count = mark.1;
    }

    pub(crate) fn clear(&mut self) {
        // A fresh buffer rather than `clear`: the old one may be tens of MiB,
        // and the next segment needs it to grow only as it fills.
        self.entries = Vec::new();
        self.count = 0;
    }

    /// Writes the index of a segment `segment_len` bytes long to `path`,
    /// atomically: a temporary file, fsync, rename.
    pub(crate) fn write(&self, path: &Path, segment_len: u64) -> Result<(), StoreError> {
        let mut head = [0u8; HEAD_LEN];
        head[..8].copy_from_slice(MAGIC);
        head[8..12].copy_from_slice(&VERSION.to_le_bytes());
        head[16..24].copy_from_slice(&segment_len.to_le_bytes());
        head[24..32].copy_from_slice(&self.count.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&head), &self.entries);

        let tmp = path.with_extension("idx.tmp");
        let write = || -> io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&head)?;
            file.write_all(&self.entries)?;
            file.write_all(&crc.to_le_bytes())?;
            file.sync_all()
        };
        write().map_err(|e| StoreError::io("write index", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| StoreError::io("rename index", &tmp, e))
    }
}

/// Reads the index at `path` of segment `base`, whose file is `segment_len`
/// bytes long, into `out`. Any reason not to trust it is an `Err` with that
/// reason (and `out` is left as it was): the caller rebuilds it.
pub(crate) fn load(
    path: &Path,
    base: u64,
    segment_len: u64,
    out: &mut Vec<RecoveredRecord>,
) -> Result<(), String> {
    let data = match fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err("missing".to_owned()),
        Err(e) => return Err(format!("unreadable: {e}")),
    };
    let Some(body_len) = data.len().checked_sub(CRC_LEN).filter(|&n| n >= HEAD_LEN) else {
        return Err(format!("only {} bytes long", data.len()));
    };
    let (body, trailer) = data.split_at(body_len);
    let stored = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    if stored != crc32c::crc32c(body) {
        return Err("CRC mismatch".to_owned());
    }
    if &body[..8] != MAGIC || u32_at(body, 8) != VERSION {
        return Err("unknown magic or version".to_owned());
    }
    let indexed_len = u64_at(body, 16);
    if indexed_len != segment_len {
        return Err(format!(
            "indexes {indexed_len} bytes of segment, the file has {segment_len}"
        ));
    }
    let count = u64_at(body, 24);
    let start = out.len();
    let result = parse_entries(&body[HEAD_LEN..], count, base, segment_len, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn parse_entries(
    mut rest: &[u8],
    count: u64,
    base: u64,
    segment_len: u64,
    out: &mut Vec<RecoveredRecord>,
) -> Result<(), String> {
    // The count passed the CRC, but a reservation must not trust it blindly.
    out.reserve(
        usize::try_from(count)
            .unwrap_or(0)
            .min(rest.len() / ENTRY_LEN),
    );
    let mut offset = FILE_HEADER_LEN;
    for i in 0..count {
        let Some(entry) = rest.get(..ENTRY_LEN) else {
            return Err(format!("entry {i} of {count} is cut short"));
        };
        let (kind, flags) = (Kind::from_u8(entry[0]), entry[1]);
        let subject_len = usize::from(u16::from_le_bytes([entry[2], entry[3]]));
        let len = u32_at(entry, 4);
        let seq = u64_at(entry, 8);
        let time = i64::from_le_bytes(word_at(entry, 16));
        let at = u64_at(entry, 24);
        let stored_size = u64_at(entry, 32);
        let Some(subject) = rest.get(ENTRY_LEN..ENTRY_LEN + subject_len) else {
            return Err(format!("entry {i} of {count} is cut short"));
        };
        if at != offset || !(MIN_RECORD_LEN..=MAX_RECORD_LEN).contains(&len) {
            return Err(format!(
                "entry {i} says offset {at} length {len}, expected offset {offset}"
            ));
        }
        let subject = Bytes::copy_from_slice(subject);
        let record = match kind {
            Some(Kind::Message) if flags & !FLAG_PRESENT == 0 => RecoveredRecord::Message {
                seq,
                time,
                subject: Subject::from_wire_unchecked(subject),
                stored_size,
                location: Location {
                    segment: base,
                    offset,
                    len,
                },
            },
            Some(Kind::Delete) if flags == 0 && subject.is_empty() => {
                RecoveredRecord::Delete { seq }
            }
            Some(Kind::Purge) if flags & !FLAG_PRESENT == 0 => RecoveredRecord::Purge {
                below: seq,
                filter: codec::filter(flags, subject),
            },
            Some(Kind::Applied) if flags == 0 => match codec::applied(seq, time, &subject) {
                Some(mark) => RecoveredRecord::Applied(mark),
                None => return Err(format!("entry {i} is a malformed applied mark")),
            },
            _ => {
                return Err(format!(
                    "entry {i} has bad kind {} or flags {flags}",
                    entry[0]
                ));
            }
        };
        out.push(record);
        offset += u64::from(len);
        rest = &rest[ENTRY_LEN + subject_len..];
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes after the last entry", rest.len()));
    }
    if offset != segment_len {
        return Err(format!(
            "entries end at {offset}, the segment at {segment_len}"
        ));
    }
    Ok(())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn word_at(b: &[u8], at: usize) -> [u8; 8] {
    let mut word = [0; 8];
    word.copy_from_slice(&b[at..at + 8]);
    word
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(word_at(b, at))
}
