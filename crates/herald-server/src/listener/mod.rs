//! Listeners: one adapter per protocol and the accept loop they share.
//!
//! A listener never routes and never stores: it decodes frames into
//! [`herald_core::Broker`] calls and writes deliveries back out. The accept
//! loop hands each socket to its own task at once (no handshake work in the
//! loop), counts it against the connection limit, and backs off when
//! `accept` fails (out of file descriptors, say) instead of spinning.

pub mod http;
pub mod mqtt;
pub mod nats;
pub(crate) mod port;
pub mod redis;
mod writer;
pub(crate) mod ws_bytes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::shared::ConnectionPermit;
use bytes::BytesMut;
use herald_core::{CloseReason, Outbox};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::shared::Shared;

use writer::spawn_writer;

/// Connections the kernel may hold for a listener before it accepts them
/// (capped by `net.core.somaxconn`). The standard library's 128 drops SYNs
/// when thousands of clients connect at once (a reconnect storm after a
/// restart), and each dropped SYN costs its client a retransmission of a
/// second or more; nats-server asks for the system maximum too.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` and logs the bound address in a line containing `listening`,
/// so tests and scripts can find an ephemeral port.
pub(crate) async fn bind(protocol: &'static str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        // As std and nats-server do: a restarted server can rebind at once.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    let listener =
        listen().map_err(|e| anyhow::anyhow!("cannot listen for {protocol} on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    info!(protocol, addr = %bound, "listening");
    Ok(listener)
}

/// Accepts connections until shutdown, running `handle` for each on its own task.
///
/// `handle` receives the connection-limit permit, or `None` when the server
/// is full: the protocol then refuses the client in its own words.
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    protocol: &'static str,
    shared: Arc<Shared>,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr, Arc<Shared>, Option<ConnectionPermit>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                // Latency matters more than packet count: frames are already coalesced.
                let _ = stream.set_nodelay(true);
                let permit = shared.admit(peer);
                shared
                    .tracker
                    .spawn(handle(stream, peer, shared.clone(), permit));
            }
            Err(error) => {
                warn!(protocol, %error, ?backoff, "accept failed; backing off");
                tokio::select! {
                    () = shared.shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// What a connection reads from.
pub(crate) type Reader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// Sizes a connection's read buffer: small while the client is quiet, so an
/// idle connection holds a few hundred bytes instead of a touched page of a
/// large buffer, and doubling while reads fill it, up to a maximum.
#[derive(Debug)]
pub(crate) struct ReadBuffer {
    /// The data read and not yet parsed.
    pub(crate) buf: BytesMut,
    /// Room to offer the next read.
    want: usize,
    max: usize,
}

impl ReadBuffer {
    /// Room a quiet connection's reads get.
    const MIN: usize = 512;

    /// A buffer whose reads grow up to `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(Self::MIN),
            want: Self::MIN,
            max: max.max(Self::MIN),
        }
    }

    /// Reads once into the buffer; `Ok(0)` is the end of the stream.
    pub(crate) async fn read_from(&mut self, reader: &mut Reader) -> std::io::Result<usize> {
        use tokio::io::AsyncReadExt;
        if self.buf.is_empty() && self.want == Self::MIN && self.buf.capacity() > 4 * Self::MIN {
            // Quiet again after a burst: give the large buffer back.
            self.buf = BytesMut::with_capacity(Self::MIN);
        }
        if self.buf.capacity() - self.buf.len() < self.want / 2 {
            self.buf.reserve(self.want);
        }
        let room = self.buf.capacity() - self.buf.len();
        let read = reader.read_buf(&mut self.buf).await?;
        if read == room {
            self.want = (self.want * 2).min(self.max);
        } else if read < self.want / 8 {
            self.want = (self.want / 2).max(Self::MIN);
        }
        Ok(read)
    }
}

/// A client's byte stream: plain TCP, TLS, or anything else that reads and
/// writes bytes (a WebSocket, see [`ws_bytes`]).
pub(crate) enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Any other byte stream, with the local address it was reached on.
    Other(Box<dyn ByteStream>, Option<SocketAddr>),
}

/// A byte stream a listener can serve.
pub(crate) trait ByteStream:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin
{
}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> ByteStream for T {}

/// The TLS step of protocols that start with it (Redis, MQTT): returns the
/// stream to serve and the client certificate's name, or `None` when the
/// client is refused (it spoke plain text, `refusal` tells it so, or the
/// handshake failed).
pub(crate) async fn secure(
    shared: &Shared,
    stream: TcpStream,
    refusal: &[u8],
) -> Option<(Stream, Option<String>)> {
    let Some(tls) = shared.tls() else {
        return Some((Stream::Plain(stream), None));
    };
    if !crate::tls::starts_with_tls(&stream).await {
        use tokio::io::AsyncWriteExt;
        let mut stream = stream;
        let _ = stream.write_all(refusal).await;
        let _ = stream.shutdown().await;
        tracing::debug!("plain-text client on a TLS port refused");
        return None;
    }
    match tls.accept(stream).await {
        Ok(tls_stream) => {
            let name = crate::tls::client_name(&tls_stream);
            Some((Stream::Tls(Box::new(tls_stream)), name))
        }
        Err(error) => {
            tracing::debug!(%error, "TLS handshake failed");
            None
        }
    }
}

/// A connection's I/O as every listener sets it up: the read half for the
/// protocol's reader, the outbox and its writer task, and a token that stops
/// the reader when the writer fails or the server shuts down.
pub(crate) struct ConnectionIo {
    /// The socket's read half (plain or TLS).
    pub(crate) reader: Reader,
    /// Output to the client.
    pub(crate) outbox: Arc<Outbox>,
    /// Cancelled when the writer stops or the server shuts down.
    pub(crate) token: CancellationToken,
    /// The local address the client reached.
    pub(crate) local: Option<SocketAddr>,
    writer: JoinHandle<writer::WriterEnd>,
}

impl ConnectionIo {
    /// Splits `stream` and starts the writer for `outbox`.
    pub(crate) fn start(shared: &Shared, stream: Stream, outbox: Outbox) -> Self {
        let token = shared.shutdown.child_token();
        // Sampled queueing times for the delivery latency histogram.
        let outbox = outbox.with_timings(shared.broker.timings().clone());
        match stream {
            Stream::Plain(tcp) => {
                let local = tcp.local_addr().ok();
                let (reader, socket) = tcp.into_split();
                let socket = writer::TcpWriter::new(socket);
                // Replies may be written by the reader itself (see `Outbox::write_now`).
                let outbox = Arc::new(outbox.with_direct_write(Arc::new(socket.clone())));
                Self::with_writer(shared, Box::new(reader), socket, outbox, local, token)
            }
            Stream::Tls(tls) => {
                let local = tls.get_ref().0.local_addr().ok();
                Self::split(shared, *tls, local, outbox, token)
            }
            Stream::Other(stream, local) => Self::split(shared, stream, local, outbox, token),
        }
    }

    /// The reader and a writer task for a stream the reader cannot write
    /// itself (TLS, WebSocket): every write goes through the task.
    fn split<S: ByteStream + 'static>(
        shared: &Shared,
        stream: S,
        local: Option<SocketAddr>,
        outbox: Outbox,
        token: CancellationToken,
    ) -> Self {
        let (reader, socket) = tokio::io::split(stream);
        Self::with_writer(
            shared,
            Box::new(reader),
            socket,
            Arc::new(outbox),
            local,
            token,
        )
    }

    fn with_writer<W: tokio::io::AsyncWrite + Unpin + Send + 'static>(
        shared: &Shared,
        reader: Reader,
        socket: W,
        outbox: Arc<Outbox>,
        local: Option<SocketAddr>,
        token: CancellationToken,
    ) -> Self {
        let writer = spawn_writer(shared, socket, outbox.clone(), token.clone());
        Self {
            reader,
            outbox,
            token,
            local,
            writer,
        }
    }

    /// Lets the writer flush what is queued, then closes the connection.
    pub(crate) async fn finish(self) {
        self.outbox.close(CloseReason::Finished);
        let _ = self.writer.await;
    }
}

#[cfg(test)]
mod tests {
    use super::{ReadBuffer, Reader};
    use bytes::Buf;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn read_buffers_grow_while_reads_fill_them_and_shrink_when_quiet() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut client = client;
        let mut reader: Reader = Box::new(server);
        let mut read = ReadBuffer::new(64 * 1024);
        assert_eq!(read.buf.capacity(), ReadBuffer::MIN);

        // A burst, parsed as it comes: every read fills the room it was
        // given, so the room doubles up to the maximum.
        client
            .write_all(&vec![b'x'; 256 * 1024])
            .await
            .expect("write");
        let (mut total, mut largest) = (0, 0);
        while total < 256 * 1024 {
            let got = read.read_from(&mut reader).await.expect("read");
            assert_eq!(read.buf.len(), got);
            read.buf.advance(got);
            total += got;
            largest = largest.max(got);
        }
        assert!(largest >= 32 * 1024, "largest read {largest} bytes");

        // Quiet: small reads halve the room back to the minimum, and once the
        // buffer is empty the large allocation is let go.
        for _ in 0..16 {
            client.write_all(b"PING\r\n").await.expect("write");
            read.read_from(&mut reader).await.expect("read");
            read.buf.advance(read.buf.len());
        }
        client.write_all(b"PING\r\n").await.expect("write");
        read.read_from(&mut reader).await.expect("read");
        assert_eq!(&read.buf[..], b"PING\r\n");
        assert!(
            read.buf.capacity() <= 2 * ReadBuffer::MIN,
            "capacity {} after quiet reads",
            read.buf.capacity()
        );
    }
}
