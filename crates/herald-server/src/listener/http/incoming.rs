//! Accepting web connections: plain or TLS, counted against the connection
//! limits, and handed to axum with the peer's address and, under mutual
//! TLS, its certificate's name. TLS handshakes run on tasks of their own so
//! a slow client never holds up the accept loop.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::future::Future;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

use crate::shared::{ConnectionPermit, Shared};

/// Who is on the other end of a web connection.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    /// Its address.
    pub(crate) addr: SocketAddr,
    /// The local address it reached.
    pub(crate) local: Option<SocketAddr>,
    /// The common name of its verified client certificate (mutual TLS).
    pub(crate) cert_name: Option<String>,
}

/// A web connection: the socket, its place under the connection limit, and
/// the write deadline. A client that stops reading (an SSE stream, a
/// WebSocket, a large response) leaves a write waiting; once it has waited
/// `--write-deadline`, writes fail and the connection ends as a slow
/// consumer, as on every other listener.
pub(crate) struct Io {
    stream: Stream,
    _permit: ConnectionPermit,
    deadline: std::time::Duration,
    /// Running while a write waits for the socket.
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
    /// When a write last found the socket full.
    last_wait: Option<tokio::time::Instant>,
    timed_out: bool,
    shared: Arc<Shared>,
}

impl Io {
    fn new(stream: Stream, permit: ConnectionPermit, shared: Arc<Shared>) -> Self {
        Self {
            stream,
            _permit: permit,
            deadline: shared.limits.write_deadline,
            waiting: None,
            last_wait: None,
            timed_out: false,
            shared,
        }
    }

    /// Runs the deadline around one poll of a write: the clock starts when a
    /// write first has to wait and stops when one goes through.
    fn deadline<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.waiting = None;
            return poll;
        }
        let deadline = self.deadline;
        let now = tokio::time::Instant::now();
        // A write that waits is polled again by the deadline at the latest
        // (the timer wakes it). A longer silence means that write was
        // abandoned (a `select!` dropped it): this is a new one, with a
        // clock of its own.
        if self.last_wait.is_some_and(|at| now - at > deadline) {
            self.waiting = None;
        }
        self.last_wait = Some(now);
        let waiting = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(deadline)));
        if waiting.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.waiting = None;
        self.timed_out = true;
        self.shared.broker.record_slow_consumer();
        tracing::warn!(
            ?deadline,
            "web client past the write deadline: closing slow consumer"
        );
        Poll::Ready(Err(io::ErrorKind::TimedOut.into()))
    }

    fn refused<T>(&self) -> Option<Poll<io::Result<T>>> {
        self.timed_out
            .then(|| Poll::Ready(Err(io::ErrorKind::TimedOut.into())))
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(refused) = self.refused() {
            return refused;
        }
        let poll = match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        };
        self.deadline(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(refused) = self.refused() {
            return refused;
        }
        let poll = match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        };
        self.deadline(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The accepted, ready connections, for `axum::serve`.
pub(crate) struct Incoming {
    rx: mpsc::Receiver<(Io, Peer)>,
}

const REFUSED_FULL: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 32\r\nConnection: close\r\n\r\nmaximum connections exceeded.\r\n\r\n";
const REFUSED_PLAIN: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 24\r\nConnection: close\r\n\r\nthis port speaks HTTPS\r\n";

impl Incoming {
    /// The next connection ready for HTTP; `None` once accepting stopped.
    pub(crate) async fn next(&mut self) -> Option<(Io, Peer)> {
        self.rx.recv().await
    }

    /// Starts accepting on `listener`.
    pub(crate) fn start(listener: TcpListener, shared: Arc<Shared>) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(accept_loop(listener, shared, tx));
        Ok(Self { rx })
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tx: mpsc::Sender<(Io, Peer)>) {
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (mut tcp, addr) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!(%error, "web accept failed; backing off");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().ok();
        let Some(permit) = shared.admit(addr) else {
            tokio::spawn(async move {
                let _ = tcp.write_all(REFUSED_FULL).await;
                let _ = tcp.shutdown().await;
            });
            continue;
        };
        let Some(tls) = shared.tls() else {
            let io = Io::new(Stream::Plain(tcp), permit, shared.clone());
            if tx
                .send((
                    io,
                    Peer {
                        addr,
                        local,
                        cert_name: None,
                    },
                ))
                .await
                .is_err()
            {
                return;
            }
            continue;
        };
        let tx = tx.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            if !crate::tls::starts_with_tls(&tcp).await {
                let _ = tcp.write_all(REFUSED_PLAIN).await;
                let _ = tcp.shutdown().await;
                return;
            }
            match tls.accept(tcp).await {
                Ok(stream) => {
                    let cert_name = crate::tls::client_name(&stream);
                    let io = Io::new(Stream::Tls(Box::new(stream)), permit, shared);
                    let peer = Peer {
                        addr,
                        local,
                        cert_name,
                    };
                    let _ = tx.send((io, peer)).await;
                }
                Err(error) => tracing::debug!(%error, "web TLS handshake failed"),
            }
        });
    }
}
