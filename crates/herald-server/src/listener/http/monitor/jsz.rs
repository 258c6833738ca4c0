//! `/jsz`: JetStream's numbers, and with `streams=1` / `consumers=1` /
//! `config=1` each stream's and consumer's detail, in nats-server's shape
//! (one account, `$G`, as a server without accounts reports).

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{BadQuery, Web, flag_param, now, paging, time};

pub(super) fn page(web: &Web, query: &HashMap<String, String>) -> Result<Value, BadQuery> {
    let shared = &web.shared;
    let store = &shared.store;
    let (offset, limit) = paging(query)?;
    let config = flag_param(query, "config")?;
    let consumers = flag_param(query, "consumers")?;
    let streams = flag_param(query, "streams")? || consumers;
    let account = query.get("acc").filter(|a| !a.is_empty());
    let accounts = flag_param(query, "accounts")? || streams || account.is_some();
    for flag in ["leader-only", "raft", "stream-leader-only"] {
        flag_param(query, flag)?;
    }
    let usage = store.usage();
    let mut stream_details = Vec::new();
    let (mut messages, mut bytes) = (0u64, 0u64);
    for name in store.stream_names(None) {
        let Ok(info) = store.stream_info(&name) else {
            continue;
        };
        messages += info.state.messages;
        bytes += info.state.bytes;
        if !streams {
            continue;
        }
        let mut detail = json!({
            "name": name,
            "created": info.created,
            "cluster": {"leader": shared.server_id},
            "state": info.state,
        });
        if config {
            detail["config"] = serde_json::to_value(&info.config).unwrap_or_default();
        }
        if consumers {
            let mut list = Vec::new();
            for consumer in store.consumer_names(&name).unwrap_or_default() {
                if let Ok(c) = store.consumer(&name, &consumer) {
                    let mut info = serde_json::to_value(c.info()).unwrap_or_default();
                    if !config && let Some(map) = info.as_object_mut() {
                        map.remove("config");
                    }
                    list.push(info);
                }
            }
            if !list.is_empty() {
                detail["consumer_detail"] = Value::from(list);
            }
        }
        stream_details.push(detail);
    }
    let api = json!({"level": 1, "total": 0, "errors": 0});
    let mut value = json!({
        "server_id": shared.server_id,
        "now": time(now()),
        "config": super::jetstream_config(),
        "memory": usage.memory,
        "storage": usage.storage,
        "reserved_memory": 0,
        "reserved_storage": 0,
        "accounts": 1,
        "ha_assets": 0,
        "api": api,
        "streams": usage.streams,
        "consumers": usage.consumers,
        "messages": messages,
        "bytes": bytes,
        "total": 1,
    });
    let wanted = account.is_none_or(|a| a == "$G");
    if accounts && wanted && offset == 0 && limit > 0 {
        let mut detail = json!({
            "name": "$G",
            "id": "$G",
            "memory": usage.memory,
            "storage": usage.storage,
            "reserved_memory": u64::MAX,
            "reserved_storage": u64::MAX,
            "accounts": 0,
            "ha_assets": 0,
            "api": {"level": 0, "total": 0, "errors": 0},
        });
        if !stream_details.is_empty() {
            detail["stream_detail"] = Value::from(stream_details);
        }
        value["account_details"] = Value::from(vec![detail]);
    }
    Ok(value)
}
