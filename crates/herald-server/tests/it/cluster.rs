//! Three herald processes on loopback acting as one broker: routes form a
//! full mesh from one seed, interest crosses so a message published on one
//! node reaches subscribers of every protocol on the others (once per
//! subscription), queue groups spanning nodes deliver each message once and
//! prefer a local member, request/reply crosses, NATS clients learn the
//! other nodes, and a node with the wrong secret or cluster name is kept out.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::binary::{HERALD, WaitOnDrop};

const PATIENCE: Duration = Duration::from_secs(20);

/// One herald process of a test cluster.
pub(crate) struct Node {
    _child: WaitOnDrop,
    /// Its log lines after start-up.
    log: std::sync::mpsc::Receiver<String>,
    pub(crate) nats: SocketAddr,
    redis: SocketAddr,
    pub(crate) mqtt: SocketAddr,
    http: SocketAddr,
    pub(crate) route: SocketAddr,
    data: tempfile::TempDir,
}

/// Starts node `name` of cluster `cluster` dialing `peers`, with `secret`.
fn node_with(name: &str, cluster: &str, secret: &str, peers: &[SocketAddr]) -> Node {
    node_args(name, cluster, secret, peers, &[])
}

/// [`node_with`], with more flags.
fn node_args(
    name: &str,
    cluster: &str,
    secret: &str,
    peers: &[SocketAddr],
    extra: &[std::ffi::OsString],
) -> Node {
    let data = tempfile::tempdir().expect("temp dir");
    node_in(name, cluster, secret, peers, (extra, &[]), data)
}

/// [`node_args`], its data in `data` (a restart reuses a killed node's).
pub(crate) fn node_in(
    name: &str,
    cluster: &str,
    secret: &str,
    peers: &[SocketAddr],
    (extra, env): (&[std::ffi::OsString], &[(&str, &str)]),
    data: tempfile::TempDir,
) -> Node {
    let peers: Vec<String> = peers.iter().map(ToString::to_string).collect();
    let mut cmd = Command::new(HERALD);
    cmd.args([
        "--nats",
        "127.0.0.1:0",
        "--redis",
        "127.0.0.1:0",
        "--mqtt",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--cluster",
        "127.0.0.1:0",
        "--node",
        name,
        "--cluster-name",
        cluster,
        "--threads",
        "1",
    ])
    .arg("--data-dir")
    .arg(data.path())
    .env("RUST_LOG", "info")
    .env("NO_COLOR", "1")
    .env("HERALD_CLUSTER_SECRET", secret)
    .envs(env.iter().copied())
    .args(extra);
    if !peers.is_empty() {
        cmd.arg("--peers").arg(peers.join(","));
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("herald starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let (mut nats, mut redis, mut http, mut route) = (None, None, None, None);
    let mut mqtt = None;
    while route.is_none() {
        let line = lines
            .next()
            .expect("herald logs before exiting")
            .expect("readable log");
        let addr = || -> SocketAddr {
            line.split("addr=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|a| a.parse().ok())
                .expect("an address")
        };
        if line.contains("cluster routes listening") {
            route = Some(addr());
        } else if line.contains("listening") {
            let slot = if line.contains("\"nats\"") {
                &mut nats
            } else if line.contains("\"redis\"") {
                &mut redis
            } else if line.contains("\"http\"") {
                &mut http
            } else if line.contains("\"mqtt\"") {
                &mut mqtt
            } else {
                continue;
            };
            *slot = Some(addr());
        }
    }
    let (tx, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Node {
        _child: WaitOnDrop(child),
        log,
        nats: nats.expect("nats address"),
        redis: redis.expect("redis address"),
        mqtt: mqtt.expect("mqtt address"),
        http: http.expect("http address"),
        route: route.expect("route address"),
        data,
    }
}

pub(crate) fn node(name: &str, peers: &[SocketAddr]) -> Node {
    node_with(name, "test", "s3cret", peers)
}

/// Node `name` started again on the data of a node killed before, with
/// `env` set.
pub(crate) fn restart(
    name: &str,
    peers: &[SocketAddr],
    data: tempfile::TempDir,
    env: &[(&str, &str)],
) -> Node {
    node_in(name, "test", "s3cret", peers, (&[], env), data)
}

/// Three named nodes, some of which a test kills.
pub(crate) struct Trio([(&'static str, Option<Node>); 3]);

impl Trio {
    pub(crate) fn new(a: Node, b: Node, c: Node) -> Self {
        Self([("a", Some(a)), ("b", Some(b)), ("c", Some(c))])
    }

    /// SIGKILLs the first live node whose name `pick` chooses: its name
    /// and data (for a restart).
    pub(crate) fn kill_where(
        &mut self,
        pick: impl Fn(&str) -> bool,
    ) -> (&'static str, tempfile::TempDir) {
        let (name, slot) = self
            .0
            .iter_mut()
            .find(|(name, node)| node.is_some() && pick(name))
            .expect("a node to kill");
        (*name, slot.take().expect("alive").kill())
    }

    /// The nodes alive.
    pub(crate) fn alive(&self) -> Vec<&Node> {
        self.0.iter().filter_map(|(_, n)| n.as_ref()).collect()
    }
}

impl Node {
    /// The process id (to stop and continue it).
    pub(crate) fn pid(&self) -> u32 {
        self._child.0.id()
    }

    /// SIGKILLs the process; its data stays for a restart.
    pub(crate) fn kill(self) -> tempfile::TempDir {
        drop(self._child);
        self.data
    }

    pub(crate) async fn nats(&self) -> async_nats::Client {
        async_nats::connect(format!("nats://{}", self.nats))
            .await
            .expect("async-nats connects")
    }

    /// Waits for a log line containing `text`.
    pub(crate) fn logged(&self, text: &str) {
        let deadline = std::time::Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(text) => return,
                Ok(line) => seen.push(line),
                Err(_) => panic!("no log line with {text:?}; its log:\n{}", seen.join("\n")),
            }
        }
    }

    async fn routez(&self) -> serde_json::Value {
        reqwest::get(format!("http://{}/routez", self.http))
            .await
            .expect("routez")
            .json()
            .await
            .expect("JSON")
    }

    /// Waits until this node has routes to exactly `peers` (by name).
    pub(crate) async fn routed_to(&self, peers: &[&str]) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let routez = self.routez().await;
            let mut names: Vec<String> = routez["routes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["remote_name"].as_str().map(str::to_owned))
                .collect();
            names.sort();
            if names == peers {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                let log: Vec<String> = self.log.try_iter().collect();
                panic!(
                    "routes {names:?}, wanted {peers:?}; its log:\n{}",
                    log.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Three nodes: b and c know only a; the mesh is learned.
pub(crate) async fn three() -> (Node, Node, Node) {
    three_with(&[]).await
}

/// [`three`], each node with `env` set.
pub(crate) async fn three_with(env: &[(&str, &str)]) -> (Node, Node, Node) {
    let start = |name: &str, peers: &[SocketAddr]| {
        let data = tempfile::tempdir().expect("temp dir");
        node_in(name, "test", "s3cret", peers, (&[], env), data)
    };
    let a = start("a", &[]);
    let b = start("b", &[a.route]);
    let c = start("c", &[a.route]);
    a.routed_to(&["b", "c"]).await;
    b.routed_to(&["a", "c"]).await;
    c.routed_to(&["a", "b"]).await;
    (a, b, c)
}

/// Publishes `probe` on `subject` from `publisher` until `subscriber` sees
/// one: from then on the subscriber's interest is known where it publishes.
async fn until_heard(
    publisher: &async_nats::Client,
    subject: &str,
    subscriber: &mut async_nats::Subscriber,
) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        publisher
            .publish(subject.to_owned(), Bytes::from_static(b"probe"))
            .await
            .expect("publish");
        publisher.flush().await.expect("flush");
        if let Ok(Some(msg)) =
            tokio::time::timeout(Duration::from_millis(100), subscriber.next()).await
        {
            assert_eq!(msg.payload.as_ref(), b"probe");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{subject} never crossed"
        );
    }
}

/// The next message that is not a probe.
async fn next_real(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    loop {
        let msg = tokio::time::timeout(PATIENCE, sub.next())
            .await
            .expect("a message in time")
            .expect("subscription open");
        if msg.payload.as_ref() != b"probe" {
            return msg;
        }
    }
}

#[tokio::test]
async fn a_message_crosses_to_every_interested_node_once_per_subscription() {
    let (a, b, c) = three().await;
    let on_a = a.nats().await;
    let on_b = b.nats().await;
    let on_c = c.nats().await;
    // b: two overlapping patterns; c: one. Each subscription gets each
    // message once, however many patterns of its node match.
    let mut b_all = on_b.subscribe("orders.>").await.expect("sub");
    let mut b_one = on_b.subscribe("orders.*").await.expect("sub");
    let mut c_one = on_c.subscribe("orders.*").await.expect("sub");
    on_b.flush().await.expect("flush");
    on_c.flush().await.expect("flush");
    until_heard(&on_a, "orders.probe", &mut b_all).await;
    until_heard(&on_a, "orders.probe", &mut b_one).await;
    until_heard(&on_a, "orders.probe", &mut c_one).await;
    for i in 0..100 {
        on_a.publish(format!("orders.{i}"), format!("{i}").into())
            .await
            .expect("publish");
    }
    on_a.flush().await.expect("flush");
    for sub in [&mut b_all, &mut b_one, &mut c_one] {
        for i in 0..100 {
            let msg = next_real(sub).await;
            assert_eq!(
                msg.subject.as_str(),
                format!("orders.{i}"),
                "in order, once"
            );
        }
    }

    // Redis on c hears a NATS publish on a; a NATS subscriber on a hears a
    // Redis PUBLISH on b.
    let redis_c = redis::Client::open(format!("redis://{}", c.redis)).expect("url");
    let mut pubsub = redis_c.get_async_pubsub().await.expect("pubsub");
    pubsub.subscribe("chat").await.expect("subscribe");
    let mut chat_on_a = on_a.subscribe("chat").await.expect("sub");
    on_a.flush().await.expect("flush");
    let redis_b = redis::Client::open(format!("redis://{}", b.redis)).expect("url");
    let mut con_b = redis_b
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let mut messages = pubsub.on_message();
    // Until both subscriptions are known on b.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("chat")
            .arg("probe")
            .query_async(&mut con_b)
            .await
            .expect("publish");
        let heard_a = tokio::time::timeout(Duration::from_millis(100), chat_on_a.next())
            .await
            .is_ok();
        let heard_c = tokio::time::timeout(Duration::from_millis(100), messages.next())
            .await
            .is_ok();
        if heard_a && heard_c {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "chat never crossed");
    }
    on_a.publish("chat", "from nats on a".into())
        .await
        .expect("publish");
    on_a.flush().await.expect("flush");
    loop {
        let msg = tokio::time::timeout(PATIENCE, messages.next())
            .await
            .expect("in time")
            .expect("a message");
        let text: String = msg.get_payload().expect("payload");
        if text != "probe" {
            assert_eq!(text, "from nats on a");
            break;
        }
    }
}

#[tokio::test]
async fn a_queue_group_across_nodes_gets_each_message_once_and_prefers_a_local_member() {
    let (a, b, c) = three().await;
    let on_a = a.nats().await;
    let on_b = b.nats().await;
    let on_c = c.nats().await;
    let mut worker_b = on_b
        .queue_subscribe("jobs.*", "workers".into())
        .await
        .expect("sub");
    let mut worker_c = on_c
        .queue_subscribe("jobs.*", "workers".into())
        .await
        .expect("sub");
    on_b.flush().await.expect("flush");
    on_c.flush().await.expect("flush");
    // Each member's node is known on a once a probe to it gets through:
    // probes go round-robin between b and c.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let (mut heard_b, mut heard_c) = (false, false);
    while !(heard_b && heard_c) {
        on_a.publish("jobs.probe", "probe".into())
            .await
            .expect("publish");
        on_a.flush().await.expect("flush");
        tokio::select! {
            Some(_) = worker_b.next() => heard_b = true,
            Some(_) = worker_c.next() => heard_c = true,
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "workers never known"
        );
    }
    const N: usize = 200;
    for i in 0..N {
        on_a.publish(format!("jobs.{i}"), "job".into())
            .await
            .expect("publish");
    }
    on_a.flush().await.expect("flush");
    // Every job exactly once, from whichever node's member got it.
    let mut seen = std::collections::BTreeSet::new();
    let mut counts = [0usize; 2];
    while seen.len() < N {
        let (i, msg) = tokio::time::timeout(PATIENCE, async {
            tokio::select! {
                Some(msg) = worker_b.next() => (0, msg),
                Some(msg) = worker_c.next() => (1, msg),
            }
        })
        .await
        .unwrap_or_else(|_| panic!("only {} of {N} jobs: {counts:?}", seen.len()));
        if msg.payload.as_ref() == b"probe" {
            continue;
        }
        assert!(
            seen.insert(msg.subject.to_string()),
            "{} twice",
            msg.subject
        );
        counts[i] += 1;
    }
    assert_eq!(seen.len(), N, "every job once: {counts:?}");
    assert!(
        counts.iter().all(|&n| n > 0),
        "both nodes served: {counts:?}"
    );

    // A member on a itself now takes everything published on a.
    let mut local = on_a
        .queue_subscribe("jobs.*", "workers".into())
        .await
        .expect("sub");
    on_a.flush().await.expect("flush");
    for i in 0..20 {
        on_a.publish(format!("jobs.local{i}"), "job".into())
            .await
            .expect("publish");
    }
    on_a.flush().await.expect("flush");
    for _ in 0..20 {
        let msg = tokio::time::timeout(PATIENCE, local.next())
            .await
            .expect("in time")
            .expect("a job");
        assert!(msg.subject.starts_with("jobs.local"), "{}", msg.subject);
    }
}

#[tokio::test]
async fn requests_cross_nodes_and_clients_learn_the_other_nodes() {
    let (a, b, c) = three().await;
    let on_a = a.nats().await;
    let on_c = c.nats().await;
    let mut service = on_c.subscribe("svc.echo").await.expect("sub");
    on_c.flush().await.expect("flush");
    let responder = tokio::spawn(async move {
        while let Some(msg) = service.next().await {
            if let Some(reply) = msg.reply {
                on_c.publish(reply, msg.payload).await.expect("reply");
                on_c.flush().await.expect("flush");
            }
        }
    });
    // Until c's service is known on a, a request may find no responders.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let answer = loop {
        match on_a.request("svc.echo", "hello".into()).await {
            Ok(answer) => break answer,
            Err(_) => {
                assert!(tokio::time::Instant::now() < deadline, "no answer");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(answer.payload.as_ref(), b"hello");
    // Nobody anywhere: no responders, at once.
    let err = on_a
        .request("svc.nobody", "x".into())
        .await
        .expect_err("no responders");
    assert_eq!(
        err.kind(),
        async_nats::client::RequestErrorKind::NoResponders
    );
    responder.abort();

    // INFO tells a NATS client where the other nodes are.
    let mut raw = tokio::net::TcpStream::connect(a.nats)
        .await
        .expect("connect");
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(&mut raw);
    tokio::io::AsyncBufReadExt::read_line(&mut reader, &mut line)
        .await
        .expect("INFO");
    let info: serde_json::Value =
        serde_json::from_str(line.trim_start_matches("INFO ").trim()).expect("INFO JSON");
    let mut urls: Vec<String> = info["connect_urls"]
        .as_array()
        .expect("connect_urls")
        .iter()
        .filter_map(|u| u.as_str().map(str::to_owned))
        .collect();
    urls.sort();
    let mut expected = vec![b.nats.to_string(), c.nats.to_string()];
    expected.sort();
    assert_eq!(urls, expected);
    assert_eq!(info["cluster"], "test");

    // Monitoring says so too: /varz's cluster, /v1/stats's scope, /metrics.
    let get = |path: &str| reqwest::get(format!("http://{}{path}", a.http));
    let varz: serde_json::Value = get("/varz")
        .await
        .expect("varz")
        .json()
        .await
        .expect("JSON");
    assert_eq!(varz["cluster"]["name"], "test");
    assert_eq!(varz["cluster"]["urls"].as_array().map(Vec::len), Some(2));
    let stats: serde_json::Value = get("/v1/stats")
        .await
        .expect("stats")
        .json()
        .await
        .expect("JSON");
    assert_eq!(stats["scope"], "node");
    assert_eq!(stats["cluster"]["node"], "a");
    let metrics = get("/metrics")
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("herald_cluster_routes 2"), "{metrics}");
    assert!(
        metrics.contains("herald_route_interests{node=\"c\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_node_with_the_wrong_secret_or_cluster_name_is_kept_out() {
    let a = node("a", &[]);
    let b = node("b", &[a.route]);
    a.routed_to(&["b"]).await;
    let intruder = node_with("x", "test", "not-the-secret", &[a.route]);
    a.logged("x does not know the cluster secret");
    let stranger = node_with("y", "other", "s3cret", &[a.route]);
    a.logged("cluster \"other\" is not \"test\"");
    a.routed_to(&["b"]).await;
    intruder.routed_to(&[]).await;
    stranger.routed_to(&[]).await;
    drop(b);
}

#[tokio::test]
async fn a_killed_node_leaves_the_mesh_and_a_new_one_joins_it() {
    let (a, b, c) = three().await;
    drop(c); // SIGKILL
    a.routed_to(&["b"]).await;
    b.routed_to(&["a"]).await;
    let on_a = a.nats().await;
    let on_b = b.nats().await;
    let mut sub = on_b.subscribe("still.here").await.expect("sub");
    on_b.flush().await.expect("flush");
    until_heard(&on_a, "still.here", &mut sub).await;
    // A node started later, knowing only b, joins the whole mesh.
    let d = node("d", &[b.route]);
    a.routed_to(&["b", "d"]).await;
    d.routed_to(&["a", "b"]).await;
    let on_d = d.nats().await;
    let mut on_d_sub = on_d.subscribe("still.here").await.expect("sub");
    on_d.flush().await.expect("flush");
    until_heard(&on_a, "still.here", &mut on_d_sub).await;
}

#[tokio::test]
async fn a_consumer_on_one_node_delivers_to_and_is_acked_from_another() {
    use async_nats::jetstream::{self, consumer, stream};
    let (a, b, _c) = three().await;
    let js_a = jetstream::new(a.nats().await);
    js_a.get_or_create_stream(stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.*".into()],
        ..Default::default()
    })
    .await
    .expect("stream on a");
    let on_b = b.nats().await;
    let mut deliveries = on_b.subscribe("deliver.billing").await.expect("sub");
    on_b.flush().await.expect("flush");
    let stream = js_a.get_stream("ORDERS").await.expect("stream");
    stream
        .create_consumer(consumer::push::Config {
            durable_name: Some("billing".into()),
            deliver_subject: "deliver.billing".into(),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("push consumer on a");
    // A publish on b reaches the stream on a through its capture interest.
    let js_b = jetstream::new(on_b.clone());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let acked = match js_b.publish("orders.1", "one".into()).await {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        };
        if acked {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no stream ack");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The delivery, matched on the inbox on b, shows the stored subject.
    let msg = tokio::time::timeout(PATIENCE, deliveries.next())
        .await
        .expect("delivered in time")
        .expect("a delivery");
    assert_eq!(msg.subject.as_str(), "orders.1");
    assert_eq!(msg.payload.as_ref(), b"one");
    let reply = msg.reply.expect("an ack subject");
    assert!(reply.starts_with("$JS.ACK.ORDERS.billing."), "{reply}");
    // The ack from b is heard by the consumer on a.
    on_b.request(reply, "".into())
        .await
        .map(|_| ())
        .or_else(|e| {
            if e.kind() == async_nats::client::RequestErrorKind::NoResponders {
                Err(e)
            } else {
                Ok(())
            }
        })
        .expect("the ack crossed");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut consumer = stream
            .get_consumer::<consumer::push::Config>("billing")
            .await
            .expect("consumer");
        let info = consumer.info().await.expect("info");
        if info.num_ack_pending == 0 && info.ack_floor.stream_sequence == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never acked: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// With a client CA, routes use mutual TLS: nodes with certificates from
/// the cluster's CA form routes; a node whose certificate another CA signed
/// is refused in the TLS handshake.
#[tokio::test]
async fn routes_use_mutual_tls_with_a_client_ca() {
    use crate::common::pki::Pki;
    let tls = |pki: &Pki| -> Vec<std::ffi::OsString> {
        vec![
            "--tls-cert".into(),
            pki.path("server.pem").into(),
            "--tls-key".into(),
            pki.path("server.key").into(),
            "--tls-client-ca".into(),
            pki.path("ca.pem").into(),
        ]
    };
    let ours = Pki::new("node");
    let theirs = Pki::new("node");
    let a = node_args("a", "test", "s3cret", &[], &tls(&ours));
    let b = node_args("b", "test", "s3cret", &[a.route], &tls(&ours));
    a.logged("route up node=b");
    b.logged("route up node=a");
    let _c = node_args("c", "test", "s3cret", &[a.route], &tls(&theirs));
    a.logged("route refused: TLS");
}

/// An MQTT QoS 1 publish on one node reaches an MQTT QoS 1 subscriber on
/// another at QoS 1: its QoS crosses the route with it.
#[tokio::test]
async fn an_mqtt_publish_keeps_its_qos_across_nodes() {
    use herald_protocol::mqtt::{Packet, QoS, Version};

    use crate::common::mqtt_raw::{RawMqtt, publish_packet, subscribe_packet};
    let (a, b, _c) = three().await;
    let mut subscriber = RawMqtt::connected(b.mqtt, Version::V5, "sub-on-b").await;
    subscriber
        .send(&subscribe_packet(1, "x/#", QoS::AtLeastOnce))
        .await;
    assert!(matches!(subscriber.recv().await, Some(Packet::SubAck(_))));
    let mut publisher = RawMqtt::connected(a.mqtt, Version::V5, "pub-on-a").await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut id = 0;
    let delivery = loop {
        id += 1;
        publisher
            .send(&publish_packet("x/1", "hello", QoS::AtLeastOnce, id))
            .await;
        assert!(matches!(publisher.recv().await, Some(Packet::PubAck(_))));
        if let Ok(Some(Packet::Publish(p))) =
            tokio::time::timeout(Duration::from_millis(100), subscriber.recv()).await
        {
            break p;
        }
        assert!(tokio::time::Instant::now() < deadline, "never crossed");
    };
    assert_eq!(delivery.topic.as_str(), "x/1");
    assert_eq!(delivery.payload.as_ref(), b"hello");
    assert_eq!(delivery.qos.qos(), QoS::AtLeastOnce, "QoS 1 across nodes");
}
