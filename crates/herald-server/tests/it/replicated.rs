//! A stream replicated on three herald processes (`num_replicas: 3`, Raft
//! through openraft): created through one node, published to through
//! another with acks, every replica holds every acked message, stream info
//! carries JetStream's `cluster` object; the leader SIGKILLed mid-stream,
//! publishing resumes through a survivor (retried publishes carry a
//! message id, so none is stored twice), and the killed node, restarted on
//! its data, catches up from the log; a replica down while its group
//! snapshotted and dropped the log it missed is sent the stream instead.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use bytes::Bytes;

use crate::cluster::{Node, Trio, restart, three, three_with};
use crate::partition::{create_replicated, eventually, publish_acked, replica_state};

fn config() -> stream::Config {
    stream::Config {
        name: "R3".into(),
        subjects: vec!["r3.>".into()],
        num_replicas: 3,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    }
}

/// Creates the stream, retrying while the meta group forms.
async fn create(js: &jetstream::Context) -> stream::Stream {
    create_replicated(js, config()).await
}

/// Publishes message `i` (id `m-i`, payload `i`) until it is acked; its seq.
async fn publish(js: &jetstream::Context, i: usize) -> u64 {
    let (subject, id) = (format!("r3.{}", i % 7), format!("m-{i}"));
    publish_acked(js, &subject, &id, &i.to_string()).await
}

/// The time of the last message `node`'s replica stored.
async fn last_ts(node: &Node) -> time::OffsetDateTime {
    let js = jetstream::new(node.nats().await);
    let mut stream = js.get_stream("R3").await.expect("stream");
    stream.info().await.expect("info").state.last_timestamp
}

/// Waits until `node`'s replica holds `messages` with last seq `last`.
async fn holds(node: &Node, messages: u64, last: u64) {
    let want = Some((messages, last));
    eventually("the replica", want, || replica_state(node, "R3")).await;
}

#[tokio::test]
async fn a_replicated_stream_keeps_every_acked_message_when_its_leader_dies() {
    let (a, b, c) = three().await;
    let on_a = jetstream::new(a.nats().await);
    let mut stream = create(&on_a).await;
    let info = stream.info().await.expect("info");
    let cluster = info.cluster.clone().expect("a cluster object");
    assert_eq!(cluster.name.as_deref(), Some("test"));
    let leader = cluster.leader.clone().expect("a leader");
    assert_eq!(cluster.replicas.len(), 2, "{cluster:?}");
    assert_eq!(info.config.num_replicas, 3);
    // Not replicated, and said so: memory storage (no applied mark to keep).
    let in_memory = stream::Config {
        name: "MEM3".into(),
        subjects: vec!["mem3.>".into()],
        num_replicas: 3,
        storage: stream::StorageType::Memory,
        ..Default::default()
    };
    let refused = on_a.create_stream(in_memory).await.expect_err("refused");
    assert!(
        refused.to_string().contains("file streams only"),
        "{refused}"
    );

    // Acked publishes through b, wherever the leader is.
    let on_b = jetstream::new(b.nats().await);
    for i in 0..200 {
        assert_eq!(publish(&on_b, i).await, i as u64 + 1);
    }
    for node in [&a, &b, &c] {
        holds(node, 200, 200).await;
    }

    // Kill the leader; publish through a survivor until it is acked again.
    let mut nodes = Trio::new(a, b, c);
    let (leader_name, data) = nodes.kill_where(|name| name == leader);
    let survivors = nodes.alive();
    let on_survivor = jetstream::new(survivors[0].nats().await);
    let killed_at = std::time::Instant::now();
    let seq = publish(&on_survivor, 200).await;
    eprintln!(
        "leader {leader_name} killed; publishing resumed after {:?}",
        killed_at.elapsed()
    );
    assert_eq!(seq, 201);
    for i in 201..300 {
        assert_eq!(publish(&on_survivor, i).await, i as u64 + 1);
    }
    let info = on_survivor
        .get_stream("R3")
        .await
        .expect("stream")
        .info()
        .await
        .expect("info")
        .clone();
    let new_leader = info.cluster.and_then(|c| c.leader).expect("a new leader");
    assert_ne!(new_leader, leader_name);

    // The killed node comes back on its data and catches up from the log.
    let back = restart(leader_name, &[survivors[0].route], data, &[]);
    for node in survivors.iter().copied().chain([&back]) {
        holds(node, 300, 300).await;
    }
    // Every acked message is there once, in order, on the node that was dead.
    let js = jetstream::new(back.nats().await);
    let stream = js.get_stream("R3").await.expect("stream");
    for seq in 1..=300u64 {
        let msg = stream.get_raw_message(seq).await.expect("stored");
        assert_eq!(
            msg.payload,
            Bytes::from(format!("{}", seq - 1)),
            "seq {seq}"
        );
    }
}

#[tokio::test]
async fn a_replica_behind_a_snapshot_is_sent_the_stream() {
    // Snapshots every 20 entries.
    let env = [("HERALD_CLUSTER__SNAPSHOT_ENTRIES", "20")];
    let (a, b, c) = three_with(&env).await;
    let on_a = jetstream::new(a.nats().await);
    let mut stream = create(&on_a).await;
    for i in 0..10 {
        publish(&on_a, i).await;
    }
    let leader = stream
        .info()
        .await
        .expect("info")
        .cluster
        .clone()
        .expect("cluster")
        .leader;
    let mut nodes = Trio::new(a, b, c);
    let (name, data) = nodes.kill_where(|name| leader.as_deref() != Some(name));
    let survivor = nodes.alive()[0];
    let js = jetstream::new(survivor.nats().await);
    // One entry per acked publish: far past two snapshots.
    for i in 10..200 {
        publish(&js, i).await;
    }
    let stream = js.get_stream("R3").await.expect("stream");
    assert!(stream.delete_message(5).await.expect("delete a middle one"));
    assert!(
        stream
            .delete_message(200)
            .await
            .expect("delete the last one")
    );

    let back = restart(name, &[survivor.route], data, &env);
    back.logged("replica installed from a snapshot");
    holds(&back, 198, 200).await;
    // The removed last message's time came with the snapshot too.
    assert_eq!(last_ts(&back).await, last_ts(survivor).await);
    // The next message continues the sequence on every replica.
    let on_back = jetstream::new(back.nats().await);
    assert_eq!(publish(&on_back, 200).await, 201);
    for node in nodes.alive().into_iter().chain([&back]) {
        holds(node, 199, 201).await;
    }
    let stream = on_back.get_stream("R3").await.expect("stream");
    let first = stream.get_raw_message(1).await.expect("first");
    assert_eq!(first.payload, Bytes::from("0"));
    assert!(stream.get_raw_message(5).await.is_err(), "5 stays deleted");
}

/// The retained message a fresh MQTT subscriber to `filter` on `node` gets
/// within half a second, if any.
async fn retained_on(node: &Node, filter: &str) -> Option<String> {
    use herald_protocol::mqtt::{Packet, QoS, Version};

    use crate::common::mqtt_raw::{RawMqtt, subscribe_packet};
    let mut subscriber = RawMqtt::connected(node.mqtt, Version::V5, "retained-reader").await;
    subscriber
        .send(&subscribe_packet(1, filter, QoS::AtMostOnce))
        .await;
    assert!(matches!(subscriber.recv().await, Some(Packet::SubAck(_))));
    match tokio::time::timeout(Duration::from_millis(500), subscriber.recv()).await {
        Ok(Some(Packet::Publish(p))) if p.retain => {
            Some(String::from_utf8_lossy(&p.payload).into_owned())
        }
        _ => None,
    }
}

/// Sets (or, empty, clears) the retained message of `topic` through `node`.
async fn retain(node: &Node, topic: &str, payload: &str) {
    use herald_protocol::mqtt::{Packet, QoS, Version};

    use crate::common::mqtt_raw::{RawMqtt, publish_packet};
    let mut publisher = RawMqtt::connected(node.mqtt, Version::V5, "retainer").await;
    let Packet::Publish(mut publish) = publish_packet(topic, payload, QoS::AtLeastOnce, 1) else {
        unreachable!("a publish packet");
    };
    publish.retain = true;
    publisher.send(&Packet::Publish(publish)).await;
    assert!(matches!(publisher.recv().await, Some(Packet::PubAck(_))));
}

/// Waits until a subscriber on `node` gets `expected` as retained.
async fn until_retained(node: &Node, filter: &str, expected: Option<&str>) {
    let want = expected.map(str::to_owned);
    eventually("retained", want, || retained_on(node, filter)).await;
}

#[tokio::test]
async fn mqtt_retained_messages_are_replicated() {
    let (a, b, c) = three().await;
    // Once the meta group formed.
    create(&jetstream::new(a.nats().await)).await;
    retain(&a, "sensors/1", "21").await;
    until_retained(&c, "sensors/#", Some("21")).await;
    for node in [&a, &b, &c] {
        assert_eq!(replica_state(node, "MQTT_RETAINED").await, Some((1, 1)));
    }

    // Its leader dies: the survivors still have it, and take changes.
    let leader = crate::partition::leader_of(&a, "MQTT_RETAINED")
        .await
        .expect("a leader");
    let mut nodes = Trio::new(a, b, c);
    let _killed = nodes.kill_where(|name| name == leader);
    let survivors = nodes.alive();
    until_retained(survivors[1], "sensors/#", Some("21")).await;
    retain(survivors[0], "sensors/1", "22").await;
    until_retained(survivors[1], "sensors/#", Some("22")).await;
    retain(survivors[1], "sensors/1", "").await;
    until_retained(survivors[0], "sensors/#", None).await;
}

#[tokio::test]
async fn a_replicated_stream_takes_a_config_update_everywhere() {
    let (a, b, c) = three().await;
    let on_a = jetstream::new(a.nats().await);
    create(&on_a).await;
    for i in 0..20 {
        publish(&on_a, i).await;
    }
    // Through b: fewer messages kept, one more subject.
    let on_b = jetstream::new(b.nats().await);
    let mut update = config();
    update.max_messages = 10;
    update.subjects.push("r3b.>".into());
    let info = on_b.update_stream(update.clone()).await.expect("updated");
    assert_eq!(info.config.max_messages, 10);
    assert!(info.cluster.is_some(), "the answer carries the cluster");
    for node in [&a, &b, &c] {
        holds(node, 10, 20).await;
    }
    let on_c = jetstream::new(c.nats().await);
    let ack = on_c
        .publish("r3b.x", "new subject".into())
        .await
        .expect("publish")
        .await
        .expect("acked");
    assert_eq!(ack.sequence, 21);
    // num_replicas does not change.
    let mut fewer = update.clone();
    fewer.num_replicas = 1;
    let refused = on_c.update_stream(fewer).await.expect_err("refused");
    assert!(refused.to_string().contains("num_replicas"), "{refused}");

    // A node restarted on its data opens its replica with the new config.
    let mut nodes = Trio::new(a, b, c);
    let (name, data) = nodes.kill_where(|name| name == "c");
    let survivor = nodes.alive()[0];
    let back = restart(name, &[survivor.route], data, &[]);
    holds(&back, 10, 21).await;
    let js = jetstream::new(back.nats().await);
    let mut stream = js.get_stream("R3").await.expect("stream");
    let info = stream.info().await.expect("info");
    assert_eq!(info.config.max_messages, 10);
    assert_eq!(info.config.subjects, ["r3.>", "r3b.>"]);
}
