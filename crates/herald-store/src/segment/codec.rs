//! Encoding and decoding of one record (layout in the parent module's docs).
//!
//! Decoding is two-step, so a scan never trusts a length it has not checked:
//! [`parse_head`] validates the fixed 32-byte head alone (sizes within
//! limits, kind and flags known, lengths that add up), and only then does
//! the caller read the rest and call [`check_crc`] on the whole record.

use std::ops::Range;

use bytes::Bytes;
use herald_core::{Headers, Pattern, Subject};

use crate::record::{Location, Record, RecoveredRecord, StoredMessage, stored_size};

/// Bytes of the fixed head: len, kind, flags, subject length, seq, time,
/// header length, payload length.
pub(crate) const HEAD_LEN: usize = 32;
/// Bytes of the CRC32C trailer.
const CRC_LEN: usize = 4;
/// The smallest record: a head and a CRC (a delete, or an empty message).
pub(crate) const MIN_RECORD_LEN: u32 = (HEAD_LEN + CRC_LEN) as u32;
/// The largest record accepted, in either direction: a length field above
/// it can only be corruption, and it bounds what one read allocates.
pub(crate) const MAX_RECORD_LEN: u32 = 64 << 20;
/// The longest subject (or purge filter): its length field is a `u16`.
pub(crate) const MAX_SUBJECT_LEN: usize = u16::MAX as usize;

/// Set on a message that has a header block (even an empty one), on a
/// purge that has a subject filter (even an empty one): `None` and "empty"
/// are different values and must survive a round trip.
pub(crate) const FLAG_PRESENT: u8 = 1;

/// What a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Message = 1,
    Delete = 2,
    Purge = 3,
    Applied = 4,
}

impl Kind {
    pub(crate) fn from_u8(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Message),
            2 => Some(Kind::Delete),
            3 => Some(Kind::Purge),
            4 => Some(Kind::Applied),
            _ => None,
        }
    }
}

/// A record's fixed head, validated: its lengths add up to `len`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Head {
    pub(crate) len: u32,
    pub(crate) kind: Kind,
    pub(crate) flags: u8,
    /// Message: its seq. Delete: the removed seq. Purge: `below`.
    pub(crate) seq: u64,
    /// Message: store time in ns. Tombstones: 0.
    pub(crate) time: i64,
    subject_len: usize,
    header_len: usize,
    payload_len: usize,
}

impl Head {
    /// Works out the head of `record`, refusing one past the limits.
    pub(crate) fn of(record: &Record) -> Result<Head, String> {
        let (kind, flags, seq, time, header_len, payload_len) = match record {
            Record::Message(m) => {
                let headers = m.headers.as_ref().map(|h| h.raw().len());
                let flags = if headers.is_some() { FLAG_PRESENT } else { 0 };
                let payload = m.payload.len();
                (
                    Kind::Message,
                    flags,
                    m.seq,
                    m.time,
                    headers.unwrap_or(0),
                    payload,
                )
            }
            Record::Delete { seq } => (Kind::Delete, 0, *seq, 0, 0, 0),
            Record::Purge { below, filter } => {
                let flags = if filter.is_some() { FLAG_PRESENT } else { 0 };
                (Kind::Purge, flags, *below, 0, 0, 0)
            }
            // The term rides in `time`, the leader's id in the subject field.
            Record::Applied(mark) => (
                Kind::Applied,
                0,
                mark.index,
                i64::try_from(mark.term).unwrap_or(i64::MAX),
                0,
                0,
            ),
        };
        let subject_len = subject_of(record).len();
        if subject_len > MAX_SUBJECT_LEN {
            return Err(format!(
                "subject of {subject_len} bytes exceeds {MAX_SUBJECT_LEN}"
            ));
        }
        let total = (HEAD_LEN + CRC_LEN)
            .saturating_add(subject_len)
            .saturating_add(header_len)
            .saturating_add(payload_len);
        if total > MAX_RECORD_LEN as usize {
            return Err(format!("record of {total} bytes exceeds {MAX_RECORD_LEN}"));
        }
        Ok(Head {
            len: total as u32,
            kind,
            flags,
            seq,
            time,
            subject_len,
            header_len,
            payload_len,
        })
    }

    pub(crate) fn subject(&self) -> Range<usize> {
        HEAD_LEN..HEAD_LEN + self.subject_len
    }

    pub(crate) fn headers(&self) -> Range<usize> {
        let start = self.subject().end;
        start..start + self.header_len
    }

    pub(crate) fn payload(&self) -> Range<usize> {
        let start = self.headers().end;
        start..start + self.payload_len
    }

    /// What the message counts for in the stream's byte total.
    pub(crate) fn stored_size(&self) -> u64 {
        stored_size(self.subject_len, self.header_len, self.payload_len)
    }
}

/// The bytes that go in the subject field: a message's subject, a purge's
/// filter, an applied mark's leader id, nothing for a delete.
pub(crate) fn subject_of(record: &Record) -> std::borrow::Cow<'_, [u8]> {
    match record {
        Record::Message(m) => m.subject.as_bytes().into(),
        Record::Purge {
            filter: Some(f), ..
        } => f.as_bytes().into(),
        Record::Applied(mark) => mark.node.to_le_bytes().to_vec().into(),
        Record::Delete { .. } | Record::Purge { filter: None, .. } => (&[][..]).into(),
    }
}

/// An applied mark from its head fields and subject bytes.
pub(crate) fn applied(seq: u64, time: i64, subject: &[u8]) -> Option<crate::record::AppliedMark> {
    Some(crate::record::AppliedMark {
        index: seq,
        term: u64::try_from(time).ok()?,
        node: u64::from_le_bytes(subject.try_into().ok()?),
    })
}

/// Appends `record`, whose head is `head` (from [`Head::of`]), to `buf`.
pub(crate) fn encode(record: &Record, head: &Head, buf: &mut Vec<u8>) {
    let start = buf.len();
    buf.reserve(head.len as usize);
    buf.extend_from_slice(&head.len.to_le_bytes());
    buf.push(head.kind as u8);
    buf.push(head.flags);
    buf.extend_from_slice(&(head.subject_len as u16).to_le_bytes());
    buf.extend_from_slice(&head.seq.to_le_bytes());
    buf.extend_from_slice(&head.time.to_le_bytes());
    buf.extend_from_slice(&(head.header_len as u32).to_le_bytes());
    buf.extend_from_slice(&(head.payload_len as u32).to_le_bytes());
    buf.extend_from_slice(&subject_of(record));
    if let Record::Message(m) = record {
        if let Some(h) = &m.headers {
            buf.extend_from_slice(h.raw());
        }
        buf.extend_from_slice(&m.payload);
    }
    let crc = crc32c::crc32c(&buf[start..]);
    buf.extend_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(buf.len() - start, head.len as usize);
}

fn u16_at(b: &[u8; HEAD_LEN], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8; HEAD_LEN], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn word_at(b: &[u8; HEAD_LEN], at: usize) -> [u8; 8] {
    let mut word = [0; 8];
    word.copy_from_slice(&b[at..at + 8]);
    word
}

/// Parses and checks a record's head before anything else of it is read.
pub(crate) fn parse_head(b: &[u8; HEAD_LEN]) -> Result<Head, String> {
    let len = u32_at(b, 0);
    if !(MIN_RECORD_LEN..=MAX_RECORD_LEN).contains(&len) {
        return Err(format!("record length {len} out of range"));
    }
    let kind = Kind::from_u8(b[4]).ok_or_else(|| format!("unknown record kind {}", b[4]))?;
    let flags = b[5];
    if flags & !FLAG_PRESENT != 0 || (matches!(kind, Kind::Delete | Kind::Applied) && flags != 0) {
        return Err(format!("bad flags {flags:#x} for {kind:?}"));
    }
    let head = Head {
        len,
        kind,
        flags,
        subject_len: usize::from(u16_at(b, 6)),
        seq: u64::from_le_bytes(word_at(b, 8)),
        time: i64::from_le_bytes(word_at(b, 16)),
        header_len: u32_at(b, 24) as usize,
        payload_len: u32_at(b, 28) as usize,
    };
    let parts = (HEAD_LEN + CRC_LEN + head.subject_len)
        .saturating_add(head.header_len)
        .saturating_add(head.payload_len);
    if parts != len as usize {
        return Err(format!(
            "field lengths add up to {parts}, record length is {len}"
        ));
    }
    let unexpected = match kind {
        Kind::Message if flags == 0 && head.header_len != 0 => Some("headers"),
        Kind::Message => None,
        Kind::Delete if head.subject_len != 0 => Some("subject"),
        Kind::Purge if flags == 0 && head.subject_len != 0 => Some("filter"),
        Kind::Delete | Kind::Purge if head.header_len + head.payload_len != 0 => {
            Some("headers or payload")
        }
        Kind::Delete | Kind::Purge => None,
        Kind::Applied if head.subject_len != 8 || head.header_len + head.payload_len != 0 => {
            Some("fields")
        }
        Kind::Applied if head.time < 0 => Some("term"),
        Kind::Applied => None,
    };
    if let Some(what) = unexpected {
        return Err(format!("{kind:?} record carries unexpected {what}"));
    }
    Ok(head)
}

/// Checks the CRC trailer of a whole record.
pub(crate) fn check_crc(record: &[u8]) -> Result<(), String> {
    let Some(split) = record.len().checked_sub(CRC_LEN) else {
        return Err("record shorter than its CRC".to_owned());
    };
    let (body, trailer) = record.split_at(split);
    let stored = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let actual = crc32c::crc32c(body);
    if stored != actual {
        return Err(format!(
            "CRC mismatch: stored {stored:#010x}, computed {actual:#010x}"
        ));
    }
    Ok(())
}

/// The head of a whole record (as read from disk, CRC not yet checked).
pub(crate) fn head_of(record: &[u8]) -> Result<Head, String> {
    let head: &[u8; HEAD_LEN] = record
        .get(..HEAD_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| "record shorter than its head".to_owned())?;
    let parsed = parse_head(head)?;
    if parsed.len as usize != record.len() {
        return Err(format!(
            "record length field is {}, expected {}",
            parsed.len,
            record.len()
        ));
    }
    Ok(parsed)
}

/// What recovery reports for a checked record; copies the subject out, so
/// the read buffer can be reused.
pub(crate) fn recovered(head: &Head, record: &[u8], location: Location) -> RecoveredRecord {
    let subject = Bytes::copy_from_slice(&record[head.subject()]);
    match head.kind {
        // The CRC vouches that these are the bytes that were stored, which
        // may have come from a protocol with looser subject rules than NATS:
        // re-validating could only refuse what was accepted at publish.
        Kind::Message => RecoveredRecord::Message {
            seq: head.seq,
            time: head.time,
            subject: Subject::from_wire_unchecked(subject),
            stored_size: head.stored_size(),
            location,
        },
        Kind::Delete => RecoveredRecord::Delete { seq: head.seq },
        Kind::Purge => RecoveredRecord::Purge {
            below: head.seq,
            filter: filter(head.flags, subject),
        },
        // `parse_head` refused an applied mark whose fields do not fit.
        Kind::Applied => {
            RecoveredRecord::Applied(applied(head.seq, head.time, &subject).unwrap_or_default())
        }
    }
}

/// A purge filter from its stored bytes, kept verbatim.
pub(crate) fn filter(flags: u8, bytes: Bytes) -> Option<Pattern> {
    (flags & FLAG_PRESENT != 0).then(|| Pattern::from(Subject::from_wire_unchecked(bytes)))
}

/// The message in a whole record whose CRC was checked; subject, headers and
/// payload share the record's buffer.
pub(crate) fn message(head: &Head, record: &Bytes) -> StoredMessage {
    StoredMessage {
        seq: head.seq,
        time: head.time,
        subject: Subject::from_wire_unchecked(record.slice(head.subject())),
        headers: (head.flags & FLAG_PRESENT != 0)
            .then(|| Headers::from_raw_unchecked(record.slice(head.headers()))),
        payload: record.slice(head.payload()),
    }
}
