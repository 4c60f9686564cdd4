//! The admin endpoints through the real server: `/health`, `/ready` (the latch, a cluster not
//! yet synced, lameduck) and `/metrics` (every metric name and help text in both exposition
//! formats, chosen by the `Accept` header; the namespace; the counters moving with real
//! queries; the README's cache hit ratio through the fast path).

mod common;

use std::net::Ipv4Addr;

use hearth::app::metric_names;
use hickory_proto::rr::RecordType;

use common::*;

/// A server with a hosts file, a local upstream and the admin endpoint on a loopback port.
async fn server_with_admin(extra: &str) -> (TestServer, FakeUpstream, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "192.0.2.10 web.example.org\n");
    let upstream = FakeUpstream::start().await;
    upstream.add_a("far.example.net.", Ipv4Addr::new(198, 51, 100, 7));
    let toml = format!(
        "{}[admin]\nlisten = \"127.0.0.1:0\"\n{extra}",
        config(&hosts, &[upstream.addr], &["files", "zones", "dns"])
    );
    (start_server(&toml).await, upstream, dir)
}

fn admin(server: &TestServer) -> std::net::SocketAddr {
    server.running().admin_addr().expect("[admin] is set")
}

#[tokio::test]
async fn health_and_ready_answer_200_when_everything_has_loaded() {
    let (server, _upstream, _dir) = server_with_admin("").await;
    let (status, body) = http_get(admin(&server), "/health").await;
    assert_eq!((status, body.as_str()), (200, "OK\n"));
    let (status, body) = http_get(admin(&server), "/ready").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    let (status, _) = http_get(admin(&server), "/nothing-here").await;
    assert_eq!(status, 404);
}

/// What Prometheus 2.x and 3.x send.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// The `Content-Type` header of a response head.
fn content_type(head: &str) -> String {
    head.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn every_metric_is_exported_with_its_help_text_in_openmetrics_when_asked() {
    let (server, _upstream, _dir) = server_with_admin("").await;
    // Traffic of each kind: a local answer, a forwarded one (then a cache hit), a refusal.
    ask(server.addr, "web.example.org.", RecordType::A).await;
    ask(server.addr, "far.example.net.", RecordType::A).await;
    ask(server.addr, "far.example.net.", RecordType::A).await;
    let (status, head, text) =
        http_get_with(admin(&server), "/metrics", &[("Accept", PROMETHEUS_ACCEPT)]).await;
    assert_eq!(status, 200);
    assert_eq!(
        content_type(&head),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    for (name, kind, help) in &metric_names() {
        // OpenMetrics names a family without its sample suffix: `_total` for counters,
        // `_info` for info metrics.
        let family = match *kind {
            "counter" => name.trim_end_matches("_total"),
            "info" => name.trim_end_matches("_info"),
            _ => name,
        };
        let help_line = format!("# HELP hearth_{family} {help}");
        assert!(
            text.lines().any(|line| line == help_line),
            "missing {help_line:?} in:\n{text}"
        );
        let type_line = format!("# TYPE hearth_{family} {kind}");
        assert!(
            text.lines().any(|line| line == type_line),
            "missing {type_line:?}"
        );
        let sample_prefix = match *kind {
            "histogram" => format!("hearth_{family}_bucket"),
            _ => format!("hearth_{name}"),
        };
        assert!(
            text.lines().any(|line| line.starts_with(&sample_prefix)),
            "no sample of {sample_prefix} in:\n{text}"
        );
    }
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics text ends with # EOF"
    );
    // Each name follows Prometheus conventions: lowercase snake case, units spelled out.
    for (name, _, _) in &metric_names() {
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name}"
        );
    }
}

#[tokio::test]
async fn without_an_accept_header_every_metric_is_in_the_prometheus_text_format_0_0_4() {
    let (server, _upstream, _dir) = server_with_admin("").await;
    ask(server.addr, "web.example.org.", RecordType::A).await;
    ask(server.addr, "far.example.net.", RecordType::A).await;
    ask(server.addr, "far.example.net.", RecordType::A).await;
    for accept in [None, Some("*/*"), Some("text/plain")] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let (status, head, text) = http_get_with(admin(&server), "/metrics", &headers).await;
        assert_eq!(status, 200);
        assert_eq!(
            content_type(&head),
            "text/plain; version=0.0.4; charset=utf-8",
            "Accept: {accept:?}"
        );
        assert!(!text.contains("# EOF"), "0.0.4 has no EOF marker");
        assert!(!text.contains("# UNIT"), "0.0.4 has no UNIT lines");
        for (name, kind, help) in &metric_names() {
            // 0.0.4 names a family as its samples: `_total` kept, info metrics are gauges.
            let exposed_kind = if *kind == "info" { "gauge" } else { kind };
            let help_line = format!("# HELP hearth_{name} {help}");
            assert!(
                text.lines().any(|line| line == help_line),
                "missing {help_line:?} in:\n{text}"
            );
            let type_line = format!("# TYPE hearth_{name} {exposed_kind}");
            assert!(
                text.lines().any(|line| line == type_line),
                "missing {type_line:?} in:\n{text}"
            );
        }
        for line in text.lines().filter(|line| line.starts_with("# TYPE")) {
            let kind = line.rsplit(' ').next().unwrap_or("");
            assert!(
                ["counter", "gauge", "histogram", "untyped", "summary"].contains(&kind),
                "{line}"
            );
        }
        // Every sample belongs to the family declared above it.
        let mut family = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap_or("").to_owned();
            } else if !line.starts_with('#') {
                assert!(line.starts_with(&family), "{line} outside {family}");
            }
        }
        assert!(text.contains(&format!(
            "hearth_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
    }
}

#[tokio::test]
async fn a_forwarded_answer_reused_by_the_fast_path_is_a_cache_hit() {
    let (server, _upstream, _dir) = server_with_admin("").await;
    // One miss, then fifteen repeats over UDP, which the fast path answers once it holds
    // the reply.
    for _ in 0..16 {
        let response = ask(server.addr, "far.example.net.", RecordType::A).await;
        assert_eq!(rdata(&response), ["198.51.100.7"]);
    }
    let fast_hits = server
        .running()
        .fast_stats()
        .hits
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        fast_hits >= 14,
        "the fast path answered the repeats: {fast_hits}"
    );
    let mut text = String::new();
    for _ in 0..100 {
        text = http_get(admin(&server), "/metrics").await.1;
        let counted = sample(&text, "hearth_cache_hits_total").unwrap_or(0.0)
            + sample(&text, "hearth_cache_misses_total").unwrap_or(0.0);
        if counted >= 16.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let hits = sample(&text, "hearth_cache_hits_total").unwrap();
    let misses = sample(&text, "hearth_cache_misses_total").unwrap();
    // The README's query, `hits / (hits + misses)`, over the scraped counters.
    assert_eq!(
        hits / (hits + misses),
        15.0 / 16.0,
        "{hits} hits, {misses} misses"
    );
    assert!(sample(&text, "hearth_fast_path_cache_hits_total").unwrap() >= 14.0);

    // The same under CoreDNS's names, with the CoreDNS dashboard's query.
    let (server, _upstream, _dir) = server_with_admin("metrics = \"coredns\"\n").await;
    for _ in 0..16 {
        ask(server.addr, "far.example.net.", RecordType::A).await;
    }
    let total = |text: &str, prefix: &str| -> f64 {
        text.lines()
            .filter(|line| line.starts_with(prefix))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    // The fast path counts a batch after sending its replies: the last may be counted a
    // moment after its reply arrived.
    let mut text = String::new();
    for _ in 0..100 {
        text = http_get(admin(&server), "/metrics").await.1;
        if total(&text, "coredns_cache_requests_total{") >= 16.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let total = |prefix: &str| total(&text, prefix);
    let hits = total("coredns_cache_hits_total{");
    let misses = total("coredns_cache_misses_total{");
    assert_eq!(hits / (hits + misses), 15.0 / 16.0, "{text}");
    assert_eq!(total("coredns_cache_requests_total{"), 16.0);
}

#[tokio::test]
async fn counters_follow_the_queries() {
    let (server, upstream, _dir) = server_with_admin("").await;
    for _ in 0..3 {
        ask(server.addr, "web.example.org.", RecordType::A).await;
    }
    ask(server.addr, "web.example.org.", RecordType::AAAA).await;
    ask(server.addr, "far.example.net.", RecordType::A).await;
    ask(server.addr, "far.example.net.", RecordType::A).await;
    ask(server.addr, "missing.example.net.", RecordType::A).await;
    let (_, text) = http_get(admin(&server), "/metrics").await;

    let a = sample(
        &text,
        "hearth_requests_total{protocol=\"udp\",family=\"ipv4\",type=\"A\"}",
    );
    assert_eq!(a, Some(6.0), "{text}");
    let aaaa = sample(
        &text,
        "hearth_requests_total{protocol=\"udp\",family=\"ipv4\",type=\"AAAA\"}",
    );
    assert_eq!(aaaa, Some(1.0));
    assert_eq!(
        sample(&text, "hearth_responses_total{rcode=\"NOERROR\"}"),
        Some(6.0)
    );
    assert_eq!(
        sample(&text, "hearth_responses_total{rcode=\"NXDOMAIN\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "hearth_request_duration_seconds_count{protocol=\"udp\"}"
        ),
        Some(7.0)
    );
    assert_eq!(sample(&text, "hearth_cache_hits_total"), Some(1.0));
    assert_eq!(sample(&text, "hearth_cache_entries"), Some(2.0));
    let upstream_label = format!("{{upstream=\"{}\"}}", upstream.addr);
    // Two misses, and the loop probe if it has gone out by now.
    let upstream_requests = sample(
        &text,
        &format!("hearth_upstream_requests_total{upstream_label}"),
    )
    .unwrap();
    assert!(
        (2.0..=3.0).contains(&upstream_requests),
        "{upstream_requests}"
    );
    assert_eq!(
        sample(&text, &format!("hearth_upstream_healthy{upstream_label}")),
        Some(1.0)
    );
    assert_eq!(sample(&text, "hearth_hosts_entries"), Some(1.0));
    assert_eq!(
        sample(&text, "hearth_hosts_reloads_total{result=\"success\"}"),
        Some(1.0)
    );
    assert!(sample(&text, "hearth_hosts_last_reload_timestamp_seconds").unwrap() > 1.7e9);
    assert_eq!(sample(&text, "hearth_ready"), Some(1.0));
    assert!(text.contains(&format!(
        "hearth_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
}

#[tokio::test]
async fn the_namespace_prefixes_every_name() {
    let (server, _upstream, _dir) = server_with_admin("namespace = \"dns_edge\"\n").await;
    let (_, text) = http_get(admin(&server), "/metrics").await;
    let names: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .collect();
    assert!(!names.is_empty());
    for line in names {
        assert!(line.starts_with("dns_edge_"), "{line}");
    }
}

#[tokio::test]
async fn lameduck_fails_ready_but_not_health_and_queries_are_still_answered() {
    let (server, _upstream, _dir) = server_with_admin("").await;
    server.running().enter_lameduck();
    let (status, body) = http_get(admin(&server), "/ready").await;
    assert_eq!(status, 503);
    assert!(body.contains("lameduck"), "{body}");
    let (status, _) = http_get(admin(&server), "/health").await;
    assert_eq!(status, 200);
    let response = ask(server.addr, "web.example.org.", RecordType::A).await;
    assert_eq!(rdata(&response), ["192.0.2.10"]);
}

#[tokio::test]
async fn a_cluster_not_yet_synced_is_not_ready_and_its_names_fail() {
    // An API server that is never reached: 127.0.0.1:9 (discard) refuses connections.
    let (server, _upstream, _dir) = server_with_admin(
        "[kubernetes]\ndomain = \"cluster.local\"\napi = \"http://127.0.0.1:9\"\n",
    )
    .await;
    let (status, body) = http_get(admin(&server), "/ready").await;
    assert_eq!(status, 503);
    assert!(body.contains("kubernetes"), "{body}");
    assert!(body.contains("cluster.local"), "{body}");
    let response = ask(
        server.addr,
        "kubernetes.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(
        response.metadata.response_code,
        hickory_proto::op::ResponseCode::ServFail
    );
    // Everything else is answered meanwhile.
    let response = ask(server.addr, "web.example.org.", RecordType::A).await;
    assert_eq!(rdata(&response), ["192.0.2.10"]);
    let (_, text) = http_get(admin(&server), "/metrics").await;
    assert_eq!(sample(&text, "hearth_ready"), Some(0.0));
    assert_eq!(sample(&text, "hearth_kubernetes_ready"), Some(0.0));
}

#[test]
fn the_readme_documents_every_metric_with_its_help_text() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    for (name, kind, help) in &metric_names() {
        let row = readme
            .lines()
            .find(|line| line.starts_with(&format!("| `hearth_{name}` |")))
            .unwrap_or_else(|| panic!("README.md has no row for hearth_{name}"));
        assert!(row.contains(&format!("| {kind} |")), "{row}");
        assert!(
            row.contains(help),
            "README's text for hearth_{name} differs from the help text: {row}"
        );
    }
    let rows = readme
        .lines()
        .filter(|line| line.starts_with("| `hearth_"))
        .count();
    assert_eq!(
        rows,
        metric_names().len(),
        "a README row for a metric that does not exist"
    );
}

#[test]
fn the_readme_documents_every_coredns_name_with_its_help_text() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    for (name, kind, help) in &hearth::app::coredns_metric_names() {
        let row = readme
            .lines()
            .find(|line| line.starts_with(&format!("| `coredns_{name}` |")))
            .unwrap_or_else(|| panic!("README.md has no row for coredns_{name}"));
        assert!(row.contains(&format!("| {kind} |")), "{row}");
        assert!(
            row.contains(help),
            "README's text for coredns_{name} differs: {row}"
        );
    }
    let rows = readme
        .lines()
        .filter(|line| line.starts_with("| `coredns_"))
        .count();
    assert_eq!(rows, hearth::app::coredns_metric_names().len());
}
