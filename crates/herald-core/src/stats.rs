//! Broker-wide counters, read by the metrics endpoint and the dashboard.

use std::sync::atomic::{AtomicU64, Ordering};

/// Running totals since the broker started. Updated once per publish (not
/// once per receiver) to keep the hot path's shared-cache traffic low.
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) msgs_in: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) msgs_out: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) slow_consumers: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) stalls: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    /// Messages published.
    pub msgs_in: u64,
    /// Payload bytes published.
    pub bytes_in: u64,
    /// Messages delivered (one per receiver).
    pub msgs_out: u64,
    /// Payload bytes delivered.
    pub bytes_out: u64,
    /// Subscribers closed for falling behind.
    pub slow_consumers: u64,
    /// Messages dropped by the drop-newest policy.
    pub dropped: u64,
    /// Times a publishing connection waited for congested receivers.
    pub stalls: u64,
    /// Subscriptions now in the index.
    pub subscriptions: u64,
}

impl Stats {
    pub(crate) fn add(&self, counts: PublishCounts) {
        if counts.msgs_in == 0 {
            return;
        }
        self.msgs_in.fetch_add(counts.msgs_in, Ordering::Relaxed);
        self.bytes_in.fetch_add(counts.bytes_in, Ordering::Relaxed);
        self.msgs_out.fetch_add(counts.msgs_out, Ordering::Relaxed);
        self.bytes_out
            .fetch_add(counts.bytes_out, Ordering::Relaxed);
    }

    pub(crate) fn record_publish(&self, payload: usize, receivers: usize) {
        self.msgs_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(payload as u64, Ordering::Relaxed);
        if receivers > 0 {
            self.msgs_out.fetch_add(receivers as u64, Ordering::Relaxed);
            self.bytes_out
                .fetch_add((payload * receivers) as u64, Ordering::Relaxed);
        }
    }

    /// Counts deliveries of a message another node published (its publish
    /// is counted there, not here).
    pub(crate) fn record_routed(&self, payload: usize, receivers: usize) {
        if receivers > 0 {
            self.msgs_out.fetch_add(receivers as u64, Ordering::Relaxed);
            self.bytes_out
                .fetch_add((payload * receivers) as u64, Ordering::Relaxed);
        }
    }

    /// Counts one subscriber closed as a slow consumer.
    pub fn record_slow_consumer(&self) {
        self.slow_consumers.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_stall(&self) {
        self.stalls.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, subscriptions: usize) -> StatsSnapshot {
        StatsSnapshot {
            msgs_in: self.msgs_in.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            msgs_out: self.msgs_out.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            slow_consumers: self.slow_consumers.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            stalls: self.stalls.load(Ordering::Relaxed),
            subscriptions: subscriptions as u64,
        }
    }
}

/// Counters one publisher accumulates before adding them to [`Stats`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PublishCounts {
    msgs_in: u64,
    bytes_in: u64,
    msgs_out: u64,
    bytes_out: u64,
}

impl PublishCounts {
    pub(crate) fn add(&mut self, payload: usize, receivers: usize) {
        self.msgs_in += 1;
        self.bytes_in += payload as u64;
        self.msgs_out += receivers as u64;
        self.bytes_out += (payload * receivers) as u64;
    }
}
