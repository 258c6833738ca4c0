//! A typed chat room: users publish `ChatMessage` values as JSON on
//! `chat.<room>` and every member of the room reads them back as values.
//!
//! Run with `cargo run -p herald-core --example chat`.

use futures::StreamExt;
use herald_core::{Broker, Error};
use serde::{Deserialize, Serialize};

/// The message every chat client exchanges (the web chat uses the same shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChatMessage {
    id: u64,
    username: String,
    message: String,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let broker = Broker::new();
    let mut members = Vec::new();
    for member in ["ada", "grace", "linus"] {
        let mut room = broker.subscribe("chat.lobby")?.json::<ChatMessage>();
        members.push(tokio::spawn(async move {
            let mut heard = 0;
            while let Some(item) = room.next().await {
                match item {
                    Ok((msg, _)) if msg.username != member => {
                        println!("[{member}'s screen] {}: {}", msg.username, msg.message);
                        heard += 1;
                    }
                    Ok(_) => {}
                    Err(error) => eprintln!("[{member}] unreadable message: {error}"),
                }
                if heard == 2 {
                    break;
                }
            }
        }));
    }

    let lines = [
        ("ada", "hello, everyone"),
        ("grace", "hi ada!"),
        ("linus", "evening all"),
    ];
    for (id, (username, message)) in (1..).zip(lines) {
        broker.publish_json(
            "chat.lobby",
            &ChatMessage {
                id,
                username: username.into(),
                message: message.into(),
            },
        )?;
    }
    for member in members {
        let _ = member.await;
    }
    Ok(())
}
