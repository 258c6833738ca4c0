//! herald with the command-line clients MQTT users reach for first: `mosquitto_pub` and
//! `mosquitto_sub` (Debian `mosquitto-clients`, installed by `scripts/test`).
//!
//! A subscriber is known to be subscribed when it prints a retained marker published
//! beforehand, so no test sleeps on a guess.

use std::process::Stdio;

use bytes::Bytes;
use herald_protocol::mqtt::{QoS, Version};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::common::mqtt_raw::{RawMqtt, subscribe_packet};
use crate::common::raw::PATIENCE;
use crate::common::reference::program;
use crate::common::{TestServer, sync};

fn tool(name: &str) -> String {
    program(name).unwrap_or_else(|| {
        panic!(
            "{name} is not installed; the test command (scripts/test) installs it, or run \
             `apt-get install mosquitto-clients`"
        )
    })
}

/// A running `mosquitto_sub`, its output read line by line.
struct Sub {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Sub {
    fn spawn(server: &TestServer, args: &[&str]) -> Self {
        let mut child = Command::new(tool("mosquitto_sub"))
            .args(["-h", "127.0.0.1", "-p", &server.mqtt.port().to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("mosquitto_sub starts");
        let stdout = child.stdout.take().expect("piped stdout");
        Self {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// The next line of output.
    async fn line(&mut self) -> String {
        tokio::time::timeout(PATIENCE, self.lines.next_line())
            .await
            .expect("a line in time")
            .expect("readable")
            .expect("mosquitto_sub still running")
    }

    /// Waits for the process to exit by itself (`-C n`).
    async fn finished(mut self) {
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("exits in time")
            .expect("waitable");
        assert!(status.success(), "mosquitto_sub: {status}");
    }
}

async fn mosquitto_pub(server: &TestServer, args: &[&str]) {
    let output = Command::new(tool("mosquitto_pub"))
        .args(["-h", "127.0.0.1", "-p", &server.mqtt.port().to_string()])
        .args(args)
        .output()
        .await
        .expect("mosquitto_pub runs");
    assert!(
        output.status.success(),
        "mosquitto_pub {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts `mosquitto_sub` on `filter` and waits until it is subscribed: it must print the
/// retained `<prefix>/ready` marker first.
async fn subscribed(server: &TestServer, prefix: &str, args: &[&str]) -> Sub {
    let marker = format!("{prefix}/ready");
    mosquitto_pub(server, &["-t", &marker, "-m", "ready", "-r"]).await;
    let mut sub = Sub::spawn(server, args);
    let first = sub.line().await;
    // Whatever the output format, the line names the marker.
    assert!(first.contains("ready"), "{first}");
    sub
}

#[tokio::test]
async fn pub_and_sub_at_every_qos() {
    let server = TestServer::start().await;
    let mut sub = subscribed(
        &server,
        "tools",
        &["-t", "tools/#", "-q", "2", "-F", "%t %p %q %r"],
    )
    .await;
    for (qos, payload) in [("0", "zero"), ("1", "one"), ("2", "two")] {
        mosquitto_pub(
            &server,
            &["-t", &format!("tools/q{qos}"), "-m", payload, "-q", qos],
        )
        .await;
        assert_eq!(sub.line().await, format!("tools/q{qos} {payload} {qos} 0"));
    }
    // MQTT 5 on both ends.
    mosquitto_pub(
        &server,
        &["-V", "5", "-t", "tools/v5", "-m", "five", "-q", "1"],
    )
    .await;
    assert_eq!(sub.line().await, "tools/v5 five 1 0");
    server.stop().await;
}

#[tokio::test]
async fn retained_messages_with_the_cli() {
    let server = TestServer::start().await;
    mosquitto_pub(&server, &["-t", "cli/ret/x", "-m", "kept", "-r", "-q", "1"]).await;
    let sub = Sub::spawn(&server, &["-t", "cli/ret/x", "-C", "1", "-F", "%t %p %r"]);
    let mut sub = sub;
    assert_eq!(sub.line().await, "cli/ret/x kept 1");
    sub.finished().await;
    // `-r -n`: an empty retained message clears the topic.
    mosquitto_pub(&server, &["-t", "cli/ret/x", "-n", "-r"]).await;
    let mut sub = subscribed(&server, "cli/ret", &["-t", "cli/ret/#", "-F", "%t %p"]).await;
    mosquitto_pub(&server, &["-t", "cli/ret/live", "-m", "now"]).await;
    assert_eq!(
        sub.line().await,
        "cli/ret/live now",
        "cli/ret/x was cleared"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_will_of_a_killed_mosquitto_sub() {
    let server = TestServer::start().await;
    let mut watcher = RawMqtt::connected(server.mqtt, Version::V311, "watcher").await;
    watcher
        .send(&subscribe_packet(1, "cli/will/#", QoS::AtLeastOnce))
        .await;
    assert_eq!(watcher.until_ping().await.len(), 1, "SUBACK");
    let mut mortal = subscribed(
        &server,
        "cli/mortal",
        &[
            "-i",
            "mortal",
            "-t",
            "cli/mortal/#",
            "--will-topic",
            "cli/will/mortal",
            "--will-payload",
            "lost",
            "--will-qos",
            "1",
        ],
    )
    .await;
    mortal.child.start_kill().expect("kill");
    let will = watcher.publish().await;
    assert_eq!(will.topic.as_str(), "cli/will/mortal");
    assert_eq!(will.payload, Bytes::from_static(b"lost"));
    server.stop().await;
}

#[tokio::test]
async fn a_durable_mosquitto_sub_gets_what_it_missed() {
    let server = TestServer::start().await;
    let durable = ["-c", "-i", "cli-durable", "-q", "1", "-t", "cli/dur/#"];
    let mut sub = subscribed(&server, "cli/dur", &durable).await;
    // The marker must not come back when the session resumes.
    mosquitto_pub(&server, &["-t", "cli/dur/ready", "-n", "-r"]).await;
    sub.child.start_kill().expect("kill");
    let _ = sub.child.wait().await;
    for i in 1..=3 {
        mosquitto_pub(
            &server,
            &[
                "-t",
                &format!("cli/dur/{i}"),
                "-m",
                &format!("m{i}"),
                "-q",
                "1",
            ],
        )
        .await;
    }
    let mut sub = Sub::spawn(
        &server,
        &[&durable[..], &["-C", "3", "-F", "%t %p %q"]].concat(),
    );
    for i in 1..=3 {
        assert_eq!(sub.line().await, format!("cli/dur/{i} m{i} 1"));
    }
    sub.finished().await;
    server.stop().await;
}

#[tokio::test]
async fn mqtt5_properties_through_the_cli() {
    let server = TestServer::start().await;
    let mut sub = subscribed(
        &server,
        "cli5",
        &["-V", "5", "-t", "cli5/#", "-F", "%t|%p|%P|%C"],
    )
    .await;
    mosquitto_pub(
        &server,
        &[
            "-V",
            "5",
            "-t",
            "cli5/x",
            "-m",
            "hi",
            "-D",
            "publish",
            "user-property",
            "k",
            "v",
            "-D",
            "publish",
            "content-type",
            "text/plain",
        ],
    )
    .await;
    assert_eq!(sub.line().await, "cli5/x|hi|k:v|text/plain");
    server.stop().await;
}

#[tokio::test]
async fn nats_publishes_reach_mosquitto_sub() {
    let server = TestServer::start().await;
    let mut sub = subscribed(&server, "grid", &["-t", "grid/#", "-F", "%t %p"]).await;
    let nats = server.client().await;
    nats.publish("grid.north.load", "97%".into())
        .await
        .expect("publish");
    sync(&nats).await;
    assert_eq!(sub.line().await, "grid/north/load 97%");
    server.stop().await;
}

#[tokio::test]
async fn mutual_tls_with_the_certificate_as_the_user() {
    use herald_server::auth::{UserConfig, Users};
    let pki = crate::common::pki::Pki::new("meter");
    let path = |name: &str| pki.path(name).display().to_string();
    let tls = herald_server::tls::Tls::load(&pki.config(true)).expect("TLS loads");
    // `meter` has no password: only its certificate names it.
    let users = Users::from_config(&[UserConfig {
        name: "meter".into(),
        password: None,
        token: None,
        token_expires: None,
        publish: None,
        subscribe: None,
    }])
    .expect("users");
    let server = TestServer::start_with(move |ready| {
        ready.tls = Some(tls);
        ready.users = std::sync::Arc::new(users);
    })
    .await;
    let port = server.mqtt.port().to_string();
    let tls_args = [
        "-h",
        "localhost",
        "-p",
        &port,
        "--cafile",
        &path("ca.pem"),
        "--cert",
        &path("client.pem"),
        "--key",
        &path("client.key"),
    ];
    let pub_args = [
        &tls_args[..],
        &["-t", "tls/x", "-m", "secure", "-r", "-q", "1"],
    ]
    .concat();
    let output = Command::new(tool("mosquitto_pub"))
        .args(&pub_args)
        .output()
        .await
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let sub_args = [&tls_args[..], &["-t", "tls/x", "-C", "1", "-F", "%t %p %r"]].concat();
    let output = tokio::time::timeout(
        PATIENCE,
        Command::new(tool("mosquitto_sub")).args(&sub_args).output(),
    )
    .await
    .expect("in time")
    .expect("runs");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "tls/x secure 1"
    );
    // A plain-text client is turned away.
    let output = Command::new(tool("mosquitto_pub"))
        .args(["-h", "127.0.0.1", "-p", &port, "-t", "tls/x", "-m", "plain"])
        .output()
        .await
        .expect("runs");
    assert!(!output.status.success(), "plain text must not get in");
    server.stop().await;
}
