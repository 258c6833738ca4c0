//! The cluster as one node sees it: its routes (a full mesh, one per other
//! node), the interests it announces to them, dialing and redialing peers,
//! and learning further peers from the ones it meets (gossip).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use ahash::AHashMap;
use bytes::BytesMut;
use herald_core::{Broker, Interest, InterestObserver, QueueName};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::raft::meta::Consensus;
use crate::route::{self, Route, key_of};
use crate::wire::{self, Frame, Info, InterestKey};

/// How a node joins a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster.
    pub node: String,
    /// The cluster's name: routes to nodes of another cluster are refused.
    pub name: String,
    /// Where the route listener binds.
    pub listen: SocketAddr,
    /// The route address other nodes are told to dial (behind NAT, a
    /// proxy or a container's port mapping); `None`: the bound address.
    pub advertise: Option<String>,
    /// Route addresses of other nodes to dial (more are learned from them).
    pub peers: Vec<String>,
    /// A secret every node must prove it knows (checked both ways with a
    /// challenge; it never crosses the wire). `None`: none.
    pub secret: Option<String>,
    /// Largest frame accepted from a proven peer: the largest message the
    /// server accepts, with room for its subject and headers.
    pub max_frame: usize,
    /// Entries of a replicated stream's log between snapshots; the log is
    /// kept this far behind the last one too (a replica further behind is
    /// sent the stream's contents instead).
    pub snapshot_entries: u64,
}

/// Mutual TLS for routes: each node accepts with its certificate, asking
/// for the dialer's, and dials presenting it; both are verified against
/// the cluster's CA. (The server builds it from `[tls]` with `client_ca`.)
#[derive(Clone)]
pub struct RouteTls {
    /// Accepts routes (asks for and verifies the dialer's certificate).
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// Dials routes (verifies the acceptor's certificate for the address
    /// dialed, presents this node's).
    pub connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for RouteTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouteTls")
    }
}

/// A route's byte stream: plain TCP or TLS.
pub(crate) trait RouteIo:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send
{
}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> RouteIo for T {}
/// A route's byte stream, boxed.
pub(crate) type RouteStream = Box<dyn RouteIo>;

/// How often a route is pinged; three intervals without a frame close it.
const PING_EVERY: Duration = Duration::from_secs(1);
/// Longest a route may take to introduce itself.
const HANDSHAKE: Duration = Duration::from_secs(5);
/// Largest frame accepted before the peer has proved itself.
const HANDSHAKE_FRAME: usize = 64 << 10;
/// Bytes of a consensus frame on a live, authenticated route, whatever the
/// message size limit: a batch of up to 8 entries of a stream's rounds,
/// joined rounds kept to 1 MiB, one round at most the stream writer's
/// 256 MiB queue.
const RPC_FRAME: usize = 512 << 20;

/// A node's view of its cluster. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    config: ClusterConfig,
    tls: Option<RouteTls>,
    codec: route::Codec,
    broker: Broker,
    state: Mutex<State>,
    /// The route listener's bound address, once started.
    route_addr: Mutex<Option<SocketAddr>>,
    /// Where this node's NATS clients connect.
    client_urls: Mutex<Vec<String>>,
    /// Peer route addresses with a dialer running.
    dialing: Mutex<BTreeSet<String>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    /// Consensus requests this node waits on.
    pub(crate) rpcs: crate::raft::network::Pending,
    /// This node's consensus groups, once JetStream is clustered.
    consensus: std::sync::OnceLock<Arc<Consensus>>,
    /// Answers JetStream API requests peers forward.
    pub(crate) api: std::sync::OnceLock<Arc<dyn crate::api::ApiResponder>>,
}

#[derive(Debug, Default)]
struct State {
    /// Local subscriptions per announced interest.
    interests: AHashMap<InterestKey, usize>,
    /// Live routes by peer node name.
    routes: BTreeMap<String, Arc<Route>>,
}

/// What `/routez` shows of one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSummary {
    /// The peer's node name.
    pub node: String,
    /// The peer's route address.
    pub route: String,
    /// Whether this node dialed it.
    pub dialed: bool,
    /// The peer's interests this node holds.
    pub interests: usize,
    /// Seconds since it was established.
    pub uptime_secs: u64,
}

/// Announces local subscription changes to every route.
struct Observer(Weak<Inner>);

impl InterestObserver for Observer {
    fn changed(&self, interest: &Interest, queue: Option<&QueueName>, added: bool) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        let key = key_of(interest, queue);
        let mut state = inner.state.lock();
        let count = state.interests.entry(key.clone()).or_default();
        let announce = if added {
            *count += 1;
            *count == 1
        } else {
            *count = count.saturating_sub(1);
            *count == 0
        };
        if *count == 0 {
            state.interests.remove(&key);
        }
        if announce {
            for route in state.routes.values() {
                route.announce(&key, added);
            }
        }
    }
}

impl Cluster {
    /// Joins `broker` to a cluster: from now on its subscriptions are
    /// counted for announcing. Call it before anything subscribes; then
    /// [`start`](Self::start) once the client listeners are bound.
    pub fn new(broker: Broker, config: ClusterConfig, tls: Option<RouteTls>) -> Self {
        let inner = Arc::new(Inner {
            config,
            tls,
            codec: route::Codec::default(),
            broker: broker.clone(),
            state: Mutex::new(State::default()),
            route_addr: Mutex::new(None),
            client_urls: Mutex::new(Vec::new()),
            dialing: Mutex::new(BTreeSet::new()),
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            rpcs: crate::raft::network::Pending::default(),
            api: std::sync::OnceLock::new(),
            consensus: std::sync::OnceLock::new(),
        });
        if !broker.observe_interest(Arc::new(Observer(Arc::downgrade(&inner)))) {
            tracing::error!(
                "the broker has an interest observer already: routes will miss interest"
            );
        }
        Self { inner }
    }

    /// Binds the route listener and dials the configured peers. `client_urls`
    /// are where this node's NATS clients connect (told to other nodes for
    /// their clients' `connect_urls`).
    ///
    /// # Errors
    /// The route listener cannot bind.
    pub async fn start(&self, client_urls: Vec<String>) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(self.inner.config.listen).await?;
        let addr = listener.local_addr()?;
        *self.inner.route_addr.lock() = Some(addr);
        *self.inner.client_urls.lock() = client_urls;
        tracing::info!(
            node = %self.inner.config.node,
            cluster = %self.inner.config.name,
            %addr,
            "cluster routes listening"
        );
        let inner = self.inner.clone();
        self.inner.tracker.spawn(accept(inner, listener));
        for peer in self.inner.config.peers.clone() {
            dial_later(&self.inner, peer);
        }
        Ok(addr)
    }

    /// Installs the codec that carries a protocol's message extension
    /// across routes (the MQTT listener's); false if one was installed.
    pub fn set_extension_codec(&self, codec: Arc<dyn route::ExtensionCodec>) -> bool {
        self.inner.codec.set(codec).is_ok()
    }

    /// Closes every route and stops dialing; waits for the route tasks.
    pub async fn stop(&self) {
        if let Some(consensus) = self.inner.consensus.get() {
            consensus.shutdown().await;
        }
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.inner.config.node
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    /// The route listener's address, once started.
    pub fn route_addr(&self) -> Option<SocketAddr> {
        *self.inner.route_addr.lock()
    }

    /// The live routes, by peer name.
    pub fn routes(&self) -> Vec<RouteSummary> {
        self.inner
            .state
            .lock()
            .routes
            .values()
            .map(|r| RouteSummary {
                node: r.info.node.clone(),
                route: r.info.route.clone(),
                dialed: r.dialed,
                interests: r.interests(),
                uptime_secs: r.since.elapsed().as_secs(),
            })
            .collect()
    }

    /// Runs JetStream clustered: opens (or forms, or joins) the meta group
    /// and this node's stream groups, their logs under `raft_dir`. With
    /// `fsync`, a consensus log reaches the disk before it counts.
    ///
    /// # Errors
    /// A group's files cannot be opened.
    pub async fn enable_jetstream(
        &self,
        store: herald_store::Store,
        raft_dir: std::path::PathBuf,
        fsync: bool,
    ) -> std::io::Result<()> {
        let consensus = Consensus::start(
            Arc::downgrade(&self.inner),
            self.inner.config.node.clone(),
            raft_dir,
            store,
            (fsync, self.inner.config.snapshot_entries),
        )
        .await?;
        let _ = self.inner.consensus.set(consensus);
        Ok(())
    }

    /// Whether `name` is a replicated stream (its API goes through the cluster).
    pub fn is_replicated(&self, name: &str) -> bool {
        self.inner
            .consensus
            .get()
            .is_some_and(|c| c.is_replicated(name))
    }

    /// The nodes holding replicated stream `name` (none for a stream of one
    /// replica, or one this node has not heard of).
    pub fn replica_nodes(&self, name: &str) -> Vec<String> {
        self.inner
            .consensus
            .get()
            .map(|c| c.placement(name))
            .unwrap_or_default()
    }

    /// Whether JetStream runs clustered here.
    pub fn jetstream_clustered(&self) -> bool {
        self.inner.consensus.get().is_some()
    }

    /// Creates a replicated stream (`num_replicas` > 1) across the cluster;
    /// returns once this node's replica is open with a leader elected.
    ///
    /// # Errors
    /// JetStream's error: not clustered, no meta group yet, too few nodes,
    /// the name taken with another config.
    pub async fn create_stream(
        &self,
        config: &herald_store::StreamConfig,
    ) -> Result<(), herald_store::ApiError> {
        let consensus = self
            .inner
            .consensus
            .get()
            .ok_or_else(herald_store::ApiError::not_clustered)?;
        consensus.create_stream(config).await
    }

    /// Updates a replicated stream's config (checked by the caller) on every
    /// replica; its info.
    ///
    /// # Errors
    /// The update's refusal, or no leader to decide it now.
    pub async fn update_stream(
        &self,
        config: &herald_store::StreamConfig,
    ) -> Result<serde_json::Value, herald_store::ApiError> {
        match self.inner.consensus.get() {
            Some(consensus) => consensus.update_stream(config).await,
            None => Err(herald_store::ApiError::stream_not_found()),
        }
    }

    /// Deletes a replicated stream on every node holding it.
    ///
    /// # Errors
    /// JetStream's error when the meta group cannot decide now.
    pub async fn delete_stream(&self, name: &str) -> Result<(), herald_store::ApiError> {
        match self.inner.consensus.get() {
            Some(consensus) => consensus.delete_stream(name).await,
            None => Err(herald_store::ApiError::stream_not_found()),
        }
    }

    /// Purges a replicated stream on every replica (through its leader);
    /// JetStream's answer (`purged`).
    ///
    /// # Errors
    /// The purge's refusal, or no leader to decide it now.
    pub async fn purge_stream(
        &self,
        name: &str,
        request: &herald_store::PurgeRequest,
    ) -> Result<serde_json::Value, herald_store::ApiError> {
        let request = serde_json::to_string(request)
            .map_err(|e| herald_store::ApiError::new(500, 10003, e.to_string()))?;
        let command = crate::raft::Command::Purge {
            now: herald_store::time::now_nanos(),
            request,
        };
        self.stream_write(name, command).await
    }

    /// Deletes message `seq` of a replicated stream on every replica.
    ///
    /// # Errors
    /// The delete's refusal, or no leader to decide it now.
    pub async fn delete_message(
        &self,
        name: &str,
        seq: u64,
    ) -> Result<serde_json::Value, herald_store::ApiError> {
        let command = crate::raft::Command::DeleteMsg {
            now: herald_store::time::now_nanos(),
            seq,
        };
        self.stream_write(name, command).await
    }

    /// Creates or updates consumer `name` of replicated stream `stream` on
    /// every replica (through the stream's leader); its info.
    ///
    /// # Errors
    /// The create's refusal (as a single node decides it), or no leader.
    pub async fn create_consumer(
        &self,
        stream: &str,
        name: &str,
        config: &herald_store::ConsumerConfig,
        action: herald_store::CreateAction,
    ) -> Result<serde_json::Value, herald_store::ApiError> {
        let config = serde_json::to_string(config)
            .map_err(|e| herald_store::ApiError::new(500, 10003, e.to_string()))?;
        let action = match action {
            herald_store::CreateAction::CreateOrUpdate => 0,
            herald_store::CreateAction::Create => 1,
            herald_store::CreateAction::Update => 2,
        };
        let command = crate::raft::Command::ConsumerCreate {
            now: herald_store::time::now_nanos(),
            name: name.to_owned(),
            config,
            action,
        };
        self.stream_write(stream, command).await
    }

    /// Deletes consumer `name` of replicated stream `stream` on every replica.
    ///
    /// # Errors
    /// It does not exist, or no leader to decide it now.
    pub async fn delete_consumer(
        &self,
        stream: &str,
        name: &str,
    ) -> Result<serde_json::Value, herald_store::ApiError> {
        let command = crate::raft::Command::ConsumerDelete {
            now: herald_store::time::now_nanos(),
            name: name.to_owned(),
        };
        self.stream_write(stream, command).await
    }

    async fn stream_write(
        &self,
        name: &str,
        command: crate::raft::Command,
    ) -> Result<serde_json::Value, herald_store::ApiError> {
        match self.inner.consensus.get() {
            Some(consensus) => consensus.stream_write(name, command).await,
            None => Err(herald_store::ApiError::stream_not_found()),
        }
    }

    /// JetStream's `cluster` object of a replicated stream held here.
    pub fn stream_cluster(&self, name: &str) -> Option<serde_json::Value> {
        self.inner
            .consensus
            .get()?
            .stream_cluster(&self.inner.config.name, name)
    }

    /// The meta group's leader, once there is one.
    pub fn meta_leader(&self) -> Option<String> {
        self.inner.consensus.get()?.meta_leader()
    }

    /// Where the other nodes' NATS clients connect (`connect_urls`).
    pub fn connect_urls(&self) -> Vec<String> {
        self.inner
            .state
            .lock()
            .routes
            .values()
            .flat_map(|r| r.info.client_urls.iter().cloned())
            .collect()
    }
}

impl Cluster {
    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }
}

impl Inner {
    /// The live route to `node`.
    pub(crate) fn route_to(&self, node: &str) -> Option<Arc<Route>> {
        self.state.lock().routes.get(node).cloned()
    }

    /// The nodes this one has a live route to.
    pub(crate) fn route_nodes(&self) -> Vec<String> {
        self.state.lock().routes.keys().cloned().collect()
    }

    /// This node's consensus groups, if JetStream is clustered.
    pub(crate) fn consensus(&self) -> Option<&Arc<Consensus>> {
        self.consensus.get()
    }

    /// This node's `INFO` for a new route, with `nonce` as its challenge.
    fn info(&self, nonce: String) -> Info {
        let peers = self
            .state
            .lock()
            .routes
            .values()
            .map(|r| r.info.route.clone())
            .collect();
        Info {
            node: self.config.node.clone(),
            cluster: self.config.name.clone(),
            route: self.config.advertise.clone().unwrap_or_else(|| {
                self.route_addr
                    .lock()
                    .map(|a| a.to_string())
                    .unwrap_or_default()
            }),
            client_urls: self.client_urls.lock().clone(),
            peers,
            nonce,
        }
    }

    /// The proof that the node `from` knows the secret, on the route it
    /// `dialed` (or accepted) to `to`, whose challenges are `from_nonce`
    /// and `to_nonce`. Everything that tells this route and this direction
    /// apart is in it, so a proof made for one route, one peer or the other
    /// direction proves nothing here (a node cannot be made to vouch for
    /// an impostor by relaying challenges).
    fn proof(&self, dialed: bool, from: (&str, &str), to: (&str, &str)) -> [u8; 32] {
        let mut hash = Sha256::new();
        for part in [
            "herald-route-v1",
            self.config.secret.as_deref().unwrap_or_default(),
            if dialed { "dialer" } else { "acceptor" },
            from.0,
            from.1,
            to.0,
            to.1,
        ] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        hash.finalize().into()
    }

    /// Whether a route to `node` at `addr` is up (its dialer may rest).
    fn connected_to(&self, addr: &str) -> bool {
        self.state
            .lock()
            .routes
            .values()
            .any(|r| r.info.route == addr)
    }

    /// Makes `route` the route to its node, announcing every local interest
    /// to it; `false` when another route to that node is kept instead.
    /// Between two routes to one node both ends keep the one dialed by the
    /// node whose name sorts first, so simultaneous dials settle on one.
    fn register(&self, route: &Arc<Route>) -> bool {
        let me = &self.config.node;
        let peer = &route.info.node;
        let dialer = |r: &Route| if r.dialed { me } else { peer };
        let first = me.min(peer);
        let mut state = self.state.lock();
        if let Some(existing) = state.routes.get(peer) {
            let keep_existing = dialer(existing) == first || dialer(route) != first;
            if keep_existing {
                return false;
            }
            existing.cancel.cancel();
            // Its subscriptions go now, not when its task ends: until then
            // both routes would carry each message to the node.
            existing.clear(&self.broker);
        }
        for key in state.interests.keys() {
            route.announce(key, true);
        }
        // Gossip: nodes that already have a route here learn the new one
        // (their handshakes could not list it), and it learns them.
        let new = Frame::Peers(vec![route.info.route.clone()]);
        let known = Frame::Peers(
            state
                .routes
                .values()
                .map(|r| r.info.route.clone())
                .collect(),
        );
        for other in state.routes.values() {
            other.outbox.push_control(|b| wire::encode_control(b, &new));
        }
        route
            .outbox
            .push_control(|b| wire::encode_control(b, &known));
        state.routes.insert(peer.clone(), route.clone());
        true
    }

    fn unregister(&self, route: &Arc<Route>) {
        let mut state = self.state.lock();
        if state
            .routes
            .get(&route.info.node)
            .is_some_and(|r| Arc::ptr_eq(r, route))
        {
            state.routes.remove(&route.info.node);
        }
    }
}

async fn accept(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        tokio::select! {
            () = inner.shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let inner2 = inner.clone();
                    inner.tracker.spawn(async move {
                        if let Err(error) = serve(inner2, stream, None).await {
                            error.log(&peer.to_string());
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "accepting a route failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// Starts a dialer for `addr` unless one runs or it is this node.
fn dial_later(inner: &Arc<Inner>, addr: String) {
    let own = inner.route_addr.lock().map(|a| a.to_string());
    let advertised = inner.config.advertise.as_deref() == Some(addr.as_str());
    if own.as_deref() == Some(addr.as_str())
        || advertised
        || !inner.dialing.lock().insert(addr.clone())
    {
        return;
    }
    let inner2 = inner.clone();
    inner.tracker.spawn(dial(inner2, addr));
}

/// Keeps a route to `addr` up: dials, and dials again (backing off to 2 s)
/// whenever no route to it is up, until shutdown.
async fn dial(inner: Arc<Inner>, addr: String) {
    let mut backoff = Duration::from_millis(50);
    // The node this address led to, once known: while a route to it is up
    // (whoever dialed, at whatever address) this dialer rests.
    let mut reached: Option<String> = None;
    loop {
        if inner.shutdown.is_cancelled() {
            return;
        }
        let up = inner.connected_to(&addr)
            || reached
                .as_ref()
                .is_some_and(|node| inner.state.lock().routes.contains_key(node));
        if !up {
            match TcpStream::connect(&addr).await {
                Ok(stream) => {
                    backoff = Duration::from_millis(50);
                    match serve(inner.clone(), stream, Some(&addr)).await {
                        Ok(node) => reached = Some(node),
                        Err(RouteError::ToItself) => {
                            tracing::debug!(%addr, "an address of this node: not dialed again");
                            return;
                        }
                        Err(error) => error.log(&addr),
                    }
                }
                Err(error) => tracing::trace!(%addr, %error, "dial failed"),
            }
        }
        tokio::select! {
            () = inner.shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Why a route ended.
#[derive(Debug, thiserror::Error)]
enum RouteError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Wire(#[from] wire::WireError),
    #[error("{0}")]
    Refused(String),
    #[error("a route to itself")]
    ToItself,
}

impl RouteError {
    /// A refused route is worth a warning (a misconfigured node); a route
    /// that broke is not (the peer stopped, the network went).
    fn log(&self, peer: &str) {
        match self {
            Self::Refused(reason) => tracing::warn!(%peer, "route refused: {reason}"),
            Self::ToItself => tracing::debug!(%peer, "a route to itself, closed"),
            other => tracing::debug!(%peer, "route ended: {other}"),
        }
    }
}

/// Runs one route connection: handshake, then frames until it closes.
/// Returns the peer's node name once it was authenticated (even if the
/// route was then dropped as a duplicate).
/// `dialed` is the address this node dialed (`None`: it accepted).
async fn serve(
    inner: Arc<Inner>,
    stream: TcpStream,
    dialed_addr: Option<&str>,
) -> Result<String, RouteError> {
    let dialed = dialed_addr.is_some();
    let _ = stream.set_nodelay(true);
    let peer_ip = stream.peer_addr()?.ip();
    let stream: RouteStream = match (&inner.tls, dialed) {
        (None, _) => Box::new(stream),
        (Some(tls), false) => Box::new(
            tokio::time::timeout(HANDSHAKE, tls.acceptor.accept(stream))
                .await
                .map_err(|_| RouteError::Refused("TLS handshake timed out".into()))?
                .map_err(|e| RouteError::Refused(format!("TLS: {e}")))?,
        ),
        (Some(tls), true) => {
            // The name dialed, as the peer's certificate must carry it.
            let host = dialed_addr
                .and_then(|a| a.rsplit_once(':'))
                .map(|(host, _)| host.trim_matches(['[', ']']).to_owned())
                .unwrap_or_default();
            let name = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => rustls_pki_types::ServerName::IpAddress(ip.into()),
                Err(_) => rustls_pki_types::ServerName::try_from(host)
                    .map_err(|e| RouteError::Refused(format!("TLS: {e}")))?,
            };
            Box::new(
                tokio::time::timeout(HANDSHAKE, tls.connector.connect(name, stream))
                    .await
                    .map_err(|_| RouteError::Refused("TLS handshake timed out".into()))?
                    .map_err(|e| RouteError::Refused(format!("TLS: {e}")))?,
            )
        }
    };
    let (mut reader, mut writer) = tokio::io::split(stream);
    let nonce = hex(&rand::random::<[u8; 16]>());
    writer
        .write_all(&route::frame_bytes(&Frame::Info(inner.info(nonce.clone()))))
        .await?;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let me = inner.config.node.as_str();
    let handshake = async {
        let mut peer: Option<Info> = None;
        loop {
            // Small until the peer has proved itself.
            while let Some(frame) = wire::parse(&mut buf, HANDSHAKE_FRAME)? {
                match (frame, &peer) {
                    (Frame::Info(info), None) => {
                        if info.cluster != inner.config.name {
                            return Err(RouteError::Refused(format!(
                                "cluster {:?} is not {:?}",
                                info.cluster, inner.config.name
                            )));
                        }
                        if info.node == inner.config.node {
                            return Err(RouteError::ToItself);
                        }
                        // The dialer proves itself first; the acceptor only
                        // once it has checked that proof.
                        if dialed {
                            let proof = inner.proof(true, (me, &nonce), (&info.node, &info.nonce));
                            writer
                                .write_all(&route::frame_bytes(&Frame::Auth(proof)))
                                .await?;
                        }
                        peer = Some(info);
                    }
                    (Frame::Auth(proof), Some(info)) => {
                        let expected =
                            inner.proof(!dialed, (&info.node, &info.nonce), (me, &nonce));
                        if !constant_time_eq(&proof, &expected) {
                            let refusal = Frame::Err("route authorization failed".into());
                            let _ = writer.write_all(&route::frame_bytes(&refusal)).await;
                            return Err(RouteError::Refused(format!(
                                "{} does not know the cluster secret",
                                info.node
                            )));
                        }
                        if !dialed {
                            let proof = inner.proof(false, (me, &nonce), (&info.node, &info.nonce));
                            writer
                                .write_all(&route::frame_bytes(&Frame::Auth(proof)))
                                .await?;
                        }
                        return Ok(info.clone());
                    }
                    (Frame::Err(text), _) => return Err(RouteError::Refused(text)),
                    _ => return Err(RouteError::Refused("unexpected frame in handshake".into())),
                }
            }
            if reader.read_buf(&mut buf).await? == 0 {
                return Err(RouteError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    };
    let mut info = tokio::time::timeout(HANDSHAKE, handshake)
        .await
        .map_err(|_| RouteError::Refused("handshake timed out".into()))??;
    // A listener on 0.0.0.0 is reached at the address we reached the peer on.
    let reachable = |advertised: &mut String| {
        if let Ok(addr) = advertised.parse::<SocketAddr>()
            && addr.ip().is_unspecified()
        {
            *advertised = SocketAddr::new(peer_ip, addr.port()).to_string();
        }
    };
    reachable(&mut info.route);
    info.client_urls.iter_mut().for_each(reachable);
    for addr in &info.peers {
        dial_later(&inner, addr.clone());
    }
    let cancel = inner.shutdown.child_token();
    let route = Arc::new(Route::new(
        info,
        dialed,
        inner.broker.new_conn_id(),
        cancel.clone(),
        inner.codec.clone(),
    ));
    if !inner.register(&route) {
        tracing::debug!(node = %route.info.node, "duplicate route closed");
        return Ok(route.info.node.clone());
    }
    tracing::info!(node = %route.info.node, route = %route.info.route, dialed, "route up");
    let writer_task = inner.tracker.spawn(route::write(route.clone(), writer));
    let result = read(&inner, &route, &mut reader, &mut buf).await;
    inner.unregister(&route);
    route.clear(&inner.broker);
    route.outbox.close(herald_core::CloseReason::Finished);
    cancel.cancel();
    let _ = writer_task.await;
    tracing::info!(node = %route.info.node, "route down");
    result.map(|()| route.info.node.clone())
}

/// Reads the peer's frames until the route closes.
async fn read(
    inner: &Arc<Inner>,
    route: &Arc<Route>,
    reader: &mut tokio::io::ReadHalf<RouteStream>,
    buf: &mut BytesMut,
) -> Result<(), RouteError> {
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut silent = 0u32;
    loop {
        while let Some(frame) = wire::parse(buf, inner.config.max_frame.max(RPC_FRAME))? {
            match frame {
                Frame::Sub(key) => route.peer_subscribed(&inner.broker, key),
                Frame::Unsub(key) => route.peer_unsubscribed(&inner.broker, &key),
                Frame::Msg(msg) => {
                    let shard = msg.shard;
                    let queue = msg
                        .queue
                        .clone()
                        .and_then(|q| QueueName::from_bytes(q).ok());
                    let (msg, on) = route::message_of(msg, &inner.codec);
                    if shard {
                        inner.broker.deliver_shard_from_route(route.conn, &msg);
                    } else {
                        inner.broker.deliver_from_route(
                            route.conn,
                            &msg,
                            on.as_ref(),
                            queue.as_ref(),
                        );
                    }
                }
                Frame::Ping => {
                    route
                        .outbox
                        .push_control(|b| wire::encode_control(b, &Frame::Pong));
                }
                Frame::Pong => {}
                Frame::Peers(peers) => {
                    for addr in peers {
                        dial_later(inner, addr);
                    }
                }
                Frame::Rpc(rpc) => {
                    let answer = crate::raft::network::answer(inner.clone(), route.clone(), rpc);
                    inner.tracker.spawn(answer);
                }
                Frame::RpcReply { id, body } => inner.rpcs.answered(id, body),
                Frame::Err(text) => return Err(RouteError::Refused(text)),
                Frame::Info(_) | Frame::Auth(_) => {
                    return Err(RouteError::Refused(
                        "handshake frame on a live route".into(),
                    ));
                }
            }
        }
        tokio::select! {
            () = route.cancel.cancelled() => return Ok(()),
            _ = ping.tick() => {
                silent += 1;
                if silent > 3 {
                    return Err(RouteError::Io(std::io::ErrorKind::TimedOut.into()));
                }
                route.outbox.push_control(|b| wire::encode_control(b, &Frame::Ping));
            }
            read = reader.read_buf(buf) => match read? {
                0 => return Ok(()),
                _ => silent = 0,
            },
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
