//! `engine`: a query's bytes through the whole engine, as a UDP datagram and as a TCP message,
//! and through the UDP fast path.
//!
//! The chain is [`common::local_chain`]: hosts, zones, the cluster zone. For each input:
//! - the general path ([`Engine::answer`], what the listeners call once the front door admits)
//!   over UDP and over TCP: no reply to a message shorter than a header or to a response
//!   (QR=1); otherwise a readable reply with the query's ID, over UDP no larger than the client
//!   allowed (512 without EDNS, else its payload size between 512 and 1,232);
//! - the fast path: a fresh [`FastTable`] stores the UDP reply if its validity allows, and is
//!   asked the same bytes; a reusable reply must be a hit, and a hit must be the general path's
//!   reply byte for byte;
//! - the front door's rejections ([`Engine::reject`]: REFUSED, TC=1, BADCOOKIE) obey the same
//!   rules, and TC=1 is never larger than the query.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use tokio::runtime::Runtime;
use tokio::time::Instant;

use hearth::chain::{Client, DataVersions, Validity};
use hearth::server::admission::{Admission, Admitted, Decision};
use hearth::server::fast::FastTable;
use hearth::server::{Engine, Transport};

use super::common::{check_reply, local_chain, runtime, udp_limit};

struct State {
    runtime: Runtime,
    engine: Engine,
    versions: Arc<DataVersions>,
    /// The front door, admitting everyone: its proof of admission is what the engine takes.
    admission: Admission,
}

/// The client every query comes from.
const CLIENT: &str = "192.0.2.1:5300";

fn client() -> SocketAddr {
    CLIENT.parse().expect("an address")
}

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        let runtime = runtime();
        let versions = DataVersions::new();
        let engine = runtime.block_on(async { Engine::new(local_chain(&versions)) });
        State {
            runtime,
            engine,
            versions,
            admission: Admission::admit_all(8),
        }
    })
}

pub fn run(data: &[u8]) {
    let state = state();
    let admitted = |transport| -> Admitted {
        state
            .admission
            .request(client(), transport, data)
            .admitted()
            .expect("admit_all admits")
    };
    let (udp_admitted, tcp_admitted) = (admitted(Transport::Udp), admitted(Transport::Tcp));
    state.runtime.block_on(async {
        let table = FastTable::new(16, Arc::clone(&state.versions));
        let before = table.versions();
        let udp = state.engine.answer(data, &udp_admitted).await;
        let tcp = state.engine.answer(data, &tcp_admitted).await;
        let silent = data.len() < 12 || data[2] & 0x80 != 0;
        if silent {
            assert!(
                udp.is_none(),
                "a UDP reply to a response or a short message"
            );
            assert!(
                tcp.is_none(),
                "a TCP reply to a response or a short message"
            );
        }
        if let Some(reply) = &tcp {
            check_reply(data, &reply.bytes, "TCP");
            assert!(
                reply.bytes.len() <= usize::from(u16::MAX),
                "TCP reply over 65,535 bytes"
            );
        }
        assert_eq!(
            udp.is_some(),
            tcp.is_some(),
            "answered over one transport and not the other"
        );
        let Some(udp) = udp else { return };
        check_reply(data, &udp.bytes, "UDP");
        let limit = udp_limit(data);
        assert!(
            udp.bytes.len() <= limit,
            "UDP reply of {} bytes; the client allowed {limit}",
            udp.bytes.len()
        );

        table.store(data, &udp, &before, Instant::now);
        let mut fast = Vec::new();
        let hit = table.answer(&udp_admitted, data, Instant::now(), &mut fast);
        if !matches!(udp.validity, Validity::Never) {
            assert!(hit, "a reusable reply ({:?}) was not reused", udp.validity);
        }
        if hit {
            assert_eq!(
                fast, udp.bytes,
                "the fast path's reply is not the general path's"
            );
        }

        // Every input, readable or not (the front door walks the bytes itself).
        check_rejections(state, data, limit);
    });
}

/// The front door's rejections of `data` ([`Engine::reject`]: REFUSED, TC=1, BADCOOKIE), as a
/// client over UDP allowed `limit` bytes gets them.
fn check_rejections(state: &State, data: &[u8], limit: usize) {
    let udp_client = Client::new(client(), Transport::Udp);
    for decision in [Decision::Refuse, Decision::Truncate, Decision::BadCookie] {
        let mut rejection = Vec::new();
        if state
            .engine
            .reject(data, &udp_client, decision, &mut rejection)
        {
            check_reply(data, &rejection, &format!("{decision:?}"));
            assert!(
                rejection.len() <= limit,
                "{decision:?}: a rejection of {} bytes; the client allowed {limit}",
                rejection.len()
            );
            // BIND's RRL "slip", which Truncate is: no larger than the query, so a spoofed
            // source gains nothing from it.
            if decision == Decision::Truncate {
                assert!(
                    rejection.len() <= data.len(),
                    "TC=1 reply of {} bytes to a query of {}: amplifies",
                    rejection.len(),
                    data.len()
                );
            }
        }
    }
}

/// [`check_rejections`] alone, for the regression tests.
pub fn rejections(data: &[u8]) {
    check_rejections(state(), data, udp_limit(data));
}
