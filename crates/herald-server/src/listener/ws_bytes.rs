//! A WebSocket as a byte stream, so a protocol listener serves NATS or MQTT
//! over WebSocket with the same code as over TCP: what arrives in binary (or
//! text) frames is read as bytes, frame boundaries meaning nothing (one
//! frame may carry many operations, one operation may span frames, as
//! nats.ws and MQTT.js send them); what is written goes out as binary
//! frames, one per write (a vectored write makes one frame of all its
//! slices), sent on flush. A close frame, or the end of the socket, is the end of the
//! stream. Pings are answered by the WebSocket itself.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::ws::{Message, WebSocket};
use bytes::{Buf, Bytes, BytesMut};
use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A WebSocket read and written as bytes. See the module docs.
pub(crate) struct WsBytes {
    socket: WebSocket,
    /// What the last frame carried beyond what a read took.
    unread: Bytes,
    closed: bool,
}

impl WsBytes {
    pub(crate) fn new(socket: WebSocket) -> Self {
        Self {
            socket,
            unread: Bytes::new(),
            closed: false,
        }
    }
}

fn broken(error: axum::Error) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, error)
}

impl AsyncRead for WsBytes {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.unread.is_empty() {
                let n = self.unread.len().min(buf.remaining());
                buf.put_slice(&self.unread[..n]);
                self.unread.advance(n);
                return Poll::Ready(Ok(()));
            }
            if self.closed {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.socket).poll_next(cx)) {
                Some(Ok(Message::Binary(bytes))) => self.unread = bytes,
                Some(Ok(Message::Text(text))) => self.unread = Bytes::from(text),
                Some(Ok(Message::Close(_))) | None => self.closed = true,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Err(error)) => return Poll::Ready(Err(broken(error))),
            }
        }
    }
}

impl WsBytes {
    fn poll_send(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        frame: impl FnOnce() -> Bytes,
    ) -> Poll<io::Result<usize>> {
        ready!(Pin::new(&mut self.socket).poll_ready(cx)).map_err(broken)?;
        let frame = frame();
        let len = frame.len();
        // Queued in the socket; the writer flushes after each batch.
        Pin::new(&mut self.socket)
            .start_send(Message::Binary(frame))
            .map_err(broken)?;
        Poll::Ready(Ok(len))
    }
}

impl AsyncWrite for WsBytes {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, || Bytes::copy_from_slice(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, || {
            let mut frame = BytesMut::with_capacity(bufs.iter().map(|b| b.len()).sum());
            for b in bufs {
                frame.extend_from_slice(b);
            }
            frame.freeze()
        })
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx).map_err(broken)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_close(cx).map_err(broken)
    }
}
