//! The session's delivery rules, without a network: window, queue, packet ids, QoS 2.

use super::*;
use herald_core::SlowConsumerPolicy;

fn session(max_inflight: usize, max_queued: usize) -> (Arc<Session>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let saver = Arc::new(Saver::new(dir.path().to_path_buf()).expect("saver"));
    let limits = SessionLimits {
        max_inflight,
        max_queued,
    };
    let session = Session::new("c".into(), ConnId(1), "u".into(), 60, limits, saver);
    (session, dir)
}

fn attach(state: &mut State, window: usize) -> Arc<Outbox> {
    let outbox = Arc::new(Outbox::new(1 << 20, SlowConsumerPolicy::Close));
    state.generation += 1;
    state.link = Some(Link {
        outbox: outbox.clone(),
        version: Version::V311,
        window,
        max_packet: usize::MAX,
        kick: CancellationToken::new(),
        generation: state.generation,
    });
    outbox
}

fn message(n: u32, qos: QoS) -> Outgoing {
    Outgoing {
        topic: TopicName::new(&format!("t/{n}")).expect("topic"),
        payload: Bytes::from_static(b"x"),
        qos,
        retain: false,
        props: None,
        sub_id: None,
        expires_at: None,
    }
}

fn topics(state: &State) -> (Vec<String>, Vec<String>) {
    (
        state
            .inflight
            .iter()
            .map(|f| f.msg.topic.to_string())
            .collect(),
        state.queue.iter().map(|m| m.topic.to_string()).collect(),
    )
}

#[test]
fn the_window_holds_back_and_acks_release_in_order() {
    let (session, _dir) = session(2, 10);
    let mut state = session.state.lock();
    let outbox = attach(&mut state, 2);
    let mut ctx = DeliveryCtx::new();
    for n in 1..=4 {
        assert_eq!(
            state.offer(message(n, QoS::AtLeastOnce), &mut ctx),
            Delivery::Delivered
        );
    }
    assert_eq!(
        topics(&state),
        (
            vec!["t/1".into(), "t/2".into()],
            vec!["t/3".into(), "t/4".into()]
        )
    );
    assert!(outbox.pending_bytes() > 0);
    // QoS 0 is never held back by the window.
    assert_eq!(
        state.offer(message(9, QoS::AtMostOnce), &mut ctx),
        Delivery::Delivered
    );
    let first = state.inflight[0].pid;
    assert!(state.puback(first, &mut ctx));
    assert!(!state.puback(first, &mut ctx), "acked once only");
    assert_eq!(
        topics(&state),
        (vec!["t/2".into(), "t/3".into()], vec!["t/4".into()])
    );
}

#[test]
fn an_absent_client_keeps_qos1_up_to_the_bound() {
    let (session, _dir) = session(2, 2);
    let mut state = session.state.lock();
    let mut ctx = DeliveryCtx::new();
    assert_eq!(
        state.offer(message(0, QoS::AtMostOnce), &mut ctx),
        Delivery::Closed
    );
    assert_eq!(
        state.offer(message(1, QoS::AtLeastOnce), &mut ctx),
        Delivery::Delivered
    );
    assert_eq!(
        state.offer(message(2, QoS::ExactlyOnce), &mut ctx),
        Delivery::Delivered
    );
    assert_eq!(
        state.offer(message(3, QoS::AtLeastOnce), &mut ctx),
        Delivery::Dropped
    );
    assert_eq!(state.dropped, 1);
    // Back: the queue fills the window, the rest waits.
    attach(&mut state, 1);
    state.resend(&mut ctx);
    assert_eq!(topics(&state), (vec!["t/1".into()], vec!["t/2".into()]));
}

#[test]
fn qos2_flows_go_through_pubrec_and_pubcomp() {
    let (session, _dir) = session(5, 5);
    let mut state = session.state.lock();
    attach(&mut state, 5);
    let mut ctx = DeliveryCtx::new();
    state.offer(message(1, QoS::ExactlyOnce), &mut ctx);
    let pid = state.inflight[0].pid;
    assert!(
        !state.puback(pid, &mut ctx),
        "a QoS 2 flow is not ended by PUBACK"
    );
    assert!(
        !state.pubcomp(pid, &mut ctx),
        "nor by PUBCOMP before PUBREC"
    );
    state.pubrec(&Ack::new(pid), &mut ctx);
    assert_eq!(state.inflight[0].stage, Stage::Released);
    assert!(state.pubcomp(pid, &mut ctx));
    assert!(state.inflight.is_empty());
}

#[test]
fn packet_ids_skip_those_in_use_and_wrap() {
    let (session, _dir) = session(10, 10);
    let mut state = session.state.lock();
    attach(&mut state, 10);
    let mut ctx = DeliveryCtx::new();
    state.offer(message(1, QoS::AtLeastOnce), &mut ctx);
    assert_eq!(state.inflight[0].pid.get(), 1);
    state.next_pid = u16::MAX;
    state.offer(message(2, QoS::AtLeastOnce), &mut ctx);
    state.offer(message(3, QoS::AtLeastOnce), &mut ctx);
    let ids: Vec<u16> = state.inflight.iter().map(|f| f.pid.get()).collect();
    assert_eq!(ids, vec![1, u16::MAX, 2], "0 is never used; 1 is taken");
}

#[test]
fn with_every_id_in_flight_messages_wait_for_an_ack_to_free_one() {
    let (session, _dir) = session(usize::MAX, 10);
    let mut state = session.state.lock();
    attach(&mut state, usize::MAX);
    let mut ctx = DeliveryCtx::new();
    for n in 0..u32::from(u16::MAX) {
        state.offer(message(n, QoS::AtLeastOnce), &mut ctx);
    }
    assert_eq!(state.inflight.len(), usize::from(u16::MAX));
    state.offer(message(0, QoS::AtLeastOnce), &mut ctx);
    assert_eq!(state.queue.len(), 1, "no id left: queued");
    let freed = PacketId::new(30_000).expect("id");
    assert!(state.puback(freed, &mut ctx));
    assert!(state.queue.is_empty());
    let last = state.inflight[state.inflight.len() - 1].pid;
    assert_eq!(last, freed, "the queued message takes the freed id");
}

#[test]
fn expired_messages_are_not_sent() {
    let (session, _dir) = session(5, 5);
    let mut state = session.state.lock();
    let mut ctx = DeliveryCtx::new();
    let mut old = message(1, QoS::AtLeastOnce);
    old.expires_at = Some(now_ms() + 60_000);
    state.offer(old, &mut ctx);
    state.queue[0].expires_at = Some(1);
    attach(&mut state, 5);
    state.resend(&mut ctx);
    assert!(state.inflight.is_empty() && state.queue.is_empty());
}
