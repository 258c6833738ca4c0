//! A stream's in-memory index of its live messages.
//!
//! Sequences are dense, so the index is a deque of slots from the first live
//! sequence on; a removed message in the middle leaves an empty slot until
//! the front catches up with it. Each slot keeps what routing and limits
//! need (time, subject, size, where it is on disk) and, for memory streams
//! and recently written messages of file streams, the message itself.
//!
//! Beside the slots, a per-subject table keeps every subject's live
//! sequences in order, updated on every append and removal: first, last and
//! count of a subject, the next message of a subject after a sequence, and
//! what a purge by subject removes are answered from it without walking the
//! stream. Subjects are interned through that table, so a slot never holds
//! on to a network read buffer.
//!
//! Consumers' positions live here too, as [`cursor`]s: each keeps the count
//! of the messages it has yet to see, updated as messages come and go, so a
//! consumer's pending count never needs a scan.

mod cursor;

use std::collections::VecDeque;

use ahash::AHashMap;
use bytes::Bytes;
use herald_core::{Headers, Subject};

pub(crate) use cursor::CursorId;
use cursor::CursorTable;

use super::filter::SubjectFilter;
use crate::record::{Location, StoredMessage};

/// One live message.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub(crate) time: i64,
    pub(crate) subject: Subject,
    pub(crate) size: u64,
    pub(crate) location: Option<Location>,
    /// The message itself, when held in memory.
    pub(crate) body: Option<Body>,
}

/// Headers and payload of a message held in memory.
#[derive(Debug, Clone)]
pub(crate) struct Body {
    pub(crate) headers: Option<Headers>,
    pub(crate) payload: Bytes,
}

/// One subject's live messages.
#[derive(Debug, Clone)]
pub(crate) struct SubjectInfo {
    pub(crate) subject: Subject,
    /// Live sequences, ascending; never empty (an emptied subject is dropped).
    seqs: VecDeque<u64>,
}

impl SubjectInfo {
    /// Live messages on the subject.
    pub(crate) fn count(&self) -> u64 {
        self.seqs.len() as u64
    }

    /// Its first live sequence.
    pub(crate) fn first(&self) -> u64 {
        self.seqs.front().copied().unwrap_or(0)
    }

    /// Its last live sequence.
    pub(crate) fn last(&self) -> u64 {
        self.seqs.back().copied().unwrap_or(0)
    }

    /// Where `seq` is or would go.
    fn position(&self, seq: u64) -> usize {
        self.seqs.partition_point(|&s| s < seq)
    }

    /// Live messages at or after `from`.
    fn count_from(&self, from: u64) -> u64 {
        (self.seqs.len() - self.position(from)) as u64
    }

    /// The first live sequence at or after `from`.
    fn next_from(&self, from: u64) -> Option<u64> {
        self.seqs.get(self.position(from)).copied()
    }

    /// Live sequences below `below`, ascending.
    fn below(&self, below: u64) -> impl Iterator<Item = u64> + '_ {
        self.seqs.range(..self.position(below)).copied()
    }

    /// Removes `seq`. Removals are mostly at the front (limits, acks in
    /// order), where the deque makes them O(1); in the middle it moves the
    /// shorter side.
    fn remove(&mut self, seq: u64) {
        let at = self.position(seq);
        if self.seqs.get(at) == Some(&seq) {
            self.seqs.remove(at);
            // A subject that once held millions does not keep their room.
            if self.seqs.capacity() > 64 && self.seqs.len() < self.seqs.capacity() / 4 {
                self.seqs.shrink_to(self.seqs.len() * 2);
            }
        }
    }
}

/// The live messages of a stream, by sequence and by subject.
#[derive(Debug, Default)]
pub(crate) struct MessageIndex {
    /// Sequence of `slots[0]`.
    base: u64,
    slots: VecDeque<Option<Slot>>,
    subjects: AHashMap<Bytes, SubjectInfo>,
    messages: u64,
    bytes: u64,
    /// Last sequence ever assigned (kept when everything is removed).
    last_seq: u64,
    last_time: i64,
    cursors: CursorTable,
    /// Slots walked so far (tests check that operations do not walk the stream).
    #[cfg(test)]
    walked: std::cell::Cell<u64>,
}

impl MessageIndex {
    /// An empty index whose next sequence is `next_seq`.
    pub(crate) fn new(next_seq: u64) -> Self {
        let next_seq = next_seq.max(1);
        Self {
            base: next_seq,
            last_seq: next_seq - 1,
            ..Self::default()
        }
    }

    pub(crate) fn messages(&self) -> u64 {
        self.messages
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub(crate) fn last_time(&self) -> i64 {
        self.last_time
    }

    pub(crate) fn num_subjects(&self) -> usize {
        self.subjects.len()
    }

    /// First live sequence; `last_seq + 1` when empty, as nats-server reports it.
    pub(crate) fn first_seq(&self) -> u64 {
        self.base
    }

    /// Time of the first live message (0 when empty).
    pub(crate) fn first_time(&self) -> i64 {
        self.slots
            .front()
            .and_then(|s| s.as_ref())
            .map_or(0, |s| s.time)
    }

    /// The interned subject equal to `subject`, or `subject` copied out of
    /// whatever buffer it points into.
    pub(crate) fn intern(&self, subject: &Subject) -> Subject {
        match self.subjects.get(subject.as_bytes()) {
            Some(info) => info.subject.clone(),
            None => subject.detached(),
        }
    }

    /// Adds a message at `seq` (greater than every sequence so far).
    pub(crate) fn push(&mut self, seq: u64, slot: Slot) {
        debug_assert!(seq > self.last_seq || (self.messages == 0 && seq >= self.base));
        if self.slots.is_empty() {
            self.base = seq;
        } else {
            let next = self.base + self.slots.len() as u64;
            for _ in next..seq {
                self.slots.push_back(None);
            }
        }
        self.subjects
            .entry(slot.subject.to_bytes())
            .or_insert_with(|| SubjectInfo {
                subject: slot.subject.clone(),
                seqs: VecDeque::new(),
            })
            .seqs
            .push_back(seq);
        self.cursors.appended(seq, &slot.subject);
        self.messages += 1;
        self.bytes += slot.size;
        self.last_seq = seq;
        self.last_time = slot.time;
        self.slots.push_back(Some(slot));
    }

    /// The live message at `seq`.
    pub(crate) fn get(&self, seq: u64) -> Option<&Slot> {
        let i = seq.checked_sub(self.base)?;
        self.slots.get(usize::try_from(i).ok()?)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, seq: u64) -> Option<&mut Slot> {
        let i = seq.checked_sub(self.base)?;
        self.slots.get_mut(usize::try_from(i).ok()?)?.as_mut()
    }

    /// Removes the message at `seq`; returns it if it was live.
    pub(crate) fn remove(&mut self, seq: u64) -> Option<Slot> {
        let i = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        let slot = self.slots.get_mut(i)?.take()?;
        self.messages -= 1;
        self.bytes -= slot.size;
        let key = slot.subject.as_bytes();
        if let Some(info) = self.subjects.get_mut(key) {
            info.remove(seq);
            if info.seqs.is_empty() {
                self.subjects.remove(key);
            }
        }
        self.cursors.removed(seq, &slot.subject);
        self.trim_front();
        Some(slot)
    }

    /// Drops empty slots at the front.
    fn trim_front(&mut self) {
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.base += 1;
        }
        if self.slots.is_empty() {
            self.base = self.last_seq + 1;
        }
    }

    /// Removes every message, keeping the sequence; the next is `next_seq`.
    /// Consumers' cursors stay, with nothing left to see.
    pub(crate) fn clear(&mut self, next_seq: u64) {
        let last = next_seq.max(self.last_seq + 1) - 1;
        let last_time = self.last_time;
        let mut cursors = std::mem::take(&mut self.cursors);
        cursors.cleared();
        *self = Self::new(last + 1);
        self.last_time = last_time;
        self.cursors = cursors;
    }

    /// The subject's info, if it has live messages.
    pub(crate) fn subject(&self, subject: &[u8]) -> Option<&SubjectInfo> {
        self.subjects.get(subject)
    }

    /// Every subject with its info.
    pub(crate) fn subjects(&self) -> impl Iterator<Item = &SubjectInfo> {
        self.subjects.values()
    }

    /// The subjects `filter` selects: looked up for literals, else every
    /// subject tested.
    fn selected<'a>(
        &'a self,
        filter: &'a SubjectFilter,
    ) -> Box<dyn Iterator<Item = &'a SubjectInfo> + 'a> {
        match filter {
            SubjectFilter::Literals(literals) => {
                Box::new(literals.iter().filter_map(|l| self.subjects.get(&l[..])))
            }
            _ => Box::new(
                self.subjects
                    .values()
                    .filter(|i| filter.matches(&i.subject)),
            ),
        }
    }

    /// Whether answering for `filter` from the per-subject table is cheaper
    /// than walking `span` slots: always for literals, for patterns when
    /// there are far fewer subjects than slots.
    fn by_subject(&self, filter: &SubjectFilter, span: u64) -> bool {
        match filter {
            SubjectFilter::All => false,
            SubjectFilter::Literals(_) => true,
            SubjectFilter::Patterns(_) => (self.subjects.len() as u64).saturating_mul(16) < span,
        }
    }

    /// The live sequences from `from` to the end, as far as the slots go.
    pub(crate) fn live_from(&self, from: u64) -> impl Iterator<Item = (u64, &Slot)> {
        let start = from.max(self.base);
        let skip = usize::try_from(start - self.base).unwrap_or(usize::MAX);
        self.slots
            .iter()
            .skip(skip)
            .zip(start..)
            .filter_map(|(slot, seq)| {
                self.walk();
                slot.as_ref().map(|s| (seq, s))
            })
    }

    /// Counts one slot walked (in tests).
    fn walk(&self) {
        #[cfg(test)]
        self.walked.set(self.walked.get() + 1);
    }

    /// The live messages, newest first.
    fn live_newest_first(&self) -> impl Iterator<Item = (u64, &Slot)> {
        self.slots.iter().enumerate().rev().filter_map(|(i, slot)| {
            self.walk();
            slot.as_ref().map(|s| (self.base + i as u64, s))
        })
    }

    /// The first live sequence at or after `from` that `filter` selects.
    pub(crate) fn next_matching(&self, from: u64, filter: &SubjectFilter) -> Option<u64> {
        let from = from.max(self.base);
        if from > self.last_seq {
            return None;
        }
        if self.by_subject(filter, self.last_seq - from + 1) {
            return self
                .selected(filter)
                .filter_map(|i| i.next_from(from))
                .min();
        }
        self.live_from(from)
            .find(|(_, slot)| filter.matches(&slot.subject))
            .map(|(seq, _)| seq)
    }

    /// Live messages at or after `from` that `filter` selects.
    pub(crate) fn count_from(&self, from: u64, filter: &SubjectFilter) -> u64 {
        let from = from.max(self.base);
        if from > self.last_seq {
            return 0;
        }
        if from == self.base {
            return match filter {
                SubjectFilter::All => self.messages,
                _ => self.selected(filter).map(SubjectInfo::count).sum(),
            };
        }
        let span = self.last_seq - from + 1;
        let by_subject = match filter {
            // Every subject's own count beats walking many slots.
            SubjectFilter::All => (self.subjects.len() as u64).saturating_mul(16) < span,
            _ => self.by_subject(filter, span),
        };
        if by_subject {
            return self.selected(filter).map(|i| i.count_from(from)).sum();
        }
        self.live_from(from)
            .filter(|(_, slot)| filter.matches(&slot.subject))
            .count() as u64
    }

    /// The last live sequence that `filter` selects.
    pub(crate) fn last_matching(&self, filter: &SubjectFilter) -> Option<u64> {
        if self.messages == 0 {
            return None;
        }
        let span = self.last_seq - self.base + 1;
        if self.by_subject(filter, span) {
            return self.selected(filter).map(SubjectInfo::last).max();
        }
        self.live_newest_first()
            .find(|(_, slot)| filter.matches(&slot.subject))
            .map(|(seq, _)| seq)
    }

    /// The last live sequence of every subject `filter` selects.
    pub(crate) fn last_per_subject(&self, filter: &SubjectFilter) -> Vec<u64> {
        self.selected(filter).map(SubjectInfo::last).collect()
    }

    /// Sequences below `below` that `filter` selects, oldest first.
    pub(crate) fn seqs_below(&self, below: u64, filter: &SubjectFilter) -> Vec<u64> {
        let end = below.min(self.last_seq + 1);
        if end <= self.base {
            return Vec::new();
        }
        if self.by_subject(filter, end - self.base) {
            let mut seqs: Vec<u64> = self.selected(filter).flat_map(|i| i.below(end)).collect();
            seqs.sort_unstable();
            return seqs;
        }
        self.live_from(self.base)
            .take_while(|(seq, _)| *seq < end)
            .filter(|(_, slot)| filter.matches(&slot.subject))
            .map(|(seq, _)| seq)
            .collect()
    }

    /// The `n`th newest live sequence that `filter` selects (`n` ≥ 1): what
    /// a purge that keeps `n` messages keeps from.
    pub(crate) fn nth_last_matching(&self, n: u64, filter: &SubjectFilter) -> Option<u64> {
        let n = usize::try_from(n).ok()?.checked_sub(1)?;
        if let SubjectFilter::Literals(literals) = filter
            && let [one] = &literals[..]
        {
            let info = self.subjects.get(&one[..])?;
            return info.seqs.iter().rev().nth(n).copied();
        }
        if matches!(filter, SubjectFilter::All)
            || !self.by_subject(filter, self.last_seq + 1 - self.base)
        {
            return self
                .live_newest_first()
                .filter(|(_, slot)| filter.matches(&slot.subject))
                .nth(n)
                .map(|(seq, _)| seq);
        }
        let mut seqs: Vec<u64> = self
            .selected(filter)
            .flat_map(|i| i.seqs.iter().copied())
            .collect();
        seqs.sort_unstable_by(|a, b| b.cmp(a));
        seqs.get(n).copied()
    }

    /// The first sequence of a message stored at or after `time` (ns since
    /// the epoch). Stored times never go backwards, so this is a binary
    /// search; an empty slot takes the time of the next live one.
    pub(crate) fn first_at_or_after(&self, time: i64) -> Option<u64> {
        let live_time = |i: usize| {
            self.slots
                .range(i..)
                .find_map(|s| s.as_ref().map(|s| s.time))
                .unwrap_or(i64::MAX)
        };
        let (mut lo, mut hi) = (0, self.slots.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if live_time(mid) < time {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        self.live_from(self.base + lo as u64)
            .next()
            .map(|(seq, _)| seq)
    }

    /// The oldest live message's sequence and slot.
    pub(crate) fn front(&self) -> Option<(u64, &Slot)> {
        self.slots
            .front()
            .and_then(|s| s.as_ref())
            .map(|s| (self.base, s))
    }

    /// Drops the in-memory body of `seq` (file streams keep only recent ones).
    pub(crate) fn forget_body(&mut self, seq: u64) -> usize {
        match self.get_mut(seq).and_then(|s| s.body.take()) {
            Some(body) => body.payload.len() + body.headers.map_or(0, |h| h.raw().len()),
            None => 0,
        }
    }

    /// The stored message at `seq` when its body is in memory.
    pub(crate) fn message_in_memory(&self, seq: u64) -> Option<StoredMessage> {
        let slot = self.get(seq)?;
        let body = slot.body.as_ref()?;
        Some(StoredMessage {
            seq,
            time: slot.time,
            subject: slot.subject.clone(),
            headers: body.headers.clone(),
            payload: body.payload.clone(),
        })
    }

    /// A new consumer position at `next_seq`, seeing what `filter` selects.
    pub(crate) fn add_cursor(&mut self, filter: SubjectFilter, next_seq: u64) -> CursorId {
        let pending = self.count_from(next_seq, &filter);
        self.cursors.add(filter, next_seq, pending)
    }

    /// Moves a cursor to `next_seq`, with a new filter if given, and counts
    /// what it has yet to see again.
    pub(crate) fn reset_cursor(
        &mut self,
        id: CursorId,
        filter: Option<SubjectFilter>,
        next_seq: u64,
    ) {
        let filter = filter.unwrap_or_else(|| self.cursors.filter(id).clone());
        let pending = self.count_from(next_seq, &filter);
        self.cursors.set(id, filter, next_seq, pending);
    }

    /// Forgets a cursor (its consumer is gone).
    pub(crate) fn remove_cursor(&mut self, id: CursorId) {
        self.cursors.remove(id);
    }

    /// The sequence a cursor looks at next.
    pub(crate) fn cursor_next(&self, id: CursorId) -> u64 {
        self.cursors.next_seq(id)
    }

    /// Live messages at or after the cursor that its filter selects.
    pub(crate) fn cursor_pending(&self, id: CursorId) -> u64 {
        self.cursors.pending(id)
    }

    /// The next message the cursor selects, without taking it. Messages it
    /// does not select are stepped over for good on the way (they never
    /// counted); with nothing left, the cursor moves past the end.
    pub(crate) fn cursor_peek(&mut self, id: CursorId) -> Option<u64> {
        let from = self.cursors.next_seq(id);
        let found = self.next_matching(from, self.cursors.filter(id));
        let skip_to = found.unwrap_or(self.last_seq + 1);
        debug_assert!(found.is_some() || self.cursors.pending(id) == 0);
        if skip_to > from {
            self.cursors.skip_to(id, skip_to);
        }
        found
    }

    /// Takes `seq`, which [`cursor_peek`](Self::cursor_peek) just returned:
    /// the cursor moves past it and has one message fewer to see.
    pub(crate) fn cursor_take(&mut self, id: CursorId, seq: u64) {
        debug_assert_eq!(self.cursors.next_seq(id), seq);
        self.cursors.take(id, seq);
    }
}

#[cfg(test)]
mod tests;
