//! A replicated stream through the store's public API, with a replicator
//! that plays the consensus log in memory: the leader proposes what it
//! captures and stores nothing until a round is applied; two replicas
//! applying the same rounds agree on every sequence, duplicate and expiry;
//! a replica restarted from disk remembers the last round it applied and
//! applying an old round again changes nothing; a work-queue consumer's
//! progress, proposed by the leader's consumer and applied on both, removes
//! the same acked messages from both, and the follower made leader goes on
//! from it.

use std::sync::Arc;

use std::time::Duration;

use futures::StreamExt;
use herald_core::{Broker, Headers, Message, Subject};
use herald_store::{
    AppliedMark, ConsumerApplied, ConsumerUpdate, CreateAction, Proposal, Replicator, Store,
    StreamConfig, SyncPolicy,
};
use parking_lot::Mutex;

/// The consensus log, in memory: what the leader proposed, in order.
#[derive(Default)]
struct Log(
    Mutex<Vec<Proposal>>,
    Mutex<Vec<(ConsumerUpdate, ConsumerApplied)>>,
);

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Log")
    }
}

impl Replicator for Log {
    fn propose(&self, proposal: Proposal) {
        self.0.lock().push(proposal);
    }

    fn propose_consumer(&self, update: ConsumerUpdate, applied: ConsumerApplied) {
        self.1.lock().push((update, applied));
    }
}

fn config() -> StreamConfig {
    serde_json::from_value(serde_json::json!({
        "name": "R", "subjects": ["r.>"], "num_replicas": 3,
        "duplicate_window": 60_000_000_000_i64
    }))
    .expect("config")
}

fn open(dir: &std::path::Path) -> (Broker, Store) {
    let broker = Broker::new();
    let store = Store::open(dir, broker.clone(), SyncPolicy::Always).expect("store");
    (broker, store)
}

fn msg(subject: &str, id: Option<&str>) -> Message {
    let mut m = Message::new(Subject::new(subject).expect("subject"), "x");
    if let Some(id) = id {
        m.headers = Headers::builder()
            .insert("Nats-Msg-Id", id)
            .ok()
            .map(|b| b.build());
    }
    m
}

fn mark(index: u64) -> AppliedMark {
    AppliedMark {
        index,
        term: 1,
        node: 7,
    }
}

#[tokio::test]
async fn replicas_store_only_what_is_applied_and_agree() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_broker, a) = open(a_dir.path());
    let (_b_broker, b) = open(b_dir.path());
    // One node alone may not ask for replicas.
    assert_eq!(a.create_stream(config()).unwrap_err().err_code, 10074);
    a.create_replica(config()).expect("replica a");
    b.create_replica(config()).expect("replica b");
    let (sa, sb) = (a.stream("R").unwrap(), b.stream("R").unwrap());
    assert!(sa.is_replicated());

    // A follower captures nothing.
    a_broker.publish_message(&msg("r.1", None));
    assert_eq!(sa.state().messages, 0);

    let log = Arc::new(Log::default());
    sa.set_leader(Some(log.clone()));
    for (subject, id) in [("r.1", Some("one")), ("r.2", None), ("r.1", Some("one"))] {
        a_broker.publish_message(&msg(subject, id));
    }
    // Proposed, not stored.
    let proposals: Vec<Proposal> = loop {
        let taken = std::mem::take(&mut *log.0.lock());
        if taken.iter().map(|p| p.messages.len()).sum::<usize>() == 3 {
            break taken;
        }
        log.0.lock().extend(taken);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    assert_eq!(sa.state().messages, 0);

    let mut index = 10;
    for p in &proposals {
        index += 1;
        let on_a = sa.apply(p.now, &p.messages, mark(index));
        let on_b = sb.apply(p.now, &p.messages, mark(index));
        let seqs = |o: &[Result<herald_store::PubAck, herald_store::ApiError>]| {
            o.iter()
                .map(|r| {
                    r.as_ref()
                        .map(|a| (a.seq, a.duplicate))
                        .map_err(|e| e.err_code)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(seqs(&on_a), seqs(&on_b));
    }
    // The duplicate id was stored once, on both.
    for s in [&sa, &sb] {
        let state = s.state();
        assert_eq!((state.messages, state.last_seq), (2, 2));
        assert_eq!(s.applied(), Some(mark(index)));
        assert_eq!(s.get(1).unwrap().time, sa.get(1).unwrap().time);
    }

    // Restarted from disk, b remembers where it was; an old round is not
    // applied twice, a new one is.
    drop((sb, b));
    let (_b_broker, b) = open(b_dir.path());
    let sb = b.stream("R").unwrap();
    assert!(sb.is_replicated());
    assert_eq!(sb.applied(), Some(mark(index)));
    let again = &proposals[0];
    assert!(sb.apply(again.now, &again.messages, mark(index)).is_empty());
    let more = [msg("r.3", None)];
    let stored = sb.apply(again.now, &more, mark(index + 1));
    assert_eq!(stored[0].as_ref().map(|a| a.seq).ok(), Some(3));
    assert_eq!(sb.state().messages, 3);
}

fn work_queue() -> StreamConfig {
    serde_json::from_value(serde_json::json!({
        "name": "W", "subjects": ["w.>"], "num_replicas": 3, "retention": "workqueue"
    }))
    .expect("config")
}

/// Waits until the leader proposed something, and takes it.
async fn taken<T>(entries: &Mutex<Vec<T>>) -> Vec<T> {
    for _ in 0..1000 {
        let taken = std::mem::take(&mut *entries.lock());
        if !taken.is_empty() {
            return taken;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("nothing proposed");
}

#[tokio::test]
async fn consumer_progress_is_applied_alike_and_the_next_leader_goes_on() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_broker, a) = open(a_dir.path());
    let (b_broker, b) = open(b_dir.path());
    a.create_replica(work_queue()).expect("replica a");
    b.create_replica(work_queue()).expect("replica b");
    let (sa, sb) = (a.stream("W").unwrap(), b.stream("W").unwrap());
    let log = Arc::new(Log::default());
    a.set_stream_leader("W", Some(log.clone()));
    let mut index = 0;
    let mut next_mark = || {
        index += 1;
        mark(index)
    };

    // Five messages, applied on both.
    for i in 0..5 {
        a_broker.publish_message(&msg(&format!("w.{i}"), None));
    }
    let mut rounds = 0;
    while rounds < 5 {
        for p in taken(&log.0).await {
            let m = next_mark();
            sa.apply(p.now, &p.messages, m);
            sb.apply(p.now, &p.messages, m);
            rounds += p.messages.len();
        }
    }
    // A consumer asked of the stream's replica directly is refused: it
    // goes through the group, which creates it on both.
    let config: herald_store::ConsumerConfig = serde_json::from_value(serde_json::json!({
        "durable_name": "c", "ack_policy": "explicit"
    }))
    .expect("consumer config");
    let refused = a.create_consumer("W", Some("c"), config.clone(), CreateAction::Create);
    assert_eq!(refused.unwrap_err().err_code, 10011);
    for store in [&a, &b] {
        let info = store
            .create_replicated_consumer("W", "c", config.clone(), CreateAction::Create, 1)
            .expect("created");
        assert_eq!(info.num_pending, 5);
    }
    let m = next_mark();
    sa.note_applied(m);
    sb.note_applied(m);

    // Pulled from the leader (the follower does not deliver): five, three acked.
    let mut inbox = a_broker.subscribe("_INBOX.pull").expect("inbox");
    let request = Message::new(
        Subject::new("$JS.API.CONSUMER.MSG.NEXT.W.c").expect("subject"),
        r#"{"batch":5,"expires":5000000000}"#,
    )
    .with_reply(Subject::new("_INBOX.pull").expect("inbox"));
    let mut b_inbox = b_broker.subscribe("_INBOX.pull").expect("inbox on b");
    b_broker.publish_message(&request);
    a_broker.publish_message(&request);
    let mut acks = Vec::new();
    for _ in 0..5 {
        let delivery = tokio::time::timeout(Duration::from_secs(10), inbox.next())
            .await
            .expect("in time")
            .expect("a delivery");
        acks.push(delivery.reply.expect("an ack subject"));
    }
    let from_b = tokio::time::timeout(Duration::from_millis(100), b_inbox.next()).await;
    assert!(from_b.is_err(), "the follower delivered {from_b:?}");
    for ack in &acks[..3] {
        a_broker.publish_message(&Message::new(ack.clone(), "+ACK"));
    }
    // Acks reach the leader's consumer; nothing is removed until applied.
    let mut applied_acks = 0;
    while applied_acks < 3 {
        for (update, applied) in taken(&log.1).await {
            let m = next_mark();
            a.apply_consumer_update("W", &update, 2, m)
                .expect("applied on a");
            b.apply_consumer_update("W", &update, 2, m)
                .expect("applied on b");
            applied(true);
            applied_acks = 5 - sa.state().messages;
        }
    }
    for (store, stream) in [(&a, &sa), (&b, &sb)] {
        assert_eq!(stream.state().messages, 2);
        let info = store.consumer("W", "c").expect("consumer").info();
        assert_eq!((info.num_ack_pending, info.delivered.stream_seq), (2, 5));
        assert_eq!(info.ack_floor.stream_seq, 3);
    }

    // b leads now: its consumer delivers what a delivered and nobody acked
    // (after its ack wait, as a restored consumer does) — not before.
    a.set_stream_leader("W", None);
    let log_b = Arc::new(Log::default());
    b.set_stream_leader("W", Some(log_b.clone()));
    let info = b.consumer("W", "c").expect("consumer").info();
    assert_eq!((info.num_ack_pending, info.num_pending), (2, 0));
}

#[tokio::test]
async fn a_restarted_replica_remembers_the_ids_of_removed_messages() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_a_broker, a) = open(a_dir.path());
    let (_b_broker, b) = open(b_dir.path());
    a.create_replica(config()).expect("replica a");
    b.create_replica(config()).expect("replica b");
    let now = herald_store::time::now_nanos();
    let first = [msg("r.1", Some("once")), msg("r.2", Some("twice"))];
    for store in [&a, &b] {
        let stream = store.stream("R").unwrap();
        stream.apply(now, &first, mark(1));
        // The message with id "once" is removed (a work queue's ack, say).
        stream.apply_delete(1, now, mark(2)).expect("deleted");
    }
    // b restarts: its duplicate window must still hold "once".
    drop(b);
    let (_b_broker, b) = open(b_dir.path());
    let retry = [msg("r.1", Some("once")), msg("r.3", None)];
    let outcomes: Vec<Vec<(u64, bool)>> = [&a, &b]
        .iter()
        .map(|store| {
            store
                .stream("R")
                .unwrap()
                .apply(now + 1, &retry, mark(3))
                .into_iter()
                .map(|o| o.map(|ack| (ack.seq, ack.duplicate)).expect("stored"))
                .collect()
        })
        .collect();
    assert_eq!(outcomes[0], [(1, true), (3, false)]);
    assert_eq!(outcomes[0], outcomes[1], "replicas agree");
    // And again after a second restart, with the file rewritten by nothing.
    drop(b);
    let (_b_broker, b) = open(b_dir.path());
    assert_eq!(b.stream("R").unwrap().state().last_seq, 3);
}

#[tokio::test]
async fn an_install_cut_short_by_a_crash_leaves_the_old_replica_or_the_new() {
    let dir = tempfile::tempdir().unwrap();
    let streams = dir.path().join("streams");
    {
        let (_broker, store) = open(dir.path());
        store.create_replica(config()).expect("replica");
        let stream = store.stream("R").unwrap();
        stream.apply(
            herald_store::time::now_nanos(),
            &[msg("r.1", None)],
            mark(1),
        );
        stream.sync().expect("synced");
        store.close();
    }
    // A crash between the two renames: the old replica aside, the new one
    // still staged. The old one comes back; the staged one goes.
    std::fs::rename(streams.join("R"), streams.join(".old-R")).unwrap();
    std::fs::create_dir_all(streams.join(".install-R")).unwrap();
    std::fs::write(streams.join(".install-R").join("stream.json"), "{}").unwrap();
    {
        let (_broker, store) = open(dir.path());
        assert_eq!(store.stream_names(None), ["R"]);
        let stream = store.stream("R").unwrap();
        assert_eq!(
            (stream.state().messages, stream.applied()),
            (1, Some(mark(1)))
        );
        store.close();
    }
    let left: Vec<String> = std::fs::read_dir(&streams)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    assert_eq!(left, ["R"]);

    // A crash after them: the new replica is in place, the old one goes.
    let (_broker, store) = open(dir.path());
    store.close();
    drop(store);
    std::fs::create_dir_all(streams.join(".old-R")).unwrap();
    let (_broker, store) = open(dir.path());
    assert_eq!(store.stream("R").unwrap().state().messages, 1);
    assert!(!streams.join(".old-R").exists());
}

#[tokio::test]
async fn a_new_consumer_keeps_its_starting_point_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, store) = open(dir.path());
    store.create_replica(config()).expect("replica");
    let stream = store.stream("R").unwrap();
    let now = herald_store::time::now_nanos();
    stream.apply(now, &[msg("r.1", None), msg("r.2", None)], mark(1));
    let new_only: herald_store::ConsumerConfig = serde_json::from_value(serde_json::json!({
        "durable_name": "c", "ack_policy": "explicit", "deliver_policy": "new"
    }))
    .expect("consumer config");
    store
        .create_replicated_consumer("R", "c", new_only, CreateAction::Create, now)
        .expect("created");
    stream.apply_mark(now, mark(2));
    stream.apply(now, &[msg("r.3", None)], mark(3));
    assert_eq!(store.consumer("R", "c").unwrap().info().num_pending, 1);
    store.close();
    drop((stream, store));
    // Restarted: it still starts after message 2, as on every other replica.
    let (_broker, store) = open(dir.path());
    assert_eq!(store.consumer("R", "c").unwrap().info().num_pending, 1);
}
