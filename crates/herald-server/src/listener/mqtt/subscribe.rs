//! Subscriptions: `SUBSCRIBE` and `UNSUBSCRIBE`, the broker subscriptions behind them, the
//! sink that turns broker deliveries into session messages, and retained messages sent on
//! subscribe.
//!
//! A filter maps to one broker pattern (`a/+/c` → `a.*.c`), plus the parent subject when it
//! ends in `#` (`a/#` also matches `a`, which `a.>` does not). `$share/<group>/<filter>`
//! subscribes the same patterns in queue group `<group>`, so each message goes to one
//! member, whatever protocol the members speak. Filters starting with a wildcard do not
//! match topics starting with `$` (v5 §4.7.2), checked per delivery.

use std::sync::Arc;

use herald_core::{
    Broker, Delivery, DeliveryCtx, Message, Pattern, QueueName, Sink, SubscribeSpec, Subscriber,
};
use herald_protocol::mqtt::{
    Packet, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, SubscriptionId,
    SubscriptionOptions, TopicFilter, TopicName, UnsubAck, Unsubscribe, filter_to_subject,
    parent_subject, subject_to_topic,
};
use parking_lot::Mutex;

use super::connection::Connection;
use super::delivery::{Origin, Outgoing, foreign_properties};
use super::session::Session;
use crate::listener::port::Gate;

/// One subscription of a session.
#[derive(Debug)]
pub(super) struct SubEntry {
    /// The filter as the client wrote it.
    pub(super) filter: TopicFilter,
    /// Its options.
    pub(super) options: SubscriptionOptions,
    /// Its Subscription Identifier (MQTT 5).
    pub(super) id: Option<SubscriptionId>,
    /// The sink its broker subscriptions deliver to.
    pub(super) sink: Arc<SubSink>,
    /// The broker subscriptions: the filter's pattern, and its parent for `.../#`.
    pub(super) subscribers: Vec<Arc<Subscriber>>,
}

/// What a sink needs of its subscription's options on every delivery.
#[derive(Debug, Clone, Copy)]
struct DeliverOptions {
    qos: QoS,
    retain_as_published: bool,
    /// The filter starts with a wildcard: topics starting with `$` do not match.
    no_dollar: bool,
    shared: bool,
    id: Option<SubscriptionId>,
}

impl DeliverOptions {
    fn new(
        filter: &TopicFilter,
        options: &SubscriptionOptions,
        id: Option<SubscriptionId>,
    ) -> Self {
        Self {
            qos: options.qos,
            retain_as_published: options.retain_as_published,
            no_dollar: filter.filter().starts_with(['+', '#']),
            shared: filter.is_shared(),
            id,
        }
    }
}

/// Delivers broker messages into a session, as one subscription's options say.
pub(super) struct SubSink {
    session: std::sync::Weak<Session>,
    options: Mutex<DeliverOptions>,
}

impl std::fmt::Debug for SubSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubSink")
            .field("options", &*self.options.lock())
            .finish_non_exhaustive()
    }
}

impl Sink for SubSink {
    fn deliver(&self, _sub: &Subscriber, msg: &Message, ctx: &mut DeliveryCtx) -> Delivery {
        let Some(session) = self.session.upgrade() else {
            return Delivery::Closed;
        };
        let options = *self.options.lock();
        let (topic, qos, retain, props, expires_at) = match msg.extension::<Origin>() {
            Some(o) => (
                o.topic.clone(),
                o.qos,
                o.retain,
                o.props.clone(),
                o.expires_at,
            ),
            None => {
                // From another protocol: a subject MQTT cannot name is not delivered.
                let Some(topic) = subject_to_topic(msg.subject.as_bytes())
                    .ok()
                    .and_then(|t| TopicName::new(&t).ok())
                else {
                    return Delivery::Closed;
                };
                (topic, QoS::AtMostOnce, false, foreign_properties(msg), None)
            }
        };
        if options.no_dollar && topic.as_str().starts_with('$') {
            return Delivery::Closed;
        }
        let out = Outgoing {
            topic,
            payload: msg.payload.clone(),
            qos: qos.min(options.qos),
            retain: retain && options.retain_as_published,
            props,
            sub_id: options.id,
            expires_at,
        };
        let mut state = session.state.lock();
        if options.shared && state.link.is_none() {
            // An absent member of a share group: let the broker pick another one.
            return Delivery::Closed;
        }
        let tracked = out.qos != QoS::AtMostOnce;
        let delivery = state.offer(out, ctx);
        drop(state);
        if tracked && delivery == Delivery::Delivered {
            session.touch();
        }
        delivery
    }
}

/// The broker side of a topic filter: its patterns (a `.../#` filter also
/// matches its parent, first the filter's own) and the queue group of a
/// shared subscription.
#[derive(Debug, Clone)]
pub(super) struct Routes {
    patterns: Vec<Pattern>,
    queue: Option<QueueName>,
}

impl Routes {
    /// The routes of `filter`, or why it cannot be subscribed.
    pub(super) fn of(filter: &TopicFilter) -> Result<Self, ReasonCode> {
        let invalid = ReasonCode::TopicFilterInvalid;
        let main = filter_to_subject(filter).map_err(|_| invalid)?;
        let mut patterns = vec![Pattern::new(&main).map_err(|_| invalid)?];
        if let Some(parent) = parent_subject(&main) {
            patterns.push(Pattern::new(parent).map_err(|_| invalid)?);
        }
        let queue = filter
            .share_group()
            .map(QueueName::new)
            .transpose()
            .map_err(|_| invalid)?;
        Ok(Self { patterns, queue })
    }
}

/// Subscribes `filter` (whose `routes` the caller found) for `session` in the
/// broker; `gate` limits what it may read (a route the user may not read at
/// all is left out: the parent of `a/#` where only `a/*` is allowed, or a
/// saved subscription whose permission went since).
pub(super) fn subscribe_entry(
    broker: &Broker,
    session: &Arc<Session>,
    gate: Gate<'_>,
    filter: TopicFilter,
    options: SubscriptionOptions,
    id: Option<SubscriptionId>,
    routes: Routes,
) -> SubEntry {
    let Routes { patterns, queue } = routes;
    let sink = Arc::new(SubSink {
        session: Arc::downgrade(session),
        options: Mutex::new(DeliverOptions::new(&filter, &options, id)),
    });
    let subscribers = patterns
        .into_iter()
        .filter_map(|pattern| Some((gate.readable(&pattern)?, pattern)))
        .map(|(read_check, pattern)| {
            let mut spec = SubscribeSpec::new(pattern, session.conn_id);
            spec.queue.clone_from(&queue);
            spec.echo = !options.no_local;
            spec.tag = bytes::Bytes::copy_from_slice(filter.as_str().as_bytes());
            spec.read_check = read_check;
            broker.subscribe_sink(spec, sink.clone())
        })
        .collect();
    SubEntry {
        filter,
        options,
        id,
        sink,
        subscribers,
    }
}

/// A filter of a `SUBSCRIBE` that was granted, and whether to send retained messages.
struct Granted {
    filter: TopicFilter,
    options: SubscriptionOptions,
    routes: Routes,
}

impl Connection {
    /// Handles `SUBSCRIBE`: checks each filter, answers `SUBACK`, subscribes, then sends
    /// the retained messages each new subscription asks for.
    pub(super) async fn subscribe(&mut self, subscribe: Subscribe) {
        let id = subscribe.properties.subscription_identifier;
        let mut codes = Vec::with_capacity(subscribe.subscriptions.len());
        let mut granted = Vec::new();
        {
            let state = self.session.state.lock();
            let mut count = state.subs.len();
            for sub in subscribe.subscriptions {
                // A filter granted earlier in this packet is replaced, not added, too.
                let exists = state.subs.contains_key(sub.filter.as_str())
                    || granted
                        .iter()
                        .any(|g: &Granted| g.filter.as_str() == sub.filter.as_str());
                match self.check_filter(&sub.filter, exists, &mut count) {
                    Ok(routes) => {
                        codes.push(ReasonCode::granted(sub.options.qos));
                        granted.push(Granted {
                            filter: sub.filter,
                            options: sub.options,
                            routes,
                        });
                    }
                    Err(code) => codes.push(code),
                }
            }
        }
        self.send(&Packet::SubAck(SubAck {
            packet_id: subscribe.packet_id,
            properties: Default::default(),
            reason_codes: codes,
        }));
        let broker = self.shared.broker.clone();
        let mut retained_for = Vec::new();
        for Granted {
            filter,
            options,
            routes,
        } in granted
        {
            let key = filter.as_str().to_owned();
            let (existed, updated) = {
                let mut state = self.session.state.lock();
                match state.subs.get_mut(&key) {
                    // Same filter again: the new options replace the old and the broker
                    // subscriptions stay (no message is lost in between) — unless No Local
                    // changed, which the broker subscriptions carry (`echo`): then they are
                    // replaced below.
                    Some(entry) if entry.options.no_local == options.no_local => {
                        entry.options = options;
                        entry.id = id;
                        *entry.sink.options.lock() = DeliverOptions::new(&filter, &options, id);
                        (true, true)
                    }
                    Some(_) => (true, false),
                    None => (false, false),
                }
            };
            let send_retained = !filter.is_shared()
                && match options.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendIfNew => !existed,
                    RetainHandling::DoNotSend => false,
                };
            if send_retained {
                retained_for.push((filter.clone(), options, routes.patterns.clone()));
            }
            if !updated {
                let entry = subscribe_entry(
                    &broker,
                    &self.session,
                    self.port.gate(),
                    filter,
                    options,
                    id,
                    routes,
                );
                let replaced = self.session.state.lock().subs.insert(key, entry);
                if let Some(old) = replaced {
                    old.subscribers.iter().for_each(|s| {
                        broker.remove_subscriber(s);
                    });
                }
            }
        }
        self.session.touch();
        if !retained_for.is_empty() {
            // The SUBACK goes out before the store is read.
            self.flush_before_wait();
        }
        for (filter, options, patterns) in retained_for {
            self.send_retained(&filter, options, id, patterns).await;
        }
    }

    /// After a reload changed the user's permissions: drops the session's
    /// subscriptions the user may no longer make (MQTT has no way to tell
    /// the client; their messages stop, as under mosquitto's ACL check at
    /// delivery) and brings the per-delivery checks of the rest up to date.
    pub(super) fn recheck_subscriptions(&mut self) {
        let gate = self.port.gate();
        let mut removed = Vec::new();
        self.session.state.lock().subs.retain(|_, entry| {
            let main = Routes::of(&entry.filter)
                .ok()
                .and_then(|r| Some((r.patterns.first()?.clone(), r.queue)));
            let keep =
                main.is_some_and(|(main, queue)| gate.subscribe(&main, queue.as_ref()).is_ok());
            entry.subscribers.retain(|sub| {
                let readable = keep && gate.recheck(sub);
                if !readable {
                    removed.push(sub.clone());
                }
                readable
            });
            keep
        });
        // Outside the session's lock, which deliveries take.
        for sub in removed {
            self.shared.broker.remove_subscriber(&sub);
        }
    }

    /// Whether `filter` may be subscribed: valid for a subject, allowed for the user,
    /// within the subscription limit (`count` subscriptions so far; an `existing` filter
    /// is replaced, not added). Returns its broker routes.
    fn check_filter(
        &self,
        filter: &TopicFilter,
        existing: bool,
        count: &mut usize,
    ) -> Result<Routes, ReasonCode> {
        let routes = Routes::of(filter)?;
        let gate = self.port.gate();
        // The filter's own pattern decides; the parent of `.../#` is only subscribed
        // where the user may read it (see `subscribe_entry`).
        let Some(main) = routes.patterns.first() else {
            return Err(ReasonCode::TopicFilterInvalid);
        };
        if gate.subscribe(main, routes.queue.as_ref()).is_err() {
            return Err(ReasonCode::NotAuthorized);
        }
        if !existing {
            let max = self.shared.limits.max_subscriptions;
            if gate.one_more_subscription(*count, max).is_err() {
                return Err(ReasonCode::QuotaExceeded);
            }
            *count += 1;
        }
        Ok(routes)
    }

    /// Sends the retained messages matching a new subscription, RETAIN set, at
    /// min(stored QoS, granted QoS).
    async fn send_retained(
        &mut self,
        filter: &TopicFilter,
        options: SubscriptionOptions,
        id: Option<SubscriptionId>,
        patterns: Vec<Pattern>,
    ) {
        let retained = self.server.retained.clone();
        // The lookup reads the store: keep it off the async workers.
        let Ok(messages) = tokio::task::spawn_blocking(move || retained.lookup(&patterns)).await
        else {
            return;
        };
        let no_dollar = filter.filter().starts_with(['+', '#']);
        let mut ctx = DeliveryCtx::new();
        let mut tracked = false;
        for msg in messages {
            if no_dollar && msg.topic.as_str().starts_with('$') {
                continue;
            }
            if !self.port.gate().may_receive(&msg.subject) {
                continue;
            }
            let out = Outgoing {
                topic: msg.topic,
                payload: msg.payload,
                qos: msg.qos.min(options.qos),
                retain: true,
                props: msg.props,
                sub_id: id,
                expires_at: msg.expires_at,
            };
            tracked |= out.qos != QoS::AtMostOnce;
            self.session.state.lock().offer(out, &mut ctx);
        }
        drop(ctx);
        if tracked {
            self.session.touch();
        }
    }

    /// Handles `UNSUBSCRIBE`: removes each named subscription (compared as strings) and
    /// answers `UNSUBACK`.
    pub(super) fn unsubscribe(&mut self, unsubscribe: Unsubscribe) {
        let mut codes = Vec::with_capacity(unsubscribe.filters.len());
        let mut removed = Vec::new();
        {
            let mut state = self.session.state.lock();
            for filter in &unsubscribe.filters {
                match state.subs.remove(filter.as_str()) {
                    Some(entry) => {
                        removed.extend(entry.subscribers);
                        codes.push(ReasonCode::Success);
                    }
                    None => codes.push(ReasonCode::NoSubscriptionExisted),
                }
            }
        }
        for sub in &removed {
            self.shared.broker.remove_subscriber(sub);
        }
        self.session.touch();
        self.send(&Packet::UnsubAck(UnsubAck {
            packet_id: unsubscribe.packet_id,
            properties: Default::default(),
            reason_codes: codes,
        }));
    }
}
