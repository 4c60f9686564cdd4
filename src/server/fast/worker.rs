//! A fast-path socket's thread: it reads batches, answers hits from the table, answers misses
//! on the general path (at once when they need not wait), and sends the replies in batches
//! (the module above has the picture and the reasons).

use std::future::Future;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use nix::sys::socket::{
    recvmmsg, sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::outbox::{finish_miss, Outbox};
use super::{query_name, query_type, FastTable, Hit, Probe, BATCH, RECEIVE_BUFFER};
use crate::metrics::BatchItem;
use crate::server::admission::{Admitted, Verdict};
use crate::server::{log_query, Client, Engine, Reply, Transport};

/// How often a fast-path thread blocked in `recvmmsg` looks at the shutdown token.
const SHUTDOWN_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Serves `socket` on a thread of its own until `shutdown` is cancelled. Hits are answered on
/// that thread; misses are spawned on `runtime`, on `tracker`, which also waits for the thread.
///
/// Why a thread and not a task: a socket registered in epoll (as every tokio socket is) has a
/// waiter on its wait queue, so the kernel takes the wait-queue and epoll locks, with
/// interrupts off, for every datagram it queues on the socket and for every reply it frees
/// (`sock_def_readable`, `sock_wfree` → `ep_poll_callback`). A thread blocked in `recvmmsg` is
/// a waiter only while it sleeps. Measured on the hit benchmark of BENCHMARKS.md, server pinned
/// to one core: the kernel spent 1.80 µs per query as a tokio task against 1.52 µs in the
/// batched reflector, and `_raw_spin_unlock_irqrestore` alone took 10% of the core against 3%.
/// Knot DNS serves UDP from dedicated threads for the same reason.
pub fn spawn(
    socket: std::net::UdpSocket,
    engine: Arc<Engine>,
    table: Arc<FastTable>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    runtime: tokio::runtime::Handle,
    max_in_flight: usize,
) -> io::Result<()> {
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(SHUTDOWN_POLL))?;
    // The thread stops on shutdown, and also when the runtime it answers misses on is gone
    // (a test that drops its runtime without shutting the server down): a task holding this
    // guard is dropped with the runtime, and dropping the guard cancels `stop`.
    let stop = shutdown.child_token();
    let guard = stop.clone().drop_guard();
    let stopped = stop.clone();
    runtime.spawn(async move {
        let _guard = guard;
        stopped.cancelled().await;
    });
    let token = tracker.token();
    let unserved = stop.clone();
    let spawned = std::thread::Builder::new()
        .name("hearth-udp".into())
        .spawn(move || {
            // The thread counts as one of the tracker's tasks until it returns.
            let _token = token;
            batch_scheduling();
            // Spawning misses and reading the (possibly paused, in tests) clock need it.
            let _runtime = runtime.enter();
            Worker::new(
                Arc::new(socket),
                engine,
                table,
                tracker,
                runtime,
                max_in_flight,
            )
            .run(&stop);
        });
    if spawned.is_err() {
        // Nothing will serve the socket: let the guard's task end.
        unserved.cancel();
    }
    spawned.map(drop)
}

/// Puts the calling thread under `SCHED_BATCH`: a fast-path thread woken by a datagram then
/// does not preempt a runtime thread that is answering misses, and finds a fuller batch when it
/// runs. Under the default policy every datagram of a miss load switched the core from the
/// runtime to this thread and back. One pass over 100,000 new names, server pinned to one core:
/// `benches/throughput.sh --only miss` gave 53,000-58,000 q/s without this and 77,000-84,000
/// with it (83,900 when the socket was a tokio task); a forwarder in front of a local Hearth,
/// 64,000-66,000 without and 89,000-91,000 with (72,000-86,000 as a tokio task). A hit load,
/// where this thread is the only one busy, does not change. Not allowed (a seccomp filter without
/// `@resources`, say), the thread keeps the default policy.
fn batch_scheduling() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityOsValue, ThreadSchedulePolicy,
    };
    let result = thread_priority::set_thread_priority_and_policy(
        thread_priority::thread_native_id(),
        // Static priority 0 with nice 0: what SCHED_BATCH takes (sched(7)).
        ThreadPriority::Os(ThreadPriorityOsValue::default()),
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch),
    );
    if let Err(error) = result {
        tracing::debug!(
            ?error,
            "SCHED_BATCH refused; the UDP thread keeps its policy"
        );
    }
}

/// One fast-path thread's socket, buffers and handles. Everything a batch needs is allocated
/// once here.
struct Worker {
    socket: Arc<std::net::UdpSocket>,
    /// Where the misses finished on the runtime queue their replies.
    outbox: Arc<Outbox>,
    engine: Arc<Engine>,
    table: Arc<FastTable>,
    tracker: TaskTracker,
    runtime: tokio::runtime::Handle,
    /// General-path queries answered at once (`server.max_in_flight`). Beyond it a miss is
    /// shed at once (SERVFAIL with an Extended DNS Error, [`Engine::shed`]): the thread never
    /// stops reading, so hits are answered while misses wait on a slow upstream.
    in_flight: Arc<Semaphore>,
    buffers: Vec<[u8; RECEIVE_BUFFER]>,
    /// Each datagram of the batch: its length, its sender, and whether it was truncated.
    received: Vec<(usize, Option<SockaddrStorage>, bool)>,
    replies: Vec<Vec<u8>>,
    destinations: Vec<Option<SockaddrStorage>>,
    /// What the metrics need of each hit in the batch: its slot in `replies`, its index in
    /// `buffers`, and its source. (Rejections, between them in `replies`, are counted by
    /// [`Engine::reject`].)
    answered: Vec<(usize, usize, Hit)>,
    /// The batch's datagrams the front door admitted, between the table's stages: the
    /// datagram's index, its admitted sender, its lookup.
    admitted: Vec<(usize, Admitted, Probe)>,
    /// The batch's misses the front door admitted, to be answered after the hits are sent:
    /// the datagram's index, its admitted sender, its place in flight.
    general: Vec<(usize, Admitted, OwnedSemaphorePermit)>,
    /// The batch's misses that wait (on an upstream), for the runtime to finish: the
    /// general path's future, polled once, where its reply goes, and its place in flight.
    misses: Vec<(GeneralAnswer, SocketAddr, OwnedSemaphorePermit)>,
}

/// A miss on the general path: its reply, stored in the table if it may be reused.
pub(super) type GeneralAnswer = Pin<Box<dyn Future<Output = Option<Reply>> + Send>>;

impl Worker {
    fn new(
        socket: Arc<std::net::UdpSocket>,
        engine: Arc<Engine>,
        table: Arc<FastTable>,
        tracker: TaskTracker,
        runtime: tokio::runtime::Handle,
        max_in_flight: usize,
    ) -> Self {
        Self {
            outbox: Arc::new(Outbox::new(Arc::clone(&socket))),
            socket,
            engine,
            table,
            tracker,
            runtime,
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            buffers: vec![[0u8; RECEIVE_BUFFER]; BATCH],
            received: Vec::with_capacity(BATCH),
            replies: (0..BATCH).map(|_| Vec::with_capacity(1232)).collect(),
            destinations: vec![None; BATCH],
            answered: Vec::with_capacity(BATCH),
            admitted: Vec::with_capacity(BATCH),
            general: Vec::with_capacity(BATCH),
            misses: Vec::with_capacity(BATCH),
        }
    }

    fn run(mut self, shutdown: &CancellationToken) {
        while !shutdown.is_cancelled() {
            match self.receive() {
                Ok(()) => self.answer_batch(),
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(error) => {
                    tracing::debug!(%error, "UDP receive error");
                    // A persistent error must not spin the core.
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
    }

    /// Waits for at least one datagram, then takes what else is queued, up to [`BATCH`]
    /// (`MSG_WAITFORONE`); gives up after [`SHUTDOWN_POLL`] with `WouldBlock`.
    fn receive(&mut self) -> io::Result<()> {
        self.received.clear();
        let mut slices: [[IoSliceMut<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(&mut [])]);
        for (slice, buffer) in slices.iter_mut().zip(self.buffers.iter_mut()) {
            slice[0] = IoSliceMut::new(buffer);
        }
        // Two small allocations per batch, none per query.
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let messages = recvmmsg(
            self.socket.as_raw_fd(),
            &mut headers,
            slices.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        )
        .map_err(io::Error::from)?;
        for message in messages {
            self.received.push((
                message.bytes,
                message.address,
                message.flags.contains(MsgFlags::MSG_TRUNC),
            ));
        }
        Ok(())
    }

    /// Asks the front door about each datagram of the batch, answers the admitted hits and the
    /// rejections with one `sendmmsg`, and spawns the misses.
    ///
    /// The table is asked in passes over the batch ([`super::Lookups`]): every admitted query's
    /// key is hashed, then its bucket read, then every matching entry, then the hits are
    /// copied. On a table larger than the CPU's caches each read is a cache miss, and this way
    /// the batch's misses wait on memory together rather than one after another.
    fn answer_batch(&mut self) {
        let now = Instant::now();
        let mut ready = 0;
        self.answered.clear();
        let mut lookups = self.table.lookups(now);
        // One policy for the whole batch: one load, then a decision per datagram. The front
        // door decides before the table is asked.
        let policy = self.engine.admission().policy();
        for (index, (length, address, truncated)) in self.received.iter().enumerate() {
            let (Some(address), false) = (address, *truncated) else {
                continue;
            };
            let Some(peer) = socket_addr(address) else {
                continue;
            };
            let query = &self.buffers[index][..*length];
            let client = Client::new(peer, Transport::Udp);
            match policy.decide(&client, query, now) {
                Verdict::Admit(admitted) => {
                    let probe = lookups.start(query);
                    self.admitted.push((index, admitted, probe));
                }
                Verdict::Reject(decision) => {
                    if self
                        .engine
                        .reject(query, &client, decision, &mut self.replies[ready])
                    {
                        self.destinations[ready] = Some(*address);
                        ready += 1;
                    }
                }
            }
        }
        drop(policy);
        for &(_, _, probe) in &self.admitted {
            lookups.prefetch(probe);
        }
        for (_, _, probe) in &mut self.admitted {
            *probe = lookups.locate(*probe);
        }
        for (index, admitted, probe) in self.admitted.drain(..) {
            let (length, address, _) = &self.received[index];
            let query = &self.buffers[index][..*length];
            if let Some(hit) = lookups.answer(&admitted, probe, query, &mut self.replies[ready]) {
                self.destinations[ready] = *address;
                self.answered.push((ready, index, hit));
                ready += 1;
                continue;
            }
            match Arc::clone(&self.in_flight).try_acquire_owned() {
                Ok(permit) => {
                    // Read while the hits are sent and the misses before it are answered.
                    self.table.prefetch_store(query);
                    self.general.push((index, admitted, permit));
                }
                // At the limit of misses in flight: shed this one at once rather than stop
                // reading, so the hits behind it are still answered.
                Err(_) => {
                    let client = admitted.client();
                    if self.engine.shed(query, client, &mut self.replies[ready]) {
                        self.destinations[ready] = *address;
                        ready += 1;
                    }
                }
            }
        }
        // The table's read locks go before the misses' replies are stored.
        drop(lookups);
        // The hits (and rejections) go out first: they do not wait for the misses' work.
        if ready > 0 {
            send_batch(
                &self.socket,
                &self.replies[..ready],
                &self.destinations[..ready],
                MsgFlags::empty(),
            );
        }
        // Every hit of the batch waited for the whole batch: that is its duration.
        self.record(now.elapsed());
        let answered = self.answer_general(ready);
        if answered > ready {
            send_batch(
                &self.socket,
                &self.replies[ready..answered],
                &self.destinations[ready..answered],
                MsgFlags::empty(),
            );
        }
        self.spawn_misses();
    }

    /// Answers the batch's misses on the general path. Those answered at once (local data,
    /// fresh cache entries; a future for the others, polled once) are written to the reply
    /// slots from `first` on, for one `sendmmsg`; those that wait (an upstream) are kept for
    /// [`Worker::spawn_misses`]. Returns the end of the slots written.
    fn answer_general(&mut self, first: usize) -> usize {
        let mut next = first;
        // Taken and put back, to keep its allocation from batch to batch.
        let mut admitted_misses = std::mem::take(&mut self.general);
        for (index, admitted, permit) in admitted_misses.drain(..) {
            let (length, address, _) = &self.received[index];
            let peer = admitted.client().address;
            let query = &self.buffers[index][..*length];
            // The slot's buffer is lent to the general path and comes back as the reply (no
            // allocation, no copy); a query that waits keeps it, and the slot starts a new one.
            let buffer = std::mem::take(&mut self.replies[next]);
            let mut answer = match general(&self.engine, &self.table, query, admitted, buffer) {
                Ok(Some(reply)) => {
                    self.replies[next] = reply.bytes;
                    self.destinations[next] = *address;
                    next += 1;
                    continue;
                }
                Ok(None) => continue,
                Err(answer) => answer,
            };
            // Polled once here: a source that cannot answer from memory may still answer
            // without waiting (a stale entry served, a refusal at the waiting limit).
            match answer
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
            {
                Poll::Ready(Some(reply)) => {
                    self.replies[next] = reply.bytes;
                    self.destinations[next] = *address;
                    next += 1;
                }
                Poll::Ready(None) => {}
                Poll::Pending => self.misses.push((answer, peer, permit)),
            }
        }
        self.general = admitted_misses;
        next
    }

    /// Hands the batch's misses to the runtime in one task, which starts a task for each: a
    /// spawn from outside the runtime wakes a worker thread, so one per batch rather than one
    /// per miss. (One per miss cost a quarter of the miss rate with the server on one core.)
    fn spawn_misses(&mut self) {
        if self.misses.is_empty() {
            return;
        }
        let misses = std::mem::replace(&mut self.misses, Vec::with_capacity(BATCH));
        let (outbox, tracker) = (Arc::clone(&self.outbox), self.tracker.clone());
        self.tracker.spawn_on(
            async move {
                for (answer, peer, permit) in misses {
                    tracker.spawn(finish_miss(answer, Arc::clone(&outbox), peer, permit));
                }
            },
            &self.runtime,
        );
    }

    /// Counts the batch's hits, and logs them if the query log is on.
    fn record(&self, elapsed: std::time::Duration) {
        let hit_info = |slot: usize, index: usize| {
            let query = &self.buffers[index][..self.received[index].0];
            let destination = self.destinations[slot].as_ref();
            let ipv6 = destination.is_some_and(|d| d.as_sockaddr_in6().is_some());
            let response_code = u16::from(self.replies[slot].get(3).map_or(0, |b| b & 0x0F));
            (query, destination, ipv6, response_code)
        };
        self.engine.metrics().record_batch(
            Transport::Udp,
            elapsed,
            self.answered.iter().map(|&(slot, index, hit)| {
                let (query, _, ipv6, response_code) = hit_info(slot, index);
                BatchItem {
                    ipv6,
                    query_type: query_type(query),
                    response_code,
                    from_cache: hit.from_cache,
                }
            }),
        );
        if self.engine.log_queries() {
            for &(slot, index, Hit { source, .. }) in &self.answered {
                let (query, destination, _, response_code) = hit_info(slot, index);
                if let Some(peer) = destination.and_then(socket_addr) {
                    log_query(
                        peer,
                        Transport::Udp,
                        query_name(query).as_ref(),
                        query_type(query),
                        Some(response_code),
                        elapsed,
                        source,
                    );
                }
            }
        }
    }
}

/// Answers a miss on the general path, its reply written over `buffer`, and stores the reply
/// if it may be reused: at once when every source it reaches answers from memory, or as a
/// future when one must wait. The versions are read before the answer is computed, so a
/// change meanwhile keeps it out of the table.
fn general(
    engine: &Arc<Engine>,
    table: &Arc<FastTable>,
    packet: &[u8],
    admitted: Admitted,
    buffer: Vec<u8>,
) -> Result<Option<Reply>, GeneralAnswer> {
    let before = table.versions();
    let later = match engine.answer_now(packet, &admitted, buffer) {
        Ok(reply) => {
            if let Some(reply) = &reply {
                table.store(packet, reply, &before, Instant::now);
            }
            return Ok(reply);
        }
        Err(later) => later,
    };
    let (engine, table, packet) = (Arc::clone(engine), Arc::clone(table), packet.to_vec());
    Err(Box::pin(async move {
        let reply = engine.answer_later(later, &admitted).await?;
        table.store(&packet, &reply, &before, Instant::now);
        Some(reply)
    }))
}

/// Sends `replies` to `destinations` with as few sendmmsg calls as the socket allows, and
/// returns how many are done with (sent, or skipped after an error). The socket is blocking:
/// with no `flags`, a full send buffer holds the thread (and so its reading) until the kernel
/// has room, which is the back-pressure a UDP server can give. With `MSG_DONTWAIT` (the
/// runtime's [`super::outbox::Outbox`]) it stops at a full buffer instead.
pub(super) fn send_batch(
    socket: &std::net::UdpSocket,
    replies: &[Vec<u8>],
    destinations: &[Option<SockaddrStorage>],
    flags: MsgFlags,
) -> usize {
    let mut sent = 0;
    while sent < replies.len() {
        let slices: Vec<[IoSlice<'_>; 1]> =
            replies[sent..].iter().map(|r| [IoSlice::new(r)]).collect();
        let no_control: [ControlMessage<'_>; 0] = [];
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(slices.len(), None);
        let result = sendmmsg(
            socket.as_raw_fd(),
            &mut headers,
            &slices,
            &destinations[sent..],
            no_control,
            flags,
        )
        .map(|results| results.count());
        match result {
            Ok(0) | Err(nix::errno::Errno::EAGAIN) => break,
            Ok(count) => sent += count,
            Err(nix::errno::Errno::EINTR) => {}
            Err(error) => {
                // One destination refused (e.g. unreachable): skip it, send the rest.
                tracing::debug!(%error, "UDP batch send error");
                sent += 1;
            }
        }
    }
    sent
}

fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    address
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}
