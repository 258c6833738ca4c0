//! The pumps: what a consumer does when woken, for pull and push delivery:
//! redeliveries whose ack wait ran out, expired pull requests, heartbeats,
//! flow control, and deliveries to whoever is waiting.

use herald_core::Subject;
use tokio::time::Instant;

use super::super::pull::{pending_headers, status};
use super::{ConsumerState, Effect, FLOW_CONTROL_WINDOW, random_token};
use crate::stream::StreamData;

impl ConsumerState {
    /// Does all that is due: redeliveries whose ack wait ran out, expired
    /// requests, heartbeats, and deliveries to whoever is waiting.
    /// `push_bound` says whether a push consumer's deliver subject has interest.
    pub(crate) fn pump(
        &mut self,
        stream: &str,
        consumer: &str,
        data: &mut StreamData,
        now: Instant,
        push_bound: bool,
        has_interest: &dyn Fn(&Subject) -> bool,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        // Ack waits that ran out.
        while let Some(&(at, seq)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let deliveries = match self.pending.get_mut(&seq) {
                Some(p) => {
                    p.deadline = None;
                    p.deliveries
                }
                None => continue,
            };
            self.queue_redelivery(seq, deliveries, &mut effects);
        }
        self.forget_gone_redeliveries(data);
        if self.config.is_push() {
            self.pump_push(stream, consumer, data, now, push_bound, &mut effects);
        } else {
            self.pump_pull(stream, consumer, data, now, has_interest, &mut effects);
        }
        effects
    }

    fn pump_push(
        &mut self,
        stream: &str,
        consumer: &str,
        data: &mut StreamData,
        now: Instant,
        bound: bool,
        effects: &mut Vec<Effect>,
    ) {
        let Some(deliver) = self
            .config
            .deliver_subject
            .as_deref()
            .and_then(|s| Subject::new(s).ok())
        else {
            return;
        };
        if bound {
            self.last_active = now;
            loop {
                if self.config.flow_control
                    && self.fc_outstanding.is_some()
                    && self.fc_bytes >= FLOW_CONTROL_WINDOW
                {
                    break;
                }
                let Some((seq, msg)) = self.next_message(data) else {
                    break;
                };
                let size = msg.payload.len() as u64;
                let out = self.deliver(stream, consumer, seq, msg, data, now);
                effects.push(Effect::Deliver {
                    to: deliver.clone(),
                    msg: out,
                });
                self.push_last_sent = now;
                if self.config.flow_control {
                    self.fc_bytes += size;
                    if self.fc_outstanding.is_none() && self.fc_bytes >= FLOW_CONTROL_WINDOW / 2 {
                        let reply = format!("$JS.FC.{stream}.{consumer}.{}", random_token());
                        if let Ok(reply_subject) = Subject::new(&reply) {
                            let msg = status(&deliver, 100, "FlowControl Request", &[])
                                .with_reply(reply_subject);
                            effects.push(Effect::Publish(msg));
                            self.fc_outstanding = Some(reply);
                        }
                    }
                }
            }
        }
        if !self.config.idle_heartbeat.is_zero()
            && now >= self.push_last_sent + self.config.idle_heartbeat
        {
            let mut extra = vec![
                (
                    "Nats-Last-Consumer",
                    self.delivered.consumer_seq.to_string(),
                ),
                ("Nats-Last-Stream", self.delivered.stream_seq.to_string()),
            ];
            if let Some(fc) = &self.fc_outstanding {
                extra.push(("Nats-Consumer-Stalled", fc.clone()));
            }
            effects.push(Effect::Publish(status(
                &deliver,
                100,
                "Idle Heartbeat",
                &extra,
            )));
            self.push_last_sent = now;
        }
    }

    fn pump_pull(
        &mut self,
        stream: &str,
        consumer: &str,
        data: &mut StreamData,
        now: Instant,
        has_interest: &dyn Fn(&Subject) -> bool,
        effects: &mut Vec<Effect>,
    ) {
        // Expired requests end with 408 and what they did not get.
        let mut i = 0;
        while i < self.waiting.len() {
            let w = &self.waiting[i];
            if w.expires.is_some_and(|e| e <= now) {
                if let Some(w) = self.waiting.remove(i) {
                    let extra = pending_headers(w.left, w.bytes_left);
                    effects.push(Effect::Publish(status(
                        &w.reply,
                        408,
                        "Request Timeout",
                        &extra,
                    )));
                }
            } else {
                i += 1;
            }
        }
        // Serve requests in order.
        while let Some(w) = self.waiting.front() {
            if !has_interest(&w.reply) {
                self.waiting.pop_front();
                continue;
            }
            let Some((seq, msg)) = self.peek_message(data) else {
                break;
            };
            let size = (msg.subject.as_bytes().len()
                + msg.headers.as_ref().map_or(0, |h| h.raw().len())
                + msg.payload.len()
                + 64) as u64;
            let w = &mut self.waiting[0];
            if w.request.max_bytes > 0 && size > w.bytes_left {
                let reply = w.reply.clone();
                let extra = pending_headers(w.left, w.bytes_left);
                self.waiting.pop_front();
                effects.push(Effect::Publish(status(
                    &reply,
                    409,
                    "Message Size Exceeds MaxBytes",
                    &extra,
                )));
                continue;
            }
            let reply = w.reply.clone();
            w.left -= 1;
            w.bytes_left = w.bytes_left.saturating_sub(size);
            w.delivered_any = true;
            w.last_sent = now;
            let finished = w.left == 0;
            let budget_left = w.request.max_bytes > 0 && w.bytes_left > 0;
            let remaining = (w.left, w.bytes_left);
            self.take_message(seq, data);
            let out = self.deliver(stream, consumer, seq, msg, data, now);
            effects.push(Effect::Deliver {
                to: reply.clone(),
                msg: out,
            });
            if finished {
                self.waiting.pop_front();
                if budget_left {
                    let extra = pending_headers(remaining.0, remaining.1);
                    effects.push(Effect::Publish(status(
                        &reply,
                        409,
                        "Batch Completed",
                        &extra,
                    )));
                }
            }
        }
        // No-wait requests end now when nothing more is deliverable.
        let nothing_left = self.peek_message(data).is_none() || self.at_ack_limit();
        if nothing_left {
            let mut i = 0;
            while i < self.waiting.len() {
                let w = &self.waiting[i];
                let ends = w.request.no_wait && (w.expires.is_none() || w.delivered_any);
                if ends {
                    if let Some(w) = self.waiting.remove(i) {
                        effects.push(Effect::Publish(status(&w.reply, 404, "No Messages", &[])));
                    }
                } else {
                    i += 1;
                }
            }
        }
        // Heartbeats for idle requests.
        for w in &mut self.waiting {
            let hb = w.request.idle_heartbeat;
            if !hb.is_zero() && now >= w.last_sent + hb {
                let extra = [
                    (
                        "Nats-Last-Consumer",
                        self.delivered.consumer_seq.to_string(),
                    ),
                    ("Nats-Last-Stream", self.delivered.stream_seq.to_string()),
                ];
                effects.push(Effect::Publish(status(
                    &w.reply,
                    100,
                    "Idle Heartbeat",
                    &extra,
                )));
                w.last_sent = now;
            }
        }
    }
}
