//! Scenarios over Redis pub/sub, driven by the redis crate: the same code runs
//! against herald's Redis listener and redis-server.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;

use crate::scenario::{Outcome, Params, Protocol, Scenario, Tally, next_batch, publish_and_finish};

const CHANNEL: &str = "bench.subject";

/// PUBLISH commands per pipelined write, as `redis-benchmark -P` does.
const PIPELINE: u64 = 64;

async fn publish(
    client: &redis::Client,
    payload: &[u8],
    count: u64,
    duration: Option<Duration>,
) -> anyhow::Result<u64> {
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .context("connecting a publisher")?;
    let start = Instant::now();
    let mut sent = 0u64;
    while let Some(batch) = next_batch(duration, start, sent, count, PIPELINE) {
        let mut pipe = redis::pipe();
        for _ in 0..batch {
            pipe.cmd("PUBLISH").arg(CHANNEL).arg(payload);
        }
        let _: Vec<i64> = pipe.query_async(&mut con).await.context("PUBLISH")?;
        sent += batch;
    }
    Ok(sent)
}

/// Runs `scenario` against the Redis server at `url` (`redis://host:port`).
///
/// # Errors
/// Connection or protocol failures (not message loss: that is reported), or
/// a scenario Redis has no equivalent for.
pub async fn run(url: &str, scenario: Scenario, params: &Params) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        scenario.supports(Protocol::Redis),
        "Redis has no {scenario:?} equivalent"
    );
    let client = redis::Client::open(url).with_context(|| format!("bad Redis URL {url}"))?;
    let tally = Tally::new();
    let payload = vec![b'x'; params.size];
    let shape = scenario
        .shape(params)
        .context("Redis has no request/reply")?;
    let mut receivers = Vec::new();
    for _ in 0..shape.subscribers {
        let mut pubsub = client
            .get_async_pubsub()
            .await
            .context("connecting a subscriber")?;
        // SUBSCRIBE returns once the server confirmed it.
        pubsub.subscribe(CHANNEL).await.context("SUBSCRIBE")?;
        let tally = tally.clone();
        receivers.push(tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            let mut last = None;
            loop {
                tokio::select! {
                    biased;
                    () = tally.stop().cancelled() => break,
                    msg = stream.next() => match msg {
                        Some(_) => {
                            tally.hit();
                            last = Some(Instant::now());
                        }
                        None => {
                            tally.disconnected();
                            break;
                        }
                    },
                }
            }
            last
        }));
    }
    let setup = (scenario, Protocol::Redis, shape);
    publish_and_finish(setup, params, &tally, receivers, |_, share| {
        publish(&client, &payload, share, params.duration)
    })
    .await
}
