//! Test harness: a real herald on ephemeral ports, raw protocol clients, and
//! reference servers for differential tests.

pub mod garbage;
pub mod mqtt_pump;
pub mod mqtt_raw;
pub mod pki;
pub mod raw;
pub mod reference;

use std::net::SocketAddr;

use herald_server::{Ready, RunningServer};
use tempfile::TempDir;

/// A herald server running in this process on `127.0.0.1:0`.
pub struct TestServer {
    server: Option<RunningServer>,
    /// The NATS listener's address.
    pub nats: SocketAddr,
    /// The Redis listener's address.
    pub redis: SocketAddr,
    /// The MQTT listener's address.
    pub mqtt: SocketAddr,
    /// The web listener's address.
    pub http: SocketAddr,
    _data: TempDir,
}

impl TestServer {
    /// Starts a server with the default test configuration.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `configure` has adjusted the configuration.
    pub async fn start_with(configure: impl FnOnce(&mut Ready)) -> Self {
        init_logging();
        let data = tempfile::tempdir().expect("temp dir");
        let mut ready = Ready::ephemeral(data.path().to_path_buf());
        configure(&mut ready);
        let server = RunningServer::start(ready).await.expect("server starts");
        let nats = server.nats_addr().expect("nats listener on");
        let redis = server.redis_addr().expect("redis listener on");
        let mqtt = server.mqtt_addr().expect("mqtt listener on");
        let http = server.http_addr().expect("http listener on");
        Self {
            server: Some(server),
            nats,
            redis,
            mqtt,
            http,
            _data: data,
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn nats_url(&self) -> String {
        format!("nats://{}", self.nats)
    }

    /// `http://127.0.0.1:<port>` followed by `path`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn redis_url(&self) -> String {
        format!("redis://{}", self.redis)
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self._data.path()
    }

    /// The running server.
    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("running")
    }

    /// Connects an async-nats client.
    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.nats_url())
            .await
            .expect("async-nats connects")
    }

    /// Shuts the server down gracefully and starts a new one on the same
    /// data directory (new ports).
    pub async fn restart(mut self) -> Self {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        let ready = Ready::ephemeral(self._data.path().to_path_buf());
        let server = RunningServer::start(ready).await.expect("server restarts");
        self.nats = server.nats_addr().expect("nats listener on");
        self.redis = server.redis_addr().expect("redis listener on");
        self.mqtt = server.mqtt_addr().expect("mqtt listener on");
        self.http = server.http_addr().expect("http listener on");
        self.server = Some(server);
        self
    }

    /// Shuts the server down gracefully.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

/// A round trip through the server on `client`'s connection: when it
/// returns, the server has processed everything the client sent before it.
/// (async-nats's `flush` only writes the client's buffer to the socket.) It
/// sends a request nobody answers and waits for the server's immediate
/// no-responders status.
pub async fn sync(client: &async_nats::Client) {
    let subject = format!("_herald.sync.{}", rand::random::<u64>());
    match client.request(subject, bytes::Bytes::new()).await {
        Err(err) if err.kind() == async_nats::client::RequestErrorKind::NoResponders => {}
        other => panic!("sync round trip failed: {other:?}"),
    }
}

fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}
