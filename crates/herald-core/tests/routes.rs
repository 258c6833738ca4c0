//! What the broker does for a cluster: route subscriptions stand for other
//! nodes' interest — a node gets a message once however many of its
//! patterns match, a message from a route never goes back out (one hop), a
//! queue group prefers a member on this node, another node counts as one
//! receiver, and the interest observer hears what to announce.

use std::sync::Arc;

use herald_core::{
    Broker, Delivery, DeliveryCtx, Interest, InterestObserver, Message, Pattern, QueueName, Sink,
    Subject, SubscribeSpec, Subscriber,
};
use parking_lot::Mutex;

/// Records what it was given: (subscription tag, subject).
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, String)>>);

impl Sink for Recorder {
    fn deliver(&self, sub: &Subscriber, msg: &Message, _ctx: &mut DeliveryCtx) -> Delivery {
        self.0.lock().push((
            String::from_utf8_lossy(sub.tag()).into_owned(),
            msg.subject.to_string(),
        ));
        Delivery::Delivered
    }
}

impl Recorder {
    fn take(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.0.lock())
    }
}

fn sub(
    broker: &Broker,
    sink: &Arc<Recorder>,
    pattern: &str,
    tag: &str,
    route: bool,
    queue: Option<&str>,
) {
    let mut spec = SubscribeSpec::new(
        Pattern::new(pattern).expect("pattern"),
        broker.new_conn_id(),
    );
    spec.tag = tag.to_owned().into();
    spec.route = route;
    spec.queue = queue.map(|q| QueueName::new(q).expect("queue"));
    broker.subscribe_sink(spec, sink.clone());
}

fn msg(subject: &str) -> Message {
    Message::new(Subject::new(subject).expect("subject"), "x")
}

#[test]
fn a_node_gets_a_message_once_and_counts_as_one_receiver() {
    let broker = Broker::new();
    let node_b = Arc::new(Recorder::default());
    let local = Arc::new(Recorder::default());
    sub(&broker, &node_b, "a.*", "b1", true, None);
    sub(&broker, &node_b, "a.>", "b2", true, None);
    sub(&broker, &local, "a.>", "l", false, None);
    let receivers = broker.publish_message(&msg("a.x"));
    assert_eq!(receivers, 2, "the local subscriber and node b");
    assert_eq!(node_b.take().len(), 1, "node b gets it once");
    assert_eq!(local.take().len(), 1);
}

#[test]
fn a_message_from_a_route_reaches_local_subscribers_only() {
    let broker = Broker::new();
    let node_c = Arc::new(Recorder::default());
    let local = Arc::new(Recorder::default());
    sub(&broker, &node_c, "a.>", "c", true, None);
    sub(&broker, &local, "a.>", "l", false, None);
    let from_b = broker.new_conn_id();
    assert_eq!(
        broker.deliver_from_route(from_b, &msg("a.x"), None, None),
        1
    );
    assert!(node_c.take().is_empty(), "one hop: not forwarded to c");
    assert_eq!(local.take().len(), 1);
}

#[test]
fn a_queue_group_prefers_a_local_member_then_takes_turns_between_nodes() {
    let broker = Broker::new();
    let nodes = Arc::new(Recorder::default());
    let local = Arc::new(Recorder::default());
    sub(&broker, &nodes, "jobs.*", "b", true, Some("w"));
    sub(&broker, &nodes, "jobs.*", "c", true, Some("w"));
    // One subject: its lookup keeps one rotation.
    for _ in 0..10 {
        broker.publish_message(&msg("jobs.x"));
    }
    let got = nodes.take();
    assert_eq!(got.len(), 10, "each message once");
    let to_b = got.iter().filter(|(tag, _)| tag == "b").count();
    assert_eq!(to_b, 5, "turns between the nodes: {got:?}");
    sub(&broker, &local, "jobs.*", "l", false, Some("w"));
    for i in 0..10 {
        broker.publish_message(&msg(&format!("jobs.{i}")));
    }
    assert_eq!(local.take().len(), 10, "a local member takes them all");
    assert!(nodes.take().is_empty());
    // A queue message from a route goes to one local member of its group.
    let from_b = broker.new_conn_id();
    let w = QueueName::new("w").expect("queue");
    assert_eq!(
        broker.deliver_from_route(from_b, &msg("jobs.9"), None, Some(&w)),
        1
    );
    assert_eq!(local.take().len(), 1);
    let other = QueueName::new("other").expect("queue");
    assert_eq!(
        broker.deliver_from_route(from_b, &msg("jobs.9"), None, Some(&other)),
        0
    );
}

#[derive(Default)]
struct Heard(Mutex<Vec<(String, Option<String>, bool)>>);

impl InterestObserver for Heard {
    fn changed(&self, interest: &Interest, queue: Option<&QueueName>, added: bool) {
        self.0.lock().push((
            String::from_utf8_lossy(interest.as_bytes()).into_owned(),
            queue.map(ToString::to_string),
            added,
        ));
    }
}

#[test]
fn the_observer_hears_local_interest_but_not_routes_or_node_local_plumbing() {
    let broker = Broker::new();
    let heard = Arc::new(Heard::default());
    assert!(broker.observe_interest(heard.clone()));
    let sink = Arc::new(Recorder::default());
    sub(&broker, &sink, "a.>", "route", true, None);
    let mut spec = SubscribeSpec::new(
        Pattern::new("$JS.API.>").expect("pattern"),
        broker.new_conn_id(),
    );
    spec.node_local = true;
    broker.subscribe_sink(spec, sink.clone());
    let mut spec = SubscribeSpec::new(Pattern::new("q.*").expect("pattern"), broker.new_conn_id());
    spec.queue = Some(QueueName::new("w").expect("queue"));
    let queued = broker.subscribe_sink(spec, sink.clone());
    broker.remove_subscriber(&queued);
    assert_eq!(
        *heard.0.lock(),
        vec![
            ("q.*".to_owned(), Some("w".to_owned()), true),
            ("q.*".to_owned(), Some("w".to_owned()), false),
        ]
    );
}
