//! `CONNECT`: the first packet of every connection. It must come within the connect
//! timeout; it is validated (the codec already checked its form), the client is
//! authenticated, its session is opened (resumed, taken over or started afresh) and the
//! connection is answered with `CONNACK`.
//!
//! Refusals follow the reference: a `CONNECT` that cannot be decoded gets an MQTT 5
//! `CONNACK` with the error's reason code, the 3.1.1 return code 1 for an unknown protocol
//! level, or nothing (3.1.1 has no word for the rest); then the connection closes.
//! Credentials are checked against the configured users: a wrong password is
//! "bad user name or password" (3.1.1: 4, MQTT 5: 0x86), none at all "not authorized"
//! (5, 0x87).

use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ahash::AHashMap;
use herald_core::{ConnId, Outbox};
use herald_protocol::mqtt::{
    ConnAck, ConnAckProperties, Connect, MqttError, MqttLimits, Packet, ReasonCode, Version,
    connect_version, encode, parse_client,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::connection::Connection;
use super::delivery::now_ms;
use super::publish::{TOPIC_ALIAS_MAX, will_of};
use super::session::{Link, Session, Will, WillState};
use super::{MqttServer, READ_BUFFER_MAX};
use crate::auth::{Credentials, Identity};
use crate::clients::ClientKind;
use crate::listener::port::{ClientPort, Gate};
use crate::listener::{ConnectionIo, ReadBuffer};

/// How long a client has to send `CONNECT` when no users are configured (with users, the
/// `limits.auth_timeout` applies, as on every protocol).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Room for the topic and properties of a `PUBLISH` beyond its payload.
const PACKET_OVERHEAD: usize = 64 * 1024;

/// Reads the `CONNECT` and accepts the client, or refuses it (then returns `None`).
/// Returns the connection and what was read after the `CONNECT`.
pub(super) async fn accept(
    server: &Arc<MqttServer>,
    io: &mut ConnectionIo,
    (kind, peer): (ClientKind, std::net::SocketAddr),
    cert: Option<Identity>,
    admitted: bool,
) -> Option<(Connection, ReadBuffer)> {
    let shared = &server.shared;
    let limits = MqttLimits {
        max_packet_size: shared.limits.max_payload.saturating_add(PACKET_OVERHEAD),
    };
    let timeout = if shared.users_required() {
        shared.limits.auth_timeout
    } else {
        CONNECT_TIMEOUT
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut read = ReadBuffer::new(READ_BUFFER_MAX);
    let connect = loop {
        match parse_client(&mut read.buf, &limits, Version::V311) {
            Ok(Some(Packet::Connect(connect))) => break connect,
            Ok(Some(other)) => {
                debug!(packet = %other.packet_type(), "first packet is not CONNECT");
                return None;
            }
            Ok(None) => {}
            Err(error) => {
                refuse_undecodable(&io.outbox, &read.buf, &error);
                return None;
            }
        }
        tokio::select! {
            () = io.token.cancelled() => return None,
            () = tokio::time::sleep_until(deadline) => {
                debug!("no CONNECT in time");
                if shared.users_required() {
                    shared.stats.auth_timeouts.fetch_add(1, Ordering::Relaxed);
                }
                return None;
            }
            result = read.read_from(&mut io.reader) => match result {
                Ok(0) => return None,
                Ok(_) => {}
                Err(error) => {
                    debug!(%error, "read failed");
                    return None;
                }
            },
        }
    };
    let conn = handshake(
        server,
        &io.outbox,
        *connect,
        (kind, peer),
        cert,
        admitted,
        limits,
    )
    .await?;
    Some((conn, read))
}

/// Answers a `CONNECT` the codec refused, in the client's version where there is a word
/// for it.
fn refuse_undecodable(outbox: &Outbox, buf: &[u8], error: &MqttError) {
    debug!(%error, "invalid CONNECT");
    match connect_version(buf) {
        Some(Version::V5) => send_connack(outbox, Version::V5, refusal(error.reason_code())),
        Some(Version::V311) => {}
        // mosquitto answers any protocol it does not speak with the 3.1.1 code 1.
        None if matches!(error, MqttError::UnsupportedProtocolVersion(_)) => {
            outbox.push_control(|b| b.extend_from_slice(&[0x20, 0x02, 0x00, 0x01]));
        }
        None => {}
    }
}

fn refusal(reason_code: ReasonCode) -> ConnAck {
    ConnAck {
        session_present: false,
        reason_code,
        properties: ConnAckProperties::default(),
    }
}

fn send_connack(outbox: &Outbox, version: Version, connack: ConnAck) {
    let packet = Packet::ConnAck(Box::new(connack));
    outbox.push_control(|b| {
        let _ = encode(b, version, &packet);
    });
}

/// Accepts or refuses a decoded `CONNECT`.
async fn handshake(
    server: &Arc<MqttServer>,
    outbox: &Arc<Outbox>,
    connect: Connect,
    (kind, peer): (ClientKind, std::net::SocketAddr),
    cert: Option<Identity>,
    admitted: bool,
    limits: MqttLimits,
) -> Option<Connection> {
    let shared = &server.shared;
    let version = connect.version;
    let refuse = |code: ReasonCode| {
        debug!(%code, "CONNECT refused");
        send_connack(outbox, version, refusal(code));
        None
    };
    if !admitted {
        warn!(%peer, "connection refused: maximum connections reached");
        return refuse(ReasonCode::ServerBusy);
    }
    if connect.properties.authentication_method.is_some() {
        // No enhanced authentication (SASL-style AUTH exchanges) here.
        return refuse(ReasonCode::BadAuthenticationMethod);
    }
    let keep_alive = match server.keep_alive(version, connect.keep_alive) {
        Ok(keep_alive) => keep_alive,
        // An MQTT 3.1.1 client asking for more than the cap cannot be told.
        Err(()) => return refuse(ReasonCode::ClientIdentifierNotValid),
    };
    let mut assigned = None;
    let client_id = if connect.client_id.is_empty() {
        if version == Version::V311 && !connect.clean_start {
            return refuse(ReasonCode::ClientIdentifierNotValid);
        }
        let id = format!("herald-{:016x}", rand::random::<u64>());
        assigned = Some(id.clone());
        id
    } else {
        connect.client_id.clone()
    };
    let identity = match authenticate(server, cert, &connect).await {
        Ok(identity) => identity,
        Err(code) => {
            warn!(client = %client_id, user = ?connect.username, "authentication failed");
            shared.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
            return refuse(code);
        }
    };
    let will = match connect
        .will
        .clone()
        .map(|w| will_of(w, Gate::new(&identity, &shared.stats)))
        .transpose()
    {
        Ok(will) => will,
        Err(code) => {
            if code == ReasonCode::NotAuthorized {
                shared
                    .stats
                    .permission_refusals
                    .fetch_add(1, Ordering::Relaxed);
            }
            return refuse(code);
        }
    };
    let asked = match version {
        Version::V5 => connect.properties.session_expiry_interval.unwrap_or(0),
        // 3.1.1 clean session 0 is a session that never expires, as mosquitto maps it.
        Version::V311 if connect.clean_start => 0,
        Version::V311 => u32::MAX,
    };
    let expiry = server.cap_expiry(asked);
    let opened = server.open_session(&client_id, &identity.name, connect.clean_start, expiry);
    let session = opened.session;
    let kick = CancellationToken::new();
    let window = connect
        .properties
        .receive_maximum
        .map_or(usize::from(u16::MAX), |m| usize::from(m.get()))
        .min(server.limits.max_inflight);
    let max_packet = connect
        .properties
        .maximum_packet_size
        .and_then(|m| usize::try_from(m.get()).ok())
        .unwrap_or(usize::MAX);
    let connack = ConnAck {
        session_present: opened.present,
        reason_code: ReasonCode::Success,
        properties: ConnAckProperties {
            assigned_client_identifier: assigned,
            session_expiry_interval: (version == Version::V5 && expiry != asked).then_some(expiry),
            topic_alias_maximum: Some(TOPIC_ALIAS_MAX),
            maximum_packet_size: u32::try_from(limits.max_packet_size)
                .ok()
                .and_then(NonZeroU32::new),
            receive_maximum: NonZeroU16::new(server.config.receive_maximum)
                .filter(|m| m.get() < u16::MAX),
            server_keep_alive: (keep_alive != connect.keep_alive).then_some(keep_alive),
            ..ConnAckProperties::default()
        },
    };
    let generation = {
        let mut ctx = herald_core::DeliveryCtx::new();
        let mut state = session.state.lock();
        if let Some(racing) = state.link.take() {
            // Another connection with this client id attached since the session was
            // opened: the later one wins, as with any take-over.
            racing.kick.cancel();
        }
        state.generation += 1;
        let link = Link {
            outbox: outbox.clone(),
            version,
            window,
            max_packet,
            kick: kick.clone(),
            generation: state.generation,
        };
        // CONNACK goes out under the session's lock, so no delivery can come before it.
        link.send(&Packet::ConnAck(Box::new(connack)));
        state.link = Some(link);
        state.disconnected_at = None;
        session.set_expiry(&mut state, expiry);
        state.will = will.map(|will| WillState { will, due: None });
        if opened.present {
            state.resend(&mut ctx);
        }
        state.generation
    };
    session.touch_if(session.on_disk.load(Ordering::Relaxed) || expiry > 0);
    debug!(client = %client_id, user = %identity.name, ?version, present = opened.present, "connected");
    for (conn, will) in opened.wills {
        server.publish_will(conn, will).await;
    }
    Some(Connection {
        server: server.clone(),
        shared: shared.clone(),
        outbox: outbox.clone(),
        limits,
        version,
        port: {
            let mut port =
                ClientPort::new(shared.clone(), session.conn_id, outbox.clone(), kind, peer);
            port.authenticated(identity);
            port.record()
                .describe(|d| d.mqtt_client = Some(session.client_id.clone()));
            port
        },
        session,
        generation,
        keep_alive: (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500)),
        aliases: AHashMap::new(),
        connect_expiry: asked,
        kick,
    })
}

/// Who the client is: its certificate's user, the user its credentials prove, or
/// anonymous when no users are configured.
async fn authenticate(
    server: &MqttServer,
    cert: Option<Identity>,
    connect: &Connect,
) -> Result<Identity, ReasonCode> {
    let users = server.shared.users();
    if !users.required() {
        return Ok(Identity::anonymous());
    }
    if let Some(identity) = cert {
        return Ok(identity);
    }
    let password = connect
        .password
        .as_ref()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let username = connect.username.clone();
    match (&username, &password) {
        // No credentials at all: an anonymous client where none is allowed.
        (None, None) => return Err(ReasonCode::NotAuthorized),
        // A user name alone proves nothing (mosquitto answers the same).
        (Some(_), None) => return Err(ReasonCode::BadUserNameOrPassword),
        _ => {}
    }
    // argon2 is slow on purpose: off the async workers.
    let identity = tokio::task::spawn_blocking(move || {
        let password = password?;
        match username.as_deref() {
            // A user name and password; a client that only has a token sends it as the
            // password (any user name).
            Some(user) => users
                .authenticate(Credentials::Password {
                    user,
                    password: &password,
                })
                .or_else(|| users.authenticate(Credentials::Token(&password))),
            None => users.authenticate(Credentials::Token(&password)),
        }
    })
    .await
    .ok()
    .flatten();
    identity.ok_or(ReasonCode::BadUserNameOrPassword)
}

/// A session opened for a `CONNECT`.
pub(super) struct Opened {
    pub(super) session: Arc<Session>,
    /// A session was resumed (`CONNACK` Session Present).
    pub(super) present: bool,
    /// Wills to publish: of a connection taken over, of a session that ended.
    pub(super) wills: Vec<(ConnId, Will)>,
}

impl MqttServer {
    /// Opens `client_id`'s session: takes it over from a connection that holds it (which
    /// then closes as if its network had failed), resumes it unless `clean` (or another
    /// user owns it), else ends it and starts a new one.
    pub(super) fn open_session(
        &self,
        client_id: &str,
        user: &str,
        clean: bool,
        expiry: u32,
    ) -> Opened {
        let now = now_ms();
        let mut wills = Vec::new();
        let mut sessions = self.sessions.lock();
        let mut ended = None;
        if let Some(old) = sessions.get(client_id).cloned() {
            let mut state = old.state.lock();
            if let Some(link) = state.link.take() {
                debug!(client = %client_id, "session taken over");
                link.kick.cancel();
                state.disconnected_at = Some(now);
                // A Will without delay goes now; a delayed one stays with the session,
                // which is resumed (the Will is dropped) or ended (it goes) just below.
                if let Some(w) = state.will.take() {
                    if w.will.delay == 0 {
                        wills.push((old.conn_id, w.will));
                    } else {
                        state.will = Some(w);
                    }
                }
            }
            if !clean && state.user == user {
                // Resumed before any Will delay ran out: that Will is not published.
                state.will = None;
                drop(state);
                return Opened {
                    session: old,
                    present: true,
                    wills,
                };
            }
            let (subscribers, will) = state.end();
            drop(state);
            wills.extend(will.map(|w| (old.conn_id, w)));
            sessions.remove(client_id);
            ended = Some((old, subscribers));
        }
        let session = self.new_session(client_id, user, expiry);
        sessions.insert(client_id.to_owned(), session.clone());
        drop(sessions);
        if let Some((old, subscribers)) = ended {
            self.remove_subscribers(&subscribers);
            old.touch_if(old.on_disk.load(Ordering::Relaxed));
        }
        Opened {
            session,
            present: false,
            wills,
        }
    }
}
