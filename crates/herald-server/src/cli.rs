//! Command-line flags. Each flag of `serve` also reads a `HERALD_*`
//! environment variable of its own and sets one key of the configuration,
//! over the file and the key's `HERALD_<TABLE>__<KEY>` variable (the one
//! rule is in [`layers`](crate::layers)).

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Config, LogFormat};
use crate::layers::Layer;
use clap::{Args, Parser, Subcommand};

/// `herald --version`: the package version and, built from a checkout, the
/// commit (see `build.rs`).
const VERSION: &str = env!("HERALD_VERSION");

/// herald: one pub/sub broker for NATS, Redis, MQTT and web clients.
///
/// Run with no subcommand to serve with every listener on its default port.
#[derive(Debug, Parser)]
#[command(name = "herald", version = VERSION, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Serve flags, when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the broker (the default).
    Serve(Box<ServeArgs>),
    /// Print the default configuration as TOML.
    Config,
    /// Publish a message (works against herald and nats-server alike).
    Pub(crate::client::PubArgs),
    /// Subscribe and print what arrives.
    Sub(crate::client::SubArgs),
    /// Send a request and print the reply.
    Request(crate::client::RequestArgs),
    /// Answer requests on a subject.
    Reply(crate::client::ReplyArgs),
    /// Manage streams and read their messages.
    Stream(crate::stream_cmd::StreamArgs),
    /// Key-Value buckets: put, get, del, watch, ls, history.
    Kv(crate::kv_cmd::KvArgs),
    /// Object stores: put, get, ls, rm.
    Obj(crate::kv_cmd::ObjArgs),
    /// Make a running herald re-read its users, permissions and TLS
    /// certificates (as SIGHUP does), through a request on $SYS.REQ.SERVER.RELOAD.
    Reload(crate::client::ReloadArgs),
    /// Read a password on standard input and print its hash for the config.
    Passwd,
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `herald man > herald.1`.
    Man,
    /// Ask a running herald's /healthz; exit 0 if it is ready (for container health checks).
    Health {
        /// The web (or monitor) port's address; plain HTTP (with TLS on, use
        /// a `--monitor` port).
        #[arg(
            long,
            env = "HERALD_HTTP",
            default_value = "127.0.0.1:8080",
            value_name = "HOST:PORT"
        )]
        addr: String,
    },
}

/// Flags of `herald serve`.
#[derive(Debug, Default, Clone, Args)]
pub struct ServeArgs {
    /// TOML configuration file; flags and HERALD_* variables override it.
    #[arg(long, short = 'c', env = "HERALD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// NATS listen address (`host:port`, port 0 = any free port, or `off`) [default: 0.0.0.0:4222].
    #[arg(long, env = "HERALD_NATS", value_name = "ADDR")]
    pub nats: Option<String>,
    /// Redis listen address (`host:port`, port 0 = any free port, or `off`) [default: 0.0.0.0:6379].
    #[arg(long, env = "HERALD_REDIS", value_name = "ADDR")]
    pub redis: Option<String>,
    /// MQTT listen address (`host:port`, port 0 = any free port, or `off`) [default: 0.0.0.0:1883].
    #[arg(long, env = "HERALD_MQTT", value_name = "ADDR")]
    pub mqtt: Option<String>,
    /// MQTT QoS 1/2 deliveries in flight per client, unacknowledged [default: 20].
    #[arg(long, env = "HERALD_MQTT_MAX_INFLIGHT", value_name = "N")]
    pub mqtt_max_inflight: Option<u16>,
    /// MQTT QoS 1/2 messages queued per client beyond those in flight; more are dropped and counted [default: 1000].
    #[arg(long, env = "HERALD_MQTT_MAX_QUEUED", value_name = "N")]
    pub mqtt_max_queued: Option<usize>,
    /// Web listen address: pages, REST, WebSocket, SSE, metrics (`host:port`, port 0 = any free port, or `off`) [default: 0.0.0.0:8080].
    #[arg(long, env = "HERALD_HTTP", value_name = "ADDR")]
    pub http: Option<String>,
    /// Monitoring listen address: nats-server's /varz, /connz, /subsz, /jsz and /healthz on a port of their own, for tools that expect 8222 (`host:port` or `off`) [default: off].
    #[arg(long, env = "HERALD_MONITOR", value_name = "ADDR")]
    pub monitor: Option<String>,
    /// Directory for durable state [default: ./herald-data].
    #[arg(long, env = "HERALD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// When stream writes are forced to disk: an interval such as `1s`, or `always` (fsync before every publish ack) [default: 1s].
    #[arg(long, env = "HERALD_SYNC", value_name = "always|DURATION")]
    pub sync: Option<String>,
    /// TLS certificate chain (PEM) for every listener; with --tls-key.
    #[arg(
        long,
        env = "HERALD_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(
        long,
        env = "HERALD_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) client certificates must chain to: requires client certificates (mutual TLS).
    #[arg(
        long,
        env = "HERALD_TLS_CLIENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,
    /// Worker threads that serve connections [default: 0 = one per CPU].
    #[arg(long, env = "HERALD_THREADS", value_name = "N")]
    pub threads: Option<usize>,
    /// Log filter, e.g. `info` or `herald=debug` [default: info]. This flag
    /// (or HERALD_LOG) wins over RUST_LOG, which wins over the config file.
    #[arg(long, env = "HERALD_LOG", value_name = "FILTER")]
    pub log: Option<String>,
    /// Log line format: `text` (for people; colours only on a terminal) or `json` (one object per line) [default: text].
    #[arg(long, env = "HERALD_LOG_FORMAT", value_name = "text|json")]
    pub log_format: Option<crate::config::LogFormat>,
    /// Route listener for other herald nodes (`host:port`), which makes this node part of a cluster [default: off].
    #[arg(long, env = "HERALD_CLUSTER", value_name = "ADDR")]
    pub cluster: Option<String>,
    /// Other nodes' route addresses, comma-separated; the rest of the mesh is learned from them.
    #[arg(
        long,
        env = "HERALD_PEERS",
        value_name = "ADDR,...",
        value_delimiter = ','
    )]
    pub peers: Option<Vec<String>>,
    /// The route address other nodes are told to dial (behind NAT or a proxy) [default: the bound address].
    #[arg(long, env = "HERALD_CLUSTER_ADVERTISE", value_name = "ADDR")]
    pub cluster_advertise: Option<String>,
    /// This node's name in the cluster [default: the host name].
    #[arg(long, env = "HERALD_NODE", value_name = "NAME")]
    pub node: Option<String>,
    /// The cluster's name; nodes of another cluster are refused [default: herald].
    #[arg(long, env = "HERALD_CLUSTER_NAME", value_name = "NAME")]
    pub cluster_name: Option<String>,
    /// A secret every node must prove it knows when a route opens.
    #[arg(
        long,
        env = "HERALD_CLUSTER_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub cluster_secret: Option<String>,
    /// Check the configuration (file, variables, flags) and exit: 0 if it would start.
    #[arg(long)]
    pub check_config: bool,
    /// Largest payload accepted: bytes, or with a unit (`2MiB`) [default: 1MiB].
    #[arg(long, env = "HERALD_MAX_PAYLOAD", value_name = "SIZE", value_parser = crate::size::parse)]
    pub max_payload: Option<usize>,
    /// Longest protocol control line: bytes or with a unit [default: 4096].
    #[arg(long, env = "HERALD_MAX_CONTROL_LINE", value_name = "SIZE", value_parser = crate::size::parse)]
    pub max_control_line: Option<usize>,
    /// Output a connection may have waiting before it is a slow consumer: bytes or with a unit [default: 64MiB].
    #[arg(long, env = "HERALD_MAX_PENDING", value_name = "SIZE", value_parser = crate::size::parse)]
    pub max_pending: Option<usize>,
    /// Slow-consumer policy: `close` or `drop-newest` [default: close].
    #[arg(long, env = "HERALD_SLOW_CONSUMER", value_enum, value_name = "POLICY")]
    pub slow_consumer: Option<SlowConsumerArg>,
    /// Longest a write to a client may wait before the client is a slow
    /// consumer, e.g. `10s` [default: 10s].
    #[arg(long, env = "HERALD_WRITE_DEADLINE", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub write_deadline: Option<Duration>,
    /// Subscriptions per connection, 0 = unlimited [default: 0].
    #[arg(long, env = "HERALD_MAX_SUBSCRIPTIONS", value_name = "N")]
    pub max_subscriptions: Option<usize>,
    /// Connections at once, 0 = unlimited [default: 65536].
    #[arg(long, env = "HERALD_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// How often idle clients are pinged, e.g. `2m` or `30s` [default: 2m].
    #[arg(long, env = "HERALD_PING_INTERVAL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub ping_interval: Option<Duration>,
    /// Unanswered pings before a connection is closed as stale [default: 2].
    #[arg(long, env = "HERALD_MAX_PINGS_OUT", value_name = "N")]
    pub max_pings_out: Option<u32>,
    /// Connections one source address may have at once, 0 = unlimited [default: 0].
    #[arg(long, env = "HERALD_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// Time a client has to authenticate when users are configured [default: 2s].
    #[arg(long, env = "HERALD_AUTH_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub auth_timeout: Option<Duration>,
}

/// The slow-consumer policy as a flag value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SlowConsumerArg {
    /// Close the connection.
    Close,
    /// Drop the newest message and count it.
    DropNewest,
}

impl ServeArgs {
    /// The configuration: defaults, the file, `HERALD_*` variables, then
    /// these flags (see [`layers`](crate::layers) for the one rule).
    ///
    /// # Errors
    /// The config file cannot be read or parsed, or a variable does not fit
    /// its key.
    pub fn to_config(&self) -> anyhow::Result<Config> {
        crate::layers::layered(
            self.config.as_deref(),
            &crate::layers::environment(),
            self.flags(),
        )
    }

    /// The flags that were given, by the key each sets.
    fn flags(&self) -> Layer {
        let mut flags = Layer::flags();
        let text = [
            ("nats.listen", &self.nats),
            ("redis.listen", &self.redis),
            ("mqtt.listen", &self.mqtt),
            ("http.listen", &self.http),
            ("http.monitor", &self.monitor),
            ("streams.sync", &self.sync),
            ("log", &self.log),
            ("cluster.listen", &self.cluster),
            ("cluster.node", &self.node),
            ("cluster.name", &self.cluster_name),
            ("cluster.secret", &self.cluster_secret),
            ("cluster.advertise", &self.cluster_advertise),
        ];
        for (key, value) in text {
            if let Some(value) = value {
                flags.set(key, value.as_str());
            }
        }
        let paths = [
            ("data_dir", &self.data_dir),
            ("tls.cert", &self.tls_cert),
            ("tls.key", &self.tls_key),
            ("tls.client_ca", &self.tls_client_ca),
        ];
        for (key, value) in paths {
            if let Some(value) = value {
                flags.set(key, value.to_string_lossy().as_ref());
            }
        }
        let counts = [
            ("threads", self.threads),
            ("mqtt.max_queued", self.mqtt_max_queued),
            ("limits.max_payload", self.max_payload),
            ("limits.max_control_line", self.max_control_line),
            ("limits.max_pending", self.max_pending),
            ("limits.max_subscriptions", self.max_subscriptions),
            ("limits.max_connections", self.max_connections),
            ("limits.max_connections_per_ip", self.max_connections_per_ip),
        ];
        for (key, value) in counts {
            if let Some(value) = value {
                flags.set(key, value);
            }
        }
        if let Some(value) = self.mqtt_max_inflight {
            flags.set("mqtt.max_inflight", value);
        }
        if let Some(value) = self.max_pings_out {
            flags.set("limits.max_pings_out", value);
        }
        let durations = [
            ("limits.write_deadline", self.write_deadline),
            ("limits.ping_interval", self.ping_interval),
            ("limits.auth_timeout", self.auth_timeout),
        ];
        for (key, value) in durations {
            if let Some(value) = value {
                flags.set(key, humantime::format_duration(value).to_string());
            }
        }
        if let Some(peers) = &self.peers {
            let peers: Vec<figment::value::Value> =
                peers.iter().map(|p| p.as_str().into()).collect();
            flags.set("cluster.peers", peers);
        }
        if let Some(format) = self.log_format {
            flags.set(
                "log_format",
                match format {
                    LogFormat::Text => "text",
                    LogFormat::Json => "json",
                },
            );
        }
        if let Some(policy) = self.slow_consumer {
            flags.set(
                "limits.slow_consumer",
                match policy {
                    SlowConsumerArg::Close => "close",
                    SlowConsumerArg::DropNewest => "drop_newest",
                },
            );
        }
        flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_override_defaults() -> anyhow::Result<()> {
        let cli =
            Cli::try_parse_from(["herald", "--nats", "127.0.0.1:0", "--ping-interval", "5s"])?;
        let config = cli.serve.to_config()?;
        assert_eq!(config.threads, 0, "one worker per CPU unless asked");
        assert_eq!(config.nats.listen, "127.0.0.1:0");
        assert_eq!(config.limits.ping_interval, Duration::from_secs(5));
        let cli =
            Cli::try_parse_from(["herald", "serve", "--max-payload", "10", "--threads", "3"])?;
        match cli.command {
            Some(Command::Serve(args)) => {
                let config = args.to_config()?;
                assert_eq!(config.limits.max_payload, 10);
                assert_eq!(config.threads, 3);
            }
            other => panic!("unexpected {other:?}"),
        }
        Ok(())
    }
}
