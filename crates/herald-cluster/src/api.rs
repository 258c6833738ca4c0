//! JetStream API requests answered by the node that holds the stream.
//!
//! Every node answers the JetStream API for the streams it holds. A request
//! about a stream held elsewhere (one replica on another node, or a
//! replicated stream placed on other nodes) is asked of the peers: each is
//! sent it as an `RPC` in the `$API` group, a node holding the stream
//! answers it as if asked directly (the asker's permissions travel with it),
//! the others say it is not theirs. Lists (`STREAM.NAMES`, `STREAM.LIST`)
//! ask every peer and merge. What to ask and how to merge is the server's
//! (its [`ApiResponder`]); this module carries the requests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_core::{Headers, Requester};
use serde::{Deserialize, Serialize};

use crate::cluster::{Cluster, Inner};

/// The `RPC` group of forwarded API requests.
pub(crate) const API_GROUP: &str = "$API";

/// How long a peer has to answer.
const PATIENCE: Duration = Duration::from_secs(3);

/// A JetStream API request as the asking node received it.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// Its subject (`$JS.API.…`).
    pub subject: String,
    /// Its body.
    pub payload: Bytes,
    /// Who asked (what they may read is checked where it is answered).
    pub requester: Requester,
}

/// A node's answer: the reply message's headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiReply {
    /// Headers (a direct get's), if any.
    pub headers: Option<Headers>,
    /// The body (JSON, or a message's payload).
    pub payload: Bytes,
}

/// What an [`ApiResponder`] returns: `None` when the request is not this node's to answer.
pub type ApiFuture = Pin<Box<dyn Future<Output = Option<ApiReply>> + Send>>;

/// Answers API requests forwarded by peers (the server's JetStream API).
pub trait ApiResponder: Send + Sync + std::fmt::Debug {
    /// The answer to `request`, if this node holds what it is about.
    fn answer(&self, request: ApiRequest) -> ApiFuture;
}

#[derive(Serialize, Deserialize)]
struct WireRequest {
    subject: String,
    payload: Bytes,
    /// The asker's permissions as JSON; none: unrestricted.
    permissions: Option<Bytes>,
}

#[derive(Serialize, Deserialize)]
struct WireReply {
    headers: Option<Bytes>,
    payload: Bytes,
}

impl Cluster {
    /// Installs the one responder for requests peers forward; false if one was installed.
    pub fn set_api_responder(&self, responder: Arc<dyn ApiResponder>) -> bool {
        self.inner().api.set(responder).is_ok()
    }

    /// Asks every peer `request`; the answers of those it is about.
    pub async fn ask_peers(&self, request: &ApiRequest) -> Vec<ApiReply> {
        let Some(body) = wire_request(request) else {
            return Vec::new();
        };
        let nodes = self.inner().route_nodes();
        let asks = nodes.iter().map(|node| self.ask(node, body.clone()));
        futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Asks `nodes` in turn until one answers `request` (a replicated
    /// stream's request must run once, not on every holder); its answer.
    pub async fn ask_one_of(&self, nodes: &[String], request: &ApiRequest) -> Option<ApiReply> {
        let body = wire_request(request)?;
        let me = self.node();
        for node in nodes.iter().filter(|n| n.as_str() != me) {
            if let Some(reply) = self.ask(node, body.clone()).await {
                return Some(reply);
            }
        }
        None
    }

    async fn ask(&self, node: &str, body: Bytes) -> Option<ApiReply> {
        let inner = self.inner();
        let answer = inner
            .rpcs
            .call(inner, node, API_GROUP, 0, body, PATIENCE)
            .await
            .ok()?;
        let reply: Option<WireReply> = postcard::from_bytes(&answer).ok()?;
        reply.map(|r| ApiReply {
            headers: r.headers.map(Headers::from_raw_unchecked),
            payload: r.payload,
        })
    }
}

/// `request` as it crosses a route.
fn wire_request(request: &ApiRequest) -> Option<Bytes> {
    let permissions = request
        .requester
        .permissions()
        .and_then(|p| serde_json::to_vec(p.as_ref()).ok())
        .map(Bytes::from);
    let wire = WireRequest {
        subject: request.subject.clone(),
        payload: request.payload.clone(),
        permissions,
    };
    postcard::to_stdvec(&wire).ok().map(Bytes::from)
}

/// Answers a peer's forwarded request (an `RPC` of the `$API` group).
pub(crate) async fn answer(inner: &Inner, body: &[u8]) -> Result<Bytes, String> {
    let responder = inner
        .api
        .get()
        .cloned()
        .ok_or("this node answers no JetStream API")?;
    let wire: WireRequest = postcard::from_bytes(body).map_err(|e| format!("bad request: {e}"))?;
    let requester = match wire.permissions {
        // A stamp that cannot be read is refused everything.
        Some(json) => Requester::new(Some(Arc::new(
            serde_json::from_slice(&json).unwrap_or_else(|_| herald_core::Permissions::nothing()),
        ))),
        None => Requester::new(None),
    };
    let request = ApiRequest {
        subject: wire.subject,
        payload: wire.payload,
        requester,
    };
    let reply = responder.answer(request).await.map(|r| WireReply {
        headers: r.headers.map(|h| h.raw().clone()),
        payload: r.payload,
    });
    postcard::to_stdvec(&reply)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}
