//! Who asked, and how: what the listeners know of a query's sender, carried with the query from
//! the socket through the admission step to the metrics and the query log.

use std::net::{IpAddr, SocketAddr};

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
