//! The `herald` server: configuration, the protocol listeners, and the client
//! subcommands. `main.rs` is glue; everything lives here so tests can start a
//! real server in-process on ephemeral ports.
//!
//! | module | what it owns |
//! | --- | --- |
//! | [`cli`] | command-line flags and how they override the config |
//! | [`config`] | the configuration tree, its defaults, the TOML file, validation |
//! | [`layers`] | which source of a setting wins: flag, variable, file, default |
//! | [`config_doc`] | `herald config`: the defaults with a comment on every key |
//! | [`server`] | starting listeners, graceful shutdown |
//! | [`shared`] | what every connection shares, connection limits, counters |
//! | [`clients`] | the open and recently closed connections, for `/connz` |
//! | [`listener`] | the accept loop and one adapter per protocol |
//! | [`client`] | `herald pub`, `sub`, `request`, `reply` |
//! | [`kv_cmd`] | `herald kv`, `herald obj` |
//! | [`reload`] | re-reading users and TLS on `SIGHUP` or `herald reload` |
//! | [`metrics`] | `/metrics`: counters, latency histograms, streams, consumers, `process_*` |
//! | [`systemd`] | readiness for `Type=notify` units |
//! | [`open_files`] | raising the open-file limit at start |

// `/varz` is one large `json!` literal.
#![recursion_limit = "256"]

pub mod auth;
pub mod cli;
pub mod client;
pub mod clients;
pub mod config;
pub mod config_doc;
pub mod jetstream;
pub mod kv_cmd;
pub mod layers;
pub mod listener;
pub mod metrics;
pub mod open_files;
pub mod reload;
pub mod server;
pub mod shared;
pub mod size;
pub mod stream_cmd;
pub mod systemd;
pub mod tls;

pub use config::{Config, Ready};

/// What to warn an operator of at start: a listener reachable beyond this
/// machine while no users are configured (anyone who reaches it may publish,
/// subscribe to everything and read every stream), and a cluster route
/// listener reachable beyond it without a secret (anyone may join).
pub fn exposure_warnings(ready: &Ready) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some(cluster) = &ready.cluster
        && cluster.secret.is_none()
        && !cluster.listen.ip().is_loopback()
    {
        warnings.push(format!(
            "the cluster route listener on {} has no secret: anything that reaches it can \
             join the cluster and receive every message. Set --cluster-secret (or \
             [cluster] secret) on every node.",
            cluster.listen
        ));
    }
    if ready.users.required() {
        return warnings;
    }
    let open: Vec<String> = [
        ("nats", ready.nats),
        ("redis", ready.redis),
        ("mqtt", ready.mqtt),
        ("http", ready.http),
        ("monitor", ready.monitor),
    ]
    .into_iter()
    .filter_map(|(name, addr)| {
        addr.filter(|a| !a.ip().is_loopback())
            .map(|a| format!("{name} on {a}"))
    })
    .collect();
    if !open.is_empty() {
        warnings.push(format!(
            "no users are configured and {} can be reached from other machines: anyone who \
             connects may publish, subscribe to every subject and read every stream. Add \
             [[users]] to the config (`herald config` shows an example, `herald passwd` \
             hashes a password) or bind the listeners to 127.0.0.1.",
            open.join(", ")
        ));
    }
    warnings
}
pub use server::RunningServer;

/// Runs the server until SIGINT or SIGTERM, then shuts down gracefully.
/// On SIGHUP (or `herald reload`) it reads the configuration again from
/// `source` (see [`reload`]).
///
/// # Errors
/// Invalid configuration or a listener that cannot bind.
pub async fn serve(ready: Ready, source: reload::ConfigSource) -> anyhow::Result<()> {
    // Handlers first: a signal that arrives while the listeners start (the
    // log already says one is listening) must stop the server gracefully,
    // not kill it; a SIGHUP must not kill it either.
    let stop = ShutdownSignal::install();
    let hangups = reload::hangups();
    open_files::raise_limit(ready.limits.max_connections);
    let server = RunningServer::start(ready.clone()).await?;
    let shared = server.shared().clone();
    shared
        .tracker
        .spawn(reload::serve(shared.clone(), ready, source, hangups));
    // Streams are recovered and every listener is up.
    systemd::notify("READY=1");
    stop.wait().await;
    systemd::notify("STOPPING=1");
    server.shutdown().await;
    Ok(())
}

/// SIGINT and SIGTERM, registered as soon as this is built.
struct ShutdownSignal {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignal {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let register = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(signal) => Some(signal),
                Err(error) => {
                    tracing::error!(%error, "cannot listen for {name}");
                    None
                }
            };
            Self {
                terminate: register(SignalKind::terminate(), "SIGTERM"),
                interrupt: register(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn wait(self) {
        #[cfg(unix)]
        {
            async fn recv(signal: Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = recv(self.terminate) => {},
                () = recv(self.interrupt) => {},
            }
        }
        #[cfg(not(unix))]
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    }
}
