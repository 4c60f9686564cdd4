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
    dont_fragment(&socket, address);
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    Ok(socket.into())
}

/// Sends every reply with the IPv4 Don't Fragment bit set (over IPv6, never with a fragment
/// header), whatever path MTU the kernel has learned.
///
/// RFC 9715 §3.1 recommends that UDP responders send their replies with `IP_DONTFRAG`
/// (`IPV6_DONTFRAG`), so that no reply is ever split into fragments: a later fragment carries
/// no UDP header, so an off-path attacker who guesses the IP ID can forge one (the cache
/// poisoning that RFC cites) without knowing the query's port or ID. Linux's default
/// (`IP_PMTUDISC_WANT`) sets DF too, but follows the path MTU it learns and fragments a reply
/// larger than that itself; and a spoofed ICMP "fragmentation needed" lowers it, to 552 bytes
/// on IPv4. `IP_PMTUDISC_PROBE` sets DF and ignores the learned path MTU. That is safe here
/// because no UDP reply is larger than [`super::UDP_PAYLOAD`], 1232 bytes, which with its
/// headers fits IPv6's 1280-byte minimum MTU and every real interface; a datagram larger than
/// its interface's MTU would fail to send (`EMSGSIZE`) rather than go out in pieces.
///
/// It also spares the kernel a hashed IP ID per reply. A datagram that may be fragmented takes
/// `__ip_select_ident`'s keyed hash and a shared counter; one that may not, sent from an
/// unconnected socket, gets ID 0 (RFC 6864: an atomic datagram's ID is never used). Checked on
/// the wire by sniffing loopback: ID 0 and DF with this, a random ID and DF without.
///
/// BIND sets the same option since its DNS Flag Day 2020 changes. A kernel that refuses it
/// leaves the socket as it was, and the replies still go out.
fn dont_fragment(socket: &Socket, address: SocketAddr) {
    #[cfg(target_os = "linux")]
    {
        use rustix::net::sockopt::{
            set_ip_mtu_discover, set_ipv6_mtu_discover, Ipv4PathMtuDiscovery, Ipv6PathMtuDiscovery,
        };
        let result = if address.is_ipv6() {
            set_ipv6_mtu_discover(socket, Ipv6PathMtuDiscovery::PROBE)
        } else {
            set_ip_mtu_discover(socket, Ipv4PathMtuDiscovery::PROBE)
        };
        if let Err(error) = result {
            tracing::debug!(%error, "could not set Don't Fragment on the UDP socket");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (socket, address);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The socket the fast path serves: DF on every reply (RFC 9715), and SO_REUSEPORT only
    /// when asked for (`app::start` asks when it binds more than one socket per address).
    #[test]
    fn replies_are_never_fragmented_and_reuseport_is_set_only_when_shared() {
        let lone = bind("127.0.0.1:0".parse().expect("address"), false).expect("bind");
        let shared = bind("127.0.0.1:0".parse().expect("address"), true).expect("bind");
        assert!(!socket2::SockRef::from(&lone)
            .reuse_port()
            .expect("getsockopt"));
        assert!(socket2::SockRef::from(&shared)
            .reuse_port()
            .expect("getsockopt"));
        #[cfg(target_os = "linux")]
        {
            use rustix::net::sockopt::{ip_mtu_discover, Ipv4PathMtuDiscovery};
            for socket in [&lone, &shared] {
                assert_eq!(
                    ip_mtu_discover(socket).expect("getsockopt"),
                    Ipv4PathMtuDiscovery::PROBE
                );
            }
            // IPv6 where the machine has it (a container may not).
            if let Ok(v6) = bind("[::1]:0".parse().expect("address"), false) {
                use rustix::net::sockopt::{ipv6_mtu_discover, Ipv6PathMtuDiscovery};
                assert_eq!(
                    ipv6_mtu_discover(&v6).expect("getsockopt"),
                    Ipv6PathMtuDiscovery::PROBE
                );
            }
        }
    }
}
