//! Consumers' positions in a stream, each with the count of messages it has
//! yet to see (`num_pending`), kept exact as messages come and go: an append
//! the cursor's filter selects adds one, a removal at or after the cursor
//! takes one, a delivery takes one. Reading the count never scans.
//!
//! The table lives in the stream's index, under the stream's lock, so an
//! append or a removal and a consumer's step never race. Each append and
//! removal visits every cursor of the stream (one filter test each), as
//! nats-server signals each consumer of a stream.

use herald_core::Subject;

use crate::stream::filter::SubjectFilter;

/// A cursor's place in the table. A place is reused once its cursor is
/// removed; the serial number keeps a stale id (a consumer stopping while
/// its driver still steps) from reaching the new cursor there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CursorId {
    place: usize,
    serial: u64,
}

#[derive(Debug)]
struct Cursor {
    serial: u64,
    filter: SubjectFilter,
    /// The next sequence the consumer looks at.
    next_seq: u64,
    /// Live messages at or after `next_seq` that `filter` selects.
    pending: u64,
}

/// Every cursor of one stream.
#[derive(Debug, Default)]
pub(super) struct CursorTable {
    cursors: Vec<Option<Cursor>>,
    /// The serial number of the last cursor added.
    serial: u64,
}

impl CursorTable {
    pub(super) fn add(&mut self, filter: SubjectFilter, next_seq: u64, pending: u64) -> CursorId {
        self.serial += 1;
        let cursor = Cursor {
            serial: self.serial,
            filter,
            next_seq,
            pending,
        };
        let place = match self.cursors.iter().position(Option::is_none) {
            Some(free) => {
                self.cursors[free] = Some(cursor);
                free
            }
            None => {
                self.cursors.push(Some(cursor));
                self.cursors.len() - 1
            }
        };
        CursorId {
            place,
            serial: self.serial,
        }
    }

    pub(super) fn remove(&mut self, id: CursorId) {
        if self.get(id).is_some() {
            self.cursors[id.place] = None;
        }
        while let Some(None) = self.cursors.last() {
            self.cursors.pop();
        }
    }

    fn get(&self, id: CursorId) -> Option<&Cursor> {
        self.cursors
            .get(id.place)
            .and_then(Option::as_ref)
            .filter(|c| c.serial == id.serial)
    }

    fn get_mut(&mut self, id: CursorId) -> Option<&mut Cursor> {
        self.cursors
            .get_mut(id.place)
            .and_then(Option::as_mut)
            .filter(|c| c.serial == id.serial)
    }

    pub(super) fn set(&mut self, id: CursorId, filter: SubjectFilter, next_seq: u64, pending: u64) {
        if let Some(cursor) = self.get_mut(id) {
            cursor.filter = filter;
            cursor.next_seq = next_seq;
            cursor.pending = pending;
        }
    }

    pub(super) fn filter(&self, id: CursorId) -> &SubjectFilter {
        self.get(id).map_or(&SubjectFilter::All, |c| &c.filter)
    }

    pub(super) fn next_seq(&self, id: CursorId) -> u64 {
        self.get(id).map_or(0, |c| c.next_seq)
    }

    pub(super) fn pending(&self, id: CursorId) -> u64 {
        self.get(id).map_or(0, |c| c.pending)
    }

    /// Moves the cursor forward over messages its filter does not select.
    pub(super) fn skip_to(&mut self, id: CursorId, next_seq: u64) {
        if let Some(cursor) = self.get_mut(id) {
            cursor.next_seq = cursor.next_seq.max(next_seq);
        }
    }

    /// Moves the cursor past `seq`, a message it selects.
    pub(super) fn take(&mut self, id: CursorId, seq: u64) {
        if let Some(cursor) = self.get_mut(id) {
            cursor.next_seq = seq + 1;
            cursor.pending = cursor.pending.saturating_sub(1);
        }
    }

    /// A message was stored at `seq`.
    pub(super) fn appended(&mut self, seq: u64, subject: &Subject) {
        for cursor in self.cursors.iter_mut().flatten() {
            if seq >= cursor.next_seq && cursor.filter.matches(subject) {
                cursor.pending += 1;
            }
        }
    }

    /// The live message at `seq` was removed.
    pub(super) fn removed(&mut self, seq: u64, subject: &Subject) {
        for cursor in self.cursors.iter_mut().flatten() {
            if seq >= cursor.next_seq && cursor.filter.matches(subject) {
                cursor.pending = cursor.pending.saturating_sub(1);
            }
        }
    }

    /// Every message was removed.
    pub(super) fn cleared(&mut self) {
        for cursor in self.cursors.iter_mut().flatten() {
            cursor.pending = 0;
        }
    }
}
