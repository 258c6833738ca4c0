//! Message schedules (`Nats-Schedule`, nats-server 2.12+): a message
//! published now is stored on its target subject later, from NATS and from
//! HTTP (MQTT 5 user properties: `mqtt_v5.rs`).

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use bytes::Bytes;

use crate::common::TestServer;

/// Long enough for any schedule below to have fired many times over.
const PATIENCE: Duration = Duration::from_secs(20);

/// RFC 3339 for `secs` seconds from now, whole seconds, UTC.
pub(crate) fn in_seconds(secs: i64) -> String {
    let now = herald_store::time::now_nanos() / 1_000_000_000;
    herald_store::time::rfc3339((now + secs) * 1_000_000_000)
}

pub(crate) async fn schedule_stream(js: &jetstream::Context, name: &str) -> stream::Stream {
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![format!("{}.>", name.to_lowercase())],
        allow_message_schedules: true,
        allow_message_ttl: true,
        ..Default::default()
    })
    .await
    .expect("stream with schedules")
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.insert(*name, *value);
    }
    h
}

/// Waits until `subject` has a message in `stream` and returns it.
pub(crate) async fn scheduled(
    stream: &stream::Stream,
    subject: &str,
) -> async_nats::jetstream::message::StreamMessage {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(m) = stream.get_last_raw_message_by_subject(subject).await {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing on {subject}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn publish(
    js: &jetstream::Context,
    subject: &str,
    with: &[(&str, &str)],
    body: &str,
) -> Result<u64, String> {
    let ack = js
        .publish_with_headers(
            subject.to_owned(),
            headers(with),
            Bytes::from(body.to_owned()),
        )
        .await
        .map_err(|e| e.to_string())?;
    ack.await.map(|a| a.sequence).map_err(|e| e.to_string())
}

#[tokio::test]
async fn an_at_schedule_stores_its_message_once_then_goes() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let mut s = schedule_stream(&js, "JOBS").await;
    let at = format!("@at {}", in_seconds(2));
    let seq = publish(
        &js,
        "jobs.schedule.report",
        &[
            ("Nats-Schedule", at.as_str()),
            ("Nats-Schedule-Target", "jobs.run"),
            ("Nats-Schedule-TTL", "1h"),
            ("Custom", "yes"),
        ],
        "build the report",
    )
    .await
    .expect("schedule accepted");
    assert_eq!(seq, 1);
    let stored = s.get_raw_message(1).await.expect("the schedule is stored");
    assert_eq!(
        stored.headers.get("Nats-Rollup").map(|v| v.as_str()),
        Some("sub"),
        "a schedule rolls its subject up"
    );
    assert!(
        s.get_last_raw_message_by_subject("jobs.run").await.is_err(),
        "not before its time"
    );

    let fired = scheduled(&s, "jobs.run").await;
    assert_eq!(fired.payload, Bytes::from("build the report"));
    let h = |name: &str| fired.headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(h("Nats-Scheduler").as_deref(), Some("jobs.schedule.report"));
    assert_eq!(h("Nats-Schedule-Next").as_deref(), Some("purge"));
    assert_eq!(h("Nats-TTL").as_deref(), Some("1h"));
    assert_eq!(h("Custom").as_deref(), Some("yes"));
    assert_eq!(
        h("Nats-Schedule"),
        None,
        "the schedule's own headers are not copied"
    );
    // The one-shot schedule is gone; only the produced message is left.
    let info = s.info().await.expect("info");
    assert_eq!((info.state.messages, info.state.last_sequence), (1, 2));
}

#[tokio::test]
async fn an_every_schedule_repeats_until_stopped() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let s = schedule_stream(&js, "TICKS").await;
    publish(
        &js,
        "ticks.schedule",
        &[
            ("Nats-Schedule", "@every 1s"),
            ("Nats-Schedule-Target", "ticks.tick"),
        ],
        "tick",
    )
    .await
    .expect("schedule accepted");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut fired = 0;
    while fired < 2 {
        let mut s = s.clone();
        let info = s.info().await.expect("info");
        fired = info.state.last_sequence.saturating_sub(1);
        assert!(
            tokio::time::Instant::now() < deadline,
            "fired {fired} times"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = scheduled(&s, "ticks.tick").await;
    let next = last
        .headers
        .get("Nats-Schedule-Next")
        .map(|v| v.as_str().to_owned())
        .expect("next");
    assert!(next.ends_with('Z') && next != "purge", "{next}");

    // Stopping it: a message naming the schedule with `purge`.
    publish(
        &js,
        "ticks.stop",
        &[
            ("Nats-Scheduler", "ticks.schedule"),
            ("Nats-Schedule-Next", "purge"),
        ],
        "",
    )
    .await
    .expect("stop accepted");
    assert!(
        s.get_last_raw_message_by_subject("ticks.schedule")
            .await
            .is_err(),
        "the schedule is deleted"
    );
}

#[tokio::test]
async fn schedules_are_refused_as_nats_server_refuses_them() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    js.create_stream(stream::Config {
        name: "PLAIN".into(),
        subjects: vec!["plain.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream");
    let err = publish(
        &js,
        "plain.s",
        &[
            ("Nats-Schedule", "@every 1s"),
            ("Nats-Schedule-Target", "plain.t"),
        ],
        "",
    )
    .await
    .expect_err("refused");
    assert!(err.contains("message schedules is disabled"), "{err}");

    schedule_stream(&js, "SCH").await;
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[
                ("Nats-Schedule", "@every 500ms"),
                ("Nats-Schedule-Target", "sch.t"),
            ],
            "pattern is invalid",
        ),
        (
            &[
                ("Nats-Schedule", "* * * * *"),
                ("Nats-Schedule-Target", "sch.t"),
            ],
            "pattern is invalid",
        ),
        (&[("Nats-Schedule", "@every 1s")], "target is invalid"),
        (
            &[
                ("Nats-Schedule", "@every 1s"),
                ("Nats-Schedule-Target", "sch.*"),
            ],
            "target is invalid",
        ),
        (
            &[
                ("Nats-Schedule", "@every 1s"),
                ("Nats-Schedule-Target", "elsewhere"),
            ],
            "target is invalid",
        ),
        (
            &[
                ("Nats-Schedule", "@every 1s"),
                ("Nats-Schedule-Target", "sch.t"),
                ("Nats-Schedule-TTL", "soon"),
            ],
            "invalid per-message TTL",
        ),
        (
            &[
                ("Nats-Schedule", "@hourly"),
                ("Nats-Schedule-Target", "sch.t"),
                ("Nats-Schedule-Time-Zone", "Mars/Olympus"),
            ],
            "time zone is invalid",
        ),
        (&[("Nats-Scheduler", "sch.s")], "invalid scheduler"),
    ];
    for (with, expected) in cases {
        let err = publish(&js, "sch.s", with, "").await.expect_err("refused");
        assert!(err.contains(expected), "{with:?}: {err}");
    }
    let refused = js
        .update_stream(stream::Config {
            name: "SCH".into(),
            subjects: vec!["sch.>".into()],
            allow_message_ttl: true,
            ..Default::default()
        })
        .await
        .expect_err("schedules stay on");
    assert!(
        refused.to_string().contains("can not be disabled"),
        "{refused}"
    );
}

#[tokio::test]
async fn schedules_come_over_http_and_survive_a_restart() {
    let server = TestServer::start().await;
    {
        let js = jetstream::new(server.client().await);
        schedule_stream(&js, "WEB").await;
    }
    let at = format!("@at {}", in_seconds(3));
    let response = reqwest::Client::new()
        .post(server.http_url("/v1/publish/web.schedule"))
        .header("Nats-Schedule", at.as_str())
        .header("Nats-Schedule-Target", "web.done")
        .body("from the web")
        .send()
        .await
        .expect("published");
    assert!(response.status().is_success(), "{}", response.status());
    {
        let js = jetstream::new(server.client().await);
        let s = js.get_stream("WEB").await.expect("stream");
        assert!(
            s.get_last_raw_message_by_subject("web.done").await.is_err(),
            "the restart comes before the schedule's time"
        );
    }
    let server = server.restart().await;
    let js = jetstream::new(server.client().await);
    let s = js.get_stream("WEB").await.expect("stream");
    let fired = scheduled(&s, "web.done").await;
    assert_eq!(fired.payload, Bytes::from("from the web"));
}

#[tokio::test]
async fn a_cron_schedule_reads_its_time_zone() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let s = schedule_stream(&js, "CRON").await;
    let refused = publish(
        &js,
        "cron.every",
        &[
            ("Nats-Schedule", "@every 1s"),
            ("Nats-Schedule-Target", "cron.t"),
            ("Nats-Schedule-Time-Zone", "Asia/Tokyo"),
        ],
        "",
    )
    .await
    .expect_err("no zone with @every");
    assert!(refused.contains("pattern is invalid"), "{refused}");
    publish(
        &js,
        "cron.schedule",
        &[
            ("Nats-Schedule", "* * * * * *"),
            ("Nats-Schedule-Target", "cron.fired"),
            ("Nats-Schedule-Time-Zone", "Asia/Tokyo"),
        ],
        "every second",
    )
    .await
    .expect("cron schedule accepted");
    let fired = scheduled(&s, "cron.fired").await;
    let next = fired
        .headers
        .get("Nats-Schedule-Next")
        .map(|v| v.as_str().to_owned())
        .expect("next");
    assert!(
        next.ends_with("+09:00"),
        "the next fire in Tokyo's offset: {next}"
    );
    assert_eq!(fired.payload, Bytes::from("every second"));
}
