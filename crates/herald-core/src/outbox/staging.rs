//! Output a publisher has encoded for other connections but not yet handed
//! to their outboxes.
//!
//! A connection that publishes a read's worth of frames would otherwise take
//! each receiver's outbox lock once per message, bouncing that lock's cache
//! line between its own core and the receiver's writer. A staging
//! [`DeliveryCtx`](crate::DeliveryCtx) instead encodes into a private batch
//! per receiving outbox and hands each batch over under one lock at the end
//! of the read (or once it has grown to [`STAGE_LIMIT`]). Per receiver the
//! order of messages is kept; only the moment they become visible to its
//! writer moves to the end of the publisher's batch, which is when the
//! writers were woken anyway.

use std::sync::Arc;

use ahash::AHashMap;

use super::{Outbox, OutboxBatch};

/// A staged batch this large is handed over at once instead of growing.
pub(crate) const STAGE_LIMIT: usize = 64 * 1024;

/// Up to this many receivers are found by a linear scan; past it, by a map.
const LINEAR_SLOTS: usize = 8;

/// Emptied batches kept for reuse.
const SPARE_BATCHES: usize = 16;

/// One receiving outbox and what is staged for it.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) batch: OutboxBatch,
}

/// The staged output of one publisher, by receiving outbox.
#[derive(Debug, Default)]
pub(crate) struct Staging {
    slots: Vec<Slot>,
    /// The slot used last: a publisher mostly feeds the same receivers in turn.
    last: usize,
    /// Slot index by outbox address, once there are more than [`LINEAR_SLOTS`].
    by_outbox: AHashMap<usize, usize>,
    spare: Vec<OutboxBatch>,
}

fn address(outbox: &Arc<Outbox>) -> usize {
    Arc::as_ptr(outbox) as usize
}

impl Staging {
    /// The index of `outbox`'s slot, created empty if it has none.
    pub(crate) fn slot(&mut self, outbox: &Arc<Outbox>) -> usize {
        if self
            .slots
            .get(self.last)
            .is_some_and(|slot| Arc::ptr_eq(&slot.outbox, outbox))
        {
            return self.last;
        }
        let found = if self.slots.len() <= LINEAR_SLOTS {
            self.slots
                .iter()
                .position(|slot| Arc::ptr_eq(&slot.outbox, outbox))
        } else {
            self.by_outbox.get(&address(outbox)).copied()
        };
        let index = found.unwrap_or_else(|| self.add(outbox));
        self.last = index;
        index
    }

    fn add(&mut self, outbox: &Arc<Outbox>) -> usize {
        let index = self.slots.len();
        self.slots.push(Slot {
            outbox: outbox.clone(),
            batch: self.spare.pop().unwrap_or_default(),
        });
        if self.slots.len() == LINEAR_SLOTS + 1 {
            self.by_outbox = self
                .slots
                .iter()
                .enumerate()
                .map(|(i, slot)| (address(&slot.outbox), i))
                .collect();
        } else if self.slots.len() > LINEAR_SLOTS {
            self.by_outbox.insert(address(outbox), index);
        }
        index
    }

    /// The slot at `index` (from [`Staging::slot`]).
    pub(crate) fn get(&mut self, index: usize) -> &mut Slot {
        &mut self.slots[index]
    }

    /// Whether nothing is staged.
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Takes every slot out, for handing over; give the emptied batches back
    /// with [`Staging::recycle`].
    pub(crate) fn take(&mut self) -> Vec<Slot> {
        self.last = 0;
        self.by_outbox.clear();
        std::mem::take(&mut self.slots)
    }

    /// Returns the (drained) vector [`Staging::take`] gave out, keeping its
    /// allocation.
    pub(crate) fn give_back(&mut self, slots: Vec<Slot>) {
        if slots.is_empty() && self.slots.is_empty() {
            self.slots = slots;
        }
    }

    /// Keeps an emptied batch for the next slot.
    pub(crate) fn recycle(&mut self, mut batch: OutboxBatch) {
        if self.spare.len() < SPARE_BATCHES {
            batch.clear();
            self.spare.push(batch);
        }
    }
}
