//! TLS on every listener with real clients: async-nats, the redis crate
//! (rustls) and reqwest (HTTPS), mutual TLS with the certificate's name as
//! the user, and plain-text clients refused cleanly while the server stays up.

use std::path::Path;

use herald_server::auth::{UserConfig, Users};
use herald_server::tls::Tls;

use crate::common::pki::Pki;
use crate::common::raw::RawClient;
use crate::common::{TestServer, sync};

async fn serve(pki: &Pki, mutual: bool, users: Users) -> TestServer {
    let tls = Tls::load(&pki.config(mutual)).expect("TLS loads");
    TestServer::start_with(move |ready| {
        ready.tls = Some(tls);
        ready.users = std::sync::Arc::new(users);
    })
    .await
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read")
}

#[tokio::test]
async fn every_listener_speaks_tls_to_real_clients() {
    let pki = Pki::new("alice");
    let server = serve(&pki, false, Users::default()).await;

    let nats = async_nats::ConnectOptions::new()
        .add_root_certificates(pki.path("ca.pem"))
        .require_tls(true)
        .connect(format!("tls://localhost:{}", server.nats.port()))
        .await
        .expect("async-nats connects over TLS");
    sync(&nats).await;

    let redis = redis::Client::build_with_tls(
        format!("rediss://localhost:{}", server.redis.port()),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(read(&pki.path("ca.pem"))),
        },
    )
    .expect("redis client");
    let mut conn = redis
        .get_multiplexed_async_connection()
        .await
        .expect("redis over TLS");
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .expect("PING");
    assert_eq!(pong, "PONG");

    let https = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&read(&pki.path("ca.pem"))).expect("CA"),
        )
        .build()
        .expect("client");
    let health = https
        .get(format!("https://localhost:{}/healthz", server.http.port()))
        .send()
        .await
        .expect("HTTPS");
    assert_eq!(health.status(), 200);

    // Plain-text clients get a clean refusal, and the server stays up.
    let mut plain = RawClient::connect(server.nats).await;
    let info = plain.line().await;
    assert!(info.contains("\"tls_required\":true"), "{info}");
    plain.send("CONNECT {}\r\nPING\r\n").await;
    assert_eq!(
        plain.line().await,
        "-ERR 'Secure Connection - TLS Required'"
    );
    assert!(plain.is_closed().await);
    let mut plain_redis = RawClient::connect(server.redis).await;
    plain_redis.send("PING\r\n").await;
    assert_eq!(plain_redis.line().await, "-ERR this port requires TLS");
    let plain_http = reqwest::get(format!("http://127.0.0.1:{}/healthz", server.http.port()))
        .await
        .expect("a plain answer");
    assert_eq!(plain_http.status(), 400);
    assert_eq!(
        plain_http.text().await.expect("body").trim(),
        "this port speaks HTTPS"
    );
    sync(&nats).await;
    assert_eq!(
        https
            .get(format!("https://localhost:{}/healthz", server.http.port()))
            .send()
            .await
            .expect("still serving")
            .status(),
        200
    );
}

#[tokio::test]
async fn mutual_tls_names_the_user_by_certificate() {
    let pki = Pki::new("alice");
    let users = Users::from_config(&[UserConfig {
        name: "alice".into(),
        password: None,
        token: None,
        token_expires: None,
        publish: None,
        subscribe: None,
    }])
    .expect("users");
    let server = serve(&pki, true, users).await;

    // With alice's certificate, no password is needed.
    let nats = async_nats::ConnectOptions::new()
        .add_root_certificates(pki.path("ca.pem"))
        .add_client_certificate(pki.path("client.pem"), pki.path("client.key"))
        .require_tls(true)
        .connect(format!("tls://localhost:{}", server.nats.port()))
        .await
        .expect("alice connects with her certificate");
    sync(&nats).await;
    let mut identity_pem = read(&pki.path("client.pem"));
    identity_pem.extend(read(&pki.path("client.key")));
    let https = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&read(&pki.path("ca.pem"))).expect("CA"),
        )
        .identity(reqwest::Identity::from_pem(&identity_pem).expect("identity"))
        .build()
        .expect("client");
    let published = https
        .post(format!(
            "https://localhost:{}/v1/publish/x",
            server.http.port()
        ))
        .body("hi")
        .send()
        .await
        .expect("HTTPS with a client certificate");
    assert_eq!(published.status(), 200);

    // Without a certificate the handshake fails.
    let refused = async_nats::ConnectOptions::new()
        .add_root_certificates(pki.path("ca.pem"))
        .require_tls(true)
        .max_reconnects(1)
        .connect(format!("tls://localhost:{}", server.nats.port()))
        .await;
    assert!(refused.is_err(), "no client certificate, no connection");
}

/// `wss://…/nats`: NATS over WebSocket under TLS, served by the NATS
/// listener's own code (no loopback hop to the NATS port, which expects a
/// TLS handshake of its own), reaching a subscriber on the NATS port.
#[tokio::test]
async fn nats_over_secure_websocket_reaches_the_nats_port() {
    use futures::StreamExt;
    let pki = Pki::new("alice");
    let server = serve(&pki, false, Users::default()).await;
    let tcp = async_nats::ConnectOptions::new()
        .add_root_certificates(pki.path("ca.pem"))
        .require_tls(true)
        .connect(format!("tls://localhost:{}", server.nats.port()))
        .await
        .expect("async-nats over TLS");
    let over_wss = async_nats::ConnectOptions::new()
        .add_root_certificates(pki.path("ca.pem"))
        .connect(format!("wss://localhost:{}/nats", server.http.port()))
        .await
        .expect("async-nats over wss");
    let mut sub = tcp.subscribe("wss.>").await.expect("subscribe");
    sync(&tcp).await;
    over_wss
        .publish("wss.hello", "through TLS and a WebSocket".into())
        .await
        .expect("publish");
    sync(&over_wss).await;
    let msg = tokio::time::timeout(std::time::Duration::from_secs(10), sub.next())
        .await
        .expect("in time")
        .expect("a message");
    assert_eq!(msg.payload.as_ref(), b"through TLS and a WebSocket");
}

/// A reload swaps the certificate: new connections get the new one (a
/// client trusting only the new CA is refused before, accepted after),
/// while a connection made before keeps working.
#[tokio::test]
async fn a_reload_swaps_the_certificate_for_new_connections() {
    let old = Pki::new("alice");
    let new = Pki::new("alice");
    let server = serve(&old, false, Users::default()).await;
    let connect = |pki: &Pki| {
        async_nats::ConnectOptions::new()
            .add_root_certificates(pki.path("ca.pem"))
            .require_tls(true)
            .connect(format!("tls://localhost:{}", server.nats.port()))
    };
    let before = connect(&old).await.expect("the old CA is trusted");
    sync(&before).await;
    assert!(
        connect(&new).await.is_err(),
        "the new CA does not vouch for the old certificate"
    );

    let mut config = herald_server::Config::default();
    config.tls = Some(new.config(false));
    let done = server.server().reload(&config).expect("reloads");
    assert!(done.tls);
    let after = connect(&new).await.expect("the new certificate is served");
    sync(&after).await;
    sync(&before).await;
}
