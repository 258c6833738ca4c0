//! Outbox tests: batching, limits, policies, staging.

use super::*;

fn frame(out: &Arc<Outbox>, bytes: &[u8]) -> Delivery {
    let mut ctx = DeliveryCtx::new();
    out.push_message(&mut ctx, bytes.len(), |w| w.put(bytes))
}

fn outbox(max: usize, policy: SlowConsumerPolicy) -> Arc<Outbox> {
    Arc::new(Outbox::new(max, policy))
}

#[tokio::test]
async fn the_writer_is_woken_once_per_batch() {
    let out = outbox(1024, SlowConsumerPolicy::Close);
    let mut ctx = DeliveryCtx::new();
    for _ in 0..10 {
        out.push_message(&mut ctx, 1, |w| w.put(b"x"));
    }
    assert_eq!(
        ctx.wake.len(),
        1,
        "only the empty-to-non-empty push records a wake"
    );
    ctx.wake_all();
    let mut batch = OutboxBatch::new();
    out.next_batch(&mut batch).await.expect("open");
    assert_eq!(batch.len(), 10);
}

#[tokio::test]
async fn batches_in_order_and_recycles() {
    let out = outbox(1024, SlowConsumerPolicy::Close);
    assert_eq!(frame(&out, b"one "), Delivery::Delivered);
    assert!(out.push_control(|b| b.put_slice(b"two ")));
    let big = Bytes::from(vec![b'x'; LARGE_PAYLOAD]);
    out.push_message(&mut DeliveryCtx::new(), 10, |w| {
        w.put(b"<");
        w.put_payload(&big);
        w.put(b">");
    });
    let mut batch = OutboxBatch::new();
    out.next_batch(&mut batch).await.expect("open");
    let joined: Vec<u8> = batch.slices().concat();
    assert_eq!(&joined[..9], b"one two <");
    assert_eq!(joined.len(), 10 + LARGE_PAYLOAD);
    assert_eq!(joined.last(), Some(&b'>'));
    assert!(batch.contiguous().is_none());
    batch.clear();
    out.close(CloseReason::Finished);
    assert_eq!(out.next_batch(&mut batch).await, Err(CloseReason::Finished));
}

#[tokio::test]
async fn finished_flushes_pending_first() {
    let out = outbox(1024, SlowConsumerPolicy::Close);
    frame(&out, b"last words");
    out.close(CloseReason::Finished);
    let mut batch = OutboxBatch::new();
    assert!(out.next_batch(&mut batch).await.is_ok());
    assert_eq!(batch.contiguous(), Some(&b"last words"[..]));
    batch.clear();
    assert!(out.next_batch(&mut batch).await.is_err());
    assert_eq!(frame(&out, b"late"), Delivery::Closed);
}

#[tokio::test]
async fn slow_consumer_close_drops_pending() {
    let out = outbox(8, SlowConsumerPolicy::Close);
    assert_eq!(frame(&out, b"12345"), Delivery::Delivered);
    assert_eq!(frame(&out, b"67890"), Delivery::Closed);
    assert_eq!(out.closed(), Some(CloseReason::SlowConsumer));
    let mut batch = OutboxBatch::new();
    assert_eq!(
        out.next_batch(&mut batch).await,
        Err(CloseReason::SlowConsumer)
    );
}

#[test]
fn slow_consumer_drop_newest_counts() {
    let out = outbox(8, SlowConsumerPolicy::DropNewest);
    assert_eq!(frame(&out, b"12345"), Delivery::Delivered);
    assert_eq!(frame(&out, b"67890"), Delivery::Dropped);
    assert_eq!(frame(&out, b"abcde"), Delivery::Dropped);
    assert_eq!(out.dropped(), 2);
    assert_eq!(out.pending_bytes(), 5);
    assert_eq!(out.closed(), None);
}

#[tokio::test]
async fn congestion_is_reported_and_cleared_by_the_writer() {
    let out = outbox(100, SlowConsumerPolicy::Close);
    let mut ctx = DeliveryCtx::new();
    out.push_message(&mut ctx, 70, |w| w.put(&[b'x'; 70]));
    assert!(ctx.take_congested().is_empty());
    out.push_message(&mut ctx, 10, |w| w.put(&[b'y'; 10]));
    assert_eq!(ctx.take_congested().len(), 1);
    let waiter = tokio::spawn({
        let out = out.clone();
        async move { out.wait_for_room().await }
    });
    tokio::task::yield_now().await;
    let mut batch = OutboxBatch::new();
    out.next_batch(&mut batch).await.expect("open");
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "taken is not yet written");
    out.wrote(batch.len());
    waiter
        .await
        .expect("the waiter is released once the writer wrote the batch");
}

#[tokio::test(start_paused = true)]
async fn a_stuck_writer_holds_no_publisher_up() {
    let out = outbox(100, SlowConsumerPolicy::Close);
    let mut ctx = DeliveryCtx::new();
    out.push_message(&mut ctx, 80, |w| w.put(&[b'x'; 80]));
    assert_eq!(ctx.take_congested().len(), 1);
    let mut batch = OutboxBatch::new();
    out.next_batch(&mut batch).await.expect("open");
    // The writer took 80 bytes and its socket takes nothing.
    let waiter = tokio::spawn({
        let out = out.clone();
        async move { out.wait_for_room().await }
    });
    tokio::time::advance(STUCK_AFTER / 2).await;
    assert!(!waiter.is_finished(), "not stuck yet: publishers wait");
    assert!(!out.is_stuck());
    tokio::time::advance(STUCK_AFTER).await;
    waiter.await.expect("a stuck writer releases its waiters");
    assert!(out.is_stuck());
    // Its publishers are not told to wait any more, and what is in flight
    // counts toward the limit: 15 more bytes fit, 6 more do not.
    assert_eq!(frame(&out, &[b'y'; 5]), Delivery::Delivered);
    out.push_message(&mut ctx, 10, |w| w.put(&[b'z'; 10]));
    assert!(ctx.take_congested().is_empty(), "stuck is not congested");
    assert_eq!(out.pending_bytes(), 80 + 5 + 10);
    assert_eq!(frame(&out, &[b'w'; 6]), Delivery::Closed);
    assert_eq!(out.closed(), Some(CloseReason::SlowConsumer));
}

#[tokio::test(start_paused = true)]
async fn progress_clears_stuck() {
    let out = outbox(100, SlowConsumerPolicy::Close);
    assert_eq!(frame(&out, &[b'x'; 80]), Delivery::Delivered);
    let mut batch = OutboxBatch::new();
    out.next_batch(&mut batch).await.expect("open");
    tokio::time::advance(STUCK_AFTER * 2).await;
    assert!(out.is_stuck());
    out.wrote(1);
    assert!(!out.is_stuck(), "a byte written is progress");
    out.wrote(batch.len() - 1);
    assert_eq!(out.pending_bytes(), 0);
}

#[test]
fn the_write_deadline_applies_the_policy() {
    let closing = outbox(100, SlowConsumerPolicy::Close);
    assert!(closing.write_timed_out(), "close: the writer stops");
    assert_eq!(closing.closed(), Some(CloseReason::SlowConsumer));

    let dropping = outbox(100, SlowConsumerPolicy::DropNewest);
    assert!(!dropping.write_timed_out(), "drop-newest: the client stays");
    assert_eq!(frame(&dropping, b"a"), Delivery::Dropped);
    let mut ctx = DeliveryCtx::staging();
    assert_eq!(
        dropping.push_message(&mut ctx, 1, |w| w.put(b"b")),
        Delivery::Dropped,
        "staged pushes are dropped too"
    );
    assert_eq!(dropping.dropped(), 2);
    dropping.wrote(1);
    assert_eq!(
        frame(&dropping, b"c"),
        Delivery::Delivered,
        "it reads again"
    );
    assert!(dropping.closed().is_none());
}

#[tokio::test(start_paused = true)]
async fn soft_limit_closes_after_its_window() {
    let soft = SoftLimit {
        bytes: 10,
        window: Duration::from_secs(60),
    };
    let out = Arc::new(Outbox::new(1000, SlowConsumerPolicy::Close).with_soft_limit(soft));
    assert_eq!(frame(&out, &[b'x'; 12]), Delivery::Delivered);
    assert!(!out.check_soft_limit());
    tokio::time::advance(Duration::from_secs(30)).await;
    assert!(!out.check_soft_limit(), "not yet past the window");
    // Draining below the soft limit resets the clock.
    let mut batch = OutboxBatch::new();
    out.next_batch(&mut batch).await.expect("open");
    assert!(!out.check_soft_limit());
    assert_eq!(frame(&out, &[b'y'; 12]), Delivery::Delivered);
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(out.check_soft_limit());
    assert_eq!(out.closed(), Some(CloseReason::SlowConsumer));
}

#[test]
fn unread_replies_are_bounded_too() {
    let out = outbox(8, SlowConsumerPolicy::Close);
    let mut accepted = 0;
    while out.push_control(|b| b.put_slice(b"+PONG\r\n")) {
        accepted += 1;
        assert!(accepted < 100, "control output must be bounded");
    }
    assert_eq!(out.closed(), Some(CloseReason::SlowConsumer));
}

#[test]
fn a_single_oversized_frame_into_an_empty_outbox_is_accepted() {
    // One message larger than the limit must still be deliverable, or a
    // subscriber could never receive it at all.
    let out = outbox(4, SlowConsumerPolicy::Close);
    assert_eq!(frame(&out, b"0123456789"), Delivery::Delivered);
    assert_eq!(out.pending_bytes(), 10);
}

async fn take_all(out: &Outbox) -> Vec<u8> {
    let mut batch = OutboxBatch::new();
    out.next_batch(&mut batch).await.expect("open");
    batch.slices().concat()
}

#[tokio::test]
async fn staged_frames_arrive_at_flush_in_order_after_earlier_output() {
    let out = outbox(1024, SlowConsumerPolicy::Close);
    assert!(out.push_control(|b| b.put_slice(b"first ")));
    let mut ctx = DeliveryCtx::staging();
    for word in [&b"a "[..], b"b ", b"c "] {
        assert_eq!(
            out.push_message(&mut ctx, word.len(), |w| w.put(word)),
            Delivery::Delivered
        );
    }
    assert_eq!(out.pending_bytes(), 6, "staged frames wait for the flush");
    ctx.flush();
    assert!(out.push_control(|b| b.put_slice(b"last")));
    assert_eq!(take_all(&out).await, b"first a b c last");
}

#[tokio::test]
async fn a_staged_batch_into_an_empty_outbox_is_handed_over_whole() {
    let out = outbox(1 << 20, SlowConsumerPolicy::Close);
    let big = Bytes::from(vec![b'x'; LARGE_PAYLOAD]);
    let mut ctx = DeliveryCtx::staging();
    out.push_message(&mut ctx, 2, |w| w.put(b"<1"));
    out.push_message(&mut ctx, big.len(), |w| w.put_payload(&big));
    out.push_message(&mut ctx, 2, |w| w.put(b">1"));
    ctx.flush();
    // A second staged batch is appended after the first, chunk offsets moved.
    out.push_message(&mut ctx, 2, |w| w.put(b"<2"));
    out.push_message(&mut ctx, big.len(), |w| w.put_payload(&big));
    out.push_message(&mut ctx, 2, |w| w.put(b">2"));
    drop(ctx);
    let wire = take_all(&out).await;
    let mut expected = b"<1".to_vec();
    expected.extend_from_slice(&big);
    expected.extend_from_slice(b">1<2");
    expected.extend_from_slice(&big);
    expected.extend_from_slice(b">2");
    assert_eq!(wire, expected);
}

#[tokio::test]
async fn staging_to_many_outboxes_keeps_each_in_order() {
    let outs: Vec<_> = (0..20)
        .map(|_| outbox(1024, SlowConsumerPolicy::Close))
        .collect();
    let mut ctx = DeliveryCtx::staging();
    for round in 0..3u8 {
        for out in &outs {
            out.push_message(&mut ctx, 1, |w| w.put(&[b'0' + round]));
        }
    }
    ctx.flush();
    for out in &outs {
        assert_eq!(take_all(out).await, b"012");
    }
}

#[test]
fn staged_output_counts_against_the_limit() {
    let out = outbox(8, SlowConsumerPolicy::DropNewest);
    let mut ctx = DeliveryCtx::staging();
    assert_eq!(
        out.push_message(&mut ctx, 5, |w| w.put(b"12345")),
        Delivery::Delivered
    );
    assert_eq!(
        out.push_message(&mut ctx, 5, |w| w.put(b"67890")),
        Delivery::Dropped,
        "5 staged + 5 more is over 8"
    );
    ctx.flush();
    assert_eq!(out.pending_bytes(), 5);
    assert_eq!(out.dropped(), 1);

    let out = outbox(8, SlowConsumerPolicy::Close);
    assert_eq!(
        out.push_message(&mut ctx, 5, |w| w.put(b"12345")),
        Delivery::Delivered
    );
    assert_eq!(
        out.push_message(&mut ctx, 5, |w| w.put(b"67890")),
        Delivery::Closed
    );
    assert_eq!(out.closed(), Some(CloseReason::SlowConsumer));
    assert_eq!(
        out.push_message(&mut ctx, 1, |w| w.put(b"x")),
        Delivery::Closed,
        "a closed outbox refuses staging too"
    );
}

#[test]
fn a_large_staged_batch_is_handed_over_before_the_flush() {
    let out = outbox(1 << 20, SlowConsumerPolicy::Close);
    let mut ctx = DeliveryCtx::staging();
    let chunk = [b'x'; 1024];
    for _ in 0..(staging::STAGE_LIMIT / chunk.len()) {
        out.push_message(&mut ctx, chunk.len(), |w| w.put(&chunk));
    }
    assert_eq!(out.pending_bytes(), staging::STAGE_LIMIT);
    out.push_message(&mut ctx, chunk.len(), |w| w.put(&chunk));
    assert_eq!(out.pending_bytes(), staging::STAGE_LIMIT);
    ctx.flush();
    assert_eq!(out.pending_bytes(), staging::STAGE_LIMIT + chunk.len());
}

#[test]
fn congestion_from_staged_output_is_reported_at_the_flush() {
    let out = outbox(100, SlowConsumerPolicy::Close);
    let mut ctx = DeliveryCtx::staging();
    out.push_message(&mut ctx, 80, |w| w.put(&[b'x'; 80]));
    assert!(ctx.take_congested().is_empty(), "nothing handed over yet");
    ctx.flush();
    assert_eq!(ctx.take_congested().len(), 1);
}
