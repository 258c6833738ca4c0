//! The `herald` server: configuration, the protocol listeners, and the client
//! subcommands. `main.rs` is glue; everything lives here so tests can start a
//! real server in-process on ephemeral ports.
//!
//! | module | what it owns |
//! | --- | --- |
//! | [`cli`] | command-line flags and how they override the config |
//! | [`config`] | the configuration tree, its defaults, the TOML file, validation |
//! | [`server`] | starting listeners, shared connection state, graceful shutdown |
//! | [`listener`] | the accept loop and one adapter per protocol |
//! | [`client`] | `herald pub`, `sub`, `request`, `reply` |

pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod jetstream;
pub mod listener;
pub mod server;
pub mod stream_cmd;
pub mod tls;

pub use config::{Config, Ready};
pub use server::RunningServer;

/// Runs the server until SIGINT or SIGTERM, then shuts down gracefully.
///
/// # Errors
/// Invalid configuration or a listener that cannot bind.
pub async fn serve(ready: Ready) -> anyhow::Result<()> {
    let server = RunningServer::start(ready).await?;
    shutdown_signal().await;
    server.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
