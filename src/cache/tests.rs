//! The cache's rules, with paused time: expiry and counting down, negative TTLs, clamps, the
//! stale window, prefetch timing, and eviction under a flood of one-time names.

use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::time::{advance, Instant};

use super::*;

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

fn key(text: &str) -> CacheKey {
    CacheKey::new(&Question::new(name(text), RecordType::A))
}

fn a(owner: &str, ttl: u32) -> Record {
    Record::from_rdata(name(owner), ttl, RData::A(A::new(192, 0, 2, 1)))
}

fn soa(ttl: u32, minimum: u32) -> Record {
    Record::from_rdata(
        name("example."),
        ttl,
        RData::SOA(SOA::new(
            name("ns.example."),
            name("hm.example."),
            1,
            2,
            3,
            4,
            minimum,
        )),
    )
}

fn positive(ttl: u32) -> Answer {
    Answer {
        answers: vec![a("www.example.", ttl)],
        ..Answer::default()
    }
}

fn negative(response_code: ResponseCode, soa_ttl: u32, minimum: u32) -> Answer {
    Answer {
        response_code,
        authorities: vec![soa(soa_ttl, minimum)],
        ..Answer::default()
    }
}

fn cache(config: CacheConfig) -> Cache {
    Cache::new(config).unwrap()
}

/// The TTLs of a lookup's answer, all sections, or `None` for a miss.
fn ttls(lookup: &Lookup) -> Option<(&'static str, Vec<u32>)> {
    let (kind, answer) = match lookup {
        Lookup::Fresh { answer, .. } => ("fresh", answer),
        Lookup::Stale { answer } => ("stale", answer),
        Lookup::Miss => return None,
    };
    let all = answer
        .answers
        .iter()
        .chain(&answer.authorities)
        .map(|r| r.ttl)
        .collect();
    Some((kind, all))
}

#[tokio::test(start_paused = true)]
async fn ttls_count_down_and_entries_expire() {
    let cache = cache(CacheConfig {
        serve_stale: Duration::ZERO,
        ..CacheConfig::default()
    });
    cache.insert(key("www.example."), &positive(60), Instant::now());
    assert_eq!(
        ttls(&cache.get(&key("www.example."), Instant::now())),
        Some(("fresh", vec![60]))
    );
    advance(Duration::from_secs(25)).await;
    assert_eq!(
        ttls(&cache.get(&key("WWW.Example."), Instant::now())),
        Some(("fresh", vec![35])),
        "case-folded key"
    );
    advance(Duration::from_secs(35)).await;
    assert_eq!(
        cache.get(&key("www.example."), Instant::now()),
        Lookup::Miss,
        "expired at its TTL"
    );
}

#[tokio::test(start_paused = true)]
async fn negative_answers_use_the_soa_minimum() {
    let cache = cache(CacheConfig::default());
    // RFC 2308 §5: min(SOA TTL, MINIMUM).
    cache.insert(
        key("nx.example."),
        &negative(ResponseCode::NXDomain, 3600, 120),
        Instant::now(),
    );
    cache.insert(
        key("nodata.example."),
        &negative(ResponseCode::NoError, 90, 600),
        Instant::now(),
    );
    assert_eq!(
        ttls(&cache.get(&key("nx.example."), Instant::now())),
        Some(("fresh", vec![120]))
    );
    assert_eq!(
        ttls(&cache.get(&key("nodata.example."), Instant::now())),
        Some(("fresh", vec![90]))
    );
    // Clamped by negative_max_ttl (300 s by default).
    cache.insert(
        key("long.example."),
        &negative(ResponseCode::NXDomain, 86400, 86400),
        Instant::now(),
    );
    assert_eq!(
        ttls(&cache.get(&key("long.example."), Instant::now())),
        Some(("fresh", vec![300]))
    );
    // No SOA: not cached (RFC 2308 §5).
    let bare = Answer {
        response_code: ResponseCode::NXDomain,
        ..Answer::default()
    };
    assert!(!cache.insert(key("bare.example."), &bare, Instant::now()));
}

#[tokio::test(start_paused = true)]
async fn failures_are_not_cached() {
    let cache = cache(CacheConfig::default());
    for response_code in [
        ResponseCode::ServFail,
        ResponseCode::Refused,
        ResponseCode::FormErr,
    ] {
        let answer = Answer {
            response_code,
            authorities: vec![soa(60, 60)],
            ..Answer::default()
        };
        assert!(
            !cache.insert(key("x.example."), &answer, Instant::now()),
            "{response_code}"
        );
    }
    assert!(
        !cache.insert(key("zero.example."), &positive(0), Instant::now()),
        "TTL 0 is not cached"
    );
}

#[tokio::test(start_paused = true)]
async fn ttls_are_clamped() {
    let cache = cache(CacheConfig {
        min_ttl: Duration::from_secs(30),
        max_ttl: Duration::from_secs(600),
        ..CacheConfig::default()
    });
    cache.insert(key("short.example."), &positive(5), Instant::now());
    cache.insert(key("long.example."), &positive(86400), Instant::now());
    assert_eq!(
        ttls(&cache.get(&key("short.example."), Instant::now())),
        Some(("fresh", vec![30]))
    );
    assert_eq!(
        ttls(&cache.get(&key("long.example."), Instant::now())),
        Some(("fresh", vec![600]))
    );
    assert!(
        cache.insert(key("zero.example."), &positive(0), Instant::now()),
        "min_ttl lifts TTL 0"
    );
}

#[tokio::test(start_paused = true)]
async fn stale_window() {
    let cache = cache(CacheConfig {
        serve_stale: Duration::from_secs(100),
        ..CacheConfig::default()
    });
    cache.insert(key("www.example."), &positive(60), Instant::now());
    advance(Duration::from_secs(60)).await;
    assert_eq!(
        ttls(&cache.get(&key("www.example."), Instant::now())),
        Some(("stale", vec![30]))
    );
    advance(Duration::from_secs(99)).await;
    assert_eq!(
        ttls(&cache.get(&key("www.example."), Instant::now())),
        Some(("stale", vec![30]))
    );
    advance(Duration::from_secs(1)).await;
    assert_eq!(
        cache.get(&key("www.example."), Instant::now()),
        Lookup::Miss,
        "past the stale window"
    );
    assert_eq!(cache.len(), 0, "and removed");
}

#[tokio::test(start_paused = true)]
async fn prefetch_is_asked_once_for_popular_entries_near_expiry() {
    let cache = cache(CacheConfig::default());
    let prefetch = |lookup: Lookup| match lookup {
        Lookup::Fresh { prefetch, .. } => prefetch,
        other => panic!("{other:?}"),
    };
    cache.insert(key("popular.example."), &positive(100), Instant::now());
    cache.insert(key("once.example."), &positive(100), Instant::now());
    assert!(
        !prefetch(cache.get(&key("popular.example."), Instant::now())),
        "early: no"
    );
    advance(Duration::from_secs(89)).await;
    assert!(
        !prefetch(cache.get(&key("popular.example."), Instant::now())),
        "11 s left of 100: not yet"
    );
    advance(Duration::from_secs(1)).await;
    assert!(
        prefetch(cache.get(&key("popular.example."), Instant::now())),
        "the last tenth: yes"
    );
    assert!(
        !prefetch(cache.get(&key("popular.example."), Instant::now())),
        "only once"
    );
    assert!(
        !prefetch(cache.get(&key("once.example."), Instant::now())),
        "asked once: not popular"
    );
}

#[tokio::test(start_paused = true)]
async fn capacity_holds_under_a_flood_and_the_popular_name_stays() {
    let capacity = 1_000;
    let cache = cache(CacheConfig {
        capacity,
        ..CacheConfig::default()
    });
    cache.insert(key("popular.example."), &positive(3600), Instant::now());
    for i in 0..100_000 {
        // A random-subdomain flood: every name once.
        let flood = format!("r{i:x}{}.victim.example.", i * 7919 % 104_729);
        cache.insert(key(&flood), &positive(3600), Instant::now());
        if i % 100 == 0 {
            assert!(
                matches!(
                    cache.get(&key("popular.example."), Instant::now()),
                    Lookup::Fresh { .. }
                ),
                "the popular name was evicted after {i} one-time names"
            );
        }
    }
    assert!(
        cache.len() <= capacity + capacity / 10,
        "{} entries for a capacity of {capacity}",
        cache.len()
    );
    assert!(cache.stats().evictions.load(Ordering::Relaxed) >= 98_000);
}

#[test]
fn memory_is_bounded_in_bytes_and_a_huge_answer_is_not_cached() {
    let cache = cache(CacheConfig {
        capacity: 100_000,
        max_bytes: 64 << 10,
        ..CacheConfig::default()
    });
    for index in 0..10_000 {
        cache.insert(
            key(&format!("n{index}.example.")),
            &positive(300),
            Instant::now(),
        );
    }
    let bytes = cache.entries.weight();
    assert!(bytes <= 64 << 10, "held {bytes} bytes");
    assert!(
        cache.len() < 1_000,
        "the bytes bound it, not the count: {} entries",
        cache.len()
    );

    let mut huge = positive(300);
    let record = huge.answers[0].clone();
    huge.answers = (0..2_000)
        .map(|i| {
            let mut r = record.clone();
            r.data = RData::A(A::new(10, (i >> 8) as u8, i as u8, 1));
            r
        })
        .collect();
    assert!(
        !cache.insert(key("huge.example."), &huge, Instant::now()),
        "over 16 KiB of records"
    );
}

/// The answer `store` hands back (the one the first client gets) is reusable exactly as a hit
/// on the entry it made: from the moment of storing to the prefetch point, so the fast path
/// may keep its reply from the first answer on, and never past what a hit would allow.
#[tokio::test(start_paused = true)]
async fn a_stored_answer_is_reusable_as_a_hit_on_it_would_be() {
    let cache = cache(CacheConfig::default());
    let now = Instant::now();
    let stored = cache
        .store(key("www.example."), &positive(300), now)
        .expect("cacheable");
    let hit = match cache.get(&key("www.example."), now) {
        Lookup::Fresh { answer, .. } => answer,
        other => panic!("a fresh hit, not {other:?}"),
    };
    // 300 s with prefetch on: reusable for the first 270.
    let expected = Validity::until(now, 0, now + Duration::from_secs(270));
    assert_eq!(stored.validity, expected);
    assert_eq!(hit.validity, expected);

    // Not cacheable (no TTL at all): nothing is stored, and nothing is said to be reusable.
    assert!(cache
        .store(key("zero.example."), &positive(0), now)
        .is_none());
}
