//! NATS codec benchmarks: the broker's hot paths.
//!
//! - `nats_parse/pub_16b_x1000`: `parse_client` over one buffer of 1000 `PUB foo.bar 16` frames,
//!   as a listener sees a burst from a fast publisher.
//! - `nats_encode/msg_16b_x1000`: `encode_msg` 1000 times into a reused buffer, as fan-out does
//!   once per receiving subscription.
//!
//! - `resp_parse/publish_x1000`: `parse_request` over one buffer of 1000 pipelined multibulk
//!   `PUBLISH ch msg` requests, as `redis-benchmark -P 16 PUBLISH ch msg` sends them (and the
//!   same through one kept `RequestParser`).
//! - `resp_encode/message_push_x1000`: `message_push` 1000 times into a reused buffer, RESP2
//!   and RESP3, as fan-out does once per receiving subscription.
//!
//! Run with `cargo bench -p herald-protocol --bench parse`.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use herald_protocol::Limits;
use herald_protocol::nats::{encode_msg, parse_client};
use herald_protocol::resp::{
    Proto, RequestParser, RespLimits, encode_request, message_push, parse_request,
};

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

fn parse_publishes(c: &mut Criterion) {
    let mut input = BytesMut::new();
    for _ in 0..FRAMES {
        encode_request(&mut input, &[&b"PUBLISH"[..], b"ch", b"msg"]);
    }
    let limits = RespLimits::default();
    let mut group = c.benchmark_group("resp_parse");
    group.throughput(Throughput::Elements(FRAMES as u64));
    group.bench_function("publish_x1000", |b| {
        b.iter_batched_ref(
            || input.clone(),
            |buf| {
                let mut requests = 0;
                while let Some(request) = parse_request(buf, &limits, true).expect("valid") {
                    black_box(request);
                    requests += 1;
                }
                assert_eq!(requests, FRAMES);
            },
            BatchSize::SmallInput,
        );
    });
    let mut parser = RequestParser::new();
    group.bench_function("publish_x1000_kept_parser", |b| {
        b.iter_batched_ref(
            || input.clone(),
            |buf| {
                let mut requests = 0;
                while let Some(request) = parser.parse(buf, &limits, true).expect("valid") {
                    black_box(request);
                    requests += 1;
                }
                assert_eq!(requests, FRAMES);
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn encode_message_pushes(c: &mut Criterion) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut group = c.benchmark_group("resp_encode");
    group.throughput(Throughput::Elements(FRAMES as u64));
    for (name, proto) in [
        ("message_push_resp2_x1000", Proto::Resp2),
        ("message_push_resp3_x1000", Proto::Resp3),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                buf.clear();
                for _ in 0..FRAMES {
                    message_push(&mut buf, proto, black_box(b"foo.bar"), black_box(PAYLOAD));
                }
                black_box(&buf);
            });
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    parse_pubs,
    encode_msgs,
    parse_publishes,
    encode_message_pushes
);
criterion_main!(benches);
