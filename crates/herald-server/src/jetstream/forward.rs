//! In a cluster, the JetStream API answers for every stream wherever it is
//! held: a request about a stream this node does not hold is asked of the
//! peers (`herald_cluster::Cluster::ask_peers`) and the holder's answer
//! returned; stream lists merge every node's. The [`Responder`] is this
//! node's side of it: it answers what peers ask about streams held here.

use std::sync::Arc;

use herald_cluster::{ApiFuture, ApiReply, ApiRequest, Cluster};
use herald_core::{Message, Requester};
use herald_store::Store;
use serde_json::{Value, json};

use super::handlers::{self, Reply};

/// What a request is about.
enum Scope<'a> {
    /// One stream (its consumers and messages included).
    Stream(&'a str),
    /// Every stream: `STREAM.NAMES` or `STREAM.LIST`.
    List { kind: &'static str, limit: usize },
    /// This node only (account info).
    Node,
}

fn scope(subject: &str) -> Scope<'_> {
    let Some(api) = subject.strip_prefix("$JS.API.") else {
        return Scope::Node;
    };
    let tokens: Vec<&str> = api.split('.').collect();
    match tokens.as_slice() {
        ["STREAM", "NAMES"] => Scope::List {
            kind: "stream_names_response",
            limit: handlers::NAMES_LIMIT,
        },
        ["STREAM", "LIST"] => Scope::List {
            kind: "stream_list_response",
            limit: handlers::LIST_LIMIT,
        },
        [
            "STREAM",
            "CREATE" | "UPDATE" | "INFO" | "DELETE" | "PURGE",
            name,
        ]
        | ["STREAM", "MSG", "GET" | "DELETE", name]
        | ["CONSUMER", "DURABLE", "CREATE", name, ..]
        | [
            "CONSUMER",
            "CREATE" | "INFO" | "DELETE" | "NAMES" | "LIST",
            name,
            ..,
        ]
        | ["DIRECT", "GET", name, ..] => Scope::Stream(name),
        _ => Scope::Node,
    }
}

/// The answer to a request this node cannot give alone: a stream held
/// elsewhere (its holder's answer), or a list (merged). `None`: answer here.
pub(super) async fn elsewhere(
    cluster: &Cluster,
    store: &Store,
    subject: &str,
    payload: &bytes::Bytes,
    requester: &Requester,
) -> Option<Reply> {
    let request = |payload: bytes::Bytes| ApiRequest {
        subject: subject.to_owned(),
        payload,
        requester: requester.clone(),
    };
    match scope(subject) {
        Scope::Stream(name) if store.stream(name).is_err() => {
            // A replicated stream's holders would each run the request (a
            // purge, a consumer created once per holder): ask one of them.
            let holders = cluster.replica_nodes(name);
            if holders.is_empty() {
                let answer = cluster.ask_peers(&request(payload.clone())).await;
                answer.into_iter().next().map(reply_of)
            } else {
                let answer = cluster
                    .ask_one_of(&holders, &request(payload.clone()))
                    .await;
                answer.map(reply_of)
            }
        }
        Scope::List { kind, limit } => {
            // Every node's whole list, then this request's page of the union.
            let mut body: Value = serde_json::from_slice(payload).unwrap_or_else(|_| json!({}));
            let offset = body
                .get("offset")
                .and_then(Value::as_u64)
                .and_then(|o| usize::try_from(o).ok())
                .unwrap_or(0);
            if let Value::Object(map) = &mut body {
                map.insert("offset".to_owned(), json!(0));
            }
            let whole = bytes::Bytes::from(serde_json::to_vec(&body).ok()?);
            let local = here(None, store, subject, &whole, requester).await?;
            let peers = cluster.ask_peers(&request(whole)).await;
            Some(merge(kind, limit, offset, local, peers))
        }
        _ => None,
    }
}

/// This node's answer, as it gives it to a client of its own.
pub(super) async fn here(
    cluster: Option<&Cluster>,
    store: &Store,
    subject: &str,
    payload: &bytes::Bytes,
    requester: &Requester,
) -> Option<Reply> {
    if let Some(cluster) = cluster.filter(|c| c.jetstream_clustered())
        && let Some(reply) =
            super::clustered::handle(cluster, store, subject, payload, requester).await
    {
        return Some(reply);
    }
    let (store2, subject2) = (store.clone(), subject.to_owned());
    let (payload2, requester2) = (payload.clone(), requester.clone());
    // Handlers may block briefly on the store (purge, delete, fsync of state
    // files): keep them off the async workers.
    let reply = tokio::task::spawn_blocking(move || {
        handlers::handle(&store2, &subject2, &payload2, &requester2)
    })
    .await;
    match reply {
        Ok(reply) => Some(match cluster {
            Some(cluster) => super::clustered::annotate(cluster, subject, reply),
            None => reply,
        }),
        Err(e) => {
            tracing::error!("JetStream API handler failed: {e}");
            None
        }
    }
}

fn reply_of(answer: ApiReply) -> Reply {
    match answer.headers {
        Some(headers) => {
            let mut msg = Message::new(
                herald_core::Subject::from_wire_unchecked(bytes::Bytes::from_static(b"_")),
                answer.payload,
            );
            msg.headers = Some(headers);
            Reply::Message(msg)
        }
        None => Reply::Json(answer.payload.to_vec()),
    }
}

/// The union of every node's list (a replicated stream once), by name, and
/// the page of it the request asked for.
fn merge(
    kind: &'static str,
    limit: usize,
    offset: usize,
    local: Reply,
    peers: Vec<ApiReply>,
) -> Reply {
    let Reply::Json(body) = &local else {
        return local;
    };
    let Ok(mine) = serde_json::from_slice::<Value>(body) else {
        return local;
    };
    if mine.get("error").is_some() {
        return local;
    }
    let theirs = peers
        .iter()
        .filter_map(|p| serde_json::from_slice::<Value>(&p.payload).ok());
    let mut streams: std::collections::BTreeMap<String, Value> = Default::default();
    for answer in std::iter::once(mine).chain(theirs) {
        let Some(Value::Array(items)) = answer.get("streams").cloned() else {
            continue;
        };
        for item in items {
            let key = match &item {
                Value::String(name) => name.clone(),
                other => other["config"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            };
            streams.entry(key).or_insert(item);
        }
    }
    let total = streams.len();
    let page: Vec<Value> = streams.into_values().skip(offset).take(limit).collect();
    handlers::json_reply(
        kind,
        Ok(json!({"total": total, "offset": offset, "limit": limit, "streams": page})),
    )
}

/// Answers peers' requests about streams held here.
#[derive(Debug)]
pub(super) struct Responder {
    pub(super) store: Store,
    pub(super) cluster: Cluster,
}

impl herald_cluster::ApiResponder for Responder {
    fn answer(&self, request: ApiRequest) -> ApiFuture {
        let (store, cluster) = (self.store.clone(), self.cluster.clone());
        Box::pin(async move {
            let ours = match scope(&request.subject) {
                Scope::Stream(name) => store.stream(name).is_ok(),
                Scope::List { .. } => true,
                Scope::Node => false,
            };
            if !ours {
                return None;
            }
            let reply = here(
                Some(&cluster),
                &store,
                &request.subject,
                &request.payload,
                &request.requester,
            )
            .await?;
            Some(match reply {
                Reply::Json(body) => ApiReply {
                    headers: None,
                    payload: body.into(),
                },
                Reply::Message(msg) => ApiReply {
                    // A direct get's answer always has headers (its status, or the
                    // message's own plus `Nats-Stream` and friends).
                    headers: Some(
                        msg.headers
                            .unwrap_or_else(|| herald_core::Headers::builder().build()),
                    ),
                    payload: msg.payload,
                },
            })
        })
    }
}

/// Installs this node's responder on `cluster`.
pub(super) fn respond(cluster: &Cluster, store: &Store) {
    let responder = Responder {
        store: store.clone(),
        cluster: cluster.clone(),
    };
    cluster.set_api_responder(Arc::new(responder));
}
