//! The web port while the server starts: bound before the streams are
//! recovered, it answers every request `503` with nats-server's `/healthz`
//! body, so a load balancer or orchestrator sees "not ready" rather than a
//! refused connection, and `/healthz` turns 200 exactly when the server
//! serves. The real listener takes the same socket over.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const BODY: &str = r#"{"status":"unavailable","error":"JetStream is still recovering"}"#;

/// Answers 503 on `listener` until [`Starting::ready`].
pub(crate) struct Starting {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<TcpListener>>,
}

impl Drop for Starting {
    /// A start that failed half-way: stop answering.
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Starting {
    pub(crate) fn serve(listener: TcpListener) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => return listener,
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            tokio::spawn(answer(stream));
                        }
                    }
                }
            }
        });
        Self {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The server is ready: the socket, for the real listener.
    pub(crate) async fn ready(mut self) -> anyhow::Result<TcpListener> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self
            .task
            .take()
            .ok_or_else(|| anyhow::anyhow!("the web port was already handed over"))?;
        Ok(task.await?)
    }
}

/// Reads the request head (briefly) and answers 503.
async fn answer(mut stream: tokio::net::TcpStream) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(2), async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    if read.is_err() {
        return;
    }
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
