//! Reloading the configuration without a restart: on `SIGHUP`, or on a
//! request to [`RELOAD_SUBJECT`] (what `herald reload` sends), the file,
//! `HERALD_*` variables and flags are read again as at start.
//!
//! Users, their passwords, tokens and permissions, and the TLS certificate,
//! key and client CA take effect at once: new connections use them, and
//! every open connection re-checks its user — a client whose user is gone
//! (or whose credentials changed) is closed, one whose permissions changed
//! loses the subscriptions it may no longer make (see
//! [`Shared::reload`](crate::shared::Shared::reload)). Other keys
//! (listeners, limits, the data directory) need a restart: the reload
//! names those that changed and leaves them. A configuration that does not
//! validate changes nothing.

use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;

use crate::config::{Config, Ready};
use crate::shared::Shared;

/// The subject `herald reload` asks; a user needs publish permission on it
/// (with no users configured, anyone who can connect may reload).
pub const RELOAD_SUBJECT: &str = "$SYS.REQ.SERVER.RELOAD";

/// Reads the configuration again, as it was read at start.
pub type ConfigSource = Arc<dyn Fn() -> anyhow::Result<Config> + Send + Sync>;

/// What a reload did, as `herald reload` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reloaded {
    /// Users configured now.
    pub users: usize,
    /// Whether TLS is on now.
    pub tls: bool,
    /// Keys that changed but only take effect at a restart.
    pub restart_needed: Vec<&'static str>,
}

/// Applies `config`'s users and TLS to the running server `shared`, which
/// started with `running`.
///
/// # Errors
/// The new configuration does not validate (nothing is changed then).
pub fn apply(shared: &Shared, running: &Ready, config: &Config) -> anyhow::Result<Reloaded> {
    let next = config.validate()?;
    let restart_needed = restart_needed(running, &next);
    let users = next.users.len();
    let tls = next.tls.is_some();
    shared.reload(next.users, next.tls);
    if restart_needed.is_empty() {
        tracing::info!(users, tls, "configuration reloaded");
    } else {
        tracing::warn!(
            users,
            tls,
            "configuration reloaded; changes to {} take effect at the next restart",
            restart_needed.join(", ")
        );
    }
    Ok(Reloaded {
        users,
        tls,
        restart_needed,
    })
}

/// The settings that differ between `running` and `next` but cannot change
/// while the server runs.
fn restart_needed(running: &Ready, next: &Ready) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |name: &'static str, same: bool| {
        if !same {
            changed.push(name);
        }
    };
    check("data_dir", running.data_dir == next.data_dir);
    check("nats.listen", running.nats == next.nats);
    check("redis.listen", running.redis == next.redis);
    check("mqtt.listen", running.mqtt == next.mqtt);
    check("http.listen", running.http == next.http);
    check("http.monitor", running.monitor == next.monitor);
    check("redis", running.redis_config == next.redis_config);
    check("mqtt", running.mqtt_config == next.mqtt_config);
    check("streams.sync", running.sync == next.sync);
    check("limits", running.limits == next.limits);
    check("cluster", running.cluster == next.cluster);
    changed
}

/// Reloads on every `SIGHUP` (from `hangups`, registered before the server
/// started: until then the signal's default action would kill the
/// process) and every request to [`RELOAD_SUBJECT`] until `shared` shuts
/// down.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    running: Ready,
    source: ConfigSource,
    mut hangups: Hangups,
) {
    let reload = || {
        source()
            .and_then(|config| apply(&shared, &running, &config))
            .inspect_err(|error| tracing::error!("reload failed, nothing changed: {error:#}"))
    };
    // Each node of a cluster reloads its own configuration.
    let subscribed = herald_core::Pattern::new(RELOAD_SUBJECT)
        .map_err(herald_core::Error::from)
        .and_then(|p| {
            let options = herald_core::SubscribeOptions::new(p).node_local();
            shared.broker.subscribe_with(options)
        });
    let mut requests = match subscribed {
        Ok(requests) => Some(requests),
        Err(error) => {
            tracing::error!(%error, "cannot serve reload requests");
            None
        }
    };
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            Some(()) = next_hangup(&mut hangups) => {
                tracing::info!("SIGHUP: reloading the configuration");
                let _ = reload();
            }
            Some(request) = next_request(&mut requests) => {
                let answer = match reload() {
                    Ok(done) => serde_json::to_vec(&done).unwrap_or_default(),
                    Err(error) => serde_json::to_vec(&serde_json::json!({
                        "error": format!("{error:#}")
                    }))
                    .unwrap_or_default(),
                };
                if let Some(reply) = request.reply {
                    let _ = shared.broker.publish(reply, answer);
                }
            }
        }
    }
}

async fn next_request(
    requests: &mut Option<herald_core::Subscription>,
) -> Option<herald_core::Message> {
    match requests {
        Some(requests) => requests.next().await,
        None => std::future::pending().await,
    }
}

/// `SIGHUP`, once registered.
#[cfg(unix)]
pub(crate) type Hangups = Option<tokio::signal::unix::Signal>;
/// No `SIGHUP` here.
#[cfg(not(unix))]
pub(crate) type Hangups = ();

/// Registers for `SIGHUP`.
pub(crate) fn hangups() -> Hangups {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::hangup())
            .inspect_err(|error| tracing::error!(%error, "cannot listen for SIGHUP"))
            .ok()
    }
}

async fn next_hangup(hangups: &mut Hangups) -> Option<()> {
    #[cfg(unix)]
    if let Some(signal) = hangups {
        return signal.recv().await;
    }
    let _ = hangups;
    std::future::pending().await
}
