//! The stream writer: publishes queue up here and one thread per stream
//! stores them in order.
//!
//! Each round takes everything queued, checks every publish against the
//! stream (expected stream and sequences, duplicates, size, limits), writes
//! all accepted records with one call, fsyncs once when the policy is
//! `always` (group commit: every publish of the round shares that fsync),
//! and only then sends the acks. A process crash after the write loses
//! nothing acked: the data is in the kernel. Power loss is covered by
//! `always`; with an interval, by whatever the last fsync covered.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ahash::AHashMap;
use bytes::Bytes;
use herald_core::{DeliveryCtx, Message, Sink, Subscriber};
use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use super::StreamInner;
use super::replica::Replica;
use crate::api_error::ApiError;
use crate::config::Retention;
use crate::record::{AppliedMark, Record};
use crate::time::now_nanos;
use crate::{PubAck, StoreError, SyncPolicy};

mod accept;

use accept::{Author, store_one};

/// Header carrying a publish's de-duplication id.
pub(crate) const MSG_ID: &str = "Nats-Msg-Id";
const EXPECTED_STREAM: &str = "Nats-Expected-Stream";
const EXPECTED_LAST_SEQ: &str = "Nats-Expected-Last-Sequence";
const EXPECTED_LAST_SUBJECT_SEQ: &str = "Nats-Expected-Last-Subject-Sequence";
const EXPECTED_LAST_SUBJECT_SEQ_SUBJECT: &str = "Nats-Expected-Last-Subject-Sequence-Subject";
const EXPECTED_LAST_MSG_ID: &str = "Nats-Expected-Last-Msg-Id";
/// Header asking that a message replace its subject's (`sub`) or the
/// stream's (`all`) earlier messages.
const ROLLUP: &str = "Nats-Rollup";

/// Bytes of publishes that may wait for the writer; past this, publishes
/// are refused at once instead of growing memory without bound.
const MAX_QUEUED_BYTES: usize = 256 * 1024 * 1024;

/// One publish waiting to be stored.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(super) msg: Message,
    pub(super) reply: Reply,
    /// Refused before queueing (queue full).
    pub(super) refused: bool,
}

#[derive(Debug)]
pub(super) enum Reply {
    /// Publish ack to the message's reply subject, if it has one.
    Subject,
    /// In-process caller waiting.
    Callback(oneshot::Sender<Result<PubAck, ApiError>>),
}

impl Pending {
    pub(crate) fn with_callback(
        msg: Message,
        tx: oneshot::Sender<Result<PubAck, ApiError>>,
    ) -> Self {
        Self {
            msg,
            reply: Reply::Callback(tx),
            refused: false,
        }
    }
}

/// Publishes waiting for the writer thread.
#[derive(Debug, Default)]
pub(crate) struct WriterQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
    done: Condvar,
}

#[derive(Debug, Default)]
struct QueueState {
    items: VecDeque<Pending>,
    bytes: usize,
    closing: bool,
    stopped: bool,
    /// Written since the last fsync (rounds run by publishers set it).
    unsynced: bool,
}

impl WriterQueue {
    /// Queues a publish; wakes the writer thread if `wake` (with an interval
    /// sync policy the publisher stores it itself at the end of its batch).
    pub(crate) fn push(&self, mut pending: Pending, wake: bool) {
        let mut q = self.state.lock();
        let size = pending.msg.size();
        if q.bytes + size > MAX_QUEUED_BYTES || q.closing {
            pending.refused = true;
            pending.msg.payload = Bytes::new();
        } else {
            q.bytes += size;
        }
        q.items.push_back(pending);
        if wake && q.items.len() == 1 {
            self.ready.notify_one();
        }
    }

    /// Notes that something was written the writer thread has yet to sync.
    pub(crate) fn mark_unsynced(&self) {
        self.state.lock().unsynced = true;
    }

    /// Marks the queue closing and waits until the writer has stored what
    /// was queued and stopped.
    pub(crate) fn close_and_wait(&self) {
        let mut q = self.state.lock();
        q.closing = true;
        self.ready.notify_one();
        while !q.stopped {
            self.done.wait(&mut q);
        }
    }
}

/// The broker subscription through which a stream captures its subjects.
pub(crate) struct CaptureSink {
    pub(crate) stream: Weak<StreamInner>,
    /// The stream's end-of-batch round, one allocation for the sink's life:
    /// `DeliveryCtx::defer` keeps one task per pointer, so every message a
    /// publisher captures in a batch shares one round.
    round: Arc<InlineRound>,
}

impl CaptureSink {
    pub(crate) fn new(stream: Weak<StreamInner>) -> Self {
        Self {
            round: Arc::new(InlineRound(stream.clone())),
            stream,
        }
    }
}

impl Sink for CaptureSink {
    fn deliver(
        &self,
        _sub: &Subscriber,
        msg: &Message,
        ctx: &mut DeliveryCtx,
    ) -> herald_core::Delivery {
        let Some(inner) = self.stream.upgrade() else {
            return herald_core::Delivery::Closed;
        };
        let pending = Pending {
            msg: msg.clone(),
            reply: Reply::Subject,
            refused: false,
        };
        match inner.sync {
            // Group commit: the writer thread stores and fsyncs rounds.
            SyncPolicy::Always => inner.queue.push(pending, true),
            // No fsync to wait for: the publisher stores everything it
            // captured in this batch itself, with one write, when the
            // batch ends. No thread hand-off on the way to the ack.
            SyncPolicy::Interval(_) => {
                inner.queue.push(pending, false);
                ctx.defer(self.round.clone());
            }
        }
        herald_core::Delivery::Delivered
    }
}

/// A stream's round of storing, run by a publisher when its batch ends.
struct InlineRound(Weak<StreamInner>);

impl herald_core::Deferred for InlineRound {
    fn run(&self) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        let acks = store_batch(&inner);
        if acks.wrote {
            inner.queue.state.lock().unsynced = true;
        }
        acks.send(&inner);
    }
}

/// Recent message ids, for de-duplication inside the window.
#[derive(Debug, Default)]
pub(crate) struct Dedup {
    ids: AHashMap<String, u64>,
    order: VecDeque<(i64, String)>,
    /// The id of the last stored message (`None` when it had none).
    pub(crate) last_id: Option<String>,
}

impl Dedup {
    /// Every id in the window: (id, seq, time), oldest first.
    pub(crate) fn entries(&self) -> Vec<(String, u64, i64)> {
        self.order
            .iter()
            .filter_map(|(time, id)| Some((id.clone(), *self.ids.get(id)?, *time)))
            .collect()
    }

    /// How many ids the window holds.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn insert(&mut self, id: String, seq: u64, time: i64) {
        self.ids.insert(id.clone(), seq);
        self.order.push_back((time, id));
    }

    fn expire(&mut self, now: i64, window: Duration) {
        let window = i64::try_from(window.as_nanos()).unwrap_or(i64::MAX);
        while let Some((time, _)) = self.order.front() {
            if now.saturating_sub(*time) <= window {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.ids.remove(&id);
            }
        }
    }
}

/// Starts the writer thread of a stream.
pub(crate) fn spawn(inner: Arc<StreamInner>) -> Result<(), StoreError> {
    let dir = inner.dir.clone();
    std::thread::Builder::new()
        .name(format!("stream-{}", inner.name))
        .spawn(move || run(&inner))
        .map(|_| ())
        .map_err(|e| StoreError::io("spawn writer thread for", dir, e))
}

fn run(inner: &StreamInner) {
    let mut last_sync = Instant::now();
    loop {
        let closing = {
            let mut q = inner.queue.state.lock();
            if q.items.is_empty() && !q.closing {
                let wait = match inner.sync {
                    SyncPolicy::Interval(d) if q.unsynced => d.saturating_sub(last_sync.elapsed()),
                    SyncPolicy::Interval(d) => d.min(Duration::from_secs(1)),
                    SyncPolicy::Always => Duration::from_secs(1),
                };
                // An expiry or a schedule due sooner (a follower's timers
                // are its leader's to decide).
                let timer = match *inner.replica.read() {
                    Replica::Follower => i64::MAX,
                    _ => inner.next_timer.load(Ordering::Relaxed),
                };
                let until_timer = u64::try_from(timer.saturating_sub(now_nanos())).unwrap_or(0);
                let wait = wait.min(Duration::from_nanos(until_timer));
                inner.queue.ready.wait_for(&mut q, wait);
            }
            q.closing
        };
        // Also picks up in-process publishes, and expires old messages.
        let acks = store_batch(inner);
        let unsynced = {
            let mut q = inner.queue.state.lock();
            q.unsynced |= acks.wrote;
            q.unsynced
        };
        let due = match inner.sync {
            SyncPolicy::Always => unsynced,
            SyncPolicy::Interval(d) => unsynced && (last_sync.elapsed() >= d || closing),
        };
        if due {
            inner.queue.state.lock().unsynced = false;
            sync(inner);
            last_sync = Instant::now();
        }
        acks.send(inner);
        if closing {
            let mut q = inner.queue.state.lock();
            if q.items.is_empty() {
                q.stopped = true;
                inner.queue.done.notify_all();
                return;
            }
        }
    }
}

/// Syncs the active segment now, whatever the policy.
/// The ids a round stored, to a replicated stream's `dedup.log` (rewritten
/// with just the window when it has grown well past it).
fn log_ids(data: &mut super::StreamData, records: &[Record]) -> Result<(), crate::StoreError> {
    let Some(log) = &mut data.dedup_log else {
        return Ok(());
    };
    let ids: Vec<(&str, u64, i64)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Message(m) => {
                let id = m.headers.as_ref()?.get(MSG_ID)?;
                Some((id, m.seq, m.time))
            }
            _ => None,
        })
        .collect();
    log.append(&ids)?;
    if log.wants_rewrite(data.dedup.len()) {
        log.rewrite(&data.dedup.entries())?;
    }
    Ok(())
}

/// The files a sync forces to disk: the active segment, and a replicated
/// stream's `dedup.log`.
fn files_to_sync(inner: &StreamInner) -> Vec<Arc<std::fs::File>> {
    let data = inner.state.lock();
    let segment = data.log.as_ref().map(crate::FileLog::active_file);
    let ids = data
        .dedup_log
        .as_ref()
        .map(super::dedup_log::DedupLog::file);
    segment.into_iter().chain(ids).collect()
}

pub(super) fn sync_now(inner: &StreamInner) -> std::io::Result<()> {
    for file in files_to_sync(inner) {
        file.sync_data()?;
    }
    Ok(())
}

fn sync(inner: &StreamInner) {
    let files = files_to_sync(inner);
    if files.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    let synced = files.iter().try_for_each(|f| f.sync_data());
    inner
        .broker
        .timings()
        .stream_fsync
        .record(started.elapsed());
    if let Err(e) = synced {
        tracing::error!(stream = %inner.name, "fsync failed: {e}");
        inner.state.lock().failed = Some(format!("fsync failed: {e}"));
    }
}

/// Outcomes of one round, sent after the data is durable.
pub(super) struct Acks {
    pub(super) outcomes: Vec<(
        Reply,
        Option<herald_core::Subject>,
        Result<PubAck, ApiError>,
    )>,
    pub(super) wrote: bool,
    pub(super) last_seq: u64,
}

impl Acks {
    /// Nothing to acknowledge now (a leader's round went to consensus).
    fn none(last_seq: u64) -> Self {
        Self {
            outcomes: Vec::new(),
            wrote: false,
            last_seq,
        }
    }

    pub(super) fn send(self, inner: &StreamInner) {
        inner.stored.send_if_modified(|last| {
            let changed = *last != self.last_seq;
            *last = self.last_seq;
            changed
        });
        for (reply, subject, outcome) in self.outcomes {
            match reply {
                Reply::Callback(tx) => {
                    let _ = tx.send(outcome);
                }
                Reply::Subject => {
                    if let Some(subject) = subject {
                        let body = match &outcome {
                            Ok(ack) => serde_json::to_vec(ack),
                            Err(error) => serde_json::to_vec(&serde_json::json!({
                                "error": error, "stream": inner.name, "seq": 0
                            })),
                        };
                        if let Ok(body) = body {
                            inner.broker.publish_message(&Message::new(subject, body));
                        }
                    }
                }
            }
        }
    }
}

/// Stores everything queued. The queue is emptied under the state lock, so
/// rounds run by different threads store publishes in the order they were
/// queued. A replicated stream's leader proposes the round to its consensus
/// log instead (acks follow once a quorum has it); a follower stores
/// nothing of its own.
fn store_batch(inner: &StreamInner) -> Acks {
    let mut data = inner.state.lock();
    let batch = {
        let mut q = inner.queue.state.lock();
        q.bytes = 0;
        std::mem::take(&mut q.items)
    };
    let role = inner.replica.read().clone();
    match role {
        Replica::Local => {}
        Replica::Leader(replicator) => {
            super::replica::propose(inner, &data, &*replicator, batch);
            return Acks::none(data.index.last_seq());
        }
        Replica::Follower => {
            let outcomes = batch
                .into_iter()
                .map(|p| (p.reply, p.msg.reply, Err(super::replica::not_leader())))
                .collect();
            return Acks {
                outcomes,
                wrote: false,
                last_seq: data.index.last_seq(),
            };
        }
    }
    // Stored times never go backwards (a clock stepped back does not
    // reorder the stream), so finding a time is a binary search.
    let now = now_nanos().max(data.index.last_time());
    let no_ack = data.config.no_ack;
    let mut replies = Vec::with_capacity(batch.len());
    let mut messages = Vec::with_capacity(batch.len());
    for pending in batch {
        let subject = if no_ack {
            None
        } else {
            pending.msg.reply.clone()
        };
        replies.push((pending.reply, subject));
        messages.push((!pending.refused).then_some(pending.msg));
    }
    let (results, wrote) = store_round(inner, &mut data, &messages, now, None);
    Acks {
        outcomes: replies
            .into_iter()
            .zip(results)
            .map(|((reply, subject), outcome)| (reply, subject, outcome))
            .collect(),
        wrote,
        last_seq: data.index.last_seq(),
    }
}

/// One round of storing: each message (`None`: refused before queueing)
/// checked and stored at time `now`, then limits, subject delete markers
/// and due schedules, all written with one append — with `mark`, the
/// consensus log position this round applies, in the same append.
/// Deterministic in the stream's contents, `messages` and `now`, so that
/// replicas applying the same round agree. Returns each message's outcome
/// and whether anything was written.
pub(super) fn store_round(
    inner: &StreamInner,
    data: &mut super::StreamData,
    messages: &[Option<Message>],
    now: i64,
    mark: Option<AppliedMark>,
) -> (Vec<Result<PubAck, ApiError>>, bool) {
    let window = data.config.duplicate_window;
    data.dedup.expire(now, window);
    let mut records = Vec::with_capacity(messages.len() + 1);
    let mut outcomes = Vec::with_capacity(messages.len());
    let mut removed = Vec::new();
    for msg in messages {
        let outcome = match msg {
            None => Err(ApiError::new(
                503,
                10077,
                "stream is busy: too many publishes waiting",
            )),
            Some(msg) => store_one(
                data,
                &inner.name,
                msg,
                now,
                (&mut records, &mut removed),
                Author::Client,
            ),
        };
        outcomes.push(outcome);
    }
    removed.extend(data.enforce_limits(now));
    for subject in std::mem::take(&mut data.markers_due) {
        let marker = marker_message(subject, data.config.subject_delete_marker_ttl);
        let stored = store_one(
            data,
            &inner.name,
            &marker,
            now,
            (&mut records, &mut removed),
            Author::Stream,
        );
        if let Err(e) = stored {
            tracing::warn!(stream = %inner.name, "subject delete marker refused: {e}");
        }
    }
    for (seq, due) in data.schedules.take_due(now) {
        let next = data.schedules.next(seq, due, now);
        let next_at = next.as_ref().map(|(at, _)| *at);
        let Some(message) = scheduled_message(data, seq, next.map(|(_, text)| text)) else {
            // Its message is gone or replaced: the schedule with it.
            data.schedules.forget(seq);
            continue;
        };
        let stored = store_one(
            data,
            &inner.name,
            &message,
            now,
            (&mut records, &mut removed),
            Author::Stream,
        );
        if let Err(e) = stored {
            tracing::warn!(stream = %inner.name, seq, "scheduled message refused: {e}");
        }
        match next_at {
            Some(at) => data.schedules.rearm(seq, at),
            None => data.schedules.forget(seq),
        }
    }
    let messages_written = !records.is_empty();
    if let Some(mark) = mark {
        // One append: what the round stored, what it removed, and the mark
        // (a crash leaves all of it or none).
        records.extend(data.removal_records(&std::mem::take(&mut removed)));
        records.push(Record::Applied(mark));
        data.applied = Some(mark);
    }
    // A replica's ids go first: a crash between the two writes leaves ids
    // of a round not stored (dropped on recovery: past the last sequence),
    // never a stored round without its ids.
    if let Err(e) = log_ids(data, &records) {
        tracing::error!(stream = %inner.name, "writing message ids failed: {e}");
        data.failed = Some(e.to_string());
    }
    let mut wrote = false;
    if !records.is_empty() {
        wrote = true;
        if let Some(log) = &mut data.log {
            let started = std::time::Instant::now();
            let appended = log.append(&records);
            inner
                .broker
                .timings()
                .stream_append
                .record(started.elapsed());
            match appended {
                Ok(locations) => {
                    for (record, location) in records.iter().zip(locations) {
                        if let Record::Message(m) = record
                            && let Some(slot) = data.index.get_mut(m.seq)
                        {
                            slot.location = Some(location);
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(stream = %inner.name, "write failed: {e}");
                    data.failed = Some(e.to_string());
                    let err = ApiError::storage(&e);
                    for outcome in &mut outcomes {
                        if outcome.as_ref().is_ok_and(|a| !a.duplicate) {
                            *outcome = Err(err.clone());
                        }
                    }
                }
            }
        }
    }
    let removals = if removed.is_empty() && mark.is_some() {
        data.drop_old_segments()
    } else {
        data.write_removals(removed)
    };
    if let Err(e) = removals {
        tracing::error!(stream = %inner.name, "writing removals failed: {e}");
    }
    // Interest streams keep nothing nobody is interested in.
    if messages_written && data.config.retention == Retention::Interest {
        let unwanted: Vec<u64> = records
            .iter()
            .filter_map(|r| match r {
                Record::Message(m)
                    if !data.interest.iter().any(|(_, filters)| {
                        filters.is_empty() || filters.iter().any(|f| f.matches(&m.subject))
                    }) =>
                {
                    Some(m.seq)
                }
                _ => None,
            })
            .collect();
        if let Err(e) = data.remove_messages(unwanted) {
            tracing::error!(stream = %inner.name, "removing unwanted messages failed: {e}");
        }
    }
    set_next_timer(inner, data.next_timer());
    (outcomes, wrote)
}

/// The message left on a subject whose last message aged out: no payload,
/// the reason, a TTL of its own and a rollup (exactly nats-server's bytes).
fn marker_message(subject: herald_core::Subject, ttl: Duration) -> Message {
    let mut msg = Message::new(subject, Bytes::new());
    msg.headers = herald_core::Headers::builder()
        .insert(super::ttl::MARKER_REASON, "MaxAge")
        .and_then(|b| b.insert(super::ttl::TTL_HEADER, &super::ttl::go_seconds(ttl)))
        .and_then(|b| b.insert(ROLLUP, "sub"))
        .ok()
        .map(|b| b.build());
    msg
}

/// What the schedule stored at `seq` produces now, if it is still the
/// schedule of its subject (a later message there ends it, as in nats-server).
fn scheduled_message(data: &super::StreamData, seq: u64, next: Option<String>) -> Option<Message> {
    let subject = data.index.get(seq)?.subject.clone();
    if data.index.subject(subject.as_bytes())?.last() != seq {
        return None;
    }
    let as_message = |m: crate::record::StoredMessage| Message {
        subject: m.subject,
        reply: None,
        headers: m.headers,
        payload: m.payload,
        extension: None,
    };
    let schedule = as_message(data.read(seq).ok().flatten()?);
    let source = super::schedule::source_of(&schedule)
        .and_then(|s| data.index.subject(s.as_bytes()).map(|i| i.last()))
        .and_then(|last| data.read(last).ok().flatten())
        .map(as_message);
    super::schedule::produced(&schedule, source.as_ref(), next)
}

/// Records when the next timer is due, waking the writer thread if that is
/// sooner than it planned. Under the queue lock, which the writer holds from
/// reading `next_timer` until it sleeps: no wake-up is lost.
pub(crate) fn set_next_timer(inner: &StreamInner, next_timer: i64) {
    let _queue = inner.queue.state.lock();
    let before = inner.next_timer.swap(next_timer, Ordering::Relaxed);
    if next_timer < before {
        inner.queue.ready.notify_one();
    }
}
