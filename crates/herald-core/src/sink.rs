//! Subscribers and the delivery contract between the broker and whatever
//! receives messages.
//!
//! Every subscription in the index is an [`Arc<Subscriber>`]: its pattern,
//! optional queue group, the connection it belongs to, and a [`Sink`] that
//! takes the message. The sink of an in-process [`Subscription`] queues the
//! `Message` itself; a listener's sink writes the wire frame straight into the
//! connection's [`Outbox`]. Either way the payload is shared, never copied per
//! receiver by the broker.
//!
//! [`Subscription`]: crate::Subscription
//! [`Outbox`]: crate::Outbox

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;

use crate::message::Message;
use crate::subject::{Pattern, QueueName};

/// Identifies one client connection (or in-process client) to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Identifies one subscription, unique for the life of the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubId(pub u64);

/// What became of one offered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The sink took it.
    Delivered,
    /// The sink is over its pending limit and dropped it (drop-newest policy).
    Dropped,
    /// The sink is closed (its connection is going away, or it was just
    /// closed as a slow consumer).
    Closed,
}

/// Bookkeeping of one publisher's batch of deliveries.
///
/// Waking a connection's writer costs far more than appending a frame, so a
/// sink that writes into an [`Outbox`] does not wake it per message: it
/// records the outbox here, and the publisher wakes each one once when its
/// batch (say, everything parsed from one socket read) is done. Outboxes
/// past their high-water mark are recorded too, so the publisher can wait
/// for them to drain before it reads more (back-pressure).
///
/// A *staging* context ([`DeliveryCtx::staging`], what a [`Publisher`]
/// keeps) goes further: frames for each outbox are encoded into a batch of
/// its own and handed over when the context is flushed, under one lock per
/// outbox instead of one per message. Whoever owns a staging context must
/// [`flush`](DeliveryCtx::flush) it before it writes anything of its own
/// that must follow those messages (a `PONG` after the deliveries a client's
/// `PUB`s caused, say).
///
/// [`Outbox`]: crate::Outbox
/// [`Publisher`]: crate::Publisher
#[derive(Default)]
pub struct DeliveryCtx {
    /// Staged output by outbox; `None` for a context that appends at once.
    pub(crate) staging: Option<crate::outbox::staging::Staging>,
    pub(crate) wake: Vec<Arc<crate::Outbox>>,
    congested: Vec<Arc<crate::Outbox>>,
    deferred: Vec<Arc<dyn Deferred>>,
    /// The routes (by sink) the message being routed went to already: a
    /// node whose interests overlap (`a.*` and `a.>`) gets it once.
    pub(crate) routes_seen: Vec<usize>,
    /// The message being routed came from another node: it goes to this
    /// node's subscribers only (one hop).
    pub(crate) from_route: bool,
    /// The subject the message being routed is matched on, when it is not
    /// the message's own (a stream consumer's delivery to its inbox).
    pub(crate) delivered_on: Option<crate::Subject>,
}

impl std::fmt::Debug for DeliveryCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryCtx")
            .field("staging", &self.staging.is_some())
            .field("wake", &self.wake.len())
            .field("congested", &self.congested.len())
            .field("deferred", &self.deferred.len())
            .finish()
    }
}

/// Work a sink leaves for the end of the publisher's batch, done once
/// however many messages asked for it (a stream writing everything it
/// captured in the batch with one write, for example).
pub trait Deferred: Send + Sync + 'static {
    /// Does the work; called by the publisher's thread when its batch ends.
    fn run(&self);
}

impl DeliveryCtx {
    /// A context with nothing recorded, whose deliveries reach their
    /// outboxes at once (writers are still woken at the end).
    pub fn new() -> Self {
        Self::default()
    }

    /// A context that stages deliveries until it is flushed (see the type's docs).
    pub fn staging() -> Self {
        let mut ctx = Self::default();
        ctx.staging = Some(crate::outbox::staging::Staging::default());
        ctx
    }

    /// The subject the message being delivered was matched on, when it is
    /// not the message's own subject (a consumer's delivery to its inbox):
    /// what a cluster route must match it on at the other end.
    pub fn delivered_on(&self) -> Option<&crate::Subject> {
        self.delivered_on.as_ref()
    }

    /// Hands every staged batch to its outbox and wakes the writers that
    /// have new output. Call it before writing anything that must follow
    /// the messages delivered so far.
    pub fn flush(&mut self) {
        self.flush_staged();
        for outbox in self.wake.drain(..) {
            outbox.wake();
        }
    }

    fn flush_staged(&mut self) {
        let Some(staging) = self.staging.as_mut().filter(|s| !s.is_empty()) else {
            return;
        };
        let mut slots = staging.take();
        let mut congested = Vec::new();
        for mut slot in slots.drain(..) {
            if slot.outbox.absorb(&mut slot.batch) {
                congested.push(slot.outbox);
            }
            staging.recycle(slot.batch);
        }
        staging.give_back(slots);
        for outbox in congested {
            self.congested(&outbox);
        }
    }

    /// Hands the staged batch of slot `index` over now (it grew large, or
    /// its outbox is near its limit); the slot stays for more.
    pub(crate) fn flush_slot(&mut self, index: usize) {
        let Some(staging) = self.staging.as_mut() else {
            return;
        };
        let slot = staging.get(index);
        let outbox = slot.outbox.clone();
        if outbox.absorb(&mut slot.batch) {
            self.congested(&outbox);
        }
    }

    /// `outbox` went from empty to non-empty: wake its writer at the end.
    pub fn defer_wake(&mut self, outbox: &Arc<crate::Outbox>) {
        self.wake.push(outbox.clone());
    }

    /// `outbox` is past its high-water mark.
    pub fn congested(&mut self, outbox: &Arc<crate::Outbox>) {
        if !self.congested.iter().any(|o| Arc::ptr_eq(o, outbox)) {
            self.congested.push(outbox.clone());
        }
    }

    /// Asks for `task` to run when the batch ends (once, however often asked).
    pub fn defer(&mut self, task: Arc<dyn Deferred>) {
        if !self.deferred.iter().any(|t| Arc::ptr_eq(t, &task)) {
            self.deferred.push(task);
        }
    }

    /// Hands staged output over, runs the deferred work, then wakes every
    /// writer recorded since the last call (deferred work may have added
    /// output of its own elsewhere, through contexts of its own).
    pub fn wake_all(&mut self) {
        self.flush_staged();
        for task in std::mem::take(&mut self.deferred) {
            task.run();
        }
        for outbox in self.wake.drain(..) {
            outbox.wake();
        }
    }

    /// The congested outboxes recorded since the last call.
    pub fn take_congested(&mut self) -> Vec<Arc<crate::Outbox>> {
        std::mem::take(&mut self.congested)
    }
}

impl Drop for DeliveryCtx {
    fn drop(&mut self) {
        // Never leave a writer asleep with output waiting.
        self.wake_all();
    }
}

/// Where messages for a subscriber go.
pub trait Sink: Send + Sync + 'static {
    /// Takes one message for `sub`. Must not block: a sink over its pending
    /// limit applies its slow-consumer policy and says what happened. A sink
    /// that writes into an outbox records it in `ctx` instead of waking its
    /// writer itself.
    fn deliver(&self, sub: &Subscriber, msg: &Message, ctx: &mut DeliveryCtx) -> Delivery;

    /// Called once when `sub` leaves the index (unsubscribed, message limit
    /// reached). Nothing by default.
    fn on_removed(&self, sub: &Subscriber) {
        let _ = sub;
    }
}

/// How much a subscriber may have waiting before the slow-consumer policy applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingLimits {
    /// Messages waiting, at most (0 = no message limit).
    pub max_messages: usize,
    /// Bytes waiting, at most.
    pub max_bytes: usize,
}

impl Default for PendingLimits {
    /// 65,536 messages or 64 MiB, as nats-server's defaults.
    fn default() -> Self {
        Self {
            max_messages: 65_536,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What happens to a subscriber that falls behind past its pending limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlowConsumerPolicy {
    /// Drop the new message and count it; the subscriber stays.
    DropNewest,
    /// Close the subscriber (for a connection: close the connection with the
    /// protocol's error). The default, as nats-server and Redis do.
    #[default]
    Close,
}

impl SlowConsumerPolicy {
    /// Applies the policy to a message that does not fit: counts it in
    /// `dropped`, or sets `closed`. The caller wakes its reader on
    /// [`Delivery::Closed`].
    pub(crate) fn overflow(
        self,
        dropped: &std::sync::atomic::AtomicU64,
        closed: &mut Option<CloseReason>,
    ) -> Delivery {
        match self {
            Self::DropNewest => {
                dropped.fetch_add(1, Ordering::Relaxed);
                Delivery::Dropped
            }
            Self::Close => {
                *closed = Some(CloseReason::SlowConsumer);
                Delivery::Closed
            }
        }
    }
}

/// Why a sink was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// It fell behind past its pending limit under [`SlowConsumerPolicy::Close`].
    SlowConsumer,
    /// It was unsubscribed (explicitly, by reaching its message limit, or by drop).
    Unsubscribed,
    /// The connection is closing; what is pending is still written.
    Finished,
    /// The broker or server is shutting down.
    Shutdown,
}

/// What a subscription is interested in.
///
/// NATS, MQTT, HTTP and the Rust API subscribe to token [`Pattern`]s. Redis
/// has its own namespaces with their own matching, kept beside the trie:
/// `SUBSCRIBE` is an exact match on the whole channel string, `PSUBSCRIBE` a
/// glob over the whole string of any publish, and `SSUBSCRIBE` an exact match
/// in the separate shard namespace that only `SPUBLISH` reaches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Interest {
    /// Token pattern with `*` and `>`.
    Pattern(Pattern),
    /// Exactly this channel (Redis `SUBSCRIBE`).
    Channel(Bytes),
    /// A Redis glob over the whole subject (`PSUBSCRIBE`).
    Glob(Bytes),
    /// Exactly this shard channel (Redis `SSUBSCRIBE`).
    Shard(Bytes),
}

impl Interest {
    /// Whether a message published (not sharded) on `subject` reaches this interest.
    pub fn matches(&self, subject: &crate::Subject) -> bool {
        match self {
            Interest::Pattern(p) => p.matches(subject),
            Interest::Channel(c) => c.as_ref() == subject.as_bytes(),
            Interest::Glob(g) => crate::glob::glob_match(g, subject.as_bytes()),
            Interest::Shard(_) => false,
        }
    }

    /// The name as bytes (pattern, channel or glob).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Interest::Pattern(p) => p.as_bytes(),
            Interest::Channel(b) | Interest::Glob(b) | Interest::Shard(b) => b,
        }
    }
}

/// What a subscription asks for, as a listener or the in-process API builds it.
#[derive(Debug, Clone)]
pub struct SubscribeSpec {
    /// What to match.
    pub interest: Interest,
    /// Queue group: each message goes to one member of each group (token
    /// patterns only).
    pub queue: Option<QueueName>,
    /// The connection this subscription belongs to.
    pub conn: ConnId,
    /// False: never deliver this connection's own publishes to it.
    pub echo: bool,
    /// A protocol-specific tag the sink uses when encoding (the NATS sid, the
    /// Redis pattern, ...).
    pub tag: Bytes,
    /// Remove the subscription after this many messages (0 = never).
    pub max_messages: u64,
    /// Only messages whose headers pass this filter are delivered.
    pub filter: Option<crate::HeaderFilter>,
    /// Deliveries are checked against these permissions: set when the
    /// pattern reaches subjects its user may not read.
    pub read_check: Option<Arc<crate::Permissions>>,
    /// The broker's own plumbing (stream capture, the JetStream API):
    /// routed like any other, but left out of subscription counts and
    /// channel listings, which describe clients.
    pub internal: bool,
    /// Stands for another node's interest (a cluster route): a message that
    /// came from a route is never offered to it (one hop), a queue group
    /// picks it only when no member on this node takes the message, and it
    /// is not announced to other nodes.
    pub route: bool,
    /// Not announced to other nodes: plumbing every node has its own of
    /// (the JetStream API, reload requests).
    pub node_local: bool,
}

impl SubscribeSpec {
    /// A plain subscription to `pattern` for `conn`, echo on, no limit.
    pub fn new(pattern: Pattern, conn: ConnId) -> Self {
        Self::with_interest(Interest::Pattern(pattern), conn)
    }

    /// An internal subscription (see [`SubscribeSpec::internal`]) to `pattern`.
    pub fn internal(pattern: Pattern, conn: ConnId) -> Self {
        let mut spec = Self::new(pattern, conn);
        spec.internal = true;
        spec
    }

    /// A subscription with any kind of interest for `conn`, echo on, no limit.
    pub fn with_interest(interest: Interest, conn: ConnId) -> Self {
        Self {
            interest,
            queue: None,
            conn,
            echo: true,
            tag: Bytes::new(),
            max_messages: 0,
            filter: None,
            read_check: None,
            internal: false,
            route: false,
            node_local: false,
        }
    }
}

/// One subscription as the index holds it.
pub struct Subscriber {
    pub(crate) id: SubId,
    pub(crate) spec: SubscribeSpec,
    pub(crate) sink: Arc<dyn Sink>,
    pub(crate) max: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) active: AtomicBool,
    pub(crate) read_check: ReadCheck,
}

/// The permissions a subscription's deliveries are checked against, which
/// a configuration reload may change while the subscription lives. Most
/// subscriptions have none: they pay one relaxed load of a flag that is
/// only ever read, not the swap's bookkeeping.
#[derive(Default)]
pub(crate) struct ReadCheck {
    on: AtomicBool,
    permissions: arc_swap::ArcSwapOption<crate::Permissions>,
}

impl ReadCheck {
    fn new(permissions: Option<Arc<crate::Permissions>>) -> Self {
        Self {
            on: AtomicBool::new(permissions.is_some()),
            permissions: arc_swap::ArcSwapOption::new(permissions),
        }
    }

    /// Whether a message on `subject` may be delivered.
    #[inline]
    pub(crate) fn allows(&self, subject: &crate::Subject) -> bool {
        !self.on.load(Ordering::Relaxed)
            || self
                .permissions
                .load()
                .as_ref()
                .is_none_or(|p| p.may_receive(subject))
    }

    fn set(&self, permissions: Option<Arc<crate::Permissions>>) {
        // A delivery racing the change sees either check, never none
        // where one was set: the permissions are in place before the flag.
        let on = permissions.is_some();
        if on {
            self.permissions.store(permissions);
            self.on.store(true, Ordering::Release);
        } else {
            self.on.store(false, Ordering::Release);
            self.permissions.store(None);
        }
    }
}

impl Subscriber {
    pub(crate) fn new(id: SubId, mut spec: SubscribeSpec, sink: Arc<dyn Sink>) -> Self {
        let max = spec.max_messages;
        let read_check = ReadCheck::new(spec.read_check.take());
        Self {
            id,
            spec,
            sink,
            max: AtomicU64::new(max),
            delivered: AtomicU64::new(0),
            active: AtomicBool::new(true),
            read_check,
        }
    }

    /// The permissions its deliveries are checked against, if any.
    pub fn read_check(&self) -> Option<Arc<crate::Permissions>> {
        self.read_check.permissions.load_full()
    }

    /// Checks its deliveries against `permissions` from now on (`None`: no
    /// check): what a reload that changed its user's permissions sets.
    pub fn set_read_check(&self, permissions: Option<Arc<crate::Permissions>>) {
        self.read_check.set(permissions);
    }

    /// The subscription's id.
    pub fn id(&self) -> SubId {
        self.id
    }

    /// What it matches.
    pub fn interest(&self) -> &Interest {
        &self.spec.interest
    }

    /// Its queue group, if any.
    pub fn queue(&self) -> Option<&QueueName> {
        self.spec.queue.as_ref()
    }

    /// The connection it belongs to.
    pub fn conn(&self) -> ConnId {
        self.spec.conn
    }

    /// Whether it stands for another node's interest (see
    /// [`SubscribeSpec::route`]).
    pub fn is_route(&self) -> bool {
        self.spec.route
    }

    /// The protocol tag given at subscribe time (the NATS sid, ...).
    pub fn tag(&self) -> &Bytes {
        &self.spec.tag
    }

    /// Messages handed to its sink so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// The message limit after which it is removed (0 = none).
    pub fn max_messages(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// False once it has been removed from the index.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("id", &self.id)
            .field("interest", &self.spec.interest)
            .field("queue", &self.spec.queue)
            .field("conn", &self.spec.conn)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Subscriber {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
