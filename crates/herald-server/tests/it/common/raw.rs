//! A raw-bytes protocol client for edge cases real clients will not send.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound on any single wait, so a broken server fails a test instead of hanging it.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A raw TCP connection with a read buffer.
pub struct RawClient {
    stream: TcpStream,
    buf: Vec<u8>,
    closed: bool,
}

impl RawClient {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            buf: Vec::new(),
            closed: false,
        }
    }

    /// Sends bytes as they are.
    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        // The server may already have closed after an error: that is for the reader to see.
        let _ = self.stream.write_all(bytes.as_ref()).await;
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(PATIENCE, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.closed = true;
                false
            }
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(_) => panic!(
                "no data within {PATIENCE:?}; have {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// Reads one CRLF-terminated line (without the CRLF).
    pub async fn line(&mut self) -> String {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..pos + 2).collect();
                return String::from_utf8_lossy(&line[..pos]).into_owned();
            }
            if !self.fill().await {
                panic!(
                    "connection closed while waiting for a line; have {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
        }
    }

    /// Reads exactly `n` bytes.
    pub async fn bytes(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill().await, "closed while reading {n} bytes");
        }
        self.buf.drain(..n).collect()
    }

    /// Reads until the output contains one of `markers` and ends with CRLF
    /// after it, or the peer closes. Returns everything read.
    pub async fn until_marker(&mut self, markers: &[&str]) -> Vec<u8> {
        loop {
            let text = String::from_utf8_lossy(&self.buf);
            let done = markers
                .iter()
                .any(|m| text.find(m).is_some_and(|at| text[at..].contains("\r\n")));
            if done || self.closed {
                return std::mem::take(&mut self.buf);
            }
            self.fill().await;
        }
    }

    /// Reads until the output ends with `pongs` PONG lines in total, or the
    /// peer closes. Returns everything read.
    pub async fn until_pongs(&mut self, pongs: usize) -> Vec<u8> {
        loop {
            let text = String::from_utf8_lossy(&self.buf);
            let seen = text.matches("PONG\r\n").count();
            if (seen >= pongs && text.ends_with("PONG\r\n")) || self.closed {
                return std::mem::take(&mut self.buf);
            }
            self.fill().await;
        }
    }

    /// True once the peer has closed the connection.
    pub async fn is_closed(&mut self) -> bool {
        while !self.closed {
            if !self.fill().await {
                break;
            }
        }
        self.closed
    }
}
