//! Who asked, and how: what the listeners know of a query's sender, carried with the query from
//! the socket through the admission step to the metrics and the query log.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// How the message arrived, which decides how large the reply may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        }
    }
}

/// The sender of a query: its address and port as the socket saw them, and the transport.
/// (A TLS or HTTPS listener will add the authenticated identity here.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    pub address: SocketAddr,
    pub transport: Transport,
}

impl Client {
    pub fn new(address: SocketAddr, transport: Transport) -> Self {
        Self { address, transport }
    }

    pub fn ip(&self) -> IpAddr {
        self.address.ip()
    }
}

/// Queries waiting on another server (an upstream), counted per client, for
/// `server.max_waiting_per_client`: one client must not park thousands of queries on a slow
/// upstream name and hold everyone's capacity (the DNSBomb pattern, CVE-2024-33655).
///
/// A fixed table of counters indexed by a keyed hash of the client's address (its /64 for
/// IPv6, where one host holds a whole /64): memory does not grow with the number of clients,
/// however many addresses a flood spoofs. Two clients that share a counter share its limit,
/// which errs on the side of refusing; with 65,536 counters and a random key that is rare and
/// cannot be aimed at.
pub struct Waiting {
    counts: Box<[AtomicU32]>,
    limit: u32,
    key: u64,
}

impl fmt::Debug for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiting")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// Counters in a [`Waiting`] table.
const WAITING_SLOTS: usize = 1 << 16;

impl Waiting {
    /// A table allowing `limit` waiting queries per client.
    pub fn new(limit: u32) -> Arc<Self> {
        Arc::new(Self {
            counts: (0..WAITING_SLOTS).map(|_| AtomicU32::new(0)).collect(),
            limit,
            key: rand::random(),
        })
    }

    /// The limit per client.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The counter of the client at `ip`.
    pub fn slot(self: &Arc<Self>, ip: IpAddr) -> WaitSlot {
        let index = (keyed_hash(host_key(ip), self.key) as usize) % self.counts.len();
        WaitSlot {
            table: Arc::clone(self),
            index,
        }
    }
}

/// One client's counter in a [`Waiting`] table, carried by its question.
#[derive(Clone, Debug)]
pub struct WaitSlot {
    table: Arc<Waiting>,
    index: usize,
}

impl WaitSlot {
    /// Counts one more waiting query, or `None` when the client is at its limit: the query must
    /// then be answered without waiting.
    pub fn enter(&self) -> Option<WaitGuard> {
        let count = &self.table.counts[self.index];
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.table.limit).then_some(n + 1)
            })
            .ok()?;
        Some(WaitGuard { slot: self.clone() })
    }

    /// The limit it counts against.
    pub fn limit(&self) -> u32 {
        self.table.limit
    }
}

/// A query counted as waiting; the count goes down when this is dropped.
#[derive(Debug)]
pub struct WaitGuard {
    slot: WaitSlot,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.slot.table.counts[self.slot.index].fetch_sub(1, Ordering::AcqRel);
    }
}

/// The part of an address that names one host: all of an IPv4 address, the /64 of an IPv6 one
/// (RFC 4291 §2.5.1: the interface identifier is the low 64 bits, which a host may change at
/// will), an IPv4-mapped IPv6 address as the IPv4 address it carries.
pub fn host_key(ip: IpAddr) -> u128 {
    prefix_key(ip, 32, 64)
}

/// `ip` cut to its first `ipv4_prefix` or `ipv6_prefix` bits, with the family in the top bits
/// so an IPv4 prefix never equals an IPv6 one.
pub fn prefix_key(ip: IpAddr, ipv4_prefix: u8, ipv6_prefix: u8) -> u128 {
    match ip {
        IpAddr::V4(v4) => v4_key(v4, ipv4_prefix),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_key(v4, ipv4_prefix),
            None => {
                let bits = u128::from(v6);
                match ipv6_prefix {
                    0 => 0,
                    n if n >= 128 => bits,
                    n => bits & (u128::MAX << (128 - u32::from(n))),
                }
            }
        },
    }
}

fn v4_key(v4: std::net::Ipv4Addr, prefix: u8) -> u128 {
    let bits = u32::from(v4);
    let masked = match prefix {
        0 => 0,
        n if n >= 32 => bits,
        n => bits & (u32::MAX << (32 - u32::from(n))),
    };
    (1u128 << 127) | u128::from(masked)
}

/// A keyed hash of a prefix, for the fixed tables indexed by client (this one, and the rate
/// limiter's). Not cryptographic: the random key keeps a flood from choosing which clients
/// share an entry, and a hash per query must cost nanoseconds. (A multiply-xorshift mix of the
/// two halves, as in splitmix64.)
pub fn keyed_hash(prefix: u128, key: u64) -> u64 {
    let mix = |mut x: u64| {
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    };
    mix(mix((prefix as u64) ^ key) ^ ((prefix >> 64) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_waits_up_to_its_limit_and_others_are_apart() {
        let waiting = Waiting::new(2);
        let one = waiting.slot("192.0.2.1".parse().unwrap());
        let first = one.enter().expect("first");
        let _second = one.enter().expect("second");
        assert!(one.enter().is_none(), "at the limit");
        let other = waiting.slot("198.51.100.7".parse().unwrap());
        assert!(other.enter().is_some(), "another client is not affected");
        drop(first);
        assert!(one.enter().is_some(), "a finished query frees its place");
    }

    #[test]
    fn prefixes_cut_addresses_and_keep_families_apart() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            prefix_key(ip("192.0.2.1"), 24, 56),
            prefix_key(ip("192.0.2.200"), 24, 56)
        );
        assert_ne!(
            prefix_key(ip("192.0.2.1"), 24, 56),
            prefix_key(ip("192.0.3.1"), 24, 56)
        );
        assert_eq!(
            prefix_key(ip("2001:db8:0:1::1"), 24, 56),
            prefix_key(ip("2001:db8:0:1:ffff::9"), 24, 56)
        );
        assert_eq!(
            prefix_key(ip("::ffff:192.0.2.1"), 24, 56),
            prefix_key(ip("192.0.2.9"), 24, 56),
            "an IPv4-mapped address is its IPv4 address"
        );
        assert_ne!(prefix_key(ip("0.0.0.0"), 0, 0), prefix_key(ip("::"), 0, 0));
    }
}
