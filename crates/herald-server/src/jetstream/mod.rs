//! The JetStream API on the NATS side: requests on `$JS.API.…` subjects,
//! answered with JSON (or, for direct gets, with the message itself).
//!
//! Requests are queued by a broker subscription and answered by one task in
//! arrival order. Pull requests (`CONSUMER.MSG.NEXT`), acks and flow-control
//! replies are not handled here: each consumer subscribes its own subjects
//! in `herald-store`, so a request to a consumer that does not exist gets
//! the no-responders status, as clients expect.

mod handlers;

use std::sync::Arc;

use bytes::Bytes;
use herald_core::{
    Broker, DeliveryCtx, Message, Pattern, Sink, Subject, SubscribeSpec, Subscriber,
};
use herald_store::Store;
use tokio::sync::mpsc;

/// API subjects the handler answers (`MSG.NEXT` deliberately absent).
const API_PATTERNS: &[&str] = &[
    "$JS.API.INFO",
    "$JS.API.STREAM.>",
    "$JS.API.CONSUMER.CREATE.>",
    "$JS.API.CONSUMER.DURABLE.CREATE.>",
    "$JS.API.CONSUMER.INFO.>",
    "$JS.API.CONSUMER.DELETE.>",
    "$JS.API.CONSUMER.NAMES.>",
    "$JS.API.CONSUMER.LIST.>",
    "$JS.API.DIRECT.GET.>",
];

/// One API request.
#[derive(Debug)]
struct Request {
    subject: String,
    reply: Subject,
    payload: Bytes,
}

/// Subscribes the API subjects and starts the task that answers them. The
/// task ends when the broker drops the subscriptions.
pub fn start(store: Store) {
    let broker = store.broker().clone();
    let (tx, rx) = mpsc::unbounded_channel();
    let conn = broker.new_conn_id();
    for pattern in API_PATTERNS.iter().filter_map(|p| Pattern::new(p).ok()) {
        let spec = SubscribeSpec::internal(pattern, conn);
        broker.subscribe_sink(spec, Arc::new(ApiSink { tx: tx.clone() }));
    }
    tokio::spawn(serve(store, broker, rx));
}

async fn serve(store: Store, broker: Broker, mut rx: mpsc::UnboundedReceiver<Request>) {
    while let Some(request) = rx.recv().await {
        let store = store.clone();
        // Handlers may block briefly on the store (purge, delete, fsync of
        // state files): keep them off the async workers.
        let reply = tokio::task::spawn_blocking(move || {
            handlers::handle(&store, &request.subject, &request.payload)
        })
        .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => {
                tracing::error!("JetStream API handler failed: {e}");
                continue;
            }
        };
        let msg = match reply {
            handlers::Reply::Json(body) => Message::new(request.reply, body),
            handlers::Reply::Message(mut msg) => {
                msg.subject = request.reply;
                msg
            }
        };
        broker.publish_message(&msg);
    }
}

struct ApiSink {
    tx: mpsc::UnboundedSender<Request>,
}

impl Sink for ApiSink {
    fn deliver(
        &self,
        _sub: &Subscriber,
        msg: &Message,
        _ctx: &mut DeliveryCtx,
    ) -> herald_core::Delivery {
        // Requests without a reply subject are ignored, as nats-server does.
        let Some(reply) = &msg.reply else {
            return herald_core::Delivery::Delivered;
        };
        let request = Request {
            subject: msg.subject.to_string(),
            reply: Subject::from_wire_unchecked(Bytes::copy_from_slice(reply.as_bytes())),
            payload: Bytes::copy_from_slice(&msg.payload),
        };
        match self.tx.send(request) {
            Ok(()) => herald_core::Delivery::Delivered,
            Err(_) => herald_core::Delivery::Closed,
        }
    }
}
