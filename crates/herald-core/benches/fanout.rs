//! In-process fan-out: one publish delivered to 10 subscribers, through
//! in-process subscriptions and through connection outboxes (what listeners use).

use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::{FutureExt, StreamExt};
use herald_core::{
    Broker, Delivery, DeliveryCtx, Message, Outbox, OutboxBatch, Pattern, Sink, SlowConsumerPolicy,
    Subject, SubscribeSpec, Subscriber,
};

const BATCH: u64 = 1000;

/// A connection-like sink: writes a small frame per message into an outbox.
struct FrameSink(Arc<Outbox>);

impl Sink for FrameSink {
    fn deliver(&self, sub: &Subscriber, msg: &Message, ctx: &mut DeliveryCtx) -> Delivery {
        self.0.push_message(ctx, msg.payload.len() + 32, |w| {
            w.put(b"MSG ");
            w.put(msg.subject.as_bytes());
            w.put(b" ");
            w.put(sub.tag());
            w.put(b"\r\n");
            w.put_payload(&msg.payload);
            w.put(b"\r\n");
        })
    }
}

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout_10");
    group.throughput(Throughput::Elements(BATCH * 10));
    let payload = Bytes::from_static(b"0123456789abcdef");
    let subject = Subject::new("bench.fanout").expect("subject");
    let msg = Message::new(subject, payload);

    let broker = Broker::new();
    let mut subs: Vec<_> = (0..10)
        .map(|_| broker.subscribe("bench.fanout").expect("subscribe"))
        .collect();
    let mut publisher = broker.publisher(broker.new_conn_id());
    group.bench_function("in_process_16B", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                publisher.publish(&msg);
            }
            for sub in &mut subs {
                while let Some(Some(_)) = sub.next().now_or_never() {}
            }
        });
    });

    let broker = Broker::new();
    let pattern = Pattern::new("bench.fanout").expect("pattern");
    let outboxes: Vec<Arc<Outbox>> = (0..10)
        .map(|i| {
            let outbox = Arc::new(Outbox::new(64 << 20, SlowConsumerPolicy::Close));
            let mut spec = SubscribeSpec::new(pattern.clone(), broker.new_conn_id());
            spec.tag = Bytes::from(i.to_string());
            broker.subscribe_sink(spec, Arc::new(FrameSink(outbox.clone())));
            outbox
        })
        .collect();
    let mut publisher = broker.publisher(broker.new_conn_id());
    let mut batch = OutboxBatch::new();
    group.bench_function("outbox_frames_16B", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                publisher.publish(&msg);
            }
            publisher.finish_batch();
            for outbox in &outboxes {
                if outbox.next_batch(&mut batch).now_or_never().is_some() {
                    batch.clear();
                }
            }
        });
    });
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
