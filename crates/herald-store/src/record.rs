//! What the log holds: stored messages and the tombstones that remove them.
//!
//! A stream's log is a sequence of [`Record`]s. Messages carry their stream
//! sequence; removals are records too (a [`Record::Delete`] of one sequence,
//! a [`Record::Purge`] of everything below a sequence, optionally only on
//! matching subjects), so that replaying the log in order on start rebuilds
//! exactly the set of live messages, whatever limits were in force then.

use bytes::Bytes;
use herald_core::{Headers, Pattern, Subject};

/// One message as a stream stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Stream sequence, strictly increasing, never reused.
    pub seq: u64,
    /// When it was stored: nanoseconds since the Unix epoch, UTC.
    pub time: i64,
    /// The subject it was published on.
    pub subject: Subject,
    /// Its header block, verbatim, if it had one.
    pub headers: Option<Headers>,
    /// Its payload.
    pub payload: Bytes,
}

impl StoredMessage {
    /// Bytes it counts for in the stream's `bytes` total and `max_bytes`
    /// limit: subject, headers and payload, plus a small fixed overhead per
    /// record as nats-server counts it.
    pub fn stored_size(&self) -> u64 {
        stored_size(
            self.subject.as_bytes().len(),
            self.headers.as_ref().map_or(0, |h| h.raw().len()),
            self.payload.len(),
        )
    }
}

/// The size a message counts for, from its parts' lengths.
pub fn stored_size(subject: usize, headers: usize, payload: usize) -> u64 {
    (subject + headers + payload + RECORD_OVERHEAD) as u64
}

/// Per-message overhead counted in `bytes`, about what a record's framing costs.
pub const RECORD_OVERHEAD: usize = 30;

/// One entry of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A stored message.
    Message(StoredMessage),
    /// Message `seq` was removed (delete, ack on a work queue, per-subject limit, ...).
    Delete {
        /// The removed message's sequence.
        seq: u64,
    },
    /// Every message with a sequence below `below` (and a subject matching
    /// `filter`, if set) was removed.
    Purge {
        /// First sequence that is kept.
        below: u64,
        /// Only messages whose subject matches this pattern were removed.
        filter: Option<Pattern>,
    },
    /// A replicated stream applied its consensus log up to here: written in
    /// the same append as what that entry stored, so the stream and the
    /// position it reflects survive a crash together.
    Applied(AppliedMark),
}

/// The consensus log entry a replicated stream's contents reflect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AppliedMark {
    /// The entry's index.
    pub index: u64,
    /// The term of the leader that wrote it.
    pub term: u64,
    /// That leader's node id.
    pub node: u64,
}

/// Where a record sits in a file log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// The segment's id (the base sequence in its file name).
    pub segment: u64,
    /// Byte offset of the record in the segment file.
    pub offset: u64,
    /// Length of the whole record in bytes.
    pub len: u32,
}

/// A record as recovery reports it: everything but a message's headers and
/// payload, which stay on disk until read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecoveredRecord {
    /// A message.
    Message {
        /// Its sequence.
        seq: u64,
        /// Its store time (ns since the epoch).
        time: i64,
        /// Its subject.
        subject: Subject,
        /// What it counts for in `bytes` ([`StoredMessage::stored_size`]).
        stored_size: u64,
        /// Where to read it.
        location: Location,
    },
    /// A [`Record::Delete`].
    Delete {
        /// The removed sequence.
        seq: u64,
    },
    /// A [`Record::Purge`].
    Purge {
        /// First sequence kept.
        below: u64,
        /// Subject filter, if any.
        filter: Option<Pattern>,
    },
    /// A [`Record::Applied`].
    Applied(AppliedMark),
}
