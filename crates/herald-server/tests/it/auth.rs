//! Authentication and per-subject permissions on every listener: NATS
//! (async-nats and raw bytes for the exact errors), Redis (raw RESP, for
//! the exact replies) and HTTP.

use std::sync::OnceLock;
use std::time::Duration;

use futures::StreamExt;
use herald_core::{Pattern, Rules};
use herald_server::auth::{UserConfig, Users, hash_password};

use crate::common::raw::RawClient;
use crate::common::{TestServer, sync};

const WAIT: Duration = Duration::from_secs(10);
const TOKEN: &str = "svc-token-0123456789abcdef";

fn hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password("alice-pw").expect("hashes"))
}

fn rules(allow: &[&str], deny: &[&str]) -> Option<Rules> {
    Some(Rules {
        allow: allow
            .iter()
            .map(|p| Pattern::new(p).expect("pattern"))
            .collect(),
        deny: deny
            .iter()
            .map(|p| Pattern::new(p).expect("pattern"))
            .collect(),
    })
}

/// alice: password, may publish `orders.>` but not `orders.internal.>`,
/// receive `orders.>` and inboxes; svc: a token, receives everything but
/// `secret.>`.
async fn secured() -> TestServer {
    let users = Users::from_config(&[
        UserConfig {
            name: "alice".into(),
            password: Some(hash().to_owned()),
            token: None,
            token_expires: None,
            publish: rules(
                &["orders.>", "_INBOX.>", "$JS.API.>"],
                &["orders.internal.>"],
            ),
            subscribe: rules(&["orders.>", "_INBOX.>"], &[]),
        },
        UserConfig {
            name: "svc".into(),
            password: None,
            token: Some(TOKEN.into()),
            token_expires: None,
            publish: rules(&[">"], &[]),
            subscribe: rules(&[">"], &["secret.>"]),
        },
    ])
    .expect("valid users");
    TestServer::start_with(move |ready| {
        ready.users = std::sync::Arc::new(users);
        ready.limits.auth_timeout = Duration::from_millis(300);
    })
    .await
}

async fn as_user(
    server: &TestServer,
    user: &str,
    password: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
        .connect(server.nats_url())
        .await
}

/// A round trip through a subject of the caller's choice (see `sync`).
async fn sync_on(client: &async_nats::Client, prefix: &str) {
    let subject = format!("{prefix}.{}", rand::random::<u64>());
    let err = client
        .request(subject, "".into())
        .await
        .expect_err("nobody answers");
    assert_eq!(
        err.kind(),
        async_nats::client::RequestErrorKind::NoResponders
    );
}

#[tokio::test]
async fn nats_clients_must_authenticate() {
    let server = secured().await;
    let err = async_nats::connect(server.nats_url())
        .await
        .expect_err("no credentials");
    assert!(
        err.to_string().to_lowercase().contains("authorization"),
        "{err}"
    );
    let err = as_user(&server, "alice", "wrong")
        .await
        .expect_err("wrong password");
    assert!(
        err.to_string().to_lowercase().contains("authorization"),
        "{err}"
    );
    let alice = as_user(&server, "alice", "alice-pw")
        .await
        .expect("alice connects");
    // alice may not publish where `sync` would: a round trip on an allowed subject.
    let err = alice
        .request("orders.nobody", "".into())
        .await
        .expect_err("no responders");
    assert_eq!(
        err.kind(),
        async_nats::client::RequestErrorKind::NoResponders
    );
    let svc = async_nats::ConnectOptions::with_token(TOKEN.into())
        .connect(server.nats_url())
        .await
        .expect("token connects");
    sync(&svc).await;

    let mut raw = RawClient::connect(server.nats).await;
    assert!(raw.line().await.contains("\"auth_required\":true"));
    raw.send("SUB x 1\r\n").await;
    assert_eq!(raw.line().await, "-ERR 'Authorization Violation'");
    assert!(raw.is_closed().await);

    let mut silent = RawClient::connect(server.nats).await;
    silent.line().await;
    assert_eq!(silent.line().await, "-ERR 'Authentication Timeout'");
    assert!(silent.is_closed().await);
}

#[tokio::test]
async fn nats_permissions_refuse_and_filter() {
    let server = secured().await;
    let mut raw = RawClient::connect(server.nats).await;
    raw.line().await;
    raw.send(
        "CONNECT {\"verbose\":false,\"pedantic\":false,\"user\":\"alice\",\"pass\":\"alice-pw\"}\r\n\
         PUB orders.internal.x 1\r\nx\r\nSUB payments.> 1\r\nSUB orders.> q 2\r\nPING\r\n",
    )
    .await;
    assert_eq!(
        raw.line().await,
        "-ERR 'Permissions Violation for Publish to \"orders.internal.x\"'"
    );
    assert_eq!(
        raw.line().await,
        "-ERR 'Permissions Violation for Subscription to \"payments.>\"'"
    );
    assert_eq!(
        raw.line().await,
        "PONG",
        "the connection stays and the allowed SUB worked"
    );

    // A wildcard never delivers what the user may not read.
    let svc = async_nats::ConnectOptions::with_token(TOKEN.into())
        .connect(server.nats_url())
        .await
        .unwrap();
    let mut everything = svc.subscribe(">").await.unwrap();
    // `>` would take any round trip's request: sync where svc may not read.
    sync_on(&svc, "secret.sync").await;
    let publisher = async_nats::ConnectOptions::with_token(TOKEN.into())
        .connect(server.nats_url())
        .await
        .unwrap();
    publisher
        .publish("secret.plans", "hidden".into())
        .await
        .unwrap();
    publisher
        .publish("public.news", "shown".into())
        .await
        .unwrap();
    let msg = tokio::time::timeout(WAIT, everything.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.subject.as_str(), "public.news");
}

#[tokio::test]
async fn redis_clients_authenticate_as_redis_words_it() {
    let server = secured().await;
    let mut raw = RawClient::connect(server.redis).await;
    let script = [
        ("PING\r\n", "-NOAUTH Authentication required.\r\n"),
        (
            "SUBSCRIBE orders.x\r\n",
            "-NOAUTH Authentication required.\r\n",
        ),
        (
            "AUTH alice wrong\r\n",
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        ),
        (
            "HELLO 3\r\n",
            "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n",
        ),
        ("AUTH alice alice-pw\r\n", "+OK\r\n"),
        (
            "PUBLISH orders.internal.x 1\r\n",
            "-NOPERM this user has no permissions to access one of the channels used as arguments\r\n",
        ),
        ("PUBLISH orders.eu 1\r\n", ":0\r\n"),
        (
            "SUBSCRIBE payments.x\r\n",
            "-NOPERM this user has no permissions to access one of the channels used as arguments\r\n",
        ),
        ("RESET\r\n", "+RESET\r\n"),
        ("PING\r\n", "-NOAUTH Authentication required.\r\n"),
        (&format!("AUTH {TOKEN}\r\n"), "+OK\r\n"),
        ("PING\r\n", "+PONG\r\n"),
    ];
    for (send, expect) in script {
        raw.send(send).await;
        let got = raw.bytes(expect.len()).await;
        assert_eq!(String::from_utf8_lossy(&got), expect, "after {send:?}");
    }
    let mut hello = RawClient::connect(server.redis).await;
    hello.send("HELLO 3 AUTH alice alice-pw\r\n").await;
    let reply = hello.until_marker(&["proto"]).await;
    assert!(
        reply.starts_with(b"%"),
        "{}",
        String::from_utf8_lossy(&reply)
    );

    // The redis crate authenticates through the URL.
    let client = redis::Client::open(format!("redis://alice:alice-pw@{}", server.redis)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg("orders.eu")
        .arg("x")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(receivers, 0);
    let refused: redis::RedisResult<i64> = redis::cmd("PUBLISH")
        .arg("secret")
        .arg("x")
        .query_async(&mut conn)
        .await;
    let refused = refused.unwrap_err().to_string();
    assert!(refused.contains("no permissions"), "{refused}");
}

#[tokio::test]
async fn http_needs_credentials_and_checks_permissions() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = secured().await;
    let client = reqwest::Client::new();
    let anonymous = client
        .post(server.http_url("/v1/publish/orders.eu"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(
        anonymous.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let page = client.get(server.http_url("/chat")).send().await.unwrap();
    assert_eq!(page.status(), 401, "pages ask the browser for credentials");
    assert_eq!(
        client
            .get(server.http_url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let wrong = client
        .post(server.http_url("/v1/publish/orders.eu"))
        .basic_auth("alice", Some("nope"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let allowed = client
        .post(server.http_url("/v1/publish/orders.eu"))
        .basic_auth("alice", Some("alice-pw"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    let denied = client
        .post(server.http_url("/v1/publish/orders.internal.x"))
        .basic_auth("alice", Some("alice-pw"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    let body: serde_json::Value = denied.json().await.unwrap();
    assert_eq!(body["code"], "permission_denied");
    let token = client
        .post(server.http_url("/v1/publish/anything"))
        .bearer_auth(TOKEN)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);
    let sse = client
        .get(server.http_url(&format!("/v1/subscribe/orders.>?access_token={TOKEN}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        sse.status(),
        200,
        "EventSource passes the token in the query"
    );
    let forbidden = client
        .get(server.http_url("/v1/subscribe/payments.>"))
        .basic_auth("alice", Some("alice-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);

    let mut request = format!("ws://{}/v1/ws", server.http)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("authorized websocket");
    let _hello = ws.next().await;
    use futures::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        r#"{"op":"subscribe","sid":"s","subject":"secret.>"}"#.into(),
    ))
    .await
    .unwrap();
    let answer = ws.next().await.unwrap().unwrap().into_text().unwrap();
    assert!(answer.contains("permission_denied"), "{answer}");
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/v1/ws", server.http)).await;
    assert!(refused.is_err(), "no credentials, no websocket");
}

#[tokio::test]
async fn expired_and_unknown_tokens_are_refused() {
    let users = Users::from_config(&[UserConfig {
        name: "old".into(),
        password: None,
        token: Some("expired-token-0123456789".into()),
        token_expires: Some("2020-01-01T00:00:00Z".into()),
        publish: None,
        subscribe: None,
    }])
    .expect("users");
    let server =
        TestServer::start_with(move |ready| ready.users = std::sync::Arc::new(users)).await;
    for token in ["expired-token-0123456789", "never-issued-token-000000"] {
        let err = async_nats::ConnectOptions::with_token(token.into())
            .connect(server.nats_url())
            .await
            .expect_err("refused");
        assert!(
            err.to_string().to_lowercase().contains("authorization"),
            "{err}"
        );
        let status = reqwest::Client::new()
            .get(server.http_url("/v1/stats"))
            .bearer_auth(token)
            .send()
            .await
            .expect("answer")
            .status();
        assert_eq!(status, 401);
    }
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let server = TestServer::start_with(|ready| ready.limits.max_connections_per_ip = 2).await;
    let mut first = RawClient::connect(server.nats).await;
    let mut second = RawClient::connect(server.nats).await;
    assert!(first.line().await.starts_with("INFO "));
    assert!(second.line().await.starts_with("INFO "));
    let mut third = RawClient::connect(server.nats).await;
    assert!(third.line().await.starts_with("INFO "));
    assert_eq!(third.line().await, "-ERR 'maximum connections exceeded'");
    assert!(third.is_closed().await);
    drop(first);
    // A place frees up once a connection closes.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut again = RawClient::connect(server.nats).await;
        again.line().await;
        again.send("PING\r\n").await;
        if again.line().await == "PONG" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the freed place was not given back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
