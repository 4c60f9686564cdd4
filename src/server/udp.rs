//! The UDP listener: datagrams in, the front door ([`super::admission`]), [`Engine::answer`],
//! datagrams out.
//!
//! One task reads the socket; each query is answered in a task of its own, because a forwarded
//! query may wait on an upstream for seconds while local answers take microseconds. The number
//! of queries in flight is capped: at the cap the reader waits, the kernel's receive buffer
//! absorbs the burst, and beyond that the kernel drops, which is what a client's retry is for.
//! A batched, allocation-free path for hot answers replaces this listener in a later issue.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::admission::Verdict;
use super::{Client, Engine, Transport};

/// Socket buffer sizes. The kernel default (208 KiB) loses queries at a few hundred
/// outstanding (PEERS.md: ~0.07% at 500); NSD's 2 MiB loses none. The kernel caps the value at
/// `net.core.rmem_max` unless we may force it.
const SOCKET_BUFFER: usize = 4 << 20;

/// The largest datagram read: anything larger is cut by the kernel and then fails to parse.
const MAX_DATAGRAM: usize = 65_535;

/// Binds a UDP socket with large buffers. An IPv6 socket is IPv6-only, so `[::]:53` and
/// `0.0.0.0:53` can both be listed. With `shared`, `SO_REUSEPORT` is set, so that one socket per
/// core can be bound to the same address and the kernel spreads datagrams across them. The
/// socket is non-blocking, and not yet registered with the runtime: the fast path serves it
/// from a thread of its own (`server::fast::spawn`).
pub fn bind(address: SocketAddr, shared: bool) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    #[cfg(unix)]
    if shared {
        socket.set_reuse_port(true)?;
    }
    set_buffers(&socket);
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    Ok(socket.into())
}

/// Asks for large buffers; falls back to what the kernel allows, never fails the bind.
fn set_buffers(socket: &Socket) {
    if socket.set_recv_buffer_size(SOCKET_BUFFER).is_err() {
        tracing::debug!("could not set the UDP receive buffer size");
    }
    if socket.set_send_buffer_size(SOCKET_BUFFER).is_err() {
        tracing::debug!("could not set the UDP send buffer size");
    }
}

/// Serves `socket` until `shutdown` is cancelled. Queries already read are answered; their
/// tasks are on `tracker`.
pub async fn serve(
    socket: UdpSocket,
    engine: Arc<Engine>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    max_in_flight: usize,
) {
    let socket = Arc::new(socket);
    // At the limit the reader waits: this listener has no hits to keep answering, and the
    // kernel's buffer absorbs the burst.
    let in_flight = Arc::new(Semaphore::new(max_in_flight));
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    let mut rejection = Vec::with_capacity(512);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = Arc::clone(&in_flight).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (length, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            received = socket.recv_from(&mut buffer) => match received {
                Ok(received) => received,
                Err(error) => {
                    // ICMP errors from earlier sends surface here on some systems; they concern
                    // one peer, not the socket.
                    tracing::debug!(%error, "UDP receive error");
                    continue;
                }
            },
        };
        let admitted = match engine
            .admission()
            .request(peer, Transport::Udp, &buffer[..length])
        {
            Verdict::Admit(admitted) => admitted,
            Verdict::Reject(decision) => {
                let client = Client::new(peer, Transport::Udp);
                if engine.reject(&buffer[..length], &client, decision, &mut rejection) {
                    if let Err(error) = socket.send_to(&rejection, peer).await {
                        tracing::debug!(%peer, %error, "UDP send error");
                    }
                }
                continue;
            }
        };
        let packet = buffer[..length].to_vec();
        let engine = Arc::clone(&engine);
        let socket = Arc::clone(&socket);
        tracker.spawn(async move {
            let _permit = permit;
            if let Some(reply) = engine.answer(&packet, &admitted).await {
                if let Err(error) = socket.send_to(&reply.bytes, peer).await {
                    tracing::debug!(%peer, %error, "UDP send error");
                }
            }
        });
    }
}
