//! `tcp_framing`: bytes written to the real TCP listener ([`hearth::server::tcp::serve`]), on
//! 127.0.0.1, port 0, started once in a thread of its own with the engine of
//! [`common::local_chain`].
//!
//! Each input is written whole on a new connection, which is then half-closed (RFC 7766: a
//! client that half-closes after its queries still gets the answers), and read until the server
//! closes it. Checked:
//! - the server closes the connection within [`CLOSE_WITHIN`] (no hang, whatever the framing:
//!   a length prefix longer than what follows, a frame shorter than a header, zero lengths);
//! - every reply is a whole, readable DNS message with QR=1 whose ID is that of a query
//!   (QR=0, at least a header) among the frames written, and there are no more replies than
//!   such queries; no reply ever goes to a response.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use hearth::chain::DataVersions;
use hearth::server::tcp::{self, TcpLimits};
use hearth::server::Engine;

use super::common::{local_chain, runtime};

/// How long the server may take to close a half-closed connection: it answers from local data
/// in microseconds, so anything near this is a hang.
const CLOSE_WITHIN: Duration = Duration::from_secs(3);

/// The listener's address, once it is up.
fn listener() -> SocketAddr {
    static ADDRESS: OnceLock<SocketAddr> = OnceLock::new();
    *ADDRESS.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("tcp-listener".into())
            .spawn(move || {
                let runtime = runtime();
                runtime.block_on(async move {
                    let versions = DataVersions::new();
                    let engine = Arc::new(Engine::new(local_chain(&versions)));
                    let listener =
                        tcp::bind("127.0.0.1:0".parse().expect("an address")).expect("a listener");
                    sender
                        .send(listener.local_addr().expect("its address"))
                        .expect("the fuzzer waits");
                    tcp::serve(
                        listener,
                        engine,
                        TcpLimits {
                            idle_timeout: Duration::from_millis(500),
                        },
                        CancellationToken::new(),
                        TaskTracker::new(),
                    )
                    .await;
                });
            })
            .expect("a thread");
        receiver.recv().expect("the listener starts")
    })
}

/// The frames of `data` as a client wrote them: each whole length-prefixed message, in order.
fn frames(data: &[u8]) -> Vec<&[u8]> {
    let mut frames = Vec::new();
    let mut rest = data;
    while let [high, low, tail @ ..] = rest {
        let length = usize::from(u16::from_be_bytes([*high, *low]));
        if tail.len() < length {
            break;
        }
        frames.push(&tail[..length]);
        rest = &tail[length..];
    }
    frames
}

pub fn run(data: &[u8]) {
    // One connection at a time: the checks read one connection's replies.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let address = listener();
    let mut stream = TcpStream::connect(address).expect("a connection to the listener");
    stream
        .set_write_timeout(Some(CLOSE_WITHIN))
        .expect("a write timeout");
    // A write may fail if the server closed first (a frame shorter than a header, a response):
    // what it sent before that is still read below.
    let _ = stream.write_all(data);
    let _ = stream.shutdown(Shutdown::Write);

    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let left = CLOSE_WITHIN.saturating_sub(started.elapsed());
        assert!(
            !left.is_zero(),
            "the server did not close the connection within {CLOSE_WITHIN:?}"
        );
        stream.set_read_timeout(Some(left)).expect("a read timeout");
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(count) => received.extend_from_slice(&buffer[..count]),
            // Closed with a reset (unread data at close): done.
            Err(error) if error.kind() == ErrorKind::ConnectionReset => break,
            // A signal (libFuzzer's timers), or the timeout above: look at the clock again.
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::Interrupted | ErrorKind::WouldBlock | ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(error) => panic!("reading the replies: {error}"),
        }
    }

    let queries: Vec<&[u8]> = frames(data)
        .into_iter()
        .filter(|frame| frame.len() >= 12 && frame[2] & 0x80 == 0)
        .collect();
    let replies = frames(&received);
    assert!(
        replies.len() <= queries.len(),
        "{} replies to {} queries",
        replies.len(),
        queries.len()
    );
    for reply in replies {
        assert!(
            reply.len() >= 12,
            "a reply shorter than a header: {reply:02x?}"
        );
        assert_ne!(reply[2] & 0x80, 0, "a reply with QR=0");
        assert!(
            queries.iter().any(|query| query[..2] == reply[..2]),
            "a reply whose ID is no query's: {reply:02x?}"
        );
        if let Err(error) = Message::from_vec(reply) {
            panic!("a reply a client cannot read ({error}): {reply:02x?}");
        }
    }
}
