//! Value types that check themselves while the TOML is read.
//!
//! Each parses from a string inside `Deserialize`, so a bad value is reported by the TOML reader
//! with the line it is on, and by `serde_path_to_error` with the key it is under: the operator
//! sees `hearth.toml:14: forward.timeout: invalid duration "2x": ...`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer};

use crate::chain::order::{self, OrderEntry};

/// Implements `Deserialize` for a type through its `FromStr`, with `expecting` describing it.
macro_rules! deserialize_from_str {
    ($type:ty, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl de::Visitor<'_> for Visitor {
                    type Value = $type;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, value: &str) -> Result<$type, E> {
                        value.parse().map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(Visitor)
            }
        }
    };
}

/// A duration written as `"2s"`, `"500ms"`, `"1h"`, `"1m 30s"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(text)
            .map(HumanDuration)
            .map_err(|error| {
                format!("invalid duration {text:?}: {error} (write e.g. \"2s\", \"500ms\", \"1h\")")
            })
    }
}
deserialize_from_str!(
    HumanDuration,
    "a duration such as \"2s\", \"500ms\" or \"1h\""
);

/// Reads `IP`, `IP:port` or `[IPv6]:port`, with `default_port` when none is given. Port 0 is
/// refused: it would bind a random port, or send to nowhere.
fn parse_socket_addr(text: &str, default_port: u16) -> Result<SocketAddr, String> {
    let address = if let Ok(ip) = text.parse::<IpAddr>() {
        SocketAddr::new(ip, default_port)
    } else {
        text.parse::<SocketAddr>()
            .map_err(|_| format!("invalid address {text:?} (write IP, IP:port or [IPv6]:port)"))?
    };
    if address.port() == 0 {
        return Err(format!(
            "invalid address {text:?}: port 0 is not a usable port"
        ));
    }
    Ok(address)
}

/// A listen address; a bare IP means port 53.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenAddr(pub SocketAddr);

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_socket_addr(text, 53).map(ListenAddr)
    }
}
deserialize_from_str!(ListenAddr, "an address such as \"127.0.0.1:5353\"");

/// An upstream resolver and the transport to reach it by:
///
/// | written                          | transport                                              |
/// |----------------------------------|--------------------------------------------------------|
/// | `IP[:port]`                      | UDP, TCP when a reply is truncated (port 53)            |
/// | `tcp://IP[:port]`                | TCP only, one connection kept open (port 53)            |
/// | `tls://IP[:port][#name]`         | DNS over TLS, RFC 7858 (port 853); `name` for SNI and the certificate, else the IP |
/// | `https://name[:port]/path[#IP]`  | DNS over HTTPS, RFC 8484 (port 443); `#IP` is where to connect, needed unless `name` is an IP |
///
/// Hearth never resolves an upstream's name itself: that would ask the server being
/// configured, before it runs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UpstreamSpec {
    pub address: SocketAddr,
    pub transport: UpstreamTransport,
}

/// How an upstream is reached.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UpstreamTransport {
    Udp,
    Tcp,
    Tls { server_name: String },
    Https { server_name: String, path: String },
}

impl UpstreamSpec {
    /// Plain DNS (UDP, TCP on truncation) to `address`.
    pub fn udp(address: SocketAddr) -> Self {
        Self {
            address,
            transport: UpstreamTransport::Udp,
        }
    }
}

impl fmt::Display for UpstreamSpec {
    /// As written in the config (with the ports filled in): what logs and metric labels show.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.transport {
            UpstreamTransport::Udp => write!(f, "{}", self.address),
            UpstreamTransport::Tcp => write!(f, "tcp://{}", self.address),
            UpstreamTransport::Tls { server_name } => {
                write!(f, "tls://{}#{server_name}", self.address)
            }
            UpstreamTransport::Https { server_name, path } => write!(
                f,
                "https://{server_name}:{}{path}#{}",
                self.address.port(),
                self.address.ip()
            ),
        }
    }
}

impl FromStr for UpstreamSpec {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = text.strip_prefix("tcp://") {
            return Ok(Self {
                address: parse_socket_addr(rest, 53)?,
                transport: UpstreamTransport::Tcp,
            });
        }
        if let Some(rest) = text.strip_prefix("tls://") {
            let (address, name) = match rest.split_once('#') {
                Some((address, name)) => (address, Some(name)),
                None => (rest, None),
            };
            let address = parse_socket_addr(address, 853)?;
            let server_name = match name {
                Some(name) => server_name(name)?,
                None => address.ip().to_string(),
            };
            return Ok(Self {
                address,
                transport: UpstreamTransport::Tls { server_name },
            });
        }
        if let Some(rest) = text.strip_prefix("https://") {
            let (rest, ip) = match rest.split_once('#') {
                Some((rest, ip)) => (rest, Some(ip)),
                None => (rest, None),
            };
            let (authority, path) = match rest.find('/') {
                Some(at) => (&rest[..at], &rest[at..]),
                None => (rest, "/dns-query"),
            };
            // The authority: a name or an IP (IPv6 in brackets), then perhaps a port.
            let (host, port) = match authority.rsplit_once(':') {
                Some((host, port)) if !host.ends_with(':') && port.parse::<u16>().is_ok() => {
                    (host, port.parse::<u16>().unwrap_or(443))
                }
                _ => (authority, 443),
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let ip = match (ip, host.parse::<IpAddr>()) {
                (Some(ip), _) => ip.parse::<IpAddr>().map_err(|_| {
                    format!("invalid upstream {text:?}: {ip:?} after # is not an IP address")
                })?,
                (None, Ok(ip)) => ip,
                (None, Err(_)) => {
                    return Err(format!(
                        "invalid upstream {text:?}: add the server's address after #, as in \
                         \"https://{host}/dns-query#192.0.2.1\" (Hearth does not resolve upstream names: it would ask itself)"
                    ))
                }
            };
            if port == 0 {
                return Err(format!(
                    "invalid upstream {text:?}: port 0 is not a usable port"
                ));
            }
            return Ok(Self {
                address: SocketAddr::new(ip, port),
                transport: UpstreamTransport::Https {
                    server_name: server_name(host)?,
                    path: path.to_owned(),
                },
            });
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(format!(
                "invalid upstream {text:?}: unknown scheme {scheme:?} (use tcp://, tls:// or https://, or a plain address for UDP)"
            ));
        }
        parse_socket_addr(text, 53).map(Self::udp)
    }
}
deserialize_from_str!(
    UpstreamSpec,
    "an upstream such as \"192.0.2.53\", \"tcp://192.0.2.53\", \"tls://1.1.1.1#cloudflare-dns.com\" or \"https://dns.example/dns-query#192.0.2.1\""
);

/// A TLS server name: a DNS name (or an IP, which certificates may also name).
fn server_name(name: &str) -> Result<String, String> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && (name.parse::<IpAddr>().is_ok()
            || name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }));
    if valid {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(format!("{name:?} is not a server name for TLS"))
    }
}

/// A domain name, made fully qualified: `"cluster.local"` is `cluster.local.`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainName(pub hickory_proto::rr::Name);

impl FromStr for DomainName {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut name = hickory_proto::rr::Name::from_ascii(text)
            .map_err(|error| format!("{text:?} is not a domain name: {error}"))?;
        name.set_fqdn(true);
        Ok(DomainName(name))
    }
}
deserialize_from_str!(DomainName, "a domain name such as \"example.internal\"");

/// A network prefix such as `"10.0.0.0/8"` or `"2001:db8::/32"`; a bare address is its own
/// /32 or /128. Host bits after the prefix are refused (`10.0.0.1/8`): they usually mean a
/// typo, and the operator should see which network they wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix(pub ipnet::IpNet);

impl FromStr for Prefix {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let net = match text.parse::<ipnet::IpNet>() {
            Ok(net) => net,
            Err(_) => match text.parse::<IpAddr>() {
                Ok(ip) => ipnet::IpNet::from(ip),
                Err(_) => {
                    return Err(format!(
                        "invalid prefix {text:?}: write an address or a network such as \"10.0.0.0/8\" or \"2001:db8::/32\""
                    ))
                }
            },
        };
        if net.trunc() != net {
            return Err(format!(
                "{text:?} has bits set after the prefix: the network is {}",
                net.trunc()
            ));
        }
        Ok(Prefix(net))
    }
}
deserialize_from_str!(Prefix, "a network prefix such as \"10.0.0.0/8\"");

/// One entry of `resolve.order`, such as `"files [NOTFOUND=return]"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderValue(pub OrderEntry);

impl FromStr for OrderValue {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        order::parse_entry(text)
            .map(OrderValue)
            .map_err(|error| format!("{text:?}: {error}"))
    }
}
deserialize_from_str!(
    OrderValue,
    "a source such as \"files\" or \"files [NOTFOUND=return]\""
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!("2s".parse(), Ok(HumanDuration(Duration::from_secs(2))));
        assert_eq!(
            "500ms".parse(),
            Ok(HumanDuration(Duration::from_millis(500)))
        );
        assert_eq!("1h".parse(), Ok(HumanDuration(Duration::from_secs(3600))));
        assert!("2".parse::<HumanDuration>().is_err());
        assert!("two seconds".parse::<HumanDuration>().is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(
            "127.0.0.1".parse::<ListenAddr>().unwrap().0,
            "127.0.0.1:53".parse().unwrap()
        );
        assert_eq!(
            "[::1]:5353".parse::<ListenAddr>().unwrap().0,
            "[::1]:5353".parse().unwrap()
        );
        assert_eq!(
            "2001:db8::1".parse::<UpstreamSpec>().unwrap().address,
            "[2001:db8::1]:53".parse().unwrap()
        );
        assert!("127.0.0.1:0".parse::<ListenAddr>().is_err());
        assert!("127.0.0.1:65536".parse::<ListenAddr>().is_err());
        assert!("localhost:53".parse::<UpstreamSpec>().is_err());
    }

    #[test]
    fn upstream_schemes_parse_with_their_default_ports() {
        let parse = |text: &str| text.parse::<UpstreamSpec>();
        let tls = parse("tls://1.1.1.1#Cloudflare-DNS.com").unwrap();
        assert_eq!(tls.address, "1.1.1.1:853".parse().unwrap());
        assert_eq!(
            tls.transport,
            UpstreamTransport::Tls {
                server_name: "cloudflare-dns.com".into()
            }
        );
        assert_eq!(tls.to_string(), "tls://1.1.1.1:853#cloudflare-dns.com");
        let v6 = parse("tls://[2606:4700:4700::1111]:853#cloudflare-dns.com").unwrap();
        assert_eq!(v6.address, "[2606:4700:4700::1111]:853".parse().unwrap());
        assert_eq!(
            parse("tcp://10.96.0.10").unwrap(),
            UpstreamSpec {
                address: "10.96.0.10:53".parse().unwrap(),
                transport: UpstreamTransport::Tcp
            }
        );
        let https = parse("https://dns.example:8443/q#192.0.2.1").unwrap();
        assert_eq!(https.address, "192.0.2.1:8443".parse().unwrap());
        assert_eq!(
            https.transport,
            UpstreamTransport::Https {
                server_name: "dns.example".into(),
                path: "/q".into()
            }
        );
        let by_ip = parse("https://[2001:db8::1]/dns-query").unwrap();
        assert_eq!(by_ip.address, "[2001:db8::1]:443".parse().unwrap());
        assert_eq!(
            parse("https://1.1.1.1").unwrap().transport,
            UpstreamTransport::Https {
                server_name: "1.1.1.1".into(),
                path: "/dns-query".into()
            }
        );
        assert!(parse("https://dns.example/dns-query")
            .unwrap_err()
            .contains("add the server's address"));
        assert!(parse("quic://1.1.1.1")
            .unwrap_err()
            .contains("unknown scheme"));
        assert!(parse("tls://1.1.1.1#bad name").is_err());
        assert_eq!(parse("192.0.2.1").unwrap().to_string(), "192.0.2.1:53");
    }
}
