//! Streams through the JetStream API, driven by async-nats's `jetstream`
//! module exactly as applications use it.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;

use crate::common::TestServer;

const WAIT: Duration = Duration::from_secs(10);

async fn orders(js: &jetstream::Context) -> stream::Stream {
    js.get_or_create_stream(stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["ORDERS.*".into()],
        ..Default::default()
    })
    .await
    .expect("stream created")
}

fn pull(name: &str) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(name.into()),
        ..Default::default()
    }
}

/// Fetches what is there now (no wait) and returns the messages.
pub(crate) async fn fetch(
    consumer: &consumer::Consumer<consumer::pull::Config>,
    max: usize,
) -> Vec<jetstream::Message> {
    let mut batch = consumer
        .fetch()
        .max_messages(max)
        .messages()
        .await
        .expect("fetch");
    let mut out = Vec::new();
    while let Some(msg) = tokio::time::timeout(WAIT, batch.next())
        .await
        .expect("fetch ends")
    {
        out.push(msg.expect("message"));
    }
    out
}

#[tokio::test]
async fn five_hundred_acked_publishes_arrive_in_order() {
    five_hundred_in_order(TestServer::start().await).await;
}

#[tokio::test]
async fn five_hundred_acked_publishes_arrive_in_order_with_always_sync() {
    // The writer thread stores and fsyncs in rounds in this mode.
    let server = TestServer::start_with(|ready| {
        ready.sync = herald_store::SyncPolicy::Always;
    })
    .await;
    five_hundred_in_order(server).await;
}

async fn five_hundred_in_order(server: TestServer) {
    let js = jetstream::new(server.client().await);
    let stream = orders(&js).await;
    let mut acks = Vec::new();
    for i in 0..500 {
        acks.push(
            js.publish(format!("ORDERS.{}", i % 7), format!("order {i}").into())
                .await
                .expect("publish"),
        );
    }
    for (i, ack) in acks.into_iter().enumerate() {
        let ack = ack.await.expect("publish ack");
        assert_eq!(ack.stream, "ORDERS");
        assert_eq!(ack.sequence, i as u64 + 1);
        assert!(!ack.duplicate);
    }
    let consumer = stream
        .create_consumer(pull("proc"))
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    for i in 0..500u64 {
        let msg = tokio::time::timeout(WAIT, messages.next())
            .await
            .expect("in time")
            .expect("some")
            .expect("ok");
        assert_eq!(msg.payload.as_ref(), format!("order {i}").as_bytes());
        assert_eq!(msg.subject.as_str(), format!("ORDERS.{}", i % 7));
        let info = msg.info().expect("ack subject parses");
        assert_eq!(info.stream_sequence, i + 1);
        assert_eq!(info.consumer_sequence, i + 1);
        assert_eq!(info.delivered, 1);
        assert_eq!(info.pending, 499 - i);
        msg.ack().await.expect("ack");
    }
    drop(messages);
    let mut stream = stream;
    let info = stream.info().await.expect("info");
    assert_eq!(info.state.messages, 500);
    assert_eq!(info.state.first_sequence, 1);
    assert_eq!(info.state.last_sequence, 500);
    assert_eq!(info.state.consumer_count, 1);
}

#[tokio::test]
async fn pull_batches_acks_and_consumer_info() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let stream = orders(&js).await;
    for i in 0..25 {
        js.publish("ORDERS.new", format!("{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut consumer = stream.create_consumer(pull("batches")).await.unwrap();
    let first = fetch(&consumer, 10).await;
    assert_eq!(first.len(), 10);
    for m in &first {
        m.double_ack().await.expect("double ack confirmed");
    }
    let rest = fetch(&consumer, 100).await;
    assert_eq!(rest.len(), 15);
    assert_eq!(rest[0].payload.as_ref(), b"10");
    let info = consumer.info().await.unwrap().clone();
    assert_eq!(info.num_ack_pending, 15);
    assert_eq!(info.delivered.stream_sequence, 25);
    assert_eq!(info.ack_floor.stream_sequence, 10);
    assert_eq!(info.num_pending, 0);
    for m in &rest {
        m.double_ack().await.unwrap();
    }
    let info = consumer.info().await.unwrap().clone();
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.ack_floor.stream_sequence, 25);
    assert!(fetch(&consumer, 10).await.is_empty());
}

#[tokio::test]
async fn unacked_messages_come_back_after_ack_wait_and_naks_after_their_delay() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let stream = orders(&js).await;
    js.publish("ORDERS.a", "one".into())
        .await
        .unwrap()
        .await
        .unwrap();
    js.publish("ORDERS.b", "two".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("slow".into()),
            ack_wait: Duration::from_millis(300),
            ..Default::default()
        })
        .await
        .unwrap();
    let got = fetch(&consumer, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload.as_ref(), b"one");
    // Not acked: after the ack wait, "one" is delivered again, before "two".
    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = fetch(&consumer, 1).await;
    assert_eq!(again[0].payload.as_ref(), b"one");
    assert_eq!(again[0].info().unwrap().delivered, 2);
    assert_eq!(again[0].info().unwrap().consumer_sequence, 2);
    again[0].ack().await.unwrap();
    let two = fetch(&consumer, 1).await;
    assert_eq!(two[0].payload.as_ref(), b"two");
    two[0]
        .ack_with(jetstream::AckKind::Nak(Some(Duration::from_millis(200))))
        .await
        .unwrap();
    // Right after a delayed NAK nothing is deliverable...
    assert!(fetch(&consumer, 1).await.is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...and after the delay the message is back.
    let back = fetch(&consumer, 1).await;
    assert_eq!(back[0].payload.as_ref(), b"two");
    assert_eq!(back[0].info().unwrap().delivered, 2);
}

#[tokio::test]
async fn after_max_deliver_the_message_goes_to_the_dead_letter_subject() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let js = jetstream::new(client.clone());
    let stream = orders(&js).await;
    // A second stream keeps the dead letters.
    js.get_or_create_stream(stream::Config {
        name: "DLQ".into(),
        subjects: vec!["dlq.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut advisories = client
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>")
        .await
        .unwrap();
    client.flush().await.unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("Trace", "t-1");
    js.publish_with_headers("ORDERS.poison", headers, "bad".into())
        .await
        .unwrap()
        .await
        .unwrap();
    // Configured with the herald extension `dead_letter_subject` through raw JSON.
    let request = serde_json::json!({
        "stream_name": "ORDERS",
        "config": {"durable_name": "worker", "ack_policy": "explicit", "max_deliver": 2,
                   "ack_wait": 200_000_000, "dead_letter_subject": "dlq.orders"},
        "action": ""
    });
    let reply = client
        .request(
            "$JS.API.CONSUMER.CREATE.ORDERS.worker",
            serde_json::to_vec(&request).unwrap().into(),
        )
        .await
        .unwrap();
    let created: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(
        created["config"]["dead_letter_subject"], "dlq.orders",
        "{created}"
    );
    let consumer: consumer::PullConsumer = stream.get_consumer("worker").await.unwrap();
    for attempt in 1..=2 {
        let got = fetch(&consumer, 1).await;
        assert_eq!(got.len(), 1, "attempt {attempt}");
        assert_eq!(got[0].info().unwrap().delivered, attempt);
        got[0]
            .ack_with(jetstream::AckKind::Nak(None))
            .await
            .unwrap();
    }
    let advisory = tokio::time::timeout(WAIT, advisories.next())
        .await
        .unwrap()
        .unwrap();
    let advisory: serde_json::Value = serde_json::from_slice(&advisory.payload).unwrap();
    assert_eq!(advisory["stream_seq"], 1);
    assert_eq!(advisory["deliveries"], 2);
    assert!(fetch(&consumer, 1).await.is_empty(), "no third delivery");
    let mut dlq = js.get_stream("DLQ").await.unwrap();
    let letter = loop {
        if let Ok(m) = dlq.get_last_raw_message_by_subject("dlq.orders").await {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(letter.payload.as_ref(), b"bad");
    let h = &letter.headers;
    assert_eq!(h.get("Trace").map(|v| v.as_str()), Some("t-1"));
    assert_eq!(
        h.get("Herald-Dead-Letter-Stream").map(|v| v.as_str()),
        Some("ORDERS")
    );
    assert_eq!(
        h.get("Herald-Dead-Letter-Sequence").map(|v| v.as_str()),
        Some("1")
    );
    assert_eq!(
        h.get("Herald-Dead-Letter-Deliveries").map(|v| v.as_str()),
        Some("2")
    );
    assert_eq!(
        h.get("Herald-Dead-Letter-Subject").map(|v| v.as_str()),
        Some("ORDERS.poison")
    );
    assert_eq!(dlq.info().await.unwrap().state.messages, 1);
}

#[tokio::test]
async fn duplicate_message_ids_are_stored_once() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let mut stream = orders(&js).await;
    let publish = |id: &'static str, body: &'static str| {
        let js = js.clone();
        async move {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", id);
            js.publish_with_headers("ORDERS.new", headers, body.into())
                .await
                .unwrap()
                .await
                .unwrap()
        }
    };
    let first = publish("order-1", "a").await;
    let again = publish("order-1", "a-again").await;
    let other = publish("order-2", "b").await;
    assert_eq!((first.sequence, first.duplicate), (1, false));
    assert_eq!((again.sequence, again.duplicate), (1, true));
    assert_eq!((other.sequence, other.duplicate), (2, false));
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
    let stored = stream.get_raw_message(1).await.unwrap();
    assert_eq!(stored.payload.as_ref(), b"a");
}

#[tokio::test]
async fn expected_sequence_headers_refuse_conflicting_writes() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    orders(&js).await;
    js.publish("ORDERS.a", "1".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let with = |name: &'static str, value: &'static str| {
        let mut h = HeaderMap::new();
        h.insert(name, value);
        h
    };
    let ok = js
        .publish_with_headers(
            "ORDERS.a",
            with("Nats-Expected-Last-Sequence", "1"),
            "2".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ok.sequence, 2);
    let err = js
        .publish_with_headers(
            "ORDERS.a",
            with("Nats-Expected-Last-Sequence", "1"),
            "x".into(),
        )
        .await
        .unwrap()
        .await
        .expect_err("wrong last sequence");
    assert!(err.to_string().contains("wrong last sequence: 2"), "{err}");
    let err = js
        .publish_with_headers(
            "ORDERS.b",
            with("Nats-Expected-Last-Subject-Sequence", "5"),
            "x".into(),
        )
        .await
        .unwrap()
        .await
        .expect_err("wrong last subject sequence");
    assert!(err.to_string().contains("wrong last sequence: 0"), "{err}");
    let err = js
        .publish_with_headers(
            "ORDERS.b",
            with("Nats-Expected-Stream", "OTHER"),
            "x".into(),
        )
        .await
        .unwrap()
        .await
        .expect_err("wrong stream");
    assert!(
        err.to_string().contains("expected stream does not match"),
        "{err}"
    );
    let ok = js
        .publish_with_headers(
            "ORDERS.a",
            with("Nats-Expected-Last-Subject-Sequence", "2"),
            "3".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ok.sequence, 3);
}

#[tokio::test]
async fn a_restart_keeps_streams_messages_and_consumer_positions() {
    let server = TestServer::start().await;
    {
        let js = jetstream::new(server.client().await);
        let stream = orders(&js).await;
        for i in 0..20 {
            js.publish("ORDERS.new", format!("{i}").into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        let consumer = stream.create_consumer(pull("keeper")).await.unwrap();
        for m in fetch(&consumer, 5).await {
            m.double_ack().await.unwrap();
        }
    }
    let server = server.restart().await;
    let js = jetstream::new(server.client().await);
    let mut stream = js.get_stream("ORDERS").await.expect("stream survives");
    let info = stream.info().await.unwrap();
    assert_eq!((info.state.messages, info.state.last_sequence), (20, 20));
    let consumer: consumer::PullConsumer = stream
        .get_consumer("keeper")
        .await
        .expect("consumer survives");
    let rest = fetch(&consumer, 100).await;
    assert_eq!(rest.len(), 15);
    assert_eq!(rest[0].payload.as_ref(), b"5");
    assert_eq!(rest[0].info().unwrap().stream_sequence, 6);
    let ack = js
        .publish("ORDERS.new", "20".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.sequence, 21, "sequences continue after restart");
}

#[tokio::test]
async fn publishing_where_no_stream_listens_is_stream_not_found() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let err = js
        .publish("nowhere.at.all", "x".into())
        .await
        .unwrap()
        .await
        .expect_err("no stream");
    assert_eq!(
        err.kind(),
        jetstream::context::PublishErrorKind::StreamNotFound,
        "{err}"
    );
    let err = js.get_stream("MISSING").await.expect_err("missing");
    assert!(err.to_string().contains("stream not found"), "{err}");
}

#[tokio::test]
async fn work_queue_and_interest_retention_drop_what_is_acknowledged() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let mut work = js
        .create_stream(stream::Config {
            name: "JOBS".into(),
            subjects: vec!["jobs.>".into()],
            retention: stream::RetentionPolicy::WorkQueue,
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 0..4 {
        js.publish(format!("jobs.{i}"), "job".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let worker = work.create_consumer(pull("worker")).await.unwrap();
    let jobs = fetch(&worker, 2).await;
    for j in &jobs {
        j.double_ack().await.unwrap();
    }
    let state = work.info().await.unwrap().state.clone();
    assert_eq!((state.messages, state.first_sequence), (2, 3));
    // A second unfiltered consumer on a work queue is refused.
    let err = work
        .create_consumer(pull("second"))
        .await
        .expect_err("not unique");
    assert!(
        err.to_string().contains("multiple non-filtered consumers"),
        "{err}"
    );

    let mut interest = js
        .create_stream(stream::Config {
            name: "EVENTS".into(),
            subjects: vec!["events.>".into()],
            retention: stream::RetentionPolicy::Interest,
            ..Default::default()
        })
        .await
        .unwrap();
    // Nobody is interested yet: not kept.
    js.publish("events.early", "x".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(interest.info().await.unwrap().state.messages, 0);
    let a = interest.create_consumer(pull("a")).await.unwrap();
    let b = interest.create_consumer(pull("b")).await.unwrap();
    js.publish("events.one", "1".into())
        .await
        .unwrap()
        .await
        .unwrap();
    for m in fetch(&a, 1).await {
        m.double_ack().await.unwrap();
    }
    assert_eq!(
        interest.info().await.unwrap().state.messages,
        1,
        "b has not acked"
    );
    for m in fetch(&b, 1).await {
        m.double_ack().await.unwrap();
    }
    assert_eq!(
        interest.info().await.unwrap().state.messages,
        0,
        "everyone acked"
    );
}

#[tokio::test]
async fn limits_retention_discards_old_or_refuses_new() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let mut capped = js
        .create_stream(stream::Config {
            name: "CAPPED".into(),
            subjects: vec!["capped.>".into()],
            max_messages: 5,
            max_messages_per_subject: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 0..3 {
        js.publish("capped.same", format!("s{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let state = capped.info().await.unwrap().state.clone();
    assert_eq!(
        (state.messages, state.first_sequence),
        (2, 2),
        "per-subject limit keeps the newest 2"
    );
    for i in 0..6 {
        js.publish(format!("capped.k{i}"), "x".into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let state = capped.info().await.unwrap().state.clone();
    assert_eq!(
        (state.messages, state.first_sequence, state.last_sequence),
        (5, 5, 9)
    );

    let mut strict = js
        .create_stream(stream::Config {
            name: "STRICT".into(),
            subjects: vec!["strict.>".into()],
            max_messages: 2,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        })
        .await
        .unwrap();
    js.publish("strict.a", "1".into())
        .await
        .unwrap()
        .await
        .unwrap();
    js.publish("strict.a", "2".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let err = js
        .publish("strict.a", "3".into())
        .await
        .unwrap()
        .await
        .expect_err("full");
    assert!(
        err.to_string().contains("maximum messages exceeded"),
        "{err}"
    );
    assert_eq!(strict.info().await.unwrap().state.messages, 2);

    let mut aging = js
        .create_stream(stream::Config {
            name: "AGING".into(),
            subjects: vec!["aging.>".into()],
            max_age: Duration::from_millis(300),
            ..Default::default()
        })
        .await
        .unwrap();
    js.publish("aging.a", "old".into())
        .await
        .unwrap()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    js.publish("aging.a", "new".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let state = aging.info().await.unwrap().state.clone();
    assert_eq!((state.messages, state.first_sequence), (1, 2));
}

#[tokio::test]
async fn deliver_policies_start_where_asked() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let stream = orders(&js).await;
    for (subject, body) in [
        ("ORDERS.a", "a1"),
        ("ORDERS.b", "b1"),
        ("ORDERS.a", "a2"),
        ("ORDERS.b", "b2"),
    ] {
        js.publish(subject, body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let middle = stream.clone().get_raw_message(3).await.unwrap().time;
    let mut bodies = Vec::new();
    let policies = [
        ("all", consumer::DeliverPolicy::All),
        ("last", consumer::DeliverPolicy::Last),
        ("new", consumer::DeliverPolicy::New),
        ("lps", consumer::DeliverPolicy::LastPerSubject),
        (
            "seq",
            consumer::DeliverPolicy::ByStartSequence { start_sequence: 2 },
        ),
        (
            "time",
            consumer::DeliverPolicy::ByStartTime { start_time: middle },
        ),
    ];
    for (name, policy) in policies {
        // Last-per-subject needs a filter subject, as nats-server insists.
        let filter_subject = if name == "lps" {
            "ORDERS.*".into()
        } else {
            String::new()
        };
        let c = stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(name.into()),
                deliver_policy: policy,
                filter_subject,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let got: Vec<String> = fetch(&c, 10)
            .await
            .iter()
            .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
            .collect();
        bodies.push((name, got));
    }
    js.publish("ORDERS.c", "c1".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let expect = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(bodies[0].1, expect(&["a1", "b1", "a2", "b2"]));
    assert_eq!(bodies[1].1, expect(&["b2"]));
    assert_eq!(bodies[2].1, expect(&[]));
    assert_eq!(bodies[3].1, expect(&["a2", "b2"]));
    assert_eq!(bodies[4].1, expect(&["b1", "a2", "b2"]));
    assert_eq!(bodies[5].1, expect(&["a2", "b2"]));
    let new: consumer::PullConsumer = stream.get_consumer("new").await.unwrap();
    let got = fetch(&new, 10).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload.as_ref(), b"c1");
}

#[tokio::test]
async fn stored_messages_can_be_read_deleted_and_purged() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let mut stream = js
        .create_stream(stream::Config {
            name: "LOG".into(),
            subjects: vec!["log.>".into()],
            allow_direct: true,
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 1..=6 {
        let subject = if i % 2 == 0 { "log.even" } else { "log.odd" };
        js.publish(subject, format!("{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let third = stream.get_raw_message(3).await.unwrap();
    assert_eq!(
        (third.subject.as_str(), third.payload.as_ref()),
        ("log.odd", &b"3"[..])
    );
    let last_even = stream
        .get_last_raw_message_by_subject("log.even")
        .await
        .unwrap();
    assert_eq!(last_even.sequence, 6);
    let direct = stream.direct_get(2).await.expect("direct get");
    assert_eq!(direct.payload.as_ref(), b"2");
    let direct_last = stream.direct_get_last_for_subject("log.odd").await.unwrap();
    assert_eq!(direct_last.payload.as_ref(), b"5");
    assert!(stream.delete_message(3).await.unwrap());
    assert!(stream.get_raw_message(3).await.is_err());
    let purged = stream.purge().filter("log.even").await.unwrap();
    assert_eq!(purged.purged, 3);
    let state = stream.info().await.unwrap().state.clone();
    assert_eq!(
        (state.messages, state.first_sequence, state.last_sequence),
        (2, 1, 6)
    );
    let purged = stream.purge().await.unwrap();
    assert_eq!(purged.purged, 2);
    let state = stream.info().await.unwrap().state.clone();
    assert_eq!(
        (state.messages, state.first_sequence, state.last_sequence),
        (0, 7, 6)
    );
    let ack = js
        .publish("log.odd", "7".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.sequence, 7);
}

#[tokio::test]
async fn push_consumers_deliver_to_their_subject_and_queue_group() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let stream = orders(&js).await;
    for i in 0..10 {
        js.publish("ORDERS.new", format!("{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let push = stream
        .create_consumer(consumer::push::Config {
            durable_name: Some("pusher".into()),
            deliver_subject: "deliver.orders".into(),
            deliver_group: Some("workers".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            idle_heartbeat: Duration::from_millis(200),
            flow_control: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = push.messages().await.unwrap();
    for i in 0..10 {
        let m = tokio::time::timeout(WAIT, messages.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(m.payload.as_ref(), format!("{i}").as_bytes());
        m.ack().await.unwrap();
    }
    js.publish("ORDERS.new", "late".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let m = tokio::time::timeout(WAIT, messages.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m.payload.as_ref(), b"late");
    m.ack().await.unwrap();
    // Heartbeats keep coming while idle; the client swallows them, so just
    // check the stream of messages stays healthy across a few intervals.
    tokio::time::sleep(Duration::from_millis(500)).await;
    js.publish("ORDERS.new", "after idle".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let m = tokio::time::timeout(WAIT, messages.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m.payload.as_ref(), b"after idle");
}

#[tokio::test]
async fn streams_and_consumers_are_listed_updated_and_deleted() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let stream = orders(&js).await;
    js.create_stream(stream::Config {
        name: "OTHER".into(),
        subjects: vec!["other".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let overlap = js
        .create_stream(stream::Config {
            name: "CLASH".into(),
            subjects: vec!["ORDERS.new".into()],
            ..Default::default()
        })
        .await
        .expect_err("overlapping subjects");
    assert!(
        overlap.to_string().contains("subjects overlap"),
        "{overlap}"
    );
    let mut names: Vec<String> = js.stream_names().map(|n| n.unwrap()).collect().await;
    names.sort();
    assert_eq!(names, vec!["ORDERS".to_owned(), "OTHER".to_owned()]);
    let updated = js
        .update_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["ORDERS.*".into(), "archive.>".into()],
            max_messages: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(updated.config.max_messages, 100);
    js.publish("archive.x", "kept".into())
        .await
        .unwrap()
        .await
        .unwrap();
    stream.create_consumer(pull("c1")).await.unwrap();
    stream.create_consumer(pull("c2")).await.unwrap();
    let mut consumers: Vec<String> = stream.consumer_names().map(|n| n.unwrap()).collect().await;
    consumers.sort();
    assert_eq!(consumers, vec!["c1".to_owned(), "c2".to_owned()]);
    assert!(stream.delete_consumer("c1").await.unwrap().success);
    assert!(stream.delete_consumer("c1").await.is_err());
    assert!(js.delete_stream("OTHER").await.unwrap().success);
    let names: Vec<String> = js.stream_names().map(|n| n.unwrap()).collect().await;
    assert_eq!(names, vec!["ORDERS".to_owned()]);
    let account = js.query_account().await.unwrap();
    assert_eq!((account.streams, account.consumers), (1, 1));
}

#[tokio::test]
async fn ordered_consumers_read_memory_streams_in_order() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let stream = js
        .create_stream(stream::Config {
            name: "MEM".into(),
            subjects: vec!["mem.>".into()],
            storage: stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 0..50 {
        js.publish(format!("mem.{}", i % 3), format!("{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let ordered = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: "mem.1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = ordered.messages().await.unwrap();
    let mut got = Vec::new();
    while got.len() < 17 {
        let m = tokio::time::timeout(WAIT, messages.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        got.push(String::from_utf8_lossy(&m.payload).into_owned());
    }
    let want: Vec<String> = (0..50)
        .filter(|i| i % 3 == 1)
        .map(|i| i.to_string())
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn inactive_ephemeral_consumers_are_removed() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let mut stream = orders(&js).await;
    let ephemeral = stream
        .create_consumer(consumer::pull::Config {
            inactive_threshold: Duration::from_millis(200),
            ..Default::default()
        })
        .await
        .unwrap();
    let name = ephemeral.cached_info().name.clone();
    assert_eq!(stream.info().await.unwrap().state.consumer_count, 1);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if stream.consumer_info(&name).await.is_err() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ephemeral consumer was not removed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stream.info().await.unwrap().state.consumer_count, 0);
}

#[tokio::test]
async fn consumers_with_a_header_filter_get_only_what_passes_it() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let js = jetstream::new(client.clone());
    let stream = orders(&js).await;
    let create = |filter: &str| {
        let body = serde_json::json!({
            "stream_name": "ORDERS",
            "config": {"durable_name": "urgent", "ack_policy": "explicit", "header_filter": filter},
            "action": ""
        });
        let client = client.clone();
        async move {
            let reply = client
                .request(
                    "$JS.API.CONSUMER.CREATE.ORDERS.urgent",
                    serde_json::to_vec(&body).unwrap().into(),
                )
                .await
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&reply.payload).unwrap()
        }
    };
    let refused = create("priority >=").await;
    assert_eq!(refused["error"]["code"], 400, "{refused}");
    assert!(
        refused["error"]["description"]
            .as_str()
            .unwrap()
            .contains("Syntax error")
    );
    let created = create("priority >= 3").await;
    assert_eq!(
        created["config"]["header_filter"], "priority >= 3",
        "{created}"
    );
    let publish = |priority: &'static str, body: &'static str| {
        let js = js.clone();
        async move {
            let mut headers = HeaderMap::new();
            headers.insert("priority", priority);
            js.publish_with_headers("ORDERS.new", headers, body.into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    };
    publish("1", "low").await;
    publish("5", "high").await;
    publish("3", "medium").await;
    let consumer: consumer::PullConsumer = stream.get_consumer("urgent").await.unwrap();
    let got: Vec<String> = fetch(&consumer, 10)
        .await
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
    assert_eq!(got, vec!["high".to_owned(), "medium".to_owned()]);
    // The filter changes on update, for what comes next.
    let updated = create("priority < 3").await;
    assert_eq!(
        updated["config"]["header_filter"], "priority < 3",
        "{updated}"
    );
    publish("9", "very high").await;
    publish("0", "lowest").await;
    let got: Vec<String> = fetch(&consumer, 10)
        .await
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
    assert_eq!(got, vec!["lowest".to_owned()]);
}

#[tokio::test]
async fn in_progress_terminate_and_max_ack_pending() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let js = jetstream::new(client.clone());
    let stream = orders(&js).await;
    for i in 0..6 {
        js.publish("ORDERS.new", format!("{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut terminated = client
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.>")
        .await
        .unwrap();
    crate::common::sync(&client).await;
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("careful".into()),
            ack_wait: Duration::from_millis(400),
            max_ack_pending: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    // Only two may be pending at once.
    let first = fetch(&consumer, 10).await;
    assert_eq!(first.len(), 2, "max_ack_pending holds the rest back");
    // Working on the first: +WPI keeps pushing its ack wait out.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        first[0]
            .ack_with(jetstream::AckKind::Progress)
            .await
            .unwrap();
    }
    first[0].double_ack().await.unwrap();
    // The second is given up on: no redelivery, an advisory instead.
    first[1].ack_with(jetstream::AckKind::Term).await.unwrap();
    let advisory = tokio::time::timeout(WAIT, terminated.next())
        .await
        .unwrap()
        .unwrap();
    let advisory: serde_json::Value = serde_json::from_slice(&advisory.payload).unwrap();
    assert_eq!(advisory["stream_seq"], 2);
    let rest = fetch(&consumer, 10).await;
    let payloads: Vec<String> = rest
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
    assert_eq!(
        payloads,
        vec!["2".to_owned(), "3".to_owned()],
        "in order, neither 0 nor 1 again"
    );
    assert!(rest.iter().all(|m| m.info().unwrap().delivered == 1));
}
