//! The replies of misses that waited on an upstream, sent together.
//!
//! A miss the socket's thread could not answer at once is finished by a task on the runtime.
//! Each used to send its reply with a `sendto` of its own; under a miss load many finish in the
//! same turn of the runtime (one `epoll_wait` reports many upstream replies), so the first to
//! finish now yields once and sends every reply queued by then in one `sendmmsg`, as the
//! thread does for its own batches. `tokio::task::yield_now` defers the task until the runtime
//! has run the tasks already woken and polled its I/O driver again, which is the point where
//! no more replies of this turn can arrive. With one miss at a time the cost is that one
//! yield.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use nix::sys::socket::{sendto, MsgFlags, SockaddrStorage};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::worker::{send_batch, GeneralAnswer};

/// One fast-path socket's replies waiting to be sent by the runtime.
pub(super) struct Outbox {
    socket: Arc<std::net::UdpSocket>,
    pending: Mutex<Vec<(Vec<u8>, Option<SockaddrStorage>)>>,
}

impl Outbox {
    pub(super) fn new(socket: Arc<std::net::UdpSocket>) -> Self {
        Self {
            socket,
            pending: Mutex::new(Vec::new()),
        }
    }

    /// Queues a reply; true when the queue was empty, so the caller is the one to flush it.
    fn push(&self, reply: Vec<u8>, peer: SocketAddr) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.push((reply, Some(SockaddrStorage::from(peer))));
        pending.len() == 1
    }

    /// Sends everything queued: one `sendmmsg` while the send buffer has room, then the rest
    /// one at a time as room comes, for at most [`SEND_WAIT`] in all (the lot, not each: a
    /// full buffer must not hold a hundred replies for 200 ms apiece); what is left then is
    /// dropped, as a UDP server under overload drops.
    async fn flush(&self) {
        let deadline = Instant::now() + SEND_WAIT;
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let (replies, destinations): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let mut sent = send_batch(
            &self.socket,
            &replies,
            &destinations,
            MsgFlags::MSG_DONTWAIT,
        );
        while let (Some(reply), Some(Some(destination))) =
            (replies.get(sent), destinations.get(sent))
        {
            let send = || {
                sendto(
                    self.socket.as_raw_fd(),
                    reply,
                    destination,
                    MsgFlags::MSG_DONTWAIT,
                )
                .map_err(io::Error::from)
            };
            if let Err(error) = when_writable(send, deadline).await {
                tracing::debug!(%error, "UDP send error");
            }
            sent += 1;
        }
    }
}

/// Finishes a miss that had to wait, in a task, and queues its reply on `outbox`; the first
/// reply queued in a turn of the runtime sends the lot.
pub(super) async fn finish_miss(
    answer: GeneralAnswer,
    outbox: Arc<Outbox>,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    let Some(reply) = answer.await else {
        return;
    };
    // The query is answered: its place in flight is free once the reply is queued.
    drop(permit);
    if outbox.push(reply.bytes, peer) {
        tokio::task::yield_now().await;
        outbox.flush().await;
    }
}

/// How long a flush waits for room in a full send buffer, in all: what Unbound waits
/// (`SEND_BLOCKED_WAIT_TIMEOUT`, 200 ms) before it drops a UDP reply.
const SEND_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// Runs a non-blocking send until it does not find the send buffer full, checking again every
/// millisecond, until `deadline`. The socket is not in epoll (see [`super::worker::spawn`]), so
/// its writability cannot be awaited; the send buffer is full only under overload.
async fn when_writable<R>(
    mut send: impl FnMut() -> io::Result<R>,
    deadline: Instant,
) -> io::Result<R> {
    loop {
        match send() {
            Err(error)
                if error.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::Semaphore;

    use super::*;
    use crate::chain::Validity;
    use crate::server::Reply;

    /// Misses finishing in the same turn of the runtime are all sent: the first queues and
    /// yields, the others only queue, and nothing queued is left behind, also when a reply
    /// comes after the flush (it starts a flush of its own).
    #[tokio::test(flavor = "current_thread")]
    async fn replies_finished_together_are_all_sent() {
        let server = Arc::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let peer = client.local_addr().unwrap();
        let outbox = Arc::new(Outbox::new(Arc::clone(&server)));
        let permits = Arc::new(Semaphore::new(16));
        let reply = |n: u8| -> GeneralAnswer {
            Box::pin(async move {
                Some(Reply {
                    bytes: vec![n; 12],
                    validity: Validity::Never,
                    source: None,
                })
            })
        };
        let mut tasks = Vec::new();
        for n in 0..5 {
            let permit = Arc::clone(&permits).acquire_owned().await.unwrap();
            tasks.push(tokio::spawn(finish_miss(
                reply(n),
                Arc::clone(&outbox),
                peer,
                permit,
            )));
        }
        for task in tasks {
            task.await.unwrap();
        }
        // One more after the others were flushed: queued alone, so it flushes itself.
        let permit = Arc::clone(&permits).acquire_owned().await.unwrap();
        finish_miss(reply(5), Arc::clone(&outbox), peer, permit).await;
        let mut seen = Vec::new();
        let mut buffer = [0u8; 64];
        for _ in 0..6 {
            let (length, _) = client.recv_from(&mut buffer).unwrap();
            assert_eq!(length, 12);
            seen.push(buffer[0]);
        }
        seen.sort_unstable();
        assert_eq!(seen, vec![0, 1, 2, 3, 4, 5]);
        assert!(outbox.pending.lock().unwrap().is_empty());
        // Every place in flight was given back.
        assert_eq!(permits.available_permits(), 16);
    }
}
