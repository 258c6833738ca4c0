//! Reloading users, permissions and tokens without a restart: `SIGHUP` to
//! the binary and `herald reload` (a request on `$SYS.REQ.SERVER.RELOAD`),
//! watched through raw NATS connections for nats-server's exact errors; and
//! what Redis and MQTT connections do when their user's permissions change
//! (an in-process server, reloaded with `RunningServer::reload`).

use std::process::Command;

use herald_protocol::mqtt::{Packet, QoS, Version};
use herald_server::Config;

use crate::binary::{HERALD, WaitOnDrop, start_logged};
use crate::common::TestServer;
use crate::common::mqtt_raw::{RawMqtt, connect_packet, subscribe_packet};
use crate::common::raw::RawClient;

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789ab";
const CAROL: &str = "carol-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";

/// The users: alice may receive `alice_reads`; carol and bob are there
/// when asked; admin may do everything (so it may reload).
fn users_toml(alice_reads: &[&str], carol: bool, bob: bool) -> String {
    let reads: Vec<String> = alice_reads.iter().map(|p| format!("{p:?}")).collect();
    let mut text = format!(
        "[[users]]\nname = \"alice\"\ntoken = {ALICE:?}\npublish = {{ allow = [\"x.>\", \"y.>\"] }}\n\
         subscribe = {{ allow = [{}] }}\n\n[[users]]\nname = \"admin\"\ntoken = {ADMIN:?}\n",
        reads.join(", ")
    );
    if carol {
        text.push_str(&format!(
            "\n[[users]]\nname = \"carol\"\ntoken = {CAROL:?}\n"
        ));
    }
    if bob {
        text.push_str(&format!("\n[[users]]\nname = \"bob\"\ntoken = {BOB:?}\n"));
    }
    text
}

/// A raw NATS client logged in with `token`; `None` when the server says
/// `Authorization Violation` instead of answering the PING.
async fn nats_login(addr: std::net::SocketAddr, token: &str) -> Option<RawClient> {
    let mut client = RawClient::connect(addr).await;
    let info = client.line().await;
    assert!(info.starts_with("INFO "), "{info}");
    client
        .send(format!(
            "CONNECT {{\"auth_token\":{token:?},\"verbose\":false}}\r\nPING\r\n"
        ))
        .await;
    match client.line().await.as_str() {
        "PONG" => Some(client),
        "-ERR 'Authorization Violation'" => None,
        other => panic!("unexpected {other:?}"),
    }
}

/// Round trip: everything the server sent before the PONG.
async fn ping(client: &mut RawClient) -> String {
    client.send("PING\r\n").await;
    String::from_utf8_lossy(&client.until_pongs(1).await).into_owned()
}

fn hang_up(pid: u32) {
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

fn herald_reload(addr: std::net::SocketAddr, token: &str) -> std::process::Output {
    Command::new(HERALD)
        .args(["reload", "--server", &format!("nats://{token}@{addr}")])
        .output()
        .expect("herald reload runs")
}

#[tokio::test]
async fn sighup_and_herald_reload_apply_users_and_permissions_to_open_connections() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("herald.toml");
    std::fs::write(&config, users_toml(&["x.>", "y.>"], true, false)).expect("config");
    let mut cmd = Command::new(HERALD);
    cmd.args([
        "--nats",
        "127.0.0.1:0",
        "--redis",
        "off",
        "--mqtt",
        "off",
        "--http",
        "off",
    ])
    .arg("--data-dir")
    .arg(dir.path().join("data"))
    .arg("--config")
    .arg(&config)
    .env("RUST_LOG", "info")
    .env("NO_COLOR", "1");
    let (child, addr, _) = start_logged(cmd);
    let child = WaitOnDrop(child);
    let pid = child.0.id();

    let mut alice = nats_login(addr, ALICE).await.expect("alice logs in");
    alice.send("SUB x.> 1\r\nSUB y.> 2\r\n").await;
    assert_eq!(ping(&mut alice).await, "PONG\r\n");
    let mut carol = nats_login(addr, CAROL).await.expect("carol logs in");
    assert!(
        nats_login(addr, BOB).await.is_none(),
        "bob is not a user yet"
    );

    // alice loses y.>, carol goes, bob comes.
    std::fs::write(&config, users_toml(&["x.>"], false, true)).expect("config");
    hang_up(pid);
    assert_eq!(
        alice.line().await,
        "-ERR 'Permissions Violation for Subscription to \"y.>\" (sid \"2\")'"
    );
    assert_eq!(carol.line().await, "-ERR 'Authorization Violation'");
    assert!(carol.is_closed().await, "carol's connection is closed");
    let mut bob = nats_login(addr, BOB).await.expect("bob is a user now");
    bob.send("PUB y.1 2\r\nno\r\nPUB x.1 3\r\nyes\r\n").await;
    assert_eq!(ping(&mut bob).await, "PONG\r\n");
    // y.1 went nowhere: the first message alice gets is x.1 on sid 1.
    assert_eq!(alice.line().await, "MSG x.1 1 3");
    assert_eq!(alice.line().await, "yes");

    // alice may not ask for a reload: she may publish on x.> and y.> only.
    alice.send("PUB $SYS.REQ.SERVER.RELOAD 0\r\n\r\n").await;
    assert_eq!(
        ping(&mut alice).await,
        "-ERR 'Permissions Violation for Publish to \"$SYS.REQ.SERVER.RELOAD\"'\r\nPONG\r\n"
    );

    // `herald reload` as admin: back to the first users (bob goes).
    std::fs::write(&config, users_toml(&["x.>", "y.>"], true, false)).expect("config");
    let out = tokio::task::spawn_blocking(move || herald_reload(addr, ADMIN))
        .await
        .expect("joins");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON answer");
    assert_eq!(answer["users"], 3, "{answer}");
    assert_eq!(answer["restart_needed"], serde_json::json!([]), "{answer}");
    assert_eq!(bob.line().await, "-ERR 'Authorization Violation'");
    // A removed subscription does not come back by itself; a new one may be made.
    alice.send("SUB y.> 3\r\n").await;
    assert_eq!(ping(&mut alice).await, "PONG\r\n");
    assert!(nats_login(addr, CAROL).await.is_some(), "carol is back");

    // A configuration that does not validate changes nothing.
    std::fs::write(&config, "[nats]\nlisen = \"127.0.0.1:1\"\n").expect("config");
    let out = tokio::task::spawn_blocking(move || herald_reload(addr, ADMIN))
        .await
        .expect("joins");
    assert!(!out.status.success(), "a bad configuration is refused");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("lisen"), "{stderr}");
    assert_eq!(ping(&mut alice).await, "PONG\r\n", "alice is still in");
    assert!(nats_login(addr, ADMIN).await.is_some(), "the users stay");
}

#[tokio::test]
async fn redis_and_mqtt_connections_follow_a_reload() {
    let config = |reads: &[&str]| -> Config {
        toml::from_str(&users_toml(reads, false, false)).expect("config parses")
    };
    let before = config(&["x.>", "y.>"]);
    let users = before.validate().expect("valid").users;
    let server = TestServer::start_with(|ready| ready.users = users).await;

    // Redis: one connection on a channel alice keeps, one on a channel she loses.
    let redis_login = |channel: &'static str| async move {
        let mut client = RawClient::connect(server.redis).await;
        client
            .send(format!("AUTH {ALICE}\r\nSUBSCRIBE {channel}\r\n"))
            .await;
        assert_eq!(client.line().await, "+OK");
        client.until_marker(&[channel]).await;
        client
    };
    let mut keeps = redis_login("x.1").await;
    let mut loses = redis_login("y.1").await;

    // MQTT: alice subscribed to x/# and y/#.
    let mut connect = connect_packet(Version::V5, "alice-mqtt");
    connect.username = Some("alice".into());
    connect.password = Some(bytes::Bytes::from_static(ALICE.as_bytes()));
    let (mut mqtt, connack) = RawMqtt::connect(server.mqtt, connect).await;
    assert_eq!(
        connack.reason_code,
        herald_protocol::mqtt::ReasonCode::Success
    );
    mqtt.send(&subscribe_packet(1, "x/#", QoS::AtMostOnce))
        .await;
    mqtt.send(&subscribe_packet(2, "y/#", QoS::AtMostOnce))
        .await;
    assert_eq!(mqtt.until_ping().await.len(), 2, "two SUBACKs");

    let done = server.server().reload(&config(&["x.>"])).expect("reloads");
    assert_eq!(done.users, 2);
    // Redis closes a client subscribed to a channel its user lost.
    assert!(loses.is_closed().await, "the y.1 subscriber is closed");
    // MQTT: the connection handles the reload before the PINGREQ read after it.
    assert!(mqtt.until_ping().await.is_empty());

    let mut admin = nats_login(server.nats, ADMIN).await.expect("admin logs in");
    admin.send("PUB y.1 1\r\nm\r\nPUB x.1 1\r\nm\r\n").await;
    assert_eq!(ping(&mut admin).await, "PONG\r\n");
    let pushed = String::from_utf8_lossy(&keeps.until_marker(&["$1\r\nm"]).await).into_owned();
    assert!(pushed.contains("x.1"), "{pushed}");
    match mqtt.recv().await {
        Some(Packet::Publish(publish)) => assert_eq!(publish.topic.as_str(), "x/1"),
        other => panic!("expected x/1 first, got {other:?}"),
    }
}
