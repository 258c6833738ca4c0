//! A consumer's delivery state machine: where it is in the stream, what is
//! delivered and not yet acknowledged, what is due for redelivery, the pull
//! requests waiting, and push flow control. No I/O and no clock of its own:
//! the driver passes `now` and publishes what [`ConsumerState::pump`] returns.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use herald_core::{Headers, Message, Pattern, Subject};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::ack::{AckKind, ack_subject};
use super::pull::{PullRequest, status};
use crate::consumer_config::{AckPolicy, ConsumerConfig, DeliverPolicy};
use crate::info::SequencePair;
use crate::record::StoredMessage;
use crate::stream::{CursorId, StreamData, SubjectFilter};

/// One delivered, unacknowledged message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingMsg {
    pub(crate) consumer_seq: u64,
    pub(crate) deliveries: u64,
    /// When to redeliver; `None` while queued for redelivery.
    #[serde(skip)]
    pub(crate) deadline: Option<Instant>,
    /// When it was last delivered (unknown for one restored from disk).
    #[serde(skip)]
    pub(crate) delivered_at: Option<Instant>,
}

/// A waiting pull request.
#[derive(Debug)]
pub(crate) struct Waiting {
    pub(crate) reply: Subject,
    pub(crate) request: PullRequest,
    pub(crate) left: u64,
    pub(crate) bytes_left: u64,
    pub(crate) expires: Option<Instant>,
    pub(crate) last_sent: Instant,
    pub(crate) delivered_any: bool,
}

/// What the consumer persists (durable consumers of file streams), and
/// what a replicated consumer's group agrees on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SavedState {
    pub(crate) next_seq: u64,
    pub(crate) delivered: SequencePair,
    pub(crate) ack_floor: SequencePair,
    pub(crate) pending: Vec<(u64, PendingMsg)>,
}

/// Something for the driver to do after a pump.
#[derive(Debug)]
pub(crate) enum Effect {
    /// Publish `msg` to the subscribers of `to` (it keeps its own subject).
    Deliver { to: Subject, msg: Message },
    /// Publish a message as is.
    Publish(Message),
    /// The message was acknowledged for good (or terminated): retention may remove it.
    Done(u64),
    /// Dead-letter `seq` (max deliveries reached or terminated).
    DeadLetter {
        seq: u64,
        deliveries: u64,
        reason: &'static str,
    },
}

/// The state machine.
#[derive(Debug)]
pub(crate) struct ConsumerState {
    pub(crate) config: ConsumerConfig,
    pub(crate) filters: Vec<Pattern>,
    /// Only messages whose headers pass it are delivered.
    pub(crate) header_filter: Option<herald_core::HeaderFilter>,
    /// Where the consumer reads new messages, in the stream's index: the
    /// next sequence and the count of what it has yet to see.
    cursor: CursorId,
    /// The cursor's next sequence, as of the last cursor move (kept here
    /// for what runs without the stream's lock: saving, interest retention).
    pub(crate) next_seq: u64,
    pub(crate) delivered: SequencePair,
    pub(crate) ack_floor: SequencePair,
    pub(crate) pending: BTreeMap<u64, PendingMsg>,
    /// Entries of `pending` delivered more than once.
    redelivered: u64,
    deadlines: BTreeSet<(Instant, u64)>,
    /// Due for (re)delivery: redeliveries (also in `pending`) and the
    /// not yet sent last-per-subject messages a consumer starts with.
    redeliver: BTreeSet<u64>,
    /// Entries of `redeliver` not in `pending` (first deliveries).
    initial: u64,
    pub(crate) waiting: VecDeque<Waiting>,
    /// Push: when something was last sent (for idle heartbeats).
    push_last_sent: Instant,
    /// Push flow control: bytes sent since the last answered request, and
    /// the reply subject of the outstanding request.
    fc_bytes: u64,
    fc_outstanding: Option<String>,
    pub(crate) last_active: Instant,
    pub(crate) dirty: bool,
}

mod pump;

/// Bytes a push consumer with flow control sends before it asks the client.
const FLOW_CONTROL_WINDOW: u64 = 2 * 1024 * 1024;

impl ConsumerState {
    /// A new consumer on a stream whose index is `data`; its cursor joins
    /// the index (give it back with [`release`](Self::release)).
    pub(crate) fn new(config: ConsumerConfig, data: &mut StreamData, now: Instant) -> Self {
        let filters = config.filters();
        let selected = SubjectFilter::new(&filters);
        let header_filter = config.compiled_header_filter();
        let index = &data.index;
        let mut redeliver = BTreeSet::new();
        let next_seq = match config.deliver_policy {
            DeliverPolicy::All => index.first_seq(),
            DeliverPolicy::New => index.last_seq() + 1,
            DeliverPolicy::Last => index
                .last_matching(&selected)
                .unwrap_or(index.last_seq() + 1),
            DeliverPolicy::ByStartSequence => config.opt_start_seq,
            DeliverPolicy::ByStartTime => {
                let time = config
                    .opt_start_time
                    .as_deref()
                    .and_then(crate::time::parse_rfc3339)
                    .unwrap_or(0);
                index
                    .first_at_or_after(time)
                    .unwrap_or(index.last_seq() + 1)
            }
            DeliverPolicy::LastPerSubject => {
                // The last message of every subject first, then everything new.
                redeliver.extend(index.last_per_subject(&selected));
                index.last_seq() + 1
            }
        };
        let cursor = data.index.add_cursor(selected, next_seq);
        let mut state = Self {
            config,
            filters,
            header_filter,
            cursor,
            next_seq,
            delivered: SequencePair::default(),
            ack_floor: SequencePair::default(),
            pending: BTreeMap::new(),
            redelivered: 0,
            deadlines: BTreeSet::new(),
            redeliver: BTreeSet::new(),
            initial: 0,
            waiting: VecDeque::new(),
            push_last_sent: now,
            fc_bytes: 0,
            fc_outstanding: None,
            last_active: now,
            dirty: true,
        };
        // Where delivery starts, as nats-server reports it: just before the
        // first message it will deliver.
        let start = redeliver.first().copied().unwrap_or(next_seq);
        state.delivered.stream_seq = start.saturating_sub(1);
        state.ack_floor.stream_seq = start.saturating_sub(1);
        // Last-per-subject starts from these "initial" messages.
        state.initial = redeliver.len() as u64;
        state.redeliver = redeliver;
        state
    }

    /// Gives the cursor back to the index (the consumer is going away).
    pub(crate) fn release(&self, data: &mut StreamData) {
        data.index.remove_cursor(self.cursor);
    }

    /// Takes new filters (a config update): the cursor counts again.
    pub(crate) fn refilter(&mut self, filters: Vec<Pattern>, data: &mut StreamData) {
        let selected = SubjectFilter::new(&filters);
        data.index
            .reset_cursor(self.cursor, Some(selected), self.next_seq);
        self.filters = filters;
    }

    /// Restores saved progress; pending messages are redelivered after a full ack wait.
    pub(crate) fn restore(&mut self, saved: SavedState, data: &mut StreamData, now: Instant) {
        self.next_seq = saved.next_seq;
        data.index.reset_cursor(self.cursor, None, saved.next_seq);
        self.delivered = saved.delivered;
        self.ack_floor = saved.ack_floor;
        self.redeliver.clear();
        self.initial = 0;
        self.pending.clear();
        self.deadlines.clear();
        self.redelivered = 0;
        for (seq, mut p) in saved.pending {
            let deadline = now + self.ack_wait(p.deliveries);
            p.deadline = Some(deadline);
            self.deadlines.insert((deadline, seq));
            self.pending_insert(seq, p);
        }
        self.dirty = false;
    }

    /// What to persist.
    pub(crate) fn saved(&self) -> SavedState {
        SavedState {
            next_seq: self.next_seq,
            delivered: self.delivered,
            ack_floor: self.ack_floor,
            pending: self.pending.iter().map(|(s, p)| (*s, *p)).collect(),
        }
    }

    /// Records a delivered, unacknowledged message (replacing its earlier
    /// record), keeping the count of redelivered ones.
    fn pending_insert(&mut self, seq: u64, p: PendingMsg) {
        if let Some(old) = self.pending.insert(seq, p)
            && old.deliveries > 1
        {
            self.redelivered -= 1;
        }
        if p.deliveries > 1 {
            self.redelivered += 1;
        }
    }

    fn pending_remove(&mut self, seq: u64) -> Option<PendingMsg> {
        let p = self.pending.remove(&seq)?;
        if p.deliveries > 1 {
            self.redelivered -= 1;
        }
        Some(p)
    }

    fn ack_wait(&self, deliveries: u64) -> Duration {
        let i = usize::try_from(deliveries.saturating_sub(1)).unwrap_or(usize::MAX);
        match self.config.backoff.get(i).or(self.config.backoff.last()) {
            Some(d) => *d,
            None => self.config.ack_wait,
        }
    }

    /// Matching messages not yet delivered: the cursor's count (kept by the
    /// index as messages come and go), and last-per-subject messages not
    /// yet sent.
    pub(crate) fn num_pending(&self, data: &StreamData) -> u64 {
        data.index.cursor_pending(self.cursor) + self.initial
    }

    /// Redelivered messages still pending.
    pub(crate) fn num_redelivered(&self) -> u64 {
        self.redelivered
    }

    /// Whether `seq` is acknowledged as far as this consumer is concerned
    /// (interest retention).
    pub(crate) fn has_acked(&self, seq: u64) -> bool {
        seq < self.next_seq && !self.pending.contains_key(&seq) && !self.redeliver.contains(&seq)
    }

    /// The earliest time the driver must wake at.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        let mut at = self.deadlines.first().map(|(t, _)| *t);
        let mut earliest = |t: Instant| at = Some(at.map_or(t, |a| a.min(t)));
        for w in &self.waiting {
            if let Some(e) = w.expires {
                earliest(e);
            }
            if !w.request.idle_heartbeat.is_zero() {
                earliest(w.last_sent + w.request.idle_heartbeat);
            }
        }
        if self.config.is_push() && !self.config.idle_heartbeat.is_zero() {
            earliest(self.push_last_sent + self.config.idle_heartbeat);
        }
        at
    }

    /// Applies an ack; the time from delivery to an ack goes to `acked`.
    /// Returns effects (retention, dead letters).
    pub(crate) fn ack(
        &mut self,
        seq: u64,
        kind: &AckKind,
        now: Instant,
        acked: &herald_core::LatencyHistogram,
    ) -> Vec<Effect> {
        self.last_active = now;
        let mut effects = Vec::new();
        let record = |p: &PendingMsg| {
            if let Some(at) = p.delivered_at {
                acked.record(now.saturating_duration_since(at));
            }
        };
        match kind {
            AckKind::Ack | AckKind::Next(_) => {
                if self.config.ack_policy == AckPolicy::All {
                    let upto: Vec<u64> = self.pending.range(..=seq).map(|(s, _)| *s).collect();
                    for s in upto {
                        if let Some(p) = self.forget(s) {
                            record(&p);
                        }
                        effects.push(Effect::Done(s));
                    }
                } else if let Some(p) = self.forget(seq) {
                    record(&p);
                    effects.push(Effect::Done(seq));
                }
            }
            AckKind::Nak(delay) => {
                if let Some(p) = self.pending.get(&seq).copied() {
                    self.unschedule(seq);
                    match delay {
                        Some(d) if !d.is_zero() => self.schedule(seq, now + *d),
                        _ => self.queue_redelivery(seq, p.deliveries, &mut effects),
                    }
                }
            }
            AckKind::Progress => {
                if let Some(p) = self.pending.get(&seq).copied()
                    && p.deadline.is_some()
                {
                    self.unschedule(seq);
                    self.schedule(seq, now + self.ack_wait(p.deliveries));
                }
            }
            AckKind::Term(_) => {
                if let Some(p) = self.forget(seq) {
                    effects.push(Effect::DeadLetter {
                        seq,
                        deliveries: p.deliveries,
                        reason: "terminated",
                    });
                    effects.push(Effect::Done(seq));
                }
            }
        }
        self.update_ack_floor();
        self.dirty = true;
        effects
    }

    fn forget(&mut self, seq: u64) -> Option<PendingMsg> {
        let p = self.pending_remove(seq);
        if let Some(d) = p.and_then(|p| p.deadline) {
            self.deadlines.remove(&(d, seq));
        }
        if self.redeliver.remove(&seq) && p.is_none() {
            self.initial -= 1;
        }
        p
    }

    fn unschedule(&mut self, seq: u64) {
        if let Some(p) = self.pending.get_mut(&seq)
            && let Some(d) = p.deadline.take()
        {
            self.deadlines.remove(&(d, seq));
        }
    }

    fn schedule(&mut self, seq: u64, at: Instant) {
        if let Some(p) = self.pending.get_mut(&seq) {
            p.deadline = Some(at);
            self.deadlines.insert((at, seq));
        }
    }

    /// Queues `seq` for redelivery, or dead-letters it if it has had its deliveries.
    fn queue_redelivery(&mut self, seq: u64, deliveries: u64, effects: &mut Vec<Effect>) {
        let max = self.config.max_deliver;
        if max > 0 && deliveries >= max as u64 {
            self.forget(seq);
            effects.push(Effect::DeadLetter {
                seq,
                deliveries,
                reason: "max_deliveries",
            });
            effects.push(Effect::Done(seq));
            self.update_ack_floor();
        } else {
            self.redeliver.insert(seq);
        }
    }

    fn update_ack_floor(&mut self) {
        match self.pending.iter().next() {
            Some((seq, p)) => {
                if seq.saturating_sub(1) > self.ack_floor.stream_seq {
                    self.ack_floor = SequencePair {
                        consumer_seq: p.consumer_seq.saturating_sub(1),
                        stream_seq: seq - 1,
                    };
                }
            }
            None => self.ack_floor = self.delivered,
        }
    }

    /// Adds a pull request (or refuses it with a status).
    pub(crate) fn add_request(
        &mut self,
        reply: Subject,
        request: PullRequest,
        now: Instant,
    ) -> Option<Message> {
        self.last_active = now;
        let config = &self.config;
        if config.is_push() {
            return Some(status(&reply, 409, "Consumer is push based", &[]));
        }
        if config.max_batch > 0 && request.batch > config.max_batch as u64 {
            return Some(status(
                &reply,
                409,
                &format!("Exceeded MaxRequestBatch of {}", config.max_batch),
                &[],
            ));
        }
        if !config.max_expires.is_zero() && request.expires > config.max_expires {
            return Some(status(
                &reply,
                409,
                &format!("Exceeded MaxRequestExpires of {:?}", config.max_expires),
                &[],
            ));
        }
        if config.max_bytes > 0 && request.max_bytes > config.max_bytes as u64 {
            return Some(status(
                &reply,
                409,
                &format!("Exceeded MaxRequestMaxBytes of {}", config.max_bytes),
                &[],
            ));
        }
        if self.waiting.len() as i64 >= config.max_waiting.max(1) {
            return Some(status(&reply, 409, "Exceeded MaxWaiting", &[]));
        }
        let expires = (!request.expires.is_zero()).then(|| now + request.expires);
        self.waiting.push_back(Waiting {
            reply,
            left: request.batch,
            bytes_left: request.max_bytes,
            expires,
            last_sent: now,
            delivered_any: false,
            request,
        });
        None
    }

    /// A flow-control reply arrived.
    pub(crate) fn flow_control_answered(&mut self, subject: &str) {
        if self.fc_outstanding.as_deref() == Some(subject) {
            self.fc_outstanding = None;
            self.fc_bytes = 0;
        }
    }

    fn at_ack_limit(&self) -> bool {
        self.config.ack_policy != AckPolicy::None
            && self.config.max_ack_pending > 0
            && self.pending.len() as u64 >= self.config.max_ack_pending as u64
    }

    /// The next message to deliver without taking it: a redelivery first,
    /// else the next new matching message unless at the ack-pending limit.
    /// New messages that fail the header filter are skipped for good on
    /// the way (the consumer never wants them).
    fn peek_message(&mut self, data: &mut StreamData) -> Option<(u64, StoredMessage)> {
        for &seq in &self.redeliver {
            if let Ok(Some(msg)) = data.read(seq) {
                return Some((seq, msg));
            }
        }
        if self.at_ack_limit() {
            return None;
        }
        loop {
            let found = data.index.cursor_peek(self.cursor);
            self.cursor_moved(data);
            let seq = found?;
            let msg = data.read(seq).ok().flatten()?;
            if self.passes_header_filter(&msg) {
                return Some((seq, msg));
            }
            data.index.cursor_take(self.cursor, seq);
            self.cursor_moved(data);
        }
    }

    /// Copies the cursor's position after it moved (a move is progress to save).
    fn cursor_moved(&mut self, data: &StreamData) {
        let next = data.index.cursor_next(self.cursor);
        if next != self.next_seq {
            self.next_seq = next;
            self.dirty = true;
        }
    }

    fn passes_header_filter(&self, msg: &StoredMessage) -> bool {
        let Some(filter) = &self.header_filter else {
            return true;
        };
        let view = herald_core::Message {
            subject: msg.subject.clone(),
            reply: None,
            headers: msg.headers.clone(),
            payload: msg.payload.clone(),
            extension: None,
        };
        filter.matches(&view)
    }

    /// Takes what [`peek_message`](Self::peek_message) returned.
    fn take_message(&mut self, seq: u64, data: &mut StreamData) {
        if self.redeliver.remove(&seq) {
            if !self.pending.contains_key(&seq) {
                self.initial -= 1;
            }
        } else {
            data.index.cursor_take(self.cursor, seq);
            self.cursor_moved(data);
        }
    }

    /// Forgets redeliveries of messages that are gone (removed by limits,
    /// a purge or a delete while they waited): they hold no place under
    /// `max_ack_pending` nor the ack floor back.
    fn forget_gone_redeliveries(&mut self, data: &StreamData) {
        let gone: Vec<u64> = self
            .redeliver
            .iter()
            .copied()
            .filter(|&s| data.index.get(s).is_none())
            .collect();
        if gone.is_empty() {
            return;
        }
        for seq in gone {
            self.forget(seq);
        }
        self.update_ack_floor();
        self.dirty = true;
    }

    fn next_message(&mut self, data: &mut StreamData) -> Option<(u64, StoredMessage)> {
        let (seq, msg) = self.peek_message(data)?;
        self.take_message(seq, data);
        Some((seq, msg))
    }

    /// Records one delivery and builds the message for the client.
    fn deliver(
        &mut self,
        stream: &str,
        consumer: &str,
        seq: u64,
        msg: StoredMessage,
        data: &StreamData,
        now: Instant,
    ) -> Message {
        self.delivered.consumer_seq += 1;
        let consumer_seq = self.delivered.consumer_seq;
        let deliveries = self.pending.get(&seq).map_or(1, |p| p.deliveries + 1);
        if seq > self.delivered.stream_seq {
            self.delivered.stream_seq = seq;
        }
        if self.config.ack_policy == AckPolicy::None {
            self.forget(seq);
            self.update_ack_floor();
        } else {
            self.unschedule(seq);
            let at = now + self.ack_wait(deliveries);
            self.pending_insert(
                seq,
                PendingMsg {
                    consumer_seq,
                    deliveries,
                    deadline: Some(at),
                    delivered_at: Some(now),
                },
            );
            self.deadlines.insert((at, seq));
        }
        self.dirty = true;
        let pending = self.num_pending(data);
        let reply = ack_subject(
            stream,
            consumer,
            deliveries,
            seq,
            consumer_seq,
            msg.time,
            pending,
        );
        let mut out = Message {
            subject: msg.subject,
            reply: Some(reply),
            headers: msg.headers,
            payload: msg.payload,
            extension: None,
        };
        if self.config.headers_only {
            let size = out.payload.len().to_string();
            let headers = match &out.headers {
                Some(h) => h.appended("Nats-Msg-Size", &size).ok(),
                None => Headers::builder()
                    .insert("Nats-Msg-Size", &size)
                    .ok()
                    .map(|b| b.build()),
            };
            out.headers = headers;
            out.payload = Bytes::new();
        }
        out
    }
}

/// Four random characters for flow-control reply subjects.
fn random_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0x9e37_79b9);
    let n = NEXT.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    format!("{:04x}", (n >> 16) & 0xffff)
}
