//! Differential test of Key-Value, Object Store, per-message TTL and
//! message schedules: one
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

/// A stored message's header names (values may hold times), sorted.
fn header_names(msg: &jetstream::message::StreamMessage) -> String {
    let mut names: Vec<String> = msg.headers.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    format!("{} seq={} {:?}", msg.subject, msg.sequence, names)
}

async fn schedules(t: &mut Transcript, js: &jetstream::Context) {
    publish(
        t,
        js,
        "nottl.s",
        "",
        &[
            ("Nats-Schedule", "@every 1s"),
            ("Nats-Schedule-Target", "nottl.t"),
        ],
    )
    .await;
    create_stream(
        t,
        js,
        stream::Config {
            name: "SCHED".into(),
            subjects: vec!["sched.>".into()],
            allow_message_schedules: true,
            allow_message_ttl: true,
            ..Default::default()
        },
    )
    .await;
    let cases: &[&[(&'static str, &str)]] = &[
        &[
            ("Nats-Schedule", "@every 500ms"),
            ("Nats-Schedule-Target", "sched.t"),
        ],
        &[
            ("Nats-Schedule", "* * * * *"),
            ("Nats-Schedule-Target", "sched.t"),
        ],
        &[
            ("Nats-Schedule", "0 0 0 30 2 *"),
            ("Nats-Schedule-Target", "sched.t"),
        ],
        &[("Nats-Schedule", "@every 1s")],
        &[
            ("Nats-Schedule", "@every 1s"),
            ("Nats-Schedule-Target", "sched.*"),
        ],
        &[
            ("Nats-Schedule", "@every 1s"),
            ("Nats-Schedule-Target", "elsewhere"),
        ],
        &[
            ("Nats-Schedule", "@every 1s"),
            ("Nats-Schedule-Target", "sched.s"),
        ],
        &[
            ("Nats-Schedule", "@every 1s"),
            ("Nats-Schedule-Target", "sched.t"),
            ("Nats-Schedule-TTL", "soon"),
        ],
        &[
            ("Nats-Schedule", "@every 1s"),
            ("Nats-Schedule-Target", "sched.t"),
            ("Nats-Schedule-Rollup", "all"),
        ],
        &[
            ("Nats-Schedule", "@every 1s"),
            ("Nats-Schedule-Target", "sched.t"),
            ("Nats-Schedule-Time-Zone", "Europe/Paris"),
        ],
        &[
            ("Nats-Schedule", "@hourly"),
            ("Nats-Schedule-Target", "sched.t"),
            ("Nats-Schedule-Time-Zone", "Mars/Olympus"),
        ],
        &[
            ("Nats-Schedule", "@every 1s"),
            ("Nats-Schedule-Target", "sched.t"),
            ("Nats-Schedule-Source", "sched.s"),
        ],
        &[("Nats-Scheduler", "sched.s")],
        &[
            ("Nats-Scheduler", "sched.s"),
            ("Nats-Schedule-Next", "soon"),
        ],
    ];
    for with in cases {
        publish(t, js, "sched.s", "", with).await;
    }
    // A schedule that would not fire for an hour, stopped by a client.
    publish(
        t,
        js,
        "sched.hourly",
        "h",
        &[
            ("Nats-Schedule", "@every 1h"),
            ("Nats-Schedule-Target", "sched.t"),
        ],
    )
    .await;
    publish(
        t,
        js,
        "sched.stop",
        "",
        &[
            ("Nats-Scheduler", "sched.hourly"),
            ("Nats-Schedule-Next", "purge"),
        ],
    )
    .await;
    publish(t, js, "sched.plain", "p", &[]).await;
    publish(
        t,
        js,
        "sched.stop",
        "",
        &[
            ("Nats-Scheduler", "sched.plain"),
            ("Nats-Schedule-Next", "purge"),
        ],
    )
    .await;
    // A one-shot two seconds out.
    let at = {
        let now = herald_store::time::now_nanos() / 1_000_000_000;
        format!(
            "@at {}",
            herald_store::time::rfc3339((now + 2) * 1_000_000_000)
        )
    };
    let with: &[(&'static str, &str)] = &[
        ("Nats-Schedule", at.as_str()),
        ("Nats-Schedule-Target", "sched.done"),
        ("Nats-Schedule-TTL", "1h"),
        ("Custom", "yes"),
    ];
    let sent = js
        .publish_with_headers(
            "sched.once",
            crate::jetstream_differential::headers(with),
            "later".into(),
        )
        .await;
    let acked = match sent {
        Ok(ack) => ack.await.map(|a| a.sequence).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    t.outcome("publish @at schedule", acked, |seq| format!("seq {seq}"));
    let Ok(s) = js.get_stream("SCHED").await else {
        return t.note("no SCHED stream");
    };
    if let Ok(schedule) = s.get_last_raw_message_by_subject("sched.once").await {
        t.note(format!("stored schedule {}", header_names(&schedule)));
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let fired = loop {
        match s.get_last_raw_message_by_subject("sched.done").await {
            Ok(m) => break Some(m),
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_) => break None,
        }
    };
    match fired {
        Some(m) => t.note(format!("fired {}", stored_line(&m))),
        None => t.note("the @at schedule never fired"),
    }
    let gone = s
        .get_last_raw_message_by_subject("sched.once")
        .await
        .is_err();
    t.note(format!("schedule gone after firing: {gone}"));
    note_stream(t, js, "SCHED").await;
}

async fn scenario(url: &str) -> Vec<String> {
    let client = async_nats::connect(url).await.expect("connects");
    let js = jetstream::new(client);
    let mut t = Transcript::default();
    key_value(&mut t, &js).await;
    objects(&mut t, &js).await;
    message_ttl(&mut t, &js).await;
    schedules(&mut t, &js).await;
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
