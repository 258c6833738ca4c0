//! The JetStream API requests a cluster decides: creating and deleting a
//! replicated stream go through the meta group; a replicated stream's info
//! carries JetStream's `cluster` object. Everything else about a replicated
//! stream is answered by the node asked, from its replica.

use herald_cluster::Cluster;
use herald_store::{ApiError, PurgeRequest, Store, StreamConfig};
use serde_json::{Value, json};

use super::handlers::{self, Reply};

/// Answers `subject` if it is the cluster's to answer; `None` otherwise.
pub(super) async fn handle(
    cluster: &Cluster,
    store: &Store,
    subject: &str,
    payload: &[u8],
) -> Option<Reply> {
    let api = subject.strip_prefix("$JS.API.")?;
    let tokens: Vec<&str> = api.split('.').collect();
    match tokens.as_slice() {
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
            let error = ApiError::new(
                500,
                10011,
                "herald does not yet update a replicated stream's configuration",
            );
            Some(handlers::json_reply("stream_update_response", Err(error)))
        }
        _ => None,
    }
}

async fn create(
    cluster: &Cluster,
    store: &Store,
    config: &mut StreamConfig,
) -> Result<Value, ApiError> {
    config.normalize()?;
    // Consumers are not in the stream's group yet: their acks would remove
    // messages on one replica only. A memory stream keeps no applied mark.
    if config.retention != herald_store::Retention::Limits {
        return Err(ApiError::new(
            500,
            10011,
            "herald does not yet replicate work-queue or interest streams (num_replicas 1 does)",
        ));
    }
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
