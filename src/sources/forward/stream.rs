//! Upstreams reached over a stream: TCP (RFC 7766), TLS (RFC 7858) and HTTPS (RFC 8484), one
//! persistent connection per upstream, shared by every query to it.
//!
//! ```text
//! exchange(request, deadline)              everything below is bounded by the deadline
//!    │
//!    ▼
//! a slot among MAX_IN_FLIGHT (beyond, a query waits for one)
//!    │
//!    ▼
//! the upstream's connection usable? ── yes (reused) ──────────────────────────────┐
//!    │ no: none yet, closed, draining (keepalive 0) or failed. One attempt,        │
//!    │ shared by every query that arrives while it runs                            │
//!    ▼                                                                             │
//! TCP connect ─► TLS handshake (tls, https) ─► HTTP/2 handshake (https)            │
//!    │ opened: a task of ours drives it and closes it when it breaks or idles      │
//!    ▼ ◄───────────────────────────────────────────────────────────────────────────┘
//! tcp, tls: hickory's DnsMultiplexer: a random ID per query among those in flight, the reply
//!           routed by ID, in whatever order they come (pipelining, RFC 7766 §6.2.1.1)
//! https:    hickory's HttpsClientStream: one HTTP/2 stream per query, ID 0 (RFC 8484 §4.1)
//!    │
//!    ▼
//! our check of the reply: a response, same opcode, same question; else it is dropped and the
//! query keeps waiting ─► the reply, with the request's ID
//!    (the connection closed before it, and this query did not open it: asked once more)
//! ```
//!
//! What is hickory's and what is ours. hickory-net does the framing (the two-byte length of RFC
//! 1035 §4.2.2), the multiplexing by ID, the TLS stream, HTTP/2 and the DoH requests. The glue
//! here is written by hand where hickory's ready-made constructors do not fit:
//! - `tls::tls_exchange` turns SNI off ("ISP block by the SNI name"), but `tls://IP#name` names
//!   the server, and some DoT services pick their certificate by SNI. So we connect, shake hands
//!   with the `tokio-rustls` hickory uses, and hand the TLS stream to hickory's `TcpStream`, as
//!   `tls::tls_client_connect` does inside (which we cannot use: it connects TCP itself, so a
//!   timeout could not say whether TCP or TLS was slow).
//! - `TcpClientStream::exchange` and the others allow 32 queries in flight per connection (the
//!   33rd fails at once) and spawn the connection's task where its end cannot be seen; we spawn
//!   it ourselves, so a connection that ends is known to be closed, and an idle one is closed.
//! - The multiplexer matches replies by ID only, and DoH by stream; the question is checked here
//!   (RFC 7858 §3.3).
//!
//! Connection reuse. RFC 7858 §3.4: "clients and servers SHOULD reuse existing connections for
//! subsequent queries as long as they have sufficient resources", and "Clients and servers that
//! keep idle connections open MUST be robust to termination of idle connection by either
//! party." A connection is closed when its stream ends, when a query sees it break, and when
//! it has been idle for what the server asked in edns-tcp-keepalive (RFC 7828), or
//! [`DEFAULT_IDLE_TIMEOUT`] when it did not say. RFC 7766 §6.2.3: "DNS clients SHOULD close the
//! TCP connection of an idle session, unless an idle timeout has been established using some
//! other signalling mechanism, for example, [edns-tcp-keepalive]." RFC 7766 §6.2.4: "DNS clients
//! SHOULD retry unanswered queries if the connection closes before receiving all outstanding
//! responses": a query whose connection closes before its reply, on a connection it did not
//! open, is asked once more on a new one (the server may have closed it, idle, as the query went
//! out). One that opened the connection itself is not: that server is failing, not idling.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::Stream;
use hickory_net::runtime::iocompat::AsyncIoTokioAsStd;
use hickory_net::runtime::{RuntimeProvider, TokioRuntimeProvider};
use hickory_net::tcp::{TcpClientStream, TcpStream};
use hickory_net::xfer::{BufDnsStreamHandle, DnsExchange, DnsHandle, DnsMultiplexer};
use hickory_net::NetError;
use hickory_proto::op::{DnsRequest, Message, MessageType, Query};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, RootCertStore};
use tokio::sync::{Notify, OnceCell, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Which stream transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamKind {
    Tcp,
    Tls { server_name: String },
    Https { server_name: String, path: String },
}

/// The counters of one upstream's connections, for the metrics.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Connections opened (TCP connected, and the TLS and HTTP/2 handshakes done).
    pub opened: AtomicU64,
    /// Exchanges sent on a connection they did not open themselves (opened earlier, or by a
    /// query they waited for). An exchange is counted here or in `opened`, and once more when
    /// its connection closed under it and it is asked again.
    pub reused: AtomicU64,
    /// Attempts to open a connection that failed (connect, handshake, certificate).
    pub failed: AtomicU64,
}

/// Why an exchange failed; `Display` says why in words an operator understands.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The query went out on an open connection and no reply came before the deadline.
    #[error("no reply before the deadline")]
    TimedOut,
    /// The connection could not be opened (refused, unreachable, not established before the
    /// deadline), or it closed before the reply came.
    #[error("{0}")]
    Connect(String),
    /// The TLS handshake failed (most often the certificate) or did not finish before the
    /// deadline.
    #[error("{0}")]
    Tls(String),
    /// The upstream answered something that is not a reply to the query.
    #[error("{0}")]
    Protocol(String),
    /// The deadline passed while the connection was being set up (TCP connect, TLS or HTTP/2
    /// handshake): like a query that got no reply, a temporary failure (TRYAGAIN), but the
    /// message says which step was slow.
    #[error("{0}")]
    SetupTimedOut(String),
}

/// How far the opening of a connection got, for the message when the deadline passes during it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// The TCP connection is not established yet.
    Connect,
    /// Connected; the TLS handshake (and for HTTPS the HTTP/2 one after it) is not done.
    TlsHandshake,
}

impl Stage {
    /// The error for a deadline that passed `within` after the exchange began, at this stage.
    fn timed_out(self, within: Duration) -> StreamError {
        // To 10 ms: the deadline was set a moment before the exchange began, so a 2 s timeout
        // leaves 1.9996 s, which is better read as 2s.
        let within = humantime::format_duration(Duration::from_millis(
            millis(within).saturating_add(5) / 10 * 10,
        ));
        match self {
            Self::Connect => StreamError::SetupTimedOut(format!(
                "TCP connection not established within {within}"
            )),
            Self::TlsHandshake => {
                StreamError::SetupTimedOut(format!("TLS handshake did not finish within {within}"))
            }
        }
    }
}

/// Queries in flight at once to one upstream; more wait for a slot (within their deadline).
/// hickory's multiplexer allows 32 by default and fails the rest at once (`Busy`); BIND caps its
/// pipelined queries per connection at 256, to bound what a dropped connection loses.
pub const MAX_IN_FLIGHT: usize = 256;

/// How long a connection may stay idle when the server did not say (RFC 7828): 10 s, as stubby
/// and NLnet Labs' `domain` client; below the 30 s after which Unbound closes idle clients
/// (`tcp-idle-timeout`), so the race in which a query goes out as the server closes is rare.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// hickory's own timeouts (the TCP connect, the multiplexer's wait for a reply): only a
/// backstop, since every exchange is bounded by its own deadline (at most `forward.timeout`,
/// 30 s) and gives up before them.
const BACKSTOP: Duration = Duration::from_secs(60);

/// One upstream reached over a stream: one persistent multiplexed connection (hickory's
/// DnsMultiplexer / HTTP/2), opened on first use, reopened when it breaks, shared by all queries.
pub struct StreamUpstream {
    address: SocketAddr,
    kind: StreamKind,
    tls: Option<Arc<ClientConfig>>,
    stats: Arc<ConnectionStats>,
    /// Makes the TCP connections (hickory's, as the rest of the forwarder uses).
    provider: TokioRuntimeProvider,
    /// The latest connection attempt, open, being opened or failed. Replaced by the first query
    /// that finds its connection closed or its attempt failed; a std mutex, held only to look.
    current: Mutex<Arc<Attempt>>,
    /// Bounds the queries in flight ([`MAX_IN_FLIGHT`]).
    slots: Semaphore,
}

/// One attempt at opening a connection, shared by the queries that wait for it: a connection
/// that fails to open fails them all at once, rather than each trying in turn.
struct Attempt {
    /// Set once, by the query that opened it; if that query gives up (its deadline), another
    /// waiting query carries the attempt on (`OnceCell::get_or_init`).
    outcome: OnceCell<Result<Arc<Connection>, StreamError>>,
    /// How far it got ([`Stage`] as a number), for the message of a query that times out.
    stage: AtomicU8,
}

impl Attempt {
    fn new() -> Self {
        Self {
            outcome: OnceCell::new(),
            stage: AtomicU8::new(Stage::Connect as u8),
        }
    }

    fn set_stage(&self, stage: Stage) {
        self.stage.store(stage as u8, Ordering::Relaxed);
    }

    fn stage(&self) -> Stage {
        if self.stage.load(Ordering::Relaxed) == Stage::Connect as u8 {
            Stage::Connect
        } else {
            Stage::TlsHandshake
        }
    }
}

/// An open connection.
struct Connection {
    /// Sends a query and hands back its replies; the background task does the I/O.
    exchange: DnsExchange<TokioRuntimeProvider>,
    /// Cancelled when the connection ends, whoever ends it: the background task when the stream
    /// closes, the idle timer, a query that saw it break, or the drop of the last holder.
    closed: CancellationToken,
    /// Shared with the background task's idle timer.
    activity: Arc<Activity>,
    /// DNS over TCP or TLS (hickory's multiplexer), not HTTP/2: it asks for and honours
    /// edns-tcp-keepalive, and every error but a timeout comes from the stream.
    over_tcp: bool,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

/// What the idle timer needs: when the connection was last used, whether it is in use, and how
/// long it may stay idle.
struct Activity {
    /// The time `last_active` counts from.
    since: Instant,
    /// Milliseconds from `since` to the last query sent or reply received.
    last_active: AtomicU64,
    /// Queries waiting for a reply on this connection.
    in_flight: AtomicUsize,
    /// How long the connection may stay idle, in milliseconds: the server's edns-tcp-keepalive
    /// TIMEOUT when it gave one, else [`DEFAULT_IDLE_TIMEOUT`].
    idle_timeout: AtomicU64,
    /// Wakes the idle timer when the server gives another timeout.
    idle_timeout_changed: Notify,
    /// The server sent a keepalive TIMEOUT of 0: no new query goes on this connection.
    draining: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Self {
            since: Instant::now(),
            last_active: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            idle_timeout: AtomicU64::new(millis(DEFAULT_IDLE_TIMEOUT)),
            idle_timeout_changed: Notify::new(),
            draining: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        self.last_active
            .store(millis(self.since.elapsed()), Ordering::Relaxed);
    }

    /// Returns once the connection has been idle for its idle timeout. Checked again at most
    /// every 100 ms while queries are in flight past it (so a TIMEOUT of 0 closes it as soon as
    /// the last reply is in).
    async fn idle(&self) {
        loop {
            let due = self.since
                + Duration::from_millis(self.last_active.load(Ordering::Relaxed))
                + Duration::from_millis(self.idle_timeout.load(Ordering::Relaxed));
            let now = Instant::now();
            if now >= due && self.in_flight.load(Ordering::Relaxed) == 0 {
                return;
            }
            let wake = due.max(now + Duration::from_millis(100));
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                () = self.idle_timeout_changed.notified() => {}
            }
        }
    }
}

/// Counts a query in flight on a connection for as long as it waits, however the wait ends.
struct InFlight<'a>(&'a Activity);

impl<'a> InFlight<'a> {
    fn enter(activity: &'a Activity) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.touch();
        Self(activity)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// How one query on one connection failed.
enum AskError {
    /// The connection broke (or was found closed): worth asking again on a new one.
    Connection(NetError),
    /// The connection is fine; this query's reply was not (or did not come).
    Reply(StreamError),
}

impl StreamUpstream {
    /// `tls`: the rustls client config for Tls/Https (ignored for Tcp). Does no I/O; must be
    /// called inside the tokio runtime (the connections' tasks are spawned into it).
    pub fn new(
        address: SocketAddr,
        kind: StreamKind,
        tls: Option<Arc<ClientConfig>>,
        stats: Arc<ConnectionStats>,
    ) -> Self {
        Self {
            address,
            kind,
            tls,
            stats,
            provider: TokioRuntimeProvider::default(),
            current: Mutex::new(Arc::new(Attempt::new())),
            slots: Semaphore::new(MAX_IN_FLIGHT),
        }
    }

    /// One exchange, bounded by `deadline` (connecting and the handshakes included). The reply
    /// answers the request's question and carries the request's ID (on the wire, the
    /// multiplexer used an ID of its own, and DNS over HTTPS used 0).
    pub async fn exchange(
        &self,
        request: DnsRequest,
        deadline: Instant,
    ) -> Result<Message, StreamError> {
        let within = deadline.saturating_duration_since(Instant::now());
        // The attempt this exchange is waiting on, if it is waiting for a connection: what the
        // timeout's message reports.
        let waiting_on = Mutex::new(None);
        match tokio::time::timeout_at(deadline, self.exchange_on_connection(request, &waiting_on))
            .await
        {
            Ok(result) => result,
            Err(_) => {
                let attempt: Option<Arc<Attempt>> = lock(&waiting_on).take();
                Err(attempt.map_or(StreamError::TimedOut, |attempt| {
                    attempt.stage().timed_out(within)
                }))
            }
        }
    }

    async fn exchange_on_connection(
        &self,
        request: DnsRequest,
        waiting_on: &Mutex<Option<Arc<Attempt>>>,
    ) -> Result<Message, StreamError> {
        let (mut message, options) = request.into_parts();
        let id = message.metadata.id;
        if !matches!(self.kind, StreamKind::Https { .. }) {
            if let Some(edns) = message.edns.as_mut() {
                // RFC 7828 §3.2.1: "DNS clients MAY include the edns-tcp-keepalive option in the
                // first query sent to a server using TCP transport"; "Clients MUST specify an
                // OPTION-LENGTH of 0 and omit the TIMEOUT value". Every query carries it, since
                // any may be the first on a new connection. hickory has the code, not the option.
                edns.options_mut()
                    .insert(EdnsOption::Unknown(EdnsCode::Keepalive.into(), Vec::new()));
            }
        }
        let request = DnsRequest::new(message, options);
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| StreamError::Protocol("the upstream is shut down".to_owned()))?;
        let mut asked_again = false;
        loop {
            let (connection, opened_here) = self.connection(waiting_on).await?;
            if !opened_here {
                self.stats.reused.fetch_add(1, Ordering::Relaxed);
            }
            match connection.ask(request.clone()).await {
                Ok(mut reply) => {
                    reply.metadata.id = id;
                    return Ok(reply);
                }
                Err(AskError::Reply(error)) => return Err(error),
                Err(AskError::Connection(error)) => {
                    connection.closed.cancel();
                    if opened_here || asked_again {
                        return Err(StreamError::Connect(format!(
                            "the connection closed before the reply came: {error}"
                        )));
                    }
                    tracing::debug!(upstream = %self.address, %error, "connection closed under a query; asking again on a new one");
                    asked_again = true;
                }
            }
        }
    }

    /// The open connection, or the one being opened, or a new attempt; and whether this query
    /// opened it.
    async fn connection(
        &self,
        waiting_on: &Mutex<Option<Arc<Attempt>>>,
    ) -> Result<(Arc<Connection>, bool), StreamError> {
        let attempt = {
            let mut current = lock(&self.current);
            let usable = match current.outcome.get() {
                None => true,
                Some(Ok(connection)) => connection.is_usable(),
                Some(Err(_)) => false,
            };
            if !usable {
                *current = Arc::new(Attempt::new());
            }
            Arc::clone(&current)
        };
        *lock(waiting_on) = Some(Arc::clone(&attempt));
        let mut opened_here = false;
        let outcome = attempt
            .outcome
            .get_or_init(|| {
                opened_here = true;
                self.open(&attempt)
            })
            .await
            .clone();
        *lock(waiting_on) = None;
        outcome.map(|connection| (connection, opened_here))
    }

    /// Opens a connection and starts its background task.
    async fn open(&self, attempt: &Arc<Attempt>) -> Result<Arc<Connection>, StreamError> {
        // From the start again if a query that was opening it gave up.
        attempt.set_stage(Stage::Connect);
        let opened = match &self.kind {
            StreamKind::Tcp => self.open_tcp(attempt, None).await,
            StreamKind::Tls { server_name } => self.open_tcp(attempt, Some(server_name)).await,
            StreamKind::Https { server_name, path } => {
                self.open_https(attempt, server_name, path).await
            }
        };
        match opened {
            Ok(connection) => {
                self.stats.opened.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(upstream = %self.address, kind = ?self.kind, "connection opened");
                Ok(Arc::new(connection))
            }
            Err(error) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(upstream = %self.address, %error, "cannot open a connection");
                Err(error)
            }
        }
    }

    fn tls_config(&self) -> Result<Arc<ClientConfig>, StreamError> {
        self.tls
            .clone()
            .ok_or_else(|| StreamError::Tls("no TLS client configuration was given".to_owned()))
    }

    /// TCP, or TLS when `server_name` is given: hickory's framing and multiplexer over our
    /// connection.
    async fn open_tcp(
        &self,
        attempt: &Arc<Attempt>,
        server_name: Option<&String>,
    ) -> Result<Connection, StreamError> {
        let tcp = self
            .provider
            .connect_tcp(self.address, None, Some(BACKSTOP))
            .await
            .map_err(|error| connect_error(&error))?;
        attempt.set_stage(Stage::TlsHandshake);
        match server_name {
            None => Ok(self.multiplex(tcp)),
            Some(server_name) => {
                let name = ServerName::try_from(server_name.clone()).map_err(|error| {
                    StreamError::Tls(format!("invalid TLS server name {server_name:?}: {error}"))
                })?;
                let connector = tokio_rustls::TlsConnector::from(self.tls_config()?);
                let tls = connector
                    .connect(name, tcp.0)
                    .await
                    .map_err(|error| tls_error(&error, self.address, server_name))?;
                Ok(self.multiplex(AsyncIoTokioAsStd(tls)))
            }
        }
    }

    /// hickory's `TcpStream` (the two-byte length framing) and `DnsMultiplexer` over an open
    /// stream, driven by a background task of ours.
    fn multiplex<S>(&self, stream: S) -> Connection
    where
        S: hickory_net::runtime::DnsTcpStream,
    {
        // As many queued messages as queries may be in flight, so a slow socket never makes
        // the queue refuse one.
        let (stream, handle): (TcpStream<S>, BufDnsStreamHandle) =
            TcpStream::from_stream_with_buffer_size(stream, self.address, MAX_IN_FLIGHT);
        let multiplexer = DnsMultiplexer::new(TcpClientStream::from_stream(stream), handle)
            .with_timeout(BACKSTOP)
            .with_max_active_requests(MAX_IN_FLIGHT);
        let (exchange, background) = DnsExchange::from_stream(multiplexer);
        Connection::start(exchange, background, true)
    }

    /// DNS over HTTPS: hickory's `h2::connect` over our TCP connection (so that a timeout can
    /// say whether TCP or the handshakes were slow).
    async fn open_https(
        &self,
        attempt: &Arc<Attempt>,
        server_name: &str,
        path: &str,
    ) -> Result<Connection, StreamError> {
        let tcp = {
            let provider = self.provider.clone();
            let address = self.address;
            let attempt = Arc::clone(attempt);
            async move {
                let tcp = provider.connect_tcp(address, None, Some(BACKSTOP)).await?;
                attempt.set_stage(Stage::TlsHandshake);
                Ok::<_, io::Error>(tcp)
            }
        };
        let stream = hickory_net::h2::connect(
            tcp,
            self.tls_config()?,
            self.address,
            Arc::from(server_name),
            Arc::from(path),
            None,
        )
        .await
        .map_err(|error| match (&error, attempt.stage()) {
            (NetError::Io(io), Stage::Connect) => connect_error(io),
            (NetError::Timeout, Stage::Connect) => Stage::Connect.timed_out(BACKSTOP),
            (NetError::Io(io), Stage::TlsHandshake) => tls_error(io, self.address, server_name),
            // hickory's own bound on the TLS handshake (CONNECT_TIMEOUT), when the deadline is
            // further away than that.
            (NetError::Timeout, Stage::TlsHandshake) => {
                Stage::TlsHandshake.timed_out(Duration::from_secs(5))
            }
            (NetError::H2(error), _) => {
                StreamError::Protocol(format!("HTTP/2 handshake failed: {error}"))
            }
            _ => StreamError::Tls(error.to_string()),
        })?;
        let (exchange, background) = DnsExchange::from_stream(stream);
        Ok(Connection::start(exchange, background, false))
    }
}

impl Connection {
    /// Spawns the task that drives the connection's I/O until the stream ends, the connection
    /// idles past its timeout, or someone closes it.
    fn start(
        exchange: DnsExchange<TokioRuntimeProvider>,
        background: impl Future<Output = ()> + Send + 'static,
        over_tcp: bool,
    ) -> Self {
        let closed = CancellationToken::new();
        let activity = Arc::new(Activity::new());
        let task_closed = closed.clone();
        let task_activity = Arc::clone(&activity);
        tokio::spawn(async move {
            let mut background = std::pin::pin!(background);
            tokio::select! {
                () = &mut background => tracing::debug!("upstream connection ended"),
                () = task_closed.cancelled() => {}
                () = task_activity.idle() => tracing::debug!("upstream connection idle: closed"),
            }
            // Marked closed before `background` is dropped (at the end of this block): a query
            // woken by the drop (its request was still queued) finds the connection closed.
            task_closed.cancel();
        });
        Self {
            exchange,
            closed,
            activity,
            over_tcp,
        }
    }

    /// Open, and not asked by the server to take no more queries.
    fn is_usable(&self) -> bool {
        !self.closed.is_cancelled() && !self.activity.draining.load(Ordering::Relaxed)
    }

    /// Sends `request` and waits for its reply. Replies that do not answer it are dropped, and
    /// the query keeps waiting.
    async fn ask(&self, request: DnsRequest) -> Result<Message, AskError> {
        if self.closed.is_cancelled() {
            return Err(AskError::Connection(NetError::from(
                "the connection was closed",
            )));
        }
        let asked = request.queries.clone();
        let op_code = request.metadata.op_code;
        let _in_flight = InFlight::enter(&self.activity);
        let mut replies = self.exchange.send(request);
        let mut mismatched = None;
        loop {
            match poll_fn(|context| Pin::new(&mut replies).poll_next(context)).await {
                Some(Ok(response)) => {
                    let reply = response.into_message();
                    match mismatch(&reply, &asked, op_code) {
                        None => {
                            self.honour_keepalive(&reply);
                            return Ok(reply);
                        }
                        Some(reason) => {
                            tracing::debug!(%reason, "upstream reply dropped");
                            mismatched = Some(reason);
                        }
                    }
                }
                Some(Err(error)) => return Err(self.classify(error)),
                // The multiplexer's own timeout (the backstop), or the one reply of an HTTP/2
                // stream did not match.
                None => {
                    return Err(AskError::Reply(match mismatched {
                        Some(reason) => StreamError::Protocol(reason),
                        None => StreamError::TimedOut,
                    }))
                }
            }
        }
    }

    /// Whether `error` means the connection is gone. Over TCP and TLS every error but a
    /// timeout or an unencodable query comes from the stream; over HTTP/2 a stream's error
    /// (an HTTP status, a bad content type) leaves the connection up.
    fn classify(&self, error: NetError) -> AskError {
        let broken = self.closed.is_cancelled()
            || error.is_connection_closed()
            || matches!(error, NetError::Io(_) | NetError::Busy)
            || (self.over_tcp && !matches!(error, NetError::Timeout | NetError::Proto(_)));
        if broken {
            return AskError::Connection(error);
        }
        AskError::Reply(match error {
            NetError::Timeout => StreamError::TimedOut,
            error => StreamError::Protocol(format!("the upstream's reply was refused: {error}")),
        })
    }

    /// RFC 7828 §3.2.2: a client "SHOULD honour the timeout received in that response
    /// (overriding any previous timeout) and initiate close of the connection before the
    /// timeout expires"; so the connection closes after nine tenths of it (TIMEOUT counts
    /// 100 ms units, up to 109 minutes: no fixed margin suits both ends). And "A DNS client that
    /// receives a response that includes the edns-tcp-keepalive option with a TIMEOUT value of
    /// 0 SHOULD send no more queries on that connection and initiate closing the connection as
    /// soon as it has received all outstanding responses."
    fn honour_keepalive(&self, reply: &Message) {
        if !self.over_tcp {
            return;
        }
        let option = reply
            .edns
            .as_ref()
            .and_then(|edns| edns.option(EdnsCode::Keepalive));
        if let Some(EdnsOption::Unknown(_, timeout)) = option {
            if let Ok(timeout) = <[u8; 2]>::try_from(timeout.as_slice()) {
                let timeout = u64::from(u16::from_be_bytes(timeout)) * 100 * 9 / 10;
                if timeout == 0 {
                    self.activity.draining.store(true, Ordering::Relaxed);
                }
                if self.activity.idle_timeout.swap(timeout, Ordering::Relaxed) != timeout {
                    self.activity.idle_timeout_changed.notify_one();
                }
            }
        }
    }
}

/// Why `reply` does not answer a query for `asked`, if it does not. RFC 7858 §3.3: "clients
/// MUST match responses to outstanding queries on the same TLS connection using the Message ID.
/// If the response contains a Question Section, the client MUST match the QNAME, QCLASS, and
/// QTYPE fields." (RFC 7766 §7 says the same of TCP.) The ID was matched by the multiplexer;
/// over HTTP/2 the stream is the match. Names compare case-insensitively (`Name`'s `PartialEq`,
/// RFC 4343).
fn mismatch(
    reply: &Message,
    asked: &[Query],
    op_code: hickory_proto::op::OpCode,
) -> Option<String> {
    if reply.metadata.message_type != MessageType::Response {
        return Some("the upstream sent a query where a reply was expected".to_owned());
    }
    if reply.metadata.op_code != op_code {
        return Some(format!(
            "the reply's opcode is {}, the query's {op_code}",
            reply.metadata.op_code
        ));
    }
    let same = |a: &Query, b: &Query| {
        a.name() == b.name()
            && a.query_type() == b.query_type()
            && a.query_class() == b.query_class()
    };
    let answers_it = reply.queries.is_empty()
        || (reply.queries.len() == asked.len()
            && reply.queries.iter().zip(asked).all(|(a, b)| same(a, b)));
    if answers_it {
        return None;
    }
    let show = |queries: &[Query]| {
        queries
            .iter()
            .map(|q| format!("{} {} {}", q.name(), q.query_class(), q.query_type()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(format!(
        "a reply for {} came to the query for {}",
        show(&reply.queries),
        show(asked)
    ))
}

/// A TCP connect failure, in words.
fn connect_error(error: &io::Error) -> StreamError {
    use io::ErrorKind::*;
    let reason = match error.kind() {
        ConnectionRefused | ConnectionReset | ConnectionAborted | HostUnreachable
        | NetworkUnreachable | AddrNotAvailable | TimedOut => error.kind().to_string(),
        _ => error.to_string(),
    };
    StreamError::Connect(reason)
}

/// A TLS handshake failure, in words: the certificate's problem when it is one.
fn tls_error(error: &io::Error, address: SocketAddr, server_name: &str) -> StreamError {
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let reason = match rustls_error {
        Some(rustls::Error::InvalidCertificate(certificate)) => match certificate {
            CertificateError::NotValidForNameContext { presented, .. } => format!(
                "certificate of {} not valid for name {server_name}: it is valid only for {}",
                address.ip(),
                if presented.is_empty() {
                    "no name".to_owned()
                } else {
                    presented.join(", ")
                }
            ),
            CertificateError::NotValidForName => format!(
                "certificate of {} not valid for name {server_name}",
                address.ip()
            ),
            CertificateError::UnknownIssuer => format!(
                "certificate of {} for {server_name} not trusted: its issuer is not among the \
                 trusted CAs",
                address.ip()
            ),
            other => format!(
                "certificate of {} for {server_name} rejected: {}",
                address.ip(),
                rustls::Error::InvalidCertificate(other.clone())
            ),
        },
        Some(other) => format!("TLS handshake with {} failed: {other}", address.ip()),
        None if error.kind() == io::ErrorKind::UnexpectedEof => format!(
            "{} closed the connection during the TLS handshake",
            address.ip()
        ),
        None => format!("TLS handshake with {} failed: {error}", address.ip()),
    };
    StreamError::Tls(reason)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Builds the rustls client config: roots from `ca_file` (PEM) if given, else the system's
/// roots (`rustls-native-certs`: the distribution's bundle, or `SSL_CERT_FILE` /
/// `SSL_CERT_DIR`). Errors name the file and the reason.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let shown = path.display();
            let pem = std::fs::read(path).map_err(|error| format!("{shown}: {error}"))?;
            for (index, certificate) in CertificateDer::pem_slice_iter(&pem).enumerate() {
                let certificate =
                    certificate.map_err(|error| format!("{shown}: not a PEM file: {error}"))?;
                roots.add(certificate).map_err(|error| {
                    format!(
                        "{shown}: certificate {} is not usable as a CA: {error}",
                        index + 1
                    )
                })?;
            }
            if roots.is_empty() {
                return Err(format!(
                    "{shown}: no certificate in it (expected PEM, -----BEGIN CERTIFICATE-----)"
                ));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::warn!(%error, "a system CA certificate could not be read");
            }
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            if ignored > 0 {
                tracing::debug!(ignored, "system CA certificates rustls cannot use");
            }
            if added == 0 {
                return Err(
                    "no CA certificates found on this system (install ca-certificates, set \
                     SSL_CERT_FILE, or name a CA file)"
                        .to_owned(),
                );
            }
        }
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("TLS: {error}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests;
