//! `Broker`: the publish/subscribe engine, a cheap `Clone` handle over shared state.
//!
//! Publishing is synchronous and never blocks: it looks the subject up in the
//! [`SubjectIndex`] (a cached, shared match result), offers the message to
//! every plain subscriber and to one member of each queue group, and returns
//! how many took it. Subscribers that fall behind are handled by their own
//! sink's slow-consumer policy, so one slow reader never holds up the rest.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use ahash::AHashMap;
use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Serialize;

use crate::channels::{ExactTable, GlobTable, Subs};
use crate::error::Error;
use crate::glob::glob_match;
use crate::index::{MatchResult, SubjectIndex};
use crate::interest::{InterestWaiter, InterestWaiters};
use crate::message::Message;
use crate::sink::{
    ConnId, Delivery, DeliveryCtx, Interest, PendingLimits, Sink, SlowConsumerPolicy, SubId,
    SubscribeSpec, Subscriber,
};
use crate::stats::{PublishCounts, Stats, StatsSnapshot};
use crate::subject::{Pattern, QueueName, Subject};
use crate::subscription::{MessageQueue, Subscription};

/// The connection id of subscriptions and publishes made through the Rust API.
pub const LOCAL_CONN: ConnId = ConnId(0);

/// How the broker treats subscribers by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrokerConfig {
    /// Pending limit of each in-process subscription.
    pub pending: PendingLimits,
    /// What happens past it.
    pub slow_consumer: SlowConsumerPolicy,
}

type Route = Arc<MatchResult<Arc<Subscriber>>>;

struct Inner {
    index: SubjectIndex<Arc<Subscriber>>,
    /// Redis `SUBSCRIBE` channels (exact match on any published subject).
    channels: ExactTable,
    /// Redis `SSUBSCRIBE` shard channels (reached only by `SPUBLISH`).
    shards: ExactTable,
    /// Redis `PSUBSCRIBE` globs (matched against any published subject).
    globs: GlobTable,
    config: BrokerConfig,
    stats: Stats,
    next_sub: AtomicU64,
    next_conn: AtomicU64,
    /// In-process queues, so `flush` can wait for them to drain.
    queues: Mutex<AHashMap<SubId, Weak<MessageQueue>>>,
    /// Internal subscriptions per pattern, hidden from counts and listings.
    internal: Mutex<AHashMap<Pattern, usize>>,
    /// Woken when a subject they wait for gains a subscriber.
    interest_waiters: InterestWaiters,
    /// Each client connection's subscriptions, for monitoring (`/connz`).
    by_conn: Mutex<AHashMap<ConnId, std::collections::BTreeMap<u64, Weak<Subscriber>>>>,
    /// Latency histograms for metrics, shared with outboxes and the store.
    timings: Arc<crate::Timings>,
    /// Told of every subscription to announce to other nodes (a cluster).
    observer: std::sync::OnceLock<Arc<dyn InterestObserver>>,
}

/// Hears of every subscription other nodes should know of: made or removed
/// on this node, not for a route, not node-local. A cluster installs one
/// ([`Broker::observe_interest`]) and turns changes into its route
/// protocol's interest messages.
pub trait InterestObserver: Send + Sync + 'static {
    /// `interest` (in queue group `queue`, if any) was subscribed
    /// (`added`) or unsubscribed once more.
    fn changed(&self, interest: &Interest, queue: Option<&QueueName>, added: bool);
}

/// The broker. Clone it freely: every clone is the same broker.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("subscriptions", &self.inner.index.len())
            .finish_non_exhaustive()
    }
}

impl Default for Broker {
    fn default() -> Self {
        Self::new()
    }
}

impl Broker {
    /// A broker with the default configuration.
    pub fn new() -> Self {
        Self::with_config(BrokerConfig::default())
    }

    /// A broker with the given configuration.
    pub fn with_config(config: BrokerConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                index: SubjectIndex::new(),
                channels: ExactTable::default(),
                shards: ExactTable::default(),
                globs: GlobTable::default(),
                config,
                stats: Stats::default(),
                next_sub: AtomicU64::new(1),
                next_conn: AtomicU64::new(1),
                queues: Mutex::new(AHashMap::new()),
                internal: Mutex::new(AHashMap::new()),
                interest_waiters: InterestWaiters::default(),
                by_conn: Mutex::new(AHashMap::new()),
                timings: Arc::default(),
                observer: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The configuration the broker was built with.
    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    /// A fresh connection id for a listener's new client.
    pub fn new_conn_id(&self) -> ConnId {
        ConnId(self.inner.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    /// A fresh, unique inbox subject (`_INBOX.<random>`) for replies.
    pub fn new_inbox(&self) -> Subject {
        let token: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(22)
            .map(char::from)
            .collect();
        Subject::from_wire_unchecked(Bytes::from(format!("_INBOX.{token}")))
    }

    /// Publishes `payload` on `subject`; returns how many subscribers took it.
    ///
    /// # Errors
    /// [`Error::InvalidSubject`] if `subject` is not a valid publish subject.
    pub fn publish<S>(&self, subject: S, payload: impl Into<Bytes>) -> Result<usize, Error>
    where
        S: TryInto<Subject>,
        S::Error: Into<Error>,
    {
        let subject = subject.try_into().map_err(Into::into)?;
        Ok(self.publish_message(&Message::new(subject, payload)))
    }

    /// Publishes `value` as JSON on `subject`.
    ///
    /// # Errors
    /// [`Error::InvalidSubject`], or [`Error::Json`] if it does not serialize.
    pub fn publish_json<S, T>(&self, subject: S, value: &T) -> Result<usize, Error>
    where
        S: TryInto<Subject>,
        S::Error: Into<Error>,
        T: Serialize + ?Sized,
    {
        let subject = subject.try_into().map_err(Into::into)?;
        let payload = serde_json::to_vec(value).map_err(|source| Error::Json {
            subject: subject.to_string(),
            source: Arc::new(source),
        })?;
        Ok(self.publish_message(&Message::new(subject, payload)))
    }

    /// Publishes a whole message (reply subject and headers included).
    pub fn publish_message(&self, msg: &Message) -> usize {
        self.publish_from(LOCAL_CONN, msg)
    }

    /// Publishes on behalf of connection `origin` (whose `echo: false`
    /// subscriptions will not see it). Listeners that publish a lot should use
    /// a [`Publisher`] instead, which caches lookups per connection.
    pub fn publish_from(&self, origin: ConnId, msg: &Message) -> usize {
        self.deliver_on(origin, &msg.subject, msg)
    }

    /// Delivers `msg` to the subscribers of `subject`, which may differ from
    /// the message's own subject: a stream consumer's delivery goes to the
    /// consumer's inbox but shows the subject the message was stored under,
    /// as NATS clients expect. Returns how many subscribers took it.
    pub fn deliver_on(&self, origin: ConnId, subject: &Subject, msg: &Message) -> usize {
        let route = self.inner.index.matches(subject);
        let mut ctx = DeliveryCtx::new();
        let channel_subs = self.inner.channels.get(subject.as_bytes());
        let found = (&*route, channel_subs.as_ref());
        let receivers = self.route(origin, subject, msg, found, &mut ctx);
        ctx.wake_all();
        self.inner
            .stats
            .record_publish(msg.payload.len(), receivers);
        receivers
    }

    /// A publishing handle for one connection, with its own lookup cache.
    pub fn publisher(&self, origin: ConnId) -> Publisher {
        Publisher {
            broker: self.clone(),
            origin,
            cache: AHashMap::new(),
            ctx: DeliveryCtx::staging(),
            counts: PublishCounts::default(),
            last: None,
        }
    }

    /// Offers `msg` to the subscribers `route` matched in the trie and to the
    /// Redis channel subscribers of `subject` (both looked up by the caller,
    /// which may have cached them), then to the Redis globs.
    fn route(
        &self,
        origin: ConnId,
        subject: &Subject,
        msg: &Message,
        (route, channel_subs): (&MatchResult<Arc<Subscriber>>, Option<&Subs>),
        ctx: &mut DeliveryCtx,
    ) -> usize {
        ctx.routes_seen.clear();
        // A consumer's delivery (`deliver_on`) is matched on its inbox, not
        // on the subject it shows: a route must say so.
        ctx.delivered_on = (!std::ptr::eq(subject, &msg.subject)
            && subject.as_bytes() != msg.subject.as_bytes())
        .then(|| subject.clone());
        let mut receivers = self.offer_all(origin, &route.plain, msg, ctx);
        if !ctx.from_route {
            for group in &route.groups {
                receivers += usize::from(self.offer_group(origin, group, msg, ctx));
            }
        }
        // Redis subscribers: exact channels first, then globs, as Redis orders them.
        if let Some(subs) = channel_subs {
            receivers += self.offer_all(origin, subs, msg, ctx);
        }
        if let Some(globs) = self.inner.globs.snapshot() {
            for sub in globs.iter() {
                if glob_match(sub.interest().as_bytes(), subject.as_bytes())
                    && self.offer(origin, sub, msg, ctx)
                {
                    receivers += 1;
                }
            }
        }
        // Each other node the message went to counts as one receiver (its
        // own subscribers are not known here): a request forwarded to a
        // node with a responder is not answered "no responders".
        receivers
    }

    /// Offers `msg` to one member of `group`: members on this node in turn
    /// until one takes it (a full or closing member must not make the group
    /// lose the message), then, if none did, other nodes' (routes).
    fn offer_group(
        &self,
        origin: ConnId,
        group: &crate::QueueGroupMatch<Arc<Subscriber>>,
        msg: &Message,
        ctx: &mut DeliveryCtx,
    ) -> bool {
        let mut remote = Vec::new();
        for member in group.in_turn() {
            if member.spec.route {
                remote.push(member);
            } else if self.offer(origin, member, msg, ctx) {
                return true;
            }
        }
        remote
            .into_iter()
            .any(|member| self.offer(origin, member, msg, ctx))
    }

    /// Delivers a message that came from another node (`origin` is its
    /// route): to this node's plain subscribers of every kind, or, with
    /// `queue`, to one member of that queue group on this node only — the
    /// sending node chose this node for the group. Never to a route (one
    /// hop). Returns how many subscribers took it.
    pub fn deliver_from_route(
        &self,
        origin: ConnId,
        msg: &Message,
        on: Option<&Subject>,
        queue: Option<&QueueName>,
    ) -> usize {
        let mut ctx = DeliveryCtx::new();
        ctx.from_route = true;
        // A consumer's delivery goes to its inbox but shows the stored subject.
        let subject = on.unwrap_or(&msg.subject);
        let route = self.inner.index.matches(subject);
        let receivers = match queue {
            None => {
                let channel_subs = self.inner.channels.get(subject.as_bytes());
                let found = (&*route, channel_subs.as_ref());
                self.route(origin, subject, msg, found, &mut ctx)
            }
            Some(queue) => route
                .groups
                .iter()
                .filter(|g| g.name == *queue)
                .map(|g| usize::from(self.offer_group(origin, g, msg, &mut ctx)))
                .sum(),
        };
        ctx.wake_all();
        self.inner.stats.record_routed(msg.payload.len(), receivers);
        receivers
    }

    /// [`deliver_from_route`](Self::deliver_from_route) for a shard-channel
    /// publish (Redis `SPUBLISH`).
    pub fn deliver_shard_from_route(&self, origin: ConnId, msg: &Message) -> usize {
        self.shard(origin, msg, true)
    }

    /// Offers `msg` to each of `subs`; returns how many took it.
    fn offer_all(
        &self,
        origin: ConnId,
        subs: &[Arc<Subscriber>],
        msg: &Message,
        ctx: &mut DeliveryCtx,
    ) -> usize {
        subs.iter()
            .filter(|sub| self.offer(origin, sub, msg, ctx))
            .count()
    }

    fn offer(
        &self,
        origin: ConnId,
        sub: &Arc<Subscriber>,
        msg: &Message,
        ctx: &mut DeliveryCtx,
    ) -> bool {
        if !sub.spec.echo && sub.spec.conn == origin {
            return false;
        }
        if !sub.is_active() {
            return false;
        }
        if sub.spec.route {
            if ctx.from_route {
                return false;
            }
            // A node gets a message once for all its plain interests.
            let node = Arc::as_ptr(&sub.sink).cast::<()>() as usize;
            if sub.spec.queue.is_none() {
                if ctx.routes_seen.contains(&node) {
                    return false;
                }
                ctx.routes_seen.push(node);
            }
        }
        if sub.spec.filter.as_ref().is_some_and(|f| !f.matches(msg)) {
            return false;
        }
        if !sub.read_check.allows(&msg.subject) {
            return false;
        }
        let max = sub.max.load(Ordering::Relaxed);
        let count = sub.delivered.fetch_add(1, Ordering::Relaxed) + 1;
        if max > 0 && count > max {
            return false;
        }
        match sub.sink.deliver(sub, msg, ctx) {
            Delivery::Delivered => {
                if max > 0 && count == max {
                    self.remove_subscriber(sub);
                }
                true
            }
            Delivery::Dropped => {
                self.inner.stats.record_dropped();
                false
            }
            Delivery::Closed => false,
        }
    }

    /// Publishes in the shard namespace (Redis `SPUBLISH`): only shard
    /// subscribers of exactly `msg.subject` receive it.
    pub fn publish_shard(&self, origin: ConnId, msg: &Message) -> usize {
        self.shard(origin, msg, false)
    }

    fn shard(&self, origin: ConnId, msg: &Message, from_route: bool) -> usize {
        let mut ctx = DeliveryCtx::new();
        ctx.from_route = from_route;
        let receivers = self
            .inner
            .shards
            .get(msg.subject.as_bytes())
            .map_or(0, |subs| self.offer_all(origin, &subs, msg, &mut ctx));
        ctx.wake_all();
        if from_route {
            self.inner.stats.record_routed(msg.payload.len(), receivers);
        } else {
            self.inner
                .stats
                .record_publish(msg.payload.len(), receivers);
        }
        receivers
    }

    /// Whether a publish on `subject` would reach any token-pattern
    /// subscriber (plain or queue group) or Redis channel subscriber.
    pub fn has_subscribers(&self, subject: &Subject) -> bool {
        let route = self.inner.index.matches(subject);
        route.plain.iter().any(|s| s.is_active())
            || route.groups.iter().any(|g| !g.members().is_empty())
            || self
                .inner
                .channels
                .get(subject.as_bytes())
                .is_some_and(|s| !s.is_empty())
    }

    /// Subscribes to `pattern`.
    ///
    /// # Errors
    /// [`Error::InvalidSubject`] if `pattern` is not a valid pattern.
    pub fn subscribe<P>(&self, pattern: P) -> Result<Subscription, Error>
    where
        P: TryInto<Pattern>,
        P::Error: Into<Error>,
    {
        self.subscribe_with(SubscribeOptions::new(
            pattern.try_into().map_err(Into::into)?,
        ))
    }

    /// Joins queue group `group` on `pattern`: each message goes to one member.
    ///
    /// # Errors
    /// [`Error::InvalidSubject`] if `pattern` or `group` is not valid.
    pub fn queue_subscribe<P, Q>(&self, pattern: P, group: Q) -> Result<Subscription, Error>
    where
        P: TryInto<Pattern>,
        P::Error: Into<Error>,
        Q: TryInto<QueueName>,
        Q::Error: Into<Error>,
    {
        let options = SubscribeOptions::new(pattern.try_into().map_err(Into::into)?)
            .queue(group.try_into().map_err(Into::into)?);
        self.subscribe_with(options)
    }

    /// Subscribes with every option spelled out.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for permission checks.
    pub fn subscribe_with(&self, options: SubscribeOptions) -> Result<Subscription, Error> {
        let config = self.inner.config;
        let queue = Arc::new(MessageQueue::new(
            options.pending.unwrap_or(config.pending),
            options.slow_consumer.unwrap_or(config.slow_consumer),
        ));
        let mut spec = SubscribeSpec::new(options.pattern.clone(), LOCAL_CONN);
        spec.queue = options.queue;
        spec.max_messages = options.max_messages;
        spec.filter = options.filter;
        spec.read_check = options.read_check;
        spec.node_local = options.node_local;
        let sub = self.subscribe_sink(spec, queue.clone());
        self.inner
            .queues
            .lock()
            .insert(sub.id, Arc::downgrade(&queue));
        Ok(Subscription {
            queue,
            sub,
            broker: self.clone(),
            pattern: options.pattern,
        })
    }

    /// Adds a subscription whose messages go to `sink` (how listeners
    /// subscribe their connections). Remove it with [`Broker::remove_subscriber`].
    pub fn subscribe_sink(&self, spec: SubscribeSpec, sink: Arc<dyn Sink>) -> Arc<Subscriber> {
        let id = SubId(self.inner.next_sub.fetch_add(1, Ordering::Relaxed));
        let sub = Arc::new(Subscriber::new(id, spec, sink));
        // Before it can be hit and removed (a one-message subscription):
        // other nodes hear of it before they hear it is gone.
        self.announce(&sub, true);
        if let (true, Interest::Pattern(p)) = (sub.spec.internal, &sub.spec.interest) {
            *self.inner.internal.lock().entry(p.clone()).or_default() += 1;
        }
        match &sub.spec.interest {
            Interest::Pattern(pattern) => {
                self.inner
                    .index
                    .insert(pattern, sub.spec.queue.as_ref(), id.0, sub.clone());
            }
            Interest::Channel(name) => self.inner.channels.insert(name, sub.clone()),
            Interest::Shard(name) => self.inner.shards.insert(name, sub.clone()),
            Interest::Glob(_) => self.inner.globs.insert(sub.clone()),
        }
        self.inner.interest_waiters.subscribed(&sub.spec.interest);
        if !sub.spec.internal && sub.spec.conn != LOCAL_CONN {
            self.inner
                .by_conn
                .lock()
                .entry(sub.spec.conn)
                .or_default()
                .insert(id.0, Arc::downgrade(&sub));
        }
        sub
    }

    /// The live subscriptions of connection `conn`, in the order made.
    pub fn subscriptions_of(&self, conn: ConnId) -> Vec<Arc<Subscriber>> {
        self.inner
            .by_conn
            .lock()
            .get(&conn)
            .map(|subs| subs.values().filter_map(Weak::upgrade).collect())
            .unwrap_or_default()
    }

    /// Wakes `waiter` once, when `subject` gains a subscriber. Register
    /// before checking [`has_subscribers`](Self::has_subscribers), so a
    /// subscribe between the two is not missed.
    pub fn wake_on_interest(&self, subject: Subject, waiter: Weak<dyn InterestWaiter>) {
        self.inner.interest_waiters.add(subject, waiter);
    }

    /// Removes a subscription; returns false if it was already gone.
    pub fn remove_subscriber(&self, sub: &Subscriber) -> bool {
        if !sub.active.swap(false, Ordering::AcqRel) {
            return false;
        }
        if !sub.spec.internal && sub.spec.conn != LOCAL_CONN {
            let mut by_conn = self.inner.by_conn.lock();
            if let Some(subs) = by_conn.get_mut(&sub.spec.conn) {
                subs.remove(&sub.id.0);
                if subs.is_empty() {
                    by_conn.remove(&sub.spec.conn);
                }
            }
        }
        if let (true, Interest::Pattern(p)) = (sub.spec.internal, &sub.spec.interest) {
            let mut internal = self.inner.internal.lock();
            if let Some(n) = internal.get_mut(p) {
                *n -= 1;
                if *n == 0 {
                    internal.remove(p);
                }
            }
        }
        match &sub.spec.interest {
            Interest::Pattern(pattern) => {
                self.inner
                    .index
                    .remove(pattern, sub.spec.queue.as_ref(), sub.id.0);
            }
            Interest::Channel(name) => {
                self.inner.channels.remove(name, sub);
            }
            Interest::Shard(name) => {
                self.inner.shards.remove(name, sub);
            }
            Interest::Glob(_) => {
                self.inner.globs.remove(sub);
            }
        }
        self.inner.queues.lock().remove(&sub.id);
        self.announce(sub, false);
        sub.sink.on_removed(sub);
        true
    }

    /// Limits `sub` to `n` messages in total (0 = no limit). If it has
    /// received that many already it is removed at once (NATS `UNSUB sid n`).
    pub fn unsubscribe_after(&self, sub: &Subscriber, n: u64) {
        sub.max.store(n, Ordering::Relaxed);
        if n > 0 && sub.delivered() >= n {
            self.remove_subscriber(sub);
        }
    }

    /// Sends a request and waits for the first reply.
    ///
    /// # Errors
    /// [`Error::NoResponders`] at once if nobody is subscribed to `subject`;
    /// [`Error::Timeout`] if no reply comes within `timeout`.
    pub async fn request<S>(
        &self,
        subject: S,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Message, Error>
    where
        S: TryInto<Subject>,
        S::Error: Into<Error>,
    {
        let subject = subject.try_into().map_err(Into::into)?;
        self.request_message(Message::new(subject, payload), timeout)
            .await
    }

    /// Sends a request message (its reply subject is replaced by a fresh
    /// inbox) and waits for the first reply.
    ///
    /// # Errors
    /// As [`Broker::request`].
    pub async fn request_message(&self, msg: Message, timeout: Duration) -> Result<Message, Error> {
        let inbox = self.new_inbox();
        let mut replies = self
            .subscribe_with(SubscribeOptions::new(Pattern::from(inbox.clone())).max_messages(1))?;
        let msg = msg.with_reply(inbox);
        if self.publish_message(&msg) == 0 {
            return Err(Error::NoResponders {
                subject: msg.subject.to_string(),
            });
        }
        match tokio::time::timeout(timeout, replies.next()).await {
            Ok(Some(reply)) => Ok(reply),
            Ok(None) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout {
                subject: msg.subject.to_string(),
                timeout,
            }),
        }
    }

    /// Answers `request` (a message with a reply subject) with `payload`.
    /// Returns false if the request had no reply subject.
    pub fn respond(&self, request: &Message, payload: impl Into<Bytes>) -> bool {
        match &request.reply {
            Some(reply) => {
                self.publish_message(&Message::new(reply.clone(), payload));
                true
            }
            None => false,
        }
    }

    /// Waits until every message published before the call has been taken
    /// from its in-process subscription (or that subscription closed): the
    /// `Wait()` of a Go broker example. Messages for connections are handed to
    /// their outbox at publish time already.
    pub async fn flush(&self) {
        let queues: Vec<Arc<MessageQueue>> = self
            .inner
            .queues
            .lock()
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for queue in queues {
            queue.wait_drained().await;
        }
    }

    /// Installs the one [`InterestObserver`] (a cluster). Install it before
    /// anything subscribes: subscriptions made earlier are not reported.
    /// Returns false if one was installed already.
    pub fn observe_interest(&self, observer: Arc<dyn InterestObserver>) -> bool {
        self.inner.observer.set(observer).is_ok()
    }

    fn announce(&self, sub: &Subscriber, added: bool) {
        if let Some(observer) = self.inner.observer.get()
            && !sub.spec.route
            && !sub.spec.node_local
        {
            observer.changed(&sub.spec.interest, sub.spec.queue.as_ref(), added);
        }
    }

    /// Latency histograms (outbox queueing, stream writes, acks) for metrics;
    /// hand them to outboxes with [`Outbox::with_timings`](crate::Outbox::with_timings).
    pub fn timings(&self) -> &Arc<crate::Timings> {
        &self.inner.timings
    }

    /// The counters since start.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot(self.subscription_count())
    }

    /// Counts a subscriber closed as a slow consumer (listeners call this when
    /// they close a connection for it).
    pub fn record_slow_consumer(&self) {
        self.inner.stats.record_slow_consumer();
    }

    /// The subject index (for introspection: counts, patterns).
    pub fn index(&self) -> &SubjectIndex<Arc<Subscriber>> {
        &self.inner.index
    }

    /// Channels with at least one subscriber, across protocols: Redis
    /// channels and literal token subscriptions, optionally filtered by a
    /// Redis glob (`PUBSUB CHANNELS`).
    pub fn channel_names(&self, glob: Option<&[u8]>) -> Vec<Bytes> {
        let mut names = self.inner.channels.names();
        names.extend(
            self.inner
                .index
                .patterns()
                .into_iter()
                .filter(|(p, n)| *n > self.internal_count(p) && p.is_literal())
                .map(|(p, _)| p.to_bytes()),
        );
        names.sort_unstable();
        names.dedup();
        names.retain(|n| glob.is_none_or(|g| glob_match(g, n)));
        names
    }

    /// Subscribers of exactly `channel`, across protocols (`PUBSUB NUMSUB`).
    pub fn channel_subscribers(&self, channel: &[u8]) -> usize {
        let literal = Pattern::from_bytes(Bytes::copy_from_slice(channel))
            .ok()
            .filter(Pattern::is_literal)
            .map_or(0, |p| {
                self.inner
                    .index
                    .count_for(&p)
                    .saturating_sub(self.internal_count(&p))
            });
        self.inner.channels.count(channel) + literal
    }

    fn internal_count(&self, pattern: &Pattern) -> usize {
        self.inner
            .internal
            .lock()
            .get(pattern)
            .copied()
            .unwrap_or(0)
    }

    /// Distinct Redis glob patterns with a subscriber (`PUBSUB NUMPAT`).
    pub fn glob_patterns(&self) -> usize {
        self.inner.globs.distinct()
    }

    /// Shard channels with a subscriber, optionally filtered by a glob.
    pub fn shard_names(&self, glob: Option<&[u8]>) -> Vec<Bytes> {
        let mut names = self.inner.shards.names();
        names.sort_unstable();
        names.retain(|n| glob.is_none_or(|g| glob_match(g, n)));
        names
    }

    /// Subscribers of exactly shard channel `channel`.
    pub fn shard_subscribers(&self, channel: &[u8]) -> usize {
        self.inner.shards.count(channel)
    }

    /// Subscriptions of every kind.
    pub fn subscription_count(&self) -> usize {
        let internal: usize = self.inner.internal.lock().values().sum();
        self.inner.index.len().saturating_sub(internal)
            + self.inner.channels.len()
            + self.inner.shards.len()
            + self.inner.globs.snapshot().map_or(0, |g| g.len())
    }
}

/// Options of an in-process subscription.
#[derive(Debug, Clone)]
pub struct SubscribeOptions {
    pattern: Pattern,
    queue: Option<QueueName>,
    max_messages: u64,
    pending: Option<PendingLimits>,
    slow_consumer: Option<SlowConsumerPolicy>,
    filter: Option<crate::HeaderFilter>,
    read_check: Option<Arc<crate::Permissions>>,
    node_local: bool,
}

impl SubscribeOptions {
    /// Subscribe to `pattern` with the broker's defaults.
    pub fn new(pattern: Pattern) -> Self {
        Self {
            pattern,
            queue: None,
            max_messages: 0,
            pending: None,
            slow_consumer: None,
            filter: None,
            read_check: None,
            node_local: false,
        }
    }

    /// Keep the subscription to this node: not announced to the others of
    /// a cluster (plumbing each node has its own of).
    #[must_use]
    pub fn node_local(mut self) -> Self {
        self.node_local = true;
        self
    }

    /// Check every delivery against `permissions` (a subscription that
    /// reaches subjects its user may not read).
    #[must_use]
    pub fn read_check(mut self, permissions: Arc<crate::Permissions>) -> Self {
        self.read_check = Some(permissions);
        self
    }

    /// Deliver only messages whose headers pass `filter`.
    #[must_use]
    pub fn filter(mut self, filter: crate::HeaderFilter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Join a queue group.
    #[must_use]
    pub fn queue(mut self, group: QueueName) -> Self {
        self.queue = Some(group);
        self
    }

    /// End the subscription after `n` messages.
    #[must_use]
    pub fn max_messages(mut self, n: u64) -> Self {
        self.max_messages = n;
        self
    }

    /// Override the pending limit.
    #[must_use]
    pub fn pending(mut self, limits: PendingLimits) -> Self {
        self.pending = Some(limits);
        self
    }

    /// Override the slow-consumer policy.
    #[must_use]
    pub fn slow_consumer(mut self, policy: SlowConsumerPolicy) -> Self {
        self.slow_consumer = Some(policy);
        self
    }
}

/// Publishes for one connection, caching subject lookups locally so the hot
/// path takes no lock at all while the index is unchanged.
pub struct Publisher {
    broker: Broker,
    origin: ConnId,
    cache: AHashMap<Subject, Cached>,
    /// Writers to wake and congested outboxes of the current batch.
    ctx: DeliveryCtx,
    /// Counters of the current batch, added to the broker's at its end, so
    /// publishers on different threads do not fight over shared counters.
    counts: PublishCounts,
    /// The last subject looked up (an owned copy) and what was found.
    last: Option<(Subject, Cached)>,
}

/// What a [`Publisher`] remembers of one subject's lookups.
#[derive(Clone)]
struct Cached {
    /// The trie's generation when `route` was found.
    generation: u64,
    route: Route,
    /// The Redis channel table's generation when `channel_subs` was found.
    channel_generation: u64,
    channel_subs: Option<Subs>,
}

impl Cached {
    fn is_current(&self, generation: u64, channel_generation: u64) -> bool {
        self.generation == generation && self.channel_generation == channel_generation
    }
}

/// Lookups a [`Publisher`] remembers before it starts over.
const PUBLISHER_CACHE: usize = 512;

impl Publisher {
    /// Publishes `msg`; returns how many subscribers took it.
    pub fn publish(&mut self, msg: &Message) -> usize {
        let inner = &self.broker.inner;
        // Both generations before any lookup: a lookup made after reading
        // them is current for as long as they do not change.
        let generation = inner.index.generation();
        let channel_generation = inner.channels.generation();
        // Publishers mostly repeat their last subject: compare before hashing.
        let repeat = self.last.as_ref().is_some_and(|(subject, cached)| {
            cached.is_current(generation, channel_generation)
                && subject.as_bytes() == msg.subject.as_bytes()
        });
        let once;
        let cached = match &mut self.last {
            Some((_, cached)) if repeat => &*cached,
            _ => match self.look_up(&msg.subject, generation, channel_generation) {
                Ok(found) => &self.last.insert(found).1,
                Err(uncached) => {
                    once = uncached;
                    &once
                }
            },
        };
        let found = (&*cached.route, cached.channel_subs.as_ref());
        let receivers = self
            .broker
            .route(self.origin, &msg.subject, msg, found, &mut self.ctx);
        self.counts.add(msg.payload.len(), receivers);
        receivers
    }

    /// The routes of `subject`, from this publisher's cache when they are
    /// still current, otherwise found (and cached) anew; `Err` holds routes
    /// found for a subject not worth caching (seen once so far).
    fn look_up(
        &mut self,
        subject: &Subject,
        generation: u64,
        channel_generation: u64,
    ) -> Result<(Subject, Cached), Cached> {
        if let Some((key, cached)) = self.cache.get_key_value(subject)
            && cached.is_current(generation, channel_generation)
        {
            return Ok((key.clone(), cached.clone()));
        }
        let inner = &self.broker.inner;
        let (route, worth_caching) = inner.index.lookup(subject);
        let cached = Cached {
            generation,
            route,
            channel_generation,
            channel_subs: inner.channels.get(subject.as_bytes()),
        };
        if !worth_caching {
            // Seen once so far (an ack subject, say): not worth a copy.
            return Err(cached);
        }
        if self.cache.len() >= PUBLISHER_CACHE {
            self.cache.clear();
        }
        // Copy the key: the subject may be a slice of a connection's read
        // buffer, which the cache must not keep alive.
        let key = subject.detached();
        self.cache.insert(key.clone(), cached.clone());
        Ok((key, cached))
    }

    /// Hands what this publisher delivered so far to the receivers' outboxes
    /// and wakes their writers. A listener calls it before it writes a reply
    /// of its own that must follow those deliveries (a `PONG`, an `+OK`, a
    /// Redis reply): deliveries are staged per receiver until then.
    pub fn flush(&mut self) {
        self.ctx.flush();
    }

    /// Ends a batch of publishes: wakes every writer that has new output, and
    /// returns the outboxes that passed their high-water mark, for the caller
    /// to wait on (boundedly) before it reads more from its client. Call it
    /// after each read's worth of frames; messages published through this
    /// handle sit in their outboxes until it is called (or the handle drops).
    pub fn finish_batch(&mut self) -> Vec<Arc<crate::Outbox>> {
        self.ctx.wake_all();
        self.broker
            .inner
            .stats
            .add(std::mem::take(&mut self.counts));
        self.ctx.take_congested()
    }

    /// Publishes in the shard namespace (Redis `SPUBLISH`), staged and
    /// back-pressured like [`publish`](Self::publish): only shard
    /// subscribers of exactly `msg.subject` receive it.
    pub fn publish_shard(&mut self, msg: &Message) -> usize {
        let inner = &self.broker.inner;
        self.ctx.routes_seen.clear();
        let receivers = inner.shards.get(msg.subject.as_bytes()).map_or(0, |subs| {
            self.broker
                .offer_all(self.origin, &subs, msg, &mut self.ctx)
        });
        self.counts.add(msg.payload.len(), receivers);
        receivers
    }

    /// Back-pressure at the end of a batch: waits (for at most
    /// [`MAX_STALL`](crate::outbox::MAX_STALL), all of them together) for
    /// the congested outboxes [`finish_batch`](Self::finish_batch) returned
    /// to have room, skipping `own` (the publisher's own outbox) and any
    /// whose writer is stuck. Counted in the broker's `stalls`.
    pub async fn wait_for_congested(
        &self,
        congested: Vec<Arc<crate::Outbox>>,
        own: &Arc<crate::Outbox>,
    ) {
        if congested.is_empty() {
            return;
        }
        let waited =
            crate::outbox::wait_for_room_all(congested, own, crate::outbox::MAX_STALL).await;
        if waited {
            self.broker.inner.stats.record_stall();
        }
    }

    /// The broker this publisher belongs to.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.broker
            .inner
            .stats
            .add(std::mem::take(&mut self.counts));
    }
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("origin", &self.origin)
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}
