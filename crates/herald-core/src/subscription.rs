//! In-process subscriptions: a bounded queue of [`Message`]s read as a
//! [`futures::Stream`].
//!
//! The queue is the subscription's [`Sink`]: delivery pushes a clone of the
//! message (reference counts only, the payload is shared) and wakes the task
//! polling the stream. Dropping the [`Subscription`] removes it from the
//! broker, so no task or index entry outlives its owner.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::Stream;
use futures::task::AtomicWaker;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::broker::Broker;
use crate::error::Error;
use crate::message::Message;
use crate::sink::{
    CloseReason, Delivery, DeliveryCtx, PendingLimits, Sink, SlowConsumerPolicy, Subscriber,
};
use crate::subject::Pattern;

#[derive(Debug, Default)]
struct QueueState {
    items: VecDeque<Message>,
    bytes: usize,
    closed: Option<CloseReason>,
    /// Messages ever enqueued and ever taken: `flush` waits on these.
    enqueued: u64,
    taken: u64,
}

/// The bounded message queue behind a [`Subscription`].
#[derive(Debug)]
pub(crate) struct MessageQueue {
    state: Mutex<QueueState>,
    waker: AtomicWaker,
    limits: PendingLimits,
    policy: SlowConsumerPolicy,
    dropped: AtomicU64,
    /// Set while someone waits in `Broker::flush`, so takes notify only then.
    flush_waiting: AtomicBool,
    taken_notify: Notify,
}

impl MessageQueue {
    pub(crate) fn new(limits: PendingLimits, policy: SlowConsumerPolicy) -> Self {
        Self {
            state: Mutex::new(QueueState::default()),
            waker: AtomicWaker::new(),
            limits,
            policy,
            dropped: AtomicU64::new(0),
            flush_waiting: AtomicBool::new(false),
            taken_notify: Notify::new(),
        }
    }

    pub(crate) fn close(&self, reason: CloseReason) {
        let mut state = self.state.lock();
        if state.closed.is_none() {
            state.closed = Some(reason);
        }
        drop(state);
        self.waker.wake();
        self.taken_notify.notify_waiters();
    }

    /// Waits until every message enqueued before the call has been taken, or
    /// the queue closed.
    pub(crate) async fn wait_drained(&self) {
        let target = self.state.lock().enqueued;
        loop {
            let notified = self.taken_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.flush_waiting.store(true, Ordering::SeqCst);
            {
                let state = self.state.lock();
                if state.taken >= target || state.closed.is_some() {
                    return;
                }
            }
            notified.await;
        }
    }

    fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let taken = {
            let mut state = self.state.lock();
            match state.items.pop_front() {
                Some(msg) => {
                    state.bytes -= msg.size();
                    state.taken += 1;
                    Some(msg)
                }
                None if state.closed.is_some() => return Poll::Ready(None),
                None => None,
            }
        };
        match taken {
            Some(msg) => {
                if self.flush_waiting.load(Ordering::SeqCst) {
                    self.taken_notify.notify_waiters();
                }
                Poll::Ready(Some(msg))
            }
            None => {
                self.waker.register(cx.waker());
                // A message may have arrived between the check and the register.
                let state = self.state.lock();
                if state.items.is_empty() && state.closed.is_none() {
                    Poll::Pending
                } else {
                    drop(state);
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            }
        }
    }
}

impl Sink for MessageQueue {
    fn deliver(&self, _sub: &Subscriber, msg: &Message, _ctx: &mut DeliveryCtx) -> Delivery {
        let size = msg.size();
        let mut state = self.state.lock();
        if state.closed.is_some() {
            return Delivery::Closed;
        }
        let over_count =
            self.limits.max_messages > 0 && state.items.len() >= self.limits.max_messages;
        let over_bytes = state.bytes + size > self.limits.max_bytes && !state.items.is_empty();
        if over_count || over_bytes {
            let delivery = self.policy.overflow(&self.dropped, &mut state.closed);
            drop(state);
            if delivery == Delivery::Closed {
                self.waker.wake();
            }
            return delivery;
        }
        state.items.push_back(msg.clone());
        state.bytes += size;
        state.enqueued += 1;
        drop(state);
        self.waker.wake();
        Delivery::Delivered
    }

    fn on_removed(&self, _sub: &Subscriber) {
        self.close(CloseReason::Unsubscribed);
    }
}

/// A subscription held by Rust code: a stream of [`Message`]s.
///
/// The stream ends when the subscription is closed: unsubscribed, its
/// message limit reached, or closed as a slow consumer (see
/// [`Subscription::close_reason`]). Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    pub(crate) queue: Arc<MessageQueue>,
    pub(crate) sub: Arc<Subscriber>,
    pub(crate) broker: Broker,
    pub(crate) pattern: Pattern,
}

impl Subscription {
    /// The pattern this subscription matches.
    pub fn pattern(&self) -> &Pattern {
        &self.pattern
    }

    /// Removes the subscription after `n` messages in total (counting those
    /// already delivered); if that many were delivered already it ends now.
    pub fn unsubscribe_after(&self, n: u64) {
        self.broker.unsubscribe_after(&self.sub, n);
    }

    /// Unsubscribes now; messages already queued can still be read.
    pub fn unsubscribe(&self) {
        self.broker.remove_subscriber(&self.sub);
        self.queue.close(CloseReason::Unsubscribed);
    }

    /// Messages dropped because the queue was full (drop-newest policy).
    pub fn dropped(&self) -> u64 {
        self.queue.dropped.load(Ordering::Relaxed)
    }

    /// Messages waiting to be read.
    pub fn pending(&self) -> usize {
        self.queue.state.lock().items.len()
    }

    /// Why the subscription was closed, if it was.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.queue.state.lock().closed
    }

    /// Reads the messages as JSON values of type `T`.
    pub fn json<T: DeserializeOwned>(self) -> JsonSubscription<T> {
        JsonSubscription {
            inner: self,
            _type: PhantomData,
        }
    }
}

impl Stream for Subscription {
    type Item = Message;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.queue.poll_take(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.broker.remove_subscriber(&self.sub);
        self.queue.close(CloseReason::Unsubscribed);
    }
}

/// A [`Subscription`] whose payloads are decoded from JSON.
///
/// Each item is the decoded value with its message, or the decode error (the
/// stream goes on after a message that does not decode).
#[derive(Debug)]
pub struct JsonSubscription<T> {
    inner: Subscription,
    _type: PhantomData<fn() -> T>,
}

impl<T> JsonSubscription<T> {
    /// The underlying subscription.
    pub fn inner(&self) -> &Subscription {
        &self.inner
    }
}

impl<T: DeserializeOwned> Stream for JsonSubscription<T> {
    type Item = Result<(T, Message), Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.queue.poll_take(cx).map(|next| {
            next.map(|msg| match serde_json::from_slice(&msg.payload) {
                Ok(value) => Ok((value, msg)),
                Err(source) => Err(Error::Json {
                    subject: msg.subject.to_string(),
                    source: Arc::new(source),
                }),
            })
        })
    }
}
