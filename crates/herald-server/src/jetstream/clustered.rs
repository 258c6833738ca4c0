//! The JetStream API requests a cluster decides: creating and deleting a
//! replicated stream go through the meta group; purges, message deletes and
//! consumer creates and deletes through the stream's group; a replicated
//! stream's info carries JetStream's `cluster` object. Everything else about
//! a replicated stream (info, message gets, consumer info and lists) is
//! answered by the node asked, from its replica.

use herald_cluster::Cluster;
use herald_core::Requester;
use herald_store::{ApiError, PurgeRequest, Store, StreamConfig};
use serde_json::{Value, json};

use super::handlers::{self, ConsumerCreateForm, Reply};

/// Answers `subject` if it is the cluster's to answer; `None` otherwise.
pub(super) async fn handle(
    cluster: &Cluster,
    store: &Store,
    subject: &str,
    payload: &[u8],
    requester: &Requester,
) -> Option<Reply> {
    let api = subject.strip_prefix("$JS.API.")?;
    let tokens: Vec<&str> = api.split('.').collect();
    if let Some(form) = handlers::consumer_create_form(&tokens)
        && cluster.is_replicated(form.stream)
    {
        let result = create_consumer(cluster, store, requester, &form, payload).await;
        return Some(handlers::json_reply("consumer_create_response", result));
    }
    match tokens.as_slice() {
        ["CONSUMER", "DELETE", stream, name] if cluster.is_replicated(stream) => {
            let result = cluster.delete_consumer(stream, name).await;
            Some(handlers::json_reply("consumer_delete_response", result))
        }
        ["STREAM", "CREATE", name] => {
            let mut config = handlers::parse_stream_config(name, payload).ok()?;
            if config.num_replicas <= 1 {
                return None;
            }
            let result = create(cluster, store, &mut config).await;
            Some(handlers::json_reply("stream_create_response", result))
        }
        ["STREAM", "DELETE", name] if cluster.is_replicated(name) => {
            let result = cluster
                .delete_stream(name)
                .await
                .map(|()| json!({"success": true}));
            Some(handlers::json_reply("stream_delete_response", result))
        }
        ["STREAM", "PURGE", name] if cluster.is_replicated(name) => {
            let result = match handlers::parse_optional::<PurgeRequest>(payload) {
                Ok(request) => cluster.purge_stream(name, &request).await,
                Err(e) => Err(e),
            };
            Some(handlers::json_reply("stream_purge_response", result))
        }
        ["STREAM", "MSG", "DELETE", name] if cluster.is_replicated(name) => {
            let result = match serde_json::from_slice::<handlers::DeleteRequest>(payload) {
                Ok(request) => cluster.delete_message(name, request.seq).await,
                Err(e) => Err(ApiError::invalid_json(e)),
            };
            Some(handlers::json_reply("stream_msg_delete_response", result))
        }
        ["STREAM", "UPDATE", name] if cluster.is_replicated(name) => {
            let result = match handlers::parse_stream_config(name, payload) {
                Ok(config) => match store.check_replicated_update(config) {
                    Ok(config) => cluster.update_stream(&config).await.map(|mut info| {
                        if let Some(object) = cluster.stream_cluster(name) {
                            info["cluster"] = object;
                        }
                        info
                    }),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            Some(handlers::json_reply("stream_update_response", result))
        }
        _ => None,
    }
}

/// A consumer of a replicated stream: checked here as a single node
/// checks it, then created on every replica through the stream's group.
async fn create_consumer(
    cluster: &Cluster,
    store: &Store,
    requester: &Requester,
    form: &ConsumerCreateForm<'_>,
    payload: &[u8],
) -> Result<Value, ApiError> {
    let (config, action) = handlers::consumer_create_request(store, requester, form, payload)?;
    let name = config
        .name
        .clone()
        .or_else(|| config.durable_name.clone())
        .or_else(|| form.name.map(str::to_owned))
        .unwrap_or_else(herald_store::generate_name);
    cluster
        .create_consumer(form.stream, &name, &config, action)
        .await
}

async fn create(
    cluster: &Cluster,
    store: &Store,
    config: &mut StreamConfig,
) -> Result<Value, ApiError> {
    config.normalize()?;
    // A memory stream keeps no applied mark.
    if config.storage == herald_store::StorageType::Memory {
        return Err(ApiError::new(
            500,
            10011,
            "herald replicates file streams only (num_replicas 1 for memory storage)",
        ));
    }
    let existed = store.stream(&config.name).is_ok();
    cluster.create_stream(config).await?;
    let mut value = serde_json::to_value(store.stream_info(&config.name)?)
        .map_err(|e| ApiError::new(500, 10003, e.to_string()))?;
    if !existed {
        value["did_create"] = Value::Bool(true);
    }
    if let Some(object) = cluster.stream_cluster(&config.name) {
        value["cluster"] = object;
    }
    Ok(value)
}

/// Adds the `cluster` object to a stream info or create answer about a
/// replicated stream.
pub(super) fn annotate(cluster: &Cluster, subject: &str, reply: Reply) -> Reply {
    let name = subject
        .strip_prefix("$JS.API.STREAM.INFO.")
        .or_else(|| subject.strip_prefix("$JS.API.STREAM.CREATE."));
    let (Some(name), Reply::Json(body)) = (name, &reply) else {
        return reply;
    };
    let Some(object) = cluster.stream_cluster(name) else {
        return reply;
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return reply;
    };
    if value.get("error").is_some() {
        return reply;
    }
    value["cluster"] = object;
    serde_json::to_vec(&value).map_or(reply, Reply::Json)
}
