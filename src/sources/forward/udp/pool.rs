//! The plain-UDP upstream sockets, kept open between queries: up to `forward.udp_ports` of
//! them, each on a port the kernel drew at random, each lent to one query at a time.
//!
//! ```text
//! checkout(upstream) ─► a slot drawn at random (CSPRNG) ─ idle, connected to it, fresh ─► lent
//!    │                      │ empty, or idle but connected elsewhere, old or worn ─► a new socket
//!    │                      │   in that slot (socket + connect: a new random port), lent
//!    │                      └ lent to another query ─► draw again (at most PICKS times)
//!    └ every draw busy, or no slots (udp_ports = 0) ─► a one-off socket, closed after the query
//! Lease dropped (the reply came, the query timed out or was cancelled) ─► back to its slot;
//!    after an I/O error (ICMP port unreachable...) ─► closed, the slot empty
//! sweep, every SWEEP_EVERY ─► sockets idle IDLE_TIMEOUT closed: a quiet server holds none
//! ```
//!
//! One query per socket at a time, so a datagram on the socket can only be read by the query
//! that holds it, and RFC 5452 §9.1's matching stays what it was with a socket per query: the
//! kernel filters on the upstream's address and port (the socket is connected) and on ours,
//! and `check_reply` on the ID and question. What a reused socket adds is datagrams left over
//! from the queries it served before (a reply that came after its query gave up): under
//! another random ID, they are dropped as `Unmatched` and counted, as a late reply to a closed
//! socket would have been refused.
//!
//! **Process-wide, not per thread**: one pool per forwarder (one `dns` source, so one in the
//! process, shared by every plain upstream of every group). The runtime moves tasks between
//! its threads and every socket is registered with its one I/O driver, so any thread can use
//! any socket; a pool per thread would divide the ports a query draws from by the number of
//! threads, or multiply the descriptors held by it. A slot is a `Mutex` held for a few
//! instructions (never across an await), and queries draw slots at random, so two threads
//! rarely meet on one; one that is taken counts as busy.
//!
//! A socket stays connected to the upstream it was opened for: Linux fixes a UDP socket's
//! source address at its first `connect`, so connecting it again to an upstream reached from
//! another address would send from the wrong one. A socket drawn for another upstream is
//! closed and a new one opened in its slot; with two upstreams asked in turn (`round_robin`),
//! about half the queries pay for a new socket.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, TryLockError};
use std::time::Duration;

use rand::Rng;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// `forward.udp_ports`' default: at least the 16,000 ports issue 14 asks a query's port to be
/// drawn from, a power of two.
pub const DEFAULT_PORTS: usize = 16_384;

/// Slots drawn before a query gives up on the pool and opens a one-off socket. With the
/// default `max_concurrent` (1,000 in flight) at most 6% of 16,384 slots are lent, so four
/// draws all land on lent ones about once in 100,000 queries.
const PICKS: usize = 4;

/// A socket nobody used for this long is closed: at low rates the server holds few sockets,
/// and what it holds are recent ports.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A socket is replaced (a new one, on a new random port) once it is this old...
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// ...or has served this many queries, so the set of open ports keeps changing and a port
/// found open (SAD DNS's side channel) is soon closed. At the default size and 25,000 misses
/// a second, a socket serves about 1.5 queries a second, so the age retires it first; the
/// count matters for a small `udp_ports`.
pub const MAX_USES: u32 = 1_000;

/// How often idle sockets are looked for.
pub const SWEEP_EVERY: Duration = Duration::from_millis(500);

/// The most sockets one sweep closes. Closing one costs several microseconds of the core
/// (`epoll_ctl` and `close`); a sweep that closed at once the 16,384 a pass of misses had
/// opened held the server's one core for over 100 ms, and a client asking at half the
/// server's peak saw a p99 of 121 ms (issue 16's open-loop run, BENCHMARKS.md). 512 per half
/// second drains a full pool in 16 s in slices of a few milliseconds.
pub const MAX_CLOSES_PER_SWEEP: usize = 512;

/// File descriptors left for everything but the pool: the listeners, TCP clients
/// (`server.tcp_max_connections`, 1,024 by default), one-off and TCP-retry sockets to plain
/// upstreams, stream upstreams' connections, files read.
const HEADROOM: u64 = 2_048;

/// `ports`, or fewer if the process may not open that many descriptors besides [`HEADROOM`]
/// (`RLIMIT_NOFILE`'s soft limit, which `hearth serve` raises to the hard limit at start),
/// with a warning: a pool that ran the process out of descriptors would fail TCP accepts and
/// file reads, not just upstream queries.
///
/// Nor more than 7/8 of `net.ipv4.ip_local_port_range`, where the kernel draws the ports: each
/// open socket holds one, and the rest are left to other UDP clients on the host and to the
/// pool's replacements (a socket that cannot get a port fails its query).
pub fn affordable(ports: usize) -> usize {
    let ports = match ephemeral_ports() {
        Some(range) if ports > range / 8 * 7 => {
            tracing::warn!(
                udp_ports = ports,
                ephemeral_ports = range,
                sized_to = range / 8 * 7,
                "forward.udp_ports is more than net.ipv4.ip_local_port_range leaves room for; \
                 the pool is smaller"
            );
            range / 8 * 7
        }
        _ => ports,
    };
    let Ok((soft, _)) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    else {
        return ports;
    };
    let room = usize::try_from(soft.saturating_sub(HEADROOM)).unwrap_or(usize::MAX);
    if ports > room {
        tracing::warn!(
            udp_ports = ports,
            open_files_limit = soft,
            sized_to = room,
            "forward.udp_ports is more than the open-files limit allows; the pool is smaller, and \
             an upstream query's port is drawn from fewer ports (raise the limit: ulimit -n, \
             LimitNOFILE=)"
        );
    }
    ports.min(room)
}

/// How many ports `net.ipv4.ip_local_port_range` holds, if it can be read.
fn ephemeral_ports() -> Option<usize> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut bounds = range.split_whitespace().map(str::parse::<usize>);
    let (low, high) = (bounds.next()?.ok()?, bounds.next()?.ok()?);
    Some(high.checked_sub(low)? + 1)
}

/// Closes idle sockets every [`SWEEP_EVERY`], for as long as the pool lives.
pub async fn sweep_idle(pool: std::sync::Weak<SocketPool>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        pool.sweep_some(Instant::now(), MAX_CLOSES_PER_SWEEP);
    }
}

/// One open socket in a slot.
struct Pooled {
    socket: UdpSocket,
    /// The upstream it is connected to (and so the source address it sends from).
    upstream: SocketAddr,
    opened: Instant,
    last_used: Instant,
    uses: u32,
}

impl Pooled {
    fn open(upstream: SocketAddr, now: Instant) -> io::Result<Box<Self>> {
        Ok(Box::new(Self {
            socket: bind_connected(upstream)?,
            upstream,
            opened: now,
            last_used: now,
            uses: 1,
        }))
    }

    /// Whether it may serve a query to `upstream` now, or must be replaced first.
    fn serves(&self, upstream: SocketAddr, now: Instant) -> bool {
        self.upstream == upstream
            && self.uses < MAX_USES
            && now.saturating_duration_since(self.opened) < MAX_AGE
            && now.saturating_duration_since(self.last_used) < IDLE_TIMEOUT
    }
}

/// What a slot holds.
enum Slot {
    Empty,
    Idle(Box<Pooled>),
    /// Lent to a query (or being opened for one).
    Lent,
}

/// The counters of the pool, for the metrics and the tests.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Sockets opened into a slot.
    pub opened: AtomicU64,
    /// Queries sent on a socket already open.
    pub reused: AtomicU64,
    /// Queries that found only lent slots (or no pool) and used a socket of their own.
    pub one_off: AtomicU64,
}

/// The sockets, in their slots. See the module doc.
pub struct SocketPool {
    slots: Box<[Mutex<Slot>]>,
    pub stats: PoolStats,
}

/// A socket lent to one query. Dropped, it goes back to its slot (or closes).
pub struct Lease<'a> {
    pool: &'a SocketPool,
    /// Its slot; `None` for a one-off socket.
    index: Option<usize>,
    /// `None` only while a socket is being opened into the slot, or after an error closed it.
    pooled: Option<Box<Pooled>>,
}

impl SocketPool {
    /// A pool of `ports` slots, all empty: sockets are opened as queries need them. 0: no
    /// pool, every query opens a socket of its own.
    pub fn new(ports: usize) -> Self {
        Self {
            slots: (0..ports).map(|_| Mutex::new(Slot::Empty)).collect(),
            stats: PoolStats::default(),
        }
    }

    /// How many slots it has.
    pub fn ports(&self) -> usize {
        self.slots.len()
    }

    /// Sockets open in the slots now (lent ones included).
    pub fn open(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| !matches!(*lock(slot), Slot::Empty))
            .count()
    }

    /// A socket connected to `upstream`, for one query: see the module doc.
    pub fn checkout(&self, upstream: SocketAddr) -> io::Result<Lease<'_>> {
        if !self.slots.is_empty() {
            let now = Instant::now();
            // `rand::rng()`: the thread's ChaCha12 generator, seeded from the OS (a CSPRNG),
            // so the slot, and with it the port, cannot be predicted from earlier ones.
            let mut random = rand::rng();
            for _ in 0..PICKS {
                let index = random.random_range(0..self.slots.len());
                let mut slot = match self.slots[index].try_lock() {
                    Ok(slot) => slot,
                    Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                    Err(TryLockError::WouldBlock) => continue,
                };
                let held = std::mem::replace(&mut *slot, Slot::Lent);
                drop(slot);
                let lease = match held {
                    // Lent already (and left so): draw again.
                    Slot::Lent => continue,
                    Slot::Idle(mut pooled) if pooled.serves(upstream, now) => {
                        pooled.uses += 1;
                        pooled.last_used = now;
                        self.stats.reused.fetch_add(1, Ordering::Relaxed);
                        Lease {
                            pool: self,
                            index: Some(index),
                            pooled: Some(pooled),
                        }
                    }
                    retired => {
                        // Empty, or a socket to replace, which closes here.
                        drop(retired);
                        let mut lease = Lease {
                            pool: self,
                            index: Some(index),
                            pooled: None,
                        };
                        // On an error the lease, dropped without a socket, empties the slot.
                        lease.pooled = Some(Pooled::open(upstream, now)?);
                        self.stats.opened.fetch_add(1, Ordering::Relaxed);
                        lease
                    }
                };
                return Ok(lease);
            }
        }
        self.stats.one_off.fetch_add(1, Ordering::Relaxed);
        Ok(Lease {
            pool: self,
            index: None,
            pooled: Some(Pooled::open(upstream, Instant::now())?),
        })
    }

    /// Closes the idle sockets that are past [`IDLE_TIMEOUT`] or [`MAX_AGE`] at `now`;
    /// returns how many. Lent ones are left to their queries.
    pub fn sweep(&self, now: Instant) -> usize {
        self.sweep_some(now, usize::MAX)
    }

    /// [`SocketPool::sweep`], stopping after `limit` sockets closed.
    pub fn sweep_some(&self, now: Instant, limit: usize) -> usize {
        let mut closed = 0;
        for slot in self.slots.iter() {
            if closed >= limit {
                break;
            }
            let mut slot = lock(slot);
            if let Slot::Idle(pooled) = &*slot {
                if now.saturating_duration_since(pooled.last_used) >= IDLE_TIMEOUT
                    || now.saturating_duration_since(pooled.opened) >= MAX_AGE
                {
                    *slot = Slot::Empty;
                    closed += 1;
                }
            }
        }
        closed
    }
}

fn lock(slot: &Mutex<Slot>) -> std::sync::MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Lease<'_> {
    /// The socket, connected to the upstream.
    pub fn socket(&self) -> io::Result<&UdpSocket> {
        self.pooled
            .as_ref()
            .map(|pooled| &pooled.socket)
            .ok_or_else(|| io::Error::other("the socket was closed"))
    }

    /// The socket failed (an ICMP error, a send that could not be made): it is closed instead
    /// of going back to its slot.
    pub fn discard(&mut self) {
        self.pooled = None;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(index) = self.index else {
            return;
        };
        let slot = match self.pooled.take() {
            Some(pooled) => Slot::Idle(pooled),
            None => Slot::Empty,
        };
        *lock(&self.pool.slots[index]) = slot;
    }
}

/// A UDP socket on a port the kernel draws at random, connected to `upstream`, registered
/// with the runtime. Three system calls: `socket` (non-blocking from the start), `connect`
/// (which binds a random ephemeral port as it connects, RFC 6056's "random" algorithm on Linux)
/// and the runtime's `epoll_ctl`; no separate `bind` or `fcntl`.
fn bind_connected(upstream: SocketAddr) -> io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(upstream),
        socket2::Type::DGRAM.nonblocking().cloexec(),
        Some(socket2::Protocol::UDP),
    )?;
    socket.connect(&upstream.into())?;
    UdpSocket::from_std(socket.into())
}
