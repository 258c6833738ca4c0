//! The benchmark's scenarios against a real herald: every scenario counts
//! what it should and loses nothing (correctness only; speed is not asserted).

use herald_bench::scenario::{Client, Params, Protocol, Scenario, run};
use herald_server::{Ready, RunningServer};

fn small(client: Client) -> Params {
    Params {
        count: 2_000,
        requests: 200,
        fanout: 3,
        fanin: 3,
        queue: 2,
        progress: false,
        client,
        js_count: 2_000,
        ..Params::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_delivers_everything() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut ready = Ready::ephemeral(data.path().to_path_buf());
    // As the benchmark runs it: MQTT queue limits lifted.
    ready.mqtt_config.max_inflight = u16::MAX;
    ready.mqtt_config.max_queued = 100_000_000;
    let server = RunningServer::start(ready).await.expect("herald starts");
    let nats = format!("nats://{}", server.nats_addr().expect("nats"));
    let redis = format!("redis://{}", server.redis_addr().expect("redis"));
    let mqtt = format!("mqtt://{}", server.mqtt_addr().expect("mqtt"));
    for protocol in [Protocol::Mqtt, Protocol::MqttQos1] {
        for scenario in [Scenario::PubSub, Scenario::Fanout, Scenario::Fanin] {
            let params = small(Client::Raw);
            let outcome = run(&mqtt, protocol, scenario, &params)
                .await
                .expect("mqtt runs");
            assert_eq!(outcome.lost, 0, "{scenario:?} {protocol:?}");
            assert_eq!(
                outcome.received, outcome.expected,
                "{scenario:?} {protocol:?}"
            );
        }
    }
    for client in [Client::Raw, Client::Crate] {
        // The cluster scenarios run against several nodes (the fan-out's
        // probing below; the replicated stream's only in `compare`).
        for scenario in Scenario::ALL
            .into_iter()
            .filter(|s| !matches!(s, Scenario::ClusterFanout | Scenario::ClusterJsPub))
        {
            let params = small(client);
            let outcome = run(&nats, Protocol::Nats, scenario, &params)
                .await
                .expect("scenario runs");
            let per_message = match scenario {
                Scenario::Pub => 0,
                Scenario::Fanout => 3,
                _ => 1,
            };
            // Publishers share the count evenly (3 fan-in publishers send 666 each).
            let published = match scenario {
                Scenario::ReqRep => 200,
                Scenario::Fanin => 2_000 / 3 * 3,
                _ => 2_000,
            };
            assert_eq!(outcome.published, published, "{scenario:?} {client:?}");
            assert_eq!(
                outcome.expected,
                published * per_message,
                "{scenario:?} {client:?}"
            );
            assert_eq!(
                outcome.received, outcome.expected,
                "{scenario:?} {client:?}"
            );
            assert_eq!(outcome.lost, 0);
            if scenario == Scenario::ReqRep {
                assert!(outcome.latency_us.is_some());
            }
        }
    }
    // The cross-node fan-out's probing and counting, with one node playing
    // every part (the three-node runs are `herald-bench compare`'s).
    let outcome = herald_bench::raw_nats::run_across(
        &nats,
        std::slice::from_ref(&nats),
        &small(Client::Raw),
        || {},
    )
    .await
    .expect("cluster fan-out runs");
    assert_eq!(outcome.expected, 2_000 * 3);
    assert_eq!(outcome.received, outcome.expected);
    for client in [Client::Raw, Client::Crate] {
        for scenario in [
            Scenario::Pub,
            Scenario::PubSub,
            Scenario::Fanout,
            Scenario::Fanin,
        ] {
            let outcome = run(&redis, Protocol::Redis, scenario, &small(client))
                .await
                .expect("scenario runs");
            assert_eq!(outcome.lost, 0, "{scenario:?} {client:?} over Redis");
            assert_eq!(
                outcome.received, outcome.expected,
                "{scenario:?} {client:?} over Redis"
            );
            if scenario != Scenario::Pub {
                assert!(outcome.received > 0, "{scenario:?} {client:?} over Redis");
            }
        }
    }
    server.shutdown().await;
}
