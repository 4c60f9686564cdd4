//! Walking the chain for one question, first without waiting, then, only if a source must
//! wait, as a future that goes on from where the first attempt stopped.
//!
//! ```text
//!  resolve_now ─► filter_aaaa? ─► the links in order ─► CNAME chase ─► search walk? ─► shape
//!                                   (lookup_now)         (each target:      (autopath)
//!                                                         the links again)
//!       │ a link answers only by waiting (lookup_now gave None), or the search walk starts
//!       ▼
//!    Paused ─► resume (async): the same steps, from the link, the CNAME target or the search
//!              walk it stopped at
//! ```
//!
//! Why two halves: hosts files, zones and a forwarder's fresh cache hits answer from memory,
//! and most of a long tail of distinct names (issue 16) is answered by them. Walked as one
//! `async fn`, every such query built the general path's whole future (1,576 bytes), which the
//! UDP thread boxed (a copy) and polled once. [`Chain::resolve_now`] answers those with no
//! future at all; a question that must wait hands its [`Paused`] state to
//! [`Chain::resume`], so no source is asked twice and nothing is counted twice. The steps
//! are the same in both: [`Chain::resolve`] is `resolve_now`, then `resume` if it paused.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{LowerName, Name, RData, Record};

use super::{
    Action, Answer, Chain, Dependencies, Link, Outcome, Question, Resolution, Status, Validity,
    MAX_CNAME_CHAIN,
};

/// A resolution that stopped because a source must wait: what [`Chain::resume`] goes on from.
pub struct Paused(Stage);

enum Stage {
    /// The question's own walk of the links, stopped at a link that waits. Boxed, as the
    /// others are: only a query that waits pays for it, and `resolve_now`'s result stays
    /// the size of its answer.
    Walk(Box<Walk>),
    /// Following a CNAME out of a source, stopped in the walk for one of its targets.
    Chase(Box<Chase>),
    /// The first answer was an NXDOMAIN that starts a pod's search-path walk (autopath); the
    /// walk itself is left to the async half. Boxed: it is rare, and the answer is large.
    Search(Box<(Resolution, Vec<Name>)>),
}

/// One walk of the links in order: how far it has gone, what its answer depends on so far
/// (a NOTFOUND from files is part of the answer), and the last outcome.
struct Walk {
    next: usize,
    validity: Validity,
    last: Option<(&'static str, Outcome)>,
    /// A link's action said return: the walk ends here, whatever links are left.
    stopped: bool,
    /// The link at `next` gave `None` from `lookup_now`: it is asked `lookup` next, and not
    /// `lookup_now` again (for the forwarder, that would be a second cache read per miss).
    waits: bool,
}

impl Walk {
    fn new() -> Self {
        Self {
            next: 0,
            validity: Validity::UntilChanged(Dependencies::NONE),
            last: None,
            stopped: false,
            waits: false,
        }
    }

    fn record(&mut self, link: &Link, question: &Question, outcome: Outcome) {
        self.validity = self.validity.meet(outcome.validity());
        let status = outcome.status();
        let kind = link.source.name();
        tracing::trace!(name = %question.name, source = kind, %status, "source answered");
        self.stopped = link.actions.after(status) == Action::Return;
        self.last = Some((kind, outcome));
        self.next += 1;
        self.waits = false;
    }

    /// As glibc does, the status of the last source consulted decides the answer when the
    /// chain runs out: SUCCESS answers, NOTFOUND is NXDOMAIN (with that source's SOA, if it
    /// gave one), UNAVAIL and TRYAGAIN are SERVFAIL.
    fn finish(self) -> Resolution {
        match self.last {
            Some((source, outcome)) => {
                let status = outcome.status();
                let mut answer = outcome.into_answer();
                answer.validity = self.validity;
                Resolution {
                    status,
                    source: Some(source),
                    answer,
                }
            }
            None => Resolution {
                status: Status::Unavail,
                source: None,
                answer: Answer::server_failure(),
            },
        }
    }
}

/// A CNAME chase under way: the answer so far, the names followed after the question's own,
/// and the target whose walk stopped, if one did.
struct Chase {
    resolution: Resolution,
    seen: Vec<LowerName>,
    pending: Option<(Question, Walk)>,
}

impl Chase {
    fn new(resolution: Resolution) -> Self {
        Self {
            resolution,
            // Made only when there is a CNAME to follow (most answers have none).
            seen: Vec::new(),
            pending: None,
        }
    }

    /// The question for the next CNAME target to follow, or `None` when there is none, or the
    /// chain loops back to a name already followed, or is [`MAX_CNAME_CHAIN`] long.
    fn next_question(&mut self, question: &Question) -> Option<Question> {
        let target = self.resolution.answer.chase.take()?;
        let lower = LowerName::new(&target);
        if &lower == question.lower_name()
            || self.seen.contains(&lower)
            || self.seen.len() >= MAX_CNAME_CHAIN
        {
            tracing::debug!(name = %question.name, %target, "CNAME chain loops or is too long");
            return None;
        }
        self.seen.push(lower);
        Some(question.for_name(*target))
    }

    /// Adds the answer for a target. RFC 6604 §3: the RCODE is that of the last name in the
    /// chain, so an NXDOMAIN target makes the whole answer NXDOMAIN; AA stays that of the
    /// first answer (RFC 1035 §4.1.1).
    fn add(&mut self, more: Resolution) {
        let answer = &mut self.resolution.answer;
        answer.answers.extend(more.answer.answers);
        answer.authorities = more.answer.authorities;
        answer.additionals = more.answer.additionals;
        answer.response_code = more.answer.response_code;
        answer.authentic_data &= more.answer.authentic_data;
        answer.chase = more.answer.chase;
        answer.extended_error = more.answer.extended_error.or(answer.extended_error.take());
        answer.validity = answer.validity.meet(more.answer.validity);
        self.resolution.status = more.status;
    }
}

impl Chain {
    /// Answers `question`: the AAAA filter first, then the chain, following a CNAME a source
    /// handed on ([`Answer::chase`]) through the whole chain again, then, for an NXDOMAIN that
    /// is the first step of a pod's search-path walk, the rest of the walk
    /// ([`super::shape::Autopath`]); the answer is shaped last.
    pub async fn resolve(&self, question: &Question) -> Resolution {
        match self.resolve_now(question) {
            Ok(resolution) => resolution,
            Err(paused) => self.resume(question, paused).await,
        }
    }

    /// [`Chain::resolve`] without waiting: the answer when every source it reaches answers
    /// from memory ([`super::Source::lookup_now`]), or where it stopped, for
    /// [`Chain::resume`].
    pub fn resolve_now(&self, question: &Question) -> Result<Resolution, Paused> {
        if let Some(answer) = self.shaper.filter(question) {
            return Ok(Resolution {
                status: Status::Success,
                source: Some("filter_aaaa"),
                answer,
            });
        }
        let mut walk = Walk::new();
        if !self.walk_now(question, &mut walk) {
            return Err(Paused(Stage::Walk(Box::new(walk))));
        }
        let mut resolution = walk.finish();
        if resolution.answer.chase.is_some() {
            let mut chase = Box::new(Chase::new(resolution));
            while let Some(next) = chase.next_question(question) {
                let mut walk = Walk::new();
                if !self.walk_now(&next, &mut walk) {
                    chase.pending = Some((next, walk));
                    return Err(Paused(Stage::Chase(chase)));
                }
                chase.add(walk.finish());
            }
            resolution = chase.resolution;
        }
        match self.last_steps(question, &mut resolution) {
            None => Ok(resolution),
            Some(candidates) => Err(Paused(Stage::Search(Box::new((resolution, candidates))))),
        }
    }

    /// Goes on with a resolution [`Chain::resolve_now`] paused, to the same answer
    /// [`Chain::resolve`] gives.
    pub async fn resume(&self, question: &Question, paused: Paused) -> Resolution {
        let mut resolution = match paused.0 {
            Stage::Walk(walk) => {
                let first = self.walk(question, *walk).await;
                self.chased(question, first).await
            }
            // Boxed, as in `chased`.
            Stage::Chase(chase) => Box::pin(self.chase(question, *chase)).await,
            Stage::Search(search) => {
                let (first, candidates) = *search;
                return self.search(question, first, candidates).await;
            }
        };
        match self.last_steps(question, &mut resolution) {
            None => resolution,
            Some(candidates) => self.search(question, resolution, candidates).await,
        }
    }

    /// After the chase: shapes the answer in place, unless it is an NXDOMAIN that starts a
    /// search walk; then the names to walk, for [`Chain::search`], which shapes what it
    /// finds. (In place: the answer is not moved in and out again on every query's way.)
    fn last_steps(&self, question: &Question, resolution: &mut Resolution) -> Option<Vec<Name>> {
        if resolution.answer.response_code == ResponseCode::NXDomain {
            if let Some(candidates) = self.shaper.search_walk(&question.name) {
                return Some(candidates);
            }
        }
        self.shaper.shape(&mut resolution.answer);
        None
    }

    /// The links from where `walk` stands, each asked [`super::Source::lookup_now`]; false
    /// when one can only answer by waiting (the walk then stands at that link).
    fn walk_now(&self, question: &Question, walk: &mut Walk) -> bool {
        while !walk.stopped {
            let Some(link) = self.links.get(walk.next) else {
                break;
            };
            let Some(outcome) = link.source.lookup_now(question) else {
                walk.waits = true;
                return false;
            };
            walk.record(link, question, outcome);
        }
        true
    }

    /// The rest of `walk`: a link that cannot answer now is waited for, the links after it
    /// are asked [`super::Source::lookup_now`] first again.
    async fn walk(&self, question: &Question, mut walk: Walk) -> Resolution {
        while walk.waits || !self.walk_now(question, &mut walk) {
            let link = &self.links[walk.next];
            let outcome = link.source.lookup(question).await;
            walk.record(link, question, outcome);
        }
        walk.finish()
    }

    /// `first`, then the CNAME it hands on followed, if it hands one on.
    async fn chased(&self, question: &Question, first: Resolution) -> Resolution {
        if first.answer.chase.is_none() {
            return first;
        }
        // Boxed: following a CNAME holds a question, three names and another walk of the
        // chain across its awaits, and unboxed that made every waiting query's future larger,
        // which the UDP thread copies into the box it polls.
        Box::pin(self.chase(question, Chase::new(first))).await
    }

    /// Follows a CNAME out of a source through the whole chain again, up to
    /// [`MAX_CNAME_CHAIN`] links. A loop across sources ends the chase with what has been
    /// found so far.
    async fn chase(&self, question: &Question, mut chase: Chase) -> Resolution {
        if let Some((next, walk)) = chase.pending.take() {
            let more = self.walk(&next, walk).await;
            chase.add(more);
        }
        while let Some(next) = chase.next_question(question) {
            let more = self.walk(&next, Walk::new()).await;
            chase.add(more);
        }
        chase.resolution
    }

    /// The rest of a search-path walk after its first name was NXDOMAIN, then the answer
    /// shaped. Boxed: the walk's state is large (a question and an answer per candidate) and
    /// rare, and unboxed it made every waiting query's future larger.
    async fn search(
        &self,
        question: &Question,
        first: Resolution,
        candidates: Vec<Name>,
    ) -> Resolution {
        let found = Box::pin(self.search_candidates(question, candidates, &first)).await;
        let mut resolution = found.unwrap_or(first);
        self.shaper.shape(&mut resolution.answer);
        resolution
    }

    /// Each candidate in turn, as glibc's `res_nsearch` would ask them, until one has data.
    /// That answer comes back behind a CNAME from the name asked, so the client stops at its
    /// first query (what CoreDNS's `autopath` does). `None` when no candidate has data, or one
    /// fails: the client then walks on its own, and sees exactly what it would have without
    /// this.
    async fn search_candidates(
        &self,
        question: &Question,
        candidates: Vec<Name>,
        first: &Resolution,
    ) -> Option<Resolution> {
        // The answer depends on every name tried: a Service created under an earlier one
        // changes it.
        let mut validity = first.answer.validity;
        let last = candidates.len().checked_sub(1)?;
        for (index, candidate) in candidates.into_iter().enumerate() {
            let next = question.for_name(candidate.clone());
            let walked = self.walk(&next, Walk::new()).await;
            let mut found = self.chased(&next, walked).await;
            validity = validity.meet(found.answer.validity);
            match found.answer.response_code {
                ResponseCode::NXDomain => continue,
                // NODATA: glibc notes it and walks on; if nothing later has data, it is the
                // client's own walk that finds this NODATA again.
                ResponseCode::NoError if found.answer.answers.is_empty() && index < last => {
                    continue
                }
                ResponseCode::NoError if !found.answer.answers.is_empty() => {
                    let ttl = found
                        .answer
                        .answers
                        .iter()
                        .map(|record| record.ttl)
                        .min()
                        .unwrap_or(0);
                    let alias = Record::from_rdata(
                        question.name.clone(),
                        ttl,
                        RData::CNAME(CNAME(candidate)),
                    );
                    found.answer.answers.insert(0, alias);
                    // Synthesized here, not data of a zone this server owns.
                    found.answer.authoritative = false;
                    found.answer.validity = validity;
                    return Some(found);
                }
                _ => return None,
            }
        }
        None
    }
}
