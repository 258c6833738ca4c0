//! The JetStream API of a cluster answers for every stream on every node: a
//! stream with one replica, created through node a, is listed, described,
//! read, consumed and deleted through the others (their requests go to its
//! holder, with the asker's permissions), a create of the same name with
//! another config is refused wherever it is asked, and stream lists merge
//! every node's (a replicated stream once).

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::{StreamExt, TryStreamExt};

use crate::cluster::three;
use crate::partition::create_replicated;

fn config(name: &str, replicas: usize) -> stream::Config {
    stream::Config {
        name: name.into(),
        subjects: vec![format!("{}.>", name.to_lowercase())],
        num_replicas: replicas,
        ..Default::default()
    }
}

#[tokio::test]
async fn every_node_answers_for_a_stream_held_by_one() {
    let (a, b, c) = three().await;
    let on_a = jetstream::new(a.nats().await);
    on_a.create_stream(config("ONE", 1)).await.expect("R1 on a");
    create_replicated(&on_a, config("THREE", 3)).await;
    let on_b = jetstream::new(b.nats().await);
    for i in 0..10 {
        on_b.publish("one.x", format!("m{i}").into())
            .await
            .expect("publish")
            .await
            .expect("acked by the holder");
    }

    // Described and read through b.
    let mut one = on_b.get_stream("ONE").await.expect("ONE through b");
    assert_eq!(one.info().await.expect("info").state.messages, 10);
    let msg = one.get_raw_message(3).await.expect("a message through b");
    assert_eq!(msg.payload, "m2".as_bytes());

    // Listed on every node: each stream once.
    for node in [&a, &b, &c] {
        let js = jetstream::new(node.nats().await);
        let mut names: Vec<String> = js.stream_names().try_collect().await.expect("names");
        names.sort();
        assert_eq!(names, ["ONE", "THREE"]);
        let listed: Vec<stream::Info> = js.streams().try_collect().await.expect("list");
        assert_eq!(listed.len(), 2);
    }

    // The same name with another config is refused through c.
    let on_c = jetstream::new(c.nats().await);
    let mut other = config("ONE", 1);
    other.subjects = vec!["elsewhere.>".into()];
    let refused = on_c.create_stream(other).await.expect_err("name taken");
    assert!(refused.to_string().contains("already in use"), "{refused}");

    // Consumed through c: a durable consumer created there lives on a.
    let stream = on_c.get_stream("ONE").await.expect("ONE through c");
    let durable = consumer::pull::Config {
        durable_name: Some("reader".into()),
        ..Default::default()
    };
    let reader = stream.create_consumer(durable).await.expect("consumer");
    let mut batch = reader
        .fetch()
        .max_messages(10)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .expect("fetch");
    let mut read = 0;
    while let Some(msg) = batch.next().await {
        msg.expect("a message").ack().await.expect("ack");
        read += 1;
    }
    assert_eq!(read, 10);

    // Deleted through b: gone everywhere.
    assert!(on_b.delete_stream("ONE").await.expect("deleted").success);
    assert!(on_a.get_stream("ONE").await.is_err());
    assert!(on_c.get_stream("ONE").await.is_err());
}
