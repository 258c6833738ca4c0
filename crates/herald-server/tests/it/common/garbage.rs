//! Random bytes for robustness tests: reproducible, and sent the way a
//! broken client would send them.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A xorshift generator: the same seed gives the same bytes, with no dependency.
pub struct Xorshift(u64);

impl Xorshift {
    /// A generator from `seed` (any value; zero is avoided).
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Between 1 and `max` random bytes.
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = 1 + (self.next() % max as u64) as usize;
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Connects to `addr`, sends `bytes`, and reads (and drops) whatever comes
/// back within `wait`. A refused connection or a closed socket is fine.
pub async fn send(addr: SocketAddr, bytes: &[u8], wait: Duration) {
    let Ok(mut conn) = TcpStream::connect(addr).await else {
        return;
    };
    let _ = conn.write_all(bytes).await;
    let mut sink = vec![0u8; 4096];
    let _ = tokio::time::timeout(wait, conn.read(&mut sink)).await;
}
