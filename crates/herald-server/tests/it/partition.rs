//! A partition made with a fault-injecting proxy in front of each node's
//! route listener (each node advertises its proxy, so every route passes
//! through one). The proxy reads the dialer's `INFO` to learn who is
//! dialing, and cuts every route to or from an isolated node.
//!
//! The stream's leader is cut off from the other two: its side cannot
//! commit, so what is published there is never acked; the majority elects
//! a leader and goes on acking; when the partition heals the old leader
//! catches up and every replica holds exactly the acked messages.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::cluster::{Node, node_in};

const PATIENCE: Duration = Duration::from_secs(30);

/// Which nodes are cut off, and the live connections to cut.
#[derive(Default)]
pub(crate) struct Faults {
    isolated: Mutex<HashSet<String>>,
    /// (dialer, acceptor, the task relaying it).
    live: Mutex<Vec<(String, String, tokio::task::AbortHandle)>>,
}

impl Faults {
    /// Cuts every route to or from `node`, now and until healed.
    pub(crate) fn isolate(&self, node: &str) {
        self.isolated.lock().insert(node.to_owned());
        self.live.lock().retain(|(from, to, task)| {
            let cut = from == node || to == node;
            if cut {
                task.abort();
            }
            !cut
        });
    }

    /// Lets every node reach every other again.
    pub(crate) fn heal(&self) {
        self.isolated.lock().clear();
    }

    fn cut(&self, from: &str, to: &str) -> bool {
        let isolated = self.isolated.lock();
        isolated.contains(from) || isolated.contains(to)
    }
}

/// A proxy in front of node `behind`'s route listener.
pub(crate) struct RouteProxy {
    pub(crate) addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
}

impl RouteProxy {
    pub(crate) async fn start(behind: &str, faults: Arc<Faults>) -> RouteProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("address");
        let target: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let (to, behind) = (target.clone(), behind.to_owned());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (to, behind, faults) = (to.clone(), behind.clone(), faults.clone());
                tokio::spawn(relay(client, to, behind, faults));
            }
        });
        RouteProxy { addr, target }
    }

    /// Where the node behind it listens, once it has (re)started.
    pub(crate) fn points_to(&self, route: SocketAddr) {
        *self.target.lock() = Some(route);
    }
}

/// Relays one route unless it is cut: the dialer's first frame is its
/// `INFO` (op 1, a big-endian length, JSON with the node's name).
async fn relay(
    mut client: TcpStream,
    target: Arc<Mutex<Option<SocketAddr>>>,
    behind: String,
    faults: Arc<Faults>,
) {
    let mut head = [0u8; 5];
    if client.read_exact(&mut head).await.is_err() || head[0] != 1 {
        return;
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0; len];
    if len > 1 << 16 || client.read_exact(&mut body).await.is_err() {
        return;
    }
    let dialer = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["node"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let Some(target) = *target.lock() else {
        return;
    };
    if faults.cut(&dialer, &behind) {
        return;
    }
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    if server.write_all(&head).await.is_err() || server.write_all(&body).await.is_err() {
        return;
    }
    let task = tokio::spawn(async move {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    });
    faults
        .live
        .lock()
        .push((dialer, behind, task.abort_handle()));
}

/// Node `name` behind `proxy`, which it advertises, dialing `peers`;
/// on `data` if given (a restart), else fresh.
pub(crate) fn behind(
    name: &str,
    proxy: &RouteProxy,
    peers: &[SocketAddr],
    data: Option<tempfile::TempDir>,
) -> Node {
    let extra = ["--cluster-advertise".into(), proxy.addr.to_string().into()];
    let data = data.unwrap_or_else(|| tempfile::tempdir().expect("temp dir"));
    let node = node_in(name, "test", "s3cret", peers, (&extra, &[]), data);
    proxy.points_to(node.route);
    node
}

/// Three nodes, each behind a proxy it advertises; b and c know a's proxy.
pub(crate) async fn three_behind_proxies(
    faults: &Arc<Faults>,
) -> (Vec<(String, Node)>, Vec<RouteProxy>) {
    let mut nodes = Vec::new();
    let mut proxies: Vec<RouteProxy> = Vec::new();
    for name in ["a", "b", "c"] {
        let proxy = RouteProxy::start(name, faults.clone()).await;
        let peers: Vec<SocketAddr> = proxies.first().map(|p| p.addr).into_iter().collect();
        nodes.push((name.to_owned(), behind(name, &proxy, &peers, None)));
        proxies.push(proxy);
    }
    for (name, node) in &nodes {
        let others: Vec<&str> = ["a", "b", "c"].into_iter().filter(|n| n != name).collect();
        node.routed_to(&others).await;
    }
    (nodes, proxies)
}

fn config() -> stream::Config {
    stream::Config {
        name: "P3".into(),
        subjects: vec!["p3.>".into()],
        num_replicas: 3,
        ..Default::default()
    }
}

/// Creates a replicated stream, retrying while the cluster's meta group
/// forms (a few seconds after the nodes mesh).
pub(crate) async fn create_replicated(
    js: &jetstream::Context,
    config: stream::Config,
) -> stream::Stream {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match js.create_stream(config.clone()).await {
            Ok(stream) => return stream,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no replicated stream: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Publishes `payload` as message `id` until acked (the same message id
/// each try, so a stored try is not stored again); its seq.
pub(crate) async fn publish_acked(
    js: &jetstream::Context,
    subject: &str,
    id: &str,
    payload: &str,
) -> u64 {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(seq) = try_publish(js, subject, id, payload).await {
            return seq;
        }
        assert!(tokio::time::Instant::now() < deadline, "{id} never acked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One publish of `payload` as message `id`, waiting two seconds for the ack.
pub(crate) async fn try_publish(
    js: &jetstream::Context,
    subject: &str,
    id: &str,
    payload: &str,
) -> Option<u64> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", id);
    let ack = js
        .publish_with_headers(subject.to_owned(), headers, Bytes::from(payload.to_owned()))
        .await
        .ok()?;
    match tokio::time::timeout(Duration::from_secs(2), ack).await {
        Ok(Ok(ack)) => Some(ack.sequence),
        _ => None,
    }
}

/// Polls `probe` until it gives `want` (for a minute at most); panics
/// with `what` and the last answer otherwise.
pub(crate) async fn eventually<T, F>(what: &str, want: T, mut probe: impl FnMut() -> F)
where
    T: PartialEq + std::fmt::Debug,
    F: std::future::Future<Output = T>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let seen = probe().await;
        if seen == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {seen:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `node`'s replica of `stream`: (messages, last seq), if it answers.
pub(crate) async fn replica_state(node: &Node, stream: &str) -> Option<(u64, u64)> {
    let js = jetstream::new(node.nats().await);
    let mut stream = js.get_stream(stream).await.ok()?;
    let info = stream.info().await.ok()?;
    Some((info.state.messages, info.state.last_sequence))
}

/// The name of `stream`'s leader, as `node` sees it.
pub(crate) async fn leader_of(node: &Node, stream: &str) -> Option<String> {
    let js = jetstream::new(node.nats().await);
    let mut stream = js.get_stream(stream).await.ok()?;
    stream.info().await.ok()?.cluster.clone()?.leader
}

#[tokio::test]
async fn a_partitioned_leader_acks_nothing_and_the_majority_goes_on() {
    let faults = Arc::new(Faults::default());
    let (nodes, _proxies) = three_behind_proxies(&faults).await;
    let on_a = jetstream::new(nodes[0].1.nats().await);
    create_replicated(&on_a, config()).await;
    for i in 1..=100u64 {
        assert_eq!(
            publish_acked(&on_a, "p3.x", &format!("m{i}"), &format!("m{i}")).await,
            i
        );
    }
    let leader = leader_of(&nodes[0].1, "P3").await.expect("a leader");
    let (minority, majority): (Vec<_>, Vec<_>) = nodes.iter().partition(|(n, _)| *n == leader);
    let old_leader = &minority[0].1;

    faults.isolate(&leader);
    // The cut-off leader cannot commit: nothing published there is acked.
    let on_old = jetstream::new(old_leader.nats().await);
    for i in 0..3 {
        assert_eq!(
            try_publish(&on_old, "p3.x", &format!("lost{i}"), "lost").await,
            None
        );
    }
    // The majority elects a leader and goes on.
    let on_majority = jetstream::new(majority[0].1.nats().await);
    let cut_at = std::time::Instant::now();
    assert_eq!(
        publish_acked(&on_majority, "p3.x", "m101", "m101").await,
        101
    );
    eprintln!(
        "partition: majority acked again after {:?}",
        cut_at.elapsed()
    );
    for i in 102..=150u64 {
        assert_eq!(
            publish_acked(&on_majority, "p3.x", &format!("m{i}"), &format!("m{i}")).await,
            i
        );
    }
    let new_leader = leader_of(&majority[0].1, "P3").await.expect("a new leader");
    assert_ne!(new_leader, leader);

    // Healed: every replica, the old leader's too, holds exactly the 150
    // acked messages, in order.
    faults.heal();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    for (name, node) in &nodes {
        while replica_state(node, "P3").await != Some((150, 150)) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} holds {:?}",
                replica_state(node, "P3").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let js = jetstream::new(old_leader.nats().await);
    let stream = js.get_stream("P3").await.expect("stream");
    for seq in 1..=150u64 {
        let msg = stream.get_raw_message(seq).await.expect("stored");
        assert_eq!(msg.payload, Bytes::from(format!("m{seq}")));
    }
}
