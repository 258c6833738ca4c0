//! MQTT sessions: the state that outlives a connection (v5 §4.1).
//!
//! A [`Session`] belongs to a client id. It holds the client's subscriptions (as broker
//! subscriptions whose sinks deliver into the session, so a persistent session keeps
//! collecting QoS 1 and 2 messages while its client is away), the QoS 1 and 2 messages
//! sent and not yet acknowledged (in sending order, with their packet ids), the messages
//! queued behind them, the QoS 2 packet ids received and not yet released, and the Will.
//!
//! While a connection is attached ([`Link`]), new messages go straight into its outbox, up
//! to the in-flight window (the client's Receive Maximum, capped by `mqtt.max_inflight`);
//! the rest wait in the queue, bounded by `mqtt.max_queued`. Acks free window slots, which
//! the queue fills in order. On resume every unacknowledged message is sent again with
//! DUP set, then the queue drains.
//!
//! Everything here runs under the session's lock, from the connection's task (acks,
//! subscribe) or from a publisher's thread (the sink). Lock order: the registry, then a
//! session, then an outbox; the broker is never called with a session locked.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use herald_core::{ConnId, Delivery, DeliveryCtx, Outbox, Subject, Subscriber};
use herald_protocol::mqtt::{
    Ack, Packet, PacketId, PublishProperties, QoS, ReasonCode, TopicName, Version, encode,
};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::delivery::{Outgoing, now_ms, push_publish};
use super::persist::Saver;
use super::subscribe::SubEntry;
use flights::Flights;

/// Bounds every session shares, from `[mqtt]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct SessionLimits {
    /// Unacknowledged QoS 1/2 messages sent to one client, at most.
    pub(super) max_inflight: usize,
    /// Messages queued behind them, at most.
    pub(super) max_queued: usize,
}

/// One client id's session.
pub(crate) struct Session {
    /// The client identifier.
    pub(super) client_id: String,
    /// The broker connection id of the session: its publishes and subscriptions carry it,
    /// so No Local holds across reconnects.
    pub(super) conn_id: ConnId,
    /// Everything that changes.
    pub(super) state: Mutex<State>,
    /// Set once a save is queued and not yet taken.
    pub(super) dirty: AtomicBool,
    /// Whether the session outlives its connection (Session Expiry Interval > 0), so
    /// changes are saved.
    persistent: AtomicBool,
    /// Whether a state file of this session was written (and not removed since).
    pub(super) on_disk: AtomicBool,
    saver: Arc<Saver>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("client_id", &self.client_id)
            .field("conn_id", &self.conn_id)
            .finish_non_exhaustive()
    }
}

/// The connection a session is attached to.
#[derive(Debug)]
pub(super) struct Link {
    /// The connection's output.
    pub(super) outbox: Arc<Outbox>,
    /// Its protocol version.
    pub(super) version: Version,
    /// How many QoS 1/2 messages may be unacknowledged at once.
    pub(super) window: usize,
    /// The client's Maximum Packet Size (`usize::MAX` if it gave none).
    pub(super) max_packet: usize,
    /// Cancelled to end the connection (another connection took the session over).
    pub(super) kick: CancellationToken,
    /// Which attachment this is; a connection only acts on a session it is still
    /// attached to.
    pub(super) generation: u64,
}

impl Link {
    /// Appends a control packet (acks, `PUBREL`).
    pub(super) fn send(&self, packet: &Packet) {
        let version = self.version;
        self.outbox.push_control(|buf| {
            if let Err(error) = encode(buf, version, packet) {
                tracing::warn!(%error, "cannot encode an MQTT packet");
            }
        });
    }
}

/// Where a QoS 1/2 message sent to the client stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// `PUBLISH` sent; waiting for `PUBACK` (QoS 1) or `PUBREC` (QoS 2).
    Published,
    /// `PUBREL` sent; waiting for `PUBCOMP`.
    Released,
}

/// A QoS 1/2 message sent and not fully acknowledged.
#[derive(Debug, Clone)]
pub(super) struct Inflight {
    /// Its packet id.
    pub(super) pid: PacketId,
    /// The message (resent with DUP on resume while [`Stage::Published`]).
    pub(super) msg: Outgoing,
    /// How far its flow got.
    pub(super) stage: Stage,
}

/// A Will message, from `CONNECT`.
#[derive(Debug, Clone)]
pub(super) struct Will {
    /// Where it is published.
    pub(super) subject: Subject,
    /// The topic (for MQTT receivers and the retained store).
    pub(super) topic: TopicName,
    /// Its payload.
    pub(super) payload: Bytes,
    /// Its QoS.
    pub(super) qos: QoS,
    /// Whether it is published retained.
    pub(super) retain: bool,
    /// MQTT 5 Will properties that travel with the message.
    pub(super) props: Option<Arc<PublishProperties>>,
    /// Its Message Expiry Interval, counted from publication.
    pub(super) expiry_interval: Option<u32>,
    /// The Will Delay Interval (s).
    pub(super) delay: u32,
    /// Its user, for a Will that is a JetStream request: the server
    /// publishes it, but as that user (see `herald_core::Requester`).
    pub(super) requester: herald_core::Requester,
}

/// A session's Will: armed while its connection lives, or due at a time after the
/// connection was lost.
#[derive(Debug, Clone)]
pub(super) struct WillState {
    /// The message.
    pub(super) will: Will,
    /// When to publish it (ms since the epoch); `None` while the connection is up.
    pub(super) due: Option<u64>,
}

/// What changes in a session.
#[derive(Debug)]
pub(super) struct State {
    /// The attached connection.
    pub(super) link: Option<Link>,
    /// Counts attachments (see [`Link::generation`]).
    pub(super) generation: u64,
    /// The session is over: its subscriptions are gone and nothing is delivered to it.
    pub(super) ended: bool,
    /// The user who owns it; another user resuming it gets a new session instead.
    pub(super) user: String,
    /// Session Expiry Interval (s); `u32::MAX` never expires, 0 ends with the connection.
    pub(super) expiry: u32,
    /// When the last connection ended (ms since the epoch).
    pub(super) disconnected_at: Option<u64>,
    /// Subscriptions by their filter as the client wrote it (`$share/...` included).
    pub(super) subs: BTreeMap<String, SubEntry>,
    /// QoS 1/2 messages sent and not acknowledged, in sending order.
    pub(super) inflight: Flights,
    /// Messages waiting for a window slot or for the client to come back.
    pub(super) queue: VecDeque<Outgoing>,
    /// QoS 2 packet ids received (and forwarded) whose `PUBREL` has not come yet.
    pub(super) incoming: BTreeSet<u16>,
    /// The next packet id to try for a message to the client.
    pub(super) next_pid: u16,
    /// The Will.
    pub(super) will: Option<WillState>,
    /// Messages dropped because the queue was full.
    pub(super) dropped: u64,
    limits: SessionLimits,
}

impl Session {
    /// A new session, not attached.
    pub(super) fn new(
        client_id: String,
        conn_id: ConnId,
        user: String,
        expiry: u32,
        limits: SessionLimits,
        saver: Arc<Saver>,
    ) -> Arc<Self> {
        Arc::new(Self {
            client_id,
            conn_id,
            state: Mutex::new(State {
                link: None,
                generation: 0,
                ended: false,
                user,
                expiry,
                disconnected_at: None,
                subs: BTreeMap::new(),
                inflight: Flights::default(),
                queue: VecDeque::new(),
                incoming: BTreeSet::new(),
                next_pid: 1,
                will: None,
                dropped: 0,
                limits,
            }),
            dirty: AtomicBool::new(false),
            persistent: AtomicBool::new(expiry > 0),
            on_disk: AtomicBool::new(false),
            saver,
        })
    }

    /// Sets the Session Expiry Interval (under the session's lock).
    pub(super) fn set_expiry(&self, state: &mut State, expiry: u32) {
        state.expiry = expiry;
        self.persistent.store(expiry > 0, Ordering::Relaxed);
    }

    /// Queues a save of this session when it is persistent (or just stopped being), so
    /// its state file follows its state.
    pub(super) fn touch(self: &Arc<Self>) {
        self.touch_if(self.persistent.load(Ordering::Relaxed));
    }

    /// Queues a save whatever the session's persistence (it just ended or changed).
    pub(super) fn touch_if(self: &Arc<Self>, needed: bool) {
        if needed && !self.dirty.swap(true, Ordering::AcqRel) {
            self.saver.enqueue(self.clone());
        }
    }
}

impl State {
    /// The subscriptions' broker entries, removed from the session: the caller removes
    /// them from the broker once no lock is held.
    pub(super) fn take_subscribers(&mut self) -> Vec<Arc<Subscriber>> {
        std::mem::take(&mut self.subs)
            .into_values()
            .flat_map(|entry| entry.subscribers)
            .collect()
    }

    /// Ends the session: nothing more is delivered; returns the broker subscriptions to
    /// remove and the Will still to publish.
    pub(super) fn end(&mut self) -> (Vec<Arc<Subscriber>>, Option<Will>) {
        self.ended = true;
        self.link = None;
        self.inflight.clear();
        self.queue.clear();
        self.incoming.clear();
        let will = self.will.take().map(|w| w.will);
        (self.take_subscribers(), will)
    }

    /// Whether the session has expired at `now` (ms) while detached.
    pub(super) fn expired(&self, now: u64) -> bool {
        if self.link.is_some() || self.expiry == u32::MAX {
            return false;
        }
        let since = self.disconnected_at.unwrap_or(now);
        since.saturating_add(u64::from(self.expiry) * 1000) <= now
    }

    /// Takes a new message for this session: sent at once when the client is connected
    /// and (for QoS 1/2) the window has room, else queued (QoS 1/2 only: QoS 0 messages
    /// for an absent client are not kept, as mosquitto's default).
    pub(super) fn offer(&mut self, out: Outgoing, ctx: &mut DeliveryCtx) -> Delivery {
        if self.ended {
            return Delivery::Closed;
        }
        if out.expired(now_ms()) {
            return Delivery::Delivered;
        }
        let Some(link) = &self.link else {
            return match out.qos {
                QoS::AtMostOnce => Delivery::Closed,
                _ => self.enqueue(out),
            };
        };
        if out.qos == QoS::AtMostOnce {
            return push_publish(
                &link.outbox,
                link.version,
                link.max_packet,
                &out,
                None,
                false,
                ctx,
            );
        }
        if !self.queue.is_empty() || self.inflight.len() >= link.window {
            return self.enqueue(out);
        }
        match self.alloc_pid() {
            Some(pid) => {
                self.send_tracked(pid, out, false, ctx);
                Delivery::Delivered
            }
            None => self.enqueue(out),
        }
    }

    fn enqueue(&mut self, out: Outgoing) -> Delivery {
        if self.queue.len() >= self.limits.max_queued {
            self.dropped += 1;
            tracing::debug!(
                dropped = self.dropped,
                "session queue full; message dropped"
            );
            return Delivery::Dropped;
        }
        self.queue.push_back(out);
        Delivery::Delivered
    }

    /// Sends a QoS 1/2 message with `pid` and tracks it until acknowledged. A message that
    /// cannot be written now (the outbox closed) stays tracked and goes again on resume.
    fn send_tracked(&mut self, pid: PacketId, out: Outgoing, dup: bool, ctx: &mut DeliveryCtx) {
        if let Some(link) = &self.link {
            push_publish(
                &link.outbox,
                link.version,
                link.max_packet,
                &out,
                Some(pid),
                dup,
                ctx,
            );
        }
        self.inflight.push(Inflight {
            pid,
            msg: out,
            stage: Stage::Published,
        });
    }

    /// A packet id no in-flight message uses, cycling through 1..=65535.
    fn alloc_pid(&mut self) -> Option<PacketId> {
        for _ in 0..u16::MAX {
            let candidate = self.next_pid;
            self.next_pid = self.next_pid.checked_add(1).unwrap_or(1);
            let id = PacketId::new(candidate)?;
            if !self.inflight.holds(id) {
                return Some(id);
            }
        }
        None
    }

    /// Moves queued messages into the window while it has room.
    pub(super) fn fill(&mut self, ctx: &mut DeliveryCtx) {
        let Some(window) = self.link.as_ref().map(|l| l.window) else {
            return;
        };
        let now = now_ms();
        while self.inflight.len() < window {
            let Some(out) = self.queue.pop_front() else {
                break;
            };
            if out.expired(now) {
                continue;
            }
            let Some(pid) = self.alloc_pid() else {
                self.queue.push_front(out);
                break;
            };
            self.send_tracked(pid, out, false, ctx);
        }
    }

    /// On resume: sends every unacknowledged message again, in its original order and
    /// with its original id (`PUBLISH` with DUP, or `PUBREL`), then fills the window.
    pub(super) fn resend(&mut self, ctx: &mut DeliveryCtx) {
        let now = now_ms();
        let Some(link) = &self.link else { return };
        // Expired messages not yet received are dropped; a released one must complete.
        self.inflight
            .retain(|f| f.stage == Stage::Released || !f.msg.expired(now));
        for flight in self.inflight.iter() {
            match flight.stage {
                Stage::Published => {
                    push_publish(
                        &link.outbox,
                        link.version,
                        link.max_packet,
                        &flight.msg,
                        Some(flight.pid),
                        true,
                        ctx,
                    );
                }
                Stage::Released => link.send(&Packet::PubRel(Ack::new(flight.pid))),
            }
        }
        self.fill(ctx);
    }

    /// `PUBACK` from the client: ends a QoS 1 flow. False if no such flow.
    pub(super) fn puback(&mut self, pid: PacketId, ctx: &mut DeliveryCtx) -> bool {
        let found = self.remove_flight(pid, |f| {
            f.stage == Stage::Published && f.msg.qos == QoS::AtLeastOnce
        });
        if found {
            self.fill(ctx);
        }
        found
    }

    /// `PUBREC` from the client: answers `PUBREL` (MQTT 5: a failure code ends the flow
    /// instead). An unknown id gets `PUBREL` with 0x92 in MQTT 5.
    pub(super) fn pubrec(&mut self, ack: &Ack, ctx: &mut DeliveryCtx) {
        let pid = ack.packet_id;
        let position = self
            .inflight
            .position(|f| f.pid == pid && f.msg.qos == QoS::ExactlyOnce);
        let Some(position) = position else {
            let mut rel = Ack::new(pid);
            rel.reason_code = ReasonCode::PacketIdentifierNotFound;
            if let Some(link) = &self.link {
                link.send(&Packet::PubRel(rel));
            }
            return;
        };
        if ack.reason_code.is_error() {
            self.inflight.remove(position);
            self.fill(ctx);
            return;
        }
        self.inflight.release(position);
        if let Some(link) = &self.link {
            link.send(&Packet::PubRel(Ack::new(pid)));
        }
    }

    /// `PUBCOMP` from the client: ends a QoS 2 flow.
    pub(super) fn pubcomp(&mut self, pid: PacketId, ctx: &mut DeliveryCtx) -> bool {
        let found = self.remove_flight(pid, |f| f.stage == Stage::Released);
        if found {
            self.fill(ctx);
        }
        found
    }

    fn remove_flight(&mut self, pid: PacketId, matches: impl Fn(&Inflight) -> bool) -> bool {
        match self.inflight.position(|f| f.pid == pid && matches(f)) {
            Some(position) => {
                self.inflight.remove(position);
                true
            }
            None => false,
        }
    }
}

mod flights;

#[cfg(test)]
mod tests;
