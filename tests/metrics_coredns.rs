//! `admin.metrics = "coredns"` against the CoreDNS mixin's own alerts, with `promtool`
//! (Debian's `prometheus` package): a running Hearth is scraped, the scrape becomes promtool's
//! `input_series`, and `promtool test rules` evaluates the mixin's rules
//! (`tests/data/coredns-mixin/alerts.yaml`, unchanged) on it. Healthy traffic fires nothing;
//! an upstream that answers SERVFAIL and one that never answers fire exactly the alerts a
//! CoreDNS in the same state would. `promtool check metrics` lints both scrapes.
//!
//! How a scrape becomes a series: each counter (and each histogram's buckets, sum and count)
//! grows every minute by its scraped value, each gauge stays at its value, for 30 minutes, as
//! if the traffic of the scrape went on at that pace; a scrape's ratios and quantiles are then
//! what `rate(...[5m])` sees. Every series gets the labels Prometheus would add when scraping
//! the kube-dns Service (`job="kube-dns"`, `instance`, `pod`), and `up` is 1.
//!
//! Skipped, saying so, without promtool; a failure with `HEARTH_REQUIRE_EXTERNAL=1`.

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use common::external::{require, tool};
use common::*;

const ALERTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/coredns-mixin/alerts.yaml"
);

/// Minutes of series, and when the alerts are read (after their `for: 10m`).
const MINUTES: u32 = 30;
const EVAL_TIME: &str = "20m";

/// Every alert of the mixin, by name.
const ALERT_NAMES: [&str; 7] = [
    "CoreDNSDown",
    "CoreDNSLatencyHigh",
    "CoreDNSErrorsHigh",
    "CoreDNSForwardLatencyHigh",
    "CoreDNSForwardErrorsHigh",
    "CoreDNSForwardHealthcheckFailureCount",
    "CoreDNSForwardHealthcheckBrokenCount",
];

async fn scrape(server: &TestServer) -> String {
    let admin = server.running().admin_addr().expect("[admin] is set");
    let (status, head, text) = http_get_with(admin, "/metrics", &[]).await;
    assert_eq!(status, 200);
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    text
}

/// The scrape as promtool `input_series` entries (YAML lines), with the labels a Prometheus
/// scraping the kube-dns Service adds.
fn input_series(scrape: &str) -> String {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut out = String::new();
    let target = "job=\"kube-dns\",instance=\"10.0.0.10:9153\",pod=\"hearth-0\"";
    let _ = writeln!(
        out,
        "  - series: 'up{{{target}}}'\n    values: '1x{MINUTES}'"
    );
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').expect("# TYPE name type");
            types.insert(family.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("name value");
        let value: f64 = value.parse().expect("a number");
        let name = series.split('{').next().unwrap_or(series);
        let kind = types
            .get(name)
            .or_else(|| {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| types.get(name.strip_suffix(suffix)?))
            })
            .map_or("untyped", String::as_str);
        let labelled = match series.split_once('{') {
            Some((name, labels)) if labels.starts_with('}') => format!("{name}{{{target}}}"),
            Some((name, labels)) => format!("{name}{{{target},{labels}"),
            None => format!("{series}{{{target}}}"),
        };
        let values = match kind {
            "counter" | "histogram" => format!("0+{value}x{MINUTES}"),
            _ => format!("{value}x{MINUTES}"),
        };
        assert!(!labelled.contains('\''), "{labelled}");
        let _ = writeln!(out, "  - series: '{labelled}'\n    values: '{values}'");
    }
    out
}

/// One promtool test: the scrape's series, the alerts expected to fire (alert name,
/// severity, `to` label or ""), and every other alert expected silent.
fn promtool_test(scrape: &str, firing: &[(&str, &str, String)]) -> String {
    let mut test = format!(
        "- interval: 1m\n  input_series:\n{}  promql_expr_test:\n  - expr: count by (alertname, severity, to) (ALERTS{{alertstate=\"firing\"}})\n    eval_time: {EVAL_TIME}\n    exp_samples:{}\n",
        input_series(scrape),
        if firing.is_empty() { " []" } else { "" }
    );
    for (alert, severity, to) in firing {
        let to = if to.is_empty() {
            String::new()
        } else {
            format!(", to=\"{to}\"")
        };
        let _ = writeln!(
            test,
            "    - labels: '{{alertname=\"{alert}\", severity=\"{severity}\"{to}}}'\n      value: 1"
        );
    }
    let silent: Vec<&str> = ALERT_NAMES
        .iter()
        .copied()
        .filter(|name| !firing.iter().any(|(alert, _, _)| alert == name))
        .collect();
    test.push_str("  alert_rule_test:\n");
    for alert in silent {
        let _ = writeln!(
            test,
            "  - eval_time: {EVAL_TIME}\n    alertname: {alert}\n    exp_alerts: []"
        );
    }
    test
}

fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write as _;
    let mut child = std::process::Command::new(tool("promtool"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("promtool reads");
    }
    let output = child.wait_with_output().expect("promtool ends");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Healthy: local answers, forwarded answers and cache hits.
async fn healthy_server(dir: &std::path::Path) -> (TestServer, FakeUpstream) {
    let hosts = hosts_file(dir, "192.0.2.10 web.example.org\n");
    let good = FakeUpstream::start().await;
    let toml = format!(
        "{}[admin]\nlisten = \"127.0.0.1:0\"\nmetrics = \"coredns\"\n",
        config(&hosts, &[good.addr], &["files", "dns"])
    );
    (start_server(&toml).await, good)
}

async fn healthy_traffic(server: &TestServer, upstream: &FakeUpstream) {
    for i in 0..10 {
        let owner = format!("host{i}.example.net.");
        upstream.add_a(&owner, Ipv4Addr::new(198, 51, 100, i));
        for _ in 0..3 {
            let response = ask(server.addr, &owner, RecordType::A).await;
            assert_eq!(response.metadata.response_code, ResponseCode::NoError);
        }
        ask(server.addr, "web.example.org.", RecordType::A).await;
        ask(server.addr, "web.example.org.", RecordType::AAAA).await;
    }
}

#[tokio::test]
async fn the_coredns_mixin_alerts_fire_on_hearths_metrics_as_they_would_on_corednss() {
    if !require("promtool") {
        return;
    }
    let (ok, text) = promtool(&["check", "rules", ALERTS], None);
    assert!(ok, "the mixin's rules: {text}");

    // Healthy: nothing fires.
    let dir = tempfile::tempdir().unwrap();
    let (server, good) = healthy_server(dir.path()).await;
    healthy_traffic(&server, &good).await;
    let healthy = scrape(&server).await;
    assert!(healthy.contains("coredns_dns_requests_total{"), "{healthy}");

    // Failing: zones whose upstream answers SERVFAIL, and whose upstream never answers.
    let servfail = FakeUpstream::start().await;
    servfail.set_behaviour(Behaviour::ServFail);
    let (_dead_socket, dead) = dead_upstream().await;
    let hosts = hosts_file(dir.path(), "192.0.2.10 web.example.org\n");
    let toml = format!(
        "{}[[forward.zone]]\nname = \"servfail.test\"\nupstreams = [\"{}\"]\n\
         [[forward.zone]]\nname = \"dead.test\"\nupstreams = [\"{dead}\"]\nhealth_check = \"500ms\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\nmetrics = \"coredns\"\n",
        config(&hosts, &[good.addr], &["files", "dns"]),
        servfail.addr
    );
    let failing_server = start_server(&toml).await;
    healthy_traffic(&failing_server, &good).await;
    let mut asks = Vec::new();
    for i in 0..10 {
        for zone in ["servfail.test", "dead.test"] {
            let target = failing_server.addr;
            let owner = format!("name{i}.{zone}.");
            asks.push(tokio::spawn(async move {
                ask(target, &owner, RecordType::A).await
            }));
        }
    }
    for asked in asks {
        let response = asked.await.expect("the query task");
        assert_eq!(response.metadata.response_code, ResponseCode::ServFail);
    }
    // The dead upstream is marked down and health-checked every 500 ms: wait for a failed
    // check to be counted.
    let mut failing = scrape(&failing_server).await;
    for _ in 0..40 {
        if failing.contains(&format!(
            "coredns_forward_healthcheck_failures_total{{to=\"{dead}\"}} 0"
        )) {
            tokio::time::sleep(Duration::from_millis(250)).await;
            failing = scrape(&failing_server).await;
        }
    }

    // Marked down, the dead upstream is still tried (it is the zone's only one): CoreDNS
    // counts that as its health checks being broken.
    for i in 0..2 {
        let owner = format!("after{i}.dead.test.");
        let response = ask(failing_server.addr, &owner, RecordType::A).await;
        assert_eq!(response.metadata.response_code, ResponseCode::ServFail);
    }
    let failing = scrape(&failing_server).await;

    for text in [&healthy, &failing] {
        let (ok, lint) = promtool(&["check", "metrics"], Some(text));
        assert!(ok, "promtool check metrics: {lint}\n{text}");
    }

    let servfail_to = servfail.addr.to_string();
    let dead_to: String = SocketAddr::to_string(&dead);
    let firing = [
        ("CoreDNSErrorsHigh", "critical", String::new()),
        ("CoreDNSErrorsHigh", "warning", String::new()),
        ("CoreDNSForwardErrorsHigh", "critical", servfail_to.clone()),
        ("CoreDNSForwardErrorsHigh", "warning", servfail_to),
        ("CoreDNSForwardHealthcheckFailureCount", "warning", dead_to),
        (
            "CoreDNSForwardHealthcheckBrokenCount",
            "warning",
            String::new(),
        ),
    ];
    let tests = format!(
        "rule_files:\n  - {ALERTS}\nevaluation_interval: 1m\ntests:\n{}{}",
        promtool_test(&healthy, &[]),
        promtool_test(&failing, &firing)
    );
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("coredns-mixin-test.yaml");
    std::fs::write(&path, &tests).unwrap();
    let (ok, output) = promtool(&["test", "rules", path.to_str().unwrap()], None);
    assert!(
        ok,
        "promtool test rules:\n{output}\n--- healthy scrape:\n{healthy}\n--- failing scrape:\n{failing}"
    );
}
