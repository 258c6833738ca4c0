//! The fault loop (`scripts/fault-loop`; not in the default suite): three
//! nodes behind fault-injecting route proxies hold a stream of three
//! replicas while a publisher sends numbered messages through whichever
//! node answers, each retried under its message id until acked. Each round
//! SIGKILLs and restarts a node, SIGSTOPs and continues one, or cuts one
//! off and heals. At the end every replica holds the same messages, every
//! acked message is there at the sequence its ack gave, and none is there
//! twice. Beside it a work queue of three replicas is fed the same way and
//! drained by a worker pulling through whichever node answers, double-acking
//! each job: at the end every acked job was confirmed once (a confirmed ack
//! is never undone by a fault) and every replica of the queue is empty.
//! `HERALD_FAULT_ROUNDS` sets the rounds (default 50).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use parking_lot::Mutex;
use rand::Rng;

use crate::partition::{
    Faults, behind, create_replicated, replica_state, three_behind_proxies, try_publish,
};

const PATIENCE: Duration = Duration::from_secs(60);

/// Where each node's NATS clients connect now (`None` while it is down).
type Addrs = Arc<Mutex<Vec<Option<SocketAddr>>>>;

/// JetStream contexts on whichever nodes are up, one client per node.
#[derive(Default)]
struct Clients(HashMap<SocketAddr, jetstream::Context>);

impl Clients {
    /// A context on the `turn`-th live node, if one connects.
    async fn next(&mut self, addrs: &Addrs, turn: usize) -> Option<&jetstream::Context> {
        let live: Vec<SocketAddr> = addrs.lock().iter().flatten().copied().collect();
        let Some(&addr) = live.get(turn % live.len().max(1)) else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            return None;
        };
        match self.0.entry(addr) {
            std::collections::hash_map::Entry::Occupied(e) => Some(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(e) => {
                let connect = async_nats::ConnectOptions::new()
                    .connection_timeout(Duration::from_secs(1))
                    .connect(addr.to_string());
                match tokio::time::timeout(Duration::from_secs(2), connect).await {
                    Ok(Ok(client)) => Some(e.insert(jetstream::new(client))),
                    _ => None,
                }
            }
        }
    }
}

/// Publishes message 1, 2, … (`{prefix}{n}` on `subject`) through any live
/// node; records each ack.
async fn publisher(
    (subject, prefix): (&'static str, &'static str),
    addrs: Addrs,
    acked: Arc<Mutex<HashMap<u64, u64>>>,
    done: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
) {
    let mut clients = Clients::default();
    let mut next = 1u64;
    let mut turn = 0usize;
    while !done.load(Ordering::Relaxed) {
        turn += 1;
        let Some(js) = clients.next(&addrs, turn).await else {
            continue;
        };
        let id = format!("{prefix}{next}");
        if let Some(seq) = try_publish(js, subject, &id, &id).await {
            acked.lock().insert(next, seq);
            count.store(next, Ordering::Relaxed);
            next += 1;
        }
    }
}

/// What the worker saw: the jobs it received, and how often each job's ack
/// was confirmed.
#[derive(Default)]
struct Worked {
    received: Mutex<std::collections::HashSet<String>>,
    confirmed: Mutex<HashMap<String, u32>>,
}

/// Pulls jobs from work queue `W3` through any live node and double-acks each.
async fn worker(addrs: Addrs, worked: Arc<Worked>, done: Arc<AtomicBool>) {
    let mut clients = Clients::default();
    let mut turn = 0usize;
    while !done.load(Ordering::Relaxed) {
        turn += 1;
        let Some(js) = clients.next(&addrs, turn).await else {
            continue;
        };
        let pulled = async {
            let stream = js.get_stream("W3").await.ok()?;
            let consumer: consumer::PullConsumer = stream.get_consumer("w").await.ok()?;
            consumer
                .fetch()
                .max_messages(20)
                .expires(Duration::from_millis(500))
                .messages()
                .await
                .ok()
        };
        let Ok(Some(mut batch)) = tokio::time::timeout(Duration::from_secs(3), pulled).await else {
            continue;
        };
        while let Ok(Some(Ok(msg))) =
            tokio::time::timeout(Duration::from_secs(3), batch.next()).await
        {
            let id = String::from_utf8_lossy(&msg.payload).into_owned();
            worked.received.lock().insert(id.clone());
            if let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(3), msg.double_ack()).await
            {
                *worked.confirmed.lock().entry(id).or_default() += 1;
            }
        }
    }
}

/// Waits until the publisher has `more` acks beyond where it was.
async fn progress(count: &AtomicU64, more: u64) {
    let from = count.load(Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while count.load(Ordering::Relaxed) < from + more {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no progress after {from} acks"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[tokio::test]
#[ignore = "minutes long: run it with scripts/fault-loop"]
async fn fault_loop() {
    let rounds: usize = std::env::var("HERALD_FAULT_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50);
    let faults = Arc::new(Faults::default());
    let (nodes, proxies) = three_behind_proxies(&faults).await;
    let mut nodes: Vec<(String, Option<crate::cluster::Node>)> =
        nodes.into_iter().map(|(n, node)| (n, Some(node))).collect();
    let js = jetstream::new(nodes[0].1.as_ref().expect("up").nats().await);
    let config = stream::Config {
        name: "F3".into(),
        subjects: vec!["f3.>".into()],
        num_replicas: 3,
        duplicate_window: Duration::from_secs(3600),
        ..Default::default()
    };
    create_replicated(&js, config).await;
    let queue = stream::Config {
        name: "W3".into(),
        subjects: vec!["w3.>".into()],
        num_replicas: 3,
        retention: stream::RetentionPolicy::WorkQueue,
        duplicate_window: Duration::from_secs(3600),
        ..Default::default()
    };
    let queue = create_replicated(&js, queue).await;
    let workers = consumer::pull::Config {
        durable_name: Some("w".into()),
        ack_wait: Duration::from_secs(2),
        ..Default::default()
    };
    queue.create_consumer(workers).await.expect("consumer");

    let addrs: Addrs = Arc::new(Mutex::new(
        nodes
            .iter()
            .map(|(_, n)| n.as_ref().map(|n| n.nats))
            .collect(),
    ));
    let acked = Arc::new(Mutex::new(HashMap::new()));
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let publishing = tokio::spawn(publisher(
        ("f3.x", "m"),
        addrs.clone(),
        acked.clone(),
        done.clone(),
        count.clone(),
    ));
    let jobs = Arc::new(Mutex::new(HashMap::new()));
    let feeding = tokio::spawn(publisher(
        ("w3.x", "w"),
        addrs.clone(),
        jobs.clone(),
        done.clone(),
        Arc::new(AtomicU64::new(0)),
    ));
    let worked = Arc::new(Worked::default());
    let drained = Arc::new(AtomicBool::new(false));
    let working = tokio::spawn(worker(addrs.clone(), worked.clone(), drained.clone()));
    progress(&count, 20).await;

    for round in 1..=rounds {
        let (kind, victim, pause) = {
            let mut rng = rand::rng();
            (
                rng.random_range(0..3),
                rng.random_range(0..3usize),
                rng.random_range(500..3000),
            )
        };
        let pause = Duration::from_millis(pause);
        let name = nodes[victim].0.clone();
        match kind {
            0 => {
                eprintln!("round {round}/{rounds}: SIGKILL {name}, restart after {pause:?}");
                let node = nodes[victim].1.take().expect("up");
                addrs.lock()[victim] = None;
                let data = node.kill();
                tokio::time::sleep(pause).await;
                let peer = proxies[(victim + 1) % 3].addr;
                let node = behind(&name, &proxies[victim], &[peer], Some(data));
                addrs.lock()[victim] = Some(node.nats);
                nodes[victim].1 = Some(node);
            }
            1 => {
                eprintln!("round {round}/{rounds}: SIGSTOP {name} for {pause:?}");
                let pid = nodes[victim].1.as_ref().expect("up").pid();
                signal(pid, "-STOP");
                tokio::time::sleep(pause).await;
                signal(pid, "-CONT");
            }
            _ => {
                eprintln!("round {round}/{rounds}: cut {name} off for {pause:?}");
                faults.isolate(&name);
                tokio::time::sleep(pause).await;
                faults.heal();
            }
        }
        progress(&count, 5).await;
    }
    done.store(true, Ordering::Relaxed);
    publishing.await.expect("publisher");
    feeding.await.expect("job publisher");

    // Every replica converges on the same messages.
    let acked = acked.lock().clone();
    let last = acked.values().copied().max().unwrap_or(0);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut state = None;
    for (name, node) in &nodes {
        let node = node.as_ref().expect("up");
        loop {
            let now = replica_state(node, "F3").await;
            if now.is_some_and(|(_, l)| l >= last) && (state.is_none() || now == state) {
                state = now;
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} holds {now:?}, others {state:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Every acked message at its acked sequence, none twice.
    let node = nodes[0].1.as_ref().expect("up");
    let stream = jetstream::new(node.nats().await)
        .get_stream("F3")
        .await
        .expect("stream");
    let (messages, last_seq) = state.expect("a state");
    let mut seen: HashMap<String, u64> = HashMap::new();
    for seq in 1..=last_seq {
        let msg = stream.get_raw_message(seq).await.expect("stored");
        let id = String::from_utf8_lossy(&msg.payload).into_owned();
        if let Some(first) = seen.insert(id.clone(), seq) {
            panic!("{id} stored twice: seq {first} and {seq}");
        }
    }
    assert_eq!(
        messages, last_seq,
        "no gaps: nothing is deleted in this stream"
    );
    for (id, seq) in &acked {
        assert_eq!(seen.get(&format!("m{id}")), Some(seq), "acked m{id}");
    }
    // Every acked job reaches the worker, the queue empties on every replica
    // (every job acked), and no confirmed ack is undone (a job confirmed twice).
    let jobs: Vec<String> = jobs.lock().keys().map(|n| format!("w{n}")).collect();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let missing: Vec<String> = {
            let received = worked.received.lock();
            jobs.iter()
                .filter(|j| !received.contains(*j))
                .cloned()
                .collect()
        };
        if missing.is_empty() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let mut states = Vec::new();
            for (_, node) in &nodes {
                states.push(replica_state(node.as_ref().expect("up"), "W3").await);
            }
            panic!(
                "{} of {} jobs never reached the worker ({:?}…); queue replicas {states:?}",
                missing.len(),
                jobs.len(),
                &missing[..missing.len().min(5)]
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, last_job) = jobs_state(&nodes).await;
    drained.store(true, Ordering::Relaxed);
    working.await.expect("worker");
    let twice: Vec<(String, u32)> = worked
        .confirmed
        .lock()
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(j, n)| (j.clone(), *n))
        .collect();
    assert!(twice.is_empty(), "acks confirmed more than once: {twice:?}");
    eprintln!(
        "fault loop: {rounds} rounds, {} acked, {messages} stored, all replicas equal; \
         {} jobs worked once each, the queue empty on every replica (last seq {last_job})",
        acked.len(),
        jobs.len()
    );
}

/// Waits until every replica of the work queue is empty at the same last
/// sequence; that state.
async fn jobs_state(nodes: &[(String, Option<crate::cluster::Node>)]) -> (u64, u64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut state = None;
    for (name, node) in nodes {
        let node = node.as_ref().expect("up");
        loop {
            let now = replica_state(node, "W3").await;
            if now.is_some_and(|(m, _)| m == 0) && (state.is_none() || now == state) {
                state = now;
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}'s queue holds {now:?}, others {state:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    state.unwrap_or_default()
}
