//! The Redis listener: RESP2 and RESP3 pub/sub clients on the shared subject space.
//!
//! Channels are subjects verbatim. `SUBSCRIBE` is an exact match on the
//! channel string, `PSUBSCRIBE` a glob over the whole subject of any
//! publish from any protocol, `SSUBSCRIBE` the separate shard namespace.
//! `PUBLISH` counts receivers across every protocol. The output of a
//! subscriber is bounded as Redis bounds it (hard limit, and a soft limit
//! with a time window); past it the connection is closed without a word.

mod commands;
mod introspect;
mod subscriptions;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::auth::Credentials;
use crate::clients::ClientKind;
use crate::shared::ConnectionPermit;
use bytes::{Bytes, BytesMut};
use herald_core::{
    ConnId, Delivery, DeliveryCtx, Interest, Message, Outbox, Sink, SlowConsumerPolicy, SoftLimit,
    Subscriber,
};
use herald_protocol::resp::{self, Proto, RequestParser, RespLimits};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span, warn};

use subscriptions::SubscriptionSet;

use crate::listener::port::{ClientPort, Reauthorized, Refusal};
use crate::listener::{ConnectionIo, ReadBuffer};
use crate::shared::{ServerStats, Shared};

/// Encodes deliveries as Redis pushes (`message`, `pmessage`, `smessage`).
#[derive(Debug)]
struct RedisSink {
    outbox: Arc<Outbox>,
    /// The connection speaks RESP3 (pushes are `>`), else RESP2 (`*`).
    resp3: AtomicBool,
}

impl RedisSink {
    fn proto(&self) -> Proto {
        if self.resp3.load(Ordering::Relaxed) {
            Proto::Resp3
        } else {
            Proto::Resp2
        }
    }
}

impl Sink for RedisSink {
    fn deliver(&self, sub: &Subscriber, msg: &Message, ctx: &mut DeliveryCtx) -> Delivery {
        let proto = self.proto();
        let channel = msg.subject.as_bytes();
        let size = channel.len() + msg.payload.len() + 48;
        self.outbox
            .push_message(ctx, size, |w| match sub.interest() {
                Interest::Glob(pattern) => {
                    resp::pmessage_push(w.buf(), proto, pattern, channel, &msg.payload);
                }
                Interest::Shard(_) => resp::smessage_push(w.buf(), proto, channel, &msg.payload),
                Interest::Channel(_) | Interest::Pattern(_) => {
                    resp::message_push(w.buf(), proto, channel, &msg.payload);
                }
            })
    }
}

/// Serves one Redis client connection.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permit: Option<ConnectionPermit>,
) {
    let id = shared.broker.new_conn_id();
    let span = info_span!("redis", conn = id.0, %peer);
    async move {
        let _count = shared.stats.open(|s: &ServerStats| &s.redis_connections);
        let config = &shared.redis;
        let outbox = Outbox::new(config.output_buffer_hard, SlowConsumerPolicy::Close)
            .with_soft_limit(SoftLimit {
                bytes: config.output_buffer_soft,
                window: config.output_buffer_soft_window,
            });
        let Some((stream, cert_name)) =
            crate::listener::secure(&shared, stream, b"-ERR this port requires TLS\r\n").await
        else {
            return;
        };
        let mut io = ConnectionIo::start(&shared, stream, outbox);
        if permit.is_none() {
            warn!("connection refused: maximum connections reached");
            io.outbox
                .push_control(|b| resp::error(b, b"ERR max number of clients reached"));
            io.finish().await;
            return;
        }
        debug!("connected");
        let mut conn = Connection::new(shared.clone(), id, io.outbox.clone(), peer, io.local);
        conn.port.certificate(cert_name.as_deref());
        conn.run(&mut io.reader, &io.token).await;
        conn.port.closing();
        conn.unsubscribe_all();
        io.finish().await;
        debug!(user = conn.port.user(), "disconnected");
        drop(permit);
    }
    .instrument(span)
    .await;
}

/// What to do after a command.
enum Flow {
    Continue,
    /// Close after what is queued has been written.
    Close,
}

/// The reader side of one Redis connection.
struct Connection {
    shared: Arc<Shared>,
    id: ConnId,
    outbox: Arc<Outbox>,
    sink: Arc<RedisSink>,
    /// The connection core: identity, publisher, permission checks.
    port: ClientPort,
    proto: Proto,
    name: Option<Bytes>,
    lib_name: Option<Bytes>,
    lib_ver: Option<Bytes>,
    channels: SubscriptionSet,
    patterns: SubscriptionSet,
    shards: SubscriptionSet,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    created: Instant,
    last_command: Instant,
    last_command_name: &'static str,
    limits: RespLimits,
    /// Remembers how far a partly received request was parsed.
    parser: RequestParser,
    /// Replies of the current batch, appended to the outbox in one go.
    replies: BytesMut,
    /// `CLIENT REPLY`: whether command replies are sent.
    reply_mode: ReplyMode,
    /// Where the replies of a command whose reply is dropped begin.
    reply_mark: Option<usize>,
}

/// `CLIENT REPLY`: whether a command's reply goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplyMode {
    On,
    /// `CLIENT REPLY OFF`: no replies until `CLIENT REPLY ON`.
    Off,
    /// `CLIENT REPLY SKIP`: the next command's reply is dropped.
    SkipNext,
    /// The command being run is the one skipped.
    Skipping,
}

impl Connection {
    fn new(
        shared: Arc<Shared>,
        id: ConnId,
        outbox: Arc<Outbox>,
        peer: SocketAddr,
        local: Option<SocketAddr>,
    ) -> Self {
        let limits = RespLimits {
            max_bulk: shared.limits.max_payload.max(1024 * 1024),
            ..RespLimits::default()
        };
        Self {
            port: ClientPort::new(shared.clone(), id, outbox.clone(), ClientKind::Redis, peer),
            sink: Arc::new(RedisSink {
                outbox: outbox.clone(),
                resp3: AtomicBool::new(false),
            }),
            shared,
            id,
            outbox,
            proto: Proto::Resp2,
            name: None,
            lib_name: None,
            lib_ver: None,
            channels: SubscriptionSet::default(),
            patterns: SubscriptionSet::default(),
            shards: SubscriptionSet::default(),
            peer,
            local,
            created: Instant::now(),
            last_command: Instant::now(),
            last_command_name: "NULL",
            limits,
            parser: RequestParser::new(),
            replies: BytesMut::new(),
            reply_mode: ReplyMode::On,
            reply_mark: None,
        }
    }

    /// Channels plus patterns: the count in (un)subscribe confirmations.
    fn subscription_count(&self) -> i64 {
        (self.channels.len() + self.patterns.len()) as i64
    }

    fn subscribed(&self) -> bool {
        !(self.channels.is_empty() && self.patterns.is_empty() && self.shards.is_empty())
    }

    fn set_proto(&mut self, proto: Proto) {
        self.proto = proto;
        self.sink
            .resp3
            .store(proto == Proto::Resp3, Ordering::Relaxed);
    }

    /// Moves the replies of this batch into the outbox, in order with any
    /// pushes already queued there, and writes them.
    fn flush_replies(&mut self) {
        self.queue_replies();
        // Written from here when nothing else is being written, as
        // redis-server answers a pipeline: no hand-off to the writer task.
        self.outbox.write_now();
    }

    /// Moves the replies so far to the outbox, after the deliveries this
    /// connection's publishes staged (a push to ourselves must precede our
    /// reply), without writing them.
    fn queue_replies(&mut self) {
        self.port.flush();
        if !self.replies.is_empty() {
            let replies = self.replies.split();
            self.outbox.push_reply(|b| b.extend_from_slice(&replies));
        }
    }

    async fn run(&mut self, reader: &mut crate::listener::Reader, token: &CancellationToken) {
        let mut read = ReadBuffer::new(16 * 1024);
        // One argument vector for every request of the connection.
        let mut args = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reloads = self.shared.reloaded();
        loop {
            loop {
                let authenticated = self.port.identity().is_some();
                match self
                    .parser
                    .parse_into(&mut read.buf, &self.limits, authenticated, &mut args)
                {
                    Ok(true) => {
                        if args.is_empty() {
                            continue;
                        }
                        if self.shared.users_required() && self.authenticates(&args) {
                            // AUTH and HELLO … AUTH check passwords off the async workers.
                            if !self.authenticate(&args).await {
                                continue;
                            }
                        }
                        let flow = self.handle(&mut args);
                        if let Flow::Close = flow {
                            self.flush_replies();
                            return;
                        }
                    }
                    Ok(false) => break,
                    Err(error) => {
                        debug!(%error, "protocol error");
                        // Redis answers and closes; past the query-buffer
                        // limit it closes without a word.
                        if error.has_reply() {
                            error.write_reply(&mut self.replies);
                        }
                        self.flush_replies();
                        return;
                    }
                }
            }
            self.flush_replies();
            self.port.end_batch().await;
            tokio::select! {
                biased;
                () = token.cancelled() => return,
                Ok(()) = reloads.changed() => {
                    if !self.still_authorized() {
                        return;
                    }
                }
                _ = tick.tick() => {
                    // Redis checks the soft output limit in its cron too.
                    self.outbox.check_soft_limit();
                }
                result = read.read_from(reader) => match result {
                    Ok(0) => return,
                    // Once per read, not per command: the clock is not free.
                    Ok(_) => self.last_command = Instant::now(),
                    Err(error) => {
                        debug!(%error, "read failed");
                        return;
                    }
                },
            }
        }
    }

    /// After a configuration reload, whether the client may stay: as Redis
    /// does when an ACL change removes its user or a channel it is
    /// subscribed to, the connection is closed otherwise; the
    /// subscriptions it keeps are checked under the new permissions.
    fn still_authorized(&mut self) -> bool {
        match self.port.reauthorize() {
            Reauthorized::Same => true,
            Reauthorized::Gone => false,
            Reauthorized::Changed => {
                let gate = self.port.gate();
                [&self.channels, &self.patterns, &self.shards]
                    .iter()
                    .flat_map(|set| set.subscribers())
                    .all(|sub| gate.recheck(sub))
            }
        }
    }

    /// Whether `args` carry credentials: AUTH, or HELLO with an AUTH option.
    fn authenticates(&self, args: &[Bytes]) -> bool {
        let name = &args[0];
        name.eq_ignore_ascii_case(b"AUTH") && (2..=3).contains(&args.len())
            || name.eq_ignore_ascii_case(b"HELLO")
                && args.iter().skip(2).any(|a| a.eq_ignore_ascii_case(b"AUTH"))
    }

    /// Checks the credentials of AUTH or HELLO … AUTH. On failure answers
    /// WRONGPASS (nothing else changes) and returns false; on success the
    /// command then runs as usual.
    async fn authenticate(&mut self, args: &[Bytes]) -> bool {
        let (user, password) = if args[0].eq_ignore_ascii_case(b"AUTH") {
            match args.len() {
                2 => (None, args[1].clone()),
                _ => (Some(args[1].clone()), args[2].clone()),
            }
        } else {
            match args.iter().position(|a| a.eq_ignore_ascii_case(b"AUTH")) {
                Some(i) if i + 2 < args.len() => (Some(args[i + 1].clone()), args[i + 2].clone()),
                _ => return true,
            }
        };
        let users = self.shared.users();
        let identity = tokio::task::spawn_blocking(move || {
            let password = std::str::from_utf8(&password).ok()?;
            match user.as_deref().map(std::str::from_utf8) {
                // `AUTH secret`: the default user's password, or a bearer token.
                None | Some(Ok("default")) => users
                    .authenticate(Credentials::Password {
                        user: "default",
                        password,
                    })
                    .or_else(|| users.authenticate(Credentials::Token(password))),
                Some(Ok(user)) => users.authenticate(Credentials::Password { user, password }),
                Some(Err(_)) => None,
            }
        })
        .await
        .ok()
        .flatten();
        match identity {
            Some(identity) => {
                debug!(user = %identity.name, "authenticated");
                self.port.authenticated(identity);
                true
            }
            None => {
                warn!("authentication failed");
                self.shared
                    .stats
                    .auth_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                resp::error(
                    &mut self.replies,
                    b"WRONGPASS invalid username-password pair or user is disabled.",
                );
                false
            }
        }
    }

    fn unsubscribe_all(&mut self) {
        let broker = &self.shared.broker;
        for (_, sub) in self
            .channels
            .drain_in_order()
            .into_iter()
            .chain(self.patterns.drain_in_order())
            .chain(self.shards.drain_in_order())
        {
            broker.remove_subscriber(&sub);
        }
    }
}
