//! Consumers of a replicated stream live in its group: a work-queue stream
//! on three herald processes, its durable pull consumer created through one
//! node and pulled through another; what was acked (double acks, confirmed
//! once the group applied them) is gone from every replica, every node
//! reports the same progress; the stream's leader SIGKILLed, the consumer
//! goes on from a survivor — the ten messages delivered and never acked
//! are delivered again, nothing acked is, and in the end every message was
//! acked exactly once and every replica is empty.

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;

use crate::cluster::{Node, Trio, three};
use crate::partition::{create_replicated, eventually, leader_of, publish_acked, replica_state};

const PATIENCE: Duration = Duration::from_secs(30);

fn work_queue() -> stream::Config {
    stream::Config {
        name: "JOBS".into(),
        subjects: vec!["jobs.>".into()],
        num_replicas: 3,
        retention: stream::RetentionPolicy::WorkQueue,
        ..Default::default()
    }
}

fn workers() -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some("workers".into()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(2),
        ..Default::default()
    }
}

/// What a node is asked about.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Probe {
    /// Its replica's (messages, last seq).
    Replica(u64, u64),
    /// The consumer's (ack pending, delivered stream seq).
    Progress(usize, u64),
}

/// Waits until every node answers `probe` about `stream` with its values.
async fn until_every(nodes: &[&Node], stream: &str, probe: Probe) {
    for node in nodes {
        eventually("a node's answer", Some(probe), || async move {
            match probe {
                Probe::Replica(..) => replica_state(node, stream)
                    .await
                    .map(|(m, l)| Probe::Replica(m, l)),
                Probe::Progress(..) => progress(node).await.map(|(p, d)| Probe::Progress(p, d)),
            }
        })
        .await;
    }
}

/// The consumer's (ack pending, delivered stream seq) as `node` reports it.
async fn progress(node: &Node) -> Option<(usize, u64)> {
    let js = jetstream::new(node.nats().await);
    let stream = js.get_stream("JOBS").await.ok()?;
    let mut consumer: consumer::PullConsumer = stream.get_consumer("workers").await.ok()?;
    let info = consumer.info().await.ok()?;
    Some((info.num_ack_pending, info.delivered.stream_sequence))
}

/// Pulls up to `n` messages through `js` (retrying while leadership moves),
/// double-acking all but `keep` of them; the payloads it acked, and those
/// it did not.
async fn pull_and_ack(
    js: &jetstream::Context,
    n: usize,
    keep: usize,
) -> (Vec<String>, Vec<String>) {
    let (mut acked, mut kept) = (Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + PATIENCE * 2;
    while acked.len() + kept.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pulled only {} of {n}",
            acked.len() + kept.len()
        );
        let Ok(stream) = js.get_stream("JOBS").await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let Ok(consumer) = stream
            .get_consumer::<consumer::pull::Config>("workers")
            .await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let want = n - acked.len() - kept.len();
        let Ok(mut batch) = consumer
            .fetch()
            .max_messages(want)
            .expires(Duration::from_secs(1))
            .messages()
            .await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        while let Some(Ok(msg)) = batch.next().await {
            let payload = String::from_utf8_lossy(&msg.payload).into_owned();
            if kept.len() < keep {
                kept.push(payload);
            } else if msg.double_ack().await.is_ok() {
                acked.push(payload);
            }
        }
    }
    (acked, kept)
}

#[tokio::test]
async fn a_work_queue_consumer_lives_in_the_group_and_survives_its_leader() {
    let (a, b, c) = three().await;
    let on_a = jetstream::new(a.nats().await);
    let stream = create_replicated(&on_a, work_queue()).await;
    stream.create_consumer(workers()).await.expect("consumer");
    let on_c = jetstream::new(c.nats().await);
    for i in 0..100 {
        publish_acked(
            &on_c,
            &format!("jobs.{}", i % 5),
            &format!("j{i}"),
            &format!("j{i}"),
        )
        .await;
    }

    // 60 pulled through b: 50 acked, 10 left pending.
    let on_b = jetstream::new(b.nats().await);
    let (first_acked, kept) = pull_and_ack(&on_b, 60, 10).await;
    assert_eq!((first_acked.len(), kept.len()), (50, 10));
    let all = [&a, &b, &c];
    // The acked are gone from every replica; every node reports the same progress.
    until_every(&all, "JOBS", Probe::Replica(50, 100)).await;
    until_every(&all, "JOBS", Probe::Progress(10, 60)).await;

    // The stream's leader dies; the consumer goes on from a survivor.
    let leader = leader_of(&a, "JOBS").await.expect("a leader");
    let mut nodes = Trio::new(a, b, c);
    let _killed = nodes.kill_where(|name| name == leader);
    let survivors = nodes.alive();
    let on_survivor = jetstream::new(survivors[0].nats().await);
    // 40 never delivered and the 10 kept (after their ack wait).
    let (rest, _) = pull_and_ack(&on_survivor, 50, 0).await;

    let first: BTreeSet<&String> = first_acked.iter().collect();
    for payload in &rest {
        assert!(
            !first.contains(payload),
            "{payload} was acked before, and came again"
        );
    }
    for payload in &kept {
        assert!(
            rest.contains(payload),
            "{payload} was never acked: not delivered again"
        );
    }
    let every: BTreeSet<&String> = first_acked.iter().chain(&rest).collect();
    assert_eq!(every.len(), 100, "every job acked");
    until_every(&survivors, "JOBS", Probe::Replica(0, 100)).await;
}

/// Acks (double) the next `n` messages of `consumer` through `js`.
async fn ack_next(js: &jetstream::Context, stream: &str, consumer: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut acked = 0;
    while acked < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "acked {acked} of {n}"
        );
        let stream = js.get_stream(stream).await.expect("stream");
        let consumer: consumer::PullConsumer =
            stream.get_consumer(consumer).await.expect("consumer");
        let mut batch = consumer
            .fetch()
            .max_messages(n - acked)
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .expect("fetch");
        while let Some(Ok(msg)) = batch.next().await {
            msg.double_ack().await.expect("ack confirmed");
            acked += 1;
        }
    }
}

/// Waits until `stream`'s consumers are `names`, as the node asked sees it.
async fn consumers_are(stream: &stream::Stream, names: &[&str]) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    eventually("consumers", names, || async {
        let mut now: Vec<String> = stream
            .consumer_names()
            .filter_map(|n| async move { n.ok() })
            .collect()
            .await;
        now.sort();
        now
    })
    .await;
}

#[tokio::test]
async fn interest_consumers_travel_in_a_snapshot() {
    // Snapshots every 20 entries.
    let env = [("HERALD_CLUSTER__SNAPSHOT_ENTRIES", "20")];
    let (a, b, c) = crate::cluster::three_with(&env).await;
    let on_a = jetstream::new(a.nats().await);
    let config = stream::Config {
        name: "EVENTS".into(),
        subjects: vec!["events.>".into()],
        num_replicas: 3,
        retention: stream::RetentionPolicy::Interest,
        ..Default::default()
    };
    let stream = create_replicated(&on_a, config).await;
    for name in ["fast", "slow"] {
        let config = consumer::pull::Config {
            durable_name: Some(name.into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        };
        stream.create_consumer(config).await.expect("consumer");
    }
    // An ephemeral one that nobody uses goes (its leader proposes it).
    let idle = consumer::pull::Config {
        inactive_threshold: Duration::from_secs(1),
        ..Default::default()
    };
    stream.create_consumer(idle).await.expect("ephemeral");
    // (An interest stream keeps what any of its consumers has not acked.)
    consumers_are(&stream, &["fast", "slow"]).await;

    // A follower goes down while far more entries than a snapshot pass.
    let leader = leader_of(&a, "EVENTS").await.expect("a leader");
    let mut nodes = Trio::new(a, b, c);
    let (name, data) = nodes.kill_where(|name| name != leader);
    let survivor = nodes.alive()[0];
    let js = jetstream::new(survivor.nats().await);
    for i in 0..30 {
        publish_acked(&js, "events.x", &format!("e{i}"), &format!("e{i}")).await;
    }
    // Only what both consumers acked goes.
    ack_next(&js, "EVENTS", "fast", 30).await;
    ack_next(&js, "EVENTS", "slow", 10).await;
    let survivors = nodes.alive();
    until_every(&survivors, "EVENTS", Probe::Replica(20, 30)).await;

    let back = crate::cluster::restart(name, &[survivor.route], data, &env);
    back.logged("replica installed from a snapshot");
    until_every(&[&back], "EVENTS", Probe::Replica(20, 30)).await;
    // The consumers came with the stream, with their progress.
    let on_back = jetstream::new(back.nats().await);
    let stream = on_back.get_stream("EVENTS").await.expect("stream");
    consumers_are(&stream, &["fast", "slow"]).await;
    let mut slow: consumer::PullConsumer = stream.get_consumer("slow").await.expect("slow");
    let info = slow.info().await.expect("info");
    assert_eq!((info.ack_floor.stream_sequence, info.num_pending), (10, 20));

    // The slow one catches up partly through the node that was down, then
    // is deleted there: what only it held goes from every replica.
    ack_next(&on_back, "EVENTS", "slow", 10).await;
    until_every(&survivors, "EVENTS", Probe::Replica(10, 30)).await;
    assert!(
        stream
            .delete_consumer("slow")
            .await
            .expect("deleted")
            .success
    );
    until_every(&survivors, "EVENTS", Probe::Replica(0, 30)).await;
    until_every(&[&back], "EVENTS", Probe::Replica(0, 30)).await;
}

#[tokio::test]
async fn push_and_ordered_consumers_read_a_replicated_stream() {
    let (a, b, c) = three().await;
    let on_a = jetstream::new(a.nats().await);
    let config = stream::Config {
        name: "FEED".into(),
        subjects: vec!["feed.>".into()],
        num_replicas: 3,
        ..Default::default()
    };
    let stream = create_replicated(&on_a, config).await;
    for i in 0..100 {
        publish_acked(&on_a, "feed.x", &format!("f{i}"), &format!("f{i}")).await;
    }

    // An ordered consumer (ephemeral, flow control, heartbeats) through c.
    let on_c = jetstream::new(c.nats().await);
    let ordered = on_c
        .get_stream("FEED")
        .await
        .expect("stream")
        .create_consumer(consumer::push::OrderedConfig {
            deliver_subject: c.nats().await.new_inbox(),
            ..Default::default()
        })
        .await
        .expect("ordered consumer");
    let mut messages = ordered.messages().await.expect("messages");
    for i in 0..100 {
        let msg = tokio::time::timeout(PATIENCE, messages.next())
            .await
            .expect("in time")
            .expect("a message")
            .expect("no error");
        assert_eq!(msg.payload, format!("f{i}").as_bytes());
    }

    // A durable push consumer delivering to a subject read through b.
    let on_b = b.nats().await;
    let mut deliveries = on_b.subscribe("feed-out").await.expect("subscribe");
    on_b.flush().await.expect("flush");
    let push = consumer::push::Config {
        durable_name: Some("pusher".into()),
        deliver_subject: "feed-out".into(),
        ack_policy: consumer::AckPolicy::Explicit,
        ..Default::default()
    };
    stream.create_consumer(push).await.expect("push consumer");
    for i in 0..100 {
        let msg = tokio::time::timeout(PATIENCE, deliveries.next())
            .await
            .expect("in time")
            .expect("a delivery");
        assert_eq!(msg.payload, format!("f{i}").as_bytes());
        let reply = msg.reply.expect("an ack subject");
        on_b.publish(reply, "+ACK".into()).await.expect("ack");
    }
    on_b.flush().await.expect("flush");
    // Every node reports it all acked.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    for node in [&a, &b, &c] {
        let js = jetstream::new(node.nats().await);
        loop {
            let stream = js.get_stream("FEED").await.expect("stream");
            let mut pusher: consumer::PushConsumer =
                stream.get_consumer("pusher").await.expect("pusher");
            let info = pusher.info().await.expect("info");
            if info.ack_floor.stream_sequence == 100 && info.num_ack_pending == 0 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{info:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
