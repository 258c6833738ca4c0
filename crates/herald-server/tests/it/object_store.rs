//! Object Store buckets through async-nats's `object_store` module,
//! unmodified: objects are chunks on `$O.<bucket>.C.<nuid>` and a rolled-up
//! metadata message on `$O.<bucket>.M.<name>` in the stream `OBJ_<bucket>`.

use std::time::Duration;

use async_nats::jetstream::{self, object_store};
use futures::StreamExt;
use tokio::io::AsyncReadExt;

use crate::common::TestServer;

const WAIT: Duration = Duration::from_secs(30);

/// Deterministic bytes that are not all alike (a chunk mix-up shows).
fn data(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

async fn read_all(store: &object_store::ObjectStore, name: &str) -> Vec<u8> {
    let mut object = store.get(name).await.expect("get");
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, object.read_to_end(&mut out))
        .await
        .expect("read in time")
        .expect("read");
    out
}

#[tokio::test]
async fn twenty_megabytes_round_trip_and_replace() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let store = js
        .create_object_store(object_store::Config {
            bucket: "files".into(),
            ..Default::default()
        })
        .await
        .expect("object store");

    let big = data(20 * 1024 * 1024 + 123);
    let info = store
        .put("videos/big.bin", &mut big.as_slice())
        .await
        .expect("put 20 MB");
    assert_eq!(info.size, big.len());
    assert_eq!(info.chunks, big.len().div_ceil(128 * 1024));
    assert_eq!(
        read_all(&store, "videos/big.bin").await,
        big,
        "same bytes back"
    );

    // Replacing an object purges the old chunks.
    let small = data(1000);
    store
        .put("videos/big.bin", &mut small.as_slice())
        .await
        .expect("replace");
    assert_eq!(read_all(&store, "videos/big.bin").await, small);
    let mut stream = js.get_stream("OBJ_files").await.expect("stream");
    let state = stream.info().await.expect("info").state.clone();
    assert_eq!(
        state.messages, 2,
        "one chunk and one metadata message remain"
    );
    let info = store.info("videos/big.bin").await.expect("info");
    assert_eq!(info.size, 1000);
}

#[tokio::test]
async fn list_delete_links_and_watch() {
    let server = TestServer::start().await;
    let js = jetstream::new(server.client().await);
    let store = js
        .create_object_store(object_store::Config {
            bucket: "docs".into(),
            ..Default::default()
        })
        .await
        .expect("object store");
    let mut watch = store.watch().await.expect("watch");

    for name in ["a.txt", "b.txt", "c.txt"] {
        store.put(name, &mut name.as_bytes()).await.expect("put");
    }
    store.put("a.txt", &mut &b"a again"[..]).await.expect("put");
    let seen = tokio::time::timeout(WAIT, watch.next())
        .await
        .expect("watch in time")
        .expect("open")
        .expect("info");
    assert_eq!(seen.name, "a.txt");

    store.delete("b.txt").await.expect("delete");
    assert!(
        store.get("b.txt").await.is_err(),
        "deleted objects are gone"
    );

    let c = store.info("c.txt").await.expect("info");
    let link = store.add_link("see-c", &c).await.expect("link");
    assert_eq!(
        link.options.and_then(|o| o.link).and_then(|l| l.name),
        Some("c.txt".to_owned())
    );
    assert_eq!(read_all(&store, "see-c").await, b"c.txt");

    let mut names: Vec<String> = store
        .list()
        .await
        .expect("list")
        .map(|i| i.expect("info").name)
        .collect()
        .await;
    names.sort();
    assert_eq!(names, vec!["a.txt", "c.txt", "see-c"], "each object once");
    assert_eq!(read_all(&store, "a.txt").await, b"a again");
}
