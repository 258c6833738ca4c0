//! A stream's in-memory index of its live messages.
//!
//! Sequences are dense, so the index is a deque of slots from the first live
//! sequence on; a removed message in the middle leaves an empty slot until
//! the front catches up with it. Each slot keeps what routing and limits
//! need (time, subject, size, where it is on disk) and, for memory streams
//! and recently written messages of file streams, the message itself.
//! Subjects are interned through the per-subject table, so a slot never
//! holds on to a network read buffer.

use std::collections::VecDeque;

use ahash::AHashMap;
use bytes::Bytes;
use herald_core::{Headers, Pattern, Subject};

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

/// Per-subject bookkeeping.
#[derive(Debug, Clone)]
pub(crate) struct SubjectInfo {
    pub(crate) subject: Subject,
    pub(crate) count: u64,
    /// A lower bound of the subject's first live sequence (exact unless its
    /// first message was removed; then found again by scanning on demand).
    pub(crate) first: u64,
    /// Its last live sequence (exact).
    pub(crate) last: u64,
}

/// The live messages of a stream, by sequence.
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
            None => Subject::from_wire_unchecked(Bytes::copy_from_slice(subject.as_bytes())),
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
        let info = self
            .subjects
            .entry(slot.subject.to_bytes())
            .or_insert_with(|| SubjectInfo {
                subject: slot.subject.clone(),
                count: 0,
                first: seq,
                last: seq,
            });
        if info.count == 0 {
            info.first = seq;
        }
        info.count += 1;
        info.last = seq;
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
        let mut gone = false;
        if let Some(info) = self.subjects.get_mut(key) {
            info.count -= 1;
            if info.count == 0 {
                gone = true;
            } else if info.last == seq {
                let subject = info.subject.clone();
                let prev = self.scan_back(seq, &subject);
                if let Some(info) = self.subjects.get_mut(key) {
                    info.last = prev.unwrap_or(0);
                }
            } else if info.first == seq {
                info.first = seq + 1;
            }
        }
        if gone {
            self.subjects.remove(key);
        }
        self.trim_front();
        Some(slot)
    }

    fn scan_back(&self, before: u64, subject: &Subject) -> Option<u64> {
        let mut seq = before;
        while seq > self.base {
            seq -= 1;
            if self.get(seq).is_some_and(|s| &s.subject == subject) {
                return Some(seq);
            }
        }
        None
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

    /// Sequences below `below` whose subject matches `filter` (all if none),
    /// oldest first.
    pub(crate) fn seqs_below(&self, below: u64, filter: Option<&Pattern>) -> Vec<u64> {
        let end = below.min(self.last_seq + 1);
        (self.base..end)
            .filter(|&seq| {
                self.get(seq)
                    .is_some_and(|s| filter.is_none_or(|f| f.matches(&s.subject)))
            })
            .collect()
    }

    /// The first live sequence at or after `from` whose subject passes `keep`.
    pub(crate) fn next_matching(&self, from: u64, keep: impl Fn(&Subject) -> bool) -> Option<u64> {
        let start = from.max(self.base);
        (start..=self.last_seq).find(|&seq| self.get(seq).is_some_and(|s| keep(&s.subject)))
    }

    /// Number of live messages at or after `from` whose subject passes `keep`.
    pub(crate) fn count_from(&self, from: u64, keep: impl Fn(&Subject) -> bool) -> u64 {
        if from <= self.base {
            // Whole stream: count by subject, far fewer than messages.
            return self
                .subjects
                .values()
                .filter(|i| keep(&i.subject))
                .map(|i| i.count)
                .sum();
        }
        let start = from.max(self.base);
        (start..=self.last_seq)
            .filter(|&seq| self.get(seq).is_some_and(|s| keep(&s.subject)))
            .count() as u64
    }

    /// The first sequence of a message stored at or after `time`.
    pub(crate) fn first_at_or_after(&self, time: i64) -> Option<u64> {
        (self.base..=self.last_seq).find(|&seq| self.get(seq).is_some_and(|s| s.time >= time))
    }

    /// The subject's info, if it has live messages.
    pub(crate) fn subject(&self, subject: &[u8]) -> Option<&SubjectInfo> {
        self.subjects.get(subject)
    }

    /// The first live sequence of `subject`.
    pub(crate) fn subject_first(&self, subject: &[u8]) -> Option<u64> {
        let info = self.subjects.get(subject)?;
        let from = info.first.max(self.base);
        (from..=info.last).find(|&seq| {
            self.get(seq)
                .is_some_and(|s| s.subject.as_bytes() == subject)
        })
    }

    /// Every subject with its info.
    pub(crate) fn subjects(&self) -> impl Iterator<Item = &SubjectInfo> {
        self.subjects.values()
    }

    /// Removes every message, keeping the sequence; the next is `next_seq`.
    pub(crate) fn clear(&mut self, next_seq: u64) {
        let last = next_seq.max(self.last_seq + 1) - 1;
        let last_time = self.last_time;
        *self = Self::new(last + 1);
        self.last_time = last_time;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(subject: &str) -> Slot {
        Slot {
            time: 1,
            subject: Subject::new(subject).unwrap(),
            size: 10,
            location: None,
            body: None,
        }
    }

    #[test]
    fn counts_and_trims_as_messages_come_and_go() {
        let mut ix = MessageIndex::new(1);
        assert_eq!((ix.first_seq(), ix.last_seq()), (1, 0));
        for (seq, s) in [(1, "a"), (2, "b"), (3, "a"), (4, "c")] {
            ix.push(seq, slot(s));
        }
        assert_eq!(ix.messages(), 4);
        assert_eq!(ix.bytes(), 40);
        assert_eq!(ix.subject(b"a").unwrap().count, 2);
        ix.remove(2);
        assert_eq!(ix.first_seq(), 1);
        ix.remove(1);
        assert_eq!(ix.first_seq(), 3, "the front skips the removed middle slot");
        assert_eq!(ix.subject_first(b"a"), Some(3));
        ix.remove(4);
        assert_eq!(ix.subject(b"c").map(|i| i.count), None);
        ix.remove(3);
        assert_eq!(ix.messages(), 0);
        assert_eq!((ix.first_seq(), ix.last_seq()), (5, 4));
        ix.push(5, slot("a"));
        assert_eq!(ix.first_seq(), 5);
    }

    #[test]
    fn last_of_subject_follows_removals() {
        let mut ix = MessageIndex::new(1);
        for (seq, s) in [(1, "a"), (2, "b"), (3, "a")] {
            ix.push(seq, slot(s));
        }
        ix.remove(3);
        assert_eq!(ix.subject(b"a").unwrap().last, 1);
        assert_eq!(ix.next_matching(2, |s| s.as_bytes() == b"a"), None);
        assert_eq!(ix.count_from(1, |_| true), 2);
        assert_eq!(ix.seqs_below(3, None), vec![1, 2]);
    }
}
