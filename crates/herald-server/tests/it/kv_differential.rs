//! Differential test of Key-Value, Object Store and per-message TTL: one
//! script of unmodified async-nats `kv` / `object_store` / `jetstream` calls
//! runs against the newest nats-server and against herald, and what a
//! client observes must be the same line for line (revisions, operations,
//! refusals, stream state and stored headers; not times or nuids).

use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store, stream};
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::AsyncReadExt;

use crate::common::TestServer;
use crate::common::reference::nats_server_jetstream;
use crate::jetstream_differential::{
    Transcript, assert_same, create_stream, publish, state_line, stored_line, stream_info_line,
};

/// How long an expiry may take before the script notes what it sees anyway
/// (the transcripts then differ and the test fails with a diff).
const PATIENCE: Duration = Duration::from_secs(15);

fn entry_line(e: &kv::Entry) -> String {
    format!(
        "{} rev={} op={:?} {:?}",
        e.key,
        e.revision,
        e.operation,
        String::from_utf8_lossy(&e.value)
    )
}

async fn note_stream(t: &mut Transcript, js: &jetstream::Context, name: &str) {
    match js.get_stream(name).await {
        Ok(mut s) => match s.info().await {
            Ok(info) => t.note(format!(
                "stream {} ttl={} markers={:?}",
                stream_info_line(info),
                info.config.allow_message_ttl,
                info.config.subject_delete_marker_ttl
            )),
            Err(e) => t.note(format!("stream {name} info -> error: {e}")),
        },
        Err(e) => t.note(format!("stream {name} -> error: {e}")),
    }
}

async fn key_value(t: &mut Transcript, js: &jetstream::Context) {
    let kv = match js
        .create_key_value(kv::Config {
            bucket: "cfg".into(),
            history: 3,
            ..Default::default()
        })
        .await
    {
        Ok(kv) => kv,
        Err(e) => return t.note(format!("create bucket -> error: {e}")),
    };
    for (key, value) in [("a", "1"), ("a", "2"), ("b", "1"), ("c", "1")] {
        let put = kv.put(key, Bytes::from(value)).await;
        t.outcome(&format!("put {key}={value}"), put, |rev| {
            format!("rev {rev}")
        });
    }
    let got = kv.entry("a").await;
    t.outcome("entry a", got, |e| {
        format!("{:?}", e.as_ref().map(entry_line))
    });
    let got = kv.entry_for_revision("a", 1).await;
    t.outcome("entry a@1", got, |e| {
        format!("{:?}", e.as_ref().map(entry_line))
    });
    let got = kv.entry_for_revision("a", 3).await;
    t.outcome("entry a@3 (b's)", got, |e| {
        format!("{:?}", e.as_ref().map(entry_line))
    });
    let stale = kv.update("a", Bytes::from("x"), 1).await;
    t.outcome("update a from rev 1", stale, |rev| format!("rev {rev}"));
    let fresh = kv.update("a", Bytes::from("3"), 2).await;
    t.outcome("update a from rev 2", fresh, |rev| format!("rev {rev}"));
    let again = kv.create("b", Bytes::from("x")).await;
    t.outcome("create b", again, |rev| format!("rev {rev}"));
    t.outcome("delete b", kv.delete("b").await, |()| "ok".into());
    let created = kv.create("b", Bytes::from("2")).await;
    t.outcome("create b over its delete", created, |rev| {
        format!("rev {rev}")
    });
    for i in 0..4 {
        let put = kv.put("c", Bytes::from(format!("v{i}"))).await;
        t.outcome(&format!("put c=v{i}"), put, |rev| format!("rev {rev}"));
    }
    t.outcome("purge a", kv.purge("a").await, |()| "ok".into());
    for key in ["a", "b", "c"] {
        match kv.history(key).await {
            Ok(h) => {
                let lines: Vec<String> = h
                    .map(|e| e.map_or_else(|e| format!("error {e}"), |e| entry_line(&e)))
                    .collect()
                    .await;
                t.note(format!("history {key}: {lines:?}"));
            }
            Err(e) => t.note(format!("history {key} -> error: {e}")),
        }
    }
    match kv.keys().await {
        Ok(keys) => {
            let mut keys: Vec<String> = keys.filter_map(|k| async { k.ok() }).collect().await;
            keys.sort();
            t.note(format!("keys {keys:?}"));
        }
        Err(e) => t.note(format!("keys -> error: {e}")),
    }
    match kv.watch_with_history(">").await {
        Ok(mut w) => {
            let mut seen = Vec::new();
            while let Ok(Some(Ok(e))) = tokio::time::timeout(PATIENCE, w.next()).await {
                let current = e.seen_current;
                seen.push(format!(
                    "{} delta={} current={current}",
                    entry_line(&e),
                    e.delta
                ));
                if current {
                    break;
                }
            }
            t.note(format!("watch with history: {seen:?}"));
        }
        Err(e) => t.note(format!("watch -> error: {e}")),
    }
    note_stream(t, js, "KV_cfg").await;
    t.outcome("delete bucket", js.delete_key_value("cfg").await, |_| {
        "ok".into()
    });
}

async fn objects(t: &mut Transcript, js: &jetstream::Context) {
    let store = match js
        .create_object_store(object_store::Config {
            bucket: "files".into(),
            ..Default::default()
        })
        .await
    {
        Ok(s) => s,
        Err(e) => return t.note(format!("create object store -> error: {e}")),
    };
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let put = store.put("one", &mut data.as_slice()).await;
    t.outcome("put one (300 kB)", put, |i| {
        format!("size {} chunks {} digest {:?}", i.size, i.chunks, i.digest)
    });
    let put = store.put("two", &mut &b"small"[..]).await;
    t.outcome("put two", put, |i| {
        format!("size {} chunks {}", i.size, i.chunks)
    });
    let put = store.put("two", &mut &b"replaced"[..]).await;
    t.outcome("put two again", put, |i| {
        format!("size {} chunks {}", i.size, i.chunks)
    });
    match store.get("one").await {
        Ok(mut o) => {
            let mut back = Vec::new();
            let read = o.read_to_end(&mut back).await;
            t.outcome("get one", read, |n| {
                format!("{n} bytes, same {}", back == data)
            });
        }
        Err(e) => t.note(format!("get one -> error: {e}")),
    }
    t.outcome("delete one", store.delete("one").await, |()| "ok".into());
    let gone = store.get("one").await.map(|_| ());
    t.outcome("get one after delete", gone, |()| "found".into());
    match store.list().await {
        Ok(list) => {
            let mut names: Vec<String> = list
                .filter_map(|i| async { i.ok().map(|i| i.name) })
                .collect()
                .await;
            names.sort();
            t.note(format!("list {names:?}"));
        }
        Err(e) => t.note(format!("list -> error: {e}")),
    }
    note_stream(t, js, "OBJ_files").await;
}

/// Polls `stream` until it holds `messages` up to `last`, then notes its state.
async fn after_expiry(
    t: &mut Transcript,
    js: &jetstream::Context,
    name: &str,
    (messages, last): (u64, u64),
) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let state = match js.get_stream(name).await {
            Ok(mut s) => s.info().await.map(|i| i.state.clone()).ok(),
            Err(_) => None,
        };
        if let Some(state) = state
            && ((state.messages, state.last_sequence) == (messages, last)
                || tokio::time::Instant::now() > deadline)
        {
            t.note(format!("{name} after expiry: {}", state_line(&state)));
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn message_ttl(t: &mut Transcript, js: &jetstream::Context) {
    create_stream(
        t,
        js,
        stream::Config {
            name: "NOTTL".into(),
            subjects: vec!["nottl.>".into()],
            ..Default::default()
        },
    )
    .await;
    publish(t, js, "nottl.a", "x", &[("Nats-TTL", "5s")]).await;
    publish(t, js, "nottl.a", "x", &[("Nats-TTL", "500ms")]).await;
    let refused = js
        .create_stream(stream::Config {
            name: "SHORT".into(),
            subject_delete_marker_ttl: Some(Duration::from_millis(500)),
            ..Default::default()
        })
        .await;
    t.outcome("create stream with 500ms markers", refused, |_| "ok".into());
    create_stream(
        t,
        js,
        stream::Config {
            name: "TTL".into(),
            subjects: vec!["ttl.>".into()],
            subject_delete_marker_ttl: Some(Duration::from_secs(2)),
            ..Default::default()
        },
    )
    .await;
    note_stream(t, js, "TTL").await;
    publish(t, js, "ttl.short", "1", &[("Nats-TTL", "1")]).await;
    publish(t, js, "ttl.never", "2", &[("Nats-TTL", "never")]).await;
    publish(t, js, "ttl.plain", "3", &[]).await;
    for bad in ["0", "500ms", "1d", "+5"] {
        publish(t, js, "ttl.bad", "4", &[("Nats-TTL", bad)]).await;
    }
    if let Ok(s) = js.get_stream("TTL").await {
        // Raised to the marker TTL (2s), the header rewritten.
        let stored = s.get_raw_message(1).await;
        t.outcome("stored ttl.short", stored, |m| stored_line(&m));
    }
    // ttl.short goes at 2s and leaves a marker that lives 2s.
    after_expiry(t, js, "TTL", (3, 4)).await;
    if let Ok(s) = js.get_stream("TTL").await {
        let marker = s.get_last_raw_message_by_subject("ttl.short").await;
        t.outcome("marker for ttl.short", marker, |m| stored_line(&m));
    }
    after_expiry(t, js, "TTL", (2, 4)).await;
}

async fn scenario(url: &str) -> Vec<String> {
    let client = async_nats::connect(url).await.expect("connects");
    let js = jetstream::new(client);
    let mut t = Transcript::default();
    key_value(&mut t, &js).await;
    objects(&mut t, &js).await;
    message_ttl(&mut t, &js).await;
    t.lines
}

#[tokio::test]
async fn kv_object_store_and_ttl_observe_the_same_as_against_nats_server() {
    let reference = nats_server_jetstream();
    let expected = scenario(&format!("nats://{}", reference.server.addr)).await;
    let herald = TestServer::start().await;
    let actual = scenario(&herald.nats_url()).await;
    assert_same(&expected, &actual);
}
