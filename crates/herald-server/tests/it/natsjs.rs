//! nats.js (npm `nats`), the JavaScript client, against herald: core
//! pub/sub, request/reply and no responders, JetStream publish (header-less
//! publishes go out as `HPUB <subject> <reply> 0 <total>`), de-duplication,
//! and a durable pull consumer read with `fetch()` and `consume()`, every
//! message acknowledged. The same script runs against nats-server, and the
//! two reports must be equal.
//!
//! The script and its locked dependencies live in `tests/js/`; the test
//! command (`scripts/test`) installs them with `npm ci`.

use std::path::PathBuf;
use std::process::Command;

use crate::common::TestServer;
use crate::common::reference::nats_server_jetstream;

fn script_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

/// Runs the script against `url` on a blocking thread; returns its report.
async fn run_script(url: String) -> serde_json::Value {
    let dir = script_dir();
    assert!(
        dir.join("node_modules/nats").is_dir(),
        "nats.js is not installed; the test command (scripts/test) installs it, or run \
         `npm ci --prefix {}`",
        dir.display()
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("natsjs.mjs")
            .arg(&url)
            .current_dir(&dir)
            .output()
            .expect("node runs")
    })
    .await
    .expect("script thread");
    assert!(
        output.status.success(),
        "nats.js script failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().expect("a report line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("report {line:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natsjs_works_with_herald_as_with_nats_server() {
    let herald = TestServer::start().await;
    let ours = run_script(herald.nats_url()).await;
    herald.stop().await;

    // What the script saw, checked on its own terms first.
    assert_eq!(ours["reply"], "echo:ping");
    assert_eq!(ours["no_responders"], "503");
    assert_eq!(ours["published"], 200);
    assert_eq!(ours["dedup"]["again"], true);
    assert_eq!(ours["consumed"][1], 201);
    assert_eq!(ours["consumer_info"]["num_ack_pending"], 0);
    assert_eq!(ours["consumer_info"]["num_pending"], 0);

    let reference = nats_server_jetstream();
    let theirs = run_script(format!("nats://{}", reference.server.addr)).await;
    assert_eq!(ours, theirs, "herald (left) and nats-server (right) differ");
}
