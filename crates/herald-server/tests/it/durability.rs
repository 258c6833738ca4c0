//! Durability of streams across crashes of the real `herald` binary.
//!
//! What these tests prove, each against a child process on a temporary data
//! directory:
//! - a SIGKILL in the middle of a concurrent, pipelined publish load loses no
//!   acknowledged message, duplicates none and moves none from the sequence
//!   its ack named, with `--sync always` and with `--sync 1s` alike (a
//!   process crash is not a machine crash: data reaches the kernel before
//!   the ack);
//! - a durable consumer survives a SIGKILL and still delivers, at least
//!   once, every message it had not been acked for;
//! - recovery repairs damaged files: garbage after the last record and a
//!   last record cut short are truncated (and logged), index files of sealed
//!   segments that are missing are rebuilt (and logged), and sequences
//!   continue after what survived;
//! - (ignored until fixed) a graceful stop leaves no preallocated zeros at
//!   the end of the active segment.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::{self, consumer, stream};

const HERALD: &str = env!("CARGO_BIN_EXE_herald");

/// How long any one wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);

/// A `herald serve` child process; killed on drop if still running.
struct Herald {
    child: Child,
    nats: SocketAddr,
    /// Every line it has logged so far (ANSI colours removed).
    log: Arc<Mutex<Vec<String>>>,
}

impl Herald {
    /// Starts the binary on `data` with `extra` flags and waits for its NATS
    /// listener's `listening` line.
    fn start(data: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(HERALD)
            // Only the NATS listener: the others' default ports would clash
            // between tests running at once.
            .args([
                "serve",
                "--nats",
                "127.0.0.1:0",
                "--redis",
                "off",
                "--http",
                "off",
                "--mqtt",
                "off",
            ])
            .arg("--data-dir")
            .arg(data)
            .args(extra)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("herald starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let lines = Arc::clone(&log);
        // Reads the log to its end, so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let line = strip_ansi(&line);
                if line.contains("listening")
                    && line.contains("nats")
                    && let Some(addr) = field(&line, "addr")
                {
                    let _ = addr_tx.send(addr.to_owned());
                }
                lines.lock().expect("log lock").push(line);
            }
        });
        let nats = match addr_rx.recv_timeout(WAIT) {
            Ok(addr) => addr.parse().expect("a socket address"),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "herald did not listen; its log:\n{}",
                    log.lock().expect("log lock").join("\n")
                );
            }
        };
        Self { child, nats, log }
    }

    fn url(&self) -> String {
        format!("nats://{}", self.nats)
    }

    async fn jetstream(&self) -> jetstream::Context {
        match async_nats::connect(self.url()).await {
            Ok(client) => jetstream::new(client),
            Err(err) => panic!("cannot connect ({err}); log:\n{}", self.whole_log()),
        }
    }

    /// SIGKILL: the process ends at once, with no chance to flush or save.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL sent");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM, then waits for a clean exit.
    fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + WAIT;
        let exit = loop {
            if let Some(exit) = self.child.try_wait().expect("wait") {
                break exit;
            }
            assert!(Instant::now() < deadline, "herald did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(exit.success(), "exit status {exit}");
    }

    /// The problems the store's log recovery reported (each is logged a
    /// second time by the stream, with the same text) that contain `needle`.
    fn recovery_problems(&self, needle: &str) -> Vec<String> {
        let log = self.log.lock().expect("log lock");
        log.iter()
            .filter(|l| l.contains("log recovery") && l.contains(needle))
            .cloned()
            .collect()
    }

    fn whole_log(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `name=value` in a log line, quotes removed.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let pattern = format!("{name}=");
    let start = line.find(&pattern)? + pattern.len();
    let value = line[start..].split_whitespace().next()?;
    Some(value.trim_matches('"'))
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

async fn create_stream(js: &jetstream::Context, name: &str, subjects: &str) -> stream::Stream {
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![subjects.into()],
        ..Default::default()
    })
    .await
    .expect("stream created")
}

/// Publishes `payloads` one at a time, each acknowledged before the next;
/// the first gets sequence `first_seq`.
async fn publish_all(js: &jetstream::Context, subject: &str, payloads: &[Vec<u8>], first_seq: u64) {
    for (seq, payload) in (first_seq..).zip(payloads) {
        let ack = js
            .publish(subject.to_owned(), payload.clone().into())
            .await
            .expect("publish sent")
            .await
            .expect("publish acked");
        assert_eq!(ack.sequence, seq);
    }
}

/// Every message of stream `name`, in order, as (stream sequence, payload),
/// read through a fresh consumer in batches of `batch` messages.
async fn read_all(js: &jetstream::Context, name: &str, batch: usize) -> Vec<(u64, Vec<u8>)> {
    let mut stream = js.get_stream(name).await.expect("stream exists");
    let expected = stream.info().await.expect("stream info").state.messages;
    let reader = stream
        .create_consumer(consumer::pull::Config {
            ack_policy: consumer::AckPolicy::None,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .expect("reader created");
    let mut out = Vec::new();
    let deadline = Instant::now() + WAIT;
    while (out.len() as u64) < expected {
        assert!(
            Instant::now() < deadline,
            "read {} of {expected} messages",
            out.len()
        );
        let mut messages = reader
            .fetch()
            .max_messages(batch)
            .messages()
            .await
            .expect("fetch");
        while let Some(msg) = tokio::time::timeout(WAIT, futures::StreamExt::next(&mut messages))
            .await
            .expect("fetch ends in time")
        {
            let msg = msg.expect("a message");
            let seq = msg.info().expect("ack subject parses").stream_sequence;
            out.push((seq, msg.payload.to_vec()));
        }
    }
    assert_eq!(out.len() as u64, expected, "no more than the stream holds");
    out
}

/// The stream's state: (messages, first sequence, last sequence).
async fn state(js: &jetstream::Context, name: &str) -> (u64, u64, u64) {
    let mut stream = js.get_stream(name).await.expect("stream exists");
    let state = &stream.info().await.expect("stream info").state;
    (state.messages, state.first_sequence, state.last_sequence)
}

/// Publishes as fast as acks allow, keeping `WINDOW` publishes in flight,
/// and records every ack with its payload until a publish or an ack fails
/// (the server was killed). The acks are checked by the caller: a panic
/// here would go unseen once the task is aborted.
async fn publisher(
    js: jetstream::Context,
    task: usize,
    acked: Arc<Mutex<Vec<(PublishAck, String)>>>,
    count: Arc<AtomicUsize>,
) {
    const WINDOW: usize = 64;
    let mut in_flight = VecDeque::with_capacity(WINDOW);
    for n in 0u64.. {
        let payload = format!("p{task}-{n}");
        match js
            .publish(format!("crash.{task}"), payload.clone().into())
            .await
        {
            Ok(ack) => in_flight.push_back((payload, ack)),
            Err(_) => return,
        }
        if in_flight.len() < WINDOW {
            continue;
        }
        let (payload, ack) = in_flight.pop_front().expect("window is full");
        match ack.await {
            Ok(ack) => {
                acked.lock().expect("acked lock").push((ack, payload));
                count.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => return,
        }
    }
}

/// Kills herald with SIGKILL under load, restarts it on the same data and
/// checks every acknowledged message is where its ack said, exactly once.
async fn sigkill_mid_load_loses_nothing_acked(sync: &str) {
    const PUBLISHERS: usize = 4;
    const KILL_AFTER: usize = 10_000;
    let data = tempfile::tempdir().expect("temp dir");
    let herald = Herald::start(data.path(), &["--sync", sync]);
    let js = herald.jetstream().await;
    create_stream(&js, "CRASH", "crash.>").await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..PUBLISHERS)
        .map(|task| {
            tokio::spawn(publisher(
                js.clone(),
                task,
                Arc::clone(&acked),
                Arc::clone(&count),
            ))
        })
        .collect();
    let deadline = Instant::now() + WAIT;
    while count.load(Ordering::Relaxed) < KILL_AFTER {
        assert!(
            Instant::now() < deadline,
            "only {} acks before the deadline",
            count.load(Ordering::Relaxed)
        );
        assert!(
            tasks.iter().all(|t| !t.is_finished()),
            "a publisher stopped before the kill"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The publishers are still sending while the process dies.
    herald.kill();
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
    drop(js);
    let acked = std::mem::take(&mut *acked.lock().expect("acked lock"));
    assert!(acked.len() >= KILL_AFTER);

    let herald = Herald::start(data.path(), &["--sync", sync]);
    let js = herald.jetstream().await;
    let (messages, first, last) = state(&js, "CRASH").await;
    assert_eq!(first, 1);
    assert_eq!(messages, last, "no gaps: nothing was deleted");
    let stored = read_all(&js, "CRASH", 1000).await;
    let mut at_seq = HashMap::new();
    for (i, (seq, payload)) in stored.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1, "sequences are dense and ascending");
        let payload = String::from_utf8(payload.clone()).expect("utf-8 payload");
        if let Some(earlier) = at_seq.insert(payload.clone(), *seq) {
            panic!("{payload} stored twice: at {earlier} and {seq}");
        }
    }
    for (ack, payload) in &acked {
        assert_eq!(ack.stream, "CRASH");
        assert!(!ack.duplicate, "{payload} is no duplicate");
        let seq = &ack.sequence;
        assert_eq!(
            at_seq.get(payload),
            Some(seq),
            "{payload} was acked at sequence {seq}"
        );
    }
    let ack = js
        .publish("crash.after", "after".into())
        .await
        .expect("publish sent")
        .await
        .expect("publish acked");
    assert_eq!(ack.sequence, last + 1, "sequences continue after recovery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_loses_no_acked_message_with_sync_always() {
    sigkill_mid_load_loses_nothing_acked("always").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_loses_no_acked_message_with_sync_every_second() {
    sigkill_mid_load_loses_nothing_acked("1s").await;
}

#[tokio::test]
async fn a_durable_consumer_survives_sigkill_and_redelivers_what_was_not_acked() {
    let data = tempfile::tempdir().expect("temp dir");
    let herald = Herald::start(data.path(), &["--sync", "always"]);
    let js = herald.jetstream().await;
    let stream = create_stream(&js, "WORK", "work.>").await;
    let payloads: Vec<Vec<u8>> = (1..=100).map(|i| format!("m{i}").into_bytes()).collect();
    publish_all(&js, "work.item", &payloads, 1).await;
    let config = consumer::pull::Config {
        durable_name: Some("worker".into()),
        ack_policy: consumer::AckPolicy::Explicit,
        // Short, so messages delivered but not acked before the crash come
        // back soon after the restart.
        ack_wait: Duration::from_secs(1),
        ..Default::default()
    };
    let worker = stream.create_consumer(config).await.expect("consumer");
    let mut got = worker
        .fetch()
        .max_messages(40)
        .messages()
        .await
        .expect("fetch");
    let mut delivered = Vec::new();
    while let Some(msg) = futures::StreamExt::next(&mut got).await {
        delivered.push(msg.expect("message"));
    }
    assert_eq!(delivered.len(), 40);
    // Acks confirmed by the server for 1..=30; 31..=40 stay pending.
    for msg in &delivered[..30] {
        msg.double_ack().await.expect("ack confirmed");
    }
    let acked_at = SystemTime::now();
    drop(delivered);
    // The consumer saves its state now and then; kill only after a save
    // that knows the acks, so that the restart restores a consumer with
    // messages pending (31..=40) and not merely a fresh one.
    let state_file = data.path().join("streams/WORK/consumers/worker/state.json");
    wait_for_save(&state_file, acked_at).await;
    herald.kill();

    let herald = Herald::start(data.path(), &["--sync", "always"]);
    let js = herald.jetstream().await;
    let stream = js.get_stream("WORK").await.expect("stream survives");
    let worker: consumer::PullConsumer = stream
        .get_consumer("worker")
        .await
        .expect("the durable consumer survives");
    let mut seen = HashSet::new();
    let deadline = Instant::now() + WAIT;
    while !(31..=100).all(|seq| seen.contains(&seq)) {
        assert!(
            Instant::now() < deadline,
            "not redelivered: {:?}",
            (31..=100u64)
                .filter(|s| !seen.contains(s))
                .collect::<Vec<_>>()
        );
        let mut batch = worker
            .fetch()
            .max_messages(100)
            .messages()
            .await
            .expect("fetch");
        let mut empty = true;
        while let Some(msg) = futures::StreamExt::next(&mut batch).await {
            let msg = msg.expect("message");
            let seq = msg.info().expect("ack subject parses").stream_sequence;
            assert_eq!(msg.payload.as_ref(), format!("m{seq}").as_bytes());
            msg.double_ack().await.expect("ack confirmed");
            seen.insert(seq);
            empty = false;
        }
        if empty {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(seen.iter().all(|seq| (1..=100).contains(seq)), "{seen:?}");
    herald.terminate();
}

/// Waits until `path` has been written after `since`.
async fn wait_for_save(path: &Path, since: SystemTime) {
    let deadline = Instant::now() + WAIT;
    loop {
        let modified = std::fs::metadata(path).and_then(|m| m.modified());
        if modified.as_ref().is_ok_and(|m| *m > since) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} not written since the acks: {modified:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The highest-numbered file with extension `ext` in the log directory of
/// stream `name`, and how many such files there are.
fn last_file(data: &Path, name: &str, ext: &str) -> (PathBuf, usize) {
    let dir = data.join("streams").join(name).join("log");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    let count = files.len();
    (files.pop().expect("at least one file"), count)
}

fn numbered(n: usize) -> Vec<Vec<u8>> {
    (1..=n)
        .map(|i| format!("message {i}").into_bytes())
        .collect()
}

/// Where the records of segment file `path` end. The format is documented
/// in herald-store's `segment.rs`: a 16-byte file header, then records
/// whose first field is their whole length (u32, little-endian). The active
/// segment is extended with zeros ahead of its data; a graceful stop should
/// cut them off again, but does not always (see
/// `a_graceful_stop_leaves_no_preallocated_zeros`), so the damage below is
/// done at the end of the data, not of the file.
fn data_end(path: &Path) -> u64 {
    let bytes = std::fs::read(path).expect("segment readable");
    let mut offset = 16;
    while let Some(len) = bytes.get(offset..offset + 4) {
        let len = u32::from_le_bytes(len.try_into().expect("four bytes")) as usize;
        if len == 0 {
            break;
        }
        offset += len;
    }
    assert!(
        offset <= bytes.len(),
        "the last record of {} is whole",
        path.display()
    );
    offset as u64
}

/// Starts herald on `data`, creates stream `D` and stores `payloads`, then
/// stops it gracefully.
async fn stored_then_stopped(data: &Path, extra: &[&str], payloads: &[Vec<u8>]) {
    let herald = Herald::start(data, extra);
    let js = herald.jetstream().await;
    create_stream(&js, "D", "d.>").await;
    publish_all(&js, "d.x", payloads, 1).await;
    herald.terminate();
}

#[tokio::test]
async fn garbage_after_the_last_record_is_truncated_and_logged() {
    let data = tempfile::tempdir().expect("temp dir");
    let payloads = numbered(50);
    stored_then_stopped(data.path(), &[], &payloads).await;
    let (segment, _) = last_file(data.path(), "D", "seg");
    let end = data_end(&segment);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("segment opens");
    file.set_len(end).expect("segment cut at its data");
    file.write_all_at(&[0xAB; 37], end)
        .expect("garbage written");
    drop(file);

    let herald = Herald::start(data.path(), &[]);
    let problems = herald.recovery_problems(&format!("truncated 37 bytes at offset {end}:"));
    assert_eq!(problems.len(), 1, "log:\n{}", herald.whole_log());
    assert!(
        problems[0].contains(&*segment.to_string_lossy()),
        "{problems:?}"
    );
    let js = herald.jetstream().await;
    assert_eq!(state(&js, "D").await, (50, 1, 50));
    let stored: Vec<Vec<u8>> = read_all(&js, "D", 100)
        .await
        .into_iter()
        .map(|m| m.1)
        .collect();
    assert_eq!(stored, payloads);
    publish_all(&js, "d.x", &[b"next".to_vec()], 51).await;
    herald.terminate();
}

#[tokio::test]
async fn a_last_record_cut_short_is_dropped_and_its_sequence_reused() {
    let data = tempfile::tempdir().expect("temp dir");
    let payloads = numbered(50);
    stored_then_stopped(data.path(), &[], &payloads).await;
    let (segment, _) = last_file(data.path(), "D", "seg");
    let end = data_end(&segment);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .and_then(|f| f.set_len(end - 3))
        .expect("segment shortened");

    let herald = Herald::start(data.path(), &[]);
    let problems = herald.recovery_problems("cut short");
    assert_eq!(problems.len(), 1, "log:\n{}", herald.whole_log());
    assert!(problems[0].contains("truncated"), "{problems:?}");
    assert!(
        problems[0].contains(&*segment.to_string_lossy()),
        "{problems:?}"
    );
    let js = herald.jetstream().await;
    assert_eq!(state(&js, "D").await, (49, 1, 49));
    let stored: Vec<Vec<u8>> = read_all(&js, "D", 100)
        .await
        .into_iter()
        .map(|m| m.1)
        .collect();
    assert_eq!(stored, payloads[..49]);
    publish_all(&js, "d.x", &[b"replacement".to_vec()], 50).await;
    let (messages, _, last) = state(&js, "D").await;
    assert_eq!((messages, last), (50, 50));
    herald.terminate();
}

#[tokio::test]
async fn missing_index_files_of_sealed_segments_are_rebuilt() {
    // Segments hold 64 MiB and that is not configurable from the command
    // line: nine 8 MiB messages fill one and start a second.
    const MIB: usize = 1 << 20;
    let data = tempfile::tempdir().expect("temp dir");
    let flags = ["--max-payload", "16777216"];
    let payloads: Vec<Vec<u8>> = (0..9u8).map(|i| vec![b'a' + i; 8 * MIB]).collect();
    stored_then_stopped(data.path(), &flags, &payloads).await;
    let (_, segments) = last_file(data.path(), "D", "seg");
    assert_eq!(segments, 2, "one sealed segment and the active one");
    let (index, indexes) = last_file(data.path(), "D", "idx");
    assert_eq!(indexes, 1, "only the sealed segment has an index file");
    std::fs::remove_file(&index).expect("index removed");

    let herald = Herald::start(data.path(), &flags);
    let problems = herald.recovery_problems("rebuilt");
    assert_eq!(problems.len(), 1, "log:\n{}", herald.whole_log());
    assert!(
        problems[0].contains(&*index.to_string_lossy()),
        "{problems:?}"
    );
    assert!(index.exists(), "the index file is written anew");
    let js = herald.jetstream().await;
    assert_eq!(state(&js, "D").await, (9, 1, 9));
    // One at a time: nine of them at once would overflow the connection's
    // pending-bytes limit.
    let stored = read_all(&js, "D", 1).await;
    for ((seq, payload), (expected_seq, expected)) in stored.iter().zip((1..).zip(&payloads)) {
        assert_eq!(*seq, expected_seq);
        assert!(payload == expected, "payload of {seq} differs");
    }
    publish_all(&js, "d.x", &[b"small".to_vec()], 10).await;
    herald.terminate();
}

// A herald bug: after SIGTERM and a clean exit (status 0), the active segment
// sometimes keeps its 4 MiB of preallocated zeros (e.g. a file of 4194603
// bytes holding 342 bytes of data), although `FileLog`'s drop promises that
// "a log closed in order leaves no preallocated zeros behind". Seen in
// roughly one stop in seven.
// Likely cause: `FileLog` is trimmed only in its `Drop`, and the last
// `Arc<StreamInner>` may be the stream's writer thread's: it sets `stopped`
// and notifies `close_and_wait` before its closure drops the `Arc`, the
// thread is never joined, and the process can exit in between. Harmless to
// the data (recovery reads the zeros as the end), but the promise does not
// hold; trimming in `Stream::close` (or joining the writer) would make it.
#[tokio::test]
async fn a_graceful_stop_leaves_no_preallocated_zeros() {
    let data = tempfile::tempdir().expect("temp dir");
    stored_then_stopped(data.path(), &[], &numbered(5)).await;
    for round in 1..=20u64 {
        let (segment, _) = last_file(data.path(), "D", "seg");
        let len = std::fs::metadata(&segment).expect("metadata").len();
        assert_eq!(len, data_end(&segment), "after stop {round}");
        let herald = Herald::start(data.path(), &[]);
        let js = herald.jetstream().await;
        publish_all(&js, "d.x", &[b"more".to_vec()], 5 + round).await;
        herald.terminate();
    }
}
