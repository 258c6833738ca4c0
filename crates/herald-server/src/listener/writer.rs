//! The per-connection writer task: drains the connection's [`Outbox`] and
//! writes each batch with one (vectored) write. On plain TCP the reader may
//! write its own replies directly ([`TcpWriter`]); the task does every
//! write that has to wait.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use herald_core::outbox::DirectWrite;
use herald_core::{CloseReason, Outbox, OutboxBatch};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::shared::Shared;

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
    let deadline = shared.limits.write_deadline;
    shared.tracker.spawn(async move {
        let mut batch = OutboxBatch::new();
        let end = loop {
            match outbox.next_batch(&mut batch).await {
                Ok(()) => match write_batch(&mut socket, &batch, &outbox, deadline).await {
                    Ok(()) => batch.clear(),
                    Err(Failure::Io(error)) => {
                        outbox.close(CloseReason::Finished);
                        break WriterEnd::Io(error);
                    }
                    Err(Failure::Deadline) => {
                        break WriterEnd::Closed(CloseReason::SlowConsumer);
                    }
                },
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

/// Why a batch was not written.
enum Failure {
    Io(io::Error),
    /// The socket took nothing for the write deadline and the outbox closed.
    Deadline,
}

/// Writes `batch`, telling `outbox` of every write that makes progress (so
/// publishers know the client is reading) and applying the write deadline:
/// a write that waits `deadline` without the socket taking a byte makes the
/// client a slow consumer (closed; or, under drop-newest, its messages are
/// dropped until it reads again).
async fn write_batch<W: AsyncWrite + Unpin>(
    socket: &mut W,
    batch: &OutboxBatch,
    outbox: &Outbox,
    deadline: Duration,
) -> Result<(), Failure> {
    let slices = batch.slices();
    let mut iov: Vec<IoSlice<'_>> = slices.iter().map(|s| IoSlice::new(s)).collect();
    let mut rest = &mut iov[..];
    while !rest.is_empty() {
        match tokio::time::timeout(deadline, socket.write_vectored(rest)).await {
            Ok(Ok(0)) => return Err(Failure::Io(io::ErrorKind::WriteZero.into())),
            Ok(Ok(n)) => {
                outbox.wrote(n);
                IoSlice::advance_slices(&mut rest, n);
            }
            Ok(Err(error)) => return Err(Failure::Io(error)),
            Err(_) => {
                warn!(?deadline, "write deadline passed");
                if outbox.write_timed_out() {
                    return Err(Failure::Deadline);
                }
            }
        }
    }
    // What a layer above the socket holds back (TLS records, WebSocket
    // frames) goes out now; plain TCP holds nothing, and is done without a
    // timer.
    if let Some(flushed) = futures::FutureExt::now_or_never(socket.flush()) {
        return flushed.map_err(Failure::Io);
    }
    loop {
        match tokio::time::timeout(deadline, socket.flush()).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => return Err(Failure::Io(error)),
            Err(_) => {
                warn!(?deadline, "write deadline passed");
                if outbox.write_timed_out() {
                    return Err(Failure::Deadline);
                }
            }
        }
    }
}

/// The write half of a plain TCP connection, shared by the writer task (as
/// an [`AsyncWrite`]) and the outbox (as a [`DirectWrite`]). The outbox's
/// write right keeps the two from writing at once. The socket's write side
/// shuts down when the last handle is dropped: the outbox lets go of its
/// handle when it closes, the writer task when it ends.
#[derive(Debug, Clone)]
pub(crate) struct TcpWriter(Arc<OwnedWriteHalf>);

impl TcpWriter {
    pub(crate) fn new(half: OwnedWriteHalf) -> Self {
        Self(Arc::new(half))
    }
}

impl DirectWrite for TcpWriter {
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }
}

impl TcpWriter {
    /// Waits for the socket to take writes, then runs `write` once it did
    /// not block (a `WouldBlock` clears the readiness, so the wait re-arms).
    fn poll_try(
        &self,
        cx: &mut Context<'_>,
        write: impl Fn(&OwnedWriteHalf) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.as_ref().as_ref().poll_write_ready(cx))?;
            match write(&self.0) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                other => return Poll::Ready(other),
            }
        }
    }
}

impl AsyncWrite for TcpWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_try(cx, |half| half.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_try(cx, |half| half.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the socket: nothing is buffered here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Shared: the write side shuts down when the last handle drops.
        Poll::Ready(Ok(()))
    }
}
