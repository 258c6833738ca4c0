//! Writing a connection's output without its writer task.
//!
//! A reader that answers requests (Redis replies, `PONG`) would otherwise
//! queue its answers, wake the writer task, and let that task write them:
//! a task switch, often a thread wake-up on the other core, per batch of
//! requests. With a [`DirectWrite`] attached, [`Outbox::write_now`] writes
//! pending output from the caller's thread with one non-blocking write when
//! nobody else is writing, as a single-threaded server does. Whatever the
//! socket does not take at once goes back to the front of the queue for the
//! writer task, which still does every write that has to wait.

use std::fmt;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;

use super::{Outbox, OutboxBatch, WriteRight};

/// A socket that takes writes without waiting.
pub trait DirectWrite: Send + Sync + fmt::Debug {
    /// Writes a prefix of `bufs` if the socket can take it now, and returns
    /// its length. `Ok(0)` or [`io::ErrorKind::WouldBlock`]: nothing fits now.
    ///
    /// # Errors
    /// What the socket reports; the writer task meets the same error on its
    /// next write and closes the connection.
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
}

impl Outbox {
    /// Attaches the connection's socket for [`Outbox::write_now`].
    #[must_use]
    pub fn with_direct_write(self, socket: Arc<dyn DirectWrite>) -> Self {
        self.state.lock().direct = Some(socket);
        self
    }

    /// Appends the caller's own protocol output, like
    /// [`Outbox::push_control`], but without waking the writer task when a
    /// [`DirectWrite`] is attached: the caller promises to call
    /// [`Outbox::write_now`] before it next waits, so the answers to a batch
    /// of requests go out in one write from its own thread.
    pub fn push_reply(&self, encode: impl FnOnce(&mut BytesMut)) -> bool {
        self.append_control(encode, true)
    }

    /// Writes what is pending now, from this thread, if a [`DirectWrite`]
    /// is attached and no other write is in progress; what the socket does
    /// not take is left (in order) for the writer task, which is woken.
    /// A write in progress elsewhere takes the pending output when it ends.
    pub fn write_now(&self) {
        let mut state = self.state.lock();
        if state.right != WriteRight::Free || state.pending.is_empty() || state.closed.is_some() {
            return;
        }
        let Some(socket) = state.direct.clone() else {
            // Without a socket `push_reply` woke the writer task already.
            return;
        };
        self.taken(&mut state);
        let batch = std::mem::take(&mut state.pending);
        state.right = WriteRight::Inline;
        // Counted toward the limit while it is being written (a write
        // that does not wait: no clock on it).
        state.in_flight = batch.len();
        state.last_progress = Some(tokio::time::Instant::now());
        self.pending_hint.store(batch.len(), Ordering::Relaxed);
        drop(state);

        let written = match batch.contiguous() {
            Some(bytes) => socket.try_write_vectored(&[IoSlice::new(bytes)]),
            None => {
                let slices = batch.slices();
                let iov: Vec<IoSlice<'_>> = slices.iter().map(|s| IoSlice::new(s)).collect();
                socket.try_write_vectored(&iov)
            }
        }
        .unwrap_or(0);
        drop(socket);
        self.end_inline_write(batch, written);
    }

    /// Gives the write right back after `written` bytes of `batch` went out:
    /// the rest goes to the front of the queue.
    fn end_inline_write(&self, mut batch: OutboxBatch, written: usize) {
        let mut state = self.state.lock();
        state.right = WriteRight::Free;
        state.in_flight = 0;
        if written < batch.len() {
            let mut rest = batch.after(written);
            rest.append(&mut state.pending);
            state.pending = rest;
        } else if state.pending.is_empty() {
            // Keep the buffer's capacity for the next batch.
            batch.clear();
            state.pending = batch;
        }
        self.pending_hint.store(state.held(), Ordering::Relaxed);
        // The writer task waits for the right when there is more to write,
        // or when it is to finish once the last write is done.
        let wake = !state.pending.is_empty() || state.closed.is_some();
        drop(state);
        if wake {
            self.wake.notify_one();
        }
        if written > 0 {
            self.made_room();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::{BufMut, Bytes};
    use futures::FutureExt;
    use parking_lot::Mutex;

    use super::*;
    use crate::outbox::LARGE_PAYLOAD;
    use crate::sink::{CloseReason, DeliveryCtx, SlowConsumerPolicy};

    /// A socket that takes at most `room` more bytes, then would block.
    #[derive(Debug, Default)]
    struct Socket {
        written: Mutex<Vec<u8>>,
        room: Mutex<usize>,
    }

    impl Socket {
        fn with_room(room: usize) -> Arc<Self> {
            Arc::new(Self {
                written: Mutex::default(),
                room: Mutex::new(room),
            })
        }

        fn written(&self) -> Vec<u8> {
            self.written.lock().clone()
        }
    }

    impl DirectWrite for Socket {
        fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut room = self.room.lock();
            if *room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut taken = 0;
            for buf in bufs {
                let n = buf.len().min(*room);
                self.written.lock().extend_from_slice(&buf[..n]);
                *room -= n;
                taken += n;
            }
            Ok(taken)
        }
    }

    fn outbox(socket: &Arc<Socket>) -> Outbox {
        Outbox::new(1 << 20, SlowConsumerPolicy::Close).with_direct_write(socket.clone())
    }

    fn next(out: &Outbox) -> Option<Vec<u8>> {
        let mut batch = OutboxBatch::new();
        out.next_batch(&mut batch)
            .now_or_never()
            .map(|r| r.expect("open"))
            .map(|()| batch.slices().concat())
    }

    #[test]
    fn replies_are_written_by_the_caller_without_the_writer_task() {
        let socket = Socket::with_room(usize::MAX);
        let out = outbox(&socket);
        assert!(out.push_reply(|b| b.put_slice(b"+PONG\r\n")));
        assert!(out.push_reply(|b| b.put_slice(b":1\r\n")));
        assert!(socket.written().is_empty(), "nothing before write_now");
        out.write_now();
        assert_eq!(socket.written(), b"+PONG\r\n:1\r\n");
        assert_eq!(out.pending_bytes(), 0);
        assert_eq!(next(&out), None, "the writer task has nothing to do");
    }

    #[test]
    fn what_the_socket_does_not_take_goes_first_to_the_writer_task() {
        let socket = Socket::with_room(3);
        let out = outbox(&socket);
        out.push_reply(|b| b.put_slice(b"first "));
        out.write_now();
        out.push_reply(|b| b.put_slice(b"second"));
        assert_eq!(socket.written(), b"fir");
        assert_eq!(next(&out).as_deref(), Some(&b"st second"[..]));
    }

    #[test]
    fn nothing_is_written_inline_while_the_writer_task_writes() {
        let socket = Socket::with_room(usize::MAX);
        let out = outbox(&socket);
        out.push_control(|b| b.put_slice(b"one "));
        assert_eq!(next(&out).as_deref(), Some(&b"one "[..]));
        // The task holds the batch until it asks for the next one.
        out.push_reply(|b| b.put_slice(b"two"));
        out.write_now();
        assert!(socket.written().is_empty());
        assert_eq!(next(&out).as_deref(), Some(&b"two"[..]));
        // Asking again (with nothing queued) gives the right back: inline
        // writes resume.
        assert_eq!(next(&out), None);
        out.push_reply(|b| b.put_slice(b"three"));
        out.write_now();
        assert_eq!(socket.written(), b"three");
    }

    #[test]
    fn large_payloads_survive_every_partial_write() {
        let large = Bytes::from((0..LARGE_PAYLOAD).map(|i| i as u8).collect::<Vec<_>>());
        let mut whole = Vec::new();
        let build = |out: &Arc<Outbox>| {
            let mut ctx = DeliveryCtx::new();
            for tag in [b"<a>", b"<b>"] {
                out.push_message(&mut ctx, 10 + LARGE_PAYLOAD, |w| {
                    w.put(tag);
                    w.put_payload(&large);
                    w.put(b"\r\n");
                });
            }
            out.push_reply(|b| b.put_slice(b"tail"));
        };
        let reference = Arc::new(Outbox::new(1 << 20, SlowConsumerPolicy::Close));
        build(&reference);
        whole.extend(next(&reference).expect("output"));
        for room in (0..whole.len()).step_by(97).chain([LARGE_PAYLOAD + 3]) {
            let socket = Socket::with_room(room);
            let out = Arc::new(outbox(&socket));
            build(&out);
            out.write_now();
            let mut seen = socket.written();
            seen.extend(next(&out).unwrap_or_default());
            assert!(seen == whole, "{room} bytes written inline");
        }
    }

    #[test]
    fn closing_lets_go_of_the_socket() {
        let socket = Socket::with_room(usize::MAX);
        let out = outbox(&socket);
        assert_eq!(Arc::strong_count(&socket), 2);
        out.close(CloseReason::Finished);
        assert_eq!(Arc::strong_count(&socket), 1);
        assert!(!out.push_reply(|b| b.put_slice(b"late")));
    }

    #[test]
    fn without_a_socket_replies_wake_the_writer_task() {
        let out = Outbox::new(1024, SlowConsumerPolicy::Close);
        out.push_reply(|b| b.put_slice(b"+OK\r\n"));
        out.write_now();
        assert_eq!(next(&out).as_deref(), Some(&b"+OK\r\n"[..]));
    }
}
