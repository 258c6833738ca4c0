//! The `herald` binary itself: serving, logging the bound address, shutting
//! down on SIGTERM, and the client subcommands against herald and nats-server.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::reference::nats_server;

const HERALD: &str = env!("CARGO_BIN_EXE_herald");

/// A `herald serve` child process; killed on drop if still running.
struct Served {
    child: Child,
    nats: SocketAddr,
    _data: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on ephemeral ports and reads the bound address from its
/// `listening` log line.
fn serve() -> Served {
    let data = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(HERALD)
        .args([
            "--nats",
            "127.0.0.1:0",
            "--redis",
            "127.0.0.1:0",
            "--mqtt",
            "127.0.0.1:0",
            // Not the default 8080: two of these tests run at once, and the
            // second herald would fail to bind it and exit.
            "--http",
            "127.0.0.1:0",
            // One worker: nothing in the server may wait on another worker.
            "--threads",
            "1",
            "--data-dir",
        ])
        .arg(data.path())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("herald starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let nats = loop {
        let line = lines
            .next()
            .expect("herald logs before exiting")
            .expect("readable log");
        if line.contains("listening") && line.contains("nats") {
            let addr = line
                .split("addr=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .expect("addr field");
            break strip_ansi(addr).parse().expect("socket address");
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Served {
        child,
        nats,
        _data: data,
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn client(addr: SocketAddr, args: &[&str]) -> Command {
    let mut cmd = Command::new(HERALD);
    cmd.args(args)
        .args(["--server", &format!("nats://{addr}")])
        .stdin(Stdio::null());
    cmd
}

/// `herald sub`, `pub`, `reply` and `request` against one server.
fn exercise_client_subcommands(addr: SocketAddr) {
    let sub = client(addr, &["sub", "cli.>", "--count", "2", "--raw"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sub starts");
    let mut sub = WaitOnDrop(sub);
    // `sub` prints "listening on" once subscribed.
    let stderr = sub.0.stderr.take().expect("stderr");
    let mut err_lines = BufReader::new(stderr).lines();
    let first = err_lines.next().expect("a line").expect("readable");
    assert!(first.contains("listening on cli.>"), "{first}");
    let status = client(addr, &["pub", "cli.one", "hello {{n}}", "--count", "2"])
        .stderr(Stdio::null())
        .status()
        .expect("pub runs");
    assert!(status.success());
    let out = wait_output(&mut sub.0);
    assert_eq!(out, "hello 1\nhello 2\n");

    let replier = client(addr, &["reply", "cli.time", "tick", "--count", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("reply starts");
    let mut replier = WaitOnDrop(replier);
    let stderr = replier.0.stderr.take().expect("stderr");
    let line = BufReader::new(stderr)
        .lines()
        .next()
        .expect("line")
        .expect("read");
    assert!(line.contains("answering requests"), "{line}");
    let reply = client(
        addr,
        &["request", "cli.time", "what time?", "--timeout", "5s"],
    )
    .output()
    .expect("request runs");
    assert!(
        reply.status.success(),
        "{}",
        String::from_utf8_lossy(&reply.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&reply.stdout), "tick\n");

    let nobody = client(addr, &["request", "cli.nobody", "", "--timeout", "5s"])
        .output()
        .expect("request runs");
    assert!(!nobody.status.success());
    let err = String::from_utf8_lossy(&nobody.stderr).to_lowercase();
    assert!(err.contains("no responders"), "{err}");
}

/// Kills a child that is still running when the test fails early.
struct WaitOnDrop(Child);

impl Drop for WaitOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_output(child: &mut Child) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "exit {status}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "child did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    out
}

#[test]
fn client_subcommands_work_against_herald() {
    let served = serve();
    exercise_client_subcommands(served.nats);
}

#[test]
fn client_subcommands_work_against_nats_server() {
    let reference = nats_server(&[]);
    exercise_client_subcommands(reference.addr);
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let mut served = serve();
    let mut conn = std::net::TcpStream::connect(served.nats).expect("connect");
    let mut info = String::new();
    BufReader::new(&mut conn)
        .read_line(&mut info)
        .expect("INFO");
    assert!(info.starts_with("INFO "));
    let pid = served.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = served.child.try_wait().expect("wait") {
            break exit;
        }
        assert!(std::time::Instant::now() < deadline, "herald did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "exit status {exit}");
    // The client's connection was closed by the server.
    let mut rest = String::new();
    let n = BufReader::new(&mut conn).read_line(&mut rest).unwrap_or(0);
    assert_eq!(n, 0, "connection closed, got {rest:?}");
}

#[test]
fn help_and_default_config() {
    let help = Command::new(HERALD).arg("--help").output().expect("runs");
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--nats",
        "--data-dir",
        "--config",
        "HERALD_NATS",
        "pub",
        "sub",
        "request",
    ] {
        assert!(text.contains(flag), "--help mentions {flag}");
    }
    let config = Command::new(HERALD).arg("config").output().expect("runs");
    let text = String::from_utf8_lossy(&config.stdout);
    assert!(text.contains("listen = \"0.0.0.0:4222\""), "{text}");
    let bad = Command::new(HERALD)
        .args(["--nats", "nowhere"])
        .output()
        .expect("runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nats.listen"));
}

/// Runs a client subcommand to completion and returns its standard output.
fn run_client(addr: SocketAddr, args: &[&str]) -> String {
    let output = client(addr, args).output().expect("client runs");
    assert!(
        output.status.success(),
        "herald {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn stream_subcommands_manage_streams_and_redrive_dead_letters() {
    let served = serve();
    let addr = served.nats;
    let added = run_client(addr, &["stream", "add", "ORDERS", "-S", "orders.>"]);
    assert!(added.contains("ORDERS captures orders.>"), "{added}");
    run_client(addr, &["stream", "add", "DLQ", "-S", "dlq.>"]);
    run_client(addr, &["pub", "orders.new", "order {{n}}", "--count", "3"]);
    let listed = run_client(addr, &["stream", "ls"]);
    let orders = listed
        .lines()
        .find(|l| l.starts_with("ORDERS"))
        .expect("ORDERS listed");
    assert_eq!(orders.split_whitespace().nth(1), Some("3"), "{listed}");
    let got = run_client(addr, &["stream", "get", "ORDERS", "2"]);
    assert!(
        got.contains("[#2]") && got.contains("orders.new") && got.contains("order 2"),
        "{got}"
    );
    let viewed = run_client(
        addr,
        &["stream", "view", "ORDERS", "--from-seq", "2", "--raw"],
    );
    assert_eq!(viewed, "order 2\norder 3\n");
    // A dead letter that names where it came from goes back there.
    run_client(
        addr,
        &[
            "pub",
            "dlq.orders",
            "order 4",
            "-H",
            "Herald-Dead-Letter-Subject:orders.retry",
            "-H",
            "Trace:x",
        ],
    );
    let redriven = run_client(addr, &["stream", "redrive", "DLQ"]);
    assert!(redriven.contains("redrove 1"), "{redriven}");
    let back = run_client(
        addr,
        &["stream", "get", "ORDERS", "--last-for", "orders.retry"],
    );
    assert!(
        back.contains("order 4") && back.contains("Trace: x"),
        "{back}"
    );
    assert!(!back.contains("Herald-Dead-Letter"), "{back}");
    let info = run_client(addr, &["stream", "info", "DLQ"]);
    assert!(info.contains("messages   0"), "{info}");
    run_client(addr, &["stream", "rm", "DLQ"]);
    let listed = run_client(addr, &["stream", "ls"]);
    assert!(!listed.contains("DLQ"), "{listed}");
}
