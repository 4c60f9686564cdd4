//! The general query path, from the bytes of a query to the bytes of the reply, with no
//! network: a regression in parsing, the chain or encoding shows here in `cargo bench`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

use hearth::chain::order::parse_entry;
use hearth::chain::{Chain, Source};
use hearth::server::{Engine, Transport};
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
    let text = hosts_text(10_000);
    c.bench_function("hosts_parse_10k_lines", |b| {
        b.iter(|| parse::parse(text.as_bytes()))
    });

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts");
    std::fs::write(&path, &text).unwrap();
    let hosts: Arc<dyn Source> = Arc::new(Hosts::load(&[path], 3600));
    let chain = Chain::new(&[parse_entry("files").unwrap()], &[hosts]);
    let engine = Engine::new(chain);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    let hit = query("host4242.bench.example.", RecordType::A);
    c.bench_function("engine_hosts_answer", |b| {
        b.iter(|| runtime.block_on(engine.handle(&hit, Transport::Udp)))
    });
    let ptr = query("66.16.0.10.in-addr.arpa.", RecordType::PTR);
    c.bench_function("engine_hosts_ptr", |b| {
        b.iter(|| runtime.block_on(engine.handle(&ptr, Transport::Udp)))
    });
    let miss = query("absent.bench.example.", RecordType::A);
    c.bench_function("engine_nxdomain", |b| {
        b.iter(|| runtime.block_on(engine.handle(&miss, Transport::Udp)))
    });
    let malformed = hit[..20].to_vec();
    c.bench_function("engine_formerr", |b| {
        b.iter(|| runtime.block_on(engine.handle(&malformed, Transport::Udp)))
    });
}

criterion_group!(engine, benches);
criterion_main!(engine);
