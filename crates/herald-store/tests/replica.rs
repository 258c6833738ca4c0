//! A replicated stream through the store's public API, with a replicator
//! that plays the consensus log in memory: the leader proposes what it
//! captures and stores nothing until a round is applied; two replicas
//! applying the same rounds agree on every sequence, duplicate and expiry;
//! a replica restarted from disk remembers the last round it applied and
//! applying an old round again changes nothing.

use std::sync::Arc;

use herald_core::{Broker, Headers, Message, Subject};
use herald_store::{AppliedMark, Proposal, Replicator, Store, StreamConfig, SyncPolicy};
use parking_lot::Mutex;

#[derive(Debug, Default)]
struct Log(Mutex<Vec<Proposal>>);

impl Replicator for Log {
    fn propose(&self, proposal: Proposal) {
        self.0.lock().push(proposal);
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
