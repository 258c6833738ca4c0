//! A Redis endpoint that does nothing but answer: the ceiling of a
//! client-bound benchmark.
//!
//! `redis-benchmark` with one thread needs a whole core of its own. Against
//! this responder, which routes nothing, never sleeps (one thread polls for
//! ready sockets without blocking, so a client's write never has to wake
//! it) and writes the answers of a polling round together (the client then
//! finds many connections ready at once),
//! the client runs as fast as it can on this machine: the most requests per
//! second *any* server could be measured at in that setting. The compare
//! reports it next to herald and redis-server so a ratio near 1× reads as
//! "both at the client's limit", not as "equally fast".
//!
//! It answers `PUBLISH` with `:0` and anything else (redis-benchmark asks for
//! `CONFIG GET save` and `appendonly` first) with an empty array.

use std::io::{self, Read, Write};
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

/// The listener's token; clients are numbered from 1.
const LISTENER: Token = Token(0);

/// One client: its unparsed input and its unwritten answers.
struct Client {
    stream: TcpStream,
    input: Vec<u8>,
    output: Vec<u8>,
}

/// Serves on `listener` until the process is killed.
///
/// # Errors
/// The poller cannot be set up.
pub fn serve(listener: std::net::TcpListener) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut listener = TcpListener::from_std(listener);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    let mut clients: Vec<Option<Client>> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut answered = Vec::new();
    loop {
        // Never sleep: a client's write then finds nobody to wake.
        poll.poll(&mut events, Some(Duration::ZERO))?;
        for event in &events {
            if event.token() == LISTENER {
                while let Ok((mut stream, _)) = listener.accept() {
                    let _ = stream.set_nodelay(true);
                    let token = Token(clients.len() + 1);
                    poll.registry().register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    clients.push(Some(Client {
                        stream,
                        input: Vec::new(),
                        output: Vec::new(),
                    }));
                }
                continue;
            }
            let index = event.token().0 - 1;
            let slot = &mut clients[index];
            match slot.as_mut().map(|client| client.read(&mut buf)) {
                Some(true) => answered.push(index),
                Some(false) => *slot = None,
                None => {}
            }
        }
        // The answers of a round go out together, as redis-server writes
        // them before it polls again: the client then finds many
        // connections ready at once, which is what it does fastest.
        for index in answered.drain(..) {
            let slot = &mut clients[index];
            if slot.as_mut().is_some_and(|client| !client.write()) {
                *slot = None;
            }
        }
    }
}

impl Client {
    /// Reads everything that arrived (the poller reports edges) and answers
    /// every complete command. False once the connection is gone.
    fn read(&mut self, buf: &mut [u8]) -> bool {
        loop {
            match self.stream.read(buf) {
                Ok(0) => return false,
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        let mut at = 0;
        while let Some((used, publish)) = command(&self.input[at..]) {
            at += used;
            self.output
                .extend_from_slice(if publish { b":0\r\n" } else { b"*0\r\n" });
        }
        self.input.drain(..at);
        true
    }

    /// Writes what the socket takes of the answers. False once the
    /// connection is gone.
    fn write(&mut self) -> bool {
        while !self.output.is_empty() {
            match self.stream.write(&self.output) {
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }
}

/// The length of the first complete command in `input` (a RESP array of
/// bulk strings, or an inline line) and whether it is `PUBLISH`.
fn command(input: &[u8]) -> Option<(usize, bool)> {
    let line_end = |from: usize| {
        input
            .get(from..)?
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|i| from + i)
    };
    let end = line_end(0)?;
    if input.first() != Some(&b'*') {
        let publish = input[..end]
            .get(..7)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"PUBLISH"));
        return Some((end + 2, publish));
    }
    let count: usize = std::str::from_utf8(&input[1..end]).ok()?.parse().ok()?;
    let mut at = end + 2;
    let mut publish = false;
    for i in 0..count {
        let header_end = line_end(at)?;
        let len: usize = std::str::from_utf8(input.get(at + 1..header_end)?)
            .ok()?
            .parse()
            .ok()?;
        let data = header_end + 2;
        if input.len() < data + len + 2 {
            return None;
        }
        if i == 0 {
            publish = input[data..data + len].eq_ignore_ascii_case(b"PUBLISH");
        }
        at = data + len + 2;
    }
    Some((at, publish))
}

#[cfg(test)]
mod tests {
    use super::command;

    #[test]
    fn commands_are_split_where_they_end() {
        let publish = b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$3\r\nmsg\r\n";
        assert_eq!(command(publish), Some((publish.len(), true)));
        for cut in 0..publish.len() {
            assert_eq!(command(&publish[..cut]), None, "cut at {cut}");
        }
        let config = b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$4\r\nsave\r\n*1";
        assert_eq!(command(config), Some((config.len() - 2, false)));
        assert_eq!(command(b"PUBLISH ch msg\r\n"), Some((16, true)));
        assert_eq!(command(b"PING\r\n"), Some((6, false)));
    }
}
