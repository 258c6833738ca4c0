//! The JetStream API on the NATS side: requests on `$JS.API.…` subjects,
//! answered with JSON (or, for direct gets, with the message itself).
//!
//! Requests are queued by a broker subscription and answered by one task in
//! arrival order. Pull requests (`CONSUMER.MSG.NEXT`), acks and flow-control
//! replies are not handled here: each consumer subscribes its own subjects
//! in `herald-store`, so a request to a consumer that does not exist gets
//! the no-responders status, as clients expect.

mod clustered;
mod forward;
mod handlers;

use std::sync::Arc;

use bytes::Bytes;
use herald_core::{
    Broker, DeliveryCtx, Message, Pattern, Requester, Sink, Subject, SubscribeSpec, Subscriber,
};
use herald_store::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
    /// Who asked: reads of stored messages are checked against it.
    requester: Requester,
}

/// Requests waiting for the handler, at most; past it a request is dropped
/// (and counted), as a slow consumer's message is: the client times out.
const QUEUED_REQUESTS: usize = 4096;

/// Subscribes the API subjects and starts, on `tracker`, the task that
/// answers them; it ends with `shutdown`.
/// With a `cluster`, replicated streams are created and deleted through it.
pub fn start(
    store: Store,
    cluster: Option<herald_cluster::Cluster>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) {
    let broker = store.broker().clone();
    let (tx, rx) = mpsc::channel(QUEUED_REQUESTS);
    let conn = broker.new_conn_id();
    for pattern in API_PATTERNS.iter().filter_map(|p| Pattern::new(p).ok()) {
        let mut spec = SubscribeSpec::internal(pattern, conn);
        // Every node of a cluster answers its own API requests.
        spec.node_local = true;
        broker.subscribe_sink(spec, Arc::new(ApiSink { tx: tx.clone() }));
    }
    if let Some(cluster) = &cluster {
        forward::respond(cluster, &store);
    }
    tracker.spawn(serve(store, cluster, broker, rx, shutdown));
}

async fn serve(
    store: Store,
    cluster: Option<herald_cluster::Cluster>,
    broker: Broker,
    mut rx: mpsc::Receiver<Request>,
    shutdown: CancellationToken,
) {
    loop {
        let request = tokio::select! {
            () = shutdown.cancelled() => return,
            request = rx.recv() => match request {
                Some(request) => request,
                None => return,
            },
        };
        let (subject, payload) = (&request.subject, &request.payload);
        let elsewhere = match &cluster {
            Some(cluster) => {
                forward::elsewhere(cluster, &store, subject, payload, &request.requester).await
            }
            None => None,
        };
        let reply = match elsewhere {
            Some(reply) => reply,
            None => {
                match forward::here(
                    cluster.as_ref(),
                    &store,
                    subject,
                    payload,
                    &request.requester,
                )
                .await
                {
                    Some(reply) => reply,
                    None => continue,
                }
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
    tx: mpsc::Sender<Request>,
}

impl Sink for ApiSink {
    fn deliver(
        &self,
        _sub: &Subscriber,
        msg: &Message,
        _ctx: &mut DeliveryCtx,
    ) -> herald_core::Delivery {
        // Requests without a reply subject are ignored, as nats-server does;
        // so is what only looks like one (a consumer's delivery keeps its
        // own subject, whatever subject it was sent to), and a request whose
        // answer would be a JetStream request itself.
        let Some(reply) = &msg.reply else {
            return herald_core::Delivery::Delivered;
        };
        if !msg.subject.as_bytes().starts_with(b"$JS.API.") || Requester::is_request_subject(reply)
        {
            return herald_core::Delivery::Delivered;
        }
        let request = Request {
            subject: msg.subject.to_string(),
            reply: reply.detached(),
            payload: Bytes::copy_from_slice(&msg.payload),
            requester: Requester::of(msg),
        };
        match self.tx.try_send(request) {
            Ok(()) => herald_core::Delivery::Delivered,
            Err(mpsc::error::TrySendError::Full(_)) => herald_core::Delivery::Dropped,
            Err(mpsc::error::TrySendError::Closed(_)) => herald_core::Delivery::Closed,
        }
    }
}
