//! `Outbox`: a connection's bounded queue of encoded output.
//!
//! Publishers (on any thread) append wire frames; the connection's single
//! writer task takes everything pending in one swap and writes it with one
//! (vectored) write. Small frames are copied into one contiguous buffer;
//! payloads of [`LARGE_PAYLOAD`] bytes or more are kept as shared [`Bytes`]
//! chunks so that big messages are never copied per receiver. The pending
//! byte count is bounded: past the limit the [`SlowConsumerPolicy`] applies.
//! The writer is woken only when the outbox goes from empty to non-empty, so
//! a burst of frames costs one wake-up.
//!
//! Pushes do not wake the writer themselves: they record the outbox in the
//! publisher's [`DeliveryCtx`], which wakes each writer once per batch.
//! Past three quarters of the limit a push also records the outbox as
//! congested: the publishing connection then waits (briefly, see
//! [`wait_for_room_all`]) for the writer to catch up before it reads more,
//! as nats-server stalls fast producers. A consumer that is merely slower
//! than its publisher is thereby throttled instead of disconnected.
//!
//! A consumer that stopped reading must not hold anyone up, though. The
//! writer reports every write that makes progress ([`Outbox::wrote`]); an
//! outbox whose writer has had bytes in flight without progress for
//! [`STUCK_AFTER`] is *stuck*, and publishers no longer wait for it: it
//! fills up to its limit at their full speed and meets the slow-consumer
//! policy there, or earlier when its writer passes the write deadline
//! ([`Outbox::write_timed_out`]). The limit counts what the writer has in
//! flight as well as what is queued, so a stuck consumer holds at most its
//! limit in memory.
//!
//! A connection's reader may write its own replies without the writer
//! task (see [`Outbox::write_now`]): whoever holds the write right takes the pending
//! output, so it reaches the socket in queue order.
//!
//! A publisher's own context may also *stage* its deliveries (see
//! [`DeliveryCtx::staging`]): frames for each receiver are encoded into a private batch
//! and handed over under one lock per receiver and batch, not per message.

mod direct;
pub(crate) mod staging;

pub use direct::DirectWrite;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

// tokio's clock, so tests can pause and advance it.
use tokio::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::sink::{CloseReason, Delivery, DeliveryCtx, SlowConsumerPolicy};

/// The most output a connection queues before its publishers wait.
pub const HIGH_WATER_CAP: usize = 4 * 1024 * 1024;

/// A batch buffer that grew past this is dropped after use, not kept, so a
/// burst does not pin its memory for the life of the connection.
const KEEP_CAPACITY: usize = 1024 * 1024;

/// Payloads at least this long are queued by reference instead of copied.
pub const LARGE_PAYLOAD: usize = 8 * 1024;

/// Longest a publishing connection waits, at the end of a batch, for the
/// congested receivers of that batch (all of them together).
pub const MAX_STALL: Duration = Duration::from_millis(50);

/// A writer with bytes in flight and no progress for this long is stuck:
/// publishers stop waiting for it (see the module docs).
pub const STUCK_AFTER: Duration = Duration::from_millis(200);

/// Output waiting to be written, handed to the writer in one piece.
#[derive(Debug, Default)]
pub struct OutboxBatch {
    buf: BytesMut,
    /// `(offset into buf, chunk)`: the chunk goes on the wire at that offset.
    large: Vec<(usize, Bytes)>,
    /// Bytes in `large`, kept so `len` is O(1) on the hot path.
    large_bytes: usize,
    /// Messages staged in it (and their frame bytes), counted into the
    /// outbox's totals when it is handed over.
    staged_msgs: u64,
    staged_bytes: u64,
}

impl OutboxBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.large.is_empty()
    }

    /// Total bytes in the batch.
    pub fn len(&self) -> usize {
        self.buf.len() + self.large_bytes
    }

    /// Empties the batch, keeping its buffer's capacity for reuse (unless a
    /// burst made it large).
    pub fn clear(&mut self) {
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = BytesMut::new();
        } else {
            self.buf.clear();
        }
        self.large.clear();
        self.large_bytes = 0;
        self.staged_msgs = 0;
        self.staged_bytes = 0;
    }

    /// The part of the batch after its first `written` bytes (in wire
    /// order), as a new batch: what a partial write left to do.
    fn after(&self, written: usize) -> OutboxBatch {
        let mut rest = OutboxBatch::new();
        let mut skip = written;
        let mut at = 0;
        let mut pieces = Vec::with_capacity(self.large.len() * 2 + 1);
        for (offset, chunk) in &self.large {
            pieces.push((&self.buf[at..*offset], None));
            pieces.push((&chunk[..], Some(chunk)));
            at = *offset;
        }
        pieces.push((&self.buf[at..], None));
        for (bytes, chunk) in pieces {
            if skip >= bytes.len() {
                skip -= bytes.len();
                continue;
            }
            match chunk {
                Some(chunk) => {
                    rest.large.push((rest.buf.len(), chunk.slice(skip..)));
                    rest.large_bytes += chunk.len() - skip;
                }
                None => rest.buf.extend_from_slice(&bytes[skip..]),
            }
            skip = 0;
        }
        rest
    }

    /// Moves everything in `other` to the end of this batch.
    fn append(&mut self, other: &mut OutboxBatch) {
        let shift = self.buf.len();
        self.buf.extend_from_slice(&other.buf);
        self.large.extend(
            other
                .large
                .drain(..)
                .map(|(offset, chunk)| (offset + shift, chunk)),
        );
        self.large_bytes += other.large_bytes;
        other.clear();
    }

    /// The bytes in wire order, as slices for a vectored write.
    pub fn slices(&self) -> Vec<&[u8]> {
        let mut out = Vec::with_capacity(self.large.len() * 2 + 1);
        let mut at = 0;
        for (offset, chunk) in &self.large {
            if *offset > at {
                out.push(&self.buf[at..*offset]);
            }
            out.push(chunk.as_ref());
            at = *offset;
        }
        if at < self.buf.len() {
            out.push(&self.buf[at..]);
        }
        out
    }

    /// The contiguous buffer when there are no large chunks (the common case).
    pub fn contiguous(&self) -> Option<&[u8]> {
        self.large.is_empty().then_some(&self.buf[..])
    }
}

/// A frame being appended: write small parts with [`FrameWriter::put`], and a
/// payload with [`FrameWriter::put_payload`] so large ones stay shared.
#[derive(Debug)]
pub struct FrameWriter<'a> {
    batch: &'a mut OutboxBatch,
}

impl FrameWriter<'_> {
    /// Appends bytes (copied).
    pub fn put(&mut self, bytes: &[u8]) {
        self.batch.buf.put_slice(bytes);
    }

    /// The underlying buffer, for encoders that write into a `BytesMut`.
    pub fn buf(&mut self) -> &mut BytesMut {
        &mut self.batch.buf
    }

    /// Appends a payload: copied when small, queued by reference when large.
    pub fn put_payload(&mut self, payload: &Bytes) {
        if payload.len() >= LARGE_PAYLOAD {
            let at = self.batch.buf.len();
            self.batch.large_bytes += payload.len();
            self.batch.large.push((at, payload.clone()));
        } else {
            self.batch.buf.put_slice(payload);
        }
    }
}

/// Who may write the connection's socket right now. Only the holder takes
/// pending output, so batches reach the socket in the order they were queued.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum WriteRight {
    /// Nobody is writing.
    #[default]
    Free,
    /// The writer task, from [`Outbox::next_batch`] until it asks for the next one.
    Task,
    /// A thread writing through the [`DirectWrite`] without waiting.
    Inline,
}

#[derive(Debug, Default)]
struct State {
    pending: OutboxBatch,
    closed: Option<CloseReason>,
    right: WriteRight,
    /// The socket, for writes that do not go through the writer task; let
    /// go on close, so a stale reference to the outbox does not hold the
    /// connection open.
    direct: Option<Arc<dyn DirectWrite>>,
    /// Since when the pending bytes have stayed at or above the soft limit.
    over_soft_since: Option<Instant>,
    /// Bytes the writer task took and has not yet reported written.
    in_flight: usize,
    /// When the writer last made progress (took a batch, wrote bytes).
    last_progress: Option<Instant>,
    /// The writer passed its write deadline under the drop-newest policy:
    /// messages are dropped until it makes progress again.
    timed_out: bool,
    /// When deliveries arrived in the empty pending batch, if this batch is
    /// one that is timed (see [`Outbox::with_timings`]).
    queued_since: Option<Instant>,
    /// Empty-to-queued transitions until the next timed one.
    sample_countdown: u8,
}

impl State {
    /// Bytes held for the client: queued and in flight.
    fn held(&self) -> usize {
        self.pending.len() + self.in_flight
    }

    /// Whether the writer has had bytes in flight without progress for
    /// [`STUCK_AFTER`].
    fn stuck(&self) -> bool {
        self.in_flight > 0
            && self
                .last_progress
                .is_some_and(|t| t.elapsed() >= STUCK_AFTER)
    }
}

/// A soft pending limit: a connection may stay above `bytes` for at most
/// `window` (Redis's `client-output-buffer-limit` soft limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftLimit {
    /// The soft limit in bytes.
    pub bytes: usize,
    /// How long the output may stay at or above it.
    pub window: Duration,
}

/// A connection's bounded output queue. See the module docs.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    /// `state.closed.is_some()`, readable without the lock.
    is_closed: AtomicBool,
    /// Bytes held (queued and in flight) as of the last change: what
    /// stagers check the limit against without taking the lock.
    pending_hint: AtomicUsize,
    wake: Notify,
    max_bytes: usize,
    policy: SlowConsumerPolicy,
    dropped: AtomicU64,
    /// Set while a publisher waits for room, so the writer only notifies then.
    stalled: AtomicBool,
    /// `state.timed_out`, readable without the lock (stagers check it).
    timed_out: AtomicBool,
    room: Notify,
    soft: Option<SoftLimit>,
    /// Messages (and their frame bytes) delivered into this outbox, for
    /// per-connection statistics (`/connz`).
    delivered_msgs: AtomicU64,
    delivered_bytes: AtomicU64,
    /// Where sampled queueing times go ([`Timings::delivery`]).
    timings: Option<Arc<crate::Timings>>,
}

impl Outbox {
    /// An outbox that holds at most `max_bytes` of messages before `policy` applies.
    pub fn new(max_bytes: usize, policy: SlowConsumerPolicy) -> Self {
        Self {
            state: Mutex::new(State::default()),
            is_closed: AtomicBool::new(false),
            pending_hint: AtomicUsize::new(0),
            wake: Notify::new(),
            max_bytes,
            policy,
            dropped: AtomicU64::new(0),
            stalled: AtomicBool::new(false),
            timed_out: AtomicBool::new(false),
            room: Notify::new(),
            soft: None,
            delivered_msgs: AtomicU64::new(0),
            delivered_bytes: AtomicU64::new(0),
            timings: None,
        }
    }

    /// Samples how long deliveries wait here before they are written, into
    /// `timings` ([`Timings::delivery`](crate::Timings::delivery)).
    #[must_use]
    pub fn with_timings(mut self, timings: Arc<crate::Timings>) -> Self {
        self.timings = Some(timings);
        self
    }

    /// Deliveries arrived in an empty outbox: every
    /// [`DELIVERY_SAMPLE`](crate::timings::DELIVERY_SAMPLE)th time, note
    /// when (one clock read per sampled batch, none per message).
    fn queued(&self, state: &mut State) {
        if self.timings.is_some() {
            if state.sample_countdown == 0 {
                state.sample_countdown = crate::timings::DELIVERY_SAMPLE - 1;
                state.queued_since = Some(Instant::now());
            } else {
                state.sample_countdown -= 1;
            }
        }
    }

    /// The pending batch is being taken for writing: records how long a
    /// sampled one waited.
    fn taken(&self, state: &mut State) {
        if let (Some(since), Some(timings)) = (state.queued_since.take(), &self.timings) {
            timings.delivery.record(since.elapsed());
        }
    }

    /// Adds a soft limit: output at or above `soft.bytes` for longer than
    /// `soft.window` closes the outbox as a slow consumer (checked on every
    /// push and by [`Outbox::check_soft_limit`]).
    #[must_use]
    pub fn with_soft_limit(mut self, soft: SoftLimit) -> Self {
        self.soft = Some(soft);
        self
    }

    /// Applies the soft limit now (call it periodically, so an idle publisher
    /// does not keep a stuck reader alive). Returns true if it closed the outbox.
    pub fn check_soft_limit(&self) -> bool {
        let mut state = self.state.lock();
        let closed = self.apply_soft_limit(&mut state);
        drop(state);
        if closed {
            self.wake.notify_one();
        }
        closed
    }

    fn apply_soft_limit(&self, state: &mut State) -> bool {
        let Some(soft) = self.soft else { return false };
        if state.closed.is_some() {
            return false;
        }
        if soft.bytes == 0 || state.held() < soft.bytes {
            state.over_soft_since = None;
            return false;
        }
        let since = *state.over_soft_since.get_or_insert_with(Instant::now);
        if since.elapsed() > soft.window {
            self.mark_closed(state, CloseReason::SlowConsumer);
            return true;
        }
        false
    }

    /// Past this the publisher is asked to wait: three quarters of the
    /// limit, but never more than [`HIGH_WATER_CAP`], since a writer needs
    /// only a few megabytes queued to keep its socket busy and more is just
    /// memory.
    fn high_water(&self) -> usize {
        (self.max_bytes / 4 * 3).min(HIGH_WATER_CAP)
    }

    /// Records `reason` (the first one wins) where lock-free readers see it.
    fn mark_closed(&self, state: &mut State, reason: CloseReason) {
        if state.closed.is_none() {
            state.closed = Some(reason);
        }
        state.direct = None;
        self.is_closed.store(true, Ordering::Release);
    }

    /// Appends one message frame of about `size` bytes, written by `encode`.
    /// With a staging `ctx` the frame is staged (see [`DeliveryCtx::staging`]) and
    /// reaches the outbox when the context is flushed; otherwise it is
    /// appended at once and the writer is woken through `ctx` at the end of
    /// the publisher's batch.
    ///
    /// Over the pending limit, the frame is dropped (and counted) or the
    /// outbox is closed as a slow consumer, by policy.
    pub fn push_message(
        self: &Arc<Self>,
        ctx: &mut DeliveryCtx,
        size: usize,
        encode: impl FnOnce(&mut FrameWriter<'_>),
    ) -> Delivery {
        let Some(staging) = ctx.staging.as_mut() else {
            return self.push_now(ctx, size, encode);
        };
        if self.is_closed.load(Ordering::Acquire) {
            return Delivery::Closed;
        }
        let index = staging.slot(self);
        let slot = staging.get(index);
        let pending = self.pending_hint.load(Ordering::Relaxed) + slot.batch.len();
        if (pending + size > self.max_bytes && pending > 0)
            || self.timed_out.load(Ordering::Relaxed)
        {
            // Near the limit: hand over what is staged, then decide under the lock.
            ctx.flush_slot(index);
            return self.push_now(ctx, size, encode);
        }
        encode(&mut FrameWriter {
            batch: &mut slot.batch,
        });
        slot.batch.staged_msgs += 1;
        slot.batch.staged_bytes += size as u64;
        if slot.batch.len() >= staging::STAGE_LIMIT {
            ctx.flush_slot(index);
        }
        Delivery::Delivered
    }

    /// [`Outbox::push_message`] without staging: append under the lock.
    fn push_now(
        self: &Arc<Self>,
        ctx: &mut DeliveryCtx,
        size: usize,
        encode: impl FnOnce(&mut FrameWriter<'_>),
    ) -> Delivery {
        let mut state = self.state.lock();
        if state.closed.is_some() {
            return Delivery::Closed;
        }
        let held = state.held();
        if state.timed_out || (held + size > self.max_bytes && held > 0) {
            let delivery = self.policy.overflow(&self.dropped, &mut state.closed);
            if delivery == Delivery::Closed {
                self.mark_closed(&mut state, CloseReason::SlowConsumer);
                drop(state);
                self.wake.notify_one();
            }
            return delivery;
        }
        let was_empty = state.pending.is_empty();
        if was_empty {
            self.queued(&mut state);
        }
        encode(&mut FrameWriter {
            batch: &mut state.pending,
        });
        self.count_delivered(1, size as u64);
        let held = state.held();
        self.pending_hint.store(held, Ordering::Relaxed);
        // A stuck writer holds nobody up: its publishers go on at full speed.
        let congested = held > self.high_water() && !state.stuck();
        if self.apply_soft_limit(&mut state) {
            drop(state);
            self.wake.notify_one();
            return Delivery::Closed;
        }
        drop(state);
        if was_empty {
            ctx.defer_wake(self);
        }
        if congested {
            ctx.congested(self);
        }
        Delivery::Delivered
    }

    /// Takes over a staged batch (leaving `batch` empty) and wakes the
    /// writer if it had nothing to do. Returns whether the outbox is now
    /// past its high-water mark. A closed outbox discards the batch.
    pub(crate) fn absorb(&self, batch: &mut OutboxBatch) -> bool {
        if batch.is_empty() {
            // Handed over early already (it reached the stage limit).
            return false;
        }
        let mut state = self.state.lock();
        if state.closed.is_some() {
            drop(state);
            batch.clear();
            return false;
        }
        self.count_delivered(batch.staged_msgs, batch.staged_bytes);
        batch.staged_msgs = 0;
        batch.staged_bytes = 0;
        let was_empty = state.pending.is_empty();
        if was_empty {
            self.queued(&mut state);
            // Hand the staged buffer over whole; the empty one comes back.
            std::mem::swap(&mut state.pending, batch);
        } else {
            state.pending.append(batch);
        }
        let held = state.held();
        self.pending_hint.store(held, Ordering::Relaxed);
        let closed = self.apply_soft_limit(&mut state);
        let congested = !closed && held > self.high_water() && !state.stuck();
        drop(state);
        if was_empty || closed {
            self.wake.notify_one();
        }
        congested
    }

    fn count_delivered(&self, msgs: u64, bytes: u64) {
        self.delivered_msgs.fetch_add(msgs, Ordering::Relaxed);
        self.delivered_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Messages delivered into this outbox so far, and their frame bytes.
    pub fn delivered(&self) -> (u64, u64) {
        (
            self.delivered_msgs.load(Ordering::Relaxed),
            self.delivered_bytes.load(Ordering::Relaxed),
        )
    }

    /// Wakes the writer (what [`DeliveryCtx::wake_all`] calls).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits until the held bytes are back under the high-water mark, the
    /// outbox is closed, or its writer is stuck (see the module docs).
    /// Callers bound the wait with a timeout ([`wait_for_room_all`]).
    pub async fn wait_for_room(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.stalled.store(true, Ordering::SeqCst);
            let stuck_at = {
                let state = self.state.lock();
                if state.closed.is_some() || state.held() <= self.high_water() || state.stuck() {
                    return;
                }
                // No progress by then: stuck, and not worth waiting for.
                match (state.in_flight, state.last_progress) {
                    (1.., Some(at)) => Some(at + STUCK_AFTER),
                    _ => None,
                }
            };
            match stuck_at {
                Some(at) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Reports that the writer task wrote `n` bytes of the batch it took.
    pub fn wrote(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut state = self.state.lock();
        let was_congested = state.held() > self.high_water();
        state.in_flight = state.in_flight.saturating_sub(n);
        state.last_progress = Some(Instant::now());
        state.timed_out = false;
        self.timed_out.store(false, Ordering::Relaxed);
        let held = state.held();
        self.pending_hint.store(held, Ordering::Relaxed);
        drop(state);
        if was_congested && held <= self.high_water() {
            self.made_room();
        }
    }

    /// The writer task waited its write deadline without the socket taking
    /// a byte: the slow-consumer policy applies now. Under `Close` the
    /// outbox closes (returns true: the writer should stop); under
    /// `DropNewest` messages are dropped until the writer makes progress.
    pub fn write_timed_out(&self) -> bool {
        let mut state = self.state.lock();
        match self.policy {
            SlowConsumerPolicy::Close => {
                self.mark_closed(&mut state, CloseReason::SlowConsumer);
                drop(state);
                self.wake.notify_one();
                self.made_room();
                true
            }
            SlowConsumerPolicy::DropNewest => {
                state.timed_out = true;
                self.timed_out.store(true, Ordering::Relaxed);
                false
            }
        }
    }

    /// Whether the writer is stuck: bytes in flight and no progress for
    /// [`STUCK_AFTER`].
    pub fn is_stuck(&self) -> bool {
        self.state.lock().stuck()
    }

    /// Whether a publisher would wait for this outbox now: open, past its
    /// high-water mark, and its writer not stuck.
    fn lacks_room(&self) -> bool {
        let state = self.state.lock();
        state.closed.is_none() && state.held() > self.high_water() && !state.stuck()
    }

    /// Appends protocol output (replies, pings, errors). It is never dropped
    /// and not held to the message limit, but it is refused once closed.
    ///
    /// A client that sends commands but never reads their replies would grow
    /// this without end, so past twice the message limit the outbox is
    /// closed as a slow consumer instead.
    pub fn push_control(&self, encode: impl FnOnce(&mut BytesMut)) -> bool {
        self.append_control(encode, false)
    }

    /// [`Outbox::push_control`]; with `quiet` and a [`DirectWrite`]
    /// attached the writer task is not woken (see [`Outbox::push_reply`]).
    fn append_control(&self, encode: impl FnOnce(&mut BytesMut), quiet: bool) -> bool {
        let mut state = self.state.lock();
        if state.closed.is_some() {
            return false;
        }
        if state.held() > self.max_bytes.saturating_mul(2) {
            self.mark_closed(&mut state, CloseReason::SlowConsumer);
            drop(state);
            self.wake.notify_one();
            return false;
        }
        let wake = state.pending.is_empty() && !(quiet && state.direct.is_some());
        encode(&mut state.pending.buf);
        self.pending_hint.store(state.held(), Ordering::Relaxed);
        drop(state);
        if wake {
            self.wake.notify_one();
        }
        true
    }

    /// Closes the outbox. With [`CloseReason::Finished`] the writer still
    /// writes what is pending; with any other reason pending output is dropped.
    /// The first reason given wins.
    pub fn close(&self, reason: CloseReason) {
        let mut state = self.state.lock();
        self.mark_closed(&mut state, reason);
        drop(state);
        self.wake.notify_one();
    }

    /// Why the outbox was closed, if it was.
    pub fn closed(&self) -> Option<CloseReason> {
        self.state.lock().closed
    }

    /// Messages dropped under the drop-newest policy.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Bytes held for the client: waiting for the writer, and taken by it
    /// but not yet written.
    pub fn pending_bytes(&self) -> usize {
        self.state.lock().held()
    }

    /// Waits until there is output and swaps it into `batch` (which must be
    /// empty; its buffer is recycled).
    ///
    /// # Errors
    /// The close reason once the outbox is closed and, for
    /// [`CloseReason::Finished`], everything pending has been taken.
    pub async fn next_batch(&self, batch: &mut OutboxBatch) -> Result<(), CloseReason> {
        debug_assert!(batch.is_empty());
        loop {
            {
                let mut state = self.state.lock();
                if state.right == WriteRight::Task {
                    // Asking again means the last batch is written.
                    state.right = WriteRight::Free;
                    state.in_flight = 0;
                    state.timed_out = false;
                    self.timed_out.store(false, Ordering::Relaxed);
                }
                let free = state.right == WriteRight::Free;
                match state.closed {
                    Some(CloseReason::Finished) | None if free && !state.pending.is_empty() => {
                        self.taken(&mut state);
                        std::mem::swap(&mut state.pending, batch);
                        state.right = WriteRight::Task;
                        state.in_flight = batch.len();
                        state.last_progress = Some(Instant::now());
                        self.pending_hint.store(state.in_flight, Ordering::Relaxed);
                        drop(state);
                        // Waiting publishers look again: the queue is empty
                        // now, and what is in flight has a clock on it.
                        self.made_room();
                        return Ok(());
                    }
                    // A direct write may still hand output back: wait for it.
                    Some(CloseReason::Finished) if !free => {}
                    Some(reason) => return Err(reason),
                    None => {}
                }
            }
            self.wake.notified().await;
        }
    }

    /// Tells publishers waiting in [`Outbox::wait_for_room`] that output was taken.
    fn made_room(&self) {
        if self.stalled.swap(false, Ordering::SeqCst) {
            self.room.notify_waiters();
        }
    }
}

/// Waits, together and for at most `limit` in all, until every outbox in
/// `congested` has room again (or is closed, or stuck): the back-pressure a
/// publishing connection applies at the end of a batch. `own`, the
/// publisher's own outbox, is skipped: its client may be blocked writing to
/// us, and waiting on it would deadlock the two.
/// Returns whether it waited at all.
pub async fn wait_for_room_all(
    congested: Vec<Arc<Outbox>>,
    own: &Arc<Outbox>,
    limit: Duration,
) -> bool {
    let waits: Vec<_> = congested
        .iter()
        .filter(|outbox| !Arc::ptr_eq(outbox, own) && outbox.lacks_room())
        .map(|outbox| outbox.wait_for_room())
        .collect();
    if waits.is_empty() {
        return false;
    }
    let _ = tokio::time::timeout(limit, futures::future::join_all(waits)).await;
    true
}

#[cfg(test)]
mod tests;
