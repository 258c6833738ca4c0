//! The Redis listener driven by the redis crate (sync and async, RESP2 and
//! RESP3), by redis-cli, and across protocols.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use redis::Commands;

use crate::common::raw::{PATIENCE, RawClient};
use crate::common::{TestServer, sync};

fn client(server: &TestServer) -> redis::Client {
    redis::Client::open(server.redis_url()).expect("redis url")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_pubsub_with_counts_and_globs() {
    let server = TestServer::start().await;
    let redis = client(&server);
    let addr = server.redis;
    tokio::task::spawn_blocking(move || {
        let mut sub_con = redis::Client::open(format!("redis://{addr}"))
            .expect("url")
            .get_connection()
            .expect("connect");
        let mut pubsub = sub_con.as_pubsub();
        pubsub.subscribe("news").expect("subscribe");
        pubsub.psubscribe("sport.*").expect("psubscribe");
        pubsub.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let mut con = redis.get_connection().expect("connect");
        let n: i64 = con.publish("news", "hello").expect("publish");
        assert_eq!(n, 1);
        let n: i64 = con.publish("sport.tennis.final", "6-4").expect("publish");
        assert_eq!(n, 1, "a glob `*` spans dots");
        let n: i64 = con.publish("nobody", "x").expect("publish");
        assert_eq!(n, 0);
        let msg = pubsub.get_message().expect("message");
        assert_eq!(msg.get_channel_name(), "news");
        assert_eq!(msg.get_payload::<String>().expect("payload"), "hello");
        let msg = pubsub.get_message().expect("pmessage");
        assert_eq!(msg.get_channel_name(), "sport.tennis.final");
        assert_eq!(msg.get_pattern::<String>().expect("pattern"), "sport.*");
        pubsub.unsubscribe("news").expect("unsubscribe");
        pubsub.punsubscribe("sport.*").expect("punsubscribe");
        let n: i64 = con.publish("news", "gone").expect("publish");
        assert_eq!(n, 0, "nobody left");
    })
    .await
    .expect("blocking test");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_pubsub_resp2_and_resp3() {
    let server = TestServer::start().await;
    for url in [
        server.redis_url(),
        format!("{}/?protocol=resp3", server.redis_url()),
    ] {
        let redis = redis::Client::open(url.as_str()).expect("url");
        let mut pubsub = redis.get_async_pubsub().await.expect("pubsub");
        pubsub.subscribe("orders").await.expect("subscribe");
        pubsub.psubscribe("orders.*").await.expect("psubscribe");
        let mut con = redis
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let n: i64 = redis::cmd("PUBLISH")
            .arg("orders")
            .arg("one")
            .query_async(&mut con)
            .await
            .expect("publish");
        assert_eq!(n, 1, "{url}");
        let n: i64 = redis::cmd("PUBLISH")
            .arg("orders.eu")
            .arg("two")
            .query_async(&mut con)
            .await
            .expect("publish");
        assert_eq!(n, 1, "{url}");
        let mut stream = pubsub.on_message();
        for expected in ["one", "two"] {
            let msg = tokio::time::timeout(PATIENCE, stream.next())
                .await
                .expect("in time")
                .expect("a message");
            assert_eq!(
                msg.get_payload::<String>().expect("payload"),
                expected,
                "{url}"
            );
        }
        drop(stream);
        // Gone before the next round counts receivers (a dropped client's
        // subscriptions last until the server sees the connection close).
        pubsub.unsubscribe("orders").await.expect("unsubscribe");
        pubsub.punsubscribe("orders.*").await.expect("punsubscribe");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_counts_receivers_across_protocols() {
    let server = TestServer::start().await;
    let nats = server.client().await;
    let mut nats_sub = nats.subscribe("chat.lobby").await.expect("sub");
    let mut nats_wild = nats.subscribe("chat.*").await.expect("sub");
    sync(&nats).await;
    let redis = client(&server);
    let mut pubsub = redis.get_async_pubsub().await.expect("pubsub");
    pubsub.subscribe("chat.lobby").await.expect("subscribe");
    pubsub.psubscribe("chat.*").await.expect("psubscribe");
    let mut con = redis
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let n: i64 = redis::cmd("PUBLISH")
        .arg("chat.lobby")
        .arg(r#"{"username":"ada","message":"hi"}"#)
        .query_async(&mut con)
        .await
        .expect("publish");
    assert_eq!(n, 4, "two NATS subscriptions, a channel and a pattern");
    for sub in [&mut nats_sub, &mut nats_wild] {
        let msg = tokio::time::timeout(PATIENCE, sub.next())
            .await
            .expect("in time")
            .expect("message");
        assert_eq!(msg.subject.as_str(), "chat.lobby");
    }
    // And the other way: a NATS publish reaches the channel and the pattern.
    nats.publish("chat.lobby", "from nats".into())
        .await
        .expect("publish");
    let mut stream = pubsub.on_message();
    let mut payloads = Vec::new();
    while payloads.len() < 4 {
        let msg = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("in time")
            .expect("message");
        payloads.push(msg.get_payload::<String>().expect("payload"));
    }
    assert_eq!(payloads.iter().filter(|p| *p == "from nats").count(), 2);
    // PUBSUB counts across protocols.
    let numsub: Vec<(String, i64)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("chat.lobby")
        .query_async(&mut con)
        .await
        .expect("numsub");
    assert_eq!(numsub, [("chat.lobby".to_owned(), 2)]);
    server.stop().await;
}

async fn raw(server: &TestServer) -> RawClient {
    RawClient::connect(server.redis).await
}

#[tokio::test]
async fn subscribed_state_rules_resp2() {
    let server = TestServer::start().await;
    let mut c = raw(&server).await;
    c.send("SUBSCRIBE a b\r\nPING\r\nPING hi\r\nPUBLISH a x\r\nUNSUBSCRIBE\r\nPING\r\n")
        .await;
    let expected = "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n\
                    *3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n\
                    *2\r\n$4\r\npong\r\n$0\r\n\r\n\
                    *2\r\n$4\r\npong\r\n$2\r\nhi\r\n\
                    -ERR Can't execute 'publish': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n";
    assert_eq!(
        String::from_utf8_lossy(&c.bytes(expected.len()).await),
        expected
    );
    // Unsubscribe from both (in any order), then PING is plain again.
    let mut rest = Vec::new();
    for _ in 0..2 {
        rest.push(c.line().await);
        rest.push(c.line().await);
        rest.push(c.line().await);
        rest.push(c.line().await);
        rest.push(c.line().await);
        rest.push(c.line().await);
    }
    assert!(rest.iter().any(|l| l == ":0"), "{rest:?}");
    assert_eq!(c.line().await, "+PONG");
    server.stop().await;
}

#[tokio::test]
async fn resp3_pushes_and_no_restrictions() {
    let server = TestServer::start().await;
    let mut c = raw(&server).await;
    c.send("HELLO 3\r\n").await;
    assert_eq!(c.line().await, "%7");
    let mut map = Vec::new();
    loop {
        let line = c.line().await;
        if line == "*0" {
            break; // `modules`, an empty array, is the last value
        }
        map.push(line);
    }
    assert!(
        map.windows(4).any(|w| w == ["$5", "proto", ":3", "$2"]),
        "{map:?}"
    );
    c.send("SUBSCRIBE a\r\nPUBLISH a hello\r\nPING\r\n").await;
    let expected = ">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n\
                    >3\r\n$7\r\nmessage\r\n$1\r\na\r\n$5\r\nhello\r\n:1\r\n+PONG\r\n";
    assert_eq!(
        String::from_utf8_lossy(&c.bytes(expected.len()).await),
        expected
    );
    server.stop().await;
}

#[tokio::test]
async fn client_setinfo_as_redis_7_2() {
    let server = TestServer::start().await;
    let mut c = raw(&server).await;
    c.send("CLIENT SETINFO LIB-NAME redis-rs\r\nCLIENT SETINFO lib-ver 1.0\r\nCLIENT SETINFO foo x\r\nCLIENT SETINFO LIB-NAME \"a b\"\r\nCLIENT INFO\r\n").await;
    assert_eq!(c.line().await, "+OK");
    assert_eq!(c.line().await, "+OK");
    assert_eq!(c.line().await, "-ERR Unrecognized option 'foo'");
    assert_eq!(
        c.line().await,
        "-ERR LIB-NAME cannot contain spaces, newlines or special characters."
    );
    assert!(c.line().await.starts_with('$'));
    let info = c.line().await;
    for field in [
        "id=",
        " addr=127.0.0.1:",
        " db=0 ",
        " sub=0 ",
        " resp=2 ",
        " lib-name=redis-rs ",
        " lib-ver=1.0",
    ] {
        assert!(info.contains(field), "{field} in {info}");
    }
    c.send("INFO\r\n").await;
    assert!(c.line().await.starts_with('$'));
    assert_eq!(c.line().await, "# Server");
    assert!(c.line().await.starts_with("redis_version:7."));
    server.stop().await;
}

#[tokio::test]
async fn errors_keep_the_connection() {
    let server = TestServer::start().await;
    let mut c = raw(&server).await;
    c.send("FOO bar baz\r\nPUBLISH onlyone\r\nCLIENT NOPE\r\nPING\r\n")
        .await;
    assert_eq!(
        c.line().await,
        "-ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' "
    );
    assert_eq!(
        c.line().await,
        "-ERR wrong number of arguments for 'publish' command"
    );
    assert_eq!(
        c.line().await,
        "-ERR unknown subcommand 'NOPE'. Try CLIENT HELP."
    );
    assert_eq!(c.line().await, "+PONG");
    // A protocol error closes after its reply.
    c.send("*1\r\nX\r\n").await;
    assert_eq!(c.line().await, "-ERR Protocol error: expected '$', got 'X'");
    assert!(c.is_closed().await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_publish_and_subscribe() {
    let server = TestServer::start().await;
    let Some(cli) = crate::common::reference::program("redis-cli") else {
        panic!("redis-cli is not installed; scripts/test installs redis-tools");
    };
    let port = server.redis.port().to_string();
    let mut sub = Command::new(&cli)
        .args(["-p", &port, "SUBSCRIBE", "cli.news"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-cli runs");
    let stdout = sub.stdout.take().expect("stdout");
    let lines = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take(6)
            .collect::<Vec<_>>()
    });
    // Wait until the subscription is there, then publish with redis-cli.
    let broker = server.server().broker().clone();
    while broker.channel_subscribers(b"cli.news") == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let out = Command::new(&cli)
        .args(["-p", &port, "PUBLISH", "cli.news", "extra extra"])
        .output()
        .expect("redis-cli runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    let lines = tokio::task::spawn_blocking(move || lines.join().expect("reader"))
        .await
        .expect("join");
    let _ = sub.kill();
    let _ = sub.wait();
    assert_eq!(
        lines,
        [
            "subscribe",
            "cli.news",
            "1",
            "message",
            "cli.news",
            "extra extra"
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_buffer_limit_closes_a_stuck_subscriber() {
    let server = TestServer::start_with(|c| {
        c.redis_config.output_buffer_hard = 1024 * 1024;
        c.redis_config.output_buffer_soft = 256 * 1024;
    })
    .await;
    // A subscriber that never reads.
    let mut stuck = raw(&server).await;
    stuck.send("SUBSCRIBE flood\r\n").await;
    assert_eq!(stuck.line().await, "*3");
    let redis = client(&server);
    let mut con = redis
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let payload = vec![b'x'; 1024];
    // Far more than the socket buffers and the limit hold together.
    for _ in 0..400 {
        let mut pipe = redis::pipe();
        for _ in 0..64 {
            pipe.cmd("PUBLISH").arg("flood").arg(&payload[..]);
        }
        let _: Vec<i64> = pipe
            .query_async(&mut con)
            .await
            .expect("publisher unaffected");
    }
    assert!(stuck.is_closed().await, "the stuck subscriber was closed");
    assert!(server.server().broker().stats().slow_consumers >= 1);
    let n: i64 = redis::cmd("PUBLISH")
        .arg("flood")
        .arg("after")
        .query_async(&mut con)
        .await
        .expect("publish");
    assert_eq!(n, 0, "the closed subscriber is gone");
    server.stop().await;
}
