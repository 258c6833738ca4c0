//! [`ClientPort`]: what every client connection has, whatever its protocol —
//! who the client is, its publisher and outbox, the permission and limit
//! checks, the refusal counters, and the back-pressure at the end of a batch.
//!
//! A listener only translates: it decodes frames into the port's calls and
//! turns a [`Refusal`] into its protocol's error in one place. Permission
//! checks live here and nowhere else (the web listener, which has no
//! long-lived connection for most requests, uses the same [`Gate`]).
//! Where a protocol keeps its subscriptions (NATS by sid, Redis by channel,
//! MQTT in sessions that outlive connections) stays the listener's: the port
//! admits a subscription and says what each delivery must be checked
//! against; the listener makes it.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use herald_core::{
    ConnId, Interest, Message, Outbox, Pattern, Permissions, Publisher, QueueName, Requester,
    Subject, Subscriber,
};

use crate::auth::Identity;
use crate::clients::{ClientKind, ClientRecord};
use crate::shared::{ServerStats, Shared};

/// Why the port said no.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The user may not publish on this subject.
    Publish(Subject),
    /// The user may not subscribe to this (a pattern, or a Redis channel
    /// that is no pattern), in this queue group if any.
    Subscribe {
        name: bytes::Bytes,
        queue: Option<QueueName>,
    },
    /// The connection holds `--max-subscriptions` already.
    TooManySubscriptions,
}

/// What a reload did to a connection's user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reauthorized {
    /// Nothing that matters to the connection changed.
    Same,
    /// Its permissions changed: re-check the subscriptions.
    Changed,
    /// The user is gone or its credentials changed: close.
    Gone,
}

/// The permission checks for one identity, counting refusals.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gate<'a> {
    identity: &'a Identity,
    stats: &'a ServerStats,
}

impl<'a> Gate<'a> {
    pub(crate) fn new(identity: &'a Identity, stats: &'a ServerStats) -> Self {
        Self { identity, stats }
    }

    fn refuse(&self, refusal: Refusal) -> Refusal {
        let counter = match refusal {
            Refusal::TooManySubscriptions => &self.stats.subscription_refusals,
            _ => &self.stats.permission_refusals,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        // At info, inside the connection's span (protocol, address).
        tracing::info!(user = %self.identity.name, ?refusal, "refused");
        refusal
    }

    /// Whether the user may publish on `subject`.
    pub(crate) fn publish(&self, subject: &Subject) -> Result<(), Refusal> {
        if self.identity.may_publish(subject) {
            Ok(())
        } else {
            Err(self.refuse(Refusal::Publish(subject.clone())))
        }
    }

    /// Whether the user may subscribe to `pattern`; `Ok` carries what each
    /// delivery must be checked against (`None`: everything the pattern
    /// matches may be read, no check per message).
    pub(crate) fn subscribe(
        &self,
        pattern: &Pattern,
        queue: Option<&QueueName>,
    ) -> Result<Option<Arc<Permissions>>, Refusal> {
        if self.identity.may_subscribe(pattern) {
            Ok(self.identity.read_check(pattern))
        } else {
            Err(self.refuse(Refusal::Subscribe {
                name: pattern.to_bytes(),
                queue: queue.cloned(),
            }))
        }
    }

    /// Whether the user may read some of what `pattern` matches, and what
    /// each delivery must then be checked against — without counting a
    /// refusal: for routes a listener derives from what the client asked
    /// for (an MQTT `a/#` also subscribes `a`), not for what it asked.
    pub(crate) fn readable(&self, pattern: &Pattern) -> Option<Option<Arc<Permissions>>> {
        self.identity
            .may_subscribe(pattern)
            .then(|| self.identity.read_check(pattern))
    }

    /// Re-checks a live subscription after a reload changed the user's
    /// permissions: false (a refusal, counted and logged) when the user may
    /// no longer make it — the listener then removes it; otherwise its
    /// per-delivery check is brought up to date. Redis channels and globs
    /// are checked as `SUBSCRIBE`/`PSUBSCRIBE` check them, and per delivery
    /// against every permission.
    pub(crate) fn recheck(&self, sub: &Subscriber) -> bool {
        match sub.interest() {
            Interest::Pattern(pattern) => match self.subscribe(pattern, sub.queue()) {
                Ok(check) => {
                    sub.set_read_check(check);
                    true
                }
                Err(_) => false,
            },
            Interest::Channel(name) | Interest::Glob(name) | Interest::Shard(name) => {
                let allowed = self.subscribe_channel(name).is_ok();
                if allowed {
                    sub.set_read_check(self.identity.permissions.clone());
                }
                allowed
            }
        }
    }

    /// Whether the user may receive a message on `subject` (what a
    /// subscription's per-delivery check asks).
    pub(crate) fn may_receive(&self, subject: &Subject) -> bool {
        self.identity
            .permissions
            .as_ref()
            .is_none_or(|p| p.may_receive(subject))
    }

    /// The user as a reader of stored messages ([`Requester`] holds the
    /// rule every such read follows).
    pub(crate) fn requester(&self) -> Requester {
        Requester::new(self.identity.permissions.clone())
    }

    /// `msg` as this user sends it: a request on a `$JS.` subject (the
    /// JetStream API, consumer acks) carries who sent it, which the API and
    /// consumers check reads against. Anything else, and anything from a
    /// user without permissions (unstamped means unrestricted), passes
    /// untouched.
    pub(crate) fn stamped<'m>(&self, msg: &'m Message) -> Cow<'m, Message> {
        if self.identity.permissions.is_some() && Requester::is_request_subject(&msg.subject) {
            Cow::Owned(self.requester().stamp(msg.clone()))
        } else {
            Cow::Borrowed(msg)
        }
    }

    /// [`stamped`](Self::stamped) for a message the caller owns.
    pub(crate) fn stamp(&self, msg: Message) -> Message {
        if self.identity.permissions.is_some() {
            self.requester().stamp_request(msg)
        } else {
            msg
        }
    }

    /// Whether the user may subscribe to a Redis channel, glob or shard
    /// channel: as a pattern when it is one, otherwise only a user with no
    /// subscribe rules may (rules are written in patterns). Deliveries are
    /// then checked one by one against every permission (a glob can reach
    /// any subject).
    pub(crate) fn subscribe_channel(&self, name: &bytes::Bytes) -> Result<(), Refusal> {
        match Pattern::from_bytes(name.clone()) {
            Ok(pattern) => self.subscribe(&pattern, None).map(|_| ()),
            Err(_) => self.subscribe_name(name),
        }
    }

    /// The same for a Redis channel that is not a valid pattern (spaces,
    /// empty tokens): only a user with no subscribe rules may, since rules
    /// are written in patterns.
    fn subscribe_name(&self, name: &bytes::Bytes) -> Result<(), Refusal> {
        if self.identity.permissions.is_none() {
            Ok(())
        } else {
            Err(self.refuse(Refusal::Subscribe {
                name: name.clone(),
                queue: None,
            }))
        }
    }

    /// Whether one more subscription fits beside the `held` ones.
    pub(crate) fn one_more_subscription(&self, held: usize, max: usize) -> Result<(), Refusal> {
        if max > 0 && held >= max {
            Err(self.refuse(Refusal::TooManySubscriptions))
        } else {
            Ok(())
        }
    }
}

/// One client connection's core. See the module docs.
#[derive(Debug)]
pub(crate) struct ClientPort {
    shared: Arc<Shared>,
    id: ConnId,
    outbox: Arc<Outbox>,
    publisher: Publisher,
    /// `None` until the client authenticates (when users are configured).
    identity: Option<Identity>,
    /// What monitoring (`/connz`) reports about the connection.
    record: Arc<ClientRecord>,
    /// Messages and bytes received in this read batch, not yet in `record`.
    received: (u64, u64),
    /// The subscriptions it had when it began to close (for `/connz`).
    closing: Option<Vec<String>>,
}

impl Drop for ClientPort {
    fn drop(&mut self) {
        self.count_received();
        let subscriptions = self
            .closing
            .take()
            .unwrap_or_else(|| self.subscription_names());
        self.shared.clients.close(&self.record, subscriptions);
    }
}

impl ClientPort {
    /// The port of connection `id`, writing to `outbox`. Without configured
    /// users the client is anonymous (and may do everything) from the start.
    pub(crate) fn new(
        shared: Arc<Shared>,
        id: ConnId,
        outbox: Arc<Outbox>,
        kind: ClientKind,
        peer: SocketAddr,
    ) -> Self {
        let identity = (!shared.users_required()).then(Identity::anonymous);
        let record = shared.clients.open(id, kind, peer, outbox.clone());
        Self {
            publisher: shared.broker.publisher(id),
            shared,
            id,
            outbox,
            identity,
            record,
            received: (0, 0),
            closing: None,
        }
    }

    /// Notes the connection's subscriptions before it removes them on
    /// closing, so `/connz?state=closed` lists what it had.
    pub(crate) fn closing(&mut self) {
        self.closing = Some(self.subscription_names());
    }

    fn subscription_names(&self) -> Vec<String> {
        self.shared
            .broker
            .subscriptions_of(self.id)
            .iter()
            .map(|s| String::from_utf8_lossy(s.interest().as_bytes()).into_owned())
            .collect()
    }

    /// Adds this batch's received counts to the record.
    fn count_received(&mut self) {
        if self.received.0 > 0 {
            let (msgs, bytes) = std::mem::take(&mut self.received);
            self.record.received(msgs, bytes);
        }
    }

    fn receive(&mut self, msg: &Message) {
        self.received.0 += 1;
        self.received.1 += payload_bytes(msg) as u64;
    }

    /// What monitoring reports about this connection.
    pub(crate) fn record(&self) -> &ClientRecord {
        &self.record
    }

    pub(crate) fn id(&self) -> ConnId {
        self.id
    }

    /// The user's name for logs (`-` before authentication).
    pub(crate) fn user(&self) -> &str {
        self.identity.as_ref().map_or("-", |i| i.name.as_str())
    }

    /// Who the client is, once it authenticated.
    pub(crate) fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// The client authenticated as `identity`.
    pub(crate) fn authenticated(&mut self, identity: Identity) {
        let user = identity.name.clone();
        self.record.describe(|d| d.user = Some(user));
        self.identity = Some(identity);
    }

    /// The client presented a TLS certificate named `cert_name`: when it
    /// names a user, the client is that user from now on (it may still log
    /// in as another with the protocol's own login).
    pub(crate) fn certificate(&mut self, cert_name: Option<&str>) {
        if let Some(identity) = cert_name.and_then(|name| self.shared.users().by_certificate(name))
        {
            tracing::debug!(user = %identity.name, "authenticated by client certificate");
            self.authenticated(identity);
        }
    }

    /// Re-checks the client's user after a configuration reload (see
    /// [`Shared::reload`](crate::shared::Shared::reload)). The listener then
    /// closes the connection ([`Reauthorized::Gone`]) or re-checks its
    /// subscriptions with [`gate`](Self::gate) ([`Reauthorized::Changed`]).
    pub(crate) fn reauthorize(&mut self) -> Reauthorized {
        // Not logged in yet: it will be checked against the new users.
        let Some(current) = &self.identity else {
            return Reauthorized::Same;
        };
        match self.shared.users().reauthorize(current) {
            None => {
                tracing::info!(user = %current.name, "user removed or credentials changed by a reload: closing");
                self.shared
                    .stats
                    .auth_failures
                    .fetch_add(1, Ordering::Relaxed);
                Reauthorized::Gone
            }
            Some(identity) if identity.permissions == current.permissions => Reauthorized::Same,
            Some(identity) => {
                tracing::info!(user = %identity.name, "permissions changed by a reload");
                self.authenticated(identity);
                Reauthorized::Changed
            }
        }
    }

    /// Back to unauthenticated (Redis `RESET` when users are configured).
    pub(crate) fn forget_identity(&mut self) {
        if self.shared.users_required() {
            self.identity = None;
        }
    }

    /// Publishes `msg` in the shard namespace (Redis `SPUBLISH`) if the
    /// client may publish on its subject.
    pub(crate) fn publish_shard(&mut self, msg: &Message) -> Result<usize, Refusal> {
        self.gate().publish(&msg.subject)?;
        self.receive(msg);
        Ok(self.publisher.publish_shard(msg))
    }

    /// The checks for this client (an unauthenticated one may do nothing
    /// it is asked to be checked for).
    pub(crate) fn gate(&self) -> Gate<'_> {
        static NOBODY: std::sync::OnceLock<Identity> = std::sync::OnceLock::new();
        let identity = self.identity.as_ref().unwrap_or_else(|| {
            NOBODY.get_or_init(|| Identity {
                name: "unauthenticated".to_owned(),
                permissions: Some(Arc::new(Permissions::nothing())),
                credentials: 0,
            })
        });
        Gate::new(identity, &self.shared.stats)
    }

    /// Publishes `msg` if the client may; returns how many took it.
    pub(crate) fn publish(&mut self, msg: &Message) -> Result<usize, Refusal> {
        self.gate().publish(&msg.subject)?;
        Ok(self.publish_checked(msg))
    }

    /// Publishes `msg`, its subject already checked by the caller (the
    /// listener, which words a refusal its own way).
    pub(crate) fn publish_checked(&mut self, msg: &Message) -> usize {
        self.receive(msg);
        let gate = self.gate();
        let msg = gate.stamped(msg);
        self.publisher.publish(&msg)
    }

    /// Hands what this connection's publishes delivered so far to their
    /// outboxes: call it before writing a reply that must follow them.
    pub(crate) fn flush(&mut self) {
        self.publisher.flush();
    }

    /// Ends a batch of frames: wakes the writers of everything published,
    /// writes this connection's own replies from here, then waits (at most
    /// 50 ms, for all of them together, and never for a stuck one) for the
    /// receivers this batch congested, as nats-server stalls a fast producer.
    pub(crate) async fn end_batch(&mut self) {
        self.count_received();
        let congested = self.publisher.finish_batch();
        self.outbox.write_now();
        self.publisher
            .wait_for_congested(congested, &self.outbox)
            .await;
    }
}

/// What nats-server counts as a message's bytes: payload and headers.
fn payload_bytes(msg: &Message) -> usize {
    msg.payload.len() + msg.headers.as_ref().map_or(0, |h| h.wire_len())
}
