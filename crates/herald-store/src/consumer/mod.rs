//! Consumers: a cursor over a stream with acknowledgement, driven by one
//! task each.
//!
//! Clients talk to a consumer through subjects: pull requests on
//! `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>` (a broker subscription of
//! the consumer's own, so a request to a consumer that does not exist gets
//! the 503 no-responders status), acks on the reply subject of each
//! delivery, flow-control replies on `$JS.FC.…`. Sinks only queue these
//! events; the driver task applies them, runs [`state::ConsumerState::pump`]
//! and publishes what it returns, so no broker call ever happens inside
//! another's delivery.

pub(crate) mod ack;
mod dead_letter;
pub(crate) mod pull;
mod replicated;
pub(crate) mod state;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use herald_core::{
    DeliveryCtx, Message, Pattern, Requester, Sink, Subject, SubscribeSpec, Subscriber,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::consumer_config::ConsumerConfig;
use crate::info::ConsumerInfo;
use crate::state_file;
use crate::stream::Stream;
use crate::time::{now_nanos, rfc3339};
use crate::{StoreError, config::Retention};
use ack::AckKind;
pub use dead_letter::dead_letter_headers;
use pull::PullRequest;
pub(crate) use replicated::ConsumerOp;
pub use replicated::{ConsumerExport, ConsumerUpdate};
use state::{ConsumerState, Effect, SavedState};

/// Called with (stream, consumer) when an inactive consumer removes itself.
pub(crate) type OnGone = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// How often a durable consumer's progress is written when it changed.
const SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// A handle to one consumer; cheap to clone.
#[derive(Clone, Debug)]
pub struct Consumer {
    pub(crate) inner: Arc<ConsumerInner>,
}

#[derive(Debug)]
pub(crate) struct ConsumerInner {
    pub(crate) stream: Stream,
    pub(crate) name: String,
    created: i64,
    /// Where its state is saved (durable consumers of file streams).
    dir: Option<PathBuf>,
    pub(crate) state: Mutex<ConsumerState>,
    events: Mutex<Vec<Event>>,
    wake: Notify,
    deleted: AtomicBool,
    /// Held across a step and the delivery of its effects, so two steps
    /// (the driver's, a publisher's inline one) never interleave deliveries.
    stepping: Mutex<()>,
    /// The step a publisher runs at the end of its batch when its acks or
    /// pull requests queued events (see [`InlineStep`]).
    inline: Arc<InlineStep>,
    /// When the driver plans to wake next: an inline step that brings a
    /// deadline earlier (a pull request's expiry, say) wakes it.
    driver_wakes_at: Mutex<Option<Instant>>,
    subs: Mutex<Vec<Arc<Subscriber>>>,
    /// Other consumers of the stream, for interest retention.
    pub(crate) peers: Mutex<Vec<Weak<ConsumerInner>>>,
    /// A push consumer without listeners is registered to be woken when
    /// its deliver subject gains one (at most one registration at a time).
    awaiting_interest: AtomicBool,
    /// A replicated stream's consumer: its progress is the group's.
    pub(crate) replication: Option<replicated::Replication>,
    me: Weak<ConsumerInner>,
}

impl herald_core::InterestWaiter for ConsumerInner {
    fn interest(&self) {
        self.awaiting_interest.store(false, Ordering::Release);
        self.wake.notify_one();
    }
}

impl ConsumerInner {
    /// For a push consumer nobody listens to: asks the broker to wake the
    /// driver when someone subscribes to its deliver subject, so delivery
    /// starts then rather than at the driver's next timer.
    fn await_interest(&self, config: &ConsumerConfig) {
        let Some(deliver) = config
            .deliver_subject
            .as_deref()
            .and_then(|s| Subject::new(s).ok())
        else {
            return;
        };
        if self.awaiting_interest.swap(true, Ordering::AcqRel) {
            return;
        }
        let waiter: Weak<dyn herald_core::InterestWaiter> = self.me.clone();
        let broker = &self.stream.inner.broker;
        broker.wake_on_interest(deliver.clone(), waiter);
        // Registered first, checked second: a subscribe in between is seen here.
        if broker.has_subscribers(&deliver) {
            herald_core::InterestWaiter::interest(self);
        }
    }
}

/// What sinks hand to the driver.
#[derive(Debug)]
pub(crate) enum Event {
    Ack {
        seq: u64,
        kind: AckKind,
        /// Reply subject of the ack message: double ack, or `+NXT` target.
        reply: Option<Subject>,
        /// Who acked (a `+NXT` asks for messages, checked as a pull is).
        requester: Requester,
    },
    Pull {
        reply: Subject,
        body: bytes::Bytes,
        /// Who asked for messages.
        requester: Requester,
    },
    FlowControl(String),
}

/// What a consumer persists besides its progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ConsumerMeta {
    pub(crate) config: ConsumerConfig,
    pub(crate) created: i64,
}

impl Consumer {
    /// Creates a consumer (config already normalised) and starts its driver.
    pub(crate) fn start(
        stream: Stream,
        name: String,
        config: ConsumerConfig,
        created: i64,
        saved: Option<SavedState>,
        on_gone: OnGone,
    ) -> Result<Consumer, StoreError> {
        let now = Instant::now();
        // A replicated stream's consumers are all kept: every replica must
        // still have them after a restart, whatever the log still holds.
        let persist = (config.is_durable() && !config.mem_storage || stream.is_replicated())
            && stream.is_file();
        let dir = persist.then(|| stream.dir().join("consumers").join(&name));
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create", dir, e))?;
            let meta = ConsumerMeta {
                config: config.clone(),
                created,
            };
            state_file::write_json(&dir.join("consumer.json"), &meta)?;
        }
        let fresh = saved.is_none();
        let (state, replication) = {
            let mut data = stream.inner.state.lock();
            let mut state = ConsumerState::new(config.clone(), &mut data, now);
            if let Some(saved) = saved {
                state.restore(saved, &mut data, now);
            }
            // A replicated stream's consumer starts from the same point on
            // every replica (created at one log entry, or restored from the
            // progress the group applied).
            let replication = match &*stream.inner.replica.read() {
                crate::stream::replica::Replica::Local => None,
                crate::stream::replica::Replica::Leader(_) => {
                    Some(replicated::Replication::new(state.saved(), true))
                }
                crate::stream::replica::Replica::Follower => {
                    Some(replicated::Replication::new(state.saved(), false))
                }
            };
            (state, replication)
        };
        let inner = Arc::new_cyclic(|me| ConsumerInner {
            stream: stream.clone(),
            name: name.clone(),
            created,
            dir,
            state: Mutex::new(state),
            events: Mutex::new(Vec::new()),
            wake: Notify::new(),
            deleted: AtomicBool::new(false),
            stepping: Mutex::new(()),
            inline: Arc::new(InlineStep(me.clone())),
            driver_wakes_at: Mutex::new(None),
            subs: Mutex::new(Vec::new()),
            peers: Mutex::new(Vec::new()),
            awaiting_interest: AtomicBool::new(false),
            replication,
            me: me.clone(),
        });
        if fresh && let Some(replication) = &inner.replication {
            // Where a new replicated consumer starts is replica state too: on
            // disk before anything else, or a restart would start it anew
            // from wherever the stream is then.
            let start = replication.applied();
            if let Err(e) = inner.apply_progress(start) {
                // Its cursor goes with it.
                inner.state.lock().release(&mut stream.inner.state.lock());
                return Err(e);
            }
        }
        let filters = config.filters();
        stream.set_interest(&name, Some(filters));
        if !inner.follows() {
            inner.subscribe_next();
        }
        tokio::spawn(drive(inner.clone(), on_gone));
        Ok(Consumer { inner })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Its configuration.
    pub fn config(&self) -> ConsumerConfig {
        self.inner.state.lock().config.clone()
    }

    /// Its progress, as JetStream reports it.
    pub fn info(&self) -> ConsumerInfo {
        self.inner.refresh();
        let state = self.inner.state.lock();
        let data = self.inner.stream.inner.state.lock();
        let push_bound = push_bound(&self.inner, &state.config);
        ConsumerInfo {
            stream_name: self.inner.stream.name().to_owned(),
            name: self.inner.name.clone(),
            created: rfc3339(self.inner.created),
            config: state.config.clone(),
            delivered: state.delivered,
            ack_floor: state.ack_floor,
            num_ack_pending: state.pending.len() as u64,
            num_redelivered: state.num_redelivered(),
            num_waiting: state.waiting.len() as u64,
            num_pending: state.num_pending(&data),
            push_bound,
            ts: rfc3339(now_nanos()),
        }
    }

    /// Applies an updated (normalised, checked) configuration.
    pub(crate) fn update(&self, config: ConsumerConfig) -> Result<(), StoreError> {
        if let Some(dir) = &self.inner.dir {
            let meta = ConsumerMeta {
                config: config.clone(),
                created: self.inner.created,
            };
            state_file::write_json(&dir.join("consumer.json"), &meta)?;
        }
        let mut state = self.inner.state.lock();
        state.refilter(config.filters(), &mut self.inner.stream.inner.state.lock());
        state.header_filter = config.compiled_header_filter();
        self.inner
            .stream
            .set_interest(&self.inner.name, Some(state.filters.clone()));
        state.config = config;
        drop(state);
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Queues an event from a sink; the publisher applies it (and delivers
    /// what it frees up) when its batch ends, with no hand-off to the
    /// driver task: an ack and the next deliveries it allows go out from
    /// the acking connection's own thread.
    pub(crate) fn push_event_inline(&self, event: Event, ctx: &mut DeliveryCtx) {
        self.inner.push_event_inline(event, ctx);
    }

    /// Stops the driver. A deleted consumer's saved state goes and its
    /// waiting pull requests are told with `409 Consumer Deleted`; a closed
    /// one saves its progress; a replaced one (another of the same name took
    /// its place) leaves the files to its successor.
    pub(crate) fn stop(&self, how: Stop) {
        if self.inner.deleted.swap(true, Ordering::AcqRel) {
            return;
        }
        for sub in self.inner.subs.lock().drain(..) {
            self.inner.stream.inner.broker.remove_subscriber(&sub);
        }
        let waiting: Vec<Subject> = {
            let mut state = self.inner.state.lock();
            // Appends and removals stop counting for it.
            state.release(&mut self.inner.stream.inner.state.lock());
            state.waiting.drain(..).map(|w| w.reply).collect()
        };
        if how == Stop::Delete {
            self.inner.stream.set_interest(&self.inner.name, None);
            for reply in waiting {
                let msg = pull::status(&reply, 409, "Consumer Deleted", &[]);
                self.inner.stream.inner.broker.publish_message(&msg);
            }
            if let Some(dir) = &self.inner.dir {
                let _ = std::fs::remove_dir_all(dir);
            }
        } else if how == Stop::Close {
            self.inner.save();
        }
        self.inner.wake.notify_one();
    }
}

/// How a consumer stops (see [`Consumer::stop`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Deleted: its files go.
    Delete,
    /// The store closes: its progress is saved.
    Close,
    /// Another consumer of the same name replaced it.
    Replaced,
}

impl ConsumerInner {
    /// Subscribes the consumer's `MSG.NEXT` subject (its pull requests).
    fn subscribe_next(&self) {
        let stream = &self.stream;
        let next = format!("$JS.API.CONSUMER.MSG.NEXT.{}.{}", stream.name(), self.name);
        if let Ok(pattern) = Pattern::new(&next) {
            let spec = SubscribeSpec::internal(pattern, stream.inner.broker.new_conn_id());
            let sink = Arc::new(NextSink {
                consumer: self.me.clone(),
                subject: Subject::new(&next).ok(),
            });
            self.subs
                .lock()
                .push(stream.inner.broker.subscribe_sink(spec, sink));
        }
    }

    fn push_event_inline(&self, event: Event, ctx: &mut DeliveryCtx) {
        self.events.lock().push(event);
        ctx.defer(self.inline.clone());
    }

    fn save(&self) {
        let Some(dir) = &self.dir else { return };
        if self.replication.is_some() {
            // Its progress is saved as the group applies it.
            return;
        }
        let saved = {
            let mut state = self.state.lock();
            if !state.dirty {
                return;
            }
            state.dirty = false;
            state.saved()
        };
        if let Err(e) = state_file::write_json(&dir.join("state.json"), &saved) {
            tracing::error!(consumer = %self.name, "saving consumer state: {e}");
        }
    }

    /// Applies queued events, pumps, and carries out the effects, all under
    /// the stepping lock, which no one ever waits for: whoever holds it
    /// looks at the queue again after letting go and steps again if events
    /// arrived meanwhile, so an event queued while another step runs is
    /// never left behind, and a worker thread never blocks on another's
    /// step. `inline` is a publisher's step (see [`InlineStep`]): when it
    /// brings a deadline earlier than the driver planned to wake (a short
    /// pull request's expiry, say), the driver is woken.
    /// Returns false when another step held the lock (and will go on).
    fn run_step(&self, inline: bool) -> bool {
        loop {
            let Some(stepping) = self.stepping.try_lock() else {
                // The holder steps again for anything queued now.
                return false;
            };
            let (effects, confirm) = self.step(Instant::now());
            self.apply(effects, confirm);
            drop(stepping);
            if self.events.lock().is_empty() {
                break;
            }
        }
        if inline {
            // Under the state lock, as the driver plans: either it saw this
            // step's deadlines, or this sees its plan.
            let state = self.state.lock();
            let planned = *self.driver_wakes_at.lock();
            let next = state.next_wake();
            drop(state);
            if next.is_some_and(|next| planned.is_none_or(|planned| next < planned)) {
                self.wake.notify_one();
            }
        }
        true
    }

    /// Whether `requester` may read everything this consumer may deliver:
    /// a consumer delivers to whoever pulls, so only such a user may pull
    /// (the rule of [`Requester`]). Locks the stream's data (after the
    /// consumer's state, the order `step` takes them in) only for a
    /// restricted user of a consumer without filters.
    fn readable_by(&self, requester: &Requester, config: &ConsumerConfig) -> bool {
        if !requester.is_restricted() {
            return true;
        }
        let filters = config.filters();
        let reach = if filters.is_empty() {
            config.reach(&self.stream.inner.state.lock().config.subjects)
        } else {
            filters
        };
        reach.iter().all(|p| requester.may_read_all(p))
    }

    /// Applies queued events and pumps; returns the effects to carry out.
    fn step(&self, now: Instant) -> (Vec<Effect>, Vec<Subject>) {
        let events = std::mem::take(&mut *self.events.lock());
        let broker = &self.stream.inner.broker;
        let mut effects = Vec::new();
        let mut confirm = Vec::new();
        let mut state = self.state.lock();
        if self.deleted.load(Ordering::Acquire) || self.follows() {
            // Stopped while this step waited for the lock (its cursor is
            // gone), or following its leader, which takes acks and delivers.
            return (effects, confirm);
        }
        for event in events {
            match event {
                Event::Ack {
                    seq,
                    kind,
                    reply,
                    requester,
                } => {
                    let acked = &broker.timings().consumer_ack;
                    effects.extend(state.ack(seq, &kind, now, acked));
                    match (kind, reply) {
                        (AckKind::Next(_), Some(reply))
                            if !self.readable_by(&requester, &state.config) =>
                        {
                            effects.push(Effect::Publish(not_permitted(&reply)));
                        }
                        (AckKind::Next(request), Some(reply)) => {
                            if let Some(refusal) = state.add_request(reply, request, now) {
                                effects.push(Effect::Publish(refusal));
                            }
                        }
                        (AckKind::Next(_), None) => {}
                        (_, Some(reply)) => confirm.push(reply),
                        (_, None) => {}
                    }
                }
                Event::Pull {
                    reply,
                    body,
                    requester,
                } => match PullRequest::parse(&body) {
                    Ok(_) if !self.readable_by(&requester, &state.config) => {
                        effects.push(Effect::Publish(not_permitted(&reply)));
                    }
                    Ok(request) => {
                        if let Some(refusal) = state.add_request(reply, request, now) {
                            effects.push(Effect::Publish(refusal));
                        }
                    }
                    Err(reason) => {
                        let text = format!("Bad Request - {reason}");
                        effects.push(Effect::Publish(pull::status(&reply, 400, &text, &[])));
                    }
                },
                Event::FlowControl(subject) => state.flow_control_answered(&subject),
            }
        }
        let push_bound = push_bound(self, &state.config);
        let mut data = self.stream.inner.state.lock();
        let has_interest = |s: &Subject| broker.has_subscribers(s);
        effects.extend(state.pump(
            self.stream.name(),
            &self.name,
            &mut data,
            now,
            push_bound,
            &has_interest,
        ));
        (effects, confirm)
    }

    /// Carries out effects: deliveries, statuses, retention, dead letters.
    fn apply(&self, effects: Vec<Effect>, confirm: Vec<Subject>) {
        if let Some(replication) = &self.replication {
            self.apply_replicated(replication, effects, confirm);
            return;
        }
        self.apply_now(effects);
        let broker = &self.stream.inner.broker;
        for reply in confirm {
            broker.publish_message(&Message::new(reply, bytes::Bytes::new()));
        }
    }

    /// Carries out effects now.
    fn apply_now(&self, effects: Vec<Effect>) {
        let broker = &self.stream.inner.broker;
        let conn = herald_core::LOCAL_CONN;
        for effect in effects {
            match effect {
                Effect::Deliver { to, msg } => {
                    broker.deliver_on(conn, &to, &msg);
                }
                Effect::Publish(msg) => {
                    broker.publish_message(&msg);
                }
                Effect::Done(seq) => self.retire(seq),
                Effect::DeadLetter {
                    seq,
                    deliveries,
                    reason,
                } => self.dead_letter(seq, deliveries, reason),
            }
        }
    }

    /// A message is done for this consumer: work queues drop it; interest
    /// streams drop it once every interested consumer is done with it.
    fn retire(&self, seq: u64) {
        let retention = self.stream.inner.state.lock().config.retention;
        match retention {
            Retention::Limits => {}
            Retention::WorkQueue => self.stream.remove_acked(&[seq]),
            Retention::Interest => {
                let subject = match self.stream.inner.state.lock().index.get(seq) {
                    Some(slot) => slot.subject.clone(),
                    None => return,
                };
                let peers: Vec<Arc<ConsumerInner>> =
                    self.peers.lock().iter().filter_map(Weak::upgrade).collect();
                let all_done = peers.iter().all(|peer| {
                    if std::ptr::eq(Arc::as_ptr(peer), self) {
                        return true;
                    }
                    let state = peer.state.lock();
                    let interested = state.filters.is_empty()
                        || state.filters.iter().any(|f| f.matches(&subject));
                    !interested || state.has_acked(seq)
                });
                if all_done {
                    self.stream.remove_acked(&[seq]);
                }
            }
        }
    }
}

/// The driver: waits for events, new messages or the next deadline, steps.
async fn drive(inner: Arc<ConsumerInner>, on_gone: OnGone) {
    let mut stored = inner.stream.watch();
    let mut last_save = Instant::now();
    loop {
        if inner.deleted.load(Ordering::Acquire) {
            return;
        }
        let stepped = inner.run_step(false);
        if inner.dir.is_some() && last_save.elapsed() >= SAVE_INTERVAL {
            inner.save();
            last_save = Instant::now();
        }
        let (wake_at, idle_for, threshold) = {
            let state = inner.state.lock();
            let threshold = state.config.inactive_threshold;
            let unbound_push =
                state.config.deliver_subject.is_some() && !push_bound(&inner, &state.config);
            if unbound_push {
                inner.await_interest(&state.config);
            }
            let idle = state.waiting.is_empty()
                && (unbound_push || state.config.deliver_subject.is_none());
            // A follower has no deadlines of its own: its leader's decide.
            let next = if inner.follows() {
                None
            } else {
                state.next_wake()
            };
            // The latest it wakes; only ever earlier below.
            *inner.driver_wakes_at.lock() =
                Some(next.unwrap_or_else(|| Instant::now() + Duration::from_secs(1)));
            (next, idle.then(|| state.last_active.elapsed()), threshold)
        };
        if !threshold.is_zero() {
            match idle_for {
                // A replicated one's group decides; its leader asks.
                Some(_) if inner.follows() => {}
                Some(idle) if idle >= threshold => {
                    tracing::debug!(consumer = %inner.name, "removing inactive consumer");
                    if let Some(replication) = &inner.replication {
                        inner.propose_delete(replication);
                    } else {
                        on_gone(inner.stream.name(), &inner.name);
                        return;
                    }
                }
                Some(_) => {}
                None => inner.state.lock().last_active = Instant::now(),
            }
        }
        let mut wake_at = wake_at.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        if inner.dir.is_some() {
            wake_at = wake_at.min(Instant::now() + SAVE_INTERVAL);
        }
        if !threshold.is_zero() {
            wake_at = wake_at.min(Instant::now() + threshold.min(Duration::from_secs(1)));
        }
        if !stepped {
            // A publisher's step is running; do not spin on a deadline it
            // may be handling right now.
            wake_at = wake_at.max(Instant::now() + Duration::from_millis(1));
        }
        tokio::select! {
            () = inner.wake.notified() => {}
            changed = stored.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep_until(wake_at) => {}
        }
    }
}

/// A consumer's step, run by a publisher when its batch ends (a
/// [`Deferred`](herald_core::Deferred) task): once per batch however many
/// acks and pull requests the batch carried.
#[derive(Debug)]
struct InlineStep(Weak<ConsumerInner>);

impl herald_core::Deferred for InlineStep {
    fn run(&self) {
        if let Some(inner) = self.0.upgrade()
            && !inner.deleted.load(Ordering::Acquire)
        {
            inner.run_step(true);
        }
    }
}

/// The answer to a pull (or `+NXT`) from a user who may not read all the
/// consumer delivers.
fn not_permitted(reply: &Subject) -> Message {
    pull::status(reply, 403, "Permissions Violation", &[])
}

/// Whether a push consumer's deliver subject has interest (false for pull).
fn push_bound(inner: &ConsumerInner, config: &ConsumerConfig) -> bool {
    config
        .deliver_subject
        .as_deref()
        .and_then(|s| Subject::new(s).ok())
        .is_some_and(|s| inner.stream.inner.broker.has_subscribers(&s))
}

/// The consumer's own `MSG.NEXT` subscription.
struct NextSink {
    consumer: Weak<ConsumerInner>,
    /// The `MSG.NEXT` subject: anything else delivered here (a consumer's
    /// delivery aimed at it as a reply subject keeps its own subject) is
    /// no pull request.
    subject: Option<Subject>,
}

impl Sink for NextSink {
    fn deliver(
        &self,
        _sub: &Subscriber,
        msg: &Message,
        ctx: &mut DeliveryCtx,
    ) -> herald_core::Delivery {
        let Some(consumer) = self.consumer.upgrade() else {
            return herald_core::Delivery::Closed;
        };
        if self.subject.as_ref() != Some(&msg.subject) {
            return herald_core::Delivery::Delivered;
        }
        // A pull request without a reply subject has nowhere to go; one
        // whose replies would be JetStream requests themselves is refused.
        let Some(reply) = msg.reply.clone() else {
            return herald_core::Delivery::Delivered;
        };
        if Requester::is_request_subject(&reply) {
            return herald_core::Delivery::Delivered;
        }
        let reply = reply.detached();
        let event = Event::Pull {
            reply,
            body: bytes::Bytes::copy_from_slice(&msg.payload),
            requester: Requester::of(msg),
        };
        consumer.push_event_inline(event, ctx);
        herald_core::Delivery::Delivered
    }
}

/// Reads a durable consumer's saved config and progress from its directory.
pub(crate) fn load(
    dir: &std::path::Path,
) -> Result<(ConsumerMeta, Option<SavedState>), StoreError> {
    let meta: ConsumerMeta = state_file::read_json(&dir.join("consumer.json"))?;
    let state_path = dir.join("state.json");
    let saved = if state_path.exists() {
        Some(state_file::read_json(&state_path)?)
    } else {
        None
    };
    Ok((meta, saved))
}
