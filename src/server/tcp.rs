//! The TCP listener (RFC 1035 §4.2.2, RFC 7766).
//!
//! - Messages are framed by a two-byte length. A connection carries many queries; each is
//!   answered in a task of its own and its reply written as soon as it is ready, so a slow
//!   forwarded query does not hold back a local answer behind it (RFC 7766 §6.2.1.1).
//! - A connection with no complete message for `idle_timeout` is closed (RFC 7766 §6.2.3); the
//!   timeout covers the whole message, so a message trickled a byte at a time is closed too.
//! - The front door ([`super::admission`]) decides at accept (a connection slot, or closed at
//!   once: at most `server.tcp_max_connections` are open, so idle connections cannot crowd out
//!   UDP or each other) and again for each message.
//! - A frame shorter than a header, or a message that must not be answered (a response), closes
//!   the connection (BAD-INPUTS). A client that half-closes after its query still gets the
//!   answer: the write half stays open until every reply is written.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::admission::{Connection, Verdict};
use super::{Client, Engine, Transport};

/// Queries of one connection answered at once; more wait to be read.
const MAX_PIPELINED: usize = 64;

/// A DNS header is 12 bytes (RFC 1035 §4.1.1); a shorter frame cannot be a query.
const HEADER_LENGTH: usize = 12;

/// How the listener treats connections.
#[derive(Clone, Copy, Debug)]
pub struct TcpLimits {
    pub idle_timeout: Duration,
}

/// Binds a TCP listener. `SO_REUSEADDR` lets a restarted server bind while old connections are
/// in TIME_WAIT.
pub fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Accepts and serves connections until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    limits: TcpLimits,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Running out of file descriptors, or a connection reset before accept:
                    // back off briefly rather than spin.
                    tracing::warn!(%error, "TCP accept error");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let Some(connection) = engine.admission().connect(peer) else {
            drop(stream);
            continue;
        };
        let engine = Arc::clone(&engine);
        let shutdown = shutdown.clone();
        let inner_tracker = tracker.clone();
        tracker.spawn(async move {
            serve_connection(
                stream,
                peer,
                engine,
                limits,
                shutdown,
                inner_tracker,
                connection,
            )
            .await;
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    engine: Arc<Engine>,
    limits: TcpLimits,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    _connection: Connection,
) {
    // Server shutdown stops reading but lets the replies in flight be written; `close` drops
    // the connection at once, for a message that must not be answered.
    let close = CancellationToken::new();
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let (replies, outgoing) = mpsc::channel::<Vec<u8>>(MAX_PIPELINED);
    let writer_task = tracker.spawn(write_replies(
        writer,
        outgoing,
        close.clone(),
        limits.idle_timeout,
    ));
    let pipelined = Arc::new(Semaphore::new(MAX_PIPELINED));

    let mut idle_since = Instant::now();
    let mut peeked = [0u8; 1];
    loop {
        // Idle: wait for the next message to start, for the idle timeout as it is now (shorter
        // when the connection slots are more than half taken), looking again whenever the
        // pressure rises. The first byte is only peeked at (MSG_PEEK), so giving up loses
        // nothing. (`readable()` will not do: a new connection reports readable at once.)
        let timeout = engine.admission().idle_timeout(limits.idle_timeout);
        let waited = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = close.cancelled() => break,
            _ = engine.admission().pressure() => continue,
            ready = tokio::time::timeout_at(idle_since + timeout, reader.peek(&mut peeked)) => ready,
        };
        match waited {
            Err(_) => {
                tracing::debug!(%peer, ?timeout, "TCP connection idle: closed");
                break;
            }
            // End of stream or a reset: the client is done.
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(_)) => {}
        }
        // A message has started: the whole of it must come within the idle timeout, so one
        // trickled a byte at a time is closed too.
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = close.cancelled() => break,
            read = tokio::time::timeout(limits.idle_timeout, read_message(&mut reader)) => match read {
                Err(_) => {
                    tracing::debug!(%peer, "TCP message incomplete within the idle timeout: closed");
                    break;
                }
                Ok(Err(_)) => break, // end of stream or a reset: the client is done.
                Ok(Ok(message)) => message,
            },
        };
        idle_since = Instant::now();
        if message.len() < HEADER_LENGTH {
            tracing::debug!(%peer, length = message.len(), "TCP frame shorter than a header: closed");
            break;
        }
        let admitted = match engine.admission().request(peer, Transport::Tcp, &message) {
            Verdict::Admit(admitted) => admitted,
            Verdict::Reject(decision) => {
                let client = Client::new(peer, Transport::Tcp);
                let mut rejection = Vec::new();
                if !engine.reject(&message, &client, decision, &mut rejection) {
                    break; // dropped: over TCP, the connection closes.
                }
                if replies.send(rejection).await.is_err() {
                    break;
                }
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&pipelined).acquire_owned().await else {
            break;
        };
        let engine = Arc::clone(&engine);
        let replies = replies.clone();
        let close = close.clone();
        tracker.spawn(async move {
            let _permit = permit;
            match engine.answer(&message, &admitted).await {
                Some(reply) => {
                    let _ = replies.send(reply.bytes).await;
                }
                None => close.cancel(),
            }
        });
    }
    // Dropping our sender lets the writer finish once every query task has sent its reply.
    drop(replies);
    let _ = writer_task.await;
}

/// Reads one length-prefixed message.
async fn read_message(reader: &mut OwnedReadHalf) -> io::Result<Vec<u8>> {
    let length = usize::from(reader.read_u16().await?);
    let mut message = vec![0u8; length];
    reader.read_exact(&mut message).await?;
    Ok(message)
}

/// Writes replies as they come, each with its length prefix in the same write. A client that
/// stops reading would block a write forever and hold its connection slot: a write that makes
/// no progress for `write_timeout` closes the connection.
async fn write_replies(
    mut writer: OwnedWriteHalf,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    close: CancellationToken,
    write_timeout: Duration,
) {
    let mut frame = Vec::with_capacity(512);
    loop {
        let reply = tokio::select! {
            // A message that must not be answered closes the whole connection at once.
            _ = close.cancelled() => break,
            reply = outgoing.recv() => match reply {
                Some(reply) => reply,
                None => break,
            },
        };
        let Ok(length) = u16::try_from(reply.len()) else {
            continue;
        };
        frame.clear();
        frame.extend_from_slice(&length.to_be_bytes());
        frame.extend_from_slice(&reply);
        match tokio::time::timeout(write_timeout, writer.write_all(&frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => {
                // Stop the reader too: nothing more can be answered on this connection.
                close.cancel();
                break;
            }
        }
    }
    let _ = writer.shutdown().await;
}
