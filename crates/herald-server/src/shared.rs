//! What every connection shares ([`Shared`]: the broker, the store, users,
//! limits, TLS, shutdown), its place under the connection limits
//! ([`ConnectionPermit`]) and the listeners' counters ([`ServerStats`]).
//! A module of its own so that listeners depend on it, not on `server`,
//! which starts them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use herald_core::Broker;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Limits;

/// State every connection task shares.
#[derive(Debug)]
pub struct Shared {
    /// The broker all protocols publish into.
    pub broker: Broker,
    /// Connection limits.
    pub limits: Limits,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// Tracks every task so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// This server's id, as INFO reports it.
    pub server_id: String,
    /// Connection counters.
    pub stats: ServerStats,
    /// Redis listener settings.
    pub redis: crate::config::RedisConfig,
    /// When the server started.
    pub started: std::time::Instant,
    /// Durable streams.
    pub store: herald_store::Store,
    /// Users and their permissions; a reload swaps them.
    users: RwLock<Arc<crate::auth::Users>>,
    /// Whether `users` has any (read on every Redis command: no lock).
    users_required: std::sync::atomic::AtomicBool,
    /// TLS for every listener, when configured; a reload swaps it.
    tls: RwLock<Option<crate::tls::Tls>>,
    /// Counts reloads; every connection task watches it and re-checks its
    /// user and subscriptions when it moves.
    reloads: tokio::sync::watch::Sender<u64>,
    /// Open (and recently closed) client connections, for monitoring.
    pub clients: crate::clients::ClientRegistry,
    /// Where the listeners listen, once bound (for monitoring).
    pub listeners: std::sync::OnceLock<ListenerAddrs>,
    /// This node's cluster, when clustering is on.
    pub cluster: std::sync::OnceLock<herald_cluster::Cluster>,
    /// Monitoring requests by path (`/varz`'s `http_req_stats`).
    pub monitor_requests: Mutex<std::collections::BTreeMap<String, u64>>,
    connections: Arc<Semaphore>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// The bound address of each listener that is on.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListenerAddrs {
    /// NATS.
    pub nats: Option<SocketAddr>,
    /// Redis.
    pub redis: Option<SocketAddr>,
    /// MQTT.
    pub mqtt: Option<SocketAddr>,
    /// The web port.
    pub http: Option<SocketAddr>,
    /// The monitoring port.
    pub monitor: Option<SocketAddr>,
}

/// A connection's place under the connection limits; released on drop.
#[derive(Debug)]
pub struct ConnectionPermit {
    _global: OwnedSemaphorePermit,
    ip: IpAddr,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut per_ip = self.per_ip.lock();
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

impl Shared {
    /// The state of a server about to start its listeners.
    pub fn new(
        broker: Broker,
        limits: Limits,
        server_id: String,
        redis: crate::config::RedisConfig,
        store: herald_store::Store,
        users: Arc<crate::auth::Users>,
        tls: Option<crate::tls::Tls>,
    ) -> Self {
        Self {
            broker,
            connections: Arc::new(Semaphore::new(match limits.max_connections {
                0 => Semaphore::MAX_PERMITS,
                n => n.min(Semaphore::MAX_PERMITS),
            })),
            limits,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            server_id,
            stats: ServerStats::default(),
            redis,
            started: std::time::Instant::now(),
            store,
            users_required: std::sync::atomic::AtomicBool::new(users.required()),
            users: RwLock::new(users),
            tls: RwLock::new(tls),
            reloads: tokio::sync::watch::Sender::new(0),
            clients: crate::clients::ClientRegistry::default(),
            listeners: std::sync::OnceLock::new(),
            cluster: std::sync::OnceLock::new(),
            monitor_requests: Mutex::new(std::collections::BTreeMap::new()),
            per_ip: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The users as configured now.
    pub fn users(&self) -> Arc<crate::auth::Users> {
        self.users.read().clone()
    }

    /// Whether clients must authenticate (some user is configured).
    pub fn users_required(&self) -> bool {
        self.users_required.load(Ordering::Relaxed)
    }

    /// TLS as configured now (`None`: plain text).
    pub fn tls(&self) -> Option<crate::tls::Tls> {
        self.tls.read().clone()
    }

    /// Installs reloaded users and TLS: new connections use them at once,
    /// open ones re-check their user and subscriptions (see
    /// [`reloaded`](Self::reloaded)).
    pub fn reload(&self, users: Arc<crate::auth::Users>, tls: Option<crate::tls::Tls>) {
        self.users_required
            .store(users.required(), Ordering::Relaxed);
        *self.users.write() = users;
        *self.tls.write() = tls;
        self.reloads.send_modify(|n| *n += 1);
    }

    /// Changes when the configuration is reloaded: a connection task
    /// selects on it to re-check its user and subscriptions.
    pub fn reloaded(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reloads.subscribe()
    }

    /// Resolves when a reload removes `identity`'s user or changes its
    /// credentials or permissions: for web streams (JSON WebSocket, SSE),
    /// which end then and let the client connect again under the new rules.
    pub async fn identity_changed(&self, identity: &crate::auth::Identity) {
        let mut reloads = self.reloaded();
        // Checked once now too: a reload between the request's login and
        // this wait would otherwise go unseen.
        loop {
            let same = self
                .users()
                .reauthorize(identity)
                .is_some_and(|now| now.permissions == identity.permissions);
            if !same {
                return;
            }
            if reloads.changed().await.is_err() {
                break;
            }
        }
        std::future::pending().await
    }

    /// A permit for one more connection from `peer`, or `None` if the server
    /// (or that address's share of it) is full.
    pub fn admit(&self, peer: SocketAddr) -> Option<ConnectionPermit> {
        let admitted = self.try_admit(peer.ip());
        if admitted.is_none() {
            self.stats
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    fn try_admit(&self, ip: IpAddr) -> Option<ConnectionPermit> {
        let global = self.connections.clone().try_acquire_owned().ok()?;
        let mut per_ip = self.per_ip.lock();
        let count = per_ip.entry(ip).or_default();
        let max = self.limits.max_connections_per_ip;
        if max > 0 && *count >= max {
            return None;
        }
        *count += 1;
        Some(ConnectionPermit {
            _global: global,
            ip,
            per_ip: self.per_ip.clone(),
        })
    }
}

/// Counters kept by the listeners.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// NATS connections open now.
    pub nats_connections: AtomicU64,
    /// Redis connections open now.
    pub redis_connections: AtomicU64,
    /// MQTT connections open now.
    pub mqtt_connections: AtomicU64,
    /// WebSocket connections open now (JSON protocol and NATS over WebSocket).
    pub websocket_connections: AtomicU64,
    /// Server-Sent Events streams open now.
    pub sse_connections: AtomicU64,
    /// HTTP requests served.
    pub http_requests: AtomicU64,
    /// Messages refused for exceeding the payload limit.
    pub payload_refusals: AtomicU64,
    /// Connections closed for exceeding the control-line (or request) limit.
    pub control_line_refusals: AtomicU64,
    /// Subscriptions refused by the per-connection limit.
    pub subscription_refusals: AtomicU64,
    /// Failed authentications.
    pub auth_failures: AtomicU64,
    /// Connections closed for not authenticating in time.
    pub auth_timeouts: AtomicU64,
    /// Publishes and subscriptions refused by permissions.
    pub permission_refusals: AtomicU64,
    /// Connections ever accepted.
    pub total_connections: AtomicU64,
    /// Connections refused by the connection limit.
    pub refused_connections: AtomicU64,
}

impl ServerStats {
    /// Counts a connection opened; the guard counts it closed when dropped.
    pub fn open(&self, gauge: fn(&ServerStats) -> &AtomicU64) -> ConnectionCount<'_> {
        gauge(self).fetch_add(1, Ordering::Relaxed);
        self.total_connections.fetch_add(1, Ordering::Relaxed);
        ConnectionCount { gauge: gauge(self) }
    }
}

/// Decrements a connection gauge on drop.
#[derive(Debug)]
pub struct ConnectionCount<'a> {
    gauge: &'a AtomicU64,
}

impl Drop for ConnectionCount<'_> {
    fn drop(&mut self) {
        self.gauge.fetch_sub(1, Ordering::Relaxed);
    }
}
