//! The in-process broker through its public API.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use herald_core::{
    Broker, CloseReason, ConnId, Delivery, DeliveryCtx, Error, Headers, Interest, Message, Pattern,
    PendingLimits, Sink, SlowConsumerPolicy, Subject, SubscribeOptions, SubscribeSpec, Subscriber,
    Subscription,
};

async fn next(sub: &mut Subscription) -> Message {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("a message in time")
        .expect("subscription open")
}

fn pattern(p: &str) -> Pattern {
    Pattern::new(p).expect("valid pattern")
}

#[tokio::test]
async fn publish_reaches_matching_subscribers_only() -> Result<(), Error> {
    let broker = Broker::new();
    let mut exact = broker.subscribe("orders.eu.created")?;
    let mut star = broker.subscribe("orders.*.created")?;
    let mut tail = broker.subscribe("orders.>")?;
    let other = broker.subscribe("payments.>")?;
    assert_eq!(broker.publish("orders.eu.created", "1")?, 3);
    assert_eq!(broker.publish("orders.us.shipped", "2")?, 1);
    assert_eq!(broker.publish("orders", "3")?, 0);
    assert_eq!(next(&mut exact).await.payload, "1");
    assert_eq!(next(&mut star).await.payload, "1");
    assert_eq!(next(&mut tail).await.payload, "1");
    assert_eq!(next(&mut tail).await.payload, "2");
    assert_eq!(other.pending(), 0);
    assert_eq!(tail.pending(), 0);
    Ok(())
}

#[tokio::test]
async fn invalid_subjects_are_refused() {
    let broker = Broker::new();
    assert!(matches!(
        broker.publish("a..b", "x"),
        Err(Error::InvalidSubject(_))
    ));
    assert!(matches!(
        broker.publish("a.*", "x"),
        Err(Error::InvalidSubject(_))
    ));
    assert!(matches!(
        broker.subscribe("a.>.b"),
        Err(Error::InvalidSubject(_))
    ));
}

#[tokio::test]
async fn messages_arrive_in_publish_order() -> Result<(), Error> {
    let broker = Broker::new();
    let mut sub = broker.subscribe("seq")?;
    for i in 0..1000 {
        broker.publish("seq", i.to_string())?;
    }
    for i in 0..1000 {
        assert_eq!(next(&mut sub).await.payload, i.to_string());
    }
    Ok(())
}

#[tokio::test]
async fn queue_group_spreads_fairly_and_delivers_once() -> Result<(), Error> {
    let broker = Broker::new();
    let mut workers: Vec<Subscription> = (0..3)
        .map(|_| broker.queue_subscribe("jobs", "workers"))
        .collect::<Result<_, _>>()?;
    let mut watcher = broker.subscribe("jobs")?;
    for i in 0..300 {
        // One plain subscriber plus one member of the group.
        assert_eq!(broker.publish("jobs", i.to_string())?, 2);
    }
    let counts: Vec<usize> = workers.iter().map(Subscription::pending).collect();
    assert_eq!(counts, [100, 100, 100], "round-robin spreads evenly");
    let mut seen = std::collections::BTreeSet::new();
    for worker in &mut workers {
        for _ in 0..100 {
            assert!(seen.insert(next(worker).await.payload));
        }
    }
    assert_eq!(seen.len(), 300);
    assert_eq!(watcher.pending(), 300);
    next(&mut watcher).await;
    Ok(())
}

#[tokio::test]
async fn a_full_queue_member_does_not_lose_the_message() -> Result<(), Error> {
    let broker = Broker::new();
    let tiny = PendingLimits {
        max_messages: 1,
        max_bytes: 1 << 20,
    };
    let full = broker.subscribe_with(
        SubscribeOptions::new(pattern("work"))
            .queue("g".try_into()?)
            .pending(tiny)
            .slow_consumer(SlowConsumerPolicy::DropNewest),
    )?;
    let roomy = broker.queue_subscribe("work", "g")?;
    for i in 0..10 {
        assert_eq!(
            broker.publish("work", i.to_string())?,
            1,
            "message {i} delivered"
        );
    }
    assert_eq!(full.pending() + roomy.pending(), 10);
    Ok(())
}

#[tokio::test]
async fn dropping_a_subscription_unsubscribes() -> Result<(), Error> {
    let broker = Broker::new();
    let sub = broker.subscribe("gone")?;
    let queue = broker.queue_subscribe("gone", "q")?;
    assert_eq!(broker.index().len(), 2);
    drop(sub);
    drop(queue);
    assert_eq!(broker.index().len(), 0);
    assert_eq!(broker.publish("gone", "x")?, 0);
    Ok(())
}

#[tokio::test]
async fn max_messages_ends_the_subscription() -> Result<(), Error> {
    let broker = Broker::new();
    let mut sub = broker.subscribe_with(SubscribeOptions::new(pattern("few")).max_messages(3))?;
    let delivered: usize = (0..5)
        .map(|i| broker.publish("few", i.to_string()))
        .sum::<Result<usize, _>>()?;
    assert_eq!(delivered, 3);
    for i in 0..3 {
        assert_eq!(next(&mut sub).await.payload, i.to_string());
    }
    assert!(sub.next().await.is_none(), "stream ends after the limit");
    assert_eq!(sub.close_reason(), Some(CloseReason::Unsubscribed));
    assert_eq!(broker.index().len(), 0);
    Ok(())
}

#[tokio::test]
async fn unsubscribe_after_counts_what_was_delivered() -> Result<(), Error> {
    let broker = Broker::new();
    let mut sub = broker.subscribe("n")?;
    broker.publish("n", "a")?;
    broker.publish("n", "b")?;
    sub.unsubscribe_after(2);
    assert_eq!(broker.publish("n", "c")?, 0);
    assert_eq!(next(&mut sub).await.payload, "a");
    assert_eq!(next(&mut sub).await.payload, "b");
    assert!(sub.next().await.is_none());
    Ok(())
}

#[tokio::test]
async fn request_reply_and_no_responders() -> Result<(), Error> {
    let broker = Broker::new();
    let err = broker
        .request("svc.add", "1 2", Duration::from_secs(1))
        .await
        .expect_err("nobody listens");
    assert!(matches!(err, Error::NoResponders { .. }), "{err}");

    let mut service = broker.subscribe("svc.add")?;
    let responder = broker.clone();
    let task = tokio::spawn(async move {
        while let Some(req) = service.next().await {
            let text = String::from_utf8_lossy(&req.payload).into_owned();
            let sum: i64 = text.split(' ').filter_map(|n| n.parse::<i64>().ok()).sum();
            responder.respond(&req, sum.to_string());
        }
    });
    let reply = broker
        .request("svc.add", "1 2", Duration::from_secs(5))
        .await?;
    assert_eq!(reply.payload, "3");
    // The one-shot inbox subscription is gone again.
    assert_eq!(broker.index().len(), 1);
    task.abort();
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn request_times_out_when_nobody_answers() -> Result<(), Error> {
    let broker = Broker::new();
    let _silent = broker.subscribe("svc.silent")?;
    let err = broker
        .request("svc.silent", "?", Duration::from_secs(3))
        .await
        .expect_err("no answer");
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    Ok(())
}

#[tokio::test]
async fn slow_consumer_drop_newest_counts_drops() -> Result<(), Error> {
    let broker = Broker::new();
    let limits = PendingLimits {
        max_messages: 10,
        max_bytes: 1 << 20,
    };
    let mut sub = broker.subscribe_with(
        SubscribeOptions::new(pattern("flood"))
            .pending(limits)
            .slow_consumer(SlowConsumerPolicy::DropNewest),
    )?;
    for i in 0..25 {
        broker.publish("flood", i.to_string())?;
    }
    assert_eq!(sub.pending(), 10);
    assert_eq!(sub.dropped(), 15);
    assert_eq!(broker.stats().dropped, 15);
    for i in 0..10 {
        assert_eq!(next(&mut sub).await.payload, i.to_string());
    }
    // Still subscribed: new messages arrive once there is room.
    broker.publish("flood", "later")?;
    assert_eq!(next(&mut sub).await.payload, "later");
    Ok(())
}

#[tokio::test]
async fn slow_consumer_close_ends_the_stream() -> Result<(), Error> {
    let broker = Broker::new();
    let limits = PendingLimits {
        max_messages: 0,
        max_bytes: 64,
    };
    let mut sub = broker.subscribe_with(
        SubscribeOptions::new(pattern("flood"))
            .pending(limits)
            .slow_consumer(SlowConsumerPolicy::Close),
    )?;
    let payload = "x".repeat(40);
    assert_eq!(broker.publish("flood", payload.clone())?, 1);
    assert_eq!(broker.publish("flood", payload.clone())?, 0);
    assert_eq!(sub.close_reason(), Some(CloseReason::SlowConsumer));
    assert_eq!(next(&mut sub).await.payload, payload);
    assert!(sub.next().await.is_none());
    Ok(())
}

#[tokio::test]
async fn flush_waits_until_subscribers_took_everything() -> Result<(), Error> {
    let broker = Broker::new();
    let taken = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let mut sub = broker.queue_subscribe("tasks", "workers")?;
        let taken = taken.clone();
        tasks.push(tokio::spawn(async move {
            // Counted as soon as it is taken, before the worker yields.
            while sub.next().await.is_some() {
                taken.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        }));
    }
    for i in 0..90 {
        broker.publish("tasks", i.to_string())?;
    }
    assert_eq!(taken.load(Ordering::SeqCst), 0, "nothing taken yet");
    broker.flush().await;
    // On this single-threaded runtime a worker counts a message before any
    // other task runs, so once flush returns all 90 have been counted.
    assert_eq!(taken.load(Ordering::SeqCst), 90);
    for task in tasks {
        task.abort();
    }
    Ok(())
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct ChatMessage {
    id: u64,
    username: String,
    message: String,
}

#[tokio::test]
async fn typed_json_messages() -> Result<(), Error> {
    let broker = Broker::new();
    let mut room = broker.subscribe("chat.lobby")?.json::<ChatMessage>();
    let hello = ChatMessage {
        id: 1,
        username: "ada".into(),
        message: "hello".into(),
    };
    broker.publish_json("chat.lobby", &hello)?;
    broker.publish("chat.lobby", "not json")?;
    let (got, msg) = room.next().await.expect("open")?;
    assert_eq!(got, hello);
    assert_eq!(msg.subject.as_str(), Some("chat.lobby"));
    assert!(matches!(room.next().await, Some(Err(Error::Json { .. }))));
    Ok(())
}

#[tokio::test]
async fn headers_and_reply_travel_with_the_message() -> Result<(), Error> {
    let broker = Broker::new();
    let mut sub = broker.subscribe("h")?;
    let headers = Headers::builder().insert("Trace", "t-1")?.build();
    let msg = Message::new(Subject::new("h")?, "body")
        .with_reply(Subject::new("back")?)
        .with_headers(headers.clone());
    broker.publish_message(&msg);
    let got = next(&mut sub).await;
    assert_eq!(got, msg);
    assert_eq!(
        got.headers.as_ref().and_then(|h| h.get("Trace")),
        Some("t-1")
    );
    Ok(())
}

/// A sink that counts what it is given.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Sink for Counter {
    fn deliver(&self, _sub: &Subscriber, _msg: &Message, _ctx: &mut DeliveryCtx) -> Delivery {
        self.0.fetch_add(1, Ordering::SeqCst);
        Delivery::Delivered
    }
}

#[tokio::test]
async fn echo_false_skips_the_publishing_connection() -> Result<(), Error> {
    let broker = Broker::new();
    let me = broker.new_conn_id();
    let them = broker.new_conn_id();
    let mine = Arc::new(Counter::default());
    let theirs = Arc::new(Counter::default());
    let mut spec = SubscribeSpec::new(pattern("room"), me);
    spec.echo = false;
    broker.subscribe_sink(spec, mine.clone());
    broker.subscribe_sink(SubscribeSpec::new(pattern("room"), them), theirs.clone());
    let msg = Message::new(Subject::new("room")?, "hi");
    assert_eq!(broker.publish_from(me, &msg), 1);
    assert_eq!(broker.publish_from(them, &msg), 2);
    let mut publisher = broker.publisher(me);
    assert_eq!(publisher.publish(&msg), 1);
    assert_eq!(mine.0.load(Ordering::SeqCst), 1);
    assert_eq!(theirs.0.load(Ordering::SeqCst), 3);
    assert_ne!(me, ConnId(0));
    Ok(())
}

#[tokio::test]
async fn publisher_cache_sees_new_subscriptions() -> Result<(), Error> {
    let broker = Broker::new();
    let mut publisher = broker.publisher(broker.new_conn_id());
    let msg = Message::new(Subject::new("cache.me")?, "x");
    assert_eq!(publisher.publish(&msg), 0);
    let first = broker.subscribe("cache.*")?;
    assert_eq!(publisher.publish(&msg), 1);
    let second = broker.subscribe("cache.>")?;
    assert_eq!(publisher.publish(&msg), 2);
    drop(first);
    assert_eq!(publisher.publish(&msg), 1);
    drop(second);
    assert_eq!(publisher.publish(&msg), 0);
    // A publisher adds its counts to the broker's at the end of each batch.
    assert_eq!(broker.stats().msgs_in, 0);
    publisher.finish_batch();
    let stats = broker.stats();
    assert_eq!(stats.msgs_in, 5);
    assert_eq!(stats.msgs_out, 4);
    Ok(())
}

fn wire(s: &str) -> Subject {
    Subject::from_wire_unchecked(bytes::Bytes::copy_from_slice(s.as_bytes()))
}

fn redis_sub(broker: &Broker, interest: Interest) -> Arc<Counter> {
    let counter = Arc::new(Counter::default());
    broker.subscribe_sink(
        SubscribeSpec::with_interest(interest, broker.new_conn_id()),
        counter.clone(),
    );
    counter
}

#[tokio::test]
async fn redis_channels_match_exactly_globs_match_any_subject() {
    let broker = Broker::new();
    let b = |s: &'static str| bytes::Bytes::from_static(s.as_bytes());
    let exact = redis_sub(&broker, Interest::Channel(b("news.*")));
    let spaced = redis_sub(&broker, Interest::Channel(b("room one")));
    let glob = redis_sub(&broker, Interest::Glob(b("news.*")));
    let shard = redis_sub(&broker, Interest::Shard(b("news.x")));
    let mut nats = broker.subscribe("news.*").expect("pattern");
    let count = |s: &str| broker.publish_message(&Message::new(wire(s), "m"));
    assert_eq!(
        count("news.x"),
        2,
        "glob and NATS pattern, not the exact channel"
    );
    assert_eq!(count("news.*"), 3, "the exact channel too");
    assert_eq!(count("news.a.b"), 1, "a glob `*` spans dots");
    assert_eq!(count("room one"), 1, "a channel that is no token subject");
    assert_eq!(exact.0.load(Ordering::SeqCst), 1);
    assert_eq!(spaced.0.load(Ordering::SeqCst), 1);
    assert_eq!(glob.0.load(Ordering::SeqCst), 3);
    assert_eq!(
        shard.0.load(Ordering::SeqCst),
        0,
        "shards see only SPUBLISH"
    );
    assert_eq!(
        broker.publish_shard(ConnId(0), &Message::new(wire("news.x"), "s")),
        1
    );
    assert_eq!(shard.0.load(Ordering::SeqCst), 1);
    assert_eq!(nats.pending(), 2);
    next(&mut nats).await;

    assert_eq!(broker.channel_subscribers(b"news.*"), 1);
    assert_eq!(broker.channel_subscribers(b"room one"), 1);
    assert_eq!(broker.glob_patterns(), 1);
    assert_eq!(broker.shard_subscribers(b"news.x"), 1);
    let names = broker.channel_names(None);
    assert!(names.iter().any(|n| n == "news.*") && names.iter().any(|n| n == "room one"));
    assert_eq!(broker.channel_names(Some(b"room*")), [b("room one")]);
    assert_eq!(broker.shard_names(None), [b("news.x")]);
}

#[tokio::test]
async fn literal_token_subscriptions_count_as_channels() {
    let broker = Broker::new();
    let _a = broker.subscribe("orders.new").expect("sub");
    let _b = broker.subscribe("orders.*").expect("sub");
    assert_eq!(broker.channel_subscribers(b"orders.new"), 1);
    assert_eq!(
        broker.channel_names(None),
        [bytes::Bytes::from_static(b"orders.new")]
    );
}

#[tokio::test]
async fn header_filters_decide_delivery() {
    let broker = Broker::new();
    let filter = herald_core::HeaderFilter::new(r#"region == "eu" && priority >= 3"#).unwrap();
    let mut eu = broker
        .subscribe_with(SubscribeOptions::new(Pattern::new("orders.>").unwrap()).filter(filter))
        .unwrap();
    let headers = |region: &str, priority: &str| {
        Headers::builder()
            .insert("region", region)
            .unwrap()
            .insert("priority", priority)
            .unwrap()
            .build()
    };
    let subject = Subject::new("orders.new").unwrap();
    for (region, priority, body) in [("us", "5", "a"), ("eu", "1", "b"), ("eu", "4", "c")] {
        let msg = Message::new(subject.clone(), body).with_headers(headers(region, priority));
        broker.publish_message(&msg);
    }
    broker.publish(subject, "no headers").unwrap();
    let got = next(&mut eu).await;
    assert_eq!(got.payload.as_ref(), b"c");
    assert_eq!(eu.pending(), 0, "only the matching message was delivered");
}

#[test]
fn deferred_work_runs_once_per_task_per_batch() {
    struct Count(AtomicUsize);
    impl herald_core::Deferred for Count {
        fn run(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    let task = Arc::new(Count(AtomicUsize::new(0)));
    let mut ctx = DeliveryCtx::new();
    for _ in 0..3 {
        ctx.defer(task.clone());
    }
    ctx.wake_all();
    assert_eq!(
        task.0.load(Ordering::Relaxed),
        1,
        "asked three times, run once"
    );
    ctx.wake_all();
    assert_eq!(
        task.0.load(Ordering::Relaxed),
        1,
        "nothing left for the next batch"
    );
}
