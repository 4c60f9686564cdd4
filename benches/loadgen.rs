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
//! udp_rcvbuf_errors cpu_pct truncated offered_qps unsent` (and `sources_replied` with
//! `--sources`). `qps` is completed queries divided by the time from the first send to the
//! last reply. `udp_rcvbuf_errors` is the machine-wide increase of `RcvbufErrors` in
//! `/proc/net/snmp` during the run: datagrams some socket on the machine dropped because its
//! receive buffer was full (this generator's own socket has a large buffer, so on an otherwise
//! idle machine they are the server's drops). `cpu_pct` is the generator's own CPU time over
//! the run, in percent of one core: near 100, the generator rather than the server may be
//! what limits the rate. With `--busy-cpu N` the line also has `busy_cpu_pct`: how busy CPU N
//! (the server's) was over the same run, interrupts and softirqs included, from
//! `/proc/stat`. Measured here, not around the generator's process, because reading a query
//! file takes time (a second for a million names) in which the server idles, and a busy
//! share over that longer window would understate the server's cost per answer, the faster
//! server's the more.
//!
//! With `--sources N` the queries come from N source addresses in 127.0.0.0/8 (a flood from
//! many clients, for a rate limiter), from the same sockets: they are bound to 0.0.0.0 and not
//! connected, and each datagram names its source address in an `IP_PKTINFO` control message
//! (`sendmmsg` with a control message per datagram), so no socket per address is needed.
//! Source `i` is `127.(i >> 8 & 255).(i & 255).(1 + (i >> 16))`: the first 65,536 are each in a
//! /24 of their own. The replies, sent to each of those addresses, reach the same sockets (all
//! of 127.0.0.0/8 is local); a reply must then also come from `--server` and be addressed to
//! the source its query was sent from (read back with `IP_PKTINFO`), else it is `mismatched`.
//! The key=value line then adds `sources_replied`: how many distinct sources got a reply.
//!
//! With `--rate R` the generator is open-loop: it sends R queries a second whatever comes back
//! (a flood does not wait for replies), still through the slot table, so `--outstanding`
//! bounds the queries in flight and a query with no free slot when it is due is not sent
//! (`unsent`). `offered_qps` is what was sent per second; `truncated` counts replies with TC=1
//! (a rate limiter's "slip").
//!
//! Traffic goes only to loopback: a `--server` outside 127.0.0.0/8 and ::1 is refused, and
//! `--sources` are all in 127.0.0.0/8.
//!
//! `--reflect` turns it into the other end of a ceiling measurement: a batched UDP reflector
//! (recvmmsg, set QR, sendmmsg; no DNS work) bound to `--server` for `--duration` seconds. What
//! the generator measures against it is the most that one core can answer on this machine, the
//! figure a server's rate is compared with.

use std::io::{self, BufRead, BufReader, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use nix::errno::Errno;
use nix::libc;
use nix::sys::socket::{
    recvmmsg, sendmmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, MultiHeaders,
    SockaddrIn, SockaddrStorage,
};

/// Largest reply read; longer datagrams are truncated by the kernel (and still counted).
const MAX_REPLY: usize = 4096;
/// Largest query accepted from the query file (a name is at most 255 bytes).
const MAX_QUERY: usize = 512;
/// Most `--sources`: 127.A.B.C with C from 1 to 254.
const MAX_SOURCES: u32 = 254 << 16;

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
    /// Send from this many IPv4 source addresses in 127.0.0.0/8 (the first 65,536 each in a
    /// /24 of its own), in turn, one per query, through IP_PKTINFO; 0: the socket's own address.
    #[arg(long, default_value_t = 0)]
    sources: u32,
    /// Open loop: send this many queries a second whatever comes back (at most --outstanding
    /// in flight); 0: closed loop, --outstanding always in flight.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Instead of generating load, be the harness's "ceiling": a batched UDP reflector on
    /// --server that echoes every datagram with QR set and does no DNS work, for --duration
    /// seconds.
    #[arg(long, conflicts_with_all = ["queries", "once"])]
    reflect: bool,
    /// Also report how busy this CPU (the server's) was over the run, in percent.
    #[arg(long)]
    busy_cpu: Option<usize>,
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
    /// When the slot holds a query: which one of the file, its source (`--sources`), and when
    /// it was sent.
    in_flight: Option<InFlight>,
}

#[derive(Clone, Copy)]
struct InFlight {
    query: u32,
    source: u32,
    sent: Instant,
}

/// Source `i` of `--sources`: 127.(i >> 8 & 255).(i & 255).(1 + (i >> 16)), so that the first
/// 65,536 are each in a /24 of their own.
fn source_address(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(127, (i >> 8) as u8, i as u8, 1 + (i >> 16) as u8)
}

/// `sendmmsg` with a source address of its own for each datagram, in an `IP_PKTINFO` control
/// message (`ipi_spec_dst`). nix's `sendmmsg` gives every datagram of a call the same control
/// messages, so this one builds the headers itself.
struct SourcedSender {
    headers: Vec<libc::mmsghdr>,
    iovecs: Vec<libc::iovec>,
    controls: Vec<ControlBuffer>,
    destination: libc::sockaddr_in,
}

/// Room for one `IP_PKTINFO` control message, aligned as a `cmsghdr`.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct ControlBuffer([u8; 64]);

impl SourcedSender {
    fn new(batch: usize, destination: SocketAddrV4) -> Self {
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::in_pktinfo>() as u32) };
        assert!(space as usize <= std::mem::size_of::<ControlBuffer>());
        SourcedSender {
            // SAFETY: mmsghdr and iovec are plain C structs, valid when zeroed.
            headers: vec![unsafe { std::mem::zeroed() }; batch],
            iovecs: vec![unsafe { std::mem::zeroed() }; batch],
            controls: vec![ControlBuffer([0; 64]); batch],
            destination: *SockaddrIn::from(destination).as_ref(),
        }
    }

    /// Sends `datagrams[i]` from `sources[i]` to the destination; returns how many were sent.
    fn send(
        &mut self,
        fd: RawFd,
        datagrams: &[&[u8]],
        sources: &[Ipv4Addr],
        flags: MsgFlags,
    ) -> nix::Result<usize> {
        let n = datagrams.len().min(sources.len()).min(self.headers.len());
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::in_pktinfo>() as u32) };
        for i in 0..n {
            self.iovecs[i] = libc::iovec {
                iov_base: datagrams[i].as_ptr() as *mut libc::c_void,
                iov_len: datagrams[i].len(),
            };
            let info = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(sources[i]).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            // SAFETY: a zeroed msghdr is valid; every pointer set below points into `self` or
            // `datagrams`, which outlive the sendmmsg call, and the control buffer has room
            // for one cmsghdr with an in_pktinfo (checked in `new`).
            unsafe {
                let header = &mut self.headers[i].msg_hdr;
                *header = std::mem::zeroed();
                header.msg_name = &mut self.destination as *mut libc::sockaddr_in as *mut _;
                header.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as _;
                header.msg_iov = &mut self.iovecs[i];
                header.msg_iovlen = 1;
                header.msg_control = self.controls[i].0.as_mut_ptr() as *mut libc::c_void;
                header.msg_controllen = space as _;
                let cmsg = libc::CMSG_FIRSTHDR(header);
                (*cmsg).cmsg_level = libc::IPPROTO_IP;
                (*cmsg).cmsg_type = libc::IP_PKTINFO;
                (*cmsg).cmsg_len =
                    libc::CMSG_LEN(std::mem::size_of::<libc::in_pktinfo>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut libc::in_pktinfo, info);
                self.headers[i].msg_len = 0;
            }
        }
        // SAFETY: the first `n` headers were filled above.
        let sent =
            unsafe { libc::sendmmsg(fd, self.headers.as_mut_ptr(), n as _, flags.bits() as _) };
        Errno::result(sent).map(|sent| sent as usize)
    }
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
    /// Replies with TC=1 (a rate limiter's slip, or an answer too large for UDP).
    truncated: u64,
    /// `--rate`: queries due that were not sent, for want of a free slot or of time.
    unsent: u64,
    /// Queries sent per second, from the first send to the last.
    offered_qps: f64,
    /// `--busy-cpu`: how busy that CPU was over the run, in percent.
    busy_cpu_pct: Option<f64>,
    /// `--sources`: how many distinct sources got at least one reply.
    sources_replied: Option<u64>,
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

/// CPU `cpu`'s idle and total jiffies, from its line of /proc/stat (idle and iowait are idle).
fn cpu_ticks(cpu: usize) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let label = format!("cpu{cpu}");
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(label.as_str()))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().unwrap_or(0))
        .collect();
    let idle = ticks.get(3)? + ticks.get(4).unwrap_or(&0);
    Some((idle, ticks.iter().sum()))
}

/// How busy a CPU was between two [`cpu_ticks`] readings, in percent.
fn busy_pct(before: (u64, u64), after: (u64, u64)) -> Option<f64> {
    let total = after.1.checked_sub(before.1).filter(|t| *t > 0)?;
    let idle = after.0.saturating_sub(before.0);
    Some(100.0 * (1.0 - idle as f64 / total as f64))
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

/// A socket for the generator: bound to loopback and connected to `server`; or, with
/// `sourced` (`--sources`), bound to 0.0.0.0 and not connected, so that replies to any
/// address of 127.0.0.0/8 arrive on it, with `IP_PKTINFO` to read their destination.
fn open_socket(server: SocketAddr, recv_wait: Duration, sourced: bool) -> io::Result<UdpSocket> {
    let local: SocketAddr = match (sourced, server.is_ipv4()) {
        (true, _) => "0.0.0.0:0",
        (false, true) => "127.0.0.1:0",
        (false, false) => "[::1]:0",
    }
    .parse()
    .unwrap();
    let socket = UdpSocket::bind(local)?;
    if sourced {
        setsockopt(&socket, sockopt::Ipv4PacketInfo, &true)?;
    } else {
        socket.connect(server)?;
    }
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
    let sources = args.sources;
    let sourced = sources > 0;
    let server_v4 = match (sourced, args.server) {
        (false, _) => None,
        (true, SocketAddr::V4(server)) if sources <= MAX_SOURCES => Some(server),
        (true, SocketAddr::V4(_)) => return Err(format!("--sources: at most {MAX_SOURCES}")),
        (true, SocketAddr::V6(_)) => return Err("--sources needs an IPv4 --server".into()),
    };
    let rate = args.rate;
    if !(rate == 0.0 || rate.is_finite() && rate > 0.0) {
        return Err("--rate must be a positive number of queries a second (or 0)".into());
    }
    // Which sources got a reply, a bit each.
    let mut replied = vec![0u64; (sources as usize).div_ceil(64)];

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
    // Open loop (--rate), reads never block: the loop sleeps instead when it has nothing to do.
    let recv_wait = Duration::from_micros(if sockets == 1 { 5000 } else { 100 });
    let socks: Vec<UdpSocket> = (0..sockets)
        .map(|_| open_socket(args.server, recv_wait, sourced))
        .collect::<io::Result<_>>()
        .map_err(|e| e.to_string())?;
    let mut sourced_sender = server_v4.map(|server| SourcedSender::new(batch, server));
    let mut send_sources = vec![Ipv4Addr::UNSPECIFIED; batch];
    let mut recv_meta: Vec<(Option<SocketAddr>, Option<Ipv4Addr>)> = vec![(None, None); batch];

    let mut send_bufs = vec![[0u8; MAX_QUERY]; batch];
    let mut send_lens = vec![0usize; batch];
    let mut recv_bufs = vec![[0u8; MAX_REPLY]; batch];
    let mut recv_lens = vec![0usize; batch];
    let mut send_hdrs = MultiHeaders::<SockaddrStorage>::preallocate(batch, None);
    let mut recv_hdrs = MultiHeaders::<SockaddrStorage>::preallocate(
        batch,
        sourced.then(|| nix::cmsg_space!(libc::in_pktinfo)),
    );
    let no_addrs: Vec<Option<SockaddrStorage>> = vec![None; batch];

    let mut c = Counters::default();
    let mut hist = Histogram::new();
    let timeout = Duration::from_secs_f64(args.timeout);
    let rcvbuf_before = udp_rcvbuf_errors();
    let cpu_before = cpu_ns();
    let busy_before = args.busy_cpu.and_then(cpu_ticks);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.duration);
    let mut last_reply = start;
    let mut last_send = start;
    let mut last_expiry_scan = start;
    let mut next_query: u64 = 0;
    let mut turn = 0usize;
    let mut idle_round = false;
    let mut round_active = false;

    loop {
        let now = Instant::now();
        let sending = now < deadline && !(args.once && next_query >= total);
        // Open loop: the queries due by now that were not sent yet, at most 10 ms' worth (the
        // rest, late for want of a free slot or of time, are counted as unsent and skipped).
        let mut budget = if rate > 0.0 && sending {
            let due = (now.duration_since(start).as_secs_f64() * rate) as u64;
            let behind = due.saturating_sub(c.sent + c.unsent);
            let most = (rate / 100.0).max(batch as f64) as u64;
            c.unsent += behind.saturating_sub(most);
            behind.min(most)
        } else {
            u64::MAX
        };
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
                if let Some(InFlight { sent, .. }) = slot.in_flight {
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
        while sending && !free.is_empty() && budget > 0 {
            let mut n = 0;
            while n < batch
                && n < free.len()
                && (n as u64) < budget
                && !(args.once && next_query + n as u64 >= total)
            {
                let slot = free[free.len() - 1 - n];
                let q = &queries[((next_query + n as u64) % total) as usize];
                let id = (slots[slot].generation << slot_bits) | slot as u16;
                send_bufs[n][..q.wire.len()].copy_from_slice(&q.wire);
                send_bufs[n][..2].copy_from_slice(&id.to_be_bytes());
                send_lens[n] = q.wire.len();
                if sourced {
                    send_sources[n] =
                        source_address(((next_query + n as u64) % sources as u64) as u32);
                }
                n += 1;
            }
            if n == 0 {
                break;
            }
            let sent_at = Instant::now();
            let result = match sourced_sender.as_mut() {
                Some(sender) => {
                    let datagrams: Vec<&[u8]> =
                        (0..n).map(|i| &send_bufs[i][..send_lens[i]]).collect();
                    sender.send(fd, &datagrams, &send_sources[..n], MsgFlags::MSG_DONTWAIT)
                }
                None => {
                    let iovs: Vec<[IoSlice; 1]> = (0..n)
                        .map(|i| [IoSlice::new(&send_bufs[i][..send_lens[i]])])
                        .collect();
                    sendmmsg(
                        fd,
                        &mut send_hdrs,
                        &iovs,
                        &no_addrs[..n],
                        [],
                        MsgFlags::MSG_DONTWAIT,
                    )
                    .map(|results| results.count())
                }
            };
            let sent = match result {
                Ok(sent) => sent,
                // The socket buffer is full, or nothing listens on the port (yet): the queries
                // were not sent; they are tried again on the next round.
                Err(Errno::EAGAIN) | Err(Errno::ENOBUFS) | Err(Errno::ECONNREFUSED) => 0,
                Err(e) => return Err(format!("sendmmsg: {e}")),
            };
            // The slots were taken from the top of the free stack, in order.
            for i in 0..sent {
                let slot = free.pop().expect("a free slot per query sent");
                let seq = next_query + i as u64;
                slots[slot].in_flight = Some(InFlight {
                    query: (seq % total) as u32,
                    source: if sourced {
                        (seq % sources as u64) as u32
                    } else {
                        0
                    },
                    sent: sent_at,
                });
            }
            next_query += sent as u64;
            c.sent += sent as u64;
            budget = budget.saturating_sub(sent as u64);
            if sent > 0 {
                last_send = sent_at;
            }
            did_something |= sent > 0;
            if sent < n || sockets > 1 || (args.once && next_query >= total) {
                break;
            }
        }

        // Read replies: wait for the first one only when there is nothing else to do (open
        // loop: never, see below). Open loop, read until the socket is empty (up to 64
        // batches): the sends above may have been many batches, and replies read late would
        // be counted lost.
        let wait = rate == 0.0 && (sockets == 1 || idle_round);
        let flags = if wait {
            MsgFlags::MSG_WAITFORONE
        } else {
            MsgFlags::MSG_DONTWAIT
        };
        let mut received_total = 0;
        for _ in 0..if rate > 0.0 { 64 } else { 1 } {
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
                            if sourced {
                                // Where the reply came from, and to which of our addresses.
                                let from = r.address.and_then(|a| {
                                    a.as_sockaddr_in().map(|a| SocketAddr::V4((*a).into()))
                                });
                                let to = r.cmsgs().ok().and_then(|mut cmsgs| {
                                    cmsgs.find_map(|cmsg| match cmsg {
                                        ControlMessageOwned::Ipv4PacketInfo(info) => {
                                            Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)))
                                        }
                                        _ => None,
                                    })
                                });
                                recv_meta[n] = (from, to);
                            }
                            n += 1;
                        }
                        n
                    }
                    Err(Errno::EAGAIN) | Err(Errno::EINTR) | Err(Errno::ECONNREFUSED) => 0,
                    Err(e) => return Err(format!("recvmmsg: {e}")),
                }
            };
            let received_at = Instant::now();
            for (i, (buf, &len)) in recv_bufs.iter().zip(&recv_lens[..received]).enumerate() {
                let reply = &buf[..len.min(MAX_REPLY)];
                // The ID must name a slot in flight of the current generation, the reply must be a
                // response (QR=1), and its question must be the one sent. With --sources, it must
                // also come from the server and be addressed to the query's source.
                let matched = (len >= 12 && reply[2] & 0x80 != 0)
                    .then(|| u16::from_be_bytes([reply[0], reply[1]]))
                    .and_then(|id| {
                        let index = (id & slot_mask) as usize;
                        let slot = slots.get(index)?;
                        let flight = slot.in_flight?;
                        let q = &queries[flight.query as usize];
                        let addressed = !sourced
                            || recv_meta[i]
                                == (Some(args.server), Some(source_address(flight.source)));
                        (slot.generation == id >> slot_bits
                            && addressed
                            && reply.get(12..q.question_end) == Some(&q.wire[12..q.question_end]))
                        .then_some((index, flight))
                    });
                let Some((index, InFlight { sent, source, .. })) = matched else {
                    c.mismatched += 1;
                    continue;
                };
                if sourced {
                    replied[source as usize / 64] |= 1 << (source % 64);
                }
                if reply[2] & 0x02 != 0 {
                    c.truncated += 1;
                }
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
            received_total += received;
            if received < batch {
                break;
            }
        }
        let received = received_total;
        // After a whole round over the sockets in which nothing was sent or received, the
        // reads of the next round may wait a little.
        round_active |= did_something || received > 0;
        if turn == 0 {
            idle_round = !round_active;
            round_active = false;
        }
        // Open loop, nothing sent or received: wait a little for the next query to be due or
        // a reply to come (a blocking read could wait a whole scheduler tick).
        if rate > 0.0 && !did_something && received == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    // Whatever is still in flight at the end (only after the grace period) is lost too.
    c.lost += (outstanding - free.len()) as u64;
    c.rcvbuf_errors = udp_rcvbuf_errors().saturating_sub(rcvbuf_before);
    c.cpu_pct =
        cpu_ns().saturating_sub(cpu_before) as f64 / start.elapsed().as_nanos() as f64 * 100.0;
    c.busy_cpu_pct = busy_before
        .zip(args.busy_cpu.and_then(cpu_ticks))
        .and_then(|(before, after)| busy_pct(before, after));
    c.offered_qps = c.sent as f64 / last_send.duration_since(start).as_secs_f64().max(1e-9);
    c.sources_replied = sourced.then(|| replied.iter().map(|w| u64::from(w.count_ones())).sum());
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
         servfail={} refused={} other_rcode={} udp_rcvbuf_errors={} cpu_pct={:.0} truncated={} \
         offered_qps={:.0} unsent={}{}",
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
        c.cpu_pct,
        c.truncated,
        c.offered_qps,
        c.unsent,
        c.sources_replied
            .map_or(String::new(), |n| format!(" sources_replied={n}"))
            + &c.busy_cpu_pct
                .map_or(String::new(), |b| format!(" busy_cpu_pct={b:.0}"))
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
