//! The `herald` binary itself: serving, logging the bound address, shutting
//! down on SIGTERM, and the client subcommands against herald and nats-server.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::reference::nats_server;

pub(crate) const HERALD: &str = env!("CARGO_BIN_EXE_herald");

/// A `herald serve` child process; killed on drop if still running.
pub(crate) struct Served {
    child: Child,
    pub(crate) nats: SocketAddr,
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
pub(crate) fn serve() -> Served {
    let data = tempfile::tempdir().expect("temp dir");
    let (child, nats) = serve_in(data.path());
    Served {
        child,
        nats,
        _data: data,
    }
}

/// `herald serve` on ephemeral ports with `data` as its data directory;
/// returns once it listens, with its NATS address.
fn serve_in(data: &std::path::Path) -> (Child, SocketAddr) {
    let (child, nats, _) = start_logged(herald_serve(data));
    (child, nats)
}

/// Starts `cmd` (a herald server) and reads its log until the NATS
/// listener's `listening` line; returns the child, that address and the log
/// lines before it (as written).
pub(crate) fn start_logged(mut cmd: Command) -> (Child, SocketAddr, Vec<String>) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("herald starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    let nats = loop {
        let line = lines
            .next()
            .expect("herald logs before exiting")
            .expect("readable log");
        let raw = line;
        let line = strip_ansi(&raw);
        if line.contains("listening") && line.contains("nats") {
            let addr = line
                .split("addr=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .expect("addr field");
            break addr.parse().expect("socket address");
        }
        // As written: a test checks there are no colour codes.
        seen.push(raw);
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, nats, seen)
}

/// The `herald serve` command line the tests use.
pub(crate) fn herald_serve(data: &std::path::Path) -> Command {
    let mut cmd = Command::new(HERALD);
    cmd.args([
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
    .arg(data)
    .env("RUST_LOG", "info")
    .env("NO_COLOR", "1");
    cmd
}

#[test]
fn a_second_herald_on_the_same_data_directory_exits_at_once() {
    let first = serve();
    let second = herald_serve(first._data.path())
        .stdin(Stdio::null())
        .output()
        .expect("second herald runs");
    assert!(!second.status.success(), "the second herald must not serve");
    let stderr = String::from_utf8_lossy(&second.stderr);
    let dir = first._data.path().display().to_string();
    assert!(stderr.contains(&dir), "names the directory: {stderr}");
    let pid = format!("PID {}", first.child.id());
    assert!(stderr.contains(&pid), "names the holder: {stderr}");
    // The first one is unharmed.
    let mut raw = std::net::TcpStream::connect(first.nats).expect("first still serves");
    let mut info = [0u8; 4];
    std::io::Read::read_exact(&mut raw, &mut info).expect("INFO");
    assert_eq!(&info, b"INFO");
}

#[test]
fn a_lock_left_by_a_killed_herald_does_not_block_a_restart() {
    let data = tempfile::tempdir().expect("temp dir");
    let (mut killed, _) = serve_in(data.path());
    killed.kill().expect("SIGKILL");
    killed.wait().expect("reaped");
    let lock = data.path().join("herald.lock");
    assert!(lock.exists(), "a killed herald leaves its lock file behind");
    let (mut restarted, nats) = serve_in(data.path());
    let pid = std::fs::read_to_string(&lock).expect("lock file");
    assert_eq!(pid.trim(), restarted.id().to_string());
    assert!(std::net::TcpStream::connect(nats).is_ok());
    let _ = restarted.kill();
    let _ = restarted.wait();
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

pub(crate) fn client(addr: SocketAddr, args: &[&str]) -> Command {
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
pub(crate) struct WaitOnDrop(pub(crate) Child);

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
pub(crate) fn run_client(addr: SocketAddr, args: &[&str]) -> String {
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

#[test]
fn herald_raises_a_low_open_file_limit_to_the_hard_limit() {
    const CLIENTS: usize = 600;
    let _ = rlimit::increase_nofile_limit(4 * CLIENTS as u64);
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("limits");
    assert!(hard as usize > 2 * CLIENTS, "the hard limit here is {hard}");
    let data = tempfile::tempdir().expect("temp dir");
    let serve = herald_serve(data.path());
    let mut args: Vec<String> = serve
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    args.insert(0, HERALD.to_owned());
    // A login shell's usual soft limit would refuse clients at about 200.
    let mut under_low_limit = Command::new("sh");
    under_low_limit
        .arg("-c")
        .arg("ulimit -Sn 200 && exec \"$@\"")
        .arg("sh")
        .args(&args)
        .envs(serve.get_envs().filter_map(|(k, v)| Some((k, v?))));
    let (mut child, nats, log) = start_logged(under_low_limit);
    let limit_line = log.into_iter().find(|l| l.contains("open-file limit"));
    let limit_line = limit_line.expect("herald logs its open-file limit");
    assert!(
        limit_line.contains(&format!("limit={hard}")),
        "raised to the hard limit {hard}: {limit_line}"
    );
    let mut clients = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let mut raw = std::net::TcpStream::connect(nats).expect("connect");
        raw.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut info = [0u8; 4];
        std::io::Read::read_exact(&mut raw, &mut info)
            .unwrap_or_else(|e| panic!("client {i} got no INFO: {e}"));
        assert_eq!(&info, b"INFO");
        clients.push(raw);
    }
    let _ = child.kill();
    let _ = child.wait();
}
