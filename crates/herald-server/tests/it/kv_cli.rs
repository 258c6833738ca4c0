//! `herald kv` and `herald obj` against herald and against nats-server:
//! the same commands, the same output.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Stdio;

use crate::binary::{WaitOnDrop, client, run_client, serve};
use crate::common::reference::nats_server_jetstream;

fn exercise_kv(addr: SocketAddr) {
    let out = run_client(addr, &["kv", "add", "cfg", "--history", "3"]);
    assert_eq!(out, "bucket cfg keeps 3 revision(s) per key\n");
    assert_eq!(
        run_client(addr, &["kv", "put", "cfg", "db.host", "a"]),
        "db.host revision 1\n"
    );
    assert_eq!(
        run_client(addr, &["kv", "put", "cfg", "db.host", "b"]),
        "db.host revision 2\n"
    );
    assert_eq!(run_client(addr, &["kv", "get", "cfg", "db.host"]), "b\n");
    assert_eq!(
        run_client(addr, &["kv", "get", "cfg", "db.host", "--revision", "1"]),
        "a\n"
    );
    assert_eq!(
        run_client(addr, &["kv", "history", "cfg", "db.host"]),
        "[1] PUT a\n[2] PUT b\n"
    );
    run_client(addr, &["kv", "put", "cfg", "db.port", "5432"]);
    assert_eq!(run_client(addr, &["kv", "ls", "cfg"]), "db.host\ndb.port\n");
    assert!(run_client(addr, &["kv", "ls"]).lines().any(|l| l == "cfg"));
    assert_eq!(
        run_client(addr, &["kv", "del", "cfg", "db.port"]),
        "db.port deleted\n"
    );
    let gone = client(addr, &["kv", "get", "cfg", "db.port"])
        .output()
        .expect("runs");
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no such key"));

    // A watch with history prints the current value, then each change.
    let watch = client(addr, &["kv", "watch", "cfg", "db.>", "--history"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("watch starts");
    let mut watch = WaitOnDrop(watch);
    let stdout = watch.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let next_line = || {
        rx.recv_timeout(std::time::Duration::from_secs(20))
            .expect("the watch prints in time")
    };
    let first = next_line();
    assert!(first.ends_with("db.host = b"), "{first}");
    run_client(addr, &["kv", "put", "cfg", "db.host", "c"]);
    let mut next = next_line();
    if next.contains("db.port") {
        // The delete marker of db.port came with the history.
        next = next_line();
    }
    assert_eq!(next, "[5] PUT db.host = c");
}

fn exercise_obj(addr: SocketAddr) {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("data.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &data).expect("write");
    let out = run_client(addr, &["obj", "put", "files", file.to_str().expect("path")]);
    assert_eq!(out, "data.bin stored: 300000 bytes in 3 chunks\n");
    assert_eq!(
        run_client(addr, &["obj", "ls", "files"]),
        "data.bin\t300000\n"
    );
    let back = dir.path().join("back.bin");
    run_client(
        addr,
        &[
            "obj",
            "get",
            "files",
            "data.bin",
            "-o",
            back.to_str().expect("path"),
        ],
    );
    assert_eq!(std::fs::read(&back).expect("read"), data);
    assert_eq!(
        run_client(addr, &["obj", "rm", "files", "data.bin"]),
        "data.bin deleted\n"
    );
    assert_eq!(run_client(addr, &["obj", "ls", "files"]), "");
}

#[test]
fn kv_and_obj_subcommands_work_against_herald() {
    let served = serve();
    exercise_kv(served.nats);
    exercise_obj(served.nats);
}

#[test]
fn kv_and_obj_subcommands_work_against_nats_server() {
    let reference = nats_server_jetstream();
    exercise_kv(reference.server.addr);
    exercise_obj(reference.server.addr);
}
