//! Five subscribers across three topics: exact subjects and both wildcards.
//!
//! Run with `cargo run -p herald-core --example topics`.

use futures::StreamExt;
use herald_core::{Broker, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let broker = Broker::new();
    let subscribers = [
        ("news-reader", "news.world"),
        ("sports-fan", "sports.*"),
        ("football-fan", "sports.football"),
        ("weather-watcher", "weather.>"),
        ("everything", ">"),
    ];
    let mut subs = Vec::new();
    for (name, pattern) in subscribers {
        subs.push((name, pattern, broker.subscribe(pattern)?));
    }

    for (subject, text) in [
        ("news.world", "elections today"),
        ("sports.football", "3-1 at half time"),
        ("sports.tennis", "straight sets"),
        ("weather.eu.paris", "sunny, 21°C"),
    ] {
        let receivers = broker.publish(subject, text)?;
        println!("published on {subject} to {receivers} subscriber(s)");
    }

    for (name, pattern, mut sub) in subs {
        // Everything was delivered at publish time; read what is queued.
        sub.unsubscribe();
        while let Some(msg) = sub.next().await {
            println!(
                "{name:>15} ({pattern}) got {}: {}",
                msg.subject,
                String::from_utf8_lossy(&msg.payload)
            );
        }
    }
    Ok(())
}
