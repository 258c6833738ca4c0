//! The NATS client protocol listener.
//!
//! One task reads and parses (every whole frame in the buffer per read) and
//! turns frames into broker calls; a second task writes the connection's
//! [`Outbox`]. Deliveries are encoded straight into the outbox by
//! `NatsSink`, on whichever thread published them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::clients::ClientKind;
use crate::shared::ConnectionPermit;
use ahash::AHashMap;
use bytes::{Bytes, BytesMut};
use herald_core::{
    ConnId, Delivery, DeliveryCtx, Headers, Message, Outbox, Pattern, QueueName, Sink, Subject,
    SubscribeSpec, Subscriber,
};
use herald_protocol::limits::Limits as CodecLimits;
use herald_protocol::nats::{self as codec, ClientOp, ConnectOptions, ProtocolError, ServerInfo};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span, warn};

use crate::auth::Credentials;
use crate::listener::port::{ClientPort, Reauthorized, Refusal};
use crate::listener::{ConnectionIo, ReadBuffer, Stream};
use crate::shared::{ServerStats, Shared};

/// The version herald reports in INFO. Clients gate features on it
/// (nats.go and nats-py need ≥ 2.9 for the consumer-create subjects).
pub const REPORTED_VERSION: &str = "2.10.0";

/// How a connection's state machine wants to go on after a frame.
enum Flow {
    Continue,
    Close,
}

/// Delivers messages to a NATS connection by encoding `MSG`/`HMSG` frames
/// into its outbox.
#[derive(Debug)]
pub(crate) struct NatsSink {
    outbox: Arc<Outbox>,
    /// The client said `headers: true`; otherwise headers are cut off.
    headers: AtomicBool,
}

impl Sink for NatsSink {
    fn deliver(&self, sub: &Subscriber, msg: &Message, ctx: &mut DeliveryCtx) -> Delivery {
        let sid = sub.tag();
        let headers = msg
            .headers
            .as_ref()
            .filter(|_| self.headers.load(Ordering::Relaxed));
        let reply = msg.reply.as_ref().map(Subject::as_bytes);
        let size = msg.subject.as_bytes().len()
            + sid.len()
            + reply.map_or(0, <[u8]>::len)
            + headers.map_or(0, Headers::wire_len)
            + msg.payload.len()
            + 32;
        self.outbox.push_message(ctx, size, |w| {
            match headers {
                Some(h) => {
                    let hlen = h.wire_len();
                    codec::encode_msg_head(
                        w.buf(),
                        msg.subject.as_bytes(),
                        sid,
                        reply,
                        Some(hlen),
                        hlen + msg.payload.len(),
                    );
                    w.put(h.raw());
                }
                None => codec::encode_msg_head(
                    w.buf(),
                    msg.subject.as_bytes(),
                    sid,
                    reply,
                    None,
                    msg.payload.len(),
                ),
            }
            w.put_payload(&msg.payload);
            w.put(b"\r\n");
        })
    }
}

/// Serves one NATS client connection until it closes or the server stops.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permit: Option<ConnectionPermit>,
) {
    let id = shared.broker.new_conn_id();
    let span = info_span!("nats", conn = id.0, %peer, name = tracing::field::Empty);
    async move {
        let local = stream.local_addr().ok();
        let mut info = server_info(&shared, id, peer, local);
        let (stream, cert_name) = match shared.tls() {
            None => (Stream::Plain(stream), None),
            Some(tls) => {
                // NATS: INFO in plain text first, then the client starts TLS.
                info.tls_required = true;
                let mut stream = stream;
                let mut hello = BytesMut::new();
                codec::encode_info(&mut hello, &info);
                if stream.write_all(&hello).await.is_err() {
                    return;
                }
                if !crate::tls::starts_with_tls(&stream).await {
                    debug!("plain-text client on a TLS port");
                    let _ = stream
                        .write_all(b"-ERR 'Secure Connection - TLS Required'\r\n")
                        .await;
                    let _ = stream.shutdown().await;
                    return;
                }
                match tls.accept(stream).await {
                    Ok(tls_stream) => {
                        let name = crate::tls::client_name(&tls_stream);
                        (Stream::Tls(Box::new(tls_stream)), name)
                    }
                    Err(error) => {
                        debug!(%error, "TLS handshake failed");
                        return;
                    }
                }
            }
        };
        // Over TLS the INFO went out before the handshake.
        let info = matches!(stream, Stream::Plain(_)).then_some(info);
        let client = (ClientKind::Nats, peer);
        serve_stream(
            shared,
            id,
            stream,
            info,
            permit.is_some(),
            cert_name,
            client,
        )
        .await;
        drop(permit);
    }
    .instrument(span)
    .await;
}

/// Serves NATS over a WebSocket (`/nats`, as nats.ws speaks it) with the
/// same code as over TCP, from the browser's own address; `wss://` is TLS
/// at the web port, so the INFO does not ask for TLS again. The web
/// connection it upgraded holds its place under the connection limits, and
/// its client certificate (mutual TLS at the web port) names its user.
pub(crate) async fn serve_websocket(
    shared: Arc<Shared>,
    socket: axum::extract::ws::WebSocket,
    peer: crate::listener::http::Peer,
) {
    let id = shared.broker.new_conn_id();
    let addr = peer.addr;
    let span = info_span!("nats-ws", conn = id.0, peer = %addr, name = tracing::field::Empty);
    let info = server_info(&shared, id, addr, peer.local);
    let stream = Stream::Other(
        Box::new(crate::listener::ws_bytes::WsBytes::new(socket)),
        peer.local,
    );
    let client = (ClientKind::NatsWebSocket, addr);
    serve_stream(shared, id, stream, Some(info), true, peer.cert_name, client)
        .instrument(span)
        .await;
}

/// The protocol over an established stream: INFO (unless already sent),
/// then the client's frames until it closes or the server stops.
async fn serve_stream(
    shared: Arc<Shared>,
    id: ConnId,
    stream: Stream,
    info: Option<ServerInfo>,
    admitted: bool,
    cert_name: Option<String>,
    (kind, peer): (ClientKind, SocketAddr),
) {
    let _count = shared.stats.open(|s: &ServerStats| &s.nats_connections);
    let outbox = Outbox::new(shared.limits.max_pending, shared.limits.slow_consumer);
    let mut io = ConnectionIo::start(&shared, stream, outbox);
    if let Some(info) = &info {
        io.outbox.push_control(|b| codec::encode_info(b, info));
    }
    if !admitted {
        warn!("connection refused: maximum connections reached");
        send_err(&io.outbox, "maximum connections exceeded");
        io.finish().await;
        return;
    }
    debug!("connected");
    let mut conn = Connection::new(shared.clone(), id, io.outbox.clone(), kind, peer);
    conn.port.certificate(cert_name.as_deref());
    conn.run(&mut io.reader, &io.token).await;
    conn.port.closing();
    conn.unsubscribe_all();
    io.finish().await;
    debug!(user = conn.port.user(), "disconnected");
}

fn server_info(
    shared: &Shared,
    id: ConnId,
    peer: SocketAddr,
    local: Option<SocketAddr>,
) -> ServerInfo {
    ServerInfo {
        server_id: shared.server_id.clone(),
        server_name: shared
            .cluster
            .get()
            .map_or_else(|| shared.server_id.clone(), |c| c.node().to_owned()),
        version: REPORTED_VERSION.to_owned(),
        proto: 1,
        go: "herald".to_owned(),
        host: local.map_or_else(|| "0.0.0.0".to_owned(), |a| a.ip().to_string()),
        port: local.map_or(0, |a| a.port()),
        headers: true,
        max_payload: shared.limits.max_payload,
        client_id: id.0,
        client_ip: peer.ip().to_string(),
        jetstream: true,
        auth_required: shared.users_required(),
        connect_urls: shared
            .cluster
            .get()
            .map(herald_cluster::Cluster::connect_urls)
            .unwrap_or_default(),
        cluster: shared.cluster.get().map(|c| c.name().to_owned()),
        ..ServerInfo::default()
    }
}

/// Tokens of an interest that are not wildcards.
fn literal_tokens(interest: &herald_core::Interest) -> usize {
    interest
        .as_bytes()
        .split(|b| *b == b'.')
        .filter(|t| *t != b"*" && *t != b">")
        .count()
}

fn send_err(outbox: &Outbox, text: &str) {
    outbox.push_control(|b| codec::encode_err(b, text));
}

/// The reader side of one connection: NATS frames in, the port's calls out.
struct Connection {
    port: ClientPort,
    shared: Arc<Shared>,
    outbox: Arc<Outbox>,
    sink: Arc<NatsSink>,
    subs: AHashMap<Bytes, Arc<Subscriber>>,
    options: ConnectOptions,
    limits: CodecLimits,
    pings_out: u32,
    last_read: Instant,
}

impl Connection {
    fn new(
        shared: Arc<Shared>,
        id: ConnId,
        outbox: Arc<Outbox>,
        kind: ClientKind,
        peer: SocketAddr,
    ) -> Self {
        let limits = CodecLimits {
            max_control_line: shared.limits.max_control_line,
            max_payload: shared.limits.max_payload,
        };
        Self {
            port: ClientPort::new(shared.clone(), id, outbox.clone(), kind, peer),
            sink: Arc::new(NatsSink {
                outbox: outbox.clone(),
                headers: AtomicBool::new(false),
            }),
            shared,
            outbox,
            subs: AHashMap::new(),
            // nats-server's defaults until a CONNECT says otherwise: verbose,
            // pedantic and echo on.
            options: ConnectOptions::default(),
            limits,
            pings_out: 0,
            last_read: Instant::now(),
        }
    }

    async fn run(&mut self, reader: &mut crate::listener::Reader, token: &CancellationToken) {
        let mut read = ReadBuffer::new(64 * 1024);
        let interval = self.shared.limits.ping_interval;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let auth_deadline = tokio::time::Instant::now() + self.shared.limits.auth_timeout;
        let mut reloads = self.shared.reloaded();
        loop {
            loop {
                match codec::parse_client(&mut read.buf, &self.limits) {
                    Ok(Some(op)) if self.port.identity().is_none() => {
                        // Users are configured: CONNECT with credentials first.
                        let ClientOp::Connect(options) = op else {
                            debug!("operation before authentication");
                            self.send_err("Authorization Violation");
                            return;
                        };
                        if let Flow::Close = self.authenticate(*options).await {
                            return;
                        }
                    }
                    Ok(Some(op)) => {
                        if let Flow::Close = self.handle(op) {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(error) => {
                        debug!(%error, "protocol error");
                        // nats-server closes without a word on malformed
                        // arguments and CONNECT JSON; the rest get an -ERR.
                        if !matches!(
                            error,
                            ProtocolError::InvalidArguments | ProtocolError::InvalidConnect(_)
                        ) {
                            self.send_err(error.err_text());
                            let stats = &self.shared.stats;
                            match error {
                                ProtocolError::MaxPayload => {
                                    stats.payload_refusals.fetch_add(1, Ordering::Relaxed);
                                }
                                ProtocolError::MaxControlLine => {
                                    stats.control_line_refusals.fetch_add(1, Ordering::Relaxed);
                                }
                                _ => {}
                            }
                        }
                        return;
                    }
                }
            }
            self.finish_batch().await;
            tokio::select! {
                biased;
                () = token.cancelled() => return,
                Ok(()) = reloads.changed() => {
                    if let Flow::Close = self.reloaded() {
                        return;
                    }
                }
                () = tokio::time::sleep_until(auth_deadline), if self.port.identity().is_none() => {
                    debug!("no authentication in time");
                    self.send_err("Authentication Timeout");
                    self.shared.stats.auth_timeouts.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                _ = ping.tick() => {
                    if self.pings_out >= self.shared.limits.max_pings_out {
                        debug!("stale connection");
                        self.send_err("Stale Connection");
                        return;
                    }
                    // Skip a round when the client spoke recently (as nats-server does).
                    if self.last_read.elapsed() >= interval {
                        self.pings_out += 1;
                        self.control(codec::encode_ping);
                    }
                }
                result = read.read_from(reader) => match result {
                    Ok(0) => return,
                    Ok(_) => self.last_read = Instant::now(),
                    Err(error) => {
                        debug!(%error, "read failed");
                        return;
                    }
                },
            }
        }
    }

    /// Ends the batch of frames parsed from one read (see
    /// [`ClientPort::end_batch`]): our own output (`PONG`, `+OK`, ...) goes
    /// out from here, then back-pressure for the subscribers this client's
    /// publishes congested.
    async fn finish_batch(&mut self) {
        self.port.end_batch().await;
    }

    /// Queues protocol output of this connection's own (`+OK`, `PONG`,
    /// `-ERR`, ...) behind every delivery its publishes made so far:
    /// deliveries are staged until the publisher flushes, and a client that
    /// sent `PUB` then `PING` must see the `MSG` before the `PONG`.
    fn control(&mut self, encode: impl FnOnce(&mut BytesMut)) {
        self.port.flush();
        // Written at the end of the batch (`finish_batch`), or by the
        // writer task when the connection closes first.
        self.outbox.push_reply(encode);
    }

    fn send_err(&mut self, text: &str) {
        self.control(|b| codec::encode_err(b, text));
    }

    /// A refusal in nats-server's words.
    fn refused(&mut self, refusal: &Refusal) {
        let text = match refusal {
            Refusal::Publish(subject) => {
                format!("Permissions Violation for Publish to \"{subject}\"")
            }
            Refusal::Subscribe {
                name,
                queue: Some(q),
            } => format!(
                "Permissions Violation for Subscription to \"{}\" using queue \"{q}\"",
                String::from_utf8_lossy(name)
            ),
            Refusal::Subscribe { name, queue: None } => format!(
                "Permissions Violation for Subscription to \"{}\"",
                String::from_utf8_lossy(name)
            ),
            Refusal::TooManySubscriptions => "maximum subscriptions exceeded".to_owned(),
        };
        self.send_err(&text);
    }

    fn ok(&mut self) {
        if self.options.verbose {
            self.control(codec::encode_ok);
        }
    }

    fn handle(&mut self, op: ClientOp) -> Flow {
        tracing::trace!(?op, "received");
        match op {
            ClientOp::Connect(options) => self.connect(*options),
            ClientOp::Pub {
                subject,
                reply,
                headers,
                payload,
            } => {
                self.publish(subject, reply, headers, payload);
                Flow::Continue
            }
            ClientOp::Sub {
                subject,
                queue,
                sid,
            } => {
                self.subscribe(subject, queue, sid);
                Flow::Continue
            }
            ClientOp::Unsub { sid, max } => {
                self.unsubscribe(&sid, max);
                self.ok();
                Flow::Continue
            }
            ClientOp::Ping => {
                self.control(codec::encode_pong);
                Flow::Continue
            }
            ClientOp::Pong => {
                self.pings_out = 0;
                Flow::Continue
            }
        }
    }

    /// Checks a CONNECT's credentials (argon2 runs on a blocking thread),
    /// then handles it as usual.
    async fn authenticate(&mut self, options: ConnectOptions) -> Flow {
        let users = self.shared.users();
        let (user, pass, token) = (
            options.user.clone(),
            options.pass.clone(),
            options.auth_token.clone(),
        );
        let identity = tokio::task::spawn_blocking(move || {
            let credentials = match (&user, &pass, &token) {
                (Some(user), Some(password), _) => Credentials::Password { user, password },
                (_, _, Some(token)) => Credentials::Token(token),
                _ => return None,
            };
            users.authenticate(credentials)
        })
        .await
        .ok()
        .flatten();
        match identity {
            Some(identity) => {
                debug!(user = %identity.name, "authenticated");
                self.port.authenticated(identity);
                self.connect(options)
            }
            None => {
                warn!(user = ?options.user, "authentication failed");
                self.shared
                    .stats
                    .auth_failures
                    .fetch_add(1, Ordering::Relaxed);
                self.send_err("Authorization Violation");
                Flow::Close
            }
        }
    }

    fn connect(&mut self, options: ConnectOptions) -> Flow {
        if !(0..=1).contains(&options.protocol) {
            self.send_err("invalid client protocol");
            return Flow::Close;
        }
        if options.no_responders && !options.headers {
            self.send_err("no responders requires headers support");
            return Flow::Close;
        }
        self.sink.headers.store(options.headers, Ordering::Relaxed);
        if let Some(name) = &options.name {
            tracing::Span::current().record("name", name.as_str());
            debug!(name = %name, lang = ?options.lang, version = ?options.version, "client connected");
        }
        self.port.record().describe(|d| {
            d.name = options.name.clone();
            d.lang = options.lang.clone();
            d.version = options.version.clone();
        });
        self.options = options;
        self.ok();
        Flow::Continue
    }

    fn publish(
        &mut self,
        subject: Bytes,
        reply: Option<Bytes>,
        headers: Option<Bytes>,
        payload: Bytes,
    ) {
        let subject = if self.options.pedantic {
            match Subject::from_bytes(subject) {
                Ok(subject) => subject,
                Err(_) => {
                    // nats-server still acknowledges the refused publish.
                    self.send_err("Invalid Publish Subject");
                    self.ok();
                    return;
                }
            }
        } else {
            Subject::from_wire_unchecked(subject)
        };
        if let Err(refusal) = self.port.gate().publish(&subject) {
            self.refused(&refusal);
            return;
        }
        // +OK goes out before any delivery the publish causes, as nats-server does.
        self.ok();
        let reply = reply.map(Subject::from_wire_unchecked);
        let msg = Message {
            subject,
            reply,
            headers: headers.map(Headers::from_raw_unchecked),
            payload,
            extension: None,
        };
        let receivers = self.port.publish_checked(&msg);
        if receivers == 0
            && self.options.no_responders
            && let Some(reply) = &msg.reply
        {
            self.no_responders(reply, &msg.subject);
        }
    }

    /// Tells the requester at once that nobody is listening (status 503,
    /// naming the subject asked, as nats-server 2.11 and later do), on its
    /// own subscription that matches the reply subject.
    fn no_responders(&mut self, reply: &Subject, asked: &Subject) {
        // The most specific match: a request inbox (`_INBOX.x.*`) rather
        // than a catch-all `>` the client may also hold.
        let Some(sid) = self
            .subs
            .values()
            .filter(|s| s.is_active() && s.interest().matches(reply))
            .max_by_key(|s| literal_tokens(s.interest()))
            .map(|s| s.tag().clone())
        else {
            return;
        };
        const HEAD: &[u8] = b"NATS/1.0 503\r\nNats-Subject: ";
        const TAIL: &[u8] = b"\r\n\r\n";
        let len = HEAD.len() + asked.as_bytes().len() + TAIL.len();
        self.control(|b| {
            codec::encode_msg_head(b, reply.as_bytes(), &sid, None, Some(len), len);
            b.extend_from_slice(HEAD);
            b.extend_from_slice(asked.as_bytes());
            b.extend_from_slice(TAIL);
            b.extend_from_slice(b"\r\n");
        });
    }

    fn subscribe(&mut self, subject: Bytes, queue: Option<Bytes>, sid: Bytes) {
        let Ok(pattern) = Pattern::from_bytes(subject) else {
            self.send_err("Invalid Subject");
            return;
        };
        let queue = match queue.map(QueueName::from_bytes).transpose() {
            Ok(queue) => queue,
            Err(_) => {
                self.send_err("Invalid Subject");
                return;
            }
        };
        let read_check = match self.port.gate().subscribe(&pattern, queue.as_ref()) {
            Ok(read_check) => read_check,
            Err(refusal) => {
                self.refused(&refusal);
                return;
            }
        };
        if self.subs.get(&sid).is_some_and(|s| s.is_active()) {
            // nats-server ignores a SUB that reuses a live sid.
            self.ok();
            return;
        }
        self.prune_subs();
        let max = self.shared.limits.max_subscriptions;
        if let Err(refusal) = self.port.gate().one_more_subscription(self.subs.len(), max) {
            self.refused(&refusal);
            return;
        }
        let mut spec = SubscribeSpec::new(pattern, self.port.id());
        spec.queue = queue;
        spec.echo = self.options.echo;
        spec.tag = sid.clone();
        spec.read_check = read_check;
        let sub = self.shared.broker.subscribe_sink(spec, self.sink.clone());
        self.subs.insert(sid, sub);
        self.ok();
    }

    /// The configuration was reloaded: a client whose user is gone (or
    /// whose credentials changed) is closed with `Authorization Violation`;
    /// one whose permissions changed loses the subscriptions it may no
    /// longer make, each with nats-server's error naming subject and sid.
    fn reloaded(&mut self) -> Flow {
        match self.port.reauthorize() {
            Reauthorized::Same => Flow::Continue,
            Reauthorized::Gone => {
                self.send_err("Authorization Violation");
                Flow::Close
            }
            Reauthorized::Changed => {
                let gate = self.port.gate();
                let refused: Vec<(Bytes, Arc<Subscriber>)> = self
                    .subs
                    .iter()
                    .filter(|(_, sub)| sub.is_active() && !gate.recheck(sub))
                    .map(|(sid, sub)| (sid.clone(), sub.clone()))
                    .collect();
                for (sid, sub) in refused {
                    self.subs.remove(&sid);
                    self.shared.broker.remove_subscriber(&sub);
                    let text = format!(
                        "Permissions Violation for Subscription to {:?} (sid {:?})",
                        String::from_utf8_lossy(sub.interest().as_bytes()),
                        String::from_utf8_lossy(&sid)
                    );
                    self.send_err(&text);
                }
                Flow::Continue
            }
        }
    }

    /// Forgets subscriptions that ended by reaching their message limit, so
    /// the map does not grow with one-shot request inboxes.
    fn prune_subs(&mut self) {
        if self.subs.len() >= 64 && self.subs.len().is_power_of_two() {
            self.subs.retain(|_, s| s.is_active());
        }
    }

    fn unsubscribe(&mut self, sid: &Bytes, max: Option<u64>) {
        let broker = &self.shared.broker;
        match max {
            Some(n) if n > 0 => {
                if let Some(sub) = self.subs.get(sid) {
                    broker.unsubscribe_after(sub, n);
                    if !sub.is_active() {
                        self.subs.remove(sid);
                    }
                }
            }
            _ => {
                if let Some(sub) = self.subs.remove(sid) {
                    broker.remove_subscriber(&sub);
                }
            }
        }
    }

    fn unsubscribe_all(&mut self) {
        for (_, sub) in self.subs.drain() {
            self.shared.broker.remove_subscriber(&sub);
        }
    }
}
