//! Replicated streams: the seam between a stream and a consensus log.
//!
//! A replicated stream is a state machine. Its leader does not store what it
//! captures; it proposes each round of publishes (with the time it took
//! them) through a [`Replicator`], and every replica — the leader included —
//! stores a round only when it is committed, through [`Stream::apply`], at
//! the round's time. Storing is deterministic in the stream's contents, the
//! messages and the time, so replicas agree on every sequence, duplicate,
//! limit and expiry. Timed work (TTLs, `max_age`, markers, schedules) is the
//! leader's to notice: it proposes an empty round, and each replica does the
//! work when applying it. Followers do not capture and run no timers.
//!
//! Each applied round writes an [`AppliedMark`] in the same append as what it
//! stored, so after a crash the stream knows exactly which log entry its
//! contents reflect and the log is replayed from there.

use std::sync::Arc;

use herald_core::{Message, Subject};

use super::writer::{Acks, Pending, Reply, store_round};
use super::{Stream, StreamData, StreamInner};
use crate::PubAck;
use crate::api_error::ApiError;
use crate::record::AppliedMark;
use crate::time::now_nanos;

/// A replica's contents, for a snapshot ([`Stream::export`], [`Stream::load`]).
#[derive(Debug, Clone)]
pub struct Export {
    /// The consensus log entry they reflect.
    pub applied: Option<AppliedMark>,
    /// The stream's last sequence (its last message may have been removed).
    pub last_seq: u64,
    /// The time of its last stored message (ns since the epoch), removed or not.
    pub last_time: i64,
    /// Every live message, in sequence order.
    pub messages: Vec<crate::record::StoredMessage>,
    /// The duplicate window: every id stored in it, removed since or not
    /// (id, seq, time), oldest first.
    pub dedup: Vec<(String, u64, i64)>,
}

/// Carries a replicated stream's proposals to its consensus log.
pub trait Replicator: Send + Sync + std::fmt::Debug {
    /// Hands a round to the log. Called under the stream's lock, in the
    /// order rounds must be stored: it must not block.
    fn propose(&self, proposal: Proposal);

    /// Hands a consumer's update to the log; `applied` is called with true
    /// once it is applied on this replica, false if it was not committed.
    /// Must not block.
    fn propose_consumer(&self, update: crate::consumer::ConsumerUpdate, applied: ConsumerApplied);
}

/// Told whether a consumer's update was applied.
pub type ConsumerApplied = Box<dyn FnOnce(bool) + Send>;

/// What a stream does with what it captures.
#[derive(Clone, Debug)]
pub(crate) enum Replica {
    /// Stores it: a stream of one node.
    Local,
    /// Proposes it: the leader of a replicated stream.
    Leader(Arc<dyn Replicator>),
    /// Neither: a follower, which stores only what its leader committed.
    Follower,
}

/// A round the leader proposes.
#[derive(Debug)]
pub struct Proposal {
    /// When the leader took it (ns since the epoch): replicas store it at
    /// this time, or at the stream's last time if that is later.
    pub now: i64,
    /// The publishes, in order; empty for a round of timed work.
    pub messages: Vec<Message>,
    /// Where their acks go.
    pub acks: ProposalAcks,
}

/// Where a proposal's publish acks go, once its round is applied.
#[derive(Debug)]
pub struct ProposalAcks {
    replies: Vec<(Reply, Option<Subject>)>,
}

impl ProposalAcks {
    /// Sends each publish its outcome, in order (as [`Stream::apply`]
    /// returned them on the leader).
    pub fn finish(self, stream: &Stream, outcomes: Vec<Result<PubAck, ApiError>>) {
        let mut outcomes = outcomes.into_iter();
        let acks = Acks {
            outcomes: self
                .replies
                .into_iter()
                .map(|(reply, subject)| {
                    let outcome = outcomes.next().unwrap_or_else(|| Err(not_leader()));
                    (reply, subject, outcome)
                })
                .collect(),
            wrote: false,
            last_seq: stream.inner.state.lock().index.last_seq(),
        };
        acks.send(&stream.inner);
    }

    /// Every publish of the round failed alike (no quorum, leadership lost).
    pub fn fail(self, stream: &Stream, error: &ApiError) {
        let n = self.replies.len();
        self.finish(stream, vec![Err(error.clone()); n]);
    }

    /// How many publishes wait for an ack.
    pub fn len(&self) -> usize {
        self.replies.len()
    }

    /// Whether none do (a round of timed work).
    pub fn is_empty(&self) -> bool {
        self.replies.is_empty()
    }
}

/// The answer to a publish that reached a replica not leading its stream.
pub(crate) fn not_leader() -> ApiError {
    ApiError::new(503, 10008, "JetStream cluster: not the stream leader")
}

/// A leader's round: the queued publishes, or an empty round when timed
/// work is due. Refused publishes (queue full) are answered at once.
pub(super) fn propose(
    inner: &StreamInner,
    data: &StreamData,
    replicator: &dyn Replicator,
    batch: std::collections::VecDeque<Pending>,
) {
    let now = now_nanos();
    let no_ack = data.config.no_ack;
    let mut replies = Vec::with_capacity(batch.len());
    let mut messages = Vec::with_capacity(batch.len());
    let mut refused = Vec::new();
    for pending in batch {
        let subject = if no_ack {
            None
        } else {
            pending.msg.reply.clone()
        };
        if pending.refused {
            let busy = ApiError::new(503, 10077, "stream is busy: too many publishes waiting");
            refused.push((pending.reply, subject, Err(busy)));
        } else {
            replies.push((pending.reply, subject));
            messages.push(pending.msg);
        }
    }
    if !refused.is_empty() {
        Acks {
            outcomes: refused,
            wrote: false,
            last_seq: data.index.last_seq(),
        }
        .send(inner);
    }
    if messages.is_empty() && !timed_work_due(data, now) {
        return;
    }
    if messages.is_empty() {
        // Not again until this round is applied (which sets the next timer).
        inner.next_timer.store(
            now.saturating_add(1_000_000_000),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
    replicator.propose(Proposal {
        now,
        messages,
        acks: ProposalAcks { replies },
    });
}

/// Whether a round with no publishes would change the stream now.
fn timed_work_due(data: &StreamData, now: i64) -> bool {
    let aged = !data.config.max_age.is_zero()
        && data.index.messages() > 0
        && data
            .index
            .first_time()
            .saturating_add(i64::try_from(data.config.max_age.as_nanos()).unwrap_or(i64::MAX))
            <= now;
    aged || !data.markers_due.is_empty() || data.next_timer() <= now
}

impl Stream {
    /// Whether this replica leads its replicated stream.
    pub(crate) fn is_leader(&self) -> bool {
        matches!(*self.inner.replica.read(), Replica::Leader(_))
    }

    /// Whether the stream is replicated (more than one replica).
    pub fn is_replicated(&self) -> bool {
        !matches!(*self.inner.replica.read(), Replica::Local)
    }

    /// Makes this replica its stream's leader (`Some`: it captures and
    /// proposes through the replicator) or a follower (`None`).
    pub fn set_leader(&self, replicator: Option<Arc<dyn Replicator>>) {
        let leading = replicator.is_some();
        *self.inner.replica.write() = match replicator {
            Some(r) => Replica::Leader(r),
            None => Replica::Follower,
        };
        if leading {
            self.capture();
            // Timed work that came due while following.
            let next = self.inner.state.lock().next_timer();
            super::writer::set_next_timer(&self.inner, next.min(now_nanos()));
        } else {
            self.stop_capture();
        }
    }

    /// Applies a committed round at `mark` (see the module docs); the
    /// outcome of each message, in order. A round at or below the stream's
    /// applied mark was applied before a restart and changes nothing.
    pub fn apply(
        &self,
        now: i64,
        messages: &[Message],
        mark: AppliedMark,
    ) -> Vec<Result<PubAck, ApiError>> {
        let mut data = self.inner.state.lock();
        if data.applied.is_some_and(|a| a.index >= mark.index) {
            return Vec::new();
        }
        let now = now.max(data.index.last_time());
        let messages: Vec<Option<Message>> = messages.iter().cloned().map(Some).collect();
        let (outcomes, wrote) = store_round(&self.inner, &mut data, &messages, now, Some(mark));
        self.applied_round(data, wrote);
        outcomes
    }

    /// Applies a committed purge at `mark` (as [`Stream::purge`]; the same
    /// request on the same contents removes the same messages everywhere).
    pub fn apply_purge(
        &self,
        request: &crate::PurgeRequest,
        now: i64,
        mark: AppliedMark,
    ) -> Result<u64, ApiError> {
        self.apply_op(now, mark, |data| Self::purge_locked(data, request))
            .unwrap_or(Ok(0))
    }

    /// Applies a committed message delete at `mark`.
    pub fn apply_delete(&self, seq: u64, now: i64, mark: AppliedMark) -> Result<(), ApiError> {
        self.apply_op(now, mark, |data| Self::delete_locked(data, seq))
            .unwrap_or(Ok(()))
    }

    /// Applies a committed config update at `mark`: the new limits are
    /// enforced at `now` in the same append as the mark.
    ///
    /// # Errors
    /// The update changes what cannot change, or a write fails.
    pub fn apply_update(
        &self,
        config: crate::StreamConfig,
        now: i64,
        mark: AppliedMark,
    ) -> Result<(), ApiError> {
        let old = {
            let data = self.inner.state.lock();
            if data.applied.is_some_and(|a| a.index >= mark.index) {
                return Ok(());
            }
            data.config.clone()
        };
        if let Err(error) = config.check_update(&old) {
            self.note_applied(mark);
            return Err(error);
        }
        self.write_meta(&config)?;
        let subjects_changed = old.subjects != config.subjects;
        self.apply_op(now, mark, |data| {
            let ttls = !data.config.allow_msg_ttl && config.allow_msg_ttl;
            let schedules = !data.config.allow_msg_schedules && config.allow_msg_schedules;
            data.config = config;
            data.rebuild_timers(ttls, schedules);
            Ok(())
        })
        .unwrap_or(Ok(()))?;
        let next = self.inner.state.lock().next_timer();
        super::writer::set_next_timer(&self.inner, next);
        if subjects_changed && matches!(*self.inner.replica.read(), Replica::Leader(_)) {
            self.capture();
        }
        Ok(())
    }

    /// Applies the removal of messages consumers acked (work-queue or
    /// interest retention) at `mark`.
    ///
    /// # Errors
    /// The removal failed to write.
    pub fn apply_acked(&self, seqs: &[u64], now: i64, mark: AppliedMark) -> Result<(), ApiError> {
        self.apply_op(now, mark, |data| Ok(data.remove_live(seqs)?))
            .unwrap_or(Ok(()))
    }

    /// The sequence and subject of each live message of `seqs` (every live
    /// message with `None`).
    pub(crate) fn subjects(&self, seqs: Option<&[u64]>) -> Vec<(u64, herald_core::Subject)> {
        let data = self.inner.state.lock();
        match seqs {
            Some(seqs) => seqs
                .iter()
                .filter_map(|&seq| Some((seq, data.index.get(seq)?.subject.clone())))
                .collect(),
            None => data
                .index
                .live_from(0)
                .map(|(seq, slot)| (seq, slot.subject.clone()))
                .collect(),
        }
    }

    /// Runs `op` under the stream's lock, then writes `mark` (with a round
    /// of timed work at `now`) before the lock is released; `None` when the
    /// entry was applied before a restart. A crash between the op's write
    /// and the mark's replays the op, which finds nothing more to remove.
    fn apply_op<T>(
        &self,
        now: i64,
        mark: AppliedMark,
        op: impl FnOnce(&mut StreamData) -> Result<T, ApiError>,
    ) -> Option<Result<T, ApiError>> {
        let mut data = self.inner.state.lock();
        if data.applied.is_some_and(|a| a.index >= mark.index) {
            return None;
        }
        let result = op(&mut data);
        let now = now.max(data.index.last_time());
        let (_, wrote) = store_round(&self.inner, &mut data, &[], now, Some(mark));
        self.applied_round(data, wrote);
        Some(result)
    }

    /// After a round was applied: the writer syncs what it wrote, and
    /// consumers waiting for new messages hear of them.
    fn applied_round(&self, data: parking_lot::MutexGuard<'_, StreamData>, wrote: bool) {
        let last_seq = data.index.last_seq();
        drop(data);
        if wrote {
            self.inner.queue.mark_unsynced();
        }
        self.inner.stored.send_if_modified(|last| {
            let changed = *last != last_seq;
            *last = last_seq;
            changed
        });
    }

    /// Everything a lagging replica needs to become this one: the applied
    /// mark, the last sequence and every live message, read under one lock.
    ///
    /// # Errors
    /// A message cannot be read from disk.
    pub fn export(&self) -> Result<Export, ApiError> {
        let data = self.inner.state.lock();
        let seqs: Vec<u64> = data.index.live_from(0).map(|(seq, _)| seq).collect();
        let mut messages = Vec::with_capacity(seqs.len());
        for seq in seqs {
            if let Some(m) = data.read(seq)? {
                messages.push(m);
            }
        }
        Ok(Export {
            applied: data.applied,
            last_seq: data.index.last_seq(),
            last_time: data.index.last_time(),
            messages,
            dedup: data.dedup.entries(),
        })
    }

    /// Fills an empty replica with an [`Export`] of another (a snapshot
    /// installed), ending at `mark`. Sequences, times and the last sequence
    /// are the exporter's, so what follows is stored alike everywhere.
    ///
    /// # Errors
    /// The replica is not empty, or a write fails.
    pub fn load(&self, export: Export, mark: AppliedMark) -> Result<(), ApiError> {
        let mut data = self.inner.state.lock();
        if data.index.messages() > 0 || data.index.last_seq() > export.last_seq {
            return Err(ApiError::new(
                500,
                10003,
                "a snapshot loads into an empty replica only",
            ));
        }
        let first = export
            .messages
            .first()
            .map_or(export.last_seq + 1, |m| m.seq);
        if first > data.index.last_seq() + 1 {
            data.index.clear(first);
            if let Some(log) = &mut data.log {
                log.reset(first)?;
            }
        }
        let mut records = Vec::with_capacity(export.messages.len() + 3);
        let last_message = export.messages.last().map(|m| m.seq);
        for m in export.messages {
            let subject = data.index.intern(&m.subject);
            let size = m.stored_size();
            let body_len = m.payload.len() + m.headers.as_ref().map_or(0, |h| h.raw().len());
            data.index.push(
                m.seq,
                super::Slot {
                    time: m.time,
                    subject,
                    size,
                    location: None,
                    body: Some(super::Body {
                        headers: m.headers.clone(),
                        payload: m.payload.clone(),
                    }),
                },
            );
            data.cache_body(m.seq, body_len);
            records.push(crate::record::Record::Message(m));
        }
        // The last sequence may be a removed message's: a placeholder
        // stored and removed at once carries it (replay keeps the sequence).
        if last_message.is_some_and(|seq| seq < export.last_seq) {
            let placeholder = crate::record::StoredMessage {
                seq: export.last_seq,
                time: export.last_time.max(data.index.last_time()),
                subject: herald_core::Subject::from_wire_unchecked(bytes::Bytes::from_static(
                    b"$HERALD.SNAPSHOT.LAST",
                )),
                headers: None,
                payload: bytes::Bytes::new(),
            };
            let subject = data.index.intern(&placeholder.subject);
            data.index.push(
                placeholder.seq,
                super::Slot {
                    time: placeholder.time,
                    subject,
                    size: 0,
                    location: None,
                    body: None,
                },
            );
            data.index.remove(placeholder.seq);
            records.push(crate::record::Record::Message(placeholder));
            records.push(crate::record::Record::Delete {
                seq: export.last_seq,
            });
        }
        records.push(crate::record::Record::Applied(mark));
        if let Some(log) = &mut data.log {
            let locations = log.append(&records)?;
            for (record, location) in records.iter().zip(locations) {
                if let crate::record::Record::Message(m) = record
                    && let Some(slot) = data.index.get_mut(m.seq)
                {
                    slot.location = Some(location);
                }
            }
        }
        data.applied = Some(mark);
        if let Some(ids) = &mut data.dedup_log {
            ids.rewrite(&export.dedup)?;
        }
        data.rebuild_dedup(export.dedup);
        let (ttls, schedules) = (data.config.allow_msg_ttl, data.config.allow_msg_schedules);
        data.rebuild_timers(ttls, schedules);
        super::writer::set_next_timer(&self.inner, data.next_timer());
        self.applied_round(data, true);
        Ok(())
    }

    /// Writes what the replica holds to disk now (before the consensus log
    /// that led to it may be dropped).
    ///
    /// # Errors
    /// The sync fails.
    pub fn sync(&self) -> Result<(), ApiError> {
        super::writer::sync_now(&self.inner)
            .map_err(|e| ApiError::new(500, 10049, format!("stream sync failed: {e}")))
    }

    /// Writes the applied mark (advanced in memory by entries that stored
    /// nothing) to the stream's files and syncs them: a snapshot is taken at
    /// a mark that is on disk. The mark.
    ///
    /// # Errors
    /// The write or sync fails.
    pub fn persist_mark(&self) -> Result<Option<AppliedMark>, ApiError> {
        let applied = {
            let mut data = self.inner.state.lock();
            let applied = data.applied;
            if let (Some(mark), Some(log)) = (applied, &mut data.log) {
                log.append(&[crate::record::Record::Applied(mark)])?;
            }
            applied
        };
        self.sync()?;
        Ok(applied)
    }

    /// Applies an entry that changes nothing stored (a consumer created,
    /// say) at `mark`: the mark is written, with a round of timed work at
    /// `now`, so a restart never replays it after what came later.
    pub fn apply_mark(&self, now: i64, mark: AppliedMark) {
        let _ = self.apply_op(now, mark, |_| Ok(()));
    }

    /// Records that the log got to `mark` with nothing for the stream (a
    /// leader's blank entry, a membership change): kept in memory only.
    pub fn note_applied(&self, mark: AppliedMark) {
        let mut data = self.inner.state.lock();
        if data.applied.is_none_or(|a| a.index < mark.index) {
            data.applied = Some(mark);
        }
    }

    /// Why the replica stopped storing, if a write failed.
    pub fn failure(&self) -> Option<String> {
        self.inner.state.lock().failed.clone()
    }

    /// The consensus log entry the contents reflect.
    pub fn applied(&self) -> Option<AppliedMark> {
        self.inner.state.lock().applied
    }
}
