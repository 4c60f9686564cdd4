use super::*;
use std::sync::Arc;

fn observation(query_type: u16, response_code: Option<u16>, micros: u64) -> Observation {
    Observation {
        transport: Transport::Udp,
        ipv6: false,
        query_type,
        response_code,
        elapsed: Duration::from_micros(micros),
    }
}

#[test]
fn counts_from_many_threads_add_up() {
    let metrics = Arc::new(Metrics::new());
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let metrics = Arc::clone(&metrics);
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    metrics.record(observation(1, Some(0), 10));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(metrics.sum(|s| &s.requests[0][0][type_slot(1)]), 8000);
    assert_eq!(metrics.sum(|s| &s.responses[rcode_slot(0)]), 8000);
}

#[test]
fn types_and_rcodes_outside_the_named_ones_are_other() {
    assert_eq!(QUERY_TYPES[type_slot(28)].1, "AAAA");
    assert_eq!(type_slot(99), QUERY_TYPES.len());
    assert_eq!(type_slot(0), QUERY_TYPES.len());
    assert_eq!(RCODES[rcode_slot(16)].1, "BADVERS");
    assert_eq!(rcode_slot(9), RCODES.len());
}

#[test]
fn durations_land_in_the_first_bucket_that_holds_them() {
    let metrics = Metrics::new();
    metrics.record(observation(1, Some(0), 20)); // 20 µs ≤ 31.25 µs
    metrics.record(observation(1, Some(0), 31)); // below the bound: le is inclusive
    metrics.record(observation(1, Some(0), 10_000_000)); // 10 s: only +Inf
    let snapshot = metrics.durations(0, type_slot(1));
    assert_eq!(snapshot.buckets[0], 2);
    assert_eq!(snapshot.buckets[histogram::BUCKETS.len()], 1);
    assert_eq!(snapshot.nanos, 10_000_051_000);
    assert_eq!(metrics.durations(0, type_slot(28)).count(), 0, "by type");
}

#[test]
fn an_unanswered_query_counts_as_a_request_but_no_response() {
    let metrics = Metrics::new();
    metrics.record(observation(1, None, 5));
    assert_eq!(metrics.sum(|s| &s.unanswered), 1);
    assert_eq!(
        (0..RCODE_SLOTS)
            .map(|slot| metrics.sum(|s| &s.responses[slot]))
            .sum::<u64>(),
        0
    );
}

#[test]
fn every_name_is_listed_once_with_a_type_and_help() {
    let mut seen = std::collections::HashSet::new();
    for (name, kind, help) in NAMES {
        assert!(seen.insert(*name), "{name} twice");
        assert!(
            ["counter", "gauge", "histogram", "info"].contains(kind),
            "{name}: {kind}"
        );
        assert!(!help.is_empty(), "{name}");
        // Prometheus conventions: counters end in _total, info metrics in _info.
        assert_eq!(*kind == "counter", name.ends_with("_total"), "{name}");
        assert_eq!(*kind == "info", name.ends_with("_info"), "{name}");
    }
}

#[test]
fn a_batch_counts_each_query_and_shares_one_duration() {
    let metrics = Metrics::new();
    let item = |ipv6, query_type, response_code, from_cache| BatchItem {
        ipv6,
        query_type,
        response_code,
        from_cache,
    };
    let batch = [
        item(false, 1, 0, true),
        item(true, 28, 3, false),
        item(false, 1, 0, true),
    ];
    metrics.record_batch(Transport::Udp, Duration::from_micros(40), batch.into_iter());
    assert_eq!(metrics.sum(|s| &s.requests[0][0][type_slot(1)]), 2);
    assert_eq!(metrics.sum(|s| &s.requests[0][1][type_slot(28)]), 1);
    assert_eq!(metrics.sum(|s| &s.responses[rcode_slot(3)]), 1);
    assert_eq!(metrics.fast_cache_hits(), 2);
    // 40 µs: the 62.5 µs bucket, twice for A and once for AAAA.
    assert_eq!(metrics.durations(0, type_slot(1)).buckets[1], 2);
    assert_eq!(metrics.durations(0, type_slot(28)).buckets[1], 1);
    assert_eq!(metrics.durations(0, type_slot(1)).nanos, 80_000);
    metrics.record_batch(
        Transport::Udp,
        Duration::from_micros(40),
        std::iter::empty(),
    );
    assert_eq!(
        metrics.durations(0, type_slot(1)).count(),
        2,
        "an empty batch counts nothing"
    );
}
