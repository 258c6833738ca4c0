//! Latency histograms for metrics: how long deliveries wait in a client's
//! outbox, stream appends and fsyncs take, and consumers take to ack.
//! Lock-free, fixed power-of-two buckets (1 µs … ~67 s), so recording is
//! three relaxed atomic adds; the server exposes them as Prometheus
//! histograms.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets: upper bounds of 2^0 … 2^26 microseconds; anything longer
/// counts only in the total (Prometheus's `+Inf`).
pub const BUCKETS: usize = 27;

/// One histogram of durations.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; BUCKETS],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

/// A histogram's counts at one moment, as Prometheus wants them.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Sum of every recorded duration, in seconds.
    pub sum_secs: f64,
    /// How many were recorded.
    pub count: u64,
    /// (upper bound in seconds, how many were at or below it), cumulative.
    pub buckets: Vec<(f64, u64)>,
}

impl LatencyHistogram {
    /// Records one duration.
    pub fn record(&self, duration: Duration) {
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        // The first bucket whose bound 2^i µs holds it: ceil(log2(micros)).
        let bucket = match micros {
            0 | 1 => 0,
            n => (u64::BITS - (n - 1).leading_zeros()) as usize,
        };
        if let Some(slot) = self.buckets.get(bucket) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far, at every other bound (1 µs, 4 µs, 16 µs, …, ~67 s:
    /// 14 buckets are plenty for quantiles, and cost a scraper half).
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(BUCKETS / 2 + 1);
        for (i, slot) in self.buckets.iter().enumerate() {
            cumulative += slot.load(Ordering::Relaxed);
            if i % 2 == 0 {
                buckets.push(((1u64 << i) as f64 / 1e6, cumulative));
            }
        }
        HistogramSnapshot {
            sum_secs: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            // At least every bucket's count, should a record be half done.
            count: self.count.load(Ordering::Relaxed).max(cumulative),
            buckets,
        }
    }
}

/// The histograms a broker and its store keep.
#[derive(Debug, Default)]
pub struct Timings {
    /// From a delivery entering a client's empty outbox to the write of
    /// the batch it is in (sampled: one in [`DELIVERY_SAMPLE`] such batches
    /// per outbox). Routing happens inside the publish call, so this is
    /// the part of publish-to-delivery latency that varies: the queue.
    pub delivery: LatencyHistogram,
    /// One stream write: the records of a batch of publishes appended to
    /// the log (the write call, before any fsync).
    pub stream_append: LatencyHistogram,
    /// One fsync of a stream's active segment.
    pub stream_fsync: LatencyHistogram,
    /// From a message's delivery to a consumer to its ack.
    pub consumer_ack: LatencyHistogram,
}

/// One outbox batch in this many is timed for [`Timings::delivery`].
pub const DELIVERY_SAMPLE: u8 = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_power_of_two_buckets() {
        let h = LatencyHistogram::default();
        h.record(Duration::from_nanos(500));
        h.record(Duration::from_micros(1));
        h.record(Duration::from_micros(3));
        h.record(Duration::from_micros(4));
        h.record(Duration::from_millis(1));
        h.record(Duration::from_secs(3600));
        let s = h.snapshot();
        assert_eq!(s.count, 6);
        assert_eq!(s.buckets.len(), 14);
        assert_eq!(s.buckets[0], (1e-6, 2), "≤ 1 µs");
        assert_eq!(s.buckets[1], (4e-6, 4), "3 and 4 µs are ≤ 4 µs");
        // 1 ms = 1000 µs: above 256 µs (2^8), at most 1024 µs (2^10).
        assert_eq!(s.buckets[4].1, 4);
        assert_eq!(s.buckets[5], (1.024e-3, 5));
        assert_eq!(
            s.buckets[13],
            (67.108864, 5),
            "an hour is past the last bound"
        );
        assert!(
            (s.sum_secs - 3_600.001_008_5).abs() < 1e-6,
            "{}",
            s.sum_secs
        );
    }
}
