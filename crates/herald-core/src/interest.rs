//! Waiting for a subject to gain a subscriber.
//!
//! A JetStream push consumer delivers only while someone listens on its
//! deliver subject, and clients subscribe to it after the consumer exists.
//! Rather than poll, the consumer registers here and is woken by the
//! subscribe that gives the subject interest.

use std::sync::Weak;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::sink::Interest;
use crate::subject::Subject;

/// Something woken (once) when a subject gains a subscriber.
pub trait InterestWaiter: Send + Sync {
    /// The subject it waited for has a subscriber now (or may have: a
    /// waiter re-checks).
    fn interest(&self);
}

/// Registered waiters; subscribing costs one atomic load while there are none.
#[derive(Default)]
pub(crate) struct InterestWaiters {
    count: AtomicUsize,
    waiting: Mutex<Vec<(Subject, Weak<dyn InterestWaiter>)>>,
}

impl InterestWaiters {
    /// Wakes `waiter` once when `subject` gains a subscriber.
    pub(crate) fn add(&self, subject: Subject, waiter: Weak<dyn InterestWaiter>) {
        let mut waiting = self.waiting.lock();
        // Dead waiters go here too, so the list stays as long as the live ones.
        waiting.retain(|(_, w)| w.strong_count() > 0);
        waiting.push((subject, waiter));
        self.count.store(waiting.len(), Ordering::Release);
    }

    /// A subscription with `interest` was added: wakes the waiters it serves.
    pub(crate) fn subscribed(&self, interest: &Interest) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut woken = Vec::new();
        {
            let mut waiting = self.waiting.lock();
            waiting.retain(|(subject, waiter)| {
                let served = interest.matches(subject);
                if served {
                    woken.push(waiter.clone());
                }
                !served && waiter.strong_count() > 0
            });
            self.count.store(waiting.len(), Ordering::Release);
        }
        // Woken outside the lock: a waiter may register again at once.
        for waiter in woken.iter().filter_map(Weak::upgrade) {
            waiter.interest();
        }
    }
}
