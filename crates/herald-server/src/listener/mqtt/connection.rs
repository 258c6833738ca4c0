//! One accepted MQTT connection: the read loop after `CONNECT`, the packets that need no
//! module of their own (acks, `PINGREQ`, `DISCONNECT`), keep-alive, and how the connection
//! ends: which `DISCONNECT` an MQTT 5 client is sent, whether the Will is published, and
//! what becomes of the session.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ahash::AHashMap;
use herald_core::{DeliveryCtx, Outbox};
use herald_protocol::mqtt::{
    Ack, Disconnect, MqttError, MqttLimits, Packet, ReasonCode, TopicName, Version, encode,
    parse_client,
};
use parking_lot::MutexGuard;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::MqttServer;
use super::delivery::now_ms;
use super::session::{Session, State, Will, WillState};
use crate::listener::ReadBuffer;
use crate::listener::port::{ClientPort, Reauthorized};
use crate::shared::Shared;

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Exit {
    /// The client sent `DISCONNECT`; with MQTT 5 reason 0x04 it still wants its Will.
    Disconnect {
        /// Publish the Will anyway (reason 0x04).
        with_will: bool,
    },
    /// The network connection ended: end of stream, an I/O error, or the writer stopped
    /// (a slow consumer).
    Lost,
    /// The client broke the protocol; MQTT 5 clients are told why first.
    Violation(ReasonCode),
    /// Nothing was received for 1.5 × the keep-alive interval.
    KeepAlive,
    /// Another connection with the same client id took the session over.
    TakenOver,
    /// The server is shutting down.
    Shutdown,
}

/// An MQTT connection whose `CONNECT` was accepted.
pub(super) struct Connection {
    pub(super) server: Arc<MqttServer>,
    pub(super) shared: Arc<Shared>,
    pub(super) outbox: Arc<Outbox>,
    pub(super) limits: MqttLimits,
    pub(super) version: Version,
    /// The session it is attached to.
    pub(super) session: Arc<Session>,
    /// Which attachment of the session this connection is.
    pub(super) generation: u64,
    /// The connection core: who the client is (it authenticated in
    /// `CONNECT`), its publisher and the permission checks.
    pub(super) port: ClientPort,
    /// 1.5 × the keep-alive interval; `None` when keep-alive is off.
    pub(super) keep_alive: Option<Duration>,
    /// Topic aliases the client set (MQTT 5), by alias.
    pub(super) aliases: AHashMap<u16, TopicName>,
    /// The Session Expiry Interval `CONNECT` asked for (a `DISCONNECT` may not raise it
    /// from 0).
    pub(super) connect_expiry: u32,
    /// Cancelled when another connection takes the session over.
    pub(super) kick: CancellationToken,
}

impl Connection {
    /// Appends a control packet, behind every delivery this connection's
    /// publishes made so far (the publisher stages them until it flushes).
    /// It is written at the end of the batch (`finish_batch`).
    pub(super) fn send(&mut self, packet: &Packet) {
        self.port.flush();
        let version = self.version;
        self.outbox.push_reply(|buf| {
            if let Err(error) = encode(buf, version, packet) {
                tracing::warn!(%error, "cannot encode an MQTT packet");
            }
        });
    }

    /// Hands over what this batch produced so far (deliveries, and this connection's own
    /// packets, written now) before the reader waits on something slow, the store:
    /// otherwise it would sit until the batch ends, and other publishers' deliveries to
    /// this client would pile up behind it unwoken.
    pub(super) fn flush_before_wait(&mut self) {
        self.port.flush();
        self.outbox.write_now();
    }

    /// The session's state, if this connection is still the one attached to it.
    pub(super) fn attached(&self) -> Option<MutexGuard<'_, State>> {
        let state = self.session.state.lock();
        let ours = !state.ended
            && state
                .link
                .as_ref()
                .is_some_and(|l| l.generation == self.generation);
        ours.then_some(state)
    }

    /// Reads and handles packets until the connection ends. `read` holds what was read
    /// after the `CONNECT` (packets a client pipelines behind it).
    pub(super) async fn run(
        &mut self,
        reader: &mut crate::listener::Reader,
        token: &CancellationToken,
        mut read: ReadBuffer,
    ) -> Exit {
        let mut deadline = self.keep_alive.map(|k| Instant::now() + k);
        let mut reloads = self.shared.reloaded();
        // A reload while the client logged in, or while its session was
        // offline (its subscriptions kept the permissions of then): the
        // resumed subscriptions are checked against the user as it is now.
        match self.port.reauthorize() {
            Reauthorized::Same | Reauthorized::Changed => self.recheck_subscriptions(),
            Reauthorized::Gone => return Exit::Violation(ReasonCode::NotAuthorized),
        }
        loop {
            let mut received = false;
            loop {
                match parse_client(&mut read.buf, &self.limits, self.version) {
                    Ok(Some(packet)) => {
                        received = true;
                        if let Some(exit) = self.handle(packet).await {
                            self.finish_batch().await;
                            return exit;
                        }
                    }
                    Ok(None) => break,
                    Err(error) => {
                        self.finish_batch().await;
                        return self.violation(&error);
                    }
                }
            }
            if received {
                deadline = self.keep_alive.map(|k| Instant::now() + k);
            }
            self.finish_batch().await;
            let keep_alive = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = token.cancelled() => {
                    return if self.shared.shutdown.is_cancelled() {
                        Exit::Shutdown
                    } else {
                        Exit::Lost
                    };
                }
                () = self.kick.cancelled() => return Exit::TakenOver,
                Ok(()) = reloads.changed() => match self.port.reauthorize() {
                    Reauthorized::Same => {}
                    Reauthorized::Changed => self.recheck_subscriptions(),
                    Reauthorized::Gone => return Exit::Violation(ReasonCode::NotAuthorized),
                },
                () = keep_alive => {
                    debug!("keep-alive expired");
                    return Exit::KeepAlive;
                }
                result = read.read_from(reader) => match result {
                    Ok(0) => return Exit::Lost,
                    Ok(_) => {}
                    Err(error) => {
                        debug!(%error, "read failed");
                        return Exit::Lost;
                    }
                },
            }
        }
    }

    fn violation(&self, error: &MqttError) -> Exit {
        debug!(%error, "protocol violation");
        if matches!(error, MqttError::PacketTooLarge { .. }) {
            self.shared
                .stats
                .payload_refusals
                .fetch_add(1, Ordering::Relaxed);
        }
        Exit::Violation(error.reason_code())
    }

    /// Wakes the writers of everything published from this batch, writes this
    /// connection's own packets, then waits (boundedly) for congested
    /// subscribers, as the NATS listener does.
    async fn finish_batch(&mut self) {
        self.port.end_batch().await;
    }

    /// Handles one packet; `Some` ends the connection.
    async fn handle(&mut self, packet: Packet) -> Option<Exit> {
        tracing::trace!(packet = %packet.packet_type(), "received");
        let mut ctx = DeliveryCtx::new();
        match packet {
            Packet::Publish(publish) => return self.publish(publish).await,
            Packet::PubAck(ack) => {
                let Some(mut state) = self.attached() else {
                    return Some(Exit::TakenOver);
                };
                state.puback(ack.packet_id, &mut ctx);
                drop(state);
                self.session.touch();
            }
            Packet::PubRec(ack) => {
                let Some(mut state) = self.attached() else {
                    return Some(Exit::TakenOver);
                };
                state.pubrec(&ack, &mut ctx);
                drop(state);
                self.session.touch();
            }
            Packet::PubComp(ack) => {
                let Some(mut state) = self.attached() else {
                    return Some(Exit::TakenOver);
                };
                state.pubcomp(ack.packet_id, &mut ctx);
                drop(state);
                self.session.touch();
            }
            Packet::PubRel(ack) => return self.release(&ack),
            Packet::Subscribe(subscribe) => self.subscribe(subscribe).await,
            Packet::Unsubscribe(unsubscribe) => self.unsubscribe(unsubscribe),
            Packet::PingReq => self.send(&Packet::PingResp),
            Packet::Disconnect(disconnect) => return Some(self.disconnect(&disconnect)),
            // A second CONNECT, AUTH without an authentication method in CONNECT (herald
            // refuses those), or anything a client never sends.
            other => {
                debug!(packet = %other.packet_type(), "unexpected packet");
                return Some(Exit::Violation(ReasonCode::ProtocolError));
            }
        }
        None
    }

    /// `PUBREL` for a QoS 2 message the client sent: forget its id, answer `PUBCOMP`
    /// (MQTT 5: 0x92 for an id not awaiting release).
    fn release(&mut self, ack: &Ack) -> Option<Exit> {
        let Some(mut state) = self.attached() else {
            return Some(Exit::TakenOver);
        };
        let found = state.incoming.remove(&ack.packet_id.get());
        drop(state);
        self.session.touch();
        let mut comp = Ack::new(ack.packet_id);
        if !found {
            comp.reason_code = ReasonCode::PacketIdentifierNotFound;
        }
        self.send(&Packet::PubComp(comp));
        None
    }

    /// `DISCONNECT` from the client (MQTT 5 may change the Session Expiry Interval, but
    /// not from 0 to something else).
    fn disconnect(&mut self, disconnect: &Disconnect) -> Exit {
        if let Some(expiry) = disconnect.properties.session_expiry_interval {
            if self.connect_expiry == 0 && expiry != 0 {
                return Exit::Violation(ReasonCode::ProtocolError);
            }
            if let Some(mut state) = self.attached() {
                let expiry = self.server.cap_expiry(expiry);
                self.session.set_expiry(&mut state, expiry);
            }
        }
        Exit::Disconnect {
            with_will: disconnect.reason_code == ReasonCode::DisconnectWithWill,
        }
    }

    /// Ends the connection: tells an MQTT 5 client why when the server ends it, then
    /// detaches the session (publishing the Will unless the client disconnected normally).
    pub(super) async fn close(mut self, exit: Exit) {
        debug!(?exit, "closing");
        self.port.closing();
        let reason = match exit {
            Exit::Violation(code) => Some(code),
            Exit::KeepAlive => Some(ReasonCode::KeepAliveTimeout),
            Exit::TakenOver => Some(ReasonCode::SessionTakenOver),
            Exit::Shutdown => Some(ReasonCode::ServerShuttingDown),
            Exit::Disconnect { .. } | Exit::Lost => None,
        };
        if let (Version::V5, Some(reason_code)) = (self.version, reason) {
            self.send(&Packet::Disconnect(Disconnect {
                reason_code,
                ..Disconnect::default()
            }));
        }
        let publish_will = !matches!(exit, Exit::Disconnect { with_will: false });
        let wills = self
            .server
            .detach(&self.session, self.generation, publish_will);
        self.flush_before_wait();
        for will in wills {
            self.server.publish_will(self.session.conn_id, will).await;
        }
    }
}

impl MqttServer {
    /// Caps a Session Expiry Interval at `mqtt.max_session_expiry`.
    pub(super) fn cap_expiry(&self, expiry: u32) -> u32 {
        match u32::try_from(self.config.max_session_expiry.as_secs()) {
            Ok(0) => expiry,
            Ok(cap) => expiry.min(cap),
            Err(_) => expiry,
        }
    }

    /// Detaches connection `generation` from `session`. A session that does not outlive
    /// its connection ends; a persistent one keeps collecting messages. Returns the Will
    /// to publish now (one with a delay is kept for the reaper, unless the session ends).
    fn detach(&self, session: &Arc<Session>, generation: u64, publish_will: bool) -> Vec<Will> {
        let now = now_ms();
        let mut sessions = self.sessions.lock();
        let mut state = session.state.lock();
        if state.ended || state.link.as_ref().map(|l| l.generation) != Some(generation) {
            // Taken over: the new connection dealt with the session and the Will.
            return Vec::new();
        }
        state.link = None;
        state.disconnected_at = Some(now);
        let will = state.will.take().filter(|_| publish_will).map(|w| w.will);
        if state.expiry == 0 {
            let (subscribers, _) = state.end();
            drop(state);
            if sessions
                .get(&session.client_id)
                .is_some_and(|s| Arc::ptr_eq(s, session))
            {
                sessions.remove(&session.client_id);
            }
            drop(sessions);
            self.remove_subscribers(&subscribers);
            session.touch_if(session.on_disk.load(Ordering::Relaxed));
            return will.into_iter().collect();
        }
        drop(sessions);
        let now_will = match will {
            Some(will) if will.delay > 0 => {
                let delay = will.delay.min(state.expiry);
                state.will = Some(WillState {
                    due: Some(now + u64::from(delay) * 1000),
                    will,
                });
                None
            }
            other => other,
        };
        drop(state);
        session.touch();
        now_will.into_iter().collect()
    }
}
