//! The QoS 1/2 messages a session sent and the client has not acknowledged.

use std::collections::VecDeque;

use ahash::AHashSet;
use herald_protocol::mqtt::PacketId;

use super::{Inflight, Stage};

/// Messages in flight, in sending order, and the packet ids they hold.
///
/// The id set is what lets a new message find a free id at once: scanning
/// the list instead costs as many steps as there are messages in flight, per
/// message, and a client whose Receive Maximum allows tens of thousands made
/// that the whole of the broker's work.
#[derive(Debug, Default)]
pub(in crate::listener::mqtt) struct Flights {
    order: VecDeque<Inflight>,
    ids: AHashSet<u16>,
}

impl Flights {
    /// How many are in flight.
    pub(in crate::listener::mqtt) fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether none is.
    #[cfg(test)]
    pub(in crate::listener::mqtt) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// In sending order.
    pub(in crate::listener::mqtt) fn iter(&self) -> impl Iterator<Item = &Inflight> {
        self.order.iter()
    }

    /// Whether a message in flight holds `pid`.
    pub(super) fn holds(&self, pid: PacketId) -> bool {
        self.ids.contains(&pid.get())
    }

    /// Tracks a message just sent.
    pub(super) fn push(&mut self, flight: Inflight) {
        self.ids.insert(flight.pid.get());
        self.order.push_back(flight);
    }

    /// Where the first flight matching `matches` is.
    pub(super) fn position(&self, matches: impl Fn(&Inflight) -> bool) -> Option<usize> {
        self.order.iter().position(matches)
    }

    /// Stops tracking the flight at `position`.
    pub(super) fn remove(&mut self, position: usize) -> Option<Inflight> {
        let flight = self.order.remove(position)?;
        self.ids.remove(&flight.pid.get());
        Some(flight)
    }

    /// Marks the flight at `position` as released (`PUBREL` sent).
    pub(super) fn release(&mut self, position: usize) {
        if let Some(flight) = self.order.get_mut(position) {
            flight.stage = Stage::Released;
        }
    }

    /// Keeps only the flights `keep` accepts.
    pub(super) fn retain(&mut self, keep: impl Fn(&Inflight) -> bool) {
        let ids = &mut self.ids;
        self.order.retain(|flight| {
            let kept = keep(flight);
            if !kept {
                ids.remove(&flight.pid.get());
            }
            kept
        });
    }

    /// Forgets every flight.
    pub(super) fn clear(&mut self) {
        self.order.clear();
        self.ids.clear();
    }
}

impl FromIterator<Inflight> for Flights {
    fn from_iter<I: IntoIterator<Item = Inflight>>(flights: I) -> Self {
        let mut all = Self::default();
        for flight in flights {
            all.push(flight);
        }
        all
    }
}

impl std::ops::Index<usize> for Flights {
    type Output = Inflight;

    fn index(&self, position: usize) -> &Inflight {
        &self.order[position]
    }
}
