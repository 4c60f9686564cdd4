//! The query path piece by piece, with no network, so a regression shows in `cargo bench`:
//! parsing a query, building the cache key, a cache lookup, a local answer through the general
//! path, the fast path's table lookup (everything it does per datagram but the syscalls), and
//! the general path end to end for a hosts answer, a PTR, an NXDOMAIN and a FORMERR.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use hearth::cache::{Cache, CacheConfig, CacheKey};
use hearth::chain::order::parse_entry;
use hearth::chain::{Answer, Chain, Question, Source};
use hearth::chain::{DataVersion, DataVersions};
use hearth::server::admission::{Admission, Verdict};
use hearth::server::fast::FastTable;
use hearth::server::Client;
use hearth::server::{Engine, Transport};
use hearth::sources::hosts::FilesConfig;
use hearth::sources::hosts::{parse, Hosts};

fn query(name: &str, record_type: RecordType) -> Vec<u8> {
    let mut message = Message::new(0x1234, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message
        .queries
        .push(Query::query(Name::from_ascii(name).unwrap(), record_type));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    message.edns = Some(edns);
    message.to_vec().unwrap()
}

/// A hosts file of `lines` entries: `10.x.y.z hostN.bench.example`.
fn hosts_text(lines: u32) -> String {
    (0..lines)
        .map(|i| {
            format!(
                "10.{}.{}.{} host{i}.bench.example\n",
                i >> 16 & 255,
                i >> 8 & 255,
                i & 255
            )
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let text = hosts_text(10_000);
    c.bench_function("hosts_parse_10k_lines", |b| {
        b.iter(|| parse::lines(text.as_bytes()).filter(Result::is_ok).count())
    });
    // Reading, parsing and building the table: what a reload of the file costs.
    let load_dir = tempfile::tempdir().unwrap();
    let load_path = load_dir.path().join("hosts");
    std::fs::write(&load_path, &text).unwrap();
    c.bench_function("hosts_load_10k_lines", |b| {
        b.iter(|| Hosts::load(&files_config(&load_path), DataVersion::detached("files")))
    });

    let hit = query("host4242.bench.example.", RecordType::A);
    c.bench_function("query_parse", |b| {
        b.iter(|| Message::from_vec(&hit).unwrap())
    });

    let question = Question::new(
        Name::from_ascii("Host4242.Bench.Example.").unwrap(),
        RecordType::A,
    );
    c.bench_function("cache_key", |b| b.iter(|| CacheKey::new(&question)));

    let cache = Cache::new(CacheConfig::default()).unwrap();
    let now = tokio::time::Instant::now();
    for i in 0..10_000 {
        let name = Name::from_ascii(format!("name{i}.bench.example.")).unwrap();
        let answer = Answer {
            answers: vec![Record::from_rdata(
                name.clone(),
                300,
                RData::A(A::new(10, 0, 0, 1)),
            )],
            ..Answer::default()
        };
        cache.insert(
            CacheKey::new(&Question::new(name, RecordType::A)),
            &answer,
            now,
        );
    }
    let cached = CacheKey::new(&Question::new(
        Name::from_ascii("name4242.bench.example.").unwrap(),
        RecordType::A,
    ));
    c.bench_function("cache_lookup_hit", |b| b.iter(|| cache.get(&cached, now)));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts");
    std::fs::write(&path, &text).unwrap();
    let hosts: Arc<dyn Source> = Arc::new(Hosts::load(
        &files_config(&path),
        DataVersion::detached("files"),
    ));
    let engine = Engine::new(Chain::new(&[parse_entry("files").unwrap()], &[hosts]));

    c.bench_function("general_path_hosts_answer", |b| {
        b.iter(|| runtime.block_on(engine.handle(&hit, Transport::Udp)))
    });
    let ptr = query("66.16.0.10.in-addr.arpa.", RecordType::PTR);
    c.bench_function("general_path_hosts_ptr", |b| {
        b.iter(|| runtime.block_on(engine.handle(&ptr, Transport::Udp)))
    });
    let miss = query("absent.bench.example.", RecordType::A);
    c.bench_function("general_path_nxdomain", |b| {
        b.iter(|| runtime.block_on(engine.handle(&miss, Transport::Udp)))
    });
    let malformed = hit[..20].to_vec();
    c.bench_function("general_path_formerr", |b| {
        b.iter(|| runtime.block_on(engine.handle(&malformed, Transport::Udp)))
    });

    // The front door's cost on the hot path: a policy load per batch of 32 datagrams, and a
    // decision per datagram (what `server::fast` does), next to the hit it comes before.
    let admission = Admission::admit_all(1);
    let client = Client::new("192.0.2.1:5300".parse().unwrap(), Transport::Udp);
    let now = tokio::time::Instant::now();
    c.bench_function("admission_admit_all_batch_of_32", |b| {
        b.iter(|| {
            let policy = admission.policy();
            (0..32)
                .filter(|_| {
                    matches!(
                        policy.decide(std::hint::black_box(&client), &hit, now),
                        Verdict::Admit(_)
                    )
                })
                .count()
        })
    });

    // The same with the shipped default [access] (private networks allowed, the rest refused)
    // and a [rate_limit] that never limits: a prefix walk and a compare-and-swap per datagram.
    let limited = Admission::admit_all(1);
    limited.configure(
        &hearth::config::AccessConfig::default(),
        Some(&hearth::config::RateLimitConfig {
            responses_per_second: hearth::config::MAX_RESPONSES_PER_SECOND,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            slip: 2,
            exempt: Vec::new(),
        }),
        true,
    );
    // 32 clients in 32 /24s, so no prefix reaches the rate however fast the loop runs.
    let private: Vec<Client> = (0..32)
        .map(|i| Client::new(format!("10.1.{i}.3:5300").parse().unwrap(), Transport::Udp))
        .collect();
    c.bench_function("admission_access_and_rate_limit_batch_of_32", |b| {
        b.iter(|| {
            let policy = limited.policy();
            let now = tokio::time::Instant::now();
            private
                .iter()
                .filter(|client| {
                    matches!(
                        policy.decide(std::hint::black_box(client), &hit, now),
                        Verdict::Admit(_)
                    )
                })
                .count()
        })
    });

    let table = FastTable::new(65_536, DataVersions::new());
    let admitted = admission
        .request(client.address, Transport::Udp, &hit)
        .admitted()
        .unwrap();
    let reply = runtime
        .block_on(engine.handle_reply(&hit, Transport::Udp))
        .unwrap();
    table.store(&hit, &reply, &table.versions(), tokio::time::Instant::now);
    let mut out = Vec::with_capacity(1232);
    c.bench_function("fast_path_hit", |b| {
        b.iter(|| table.answer(&admitted, &hit, tokio::time::Instant::now(), &mut out))
    });
}

/// `[files]` with one file.
fn files_config(path: &std::path::Path) -> FilesConfig {
    FilesConfig {
        paths: vec![path.to_owned()],
        ttl: 3600,
        reload_interval: std::time::Duration::from_secs(1),
    }
}

criterion_group!(engine, benches);
criterion_main!(engine);
