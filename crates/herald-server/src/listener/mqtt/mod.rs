//! The MQTT listener: MQTT 3.1.1 and 5.0 clients on the shared subject space.
//!
//! Topics map to subjects as nats-server maps them (`sensors/kitchen/temp` ↔
//! `sensors.kitchen.temp`, `+` ↔ `*`, `#` ↔ `>`; see `herald_protocol::mqtt::subject`), so
//! an MQTT publish reaches NATS, Redis and web subscribers and theirs reach MQTT clients,
//! as QoS 0 messages.
//!
//! | module | what it owns |
//! | --- | --- |
//! | `connect` | `CONNECT`: validation, authentication, the session, `CONNACK` |
//! | `connection` | the read loop, keep-alive, acks, `DISCONNECT`, how a connection ends |
//! | `publish` | `PUBLISH` from clients (QoS 0/1/2, topic aliases, retained), Wills |
//! | `subscribe` | `SUBSCRIBE`/`UNSUBSCRIBE`, the sink that feeds sessions, shared subscriptions |
//! | `session` | sessions: in-flight window, queue, packet ids, resend on resume |
//! | `delivery` | outgoing messages, writing `PUBLISH`, the origin of MQTT publishes |
//! | `retained` | retained messages in the `MQTT_RETAINED` stream |
//! | `persist` | session files under the data directory |
//!
//! `MqttServer` holds what connections share: the session registry (one session per
//! client id, taken over by a new connection with the same id), the retained store and
//! the session saver, and runs a reaper that publishes delayed Wills and ends expired
//! sessions.

mod connect;
mod connection;
mod delivery;
pub(crate) use delivery::RouteCodec;
mod persist;
mod publish;
mod retained;
mod session;
mod subscribe;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use herald_core::Subscriber;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::auth::Identity;
use crate::clients::ClientKind;
use crate::config::MqttConfig;
use crate::listener::port::Gate;
use crate::shared::{ConnectionPermit, ServerStats, Shared};

use persist::{Saver, SessionFile};
use retained::Retained;
use session::{Session, SessionLimits, Will};

/// How often expired sessions and due Wills are looked for.
const REAP_EVERY: Duration = Duration::from_secs(1);

/// The most a connection's reads take at once (see `listener::ReadBuffer`).
const READ_BUFFER_MAX: usize = 16 * 1024;

/// What every MQTT connection shares.
#[derive(Debug)]
pub(crate) struct MqttServer {
    shared: Arc<Shared>,
    config: MqttConfig,
    limits: SessionLimits,
    /// Sessions by client id.
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    retained: Retained,
    saver: Arc<Saver>,
}

impl MqttServer {
    /// The keep-alive (seconds) a client asking for `asked` gets under
    /// `mqtt.max_keepalive`: the cap when it asks for more or for none
    /// (0). `Err` for an MQTT 3.1.1 client over the cap is the caller's to
    /// refuse; a 5.0 client is told the cap (Server Keep Alive).
    pub(super) fn keep_alive(
        &self,
        version: herald_protocol::mqtt::Version,
        asked: u16,
    ) -> Result<u16, ()> {
        let cap = u16::try_from(self.config.max_keepalive.as_secs()).unwrap_or(u16::MAX);
        if cap == 0 || (asked > 0 && asked <= cap) {
            return Ok(asked);
        }
        match version {
            herald_protocol::mqtt::Version::V5 => Ok(cap),
            herald_protocol::mqtt::Version::V311 => Err(()),
        }
    }

    /// Restores the saved sessions (their subscriptions collect messages from now on) and
    /// starts the saver and the reaper.
    ///
    /// # Errors
    /// The session directory cannot be created.
    pub(crate) async fn start(
        shared: Arc<Shared>,
        config: MqttConfig,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<Arc<Self>> {
        let dir = data_dir.join("mqtt").join("sessions");
        let saver = Saver::new(dir.clone()).map_err(|e| {
            anyhow::anyhow!(
                "cannot create MQTT session directory {}: {e}",
                dir.display()
            )
        })?;
        let saver = Arc::new(saver);
        let loader = saver.clone();
        let files = tokio::task::spawn_blocking(move || loader.load()).await?;
        let server = Arc::new(Self {
            retained: Retained::new(shared.store.clone(), shared.cluster.get().cloned()),
            limits: SessionLimits {
                max_inflight: usize::from(config.max_inflight),
                max_queued: config.max_queued,
            },
            sessions: Mutex::new(HashMap::new()),
            saver: saver.clone(),
            config,
            shared: shared.clone(),
        });
        let restored = files.len();
        for file in files {
            server.restore(file);
        }
        if restored > 0 {
            info!(sessions = restored, "restored MQTT sessions");
        }
        shared
            .tracker
            .spawn(saver.run(shared.shutdown.child_token()));
        let reaper = server.clone();
        shared
            .tracker
            .spawn(async move { reaper.reap_loop().await });
        Ok(server)
    }

    /// Serves one MQTT connection (the accept loop's handler).
    pub(crate) async fn serve(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        permit: Option<ConnectionPermit>,
    ) {
        // MQTT over TLS starts with the handshake; a plain-text client is just closed
        // (there is no MQTT packet to explain it before CONNECT).
        let Some((stream, cert_name)) = crate::listener::secure(&self.shared, stream, b"").await
        else {
            return;
        };
        let client = (ClientKind::Mqtt, peer);
        self.serve_stream(stream, client, permit.is_some(), cert_name)
            .await;
        drop(permit);
    }

    /// Serves MQTT over a WebSocket (`/mqtt`, subprotocol `mqtt`, as
    /// Mosquitto's websockets listener and MQTT.js speak it) with the same
    /// code as over TCP, from the browser's own address. The web connection
    /// it upgraded holds its place under the connection limits, and its
    /// client certificate (mutual TLS at the web port) names its user.
    pub(crate) async fn serve_websocket(
        self: Arc<Self>,
        socket: axum::extract::ws::WebSocket,
        peer: crate::listener::http::Peer,
    ) {
        let stream = crate::listener::Stream::Other(
            Box::new(crate::listener::ws_bytes::WsBytes::new(socket)),
            peer.local,
        );
        let client = (ClientKind::MqttWebSocket, peer.addr);
        self.serve_stream(stream, client, true, peer.cert_name)
            .await;
    }

    /// The protocol over an established stream: CONNECT, then the session
    /// until the client leaves or the server stops.
    async fn serve_stream(
        self: Arc<Self>,
        stream: crate::listener::Stream,
        (kind, peer): (ClientKind, SocketAddr),
        admitted: bool,
        cert_name: Option<String>,
    ) {
        let shared = self.shared.clone();
        let id = shared.broker.new_conn_id();
        let span = info_span!("mqtt", conn = id.0, %peer, client = tracing::field::Empty);
        async move {
            let _count = shared.stats.open(|s: &ServerStats| &s.mqtt_connections);
            let outbox =
                herald_core::Outbox::new(shared.limits.max_pending, shared.limits.slow_consumer);
            let mut io = crate::listener::ConnectionIo::start(&shared, stream, outbox);
            let cert = cert_name.and_then(|name| shared.users().by_certificate(&name));
            let accepted = connect::accept(&self, &mut io, (kind, peer), cert, admitted).await;
            if let Some((mut conn, read)) = accepted {
                tracing::Span::current().record("client", conn.session.client_id.as_str());
                let exit = conn.run(&mut io.reader, &io.token, read).await;
                conn.close(exit).await;
            }
            io.finish().await;
            debug!("disconnected");
        }
        .instrument(span)
        .await;
    }

    /// Saves every session (after the connections have closed, at shutdown).
    pub(crate) async fn stop(&self) {
        let sessions: Vec<Arc<Session>> = self.sessions.lock().values().cloned().collect();
        for session in &sessions {
            session.touch();
        }
        self.saver.flush().await;
    }

    /// The identity that owns a restored session, by its user name.
    fn owner(&self, user: &str) -> Option<Identity> {
        if !self.shared.users_required() {
            return Some(Identity::anonymous());
        }
        self.shared.users().by_certificate(user)
    }

    /// Rebuilds a saved session: its subscriptions go back into the broker at once.
    fn restore(self: &Arc<Self>, file: SessionFile) {
        let Some(identity) = self.owner(&file.user) else {
            warn!(client = %file.client_id, user = %file.user, "MQTT session of an unknown user dropped");
            let session = self.new_session(&file.client_id, &file.user, 0);
            session.touch_if(true);
            return;
        };
        let session = self.new_session(&file.client_id, &file.user, file.expiry);
        session
            .on_disk
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let mut entries = Vec::new();
        for sub in &file.subscriptions {
            let Ok(filter) = herald_protocol::mqtt::TopicFilter::new(&sub.filter) else {
                continue;
            };
            let Some(options) = SessionFile::options(sub) else {
                continue;
            };
            let id = sub.id.and_then(herald_protocol::mqtt::SubscriptionId::new);
            match subscribe::Routes::of(&filter) {
                Ok(routes) => entries.push(subscribe::subscribe_entry(
                    &self.shared.broker,
                    &session,
                    Gate::new(&identity, &self.shared.stats),
                    filter,
                    options,
                    id,
                    routes,
                )),
                Err(code) => warn!(filter = %sub.filter, %code, "saved subscription dropped"),
            }
        }
        {
            let mut state = session.state.lock();
            let requester = Gate::new(&identity, &self.shared.stats).requester();
            file.restore_into(&mut state, &requester);
            state.disconnected_at = Some(file.disconnected_at.unwrap_or_else(delivery::now_ms));
            for entry in entries {
                state.subs.insert(entry.filter.as_str().to_owned(), entry);
            }
        }
        self.sessions
            .lock()
            .insert(file.client_id.clone(), session.clone());
        debug!(client = %file.client_id, "MQTT session restored");
    }

    fn new_session(&self, client_id: &str, user: &str, expiry: u32) -> Arc<Session> {
        Session::new(
            client_id.to_owned(),
            self.shared.broker.new_conn_id(),
            user.to_owned(),
            expiry,
            self.limits,
            self.saver.clone(),
        )
    }

    /// Removes subscriptions from the broker (never with a session locked).
    fn remove_subscribers(&self, subscribers: &[Arc<Subscriber>]) {
        for sub in subscribers {
            self.shared.broker.remove_subscriber(sub);
        }
    }

    /// Publishes delayed Wills when due and ends expired sessions, every second, until
    /// shutdown.
    async fn reap_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(REAP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.shared.shutdown.cancelled() => return,
                _ = tick.tick() => self.reap().await,
            }
        }
    }

    async fn reap(&self) {
        let now = delivery::now_ms();
        let mut wills: Vec<(herald_core::ConnId, Will)> = Vec::new();
        let mut removed = Vec::new();
        let mut touched = Vec::new();
        self.sessions.lock().retain(|_, session| {
            let mut state = session.state.lock();
            if state.link.is_some() {
                return true;
            }
            if state.expired(now) {
                let (subs, will) = state.end();
                removed.extend(subs);
                wills.extend(will.map(|w| (session.conn_id, w)));
                touched.push(session.clone());
                debug!(client = %session.client_id, "MQTT session expired");
                return false;
            }
            if state
                .will
                .as_ref()
                .is_some_and(|w| w.due.is_some_and(|d| d <= now))
                && let Some(w) = state.will.take()
            {
                wills.push((session.conn_id, w.will));
                touched.push(session.clone());
            }
            true
        });
        self.remove_subscribers(&removed);
        for session in touched {
            session.touch_if(true);
        }
        for (conn, will) in wills {
            self.publish_will(conn, will).await;
        }
    }
}
