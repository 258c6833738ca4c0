//! Scenarios over the NATS protocol, driven by the async-nats client: the
//! same code runs against herald and nats-server.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_nats::{Client, Event};
use bytes::Bytes;
use futures::StreamExt;

use crate::scenario::{
    Latency, Outcome, Params, Protocol, Published, Scenario, Tally, finish, next_batch,
};

const SUBJECT: &str = "bench.subject";

async fn connect(url: &str, tally: &Tally) -> anyhow::Result<Client> {
    let tally = tally.clone();
    async_nats::ConnectOptions::new()
        .name("herald-bench")
        .subscription_capacity(1 << 18)
        .event_callback(move |event| {
            let tally = tally.clone();
            async move {
                if matches!(event, Event::Disconnected | Event::SlowConsumer(_)) {
                    tally.disconnected();
                }
            }
        })
        .connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// A round trip through the server, so what was sent before has been
/// processed (async-nats's `flush` only writes the socket).
async fn sync(client: &Client) -> anyhow::Result<()> {
    let subject = format!("_BENCH.sync.{}", rand_token());
    match client.request(subject, Bytes::new()).await {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == async_nats::client::RequestErrorKind::NoResponders => Ok(()),
        Err(err) => Err(err).context("round trip"),
    }
}

fn rand_token() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

/// Publishes `count` messages (or for `duration`); returns how many.
async fn publish(
    client: &Client,
    payload: &Bytes,
    count: u64,
    duration: Option<Duration>,
) -> anyhow::Result<u64> {
    let start = Instant::now();
    let mut sent = 0u64;
    while next_batch(duration, start, sent, count, 1).is_some() {
        client.publish(SUBJECT, payload.clone()).await?;
        sent += 1;
    }
    client.flush().await?;
    Ok(sent)
}

/// Runs `scenario` against the NATS server at `url`.
///
/// # Errors
/// Connection or protocol failures (not message loss: that is reported).
pub async fn run(url: &str, scenario: Scenario, params: &Params) -> anyhow::Result<Outcome> {
    let tally = Tally::new();
    let payload = Bytes::from(vec![b'x'; params.size]);
    let Some(shape) = scenario.shape(params) else {
        return request_reply(url, params).await;
    };
    let mut receivers = Vec::new();
    let mut sub_clients = Vec::new();
    for _ in 0..shape.subscribers {
        let client = connect(url, &tally).await?;
        let mut sub = if shape.queue {
            client.queue_subscribe(SUBJECT, "bench".into()).await?
        } else {
            client.subscribe(SUBJECT).await?
        };
        sync(&client).await?;
        let tally = tally.clone();
        receivers.push(tokio::spawn(async move {
            let mut last = None;
            loop {
                tokio::select! {
                    biased;
                    () = tally.stop().cancelled() => break,
                    msg = sub.next() => match msg {
                        Some(_) => {
                            tally.hit();
                            last = Some(Instant::now());
                        }
                        None => break,
                    },
                }
            }
            last
        }));
        sub_clients.push(client);
    }
    let mut pub_clients = Vec::new();
    for _ in 0..shape.publishers {
        pub_clients.push(connect(url, &tally).await?);
    }
    let per_publisher = shape.per_publisher(params.count);
    let start = Instant::now();
    let sends = pub_clients
        .iter()
        .map(|client| publish(client, &payload, per_publisher, params.duration));
    let published: u64 = futures::future::try_join_all(sends)
        .await?
        .into_iter()
        .sum();
    let mut end = Instant::now();
    if scenario == Scenario::Pub {
        // Taken in: a round trip after the last publish.
        sync(&pub_clients[0]).await?;
        end = Instant::now();
    }
    let run = Published {
        scenario,
        protocol: Protocol::Nats,
        count: published,
        per_message: shape.per_message(),
        start,
        end,
    };
    Ok(finish(&tally, receivers, run, params).await)
}

async fn request_reply(url: &str, params: &Params) -> anyhow::Result<Outcome> {
    let tally = Tally::new();
    let payload = Bytes::from(vec![b'x'; params.size]);
    let responder = connect(url, &tally).await?;
    let mut requests = responder.subscribe("bench.rr").await?;
    sync(&responder).await?;
    let answering = responder.clone();
    let serve = tokio::spawn(async move {
        while let Some(req) = requests.next().await {
            if let Some(reply) = req.reply
                && answering.publish(reply, req.payload).await.is_err()
            {
                break;
            }
        }
    });
    let requester = connect(url, &tally).await?;
    // Warm up the requester's inbox subscription.
    requester.request("bench.rr", payload.clone()).await?;
    let mut samples = Vec::with_capacity(params.requests as usize);
    let start = Instant::now();
    for i in 0..params.requests {
        let t = Instant::now();
        match requester.request("bench.rr", payload.clone()).await {
            Ok(_) => {
                samples.push(t.elapsed());
                tally.hit();
            }
            Err(err) => bail!("request {i} failed: {err}"),
        }
        if params.progress && i % 1000 == 0 {
            eprint!("\r  req/rep: {i}/{}   ", params.requests);
        }
    }
    let elapsed = start.elapsed();
    if params.progress {
        eprint!("\r{:70}\r", "");
    }
    serve.abort();
    let mut outcome = Outcome::new(
        Scenario::ReqRep,
        Protocol::Nats,
        params.size,
        params.requests,
        params.requests,
        tally.received(),
        tally.disconnects(),
        elapsed,
    );
    outcome.latency_us = Latency::from_samples(&mut samples);
    Ok(outcome)
}
