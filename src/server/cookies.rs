//! DNS Cookies (RFC 7873), with server cookies built as RFC 9018 says, so that they mean the
//! same thing to every server of an anycast group that shares the secret.
//!
//! ```text
//!  query's COOKIE option   what happens
//!  ─────────────────────   ────────────────────────────────────────────────────────────────
//!  none                    nothing (no cookie in the reply)
//!  malformed length        FORMERR (RFC 7873 §5.2.2: 8, or 16 to 40 bytes)
//!  client cookie only      answered, with a fresh server cookie (§5.2.3)
//!  + invalid server cookie answered as if only the client cookie came (§5.2.4), fresh cookie
//!  + valid server cookie   answered, fresh cookie; the client has proven its address, so the
//!                          rate limiter never limits it (BIND and Knot do the same)
//! ```
//!
//! BADCOOKIE is sent only where §5.2.3 lets "server policy, including rate limiting" choose it:
//! to a rate-limited client that sent a client cookie without a valid server cookie, in place
//! of the truncated "slip" reply. The reply carries a fresh server cookie, so a real client
//! retries with it and is no longer limited, and is no larger than a slip.
//!
//! The server cookie (RFC 9018 §4.2): Version (1), Reserved (3 bytes, 0), Timestamp (seconds,
//! 32 bits), then the first 8 bytes of SipHash-2-4 over Client Cookie | Version | Reserved |
//! Timestamp | Client-IP, keyed with a 128-bit secret. A cookie is valid for an hour and up to
//! five minutes ahead (§4.3). The secret is random per process and rotates: the previous one is
//! still accepted, so a rotation never turns away a client that holds a recent cookie (§4.4).

use std::hash::Hasher;
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use siphasher::sip::SipHasher24;

/// EDNS option code of COOKIE (RFC 7873 §4).
pub const OPTION_CODE: u16 = 10;

/// RFC 9018 §4.3: "the Server Cookie ... MUST be considered invalid if the timestamp is ... more
/// than 1 hour in the past".
const LIFETIME: u32 = 3600;

/// RFC 9018 §4.3: "... or more than 5 minutes in the future".
const FUTURE_SKEW: u32 = 300;

/// What a query's COOKIE option holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presented<'a> {
    /// A client cookie, and the server cookie the client holds, if any.
    Cookie {
        client: &'a [u8; 8],
        server: Option<&'a [u8]>,
    },
    /// RFC 7873 §5.2.2: an option too short to hold a client cookie, or with a server cookie
    /// shorter than 8 or longer than 32 bytes. FORMERR.
    Malformed,
}

impl<'a> Presented<'a> {
    /// Reads a COOKIE option's data.
    pub fn from_option(data: &'a [u8]) -> Self {
        match data.len() {
            8 | 16..=40 => {
                let (client, server) = data.split_at(8);
                match <&[u8; 8]>::try_from(client) {
                    Ok(client) => Self::Cookie {
                        client,
                        server: (!server.is_empty()).then_some(server),
                    },
                    Err(_) => Self::Malformed,
                }
            }
            _ => Self::Malformed,
        }
    }

    /// The COOKIE option of a query's bytes, if it has one (the first one: RFC 7873 §5.2, "only
    /// the first COOKIE option is processed").
    pub fn in_query(query: &'a [u8]) -> Option<Self> {
        option_in(query, OPTION_CODE).map(Self::from_option)
    }
}

/// The secrets server cookies are keyed with.
#[derive(Clone, Copy)]
struct Secrets {
    current: [u8; 16],
    previous: Option<[u8; 16]>,
}

/// The server's cookie secrets: makes and checks server cookies.
pub struct Cookies {
    secrets: ArcSwap<Secrets>,
}

impl std::fmt::Debug for Cookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cookies { .. }") // never print a secret
    }
}

impl Default for Cookies {
    fn default() -> Self {
        Self::with_secret(rand::random())
    }
}

impl Cookies {
    /// Cookies keyed with `secret` (tests; RFC 9018's examples).
    pub fn with_secret(secret: [u8; 16]) -> Self {
        Self {
            secrets: ArcSwap::from_pointee(Secrets {
                current: secret,
                previous: None,
            }),
        }
    }

    /// A new random secret; the current one is still accepted until the next rotation.
    pub fn rotate(&self) {
        self.rotate_to(rand::random());
    }

    fn rotate_to(&self, secret: [u8; 16]) {
        let now = **self.secrets.load();
        self.secrets.store(Arc::new(Secrets {
            current: secret,
            previous: Some(now.current),
        }));
    }

    /// A server cookie for `client` at `ip`, made at `now` (seconds since the Unix epoch, as a
    /// 32-bit serial: RFC 9018 §4.3 compares timestamps in serial number arithmetic).
    pub fn server_cookie(&self, client: &[u8; 8], ip: IpAddr, now: u32) -> [u8; 16] {
        let mut cookie = [0u8; 16];
        cookie[0] = 1; // Version
        cookie[4..8].copy_from_slice(&now.to_be_bytes());
        let mac = mac(&self.secrets.load().current, client, &cookie[..8], ip);
        cookie[8..].copy_from_slice(&mac);
        cookie
    }

    /// Whether `server` is a server cookie this server made for `client` at `ip`, within its
    /// lifetime at `now`, under the current or the previous secret.
    pub fn is_valid(&self, client: &[u8; 8], server: &[u8], ip: IpAddr, now: u32) -> bool {
        let Ok(server) = <&[u8; 16]>::try_from(server) else {
            return false; // not ours: ours are 16 bytes
        };
        if server[0] != 1 {
            return false;
        }
        let made = u32::from_be_bytes([server[4], server[5], server[6], server[7]]);
        let age = now.wrapping_sub(made);
        let ahead = made.wrapping_sub(now);
        if age > LIFETIME && ahead > FUTURE_SKEW {
            return false;
        }
        let secrets = self.secrets.load();
        let matches = |secret: &[u8; 16]| mac(secret, client, &server[..8], ip) == server[8..];
        matches(&secrets.current) || secrets.previous.as_ref().is_some_and(matches)
    }

    /// Whether `query` carries a valid server cookie for a client at `ip`.
    pub fn query_has_valid(&self, query: &[u8], ip: IpAddr, now: u32) -> bool {
        match Presented::in_query(query) {
            Some(Presented::Cookie {
                client,
                server: Some(server),
            }) => self.is_valid(client, server, ip, now),
            _ => false,
        }
    }

    /// The COOKIE option data of a reply: the client cookie and a fresh server cookie.
    pub fn reply_option(&self, client: &[u8; 8], ip: IpAddr, now: u32) -> [u8; 24] {
        let mut data = [0u8; 24];
        data[..8].copy_from_slice(client);
        data[8..].copy_from_slice(&self.server_cookie(client, ip, now));
        data
    }
}

/// Seconds since the Unix epoch, as RFC 9018's 32-bit timestamp.
pub fn now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

/// RFC 9018 §4.2: SipHash-2-4 over Client Cookie | Version | Reserved | Timestamp | Client-IP;
/// the hash's 8 bytes as the reference implementation writes them (little-endian).
fn mac(secret: &[u8; 16], client: &[u8; 8], header: &[u8], ip: IpAddr) -> [u8; 8] {
    let mut hasher = SipHasher24::new_with_key(secret);
    hasher.write(client);
    hasher.write(header);
    match ip {
        IpAddr::V4(v4) => hasher.write(&v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => hasher.write(&v4.octets()),
            None => hasher.write(&v6.octets()),
        },
    }
    hasher.finish().to_le_bytes()
}

/// The data of the first EDNS option `code` in a message's OPT record, walking the message's
/// bytes (no parse: the front door asks this of a rate-limited query, before the engine).
pub fn option_in(message: &[u8], code: u16) -> Option<&[u8]> {
    let rdata = opt_rdata(message)?;
    let mut position = 0;
    while position + 4 <= rdata.len() {
        let option = u16::from_be_bytes([rdata[position], rdata[position + 1]]);
        let length = usize::from(u16::from_be_bytes([
            rdata[position + 2],
            rdata[position + 3],
        ]));
        let data = rdata.get(position + 4..position + 4 + length)?;
        if option == code {
            return Some(data);
        }
        position += 4 + length;
    }
    None
}

/// The RDATA of a message's OPT record, if it has one and the message walks cleanly.
fn opt_rdata(message: &[u8]) -> Option<&[u8]> {
    opt_record(message).map(|(_, rdata)| rdata)
}

/// The "TTL" field of a message's OPT record (extended RCODE, version, flags: RFC 6891
/// §6.1.3), if it has one.
pub fn opt_flags(message: &[u8]) -> Option<[u8; 4]> {
    opt_record(message).map(|(flags, _)| flags)
}

/// A message's OPT record: its flags field and its RDATA.
fn opt_record(message: &[u8]) -> Option<([u8; 4], &[u8])> {
    let count = |at: usize| {
        message
            .get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    };
    let questions = count(4)?;
    let records = count(6)? + count(8)? + count(10)?;
    if records == 0 {
        return None;
    }
    let mut position = 12;
    for _ in 0..questions {
        position = super::walk::skip_name(message, position)? + 4;
    }
    for _ in 0..records {
        position = super::walk::skip_name(message, position)?;
        let header = message.get(position..position + 10)?;
        let record_type = u16::from_be_bytes([header[0], header[1]]);
        let length = usize::from(u16::from_be_bytes([header[8], header[9]]));
        let rdata = message.get(position + 10..position + 10 + length)?;
        if record_type == 41 {
            return Some(([header[4], header[5], header[6], header[7]], rdata));
        }
        position += 10 + length;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn secret(text: &str) -> [u8; 16] {
        hex(text).try_into().unwrap()
    }

    fn client(text: &str) -> [u8; 8] {
        hex(text).try_into().unwrap()
    }

    /// RFC 9018 Appendix A.1 to A.3.
    #[test]
    fn server_cookies_are_those_of_rfc_9018_appendix_a() {
        let cookies = Cookies::with_secret(secret("e5e973e5a6b2a43f48e7dc849e37bfcf"));
        for (client_cookie, ip, now, expected) in [
            (
                "2464c4abcf10c957",
                "198.51.100.100",
                1_559_731_985,
                "010000005cf79f111f8130c3eee29480",
            ),
            (
                "2464c4abcf10c957",
                "198.51.100.100",
                1_559_734_385,
                "010000005cf7a871d4a564a1442aca77",
            ),
            (
                "fc93fc62807ddb86",
                "203.0.113.203",
                1_559_734_700,
                "010000005cf7a9acf73a7810aca2381e",
            ),
        ] {
            let made = cookies.server_cookie(&client(client_cookie), ip.parse().unwrap(), now);
            assert_eq!(made.to_vec(), hex(expected), "{client_cookie} at {ip}");
        }
    }

    #[test]
    fn a_cookie_is_valid_for_its_client_its_address_and_an_hour() {
        let cookies = Cookies::with_secret([7; 16]);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let me = client("0102030405060708");
        let made = cookies.server_cookie(&me, ip, 1_000_000);
        assert!(cookies.is_valid(&me, &made, ip, 1_000_000));
        assert!(cookies.is_valid(&me, &made, ip, 1_000_000 + 3600));
        assert!(
            cookies.is_valid(&me, &made, ip, 1_000_000 - 300),
            "five minutes ahead"
        );
        assert!(
            !cookies.is_valid(&me, &made, ip, 1_000_000 + 3601),
            "expired"
        );
        assert!(
            !cookies.is_valid(&me, &made, ip, 1_000_000 - 301),
            "too far ahead"
        );
        assert!(!cookies.is_valid(&me, &made, "192.0.2.2".parse().unwrap(), 1_000_000));
        assert!(!cookies.is_valid(&client("0102030405060709"), &made, ip, 1_000_000));
        let mut forged = made;
        forged[15] ^= 1;
        assert!(!cookies.is_valid(&me, &forged, ip, 1_000_000));
        assert!(!cookies.is_valid(&me, &made[..8], ip, 1_000_000));
    }

    #[test]
    fn the_previous_secret_is_accepted_after_one_rotation_only() {
        let cookies = Cookies::with_secret([1; 16]);
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let me = client("0102030405060708");
        let made = cookies.server_cookie(&me, ip, 5_000);
        cookies.rotate_to([2; 16]);
        assert!(cookies.is_valid(&me, &made, ip, 5_000));
        cookies.rotate_to([3; 16]);
        assert!(!cookies.is_valid(&me, &made, ip, 5_000));
    }

    #[test]
    fn option_lengths_follow_rfc_7873() {
        for length in [0, 1, 7, 9, 15, 41, 60] {
            assert_eq!(
                Presented::from_option(&vec![0; length]),
                Presented::Malformed,
                "{length}"
            );
        }
        for length in [8, 16, 24, 40] {
            assert!(
                matches!(
                    Presented::from_option(&vec![0; length]),
                    Presented::Cookie { .. }
                ),
                "{length}"
            );
        }
    }

    #[test]
    fn the_option_is_found_in_a_query() {
        // example. A, with an OPT holding NSID (empty) then COOKIE (client only).
        let mut query = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1];
        query.extend_from_slice(&[7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0, 0, 1, 0, 1]);
        query.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 16]);
        query.extend_from_slice(&[0, 3, 0, 0]);
        query.extend_from_slice(&[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            Presented::in_query(&query),
            Some(Presented::Cookie {
                client: &[1, 2, 3, 4, 5, 6, 7, 8],
                server: None
            })
        );
        query.truncate(query.len() - 1);
        assert_eq!(Presented::in_query(&query), None, "cut short: no option");
    }
}
