//! Configuration: one serde tree with defaults in code, overridden by the
//! TOML file (`--config`), then by `HERALD_*` environment variables, then by
//! flags ([`layers`](crate::layers) holds the rule). [`Config::validate`] turns the raw
//! tree into [`Ready`] form before anything starts, failing fast with the
//! key's name.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use herald_core::SlowConsumerPolicy;
use serde::{Deserialize, Serialize};

/// The whole configuration as read from the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where streams and other durable state live.
    pub data_dir: PathBuf,
    /// Log filter (`info`, `herald=debug`, ...), as `RUST_LOG` takes it.
    pub log: String,
    /// Log line format: `text` or `json`.
    pub log_format: LogFormat,
    /// Worker threads serving connections; 0 means one per CPU.
    pub threads: usize,
    /// The NATS listener.
    pub nats: NatsConfig,
    /// The Redis listener.
    pub redis: RedisConfig,
    /// The MQTT listener and its sessions.
    pub mqtt: MqttConfig,
    /// The web listener: pages, REST, WebSocket, SSE, metrics.
    pub http: HttpConfig,
    /// Durable streams.
    pub streams: StreamsConfig,
    /// Limits that apply to every connection.
    pub limits: Limits,
    /// Clustering: routes to other herald nodes.
    pub cluster: ClusterSection,
    /// TLS for every listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::tls::TlsConfig>,
    /// Users; with none, every client is anonymous and may do everything.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<crate::auth::UserConfig>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people: aligned text, colours only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The web listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// `host:port` to listen on (port 0 picks a free port), or `off`.
    pub listen: String,
    /// A second listener serving only nats-server's monitoring endpoints
    /// (`/varz`, `/connz`, `/subsz`, `/jsz`, `/healthz`), for tools that
    /// expect them on their own port (8222); `off` by default. The web
    /// listener serves them too.
    pub monitor: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".to_owned(),
            monitor: "off".to_owned(),
        }
    }
}

/// The `[cluster]` section: this node's routes to other nodes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSection {
    /// `host:port` of the route listener, or `off` (empty: off; a single
    /// node).
    pub listen: String,
    /// This node's name, unique in the cluster (empty: the host name).
    pub node: String,
    /// The cluster's name (empty: `herald`); nodes of another cluster are refused.
    pub name: String,
    /// Route addresses of other nodes (`host:port`); more are learned from them.
    pub peers: Vec<String>,
    /// The route address other nodes are told to dial (empty: the bound one).
    pub advertise: String,
    /// A secret every node must prove it knows (empty: none).
    pub secret: String,
    /// Entries of a replicated stream's consensus log between snapshots
    /// (0: the default, 8192).
    pub snapshot_entries: u64,
}

impl ClusterSection {
    /// The cluster configuration, or `None` when routes are off.
    ///
    /// # Errors
    /// The listen address is not one.
    pub fn resolve(
        &self,
        max_payload: usize,
    ) -> anyhow::Result<Option<herald_cluster::ClusterConfig>> {
        let listen = match self.listen.as_str() {
            "" => None,
            other => parse_listen("cluster.listen", other)?,
        };
        let Some(listen) = listen else {
            return Ok(None);
        };
        let node = if self.node.is_empty() {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "herald".to_owned())
        } else {
            self.node.clone()
        };
        Ok(Some(herald_cluster::ClusterConfig {
            node,
            name: if self.name.is_empty() {
                "herald".to_owned()
            } else {
                self.name.clone()
            },
            listen,
            advertise: (!self.advertise.trim().is_empty())
                .then(|| self.advertise.trim().to_owned()),
            peers: self
                .peers
                .iter()
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect(),
            secret: (!self.secret.is_empty()).then(|| self.secret.clone()),
            // A message as large as clients may publish, with its subject,
            // headers and the frame's own fields.
            max_frame: max_payload.saturating_add(1 << 20),
            snapshot_entries: match self.snapshot_entries {
                0 => 8192,
                n => n,
            },
        }))
    }
}

/// Durable streams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamsConfig {
    /// When stored messages are forced to disk: an interval such as `1s`
    /// (the default: a publish is acked once its data is in the kernel, so
    /// a killed process loses nothing acked; a power loss may take the last
    /// interval), or `always` (fsync before each publish ack, publishes
    /// stored together sharing one fsync; survives power loss).
    pub sync: String,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        Self {
            sync: "1s".to_owned(),
        }
    }
}

/// The default fsync interval of streams, as Redis's `appendfsync everysec`.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Parses a sync policy: `always` or a duration.
///
/// # Errors
/// Neither `always` nor a duration.
pub fn parse_sync(value: &str) -> anyhow::Result<herald_store::SyncPolicy> {
    if value.eq_ignore_ascii_case("always") {
        return Ok(herald_store::SyncPolicy::Always);
    }
    match humantime::parse_duration(value) {
        Ok(d) if !d.is_zero() => Ok(herald_store::SyncPolicy::Interval(d)),
        _ => bail!("streams.sync: {value:?} is neither `always` nor a duration such as `1s`"),
    }
}

/// The NATS listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// `host:port` to listen on (port 0 picks a free port), or `off`.
    pub listen: String,
}

/// The Redis listener and its pub/sub output-buffer limit (as Redis's
/// `client-output-buffer-limit pubsub 32mb 8mb 60`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `host:port` to listen on (port 0 picks a free port), or `off`.
    pub listen: String,
    /// Output a subscriber may have waiting before it is closed at once
    /// (bytes, or with a unit: `32MiB`).
    #[serde(deserialize_with = "crate::size::deserialize")]
    pub output_buffer_hard: usize,
    /// Output a subscriber may have waiting for at most `output_buffer_soft_window`.
    #[serde(deserialize_with = "crate::size::deserialize")]
    pub output_buffer_soft: usize,
    /// How long output may stay above the soft limit.
    #[serde(with = "humantime_serde")]
    pub output_buffer_soft_window: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:6379".to_owned(),
            output_buffer_hard: 32 * 1024 * 1024,
            output_buffer_soft: 8 * 1024 * 1024,
            output_buffer_soft_window: Duration::from_secs(60),
        }
    }
}

/// The MQTT listener (3.1.1 and 5.0) and its sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// `host:port` to listen on (port 0 picks a free port), or `off`.
    pub listen: String,
    /// QoS 1 and 2 messages sent to one client and not yet acknowledged, at most
    /// (mosquitto's `max_inflight_messages`); an MQTT 5 client's smaller Receive
    /// Maximum wins. Further messages wait in the session's queue.
    pub max_inflight: u16,
    /// QoS 1 and 2 messages a session holds beyond those in flight, while its
    /// client is offline or busy (mosquitto's `max_queued_messages`); past it new
    /// messages for that session are dropped and counted.
    pub max_queued: usize,
    /// Longest a session outlives its connection, whatever the client asks
    /// (`0s` = no cap). MQTT 3.1.1 persistent sessions (clean session 0) never
    /// expire unless this caps them.
    #[serde(with = "humantime_serde")]
    pub max_session_expiry: Duration,
    /// QoS 2 publishes a client may leave unreleased (no `PUBREL` yet), at
    /// most: the Receive Maximum herald advertises to MQTT 5 clients. One
    /// more ends the connection (reason 0x93 for MQTT 5).
    pub receive_maximum: u16,
    /// Longest keep-alive a client may ask for (`0s` = no cap). An MQTT 5
    /// client asking for more (or none) is told the cap in CONNACK's Server
    /// Keep Alive; an MQTT 3.1.1 client, which cannot be told, is refused
    /// (identifier rejected), as mosquitto's `max_keepalive` does.
    #[serde(with = "humantime_serde")]
    pub max_keepalive: Duration,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:1883".to_owned(),
            max_inflight: 20,
            max_queued: 1000,
            max_session_expiry: Duration::ZERO,
            receive_maximum: 1024,
            max_keepalive: Duration::ZERO,
        }
    }
}

/// Connection limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest message payload accepted, in bytes (headers included); sizes
    /// take units: `1MiB`.
    #[serde(deserialize_with = "crate::size::deserialize")]
    pub max_payload: usize,
    /// Longest protocol control line accepted, in bytes.
    #[serde(deserialize_with = "crate::size::deserialize")]
    pub max_control_line: usize,
    /// Bytes a connection may have waiting to be written before it is a slow consumer.
    #[serde(deserialize_with = "crate::size::deserialize")]
    pub max_pending: usize,
    /// What to do with a slow consumer: `close` or `drop_newest`.
    pub slow_consumer: SlowConsumerPolicy,
    /// Longest a write to a client may wait for the socket to take a byte;
    /// past it the client is a slow consumer (nats-server's `write_deadline`).
    #[serde(with = "humantime_serde")]
    pub write_deadline: Duration,
    /// Subscriptions one connection may hold (0 = unlimited).
    pub max_subscriptions: usize,
    /// Connections the server accepts at once (0 = unlimited).
    pub max_connections: usize,
    /// How often the server pings an idle client.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// Unanswered pings before the connection is closed as stale.
    pub max_pings_out: u32,
    /// Connections one source address may have at once (0 = unlimited).
    pub max_connections_per_ip: usize,
    /// Time a client has to authenticate when users are configured.
    #[serde(with = "humantime_serde")]
    pub auth_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./herald-data"),
            log: "info".to_owned(),
            log_format: LogFormat::Text,
            threads: 0,
            nats: NatsConfig::default(),
            redis: RedisConfig::default(),
            mqtt: MqttConfig::default(),
            http: HttpConfig::default(),
            streams: StreamsConfig::default(),
            limits: Limits::default(),
            cluster: ClusterSection::default(),
            tls: None,
            users: Vec::new(),
        }
    }
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:4222".to_owned(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_payload: 1024 * 1024,
            max_control_line: 4096,
            max_pending: 64 * 1024 * 1024,
            slow_consumer: SlowConsumerPolicy::Close,
            write_deadline: Duration::from_secs(10),
            max_subscriptions: 0,
            max_connections: 65_536,
            ping_interval: Duration::from_secs(120),
            max_pings_out: 2,
            max_connections_per_ip: 0,
            auth_timeout: Duration::from_secs(2),
        }
    }
}

impl Config {
    /// Reads a TOML file over the defaults.
    ///
    /// # Errors
    /// The file cannot be read or is not valid configuration.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }

    /// The default configuration as TOML, for `herald config`.
    pub fn default_toml() -> String {
        toml::to_string_pretty(&Self::default()).unwrap_or_default()
    }

    /// Checks every value and resolves addresses.
    ///
    /// # Errors
    /// Names the key whose value is wrong.
    pub fn validate(&self) -> anyhow::Result<Ready> {
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&self.log) {
            bail!("log: {:?} is not a log filter ({error})", self.log);
        }
        if self.limits.max_payload == 0 {
            bail!("limits.max_payload must be greater than 0");
        }
        if self.limits.max_control_line < 32 {
            bail!("limits.max_control_line must be at least 32 bytes");
        }
        if self.limits.max_pending < self.limits.max_payload {
            bail!("limits.max_pending must be at least limits.max_payload");
        }
        if self.limits.write_deadline.is_zero() {
            bail!("limits.write_deadline must be greater than 0");
        }
        if self.limits.ping_interval.is_zero() {
            bail!("limits.ping_interval must be greater than 0");
        }
        if self.redis.output_buffer_hard < self.limits.max_payload {
            bail!("redis.output_buffer_hard must be at least limits.max_payload");
        }
        if self.mqtt.max_inflight == 0 {
            bail!("mqtt.max_inflight must be greater than 0");
        }
        if self.mqtt.receive_maximum == 0 {
            bail!("mqtt.receive_maximum must be greater than 0");
        }
        if self.mqtt.max_keepalive > Duration::from_secs(u64::from(u16::MAX)) {
            bail!("mqtt.max_keepalive must be at most 65535s (MQTT's largest keep-alive)");
        }
        Ok(Ready {
            data_dir: self.data_dir.clone(),
            nats: parse_listen("nats.listen", &self.nats.listen)?,
            redis: parse_listen("redis.listen", &self.redis.listen)?,
            redis_config: self.redis.clone(),
            mqtt: parse_listen("mqtt.listen", &self.mqtt.listen)?,
            mqtt_config: self.mqtt.clone(),
            http: parse_listen("http.listen", &self.http.listen)?,
            monitor: parse_listen("http.monitor", &self.http.monitor)?,
            users: std::sync::Arc::new(crate::auth::Users::from_config(&self.users)?),
            tls: self.tls.as_ref().map(crate::tls::Tls::load).transpose()?,
            sync: parse_sync(&self.streams.sync)?,
            limits: self.limits.clone(),
            cluster: self.cluster.resolve(self.limits.max_payload)?,
        })
    }
}

fn parse_listen(key: &str, value: &str) -> anyhow::Result<Option<SocketAddr>> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let addr = value
        .parse()
        .or_else(|_| {
            // Accept `localhost:4222` and other names that resolve.
            std::net::ToSocketAddrs::to_socket_addrs(value)
                .ok()
                .and_then(|mut addrs| addrs.next())
                .ok_or(())
        })
        .map_err(|()| anyhow::anyhow!("{key}: {value:?} is not host:port or off"))?;
    Ok(Some(addr))
}

/// Validated configuration, ready to start a server from.
#[derive(Debug, Clone)]
pub struct Ready {
    /// Where durable state lives.
    pub data_dir: PathBuf,
    /// The NATS listener's address, if it is on.
    pub nats: Option<SocketAddr>,
    /// The Redis listener's address, if it is on.
    pub redis: Option<SocketAddr>,
    /// Redis listener settings.
    pub redis_config: RedisConfig,
    /// The MQTT listener's address, if it is on.
    pub mqtt: Option<SocketAddr>,
    /// MQTT listener and session settings.
    pub mqtt_config: MqttConfig,
    /// The web listener's address, if it is on.
    pub http: Option<SocketAddr>,
    /// The monitoring listener's address, if it is on.
    pub monitor: Option<SocketAddr>,
    /// Users and their permissions.
    pub users: std::sync::Arc<crate::auth::Users>,
    /// TLS for every listener.
    pub tls: Option<crate::tls::Tls>,
    /// Stream fsync policy.
    pub sync: herald_store::SyncPolicy,
    /// Connection limits.
    pub limits: Limits,
    /// Routes to other nodes, when clustering is on.
    pub cluster: Option<herald_cluster::ClusterConfig>,
}

impl Ready {
    /// A configuration for tests and embedding: every listener on
    /// `127.0.0.1:0`, data in `data_dir`.
    pub fn ephemeral(data_dir: PathBuf) -> Self {
        let any = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        Self {
            data_dir,
            nats: any,
            redis: any,
            redis_config: RedisConfig::default(),
            mqtt: any,
            mqtt_config: MqttConfig::default(),
            http: any,
            monitor: None,
            users: std::sync::Arc::default(),
            tls: None,
            sync: herald_store::SyncPolicy::Interval(DEFAULT_SYNC_INTERVAL),
            limits: Limits::default(),
            cluster: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_round_trips_through_toml() -> anyhow::Result<()> {
        let text = Config::default_toml();
        let parsed: Config = toml::from_str(&text)?;
        assert_eq!(parsed, Config::default());
        Ok(())
    }

    #[test]
    fn file_values_override_defaults() -> anyhow::Result<()> {
        let parsed: Config = toml::from_str(
            "[nats]\nlisten = \"127.0.0.1:0\"\n[limits]\nmax_payload = 2048\nping_interval = \"30s\"\n",
        )?;
        assert_eq!(parsed.limits.max_payload, 2048);
        assert_eq!(parsed.limits.ping_interval, Duration::from_secs(30));
        let ready = parsed.validate()?;
        assert_eq!(ready.nats, Some("127.0.0.1:0".parse()?));
        Ok(())
    }

    #[test]
    fn mqtt_settings() -> anyhow::Result<()> {
        let parsed: Config = toml::from_str(
            "[mqtt]\nlisten = \"127.0.0.1:0\"\nmax_inflight = 5\nmax_session_expiry = \"1h\"\n",
        )?;
        assert_eq!(parsed.mqtt.max_inflight, 5);
        assert_eq!(parsed.mqtt.max_queued, MqttConfig::default().max_queued);
        let ready = parsed.validate()?;
        assert_eq!(ready.mqtt, Some("127.0.0.1:0".parse()?));
        assert_eq!(
            ready.mqtt_config.max_session_expiry,
            Duration::from_secs(3600)
        );
        let mut config = Config::default();
        config.mqtt.max_inflight = 0;
        let err = config.validate().map(|_| ()).expect_err("refused");
        assert!(err.to_string().contains("mqtt.max_inflight"), "{err}");
        config.mqtt.max_inflight = 1;
        config.mqtt.listen = "off".into();
        assert_eq!(config.validate().map(|r| r.mqtt).ok(), Some(None));
        Ok(())
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut config = Config::default();
        config.nats.listen = "nowhere".into();
        let err = config
            .validate()
            .map(|_| ())
            .expect_err("refused")
            .to_string();
        assert!(err.contains("nats.listen"), "{err}");
        let unknown = toml::from_str::<Config>("[nats]\nlisen = \"x\"\n");
        assert!(unknown.is_err());
        let mut config = Config::default();
        config.nats.listen = "off".into();
        assert_eq!(config.validate().map(|r| r.nats).ok(), Some(None));
    }
}
