//! What a stream does under its state lock: recovery's replay, reads from
//! memory or disk, removals and their tombstones, limits, the body cache and
//! the duplicate table.

/// Bytes read ahead from a segment when a message must come from disk.
const READ_AHEAD_BYTES: u64 = 256 * 1024;

use super::{BODY_CACHE_BYTES, Discard, MessageIndex, Slot, StreamData, SubjectFilter, writer};
use crate::StoreError;
use crate::api_error::ApiError;
use crate::info::StreamState;
use crate::record::{AppliedMark, Record, RecoveredRecord, StoredMessage};
use crate::time::now_nanos;

/// Rebuilds the index by replaying recovered records in log order; also
/// the last applied mark of a replicated stream.
pub(super) fn replay(
    records: Vec<RecoveredRecord>,
    active_base: u64,
) -> (MessageIndex, Option<AppliedMark>) {
    let mut index = MessageIndex::new(active_base);
    let mut first = true;
    let mut applied = None;
    for record in records {
        match record {
            RecoveredRecord::Message {
                seq,
                time,
                subject,
                stored_size,
                location,
            } => {
                if first || seq > index.last_seq() {
                    if first && index.messages() == 0 {
                        index = MessageIndex::new(seq);
                    }
                    first = false;
                    let subject = index.intern(&subject);
                    index.push(
                        seq,
                        Slot {
                            time,
                            subject,
                            size: stored_size,
                            location: Some(location),
                            body: None,
                        },
                    );
                }
            }
            RecoveredRecord::Delete { seq } => {
                index.remove(seq);
            }
            RecoveredRecord::Applied(mark) => applied = Some(mark),
            RecoveredRecord::Purge { below, filter } => {
                if filter.is_none() && below > index.last_seq() {
                    index.clear(below);
                } else {
                    let selected = SubjectFilter::of(filter.as_ref());
                    for seq in index.seqs_below(below, &selected) {
                        index.remove(seq);
                    }
                }
            }
        }
    }
    if index.messages() == 0 && index.last_seq() + 1 < active_base {
        index.clear(active_base);
    }
    (index, applied)
}

impl StreamData {
    /// Reads the message at `seq` from memory or disk; `None` if not live.
    pub(crate) fn read(&self, seq: u64) -> Result<Option<StoredMessage>, ApiError> {
        let Some(slot) = self.index.get(seq) else {
            return Ok(None);
        };
        if let Some(msg) = self.index.message_in_memory(seq) {
            return Ok(Some(msg));
        }
        {
            let ahead = self.read_ahead.borrow();
            if let Ok(i) = ahead.binary_search_by_key(&seq, |m| m.seq) {
                return Ok(Some(ahead[i].clone()));
            }
        }
        match (&self.log, slot.location) {
            (Some(log), Some(location)) => match log.read_ahead(&location, READ_AHEAD_BYTES) {
                Ok(mut msgs) => {
                    let first = msgs.remove(0);
                    *self.read_ahead.borrow_mut() = msgs.into();
                    Ok(Some(first))
                }
                Err(StoreError::Gone) => Ok(None),
                Err(e) => {
                    tracing::error!(stream = %self.config.name, seq, "reading message: {e}");
                    Err(ApiError::storage(&e))
                }
            },
            _ => Ok(None),
        }
    }

    pub(crate) fn stream_state(&self) -> StreamState {
        let ix = &self.index;
        // A stream that never stored anything reports 0, as nats-server does.
        let never_stored = ix.messages() == 0 && ix.last_seq() == 0;
        let span = (ix.last_seq() + 1).saturating_sub(ix.first_seq());
        StreamState {
            messages: ix.messages(),
            bytes: ix.bytes(),
            first_seq: if never_stored { 0 } else { ix.first_seq() },
            num_deleted: span.saturating_sub(ix.messages()),
            first_ts: crate::time::rfc3339(ix.first_time()),
            last_seq: ix.last_seq(),
            last_ts: crate::time::rfc3339(ix.last_time()),
            num_subjects: ix.num_subjects() as u64,
            consumer_count: 0,
        }
    }

    /// Removes one message from the index (not from the log), and its body
    /// from the cache of a file stream. A memory stream's bodies are the
    /// messages themselves, never counted as cached.
    pub(crate) fn remove_one(&mut self, seq: u64) {
        let freed = self.index.forget_body(seq);
        if self.log.is_some() {
            self.cached_bytes -= freed;
        }
        self.index.remove(seq);
        self.expiries.forget(seq);
        self.schedules.forget(seq);
    }

    /// Removes messages and records the removal in the log.
    /// Removes those of `seqs` still live (consumers' acks may name some
    /// already gone), with one write.
    pub(crate) fn remove_live(&mut self, seqs: &[u64]) -> Result<(), StoreError> {
        let live: Vec<u64> = seqs
            .iter()
            .copied()
            .filter(|&s| self.index.get(s).is_some())
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        self.remove_messages(live)
    }

    pub(crate) fn remove_messages(&mut self, seqs: Vec<u64>) -> Result<(), StoreError> {
        for &seq in &seqs {
            self.remove_one(seq);
        }
        self.write_removals(seqs)
    }

    /// Writes tombstones for messages already removed from the index.
    pub(crate) fn write_removals(&mut self, seqs: Vec<u64>) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let records = self.removal_records(&seqs);
        if let Some(log) = &mut self.log {
            log.append(&records)?;
        }
        self.drop_old_segments()
    }

    /// The tombstones of removed `seqs`: removals from the front are one
    /// purge record, others one delete each.
    pub(crate) fn removal_records(&self, seqs: &[u64]) -> Vec<Record> {
        let first = self.index.first_seq();
        let mut records: Vec<Record> = seqs
            .iter()
            .filter(|&&s| s >= first)
            .map(|&seq| Record::Delete { seq })
            .collect();
        if seqs.iter().any(|&s| s < first) {
            records.push(Record::Purge {
                below: first,
                filter: None,
            });
        }
        records
    }

    pub(super) fn drop_old_segments(&mut self) -> Result<(), StoreError> {
        let first = self.index.first_seq();
        if let Some(log) = &mut self.log {
            log.remove_segments_before(first)?;
        }
        Ok(())
    }

    /// Removes what the limits no longer allow (discard old, age); returns
    /// the removed sequences (already gone from the index).
    pub(crate) fn enforce_limits(&mut self, now: i64) -> Vec<u64> {
        let mut removed = Vec::new();
        // Messages whose own TTL ran out.
        for seq in self.expiries.take_due(now) {
            self.expire(seq, &mut removed);
        }
        // Messages older than `max_age`, except those that never expire.
        let max_age = self.config.max_age;
        if !max_age.is_zero() {
            let cutoff = now.saturating_sub(i64::try_from(max_age.as_nanos()).unwrap_or(i64::MAX));
            if self.expiries.has_never() {
                let old: Vec<u64> = self
                    .index
                    .live_from(self.index.first_seq())
                    .take_while(|(_, slot)| slot.time < cutoff)
                    .map(|(seq, _)| seq)
                    .filter(|&seq| !self.expiries.never_expires(seq))
                    .collect();
                for seq in old {
                    self.expire(seq, &mut removed);
                }
            } else {
                while let Some(seq) = self
                    .index
                    .front()
                    .filter(|(_, slot)| slot.time < cutoff)
                    .map(|(seq, _)| seq)
                {
                    self.expire(seq, &mut removed);
                }
            }
        }
        let config = &self.config;
        let max_msgs = config.max_msgs;
        let max_bytes = config.max_bytes;
        if config.discard == Discard::Old {
            loop {
                let over_msgs = max_msgs > 0 && self.index.messages() > max_msgs as u64;
                let over_bytes = max_bytes > 0 && self.index.bytes() > max_bytes as u64;
                if !(over_msgs || over_bytes) {
                    break;
                }
                let Some((seq, _)) = self.index.front() else {
                    break;
                };
                self.remove_one(seq);
                removed.push(seq);
            }
        }
        removed
    }

    /// When the next TTL expiry or schedule is due (ns; `i64::MAX`: none).
    pub(crate) fn next_timer(&self) -> i64 {
        [self.expiries.next_due(), self.schedules.next_due()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(i64::MAX)
    }

    /// Removes `seq` because it aged out (its TTL or `max_age`); if that
    /// left its subject empty and the stream keeps markers, queues one.
    fn expire(&mut self, seq: u64, removed: &mut Vec<u64>) {
        let Some(subject) = self.index.get(seq).map(|slot| slot.subject.clone()) else {
            return;
        };
        let was_marker = self.expiries.is_marker(seq);
        self.remove_one(seq);
        removed.push(seq);
        if !was_marker
            && !self.config.subject_delete_marker_ttl.is_zero()
            && self.index.subject(subject.as_bytes()).is_none()
        {
            self.markers_due.push(subject);
        }
    }

    /// Reads TTLs and schedules back after recovery (streams that allow
    /// them only: the headers are on disk).
    pub(super) fn rebuild_timers(&mut self, ttls: bool, schedules: bool) {
        if !(ttls || schedules) || self.index.messages() == 0 {
            return;
        }
        let now = crate::time::now_nanos();
        let seqs: Vec<u64> = self
            .index
            .live_from(self.index.first_seq())
            .map(|(seq, _)| seq)
            .collect();
        for seq in seqs {
            let Ok(Some(msg)) = self.read(seq) else {
                continue;
            };
            if ttls && let Some(ttl) = super::ttl::of_headers(msg.headers.as_ref()) {
                self.expiries.add(seq, msg.time, ttl);
            }
            if ttls
                && !self.config.subject_delete_marker_ttl.is_zero()
                && super::ttl::is_marker(msg.headers.as_ref())
            {
                self.expiries.mark(seq);
            }
            // A schedule that is still its subject's last message fires again.
            if schedules
                && let Some(raw) = super::schedule::pattern_of(msg.headers.as_ref())
                && self.index.subject(msg.subject.as_bytes()).map(|i| i.last()) == Some(seq)
            {
                let zone = super::schedule::zone_of(msg.headers.as_ref());
                super::schedule::rearm_recovered(
                    &mut self.schedules,
                    seq,
                    raw,
                    zone,
                    msg.time,
                    now,
                );
            }
        }
    }

    /// Caches a stored message's body, evicting the oldest cached bodies
    /// past the budget (file streams), or keeps it for good (memory streams).
    pub(crate) fn cache_body(&mut self, seq: u64, size: usize) {
        if self.log.is_none() {
            return;
        }
        self.cached_bytes += size;
        while self.cached_bytes > BODY_CACHE_BYTES && self.cache_front < seq {
            let front = self.cache_front.max(self.index.first_seq());
            let freed = self.index.forget_body(front);
            self.cached_bytes -= freed;
            self.cache_front = front + 1;
        }
    }

    /// Rebuilds the duplicate table from messages inside the window.
    /// Rebuilds the duplicate window from the live messages in it, and for
    /// a replicated stream also from `logged` (its `dedup.log`: the ids of
    /// removed messages too, so every replica holds the same ids).
    pub(super) fn rebuild_dedup(&mut self, logged: Vec<super::dedup_log::Entry>) {
        let window = i64::try_from(self.config.duplicate_window.as_nanos()).unwrap_or(i64::MAX);
        // A replica's window runs on its rounds' times, not this clock: the
        // next round's expiry trims it exactly as on the other replicas.
        let reference = if self.config.num_replicas > 1 {
            self.index.last_time()
        } else {
            now_nanos()
        };
        let since = reference.saturating_sub(window);
        let last_seq = self.index.last_seq();
        let mut ids: Vec<super::dedup_log::Entry> = logged
            .into_iter()
            .filter(|(_, seq, time)| *seq <= last_seq && *time >= since)
            .collect();
        if let Some(from) = self.index.first_at_or_after(since) {
            for seq in from..=last_seq {
                if let Ok(Some(msg)) = self.read(seq)
                    && let Some(id) = msg.headers.as_ref().and_then(|h| h.get(writer::MSG_ID))
                {
                    ids.push((id.to_owned(), seq, msg.time));
                }
            }
        }
        ids.sort_by_key(|(_, seq, time)| (*time, *seq));
        ids.dedup_by(|a, b| a.1 == b.1);
        self.dedup = writer::Dedup::default();
        for (id, seq, time) in ids {
            if seq == last_seq {
                self.dedup.last_id = Some(id.clone());
            }
            self.dedup.insert(id, seq, time);
        }
    }
}
