//! One publisher, three competing workers on one queue group: each job is
//! done by exactly one worker, and the work is spread evenly.
//!
//! Run with `cargo run -p herald-core --example work_queue`.

use std::time::Duration;

use futures::StreamExt;
use herald_core::{Broker, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let broker = Broker::new();
    let mut workers = Vec::new();
    for id in 1..=3 {
        let mut jobs = broker.queue_subscribe("jobs.resize", "resizers")?;
        // Every worker hears the stop signal (a plain subscription, not the queue).
        let mut stop = broker.subscribe("jobs.stop")?;
        workers.push(tokio::spawn(async move {
            let mut done = 0;
            loop {
                tokio::select! {
                    Some(job) = jobs.next() => {
                        println!("worker {id} resizing {}", String::from_utf8_lossy(&job.payload));
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        done += 1;
                    }
                    _ = stop.next() => break,
                }
            }
            (id, done)
        }));
    }

    for n in 1..=12 {
        broker.publish("jobs.resize", format!("image-{n}.png"))?;
    }
    // Every job has been taken by a worker once flush returns; the workers
    // finish the job in hand before they see the stop.
    broker.flush().await;
    broker.publish("jobs.stop", "")?;
    for worker in workers {
        if let Ok((id, done)) = worker.await {
            println!("worker {id} did {done} job(s)");
        }
    }
    Ok(())
}
