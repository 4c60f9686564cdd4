//! `hearth-loadgen`: a batching DNS load generator for the throughput harness
//! (`benches/throughput.sh`). Built with `cargo build --release --features loadgen --bin
//! hearth-loadgen`.
//!
//! # Why another load generator
//!
//! `dnsperf` spends a `sendto` and a `recvfrom` system call on every query, and on this kind of
//! machine (a 2-vCPU VM, loopback) system calls are most of the cost of a query on *both* sides:
//! `dnsperf` saturates its own core at about 200,000 queries/s, which is below what a fast
//! server does on one core. This generator sends and receives in batches with `sendmmsg` and
//! `recvmmsg` (32 datagrams per system call by default), so one core of it can drive a server
//! well past 300,000 queries/s and what is measured is the server, not the client.
//!
//! # How it works
//!
//! One thread, one (or a few, `--sockets`) UDP sockets bound to loopback and connected to the
//! target. It keeps `--outstanding` queries in flight (a closed loop, like `dnsperf -q`): every
//! reply frees a slot, and free slots are refilled with the next queries of the file in one
//! `sendmmsg`; replies are read with `recvmmsg`, blocking until at least one arrives.
//!
//! Each query in flight occupies a **slot** of a fixed table. Its DNS ID is the slot's index in
//! the low bits and a per-slot generation counter in the high bits, so a reply finds its query
//! in O(1) (no hash map, no search), its latency is `now - slot.sent`, and a late reply to a
//! query already counted as lost does not match the slot's next query (the generation moved
//! on). A reply must also be a response (QR=1) and echo the question that was sent; one that
//! fails any of these checks is counted as `mismatched` and does not complete anything. A query
//! with no reply after `--timeout` is counted as `lost` and its slot reused.
//!
//! Timestamps are taken once per system call (before a `sendmmsg`, after a `recvmmsg`), so a
//! latency includes the time the query and its reply waited in their batches: it is what a
//! client of this shape sees, to a few microseconds.
//!
//! # Output
//!
//! A human-readable line, then one line of `key=value` pairs (starting with `sent=`) that the
//! harness parses: `sent completed lost lost_pct mismatched qps elapsed_s lat_mean_us
//! lat_p50_us lat_p99_us lat_max_us noerror nxdomain servfail refused other_rcode
//! udp_rcvbuf_errors cpu_pct`. `qps` is completed queries divided by the time from the first send to
//! the last reply. `udp_rcvbuf_errors` is the machine-wide increase of `RcvbufErrors` in
//! `/proc/net/snmp` during the run: datagrams some socket on the machine dropped because its
//! receive buffer was full (this generator's own socket has a large buffer, so on an otherwise
//! idle machine they are the server's drops). `cpu_pct` is the generator's own CPU time over
//! the run, in percent of one core: near 100, the generator rather than the server may be
//! what limits the rate.
//!
//! Traffic goes only to loopback: a `--server` outside 127.0.0.0/8 and ::1 is refused.
//!
//! `--reflect` turns it into the other end of a ceiling measurement: a batched UDP reflector
//! (recvmmsg, set QR, sendmmsg; no DNS work) bound to `--server` for `--duration` seconds. What
//! the generator measures against it is the most that one core can answer on this machine, the
//! figure a server's rate is compared with.

use std::io::{self, BufRead, BufReader, IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use nix::errno::Errno;
use nix::sys::socket::{
    recvmmsg, sendmmsg, setsockopt, sockopt, MsgFlags, MultiHeaders, SockaddrStorage,
};

/// Largest reply read; longer datagrams are truncated by the kernel (and still counted).
const MAX_REPLY: usize = 4096;
/// Largest query accepted from the query file (a name is at most 255 bytes).
const MAX_QUERY: usize = 512;

#[derive(Parser, Debug)]
#[command(
    name = "hearth-loadgen",
    about = "Batching DNS load generator (loopback only)"
)]
struct Args {
    /// Target server, IP:port on loopback (127.0.0.0/8 or [::1]).
    #[arg(short, long, default_value = "127.0.0.1:5353")]
    server: SocketAddr,
    /// Query file in dnsperf format: `name TYPE` per line (`#` comments, blank lines skipped).
    #[arg(short = 'd', long, required_unless_present = "reflect")]
    queries: Option<PathBuf>,
    /// Run for this many seconds, cycling through the file.
    #[arg(short = 'l', long, default_value_t = 10.0)]
    duration: f64,
    /// Send each query of the file once, then stop (still bounded by --duration).
    #[arg(long)]
    once: bool,
    /// Queries kept in flight.
    #[arg(short = 'q', long, default_value_t = 200)]
    outstanding: usize,
    /// Datagrams per sendmmsg/recvmmsg call.
    #[arg(short, long, default_value_t = 32)]
    batch: usize,
    /// Seconds after which a query with no reply is counted as lost.
    #[arg(short, long, default_value_t = 1.0)]
    timeout: f64,
    /// UDP sockets (source ports) to spread the queries over.
    #[arg(long, default_value_t = 1)]
    sockets: usize,
    /// Add an EDNS(0) OPT record (payload 1232) to every query (dnsperf: -e).
    #[arg(long)]
    edns: bool,
    /// Instead of generating load, be the harness's "ceiling": a batched UDP reflector on
    /// --server that echoes every datagram with QR set and does no DNS work, for --duration
    /// seconds.
    #[arg(long, conflicts_with_all = ["queries", "once"])]
    reflect: bool,
}

/// One query of the file, encoded once with ID 0; `question_end` is where its question ends.
struct Encoded {
    wire: Vec<u8>,
    question_end: usize,
}

/// A slot of the in-flight table. The DNS ID of its query is `generation << slot_bits | index`.
#[derive(Clone, Copy)]
struct Slot {
    generation: u16,
    /// Index of the query in the file, and when it was sent; `None` when the slot is free.
    in_flight: Option<(u32, Instant)>,
}

/// Latencies in microseconds: exact below 65.536 ms, to the millisecond above.
struct Histogram {
    fine: Vec<u64>,
    coarse: Vec<u64>,
    count: u64,
    sum_us: u64,
    max_us: u64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            fine: vec![0; 1 << 16],
            coarse: vec![0; 100_000],
            count: 0,
            sum_us: 0,
            max_us: 0,
        }
    }

    fn record(&mut self, us: u64) {
        if us < self.fine.len() as u64 {
            self.fine[us as usize] += 1;
        } else {
            let ms = (us / 1000).min(self.coarse.len() as u64 - 1);
            self.coarse[ms as usize] += 1;
        }
        self.count += 1;
        self.sum_us += us;
        self.max_us = self.max_us.max(us);
    }

    /// The latency below which a fraction `q` of the replies came, in microseconds.
    fn quantile(&self, q: f64) -> u64 {
        let rank = ((self.count as f64 * q).ceil() as u64).max(1);
        let mut seen = 0;
        for (us, n) in self.fine.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return us as u64;
            }
        }
        for (ms, n) in self.coarse.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return ms as u64 * 1000;
            }
        }
        self.max_us
    }
}

#[derive(Default)]
struct Counters {
    sent: u64,
    completed: u64,
    lost: u64,
    mismatched: u64,
    /// Replies by RCODE: NOERROR, NXDOMAIN, SERVFAIL, REFUSED, anything else.
    rcodes: [u64; 5],
    /// Machine-wide UDP receive-buffer drops during the run.
    rcvbuf_errors: u64,
    /// This generator's CPU time over the run's wall-clock time, in percent of one core: near
    /// 100, the generator (not the server) may be the limit.
    cpu_pct: f64,
}

/// Reads a dnsperf query file and encodes each line once.
fn load_queries(path: &PathBuf, edns: bool) -> Result<Vec<Encoded>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        let mut fields = line.split_whitespace();
        let Some(name) = fields.next().filter(|f| !f.starts_with('#')) else {
            continue;
        };
        let at = |e: String| format!("{}:{}: {e}", path.display(), n + 1);
        let rtype: RecordType = fields
            .next()
            .unwrap_or("A")
            .parse()
            .map_err(|e| at(format!("{e}")))?;
        let name = Name::from_ascii(name).map_err(|e| at(format!("{e}")))?;
        let mut message = Message::query();
        message.metadata.recursion_desired = true;
        message.queries.push(Query::query(name, rtype));
        if edns {
            let mut opt = Edns::new();
            opt.set_max_payload(1232);
            message.edns = Some(opt);
        }
        let wire = message.to_vec().map_err(|e| at(format!("{e}")))?;
        if wire.len() > MAX_QUERY {
            return Err(at("query too long".into()));
        }
        // The question is the first thing after the 12-byte header: the name, type, class.
        let mut i = 12;
        while wire[i] != 0 {
            i += 1 + wire[i] as usize;
        }
        out.push(Encoded {
            question_end: i + 1 + 4,
            wire,
        });
    }
    if out.is_empty() {
        return Err(format!("{}: no queries", path.display()));
    }
    Ok(out)
}

/// Nanoseconds this thread has run on a CPU (/proc/thread-self/schedstat; 0 if unreadable).
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `RcvbufErrors` of the `Udp:` line of /proc/net/snmp (0 if unreadable).
fn udp_rcvbuf_errors() -> u64 {
    let text = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(head), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    head.split_whitespace()
        .zip(values.split_whitespace())
        .find(|(k, _)| *k == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

fn open_socket(server: SocketAddr, recv_wait: Duration) -> io::Result<UdpSocket> {
    let local: SocketAddr = if server.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    }
    .parse()
    .unwrap();
    let socket = UdpSocket::bind(local)?;
    socket.connect(server)?;
    // A large receive buffer, so that the generator never drops replies itself: above
    // net.core.rmem_max only with CAP_NET_ADMIN (RcvBufForce), else as large as allowed.
    let size = 16 << 20;
    if setsockopt(&socket, sockopt::RcvBufForce, &size).is_err() {
        let _ = setsockopt(&socket, sockopt::RcvBuf, &size);
    }
    let _ = setsockopt(&socket, sockopt::SndBuf, &(4 << 20));
    // Blocking reads wait at most this long, so timeouts and the deadline are checked.
    socket.set_read_timeout(Some(recv_wait))?;
    Ok(socket)
}

fn run(args: &Args) -> Result<(), String> {
    let outstanding = args.outstanding;
    let batch = args.batch.clamp(1, 1024);
    let sockets = args.sockets.clamp(1, 64);
    if !(1..=32768).contains(&outstanding) {
        return Err("--outstanding must be between 1 and 32768".into());
    }
    let queries = load_queries(args.queries.as_ref().expect("required by clap"), args.edns)?;
    let total = queries.len() as u64;

    // IDs: the slot index in the low `slot_bits`, a generation in the rest.
    let slot_bits = usize::BITS - (outstanding - 1).leading_zeros();
    let slot_mask = (1u16 << slot_bits).wrapping_sub(1);
    let generations = 1u32 << (16 - slot_bits);
    let mut slots = vec![
        Slot {
            generation: 0,
            in_flight: None
        };
        outstanding
    ];
    let mut free: Vec<usize> = (0..outstanding).rev().collect();

    // With one socket a read blocks until a reply comes (or 5 ms pass); with several, a read
    // blocks only briefly when a whole round over the sockets found nothing to do.
    let recv_wait = Duration::from_micros(if sockets == 1 { 5000 } else { 100 });
    let socks: Vec<UdpSocket> = (0..sockets)
        .map(|_| open_socket(args.server, recv_wait))
        .collect::<io::Result<_>>()
        .map_err(|e| e.to_string())?;

    let mut send_bufs = vec![[0u8; MAX_QUERY]; batch];
    let mut send_lens = vec![0usize; batch];
    let mut recv_bufs = vec![[0u8; MAX_REPLY]; batch];
    let mut recv_lens = vec![0usize; batch];
    let mut send_hdrs = MultiHeaders::<SockaddrStorage>::preallocate(batch, None);
    let mut recv_hdrs = MultiHeaders::<SockaddrStorage>::preallocate(batch, None);
    let no_addrs: Vec<Option<SockaddrStorage>> = vec![None; batch];

    let mut c = Counters::default();
    let mut hist = Histogram::new();
    let timeout = Duration::from_secs_f64(args.timeout);
    let rcvbuf_before = udp_rcvbuf_errors();
    let cpu_before = cpu_ns();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.duration);
    let mut last_reply = start;
    let mut last_expiry_scan = start;
    let mut next_query: u64 = 0;
    let mut turn = 0usize;
    let mut idle_round = false;
    let mut round_active = false;

    loop {
        let now = Instant::now();
        let sending = now < deadline && !(args.once && next_query >= total);
        let in_flight = outstanding - free.len();
        // Stop when nothing more is to be sent and nothing is in flight; after the deadline,
        // queries in flight get their --timeout to come back (as dnsperf does).
        if !sending && in_flight == 0 || now >= deadline + timeout {
            break;
        }

        // Expire queries older than the timeout: counted as lost, their slots reused.
        if now.duration_since(last_expiry_scan) >= Duration::from_millis(10) {
            last_expiry_scan = now;
            for (i, slot) in slots.iter_mut().enumerate() {
                if let Some((_, sent)) = slot.in_flight {
                    if now.duration_since(sent) >= timeout {
                        slot.in_flight = None;
                        slot.generation = ((slot.generation as u32 + 1) % generations) as u16;
                        free.push(i);
                        c.lost += 1;
                    }
                }
            }
        }

        let sock = &socks[turn];
        turn = (turn + 1) % sockets;
        let fd = sock.as_raw_fd();
        let mut did_something = false;

        // Fill the free slots with the next queries, a batch per system call. With one socket
        // every free slot is filled before the read below blocks; with several, one batch per
        // socket per turn.
        while sending && !free.is_empty() {
            let mut n = 0;
            while n < batch && n < free.len() && !(args.once && next_query + n as u64 >= total) {
                let slot = free[free.len() - 1 - n];
                let q = &queries[((next_query + n as u64) % total) as usize];
                let id = (slots[slot].generation << slot_bits) | slot as u16;
                send_bufs[n][..q.wire.len()].copy_from_slice(&q.wire);
                send_bufs[n][..2].copy_from_slice(&id.to_be_bytes());
                send_lens[n] = q.wire.len();
                n += 1;
            }
            if n == 0 {
                break;
            }
            let iovs: Vec<[IoSlice; 1]> = (0..n)
                .map(|i| [IoSlice::new(&send_bufs[i][..send_lens[i]])])
                .collect();
            let sent_at = Instant::now();
            let sent = match sendmmsg(
                fd,
                &mut send_hdrs,
                &iovs,
                &no_addrs[..n],
                [],
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(results) => results.count(),
                // The socket buffer is full, or nothing listens on the port (yet): the queries
                // were not sent; they are tried again on the next round.
                Err(Errno::EAGAIN) | Err(Errno::ENOBUFS) | Err(Errno::ECONNREFUSED) => 0,
                Err(e) => return Err(format!("sendmmsg: {e}")),
            };
            // The slots were taken from the top of the free stack, in order.
            for i in 0..sent {
                let slot = free.pop().expect("a free slot per query sent");
                slots[slot].in_flight = Some((((next_query + i as u64) % total) as u32, sent_at));
            }
            next_query += sent as u64;
            c.sent += sent as u64;
            did_something |= sent > 0;
            if sent < n || sockets > 1 || (args.once && next_query >= total) {
                break;
            }
        }

        // Read replies: wait for the first one only when there is nothing else to do.
        let wait = sockets == 1 || idle_round;
        let flags = if wait {
            MsgFlags::MSG_WAITFORONE
        } else {
            MsgFlags::MSG_DONTWAIT
        };
        let received = {
            let mut iovs: Vec<[IoSliceMut; 1]> = recv_bufs
                .iter_mut()
                .map(|b| [IoSliceMut::new(&mut b[..])])
                .collect();
            match recvmmsg(fd, &mut recv_hdrs, iovs.iter_mut(), flags, None) {
                Ok(results) => {
                    let mut n = 0;
                    for r in results {
                        recv_lens[n] = r.bytes;
                        n += 1;
                    }
                    n
                }
                Err(Errno::EAGAIN) | Err(Errno::EINTR) | Err(Errno::ECONNREFUSED) => 0,
                Err(e) => return Err(format!("recvmmsg: {e}")),
            }
        };
        let received_at = Instant::now();
        for (buf, &len) in recv_bufs.iter().zip(&recv_lens[..received]) {
            let reply = &buf[..len.min(MAX_REPLY)];
            // The ID must name a slot in flight of the current generation, the reply must be a
            // response (QR=1), and its question must be the one sent.
            let matched = (len >= 12 && reply[2] & 0x80 != 0)
                .then(|| u16::from_be_bytes([reply[0], reply[1]]))
                .and_then(|id| {
                    let index = (id & slot_mask) as usize;
                    let slot = slots.get(index)?;
                    let (query, sent) = slot.in_flight?;
                    let q = &queries[query as usize];
                    (slot.generation == id >> slot_bits
                        && reply.get(12..q.question_end) == Some(&q.wire[12..q.question_end]))
                    .then_some((index, sent))
                });
            let Some((index, sent)) = matched else {
                c.mismatched += 1;
                continue;
            };
            let slot = &mut slots[index];
            slot.in_flight = None;
            slot.generation = ((slot.generation as u32 + 1) % generations) as u16;
            free.push(index);
            c.completed += 1;
            c.rcodes[match reply[3] & 0x0f {
                0 => 0,
                3 => 1,
                2 => 2,
                5 => 3,
                _ => 4,
            }] += 1;
            hist.record(received_at.duration_since(sent).as_micros() as u64);
            last_reply = received_at;
        }
        // After a whole round over the sockets in which nothing was sent or received, the
        // reads of the next round may wait a little.
        round_active |= did_something || received > 0;
        if turn == 0 {
            idle_round = !round_active;
            round_active = false;
        }
    }

    // Whatever is still in flight at the end (only after the grace period) is lost too.
    c.lost += (outstanding - free.len()) as u64;
    c.rcvbuf_errors = udp_rcvbuf_errors().saturating_sub(rcvbuf_before);
    c.cpu_pct =
        cpu_ns().saturating_sub(cpu_before) as f64 / start.elapsed().as_nanos() as f64 * 100.0;
    report(&c, &hist, last_reply.duration_since(start));
    Ok(())
}

/// The reflector: what one core does with recvmmsg/sendmmsg and no DNS work, the ceiling that a
/// server's rate is compared with. Same batching as the generator; default socket buffers.
fn reflect(args: &Args) -> Result<(), String> {
    let socket = UdpSocket::bind(args.server).map_err(|e| format!("{}: {e}", args.server))?;
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    let fd = socket.as_raw_fd();
    let batch = args.batch.clamp(1, 1024);
    let mut bufs = vec![[0u8; MAX_REPLY]; batch];
    let mut lens = vec![0usize; batch];
    let mut peers: Vec<Option<SockaddrStorage>> = vec![None; batch];
    let mut recv_hdrs = MultiHeaders::<SockaddrStorage>::preallocate(batch, None);
    let mut send_hdrs = MultiHeaders::<SockaddrStorage>::preallocate(batch, None);
    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    let mut echoed: u64 = 0;
    while Instant::now() < deadline {
        let n = {
            let mut iovs: Vec<[IoSliceMut; 1]> = bufs
                .iter_mut()
                .map(|b| [IoSliceMut::new(&mut b[..])])
                .collect();
            match recvmmsg(
                fd,
                &mut recv_hdrs,
                iovs.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(results) => {
                    let mut n = 0;
                    for r in results {
                        (lens[n], peers[n]) = (r.bytes, r.address);
                        n += 1;
                    }
                    n
                }
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => 0,
                Err(e) => return Err(format!("recvmmsg: {e}")),
            }
        };
        for (buf, &len) in bufs.iter_mut().zip(&lens[..n]) {
            if len >= 12 {
                buf[2] |= 0x80;
            }
        }
        let iovs: Vec<[IoSlice; 1]> = (0..n)
            .map(|i| [IoSlice::new(&bufs[i][..lens[i]])])
            .collect();
        if let Ok(results) = sendmmsg(
            fd,
            &mut send_hdrs,
            &iovs,
            &peers[..n],
            [],
            MsgFlags::empty(),
        ) {
            echoed += results.count() as u64;
        }
    }
    eprintln!("hearth-loadgen: reflected {echoed} datagrams");
    Ok(())
}

fn report(c: &Counters, hist: &Histogram, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let qps = c.completed as f64 / secs;
    let lost_pct = if c.sent == 0 {
        0.0
    } else {
        100.0 * c.lost as f64 / c.sent as f64
    };
    let mean = if hist.count == 0 {
        0.0
    } else {
        hist.sum_us as f64 / hist.count as f64
    };
    let (p50, p99) = (hist.quantile(0.50), hist.quantile(0.99));
    println!(
        "{:.0} queries/s: {} sent, {} completed, {} lost ({:.4}%), {} mismatched in {:.2} s; \
         latency mean {:.0} us, p50 {} us, p99 {} us, max {} us; generator CPU {:.0}%",
        qps,
        c.sent,
        c.completed,
        c.lost,
        lost_pct,
        c.mismatched,
        secs,
        mean,
        p50,
        p99,
        hist.max_us,
        c.cpu_pct
    );
    let [noerror, nxdomain, servfail, refused, other] = c.rcodes;
    println!(
        "sent={} completed={} lost={} lost_pct={:.4} mismatched={} qps={:.0} elapsed_s={:.3} \
         lat_mean_us={:.1} lat_p50_us={} lat_p99_us={} lat_max_us={} noerror={} nxdomain={} \
         servfail={} refused={} other_rcode={} udp_rcvbuf_errors={} cpu_pct={:.0}",
        c.sent,
        c.completed,
        c.lost,
        lost_pct,
        c.mismatched,
        qps,
        secs,
        mean,
        p50,
        p99,
        hist.max_us,
        noerror,
        nxdomain,
        servfail,
        refused,
        other,
        c.rcvbuf_errors,
        c.cpu_pct
    );
}

fn main() -> ExitCode {
    let args = Args::parse();
    let positive = |x: f64| x.is_finite() && x > 0.0 && x < 1e6;
    if !positive(args.duration) || !positive(args.timeout) {
        eprintln!("hearth-loadgen: --duration and --timeout must be positive numbers of seconds");
        return ExitCode::FAILURE;
    }
    if !args.server.ip().is_loopback() {
        eprintln!(
            "hearth-loadgen: {}: not a loopback address; only loopback is allowed",
            args.server
        );
        return ExitCode::FAILURE;
    }
    match if args.reflect {
        reflect(&args)
    } else {
        run(&args)
    } {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hearth-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
