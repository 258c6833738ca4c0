//! NATS codec benchmarks: the broker's hot paths.
//!
//! - `nats_parse/pub_16b_x1000`: `parse_client` over one buffer of 1000 `PUB foo.bar 16` frames,
//!   as a listener sees a burst from a fast publisher.
//! - `nats_encode/msg_16b_x1000`: `encode_msg` 1000 times into a reused buffer, as fan-out does
//!   once per receiving subscription.
//!
//! Run with `cargo bench -p herald-protocol --bench parse`.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use herald_protocol::Limits;
use herald_protocol::nats::{encode_msg, parse_client};

const FRAMES: usize = 1000;
const PAYLOAD: &[u8; 16] = b"0123456789abcdef";

fn parse_pubs(c: &mut Criterion) {
    let mut input = BytesMut::new();
    for _ in 0..FRAMES {
        input.extend_from_slice(b"PUB foo.bar 16\r\n");
        input.extend_from_slice(PAYLOAD);
        input.extend_from_slice(b"\r\n");
    }
    let limits = Limits::default();
    let mut group = c.benchmark_group("nats_parse");
    group.throughput(Throughput::Elements(FRAMES as u64));
    group.bench_function("pub_16b_x1000", |b| {
        b.iter_batched_ref(
            || input.clone(),
            |buf| {
                let mut frames = 0;
                while let Some(op) = parse_client(buf, &limits).expect("valid frames") {
                    black_box(op);
                    frames += 1;
                }
                assert_eq!(frames, FRAMES);
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn encode_msgs(c: &mut Criterion) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut group = c.benchmark_group("nats_encode");
    group.throughput(Throughput::Elements(FRAMES as u64));
    group.bench_function("msg_16b_x1000", |b| {
        b.iter(|| {
            buf.clear();
            for _ in 0..FRAMES {
                encode_msg(
                    &mut buf,
                    black_box(b"foo.bar"),
                    black_box(b"17"),
                    None,
                    black_box(PAYLOAD),
                );
            }
            black_box(&buf);
        });
    });
    group.finish();
}

criterion_group!(benches, parse_pubs, encode_msgs);
criterion_main!(benches);
