//! Starting and stopping a server: bind every configured listener, run their
//! accept loops, and shut down gracefully (stop accepting, let connections
//! flush what is pending, close).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use herald_core::{Broker, BrokerConfig, PendingLimits};
use tracing::{info, warn};

use crate::config::Ready;
use crate::listener;
pub use crate::shared::{ConnectionCount, ConnectionPermit, ServerStats, Shared};

/// A running server.
#[derive(Debug)]
pub struct RunningServer {
    shared: Arc<Shared>,
    nats_addr: Option<SocketAddr>,
    redis_addr: Option<SocketAddr>,
    mqtt_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    mqtt: Option<Arc<listener::mqtt::MqttServer>>,
    /// This process's hold on the data directory, released after shutdown.
    dir_lock: herald_store::DataDirLock,
    /// The configuration it started with (a reload compares against it).
    started_with: Ready,
}

/// How long shutdown waits for connections to flush before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl RunningServer {
    /// Binds every configured listener and starts serving.
    ///
    /// # Errors
    /// A listener cannot bind its address.
    pub async fn start(config: Ready) -> anyhow::Result<Self> {
        let started_with = config.clone();
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create data directory {}: {e}",
                config.data_dir.display()
            )
        })?;
        // Before anything reads or writes the directory: a second process
        // on it would append to the same segment files.
        let dir_lock = herald_store::DataDirLock::acquire(&config.data_dir)?;
        // The web port first: it says 503 until everything below is ready.
        let starting = match config.http {
            Some(addr) => Some(listener::http::Starting::serve(
                listener::bind("http", addr).await?,
            )),
            None => None,
        };
        let limits = config.limits.clone();
        let broker = Broker::with_config(BrokerConfig {
            pending: PendingLimits {
                max_messages: 0,
                max_bytes: limits.max_pending,
            },
            slow_consumer: limits.slow_consumer,
        });
        // Before anything subscribes (streams, MQTT sessions): the cluster
        // counts every subscription it will announce to other nodes.
        // Routes use mutual TLS when the server has a client CA.
        let route_tls = config.tls.as_ref().and_then(|t| t.route.clone());
        let cluster = config
            .cluster
            .clone()
            .map(|c| herald_cluster::Cluster::new(broker.clone(), c, route_tls));
        let data_dir = config.data_dir.clone();
        let store_broker = broker.clone();
        let sync = config.sync;
        // Recovery reads the logs: keep it off the async workers.
        let store = tokio::task::spawn_blocking(move || {
            herald_store::Store::open(&data_dir, store_broker, sync)
        })
        .await?
        .map_err(|e| {
            anyhow::anyhow!("cannot open streams in {}: {e}", config.data_dir.display())
        })?;

        let shared = Arc::new(Shared::new(
            broker,
            limits,
            new_server_id(),
            config.redis_config.clone(),
            store,
            config.users.clone(),
            config.tls.clone(),
        ));
        if let Some(cluster) = &cluster {
            // An MQTT publish keeps its QoS and RETAIN flag on other nodes.
            cluster.set_extension_codec(Arc::new(listener::mqtt::RouteCodec));
            let _ = shared.cluster.set(cluster.clone());
        }
        crate::jetstream::start(
            shared.store.clone(),
            cluster.clone(),
            &shared.tracker,
            shared.shutdown.clone(),
        );
        let mut mqtt_addr = None;
        let mut mqtt = None;
        if let Some(addr) = config.mqtt {
            // Saved sessions come back before the first client of any protocol can
            // connect (their subscriptions collect messages from the start).
            let server = listener::mqtt::MqttServer::start(
                shared.clone(),
                config.mqtt_config.clone(),
                &config.data_dir,
            )
            .await?;
            let socket = listener::bind("mqtt", addr).await?;
            mqtt_addr = Some(socket.local_addr()?);
            let handler = server.clone();
            shared.tracker.spawn(listener::accept_loop(
                socket,
                "mqtt",
                shared.clone(),
                move |stream, peer, _shared, permit| handler.clone().serve(stream, peer, permit),
            ));
            mqtt = Some(server);
        }
        let mut nats_addr = None;
        if let Some(addr) = config.nats {
            let socket = listener::bind("nats", addr).await?;
            nats_addr = Some(socket.local_addr()?);
            shared.tracker.spawn(listener::accept_loop(
                socket,
                "nats",
                shared.clone(),
                listener::nats::serve,
            ));
        }
        let mut redis_addr = None;
        if let Some(addr) = config.redis {
            let socket = listener::bind("redis", addr).await?;
            redis_addr = Some(socket.local_addr()?);
            shared.tracker.spawn(listener::accept_loop(
                socket,
                "redis",
                shared.clone(),
                listener::redis::serve,
            ));
        }
        if let Some(cluster) = &cluster {
            let client_urls = nats_addr.map(|a| a.to_string()).into_iter().collect();
            cluster.start(client_urls).await.map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen for cluster routes on {:?}: {e}",
                    cluster.node()
                )
            })?;
            // Replicated streams: the meta group and this node's stream groups.
            cluster
                .enable_jetstream(
                    shared.store.clone(),
                    config.data_dir.join("raft"),
                    matches!(sync, herald_store::SyncPolicy::Always),
                )
                .await
                .map_err(|e| anyhow::anyhow!("cannot open the cluster's consensus logs: {e}"))?;
        }
        let http = match starting {
            Some(starting) => Some(starting.ready().await?),
            None => None,
        };
        let http_addr = http.as_ref().map(|s| s.local_addr()).transpose()?;
        let monitor = match config.monitor {
            Some(addr) => Some(listener::bind("monitor", addr).await?),
            None => None,
        };
        let monitor_addr = monitor.as_ref().map(|s| s.local_addr()).transpose()?;
        let _ = shared.listeners.set(crate::shared::ListenerAddrs {
            nats: nats_addr,
            redis: redis_addr,
            mqtt: mqtt_addr,
            http: http_addr,
            monitor: monitor_addr,
        });
        if let Some(socket) = http {
            shared.tracker.spawn(listener::http::serve(
                socket,
                shared.clone(),
                nats_addr.is_some(),
                mqtt.clone(),
            ));
        }
        if let Some(socket) = monitor {
            shared
                .tracker
                .spawn(listener::http::serve_monitor(socket, shared.clone()));
        }
        Ok(Self {
            shared,
            nats_addr,
            redis_addr,
            mqtt_addr,
            http_addr,
            mqtt,
            dir_lock,
            started_with,
        })
    }

    /// The Redis listener's bound address, if it is on.
    pub fn redis_addr(&self) -> Option<SocketAddr> {
        self.redis_addr
    }

    /// The MQTT listener's bound address, if it is on.
    pub fn mqtt_addr(&self) -> Option<SocketAddr> {
        self.mqtt_addr
    }

    /// The web listener's bound address, if it is on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The cluster route listener's bound address, if clustering is on.
    pub fn cluster_addr(&self) -> Option<SocketAddr> {
        self.shared
            .cluster
            .get()
            .and_then(herald_cluster::Cluster::route_addr)
    }

    /// The NATS listener's bound address, if it is on.
    pub fn nats_addr(&self) -> Option<SocketAddr> {
        self.nats_addr
    }

    /// The broker behind every listener.
    pub fn broker(&self) -> &Broker {
        &self.shared.broker
    }

    /// Applies `config`'s users and TLS now (what SIGHUP does; see
    /// [`reload`](crate::reload)).
    ///
    /// # Errors
    /// `config` does not validate; nothing changed.
    pub fn reload(&self, config: &crate::Config) -> anyhow::Result<crate::reload::Reloaded> {
        crate::reload::apply(&self.shared, &self.started_with, config)
    }

    /// State shared with the connection tasks.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops accepting, lets every connection flush and close, and waits
    /// (up to a grace period) for them.
    pub async fn shutdown(self) {
        info!("shutting down");
        self.shared.shutdown.cancel();
        self.shared.tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.shared.tracker.wait())
            .await
            .is_err()
        {
            warn!("some connections did not close within the grace period");
        }
        if let Some(mqtt) = &self.mqtt {
            // Connections are closed and their Wills published: save the sessions.
            mqtt.stop().await;
        }
        if let Some(cluster) = self.shared.cluster.get() {
            cluster.stop().await;
        }
        let store = self.shared.store.clone();
        // Stores what is queued, syncs, and saves consumer progress.
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
        // Everything is written: another process may have the directory now.
        drop(self.dir_lock);
        info!("stopped");
    }
}

/// A server id in nats-server's shape: `N` and 55 upper-case base32 characters.
fn new_server_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::rng();
    let mut id = String::with_capacity(56);
    id.push('N');
    for _ in 0..55 {
        id.push(char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]));
    }
    id
}
