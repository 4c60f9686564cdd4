//! The resolution chain: the [`Source`] contract, and the ordered, nsswitch-like walk over sources.
//!
//! ```text
//!   Question ──► files ──► zones ──► dns ──► (ran out)
//!                 │          │        │          │
//!                 ▼          ▼        ▼          ▼
//!              Outcome: SUCCESS | NOTFOUND | UNAVAIL | TRYAGAIN
//!              action for that status: return (answer now) or continue (next source)
//! ```
//!
//! The order and the actions come from `resolve.order` (or an nsswitch.conf `hosts:` line) and
//! are decided here and nowhere else; sources never know what comes after them.

pub mod client;
pub mod ede;
pub mod order;
mod resolve;
pub mod shape;
pub mod validity;

use std::fmt;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, LowerName, Name, Record, RecordType};

pub use client::{Client, Transport, WaitSlot, Waiting};
pub use ede::ExtendedError;
pub use order::{Actions, OrderEntry};
pub use resolve::Paused;
pub use validity::{DataVersion, DataVersions, Dependencies, Validity};

/// How many CNAME links one answer follows across sources (and within a zone).
pub const MAX_CNAME_CHAIN: usize = 8;

/// What a client asked, in the form sources need.
#[derive(Clone, Debug)]
pub struct Question {
    /// The name exactly as the client wrote it. Answers are owned by this name, so the case the
    /// client used comes back to it (RFC 4343 §4.1: case is preserved where possible). Not to
    /// be changed once made: a question for another name is [`Question::for_name`]'s.
    pub name: Name,
    /// The same name, lower-cased ([`Question::lower_name`]), made the first time it is asked
    /// for. Why not at once: hosts files and zones lower-case a name as they read it into
    /// their keys, and making it for each of a long tail's distinct names was 2.7% of the UDP
    /// thread's instructions on a zone's NXDOMAIN flood (issue 16), for nothing.
    lower_name: OnceLock<LowerName>,
    pub record_type: RecordType,
    pub class: DNSClass,
    /// The DO bit (RFC 3225): forwarded so the upstream can include DNSSEC records.
    pub dnssec_ok: bool,
    /// The CD bit (RFC 4035 §3.2.2): forwarded unchanged.
    pub checking_disabled: bool,
    /// The asking client's place in the per-client count of queries waiting on another server
    /// (`server.max_waiting_per_client`); `None` for questions no client asked (prefetch,
    /// tests), which are not limited.
    pub waiting: Option<WaitSlot>,
}

impl Question {
    pub fn new(name: Name, record_type: RecordType) -> Self {
        Self {
            lower_name: OnceLock::new(),
            name,
            record_type,
            class: DNSClass::IN,
            dnssec_ok: false,
            checking_disabled: false,
            waiting: None,
        }
    }

    /// The name, lower-cased, for lookups: DNS names compare case-insensitively (RFC 4343).
    pub fn lower_name(&self) -> &LowerName {
        self.lower_name.get_or_init(|| LowerName::new(&self.name))
    }

    /// The same question for `name` (a CNAME's target, a search-path candidate): the same type,
    /// class, flags and client.
    pub fn for_name(&self, name: Name) -> Self {
        Self {
            name,
            lower_name: OnceLock::new(),
            record_type: self.record_type,
            class: self.class,
            dnssec_ok: self.dnssec_ok,
            checking_disabled: self.checking_disabled,
            waiting: self.waiting.clone(),
        }
    }
}

/// The nsswitch status of one source's attempt. The discriminants index [`Actions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// The source answered: records, or an authoritative empty answer.
    Success = 0,
    /// The source looked and the name is not there.
    NotFound = 1,
    /// The source could not be consulted at all (a missing file, no upstream answering).
    Unavail = 2,
    /// A temporary failure (an upstream timed out); asking again later may work.
    TryAgain = 3,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Success,
        Status::NotFound,
        Status::Unavail,
        Status::TryAgain,
    ];

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.to_string().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Success => "SUCCESS",
            Self::NotFound => "NOTFOUND",
            Self::Unavail => "UNAVAIL",
            Self::TryAgain => "TRYAGAIN",
        })
    }
}

/// What the chain does after a status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Return,
    Continue,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Return => "return",
            Self::Continue => "continue",
        })
    }
}

/// The sections of a DNS answer and the flags that go with them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answer {
    /// NOERROR for data and NODATA; a source may also give NXDOMAIN as a final answer (an
    /// authoritative zone does, for names inside it).
    pub response_code: ResponseCode,
    /// AA: set by sources that own the data (hosts files, zones), clear for forwarded answers.
    pub authoritative: bool,
    /// AD, as an upstream validator set it.
    pub authentic_data: bool,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
    /// A CNAME target the source could not follow because it is not the source's (a zone's
    /// CNAME that leaves the zone, a Kubernetes ExternalName): the chain resolves it from the
    /// first source on and appends what it finds, as CoreDNS does for ExternalName services.
    /// Boxed, as `extended_error` is: both are rare, and an `Answer` is moved by value through
    /// a dozen returns on every general-path answer (a `Name` inline is 80 bytes).
    pub chase: Option<Box<Name>>,
    /// How long the same question would get the same answer: what lets the UDP fast path
    /// answer it again from the encoded reply ([`validity`]).
    pub validity: Validity,
    /// Why the answer is a failure or stale (RFC 8914), for a client that sent EDNS.
    pub extended_error: Option<Box<ExtendedError>>,
}

impl Answer {
    /// An answer that ends the chain with SERVFAIL.
    pub fn server_failure() -> Self {
        Self {
            response_code: ResponseCode::ServFail,
            ..Self::default()
        }
    }
}

/// Why a source could not be consulted: each source has an error type of its own, in its
/// folder, that says which RCODE it ends in if the chain runs out after it.
pub trait Failure: std::error::Error + Send + Sync + 'static {
    /// RFC 1035 §4.1.1: SERVFAIL, "the name server was unable to process this query due to a
    /// problem with the name server", unless the source says otherwise.
    fn response_code(&self) -> ResponseCode {
        ResponseCode::ServFail
    }

    /// The Extended DNS Error that says why (RFC 8914), if one fits.
    fn extended_error(&self) -> Option<ExtendedError> {
        None
    }
}

/// A source's [`Failure`], shared (outcomes are cloned into the cache's coalesced waiters).
#[derive(Clone)]
pub struct SourceError(Arc<dyn Failure>);

impl SourceError {
    pub fn new(failure: impl Failure) -> Self {
        Self(Arc::new(failure))
    }

    /// The RCODE this failure ends in.
    pub fn response_code(&self) -> ResponseCode {
        self.0.response_code()
    }

    /// The Extended DNS Error this failure is sent with.
    pub fn extended_error(&self) -> Option<ExtendedError> {
        self.0.extended_error()
    }

    /// The source's own error, to tell which failure this is.
    pub fn downcast_ref<T: Failure>(&self) -> Option<&T> {
        let failure: &dyn std::error::Error = &*self.0;
        failure.downcast_ref()
    }
}

impl<F: Failure> From<F> for SourceError {
    fn from(failure: F) -> Self {
        Self::new(failure)
    }
}

impl fmt::Debug for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

/// Two failures are the same when they say the same thing: what a client and the log see.
impl PartialEq for SourceError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

/// One source's reply to a question.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// SUCCESS: the answer to send, records or an authoritative empty answer (NODATA).
    Success(Answer),
    /// NOTFOUND: the name does not exist here. It may carry what the source has to say about
    /// that (an upstream's CNAME chain and SOA), used if the chain ends on this status.
    NotFound(Answer),
    /// UNAVAIL: the source could not be consulted.
    Unavail(SourceError),
    /// TRYAGAIN: a temporary failure.
    TryAgain(SourceError),
}

impl Outcome {
    /// NOTFOUND with nothing more to say. Not reusable until the source that gives it says
    /// what it read ([`Outcome::read_from`]).
    pub fn not_found() -> Self {
        Self::NotFound(Answer {
            response_code: ResponseCode::NXDomain,
            ..Answer::default()
        })
    }

    /// SUCCESS with SERVFAIL: the name is the source's, but it cannot answer it yet (see the
    /// [`Source`] contract). Final, so the question does not leak to the next source.
    pub fn not_ready() -> Self {
        Self::Success(Answer {
            extended_error: Some(Box::new(ExtendedError::new(
                ExtendedError::NOT_READY,
                "the data for this name has not loaded yet",
            ))),
            ..Answer::server_failure()
        })
    }

    /// Marks an answer read from local data as true until that data changes. The source that
    /// owns the data says which version it read: the lookups inside (a zone, a hosts table)
    /// do not know, and leave their answers at [`Validity::Never`], which is safe (only slower)
    /// if a source forgets.
    pub fn read_from(mut self, dependencies: Dependencies) -> Self {
        if let Self::Success(answer) | Self::NotFound(answer) = &mut self {
            answer.validity = Validity::UntilChanged(dependencies);
        }
        self
    }

    /// How long this outcome holds (see [`Validity`]).
    pub fn validity(&self) -> Validity {
        match self {
            Self::Success(answer) | Self::NotFound(answer) => answer.validity,
            Self::Unavail(_) | Self::TryAgain(_) => Validity::Never,
        }
    }

    pub fn status(&self) -> Status {
        match self {
            Self::Success(_) => Status::Success,
            Self::NotFound(_) => Status::NotFound,
            Self::Unavail(_) => Status::Unavail,
            Self::TryAgain(_) => Status::TryAgain,
        }
    }

    /// The answer sent when the chain stops on this outcome: SUCCESS as given, NOTFOUND as
    /// NXDOMAIN with the source's SOA, UNAVAIL and TRYAGAIN as SERVFAIL.
    pub fn into_answer(self) -> Answer {
        match self {
            Self::Success(answer) => answer,
            Self::NotFound(mut answer) => {
                answer.response_code = ResponseCode::NXDomain;
                answer
            }
            Self::Unavail(error) | Self::TryAgain(error) => Answer {
                response_code: error.response_code(),
                extended_error: error.extended_error().map(Box::new),
                ..Answer::default()
            },
        }
    }
}

/// A place names can be looked up: hosts files, zones, upstream resolvers.
///
/// # Contract
///
/// - `lookup` answers one question with one of the four nsswitch statuses, and nothing else
///   decides what happens next: the chain applies the operator's actions to the status.
/// - **SUCCESS** means "this is the answer": records, or an empty NOERROR answer when the name
///   is the source's but has no data of that type (NODATA). A source that owns a name must
///   say SUCCESS for every type at that name, so the question never leaks past it.
/// - **NOTFOUND** means "I looked, and this name is not mine". It must never mean "I did not
///   look" or "I failed to look": those are UNAVAIL and TRYAGAIN, because a NOTFOUND can end
///   the chain as an NXDOMAIN that resolvers cache (RFC 2308).
/// - **UNAVAIL** means the source could not be consulted at all; **TRYAGAIN** that it failed
///   for a reason that may pass. Both end as SERVFAIL if nothing after them answers.
/// - A source that owns a name but cannot answer it yet (the cluster domain before its objects
///   have loaded) answers **SUCCESS with SERVFAIL** ([`Outcome::not_ready`]): the failure is
///   final, so the question never leaks to the next source (an upstream would answer NXDOMAIN
///   for `cluster.local`, which clients cache). UNAVAIL would let the chain go on.
/// - `lookup` never panics on any question and is bounded in time: a source that waits on the
///   network carries its own timeout.
/// - Sources are shared between all queries (`Send + Sync`) and reload their own data; a
///   lookup sees one version of that data, never half of a reload.
/// - A source that can answer a question from memory (a hosts file, a zone, a forwarder's
///   fresh cache hit) does so in [`Source::lookup_now`], which must give the same outcome
///   `lookup` would, and, when it gives `None`, must have changed nothing `lookup` then
///   counts or changes (the forwarder's miss is counted once, by `lookup`).
#[async_trait]
pub trait Source: Send + Sync {
    /// The source's name as it appears in the order and in logs.
    fn name(&self) -> &'static str;

    /// Answers `question`.
    async fn lookup(&self, question: &Question) -> Outcome;

    /// Answers `question` without waiting, when the source can (its data is in memory);
    /// `None` when only [`Source::lookup`] can. The chain asks this first.
    ///
    /// Why: `lookup` is an `async_trait` method, so every call allocates a boxed future and
    /// polls it through a pointer, even for a source that never waits. On a long tail of
    /// distinct names every query walks the general path, and the two boxes of a
    /// `files, zones` walk were two of its 7.3 allocations per answer (issue 16).
    fn lookup_now(&self, _question: &Question) -> Option<Outcome> {
        None
    }
}

/// One link of the chain: a source and the actions after it.
struct Link {
    source: Arc<dyn Source>,
    actions: Actions,
}

/// The sources in the operator's order.
pub struct Chain {
    links: Vec<Link>,
    /// Rotation and the AAAA filter, applied to every answer the links give.
    shaper: shape::Shaper,
}

impl Chain {
    /// Builds the chain from the order and the sources it names. Sources are looked up by name,
    /// so the order alone decides who is asked first.
    pub fn new(order: &[OrderEntry], sources: &[Arc<dyn Source>]) -> Self {
        let links = order
            .iter()
            .filter_map(|entry| {
                let source = sources.iter().find(|s| s.name() == entry.source)?;
                Some(Link {
                    source: Arc::clone(source),
                    actions: entry.actions,
                })
            })
            .collect();
        Self {
            links,
            shaper: shape::Shaper::default(),
        }
    }

    /// This chain, shaping its answers as `shaping` says (`resolve.rotate`,
    /// `resolve.filter_aaaa`).
    pub fn with_shaping(mut self, shaping: shape::AnswerShaping) -> Self {
        self.shaper = shape::Shaper::new(shaping);
        self
    }
}

/// The chain's final answer, with which source gave it (for logs and metrics).
#[derive(Debug)]
pub struct Resolution {
    pub status: Status,
    /// The name of the source whose answer it is.
    pub source: Option<&'static str>,
    pub answer: Answer,
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::RData;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use thiserror::Error;

    /// A source that always gives the same status and counts how often it was asked.
    struct Fixed {
        kind: &'static str,
        status: Status,
        asked: AtomicUsize,
    }

    #[derive(Debug, Error)]
    #[error("no upstream is configured")]
    struct NoUpstreams;
    impl Failure for NoUpstreams {}

    #[async_trait]
    impl Source for Fixed {
        fn name(&self) -> &'static str {
            self.kind
        }
        async fn lookup(&self, _question: &Question) -> Outcome {
            self.asked.fetch_add(1, Ordering::Relaxed);
            match self.status {
                Status::Success => Outcome::Success(Answer::default()),
                Status::NotFound => Outcome::not_found(),
                Status::Unavail => Outcome::Unavail(NoUpstreams.into()),
                Status::TryAgain => Outcome::TryAgain(NoUpstreams.into()),
            }
        }
    }

    fn fixed(kind: &'static str, status: Status) -> Arc<Fixed> {
        Arc::new(Fixed {
            kind,
            status,
            asked: AtomicUsize::new(0),
        })
    }

    async fn run(order: &[&str], files: Status, dns: Status) -> (Status, usize, usize) {
        let order: Vec<OrderEntry> = order
            .iter()
            .map(|e| order::parse_entry(e).unwrap())
            .collect();
        let files = fixed("files", files);
        let dns = fixed("dns", dns);
        let sources: Vec<Arc<dyn Source>> = vec![files.clone(), dns.clone()];
        let chain = Chain::new(&order, &sources);
        let question = Question::new(Name::from_ascii("example.").unwrap(), RecordType::A);
        let resolution = chain.resolve(&question).await;
        (
            resolution.status,
            files.asked.load(Ordering::Relaxed),
            dns.asked.load(Ordering::Relaxed),
        )
    }

    #[tokio::test]
    async fn every_status_and_action() {
        use Status::*;
        // (order, files status, dns status) -> (final status, files asked, dns asked)
        type Case = (
            &'static [&'static str],
            Status,
            Status,
            (Status, usize, usize),
        );
        let cases: &[Case] = &[
            (&["files", "dns"], Success, Success, (Success, 1, 0)),
            (&["files", "dns"], NotFound, Success, (Success, 1, 1)),
            (&["files", "dns"], Unavail, NotFound, (NotFound, 1, 1)),
            (&["files", "dns"], TryAgain, TryAgain, (TryAgain, 1, 1)),
            (
                &["files [NOTFOUND=return]", "dns"],
                NotFound,
                Success,
                (NotFound, 1, 0),
            ),
            (
                &["files [NOTFOUND=return]", "dns"],
                Unavail,
                Success,
                (Success, 1, 1),
            ),
            (
                &["files [UNAVAIL=return]", "dns"],
                Unavail,
                Success,
                (Unavail, 1, 0),
            ),
            (
                &["files [TRYAGAIN=return]", "dns"],
                TryAgain,
                Success,
                (TryAgain, 1, 0),
            ),
            (
                &["files [SUCCESS=continue]", "dns"],
                Success,
                NotFound,
                (NotFound, 1, 1),
            ),
            (
                &["files [!SUCCESS=return]", "dns"],
                NotFound,
                Success,
                (NotFound, 1, 0),
            ),
            (&["dns", "files"], NotFound, NotFound, (NotFound, 1, 1)),
            (&["dns", "files"], Success, NotFound, (Success, 1, 1)),
            (
                &["dns [NOTFOUND=return]", "files"],
                Success,
                NotFound,
                (NotFound, 0, 1),
            ),
        ];
        for (order, files, dns, expected) in cases {
            let got = run(order, *files, *dns).await;
            assert_eq!(got, *expected, "order {order:?}, files {files}, dns {dns}");
        }
    }

    /// A source whose every name is a CNAME it hands on to the chain: `n<i>.` to `n<i+1>.`,
    /// or, with `back_to_first`, every name to `n0.`.
    struct Handing {
        back_to_first: bool,
        asked: AtomicUsize,
    }

    #[async_trait]
    impl Source for Handing {
        fn name(&self) -> &'static str {
            "zones"
        }
        async fn lookup(&self, question: &Question) -> Outcome {
            self.asked.fetch_add(1, Ordering::Relaxed);
            let label = question.name.iter().next().unwrap_or_default();
            let n: usize = std::str::from_utf8(&label[1..]).unwrap().parse().unwrap();
            let next = if self.back_to_first { 0 } else { n + 1 };
            Outcome::Success(Answer {
                chase: Some(Box::new(Name::from_ascii(format!("n{next}.")).unwrap())),
                ..Answer::default()
            })
        }
    }

    async fn chase(back_to_first: bool) -> usize {
        let source = Arc::new(Handing {
            back_to_first,
            asked: AtomicUsize::new(0),
        });
        let sources: Vec<Arc<dyn Source>> = vec![source.clone()];
        let chain = Chain::new(&[order::parse_entry("zones").unwrap()], &sources);
        let question = Question::new(Name::from_ascii("n0.").unwrap(), RecordType::A);
        chain.resolve(&question).await;
        source.asked.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn a_chase_stops_at_a_loop_and_at_the_limit() {
        // n0 -> n0: the question's own name ends it at once.
        assert_eq!(chase(true).await, 1);
        // n0 -> n1 -> ...: the question, then MAX_CNAME_CHAIN names followed.
        assert_eq!(chase(false).await, 1 + MAX_CNAME_CHAIN);
    }

    /// A source that answers some names from memory (`now`) and the others only by waiting
    /// (`later`), and counts the answers it gives each way, and how often it is asked to
    /// answer from memory.
    struct Scripted {
        kind: &'static str,
        now: fn(&Question) -> Option<Outcome>,
        later: fn(&Question) -> Outcome,
        asked_now: AtomicUsize,
        given_now: AtomicUsize,
        given_later: AtomicUsize,
    }

    #[async_trait]
    impl Source for Scripted {
        fn name(&self) -> &'static str {
            self.kind
        }
        async fn lookup(&self, question: &Question) -> Outcome {
            self.given_later.fetch_add(1, Ordering::Relaxed);
            (self.later)(question)
        }
        fn lookup_now(&self, question: &Question) -> Option<Outcome> {
            self.asked_now.fetch_add(1, Ordering::Relaxed);
            let outcome = (self.now)(question)?;
            self.given_now.fetch_add(1, Ordering::Relaxed);
            Some(outcome)
        }
    }

    fn scripted(
        kind: &'static str,
        now: fn(&Question) -> Option<Outcome>,
        later: fn(&Question) -> Outcome,
    ) -> Arc<Scripted> {
        Arc::new(Scripted {
            kind,
            now,
            later,
            asked_now: AtomicUsize::new(0),
            given_now: AtomicUsize::new(0),
            given_later: AtomicUsize::new(0),
        })
    }

    fn address(name: &Name, last: u8) -> Record {
        Record::from_rdata(
            name.clone(),
            60,
            RData::A(std::net::Ipv4Addr::new(192, 0, 2, last).into()),
        )
    }

    /// `files` answers from memory: `a.` is a CNAME it hands on to `b.`, every other name
    /// NOTFOUND. `dns` answers only by waiting: an address for any name.
    fn files_then_dns() -> (Chain, Arc<Scripted>, Arc<Scripted>) {
        let files = scripted(
            "files",
            |question| {
                Some(if question.name == Name::from_ascii("a.").unwrap() {
                    Outcome::Success(Answer {
                        answers: vec![Record::from_rdata(
                            question.name.clone(),
                            60,
                            RData::CNAME(hickory_proto::rr::rdata::CNAME(
                                Name::from_ascii("b.").unwrap(),
                            )),
                        )],
                        chase: Some(Box::new(Name::from_ascii("b.").unwrap())),
                        ..Answer::default()
                    })
                } else {
                    Outcome::not_found()
                })
            },
            |_| unreachable!("files answers every name from memory"),
        );
        let dns = scripted(
            "dns",
            |_| None,
            |question| {
                Outcome::Success(Answer {
                    answers: vec![address(&question.name, 1)],
                    ..Answer::default()
                })
            },
        );
        let order: Vec<OrderEntry> = ["files", "dns"]
            .iter()
            .map(|e| order::parse_entry(e).unwrap())
            .collect();
        let sources: Vec<Arc<dyn Source>> = vec![files.clone(), dns.clone()];
        (Chain::new(&order, &sources), files, dns)
    }

    #[tokio::test]
    async fn a_walk_that_waits_goes_on_from_the_link_it_stopped_at() {
        let (chain, files, dns) = files_then_dns();
        let question = Question::new(Name::from_ascii("c.").unwrap(), RecordType::A);
        let Err(paused) = chain.resolve_now(&question) else {
            panic!("dns answers only by waiting");
        };
        let resolution = chain.resume(&question, paused).await;
        assert_eq!(resolution.source, Some("dns"));
        assert_eq!(resolution.answer.answers, vec![address(&question.name, 1)]);
        // files was asked once, from memory, and not again when the walk went on; dns was
        // asked once from memory (it said it must wait), then once waiting.
        assert_eq!(files.given_now.load(Ordering::Relaxed), 1);
        assert_eq!(dns.asked_now.load(Ordering::Relaxed), 1);
        assert_eq!(dns.given_later.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_chase_that_waits_goes_on_from_its_target() {
        let (chain, files, dns) = files_then_dns();
        let question = Question::new(Name::from_ascii("a.").unwrap(), RecordType::A);
        let Err(paused) = chain.resolve_now(&question) else {
            panic!("the CNAME's target is answered only by waiting");
        };
        let resumed = chain.resume(&question, paused).await;
        // a. (files, from memory) -> b. (files: NOTFOUND, from memory; dns, waiting).
        assert_eq!(files.given_now.load(Ordering::Relaxed), 2);
        assert_eq!(dns.asked_now.load(Ordering::Relaxed), 1);
        assert_eq!(dns.given_later.load(Ordering::Relaxed), 1);
        let b = Name::from_ascii("b.").unwrap();
        assert_eq!(resumed.answer.answers.len(), 2);
        assert_eq!(resumed.answer.answers[1], address(&b, 1));
        assert_eq!(resumed.status, Status::Success);
        // The same answer as one `resolve`.
        let whole = chain.resolve(&question).await;
        assert_eq!(whole.answer.answers, resumed.answer.answers);
        assert_eq!(whole.status, resumed.status);
        assert_eq!(whole.answer.response_code, resumed.answer.response_code);
    }

    #[tokio::test]
    async fn what_memory_answers_needs_no_future() {
        let (_, files, dns) = files_then_dns();
        let order = [order::parse_entry("files").unwrap()];
        let sources: Vec<Arc<dyn Source>> = vec![files.clone(), dns.clone()];
        let files_only = Chain::new(&order, &sources);
        let question = Question::new(Name::from_ascii("c.").unwrap(), RecordType::A);
        let Ok(resolution) = files_only.resolve_now(&question) else {
            panic!("files answers from memory");
        };
        assert_eq!(resolution.answer.response_code, ResponseCode::NXDomain);
        assert_eq!(files.given_now.load(Ordering::Relaxed), 1);
        assert_eq!(dns.given_later.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn outcomes_become_the_right_rcode() {
        assert_eq!(
            Outcome::not_found().into_answer().response_code,
            ResponseCode::NXDomain
        );
        let failed = Outcome::TryAgain(NoUpstreams.into()).into_answer();
        assert_eq!(failed.response_code, ResponseCode::ServFail);
        assert_eq!(
            Outcome::Success(Answer::default())
                .into_answer()
                .response_code,
            ResponseCode::NoError
        );
    }
}
