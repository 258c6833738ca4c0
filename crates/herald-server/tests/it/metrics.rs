//! `/metrics` as Prometheus reads it: every sample line parses, the latency
//! histograms, per-stream and per-consumer gauges and `process_*` metrics
//! report what happened, and every metric the shipped Grafana dashboard
//! (`dist/grafana-dashboard.json`) queries is one herald exports.

use std::collections::BTreeMap;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;

use crate::common::{TestServer, sync};
use crate::jetstream::fetch;

/// Sample lines by series (`name{labels}`), checking each line parses.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number in {line:?}"));
        assert!(
            series
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_'),
            "{line:?}"
        );
        samples.insert(series.to_owned(), value);
    }
    samples
}

fn names(samples: &BTreeMap<String, f64>) -> std::collections::BTreeSet<&str> {
    samples
        .keys()
        .map(|series| series.split('{').next().unwrap_or(series))
        .collect()
}

#[tokio::test]
async fn metrics_report_latencies_streams_consumers_and_the_process() {
    let server = TestServer::start().await;
    let nats = server.client().await;
    let js = jetstream::new(nats.clone());
    let stream = js
        .get_or_create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.*".into()],
            ..Default::default()
        })
        .await
        .expect("stream");
    for i in 0..20 {
        js.publish(format!("orders.{i}"), "o".into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("billing".into()),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let got = fetch(&consumer, 5).await;
    assert_eq!(got.len(), 5);
    for msg in &got {
        msg.double_ack().await.expect("ack");
    }
    // A core subscriber, so some delivery is queued and written.
    let mut sub = nats.subscribe("news").await.expect("sub");
    sync(&nats).await;
    nats.publish("news", "n".into()).await.expect("publish");
    sub.next().await.expect("delivery");

    let text = reqwest::get(server.http_url("/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    let samples = parse(&text);
    let at = |series: &str| -> f64 {
        *samples
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(at("herald_stream_messages{stream=\"ORDERS\"}"), 20.0);
    assert_eq!(at("herald_stream_last_seq{stream=\"ORDERS\"}"), 20.0);
    assert_eq!(at("herald_stream_consumers{stream=\"ORDERS\"}"), 1.0);
    let billing = "{stream=\"ORDERS\",consumer=\"billing\"}";
    assert_eq!(at(&format!("herald_consumer_pending{billing}")), 15.0);
    assert_eq!(at(&format!("herald_consumer_ack_pending{billing}")), 0.0);
    assert_eq!(at(&format!("herald_consumer_ack_floor_seq{billing}")), 5.0);
    assert_eq!(at("herald_consumer_ack_seconds_count"), 5.0, "one per ack");
    assert!(at("herald_stream_append_seconds_count") >= 1.0);
    assert!(at("herald_delivery_queue_seconds_count") >= 1.0);
    // Buckets are cumulative and end with +Inf = count.
    let buckets: Vec<f64> = samples
        .iter()
        .filter(|(k, _)| k.starts_with("herald_consumer_ack_seconds_bucket"))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(buckets.len(), 15, "14 bounds and +Inf");
    assert_eq!(
        at("herald_consumer_ack_seconds_bucket{le=\"+Inf\"}"),
        at("herald_consumer_ack_seconds_count")
    );
    assert!(at("herald_messages_in_total") >= 21.0);
    assert!(at("process_resident_memory_bytes") > 0.0);
    assert!(at("process_open_fds") > 0.0);
    assert!(at("process_cpu_seconds_total") > 0.0);
    assert!(at("process_start_time_seconds") > 1.6e9);

    // Every metric the dashboard charts exists.
    let dashboard: serde_json::Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../dist/grafana-dashboard.json"
    )))
    .expect("the dashboard is JSON");
    let exported = names(&samples);
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr");
            for metric in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("herald_") || w.starts_with("process_"))
            {
                queried += 1;
                assert!(
                    exported.contains(metric),
                    "panel {:?} queries {metric}, which /metrics lacks",
                    panel["title"]
                );
            }
        }
    }
    assert!(queried >= 20, "the dashboard queries {queried} metrics");
}
