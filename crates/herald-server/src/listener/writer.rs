//! The per-connection writer task: drains the connection's [`Outbox`] and
//! writes each batch with one (vectored) write.

use std::io::{self, IoSlice};
use std::sync::Arc;

use herald_core::{CloseReason, Outbox, OutboxBatch};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::server::Shared;

/// How the writer ended.
#[derive(Debug)]
pub(crate) enum WriterEnd {
    /// The outbox was closed with this reason (after flushing, for `Finished`).
    Closed(CloseReason),
    /// The socket failed.
    Io(io::Error),
}

/// Spawns the writer for `outbox`. When it ends for any reason other than a
/// normal finish, it cancels `conn` so the reader stops too. A slow consumer
/// is counted and logged before its socket closes.
pub(crate) fn spawn_writer<W>(
    shared: &Shared,
    mut socket: W,
    outbox: Arc<Outbox>,
    conn: CancellationToken,
) -> JoinHandle<WriterEnd>
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let broker = shared.broker.clone();
    shared.tracker.spawn(async move {
        let mut batch = OutboxBatch::new();
        let end = loop {
            match outbox.next_batch(&mut batch).await {
                Ok(()) => {
                    if let Err(error) = write_batch(&mut socket, &batch).await {
                        outbox.close(CloseReason::Finished);
                        break WriterEnd::Io(error);
                    }
                    batch.clear();
                }
                Err(reason) => break WriterEnd::Closed(reason),
            }
        };
        if matches!(end, WriterEnd::Closed(CloseReason::SlowConsumer)) {
            warn!("closing slow consumer");
            broker.record_slow_consumer();
        }
        let _ = socket.shutdown().await;
        match &end {
            WriterEnd::Io(error) => debug!(%error, "write failed"),
            WriterEnd::Closed(CloseReason::Finished) => {}
            WriterEnd::Closed(reason) => debug!(?reason, "writer stopped"),
        }
        conn.cancel();
        end
    })
}

async fn write_batch<W: AsyncWrite + Unpin>(socket: &mut W, batch: &OutboxBatch) -> io::Result<()> {
    if let Some(bytes) = batch.contiguous() {
        return socket.write_all(bytes).await;
    }
    let slices = batch.slices();
    let mut iov: Vec<IoSlice<'_>> = slices.iter().map(|s| IoSlice::new(s)).collect();
    let mut rest = &mut iov[..];
    while !rest.is_empty() {
        let n = socket.write_vectored(rest).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}
