//! What an operator touches: `--version`, completions and the man page,
//! `--check-config`, log formats and which log filter wins, the warning
//! about listeners open to the network without users.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::binary::{HERALD, WaitOnDrop, herald_serve, start_logged};

/// A child's output, line by line, on a channel (so a test can wait with a
/// deadline instead of blocking on a read).
fn lines_of(out: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// `herald` serving only NATS on `addr`, data in `data`.
fn nats_only(addr: &str, data: &std::path::Path) -> Command {
    let mut cmd = Command::new(HERALD);
    cmd.args([
        "--nats", addr, "--redis", "off", "--mqtt", "off", "--http", "off",
    ])
    .arg("--data-dir")
    .arg(data);
    cmd
}

/// `text` as `herald.toml` in `dir`.
fn config_file(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("herald.toml");
    std::fs::write(&path, text).expect("write the config");
    path
}

fn stdout_of(args: &[&str]) -> String {
    let out = Command::new(HERALD).args(args).output().expect("runs");
    assert!(
        out.status.success(),
        "herald {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn version_completions_and_man_page() {
    let version = stdout_of(&["--version"]);
    assert!(
        version.starts_with(&format!("herald {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    for (shell, marker) in [
        ("bash", "_herald()"),
        ("zsh", "#compdef herald"),
        ("fish", "complete -c herald"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let script = stdout_of(&["completions", shell]);
        assert!(
            script.contains(marker),
            "{shell}: {}",
            &script[..script.len().min(200)]
        );
        assert!(
            script.contains("check-config"),
            "{shell} completes the serve flags"
        );
    }
    let man = stdout_of(&["man"]);
    assert!(
        man.contains(".TH herald 1"),
        "{}",
        &man[..man.len().min(200)]
    );
    assert!(
        man.contains("check\\-config"),
        "the man page lists the flags"
    );
}

#[test]
fn check_config_validates_and_exits() {
    let ok = stdout_of(&[
        "--check-config",
        "--nats",
        "127.0.0.1:4999",
        "--redis",
        "off",
    ]);
    assert!(ok.starts_with("configuration OK"), "{ok}");
    assert!(
        ok.contains("127.0.0.1:4999") && ok.contains("redis    off"),
        "{ok}"
    );
    let bad = Command::new(HERALD)
        .args(["--check-config", "--max-payload", "0"])
        .output()
        .expect("runs");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("limits.max_payload"), "names the key: {err}");
}

/// The one rule, through the binary: flag > HERALD_* variable > file.
#[test]
fn flags_beat_variables_beat_the_file() {
    let dir = tempfile::tempdir().expect("dir");
    let file = config_file(
        &dir,
        "[nats]\nlisten = \"127.0.0.1:4001\"\n[redis]\nlisten = \"127.0.0.1:4002\"\n[mqtt]\nlisten = \"127.0.0.1:4003\"\n",
    );
    let out = Command::new(HERALD)
        .args(["--check-config", "--nats", "127.0.0.1:4011"])
        .arg("--config")
        .arg(&file)
        .env("HERALD_NATS__LISTEN", "127.0.0.1:4021")
        .env("HERALD_REDIS__LISTEN", "127.0.0.1:4022")
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for (listener, addr) in [
        ("nats", "127.0.0.1:4011"),  // the flag
        ("redis", "127.0.0.1:4022"), // the variable
        ("mqtt", "127.0.0.1:4003"),  // the file
    ] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().eq([listener, addr])),
            "{listener} on {addr}: {text}"
        );
    }
}

#[test]
fn json_logs_parse_and_the_log_flag_wins_over_rust_log() {
    let data = tempfile::tempdir().expect("dir");
    let mut cmd = herald_serve(data.path());
    // The flag (`info`) wins over RUST_LOG (`off`): the listening lines appear.
    cmd.args(["--log-format", "json", "--log", "info"])
        .env("RUST_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = WaitOnDrop(cmd.spawn().expect("starts"));
    let stderr = child.0.stderr.take().expect("stderr");
    let rx = lines_of(stderr);
    let mut seen = 0;
    // A filter that lost to RUST_LOG=off would log nothing: fail, not hang.
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(20)) {
        let value: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            value["level"].is_string() && value["timestamp"].is_string(),
            "{line}"
        );
        if value["fields"]["message"] == "listening" {
            seen += 1;
            if seen == 4 {
                break;
            }
        }
    }
    drop(child);
    assert_eq!(seen, 4, "every listener logged, as JSON");
}

#[test]
fn text_logs_have_no_colours_in_a_pipe_and_open_listeners_are_warned_of() {
    let data = tempfile::tempdir().expect("dir");
    let mut cmd = nats_only("0.0.0.0:0", data.path());
    cmd.env("RUST_LOG", "info");
    let (child, _, seen) = start_logged(cmd);
    let _child = WaitOnDrop(child);
    let log = seen.join("\n");
    assert!(!log.contains('\u{1b}'), "no escape codes: {log}");
    assert!(
        log.contains("no users are configured") && log.contains("nats on 0.0.0.0"),
        "{log}"
    );
}

#[test]
fn systemd_hears_ready_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).expect("bind");
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    let data = tempfile::tempdir().expect("dir");
    let mut cmd = herald_serve(data.path());
    cmd.env("NOTIFY_SOCKET", &path);
    let (child, _, _) = start_logged(cmd);
    let child = WaitOnDrop(child);
    let mut buf = [0u8; 64];
    let n = socket.recv(&mut buf).expect("READY=1 arrives");
    assert_eq!(&buf[..n], b"READY=1");
    let pid = child.0.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let n = socket.recv(&mut buf).expect("STOPPING=1 arrives");
    assert_eq!(&buf[..n], b"STOPPING=1");
}

#[test]
fn the_systemd_units_command_lines_are_valid() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../dist/herald.service"
    ))
    .expect("dist/herald.service");
    assert!(unit.contains("Type=notify"));
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("herald.toml");
    std::fs::write(&config, stdout_of(&["config"])).expect("write config");
    for line in unit.lines().filter(|l| l.starts_with("ExecStart")) {
        let command = line.split_once('=').expect("key=value").1;
        let mut args: Vec<String> = command
            .split_whitespace()
            .skip(1)
            .map(|a| a.replace("/etc/herald/herald.toml", config.to_str().expect("path")))
            .collect();
        if !args.iter().any(|a| a == "--check-config") {
            args.push("--check-config".into());
        }
        let out = Command::new(HERALD).args(&args).output().expect("runs");
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn herald_health_answers_for_container_health_checks() {
    let server = crate::common::TestServer::start().await;
    let addr = server.http.to_string();
    let up = tokio::task::spawn_blocking(move || {
        Command::new(HERALD)
            .args(["health", "--addr", &addr])
            .output()
    })
    .await
    .expect("joined")
    .expect("runs");
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let closed = crate::common::reference::free_port();
    let down = Command::new(HERALD)
        .args(["health", "--addr", &format!("127.0.0.1:{closed}")])
        .output()
        .expect("runs");
    assert!(!down.status.success(), "nothing listens there");
}

#[test]
fn sizes_take_units_in_the_file_and_on_the_command_line() {
    let dir = tempfile::tempdir().expect("dir");
    let config = config_file(
        &dir,
        "[limits]\nmax_payload = \"2MiB\"\n\n[redis]\noutput_buffer_hard = \"32mb\"\n",
    );
    let ok = stdout_of(&[
        "--check-config",
        "--config",
        config.to_str().expect("path"),
        "--max-pending",
        "64MiB",
    ]);
    assert!(ok.starts_with("configuration OK"), "{ok}");
    let bad = Command::new(HERALD)
        .args(["--check-config", "--log", "herald=loud"])
        .output()
        .expect("runs");
    assert!(!bad.status.success(), "a bad log filter is refused");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("log:"));
    std::fs::write(&config, "[limits]\nmax_payload = \"12XB\"\n").expect("write");
    let bad = Command::new(HERALD)
        .args(["--check-config", "--config", config.to_str().expect("path")])
        .output()
        .expect("runs");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("unknown unit") && err.contains("max_payload"),
        "{err}"
    );
    let bad = Command::new(HERALD)
        .args(["--check-config", "--max-payload", "lots"])
        .output()
        .expect("runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a size"));
}

/// GET `/healthz` on `addr`: (status, body).
fn healthz(addr: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connects");
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    )
    .expect("sends");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("reads");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

#[tokio::test]
async fn healthz_is_503_until_the_streams_are_recovered() {
    use futures::StreamExt;
    let data = tempfile::tempdir().expect("dir");
    // A stream large enough that recovering it takes a moment.
    let (child, nats, _) = start_logged(herald_serve(data.path()));
    {
        let mut child = WaitOnDrop(child);
        let client = async_nats::connect(format!("nats://{nats}"))
            .await
            .expect("connects");
        let js = async_nats::jetstream::new(client);
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "BIG".into(),
            subjects: vec!["big.>".into()],
            ..Default::default()
        })
        .await
        .expect("stream");
        let mut acks = futures::stream::FuturesUnordered::new();
        for i in 0..200_000u32 {
            let ack = js
                .publish(format!("big.{}", i % 1000), bytes::Bytes::from_static(b"x"))
                .await
                .expect("sent");
            acks.push(ack.into_future());
            if acks.len() >= 2_000 {
                acks.next().await.expect("one").expect("acked");
            }
        }
        while let Some(ack) = acks.next().await {
            ack.expect("acked");
        }
        let pid = child.0.id().to_string();
        Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .expect("kill");
        let _ = child.0.wait();
    }
    // Restart: the web port answers 503 from the moment it listens until
    // the streams are recovered and the other listeners are up.
    let mut cmd = herald_serve(data.path());
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = WaitOnDrop(cmd.spawn().expect("restarts"));
    let stderr = child.0.stderr.take().expect("stderr");
    let rx = lines_of(stderr);
    let next = || {
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("herald logs")
    };
    let addr_of = |line: &str| {
        line.split("addr=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("addr")
            .to_owned()
    };
    let http = loop {
        let line = next();
        if line.contains("listening") && line.contains("http") {
            break addr_of(&line);
        }
        assert!(
            !line.contains("stream recovered"),
            "the web port listens first: {line}"
        );
    };
    let (status, body) = healthz(&http);
    assert_eq!(status, 503, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["status"], "unavailable");
    loop {
        let line = next();
        if line.contains("listening") && line.contains("nats") {
            break;
        }
    }
    // The NATS port listens before the web port is handed over: wait for 200.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, body) = healthz(&http);
        if status == 200 {
            assert_eq!(body, r#"{"status":"ok"}"#);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never ready: {status} {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_refusal_is_logged_at_info_with_user_protocol_and_address() {
    let dir = tempfile::tempdir().expect("dir");
    let config = config_file(
        &dir,
        "[[users]]\nname = \"sensor\"\ntoken = \"a-sensor-token-0123456789\"\npublish = { allow = [\"telemetry.>\"] }\n",
    );
    let mut cmd = nats_only("127.0.0.1:0", &dir.path().join("data"));
    cmd.args(["--config", config.to_str().expect("path")])
        .args(["--log-format", "json", "--log", "info"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = WaitOnDrop(cmd.spawn().expect("starts"));
    let rx = lines_of(child.0.stderr.take().expect("stderr"));
    let next = || -> serde_json::Value {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("a log line");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    let nats = loop {
        let line = next();
        if line["fields"]["message"] == "listening" && line["fields"]["protocol"] == "nats" {
            break line["fields"]["addr"].as_str().expect("addr").to_owned();
        }
    };
    let client = async_nats::ConnectOptions::with_token("a-sensor-token-0123456789".into())
        .connect(format!("nats://{nats}"))
        .await
        .expect("connects");
    client
        .publish("admin.reboot", bytes::Bytes::from_static(b"x"))
        .await
        .expect("sent");
    client.flush().await.expect("flushed");
    let refused = loop {
        let line = next();
        if line["fields"]["message"] == "refused" {
            break line;
        }
    };
    assert_eq!(refused["level"], "INFO", "{refused}");
    assert_eq!(refused["fields"]["user"], "sensor", "{refused}");
    assert_eq!(refused["span"]["name"], "nats", "the protocol: {refused}");
    assert!(
        refused["span"]["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "the client's address: {refused}"
    );
}
