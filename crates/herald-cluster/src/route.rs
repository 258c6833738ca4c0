//! One route: a connection to another node. Its [`RouteSink`] turns local
//! deliveries into `MSG` frames (one per node per message, see
//! [`herald_core::SubscribeSpec::route`]); its reader turns the peer's
//! `SUB`/`UNSUB` into route subscriptions in the local broker and its `MSG`
//! frames into local deliveries, never forwarded further (one hop).

use std::io::IoSlice;
use std::sync::Arc;
use std::time::Instant;

use ahash::AHashMap;
use bytes::{Bytes, BytesMut};
use herald_core::{
    Broker, ConnId, Delivery, DeliveryCtx, Headers, Interest, Message, Outbox, OutboxBatch,
    Pattern, QueueName, Requester, Sink, SlowConsumerPolicy, Subject, SubscribeSpec, Subscriber,
};
use parking_lot::Mutex;
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio_util::sync::CancellationToken;

use crate::wire::{self, Info, InterestKey, Kind, RouteMsg};

/// Turns one protocol's message extension (see
/// [`herald_core::Message::extension`]) into bytes for another node, and
/// back there: the MQTT listener installs one so an MQTT publish keeps its
/// QoS and RETAIN flag across nodes.
pub trait ExtensionCodec: Send + Sync + std::fmt::Debug + 'static {
    /// The extension of `msg` as bytes, if it has one this codec knows.
    fn encode(&self, msg: &Message) -> Option<Bytes>;
    /// The extension `bytes` stand for, for `msg` (its subject, headers and
    /// reply are in place).
    fn decode(&self, bytes: &[u8], msg: &Message) -> Option<herald_core::Extension>;
}

/// The codec a cluster uses, once installed.
pub(crate) type Codec = Arc<std::sync::OnceLock<Arc<dyn ExtensionCodec>>>;

/// Output a route may have waiting before it is closed as a slow consumer
/// (and dialed again).
const MAX_PENDING: usize = 256 << 20;

/// A live, authenticated route.
#[derive(Debug)]
pub(crate) struct Route {
    /// What the peer said of itself.
    pub(crate) info: Info,
    /// Whether this node dialed it.
    pub(crate) dialed: bool,
    /// Its connection id in the broker.
    pub(crate) conn: ConnId,
    pub(crate) outbox: Arc<Outbox>,
    sink: Arc<RouteSink>,
    /// The peer's interests, as route subscriptions in the local broker.
    subs: Mutex<AHashMap<InterestKey, Arc<Subscriber>>>,
    /// Cancelled to close it.
    pub(crate) cancel: CancellationToken,
    /// When it was established.
    pub(crate) since: Instant,
}

impl Route {
    pub(crate) fn new(
        info: Info,
        dialed: bool,
        conn: ConnId,
        cancel: CancellationToken,
        codec: Codec,
    ) -> Self {
        let outbox = Arc::new(Outbox::new(MAX_PENDING, SlowConsumerPolicy::Close));
        Self {
            info,
            dialed,
            conn,
            sink: Arc::new(RouteSink {
                outbox: outbox.clone(),
                codec,
            }),
            outbox,
            subs: Mutex::new(AHashMap::new()),
            cancel,
            since: Instant::now(),
        }
    }

    /// Tells the peer this node gained (`added`) or lost an interest.
    pub(crate) fn announce(&self, key: &InterestKey, added: bool) {
        self.outbox
            .push_control(|b| wire::encode_interest(b, key, added));
    }

    /// How many of the peer's interests this node holds.
    pub(crate) fn interests(&self) -> usize {
        self.subs.lock().len()
    }

    /// The peer gained an interest: subscribe it for the route.
    pub(crate) fn peer_subscribed(&self, broker: &Broker, key: InterestKey) {
        let Some(interest) = interest_of(&key) else {
            tracing::warn!(node = %self.info.node, ?key, "invalid interest from a route");
            return;
        };
        let mut spec = SubscribeSpec::with_interest(interest, self.conn);
        spec.queue = match key.queue.clone().map(QueueName::from_bytes).transpose() {
            Ok(queue) => queue,
            Err(_) => return,
        };
        spec.route = true;
        spec.internal = true;
        let mut subs = self.subs.lock();
        if subs.contains_key(&key) {
            return;
        }
        let sub = broker.subscribe_sink(spec, self.sink.clone());
        subs.insert(key, sub);
    }

    /// The peer lost an interest.
    pub(crate) fn peer_unsubscribed(&self, broker: &Broker, key: &InterestKey) {
        let removed = self.subs.lock().remove(key);
        if let Some(sub) = removed {
            broker.remove_subscriber(&sub);
        }
    }

    /// Removes every route subscription (the route closed).
    pub(crate) fn clear(&self, broker: &Broker) {
        let subs: Vec<_> = self.subs.lock().drain().map(|(_, sub)| sub).collect();
        for sub in subs {
            broker.remove_subscriber(&sub);
        }
    }
}

/// The interest key a local subscription is announced as.
pub(crate) fn key_of(interest: &Interest, queue: Option<&QueueName>) -> InterestKey {
    let (kind, name) = match interest {
        Interest::Pattern(p) => (Kind::Pattern, p.to_bytes()),
        Interest::Channel(c) => (Kind::Channel, c.clone()),
        Interest::Glob(g) => (Kind::Glob, g.clone()),
        Interest::Shard(s) => (Kind::Shard, s.clone()),
    };
    InterestKey {
        kind,
        name,
        queue: queue.map(QueueName::to_bytes),
    }
}

fn interest_of(key: &InterestKey) -> Option<Interest> {
    Some(match key.kind {
        Kind::Pattern => Interest::Pattern(Pattern::from_bytes(key.name.clone()).ok()?),
        Kind::Channel => Interest::Channel(key.name.clone()),
        Kind::Glob => Interest::Glob(key.name.clone()),
        Kind::Shard => Interest::Shard(key.name.clone()),
    })
}

/// Encodes deliveries to a route as `MSG` frames.
struct RouteSink {
    outbox: Arc<Outbox>,
    codec: Codec,
}

impl std::fmt::Debug for RouteSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteSink").finish_non_exhaustive()
    }
}

impl Sink for RouteSink {
    fn deliver(&self, sub: &Subscriber, msg: &Message, ctx: &mut DeliveryCtx) -> Delivery {
        let head = RouteMsg {
            shard: matches!(sub.interest(), Interest::Shard(_)),
            subject: msg.subject.to_bytes(),
            reply: msg.reply.as_ref().map(Subject::to_bytes),
            queue: sub.queue().map(QueueName::to_bytes),
            on: ctx.delivered_on().map(Subject::to_bytes),
            headers: msg.headers.as_ref().map(|h| h.raw().clone()),
            requester: requester_of(msg),
            ext: msg
                .extension
                .as_ref()
                .and_then(|_| self.codec.get()?.encode(msg)),
            payload: Bytes::new(),
        };
        let size = 64
            + head.subject.len()
            + head.reply.as_ref().map_or(0, Bytes::len)
            + head.on.as_ref().map_or(0, Bytes::len)
            + head.headers.as_ref().map_or(0, Bytes::len)
            + head.requester.as_ref().map_or(0, Bytes::len)
            + head.ext.as_ref().map_or(0, Bytes::len)
            + msg.payload.len();
        self.outbox.push_message(ctx, size, |w| {
            wire::encode_msg_head(w.buf(), &head, msg.payload.len());
            w.put_payload(&msg.payload);
        })
    }
}

/// The permissions a request was stamped with, as JSON, so the node that
/// answers it checks the same user (an unstamped request is the server's
/// own and unrestricted).
fn requester_of(msg: &Message) -> Option<Bytes> {
    msg.extension.as_ref()?;
    let requester = Requester::of(msg);
    let permissions = requester.permissions()?;
    serde_json::to_vec(permissions.as_ref())
        .ok()
        .map(Bytes::from)
}

/// A message from a route, as the local broker delivers it, and the
/// subject to match it on when that is not its own.
pub(crate) fn message_of(msg: RouteMsg, codec: &Codec) -> (Message, Option<Subject>) {
    let on = msg.on.map(Subject::from_wire_unchecked);
    let ext = msg.ext;
    let mut out = Message::new(Subject::from_wire_unchecked(msg.subject), msg.payload);
    out.reply = msg.reply.map(Subject::from_wire_unchecked);
    out.headers = msg.headers.map(Headers::from_raw_unchecked);
    if let Some(json) = msg.requester {
        // A request whose stamp cannot be read is refused everything.
        let permissions =
            serde_json::from_slice(&json).unwrap_or_else(|_| herald_core::Permissions::nothing());
        out = Requester::new(Some(Arc::new(permissions))).stamp(out);
    } else if let Some(ext) = ext
        && let Some(extension) = codec.get().and_then(|c| c.decode(&ext, &out))
    {
        // (A stamped request is a `$JS.` message: it has no other extension.)
        out = out.with_extension(extension);
    }
    (out, on)
}

/// Writes the route's outbox to the socket until it closes or fails; then
/// cancels the route.
pub(crate) async fn write(route: Arc<Route>, mut socket: WriteHalf<crate::cluster::RouteStream>) {
    let mut batch = OutboxBatch::new();
    while route.outbox.next_batch(&mut batch).await.is_ok() {
        let slices = batch.slices();
        let mut iov: Vec<IoSlice<'_>> = slices.iter().map(|s| IoSlice::new(s)).collect();
        let mut rest = &mut iov[..];
        let mut failed = false;
        while !rest.is_empty() {
            match socket.write_vectored(rest).await {
                Ok(0) | Err(_) => {
                    failed = true;
                    break;
                }
                Ok(n) => {
                    route.outbox.wrote(n);
                    IoSlice::advance_slices(&mut rest, n);
                }
            }
        }
        if failed {
            break;
        }
        batch.clear();
    }
    let _ = socket.shutdown().await;
    route.cancel.cancel();
}

/// A frame for the peer, written now (before the route's writer runs).
pub(crate) fn frame_bytes(frame: &wire::Frame) -> BytesMut {
    let mut buf = BytesMut::new();
    wire::encode_control(&mut buf, frame);
    buf
}
