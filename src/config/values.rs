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

/// An upstream resolver; a bare IP means port 53.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpstreamAddr(pub SocketAddr);

impl FromStr for UpstreamAddr {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_socket_addr(text, 53).map(UpstreamAddr)
    }
}
deserialize_from_str!(
    UpstreamAddr,
    "an upstream such as \"192.0.2.53\" or \"192.0.2.53:53\""
);

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
            "2001:db8::1".parse::<UpstreamAddr>().unwrap().0,
            "[2001:db8::1]:53".parse().unwrap()
        );
        assert!("127.0.0.1:0".parse::<ListenAddr>().is_err());
        assert!("127.0.0.1:65536".parse::<ListenAddr>().is_err());
        assert!("localhost:53".parse::<UpstreamAddr>().is_err());
    }
}
