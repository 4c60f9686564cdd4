//! Cluster scale: memory and time to first sync of the cluster zone fed by a Kubernetes API.
//! Run by `benches/cluster_scale.sh` (`cargo bench --bench cluster_scale`: a release build),
//! which passes its sizes as `HEARTH_SCALE_*` variables.
//!
//! The objects are generated into the fake API server of tests/common/apiserver.rs; the
//! release `hearth` binary is started as its own process against it; and this prints the time
//! from process start to the last service answering, Hearth's RSS (and peak) after the first
//! sync, its CPU seconds, how long each of `HEARTH_SCALE_CHANGES` changes (default 100) takes
//! to show at that size (p50/p90/p99), and the RSS after and the peak during two forced
//! re-lists (every watch answered an ERROR event, 410 Gone): one of an unchanged cluster, one
//! that brings a change the watches missed. Loopback only; the server is stopped at the end,
//! pass or fail.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::apiserver::{FakeApiServer, Resource};
use common::external::{free_port, Process};
use common::kubernetes::service;
use common::{config, dead_upstream, hosts_file, query_bytes, udp_raw};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::{json, Value};

fn main() {
    // As the measurement always ran: two worker threads, the machine's two cores.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(measure());
}

async fn measure() {
    let count = |variable: &str, default: usize| {
        std::env::var(variable)
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(default)
    };
    let services = count("HEARTH_SCALE_SERVICES", 10_000);
    let endpoints = count("HEARTH_SCALE_ENDPOINTS_PER_SERVICE", 10);
    let pods = count("HEARTH_SCALE_PODS", 0);

    let api = FakeApiServer::start().await;
    let generating = std::time::Instant::now();
    generate_cluster(&api, services, endpoints, pods);
    eprintln!(
        "generated {services} services, {} endpoints, {pods} pods in {:.1?}",
        services * endpoints,
        generating.elapsed()
    );

    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "");
    let (_dead, upstream) = dead_upstream().await;
    let mode = if pods > 0 { "verified" } else { "insecure" };
    let toml = format!(
        "{}[kubernetes]\ndomain = \"cluster.local\"\napi = \"{}\"\npods = \"{mode}\"\n",
        config(&hosts, &[upstream], &["files", "zones", "dns"]),
        api.url()
    );
    let config_path = dir.path().join("hearth.toml");
    std::fs::write(&config_path, toml).unwrap();
    let port = free_port();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let log = std::fs::File::create(dir.path().join("hearth.log")).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"));
    command
        .args(["serve", "--config"])
        .arg(&config_path)
        .args(["--listen", &addr.to_string()])
        .env("HEARTH_LOG", "info")
        .stderr(log);
    let started = std::time::Instant::now();
    let own_cpu_began = cpu_seconds(std::process::id());
    let hearth = Process::spawn("hearth", command);
    let sampler = RssSampler::start(hearth.pid());
    let idle_rss = {
        // Serving, not yet synced: cluster names SERVFAIL.
        while probe_a(addr, "svc-0.ns-0.svc.cluster.local.")
            .await
            .is_none()
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        memory_mib(hearth.pid()).0
    };
    let last = format!(
        "svc-{}.ns-{}.svc.cluster.local.",
        services - 1,
        (services - 1) % 100
    );
    let expected = if (services - 1) % 2 == 1 {
        endpoints
    } else {
        1
    };
    time_until(addr, &last, expected).await;
    let first_sync = started.elapsed();
    let sync_peak = sampler.take_peak();
    // Settled: what the process keeps once the first build's temporaries are gone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss, _) = memory_mib(hearth.pid());
    let cpu = cpu_seconds(hearth.pid());
    // What the fake API server (this process) spent serving the lists meanwhile.
    let own_cpu = cpu_seconds(std::process::id()) - own_cpu_began;

    // Changes at full size: a service added, then deleted, each timed to when it shows.
    let mut changes = Vec::new();
    let change_count = count("HEARTH_SCALE_CHANGES", 100);
    let changes_began = cpu_seconds(hearth.pid());
    sampler.take_peak();
    for change in 0..change_count {
        if change % 2 == 0 {
            api.apply(service("ns-0", "scale-probe", "10.97.0.1"));
            changes.push(time_until(addr, "scale-probe.ns-0.svc.cluster.local.", 1).await);
        } else {
            api.delete("Service", "ns-0", "scale-probe");
            changes.push(time_until(addr, "scale-probe.ns-0.svc.cluster.local.", 0).await);
        }
    }
    let changes_cpu = cpu_seconds(hearth.pid()) - changes_began;
    let changes_peak = sampler.take_peak();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_changes, _) = memory_mib(hearth.pid());

    // A forced re-list of an unchanged cluster: every watch gets an ERROR event (410 Gone) and
    // the history is compacted, so each kind lists again; nothing changed meanwhile.
    let kinds = [
        Resource::Services,
        Resource::EndpointSlices,
        Resource::Namespaces,
    ];
    let lists_before: Vec<usize> = kinds.iter().map(|kind| api.lists(*kind)).collect();
    sampler.take_peak();
    let unchanged_began_cpu = cpu_seconds(hearth.pid());
    api.expire_watches();
    while kinds
        .iter()
        .zip(&lists_before)
        .any(|(kind, before)| api.lists(*kind) == *before)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The lists are begun; 10,000 objects of a kind are listed in well under 2 s here.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let unchanged_peak = sampler.take_peak();
    let unchanged_cpu = cpu_seconds(hearth.pid()) - unchanged_began_cpu;
    let (rss_unchanged, _) = memory_mib(hearth.pid());

    // A forced re-list that brings a change the watches missed: the probe service is added
    // while open watches hear nothing (quiet), so only the re-list of services can bring it.
    let lists_before = api.lists(Resource::Services);
    sampler.take_peak();
    let relist_began_cpu = cpu_seconds(hearth.pid());
    api.set_quiet(true);
    api.expire_watches();
    api.apply(service("ns-0", "relist-probe", "10.97.0.2"));
    let relist = time_until(addr, "relist-probe.ns-0.svc.cluster.local.", 1).await;
    api.set_quiet(false);
    let relists = api.lists(Resource::Services) - lists_before;
    // The other kinds' lists may still be finishing: wait for the services' and slices' ones
    // to be in, then for the memory to settle.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let relist_peak = sampler.take_peak();
    let relist_cpu = cpu_seconds(hearth.pid()) - relist_began_cpu;
    let (rss_relist, hwm) = memory_mib(hearth.pid());

    let logged = std::fs::read_to_string(dir.path().join("hearth.log")).unwrap_or_default();
    let sync_line = logged
        .lines()
        .find(|line| line.contains("first sync"))
        .unwrap_or("(no first-sync line)")
        .to_owned();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!(
        "--- {services} services, {} endpoints, {pods} pods (pods = {mode}) ---",
        services * endpoints
    );
    eprintln!("load average at the end: {}", load.trim());
    eprintln!("time to first sync (process start -> last service answered): {first_sync:.2?}");
    eprintln!("hearth's own log: {sync_line}");
    eprintln!(
        "RSS before sync {idle_rss:.1} MiB; after first sync {rss:.1} MiB (peak while syncing \
         {sync_peak:.1} MiB)"
    );
    eprintln!(
        "CPU used up to the first sync: {cpu:.2} s (the fake API server and the probes: \
         {own_cpu:.2} s)"
    );
    let mut sorted = changes.clone();
    sorted.sort();
    eprintln!(
        "{} changes at full size show after: p50 {:.1?}, p90 {:.1?}, p99 {:.1?}, max {:.1?} \
         ({changes_cpu:.2} s CPU in all)",
        sorted.len(),
        percentile(&sorted, 50),
        percentile(&sorted, 90),
        percentile(&sorted, 99),
        sorted.last().copied().unwrap_or_default(),
    );
    eprintln!(
        "RSS after the changes {rss_changes:.1} MiB (peak during them {changes_peak:.1} MiB)"
    );
    eprintln!(
        "forced re-list, nothing changed (410 Gone on every watch): RSS after \
         {rss_unchanged:.1} MiB, peak during {unchanged_peak:.1} MiB ({unchanged_cpu:.2} s CPU)"
    );
    eprintln!(
        "forced re-list with a missed change (410 Gone on every watch; {relists} list(s) of services): the probe \
         showed after {relist:.2?}; RSS after {rss_relist:.1} MiB, peak during {relist_peak:.1} \
         MiB ({relist_cpu:.2} s CPU); lifetime peak (VmHWM) {hwm:.1} MiB"
    );
    sampler.stop();
    drop(hearth);
}

/// The `share`th percentile of sorted durations (nearest rank).
fn percentile(sorted: &[Duration], share: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (share * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// Samples a process's `VmRSS` every 2 ms on a thread of its own, keeping the highest since
/// last asked: `VmHWM` is the peak of the process's whole life, so it cannot tell the peak of
/// one phase (a re-list) after a higher one.
struct RssSampler {
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (peak, stopping) = (Arc::clone(&peak_kib), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                    return;
                };
                let rss = status
                    .lines()
                    .find(|line| line.starts_with("VmRSS:"))
                    .and_then(|line| line.split_whitespace().nth(1))
                    .and_then(|kib| kib.parse::<u64>().ok())
                    .unwrap_or(0);
                peak.fetch_max(rss, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Self { peak_kib, stop }
    }

    /// The highest RSS seen since the last call, in MiB; starts over.
    fn take_peak(&self) -> f64 {
        self.peak_kib.swap(0, Ordering::Relaxed) as f64 / 1024.0
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The generated cluster: `services` services over 100 namespaces, each with one EndpointSlice
/// of `endpoints` endpoints (so 10,000 x 10 = 100,000 endpoints), every other service headless;
/// objects carry what the API server adds (uid, timestamps, managedFields, ownerReferences,
/// targetRef, nodeName, zone), which the feed must drop. `pods` > 0 adds that many pods and
/// switches to `pods = "verified"`, which watches them.
fn generate_cluster(api: &FakeApiServer, services: usize, endpoints: usize, pods: usize) {
    const NAMESPACES: usize = 100;
    for namespace in 0..NAMESPACES {
        api.apply(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": format!("ns-{namespace}"), "uid": format!("ns-uid-{namespace}"),
            "labels": {"kubernetes.io/metadata.name": format!("ns-{namespace}")},
            "creationTimestamp": "2026-11-01T09:00:00Z"},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
        );
    }
    let mut address = 0u32;
    for index in 0..services {
        let namespace = format!("ns-{}", index % NAMESPACES);
        let name = format!("svc-{index}");
        let headless = index % 2 == 1;
        let cluster_ip = if headless {
            "None".to_owned()
        } else {
            format!("10.96.{}.{}", index / 250, index % 250 + 1)
        };
        api.apply(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {
                "name": name, "namespace": namespace, "uid": format!("svc-uid-{index}"),
                "creationTimestamp": "2026-11-01T09:00:00Z", "labels": {"app": name},
                "managedFields": [{"apiVersion": "v1", "fieldsType": "FieldsV1", "manager": "kubectl",
                    "operation": "Update", "time": "2026-11-01T09:00:00Z",
                    "fieldsV1": {"f:spec": {"f:ports": {".": {}, "k:{\"port\":80,\"protocol\":\"TCP\"}": {
                        ".": {}, "f:name": {}, "f:port": {}, "f:protocol": {}, "f:targetPort": {}}},
                        "f:selector": {}, "f:sessionAffinity": {}, "f:type": {}}}}]
            },
            "spec": {
                "clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "type": "ClusterIP",
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
                "internalTrafficPolicy": "Cluster", "selector": {"app": name},
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]
            },
            "status": {"loadBalancer": {}}
        }));
        let endpoint_list: Vec<Value> = (0..endpoints)
            .map(|endpoint| {
                address += 1;
                let ip = std::net::Ipv4Addr::from(0x0a00_0000 + address);
                json!({
                    "addresses": [ip.to_string()],
                    "conditions": {"ready": true, "serving": true, "terminating": false},
                    "nodeName": format!("node-{}", address % 500),
                    "zone": format!("zone-{}", address % 3),
                    "targetRef": {"kind": "Pod", "name": format!("{name}-{endpoint}"),
                        "namespace": namespace, "uid": format!("pod-uid-{address}")}
                })
            })
            .collect();
        api.apply(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {
                "name": format!("{name}-abcde"), "namespace": namespace,
                "uid": format!("slice-uid-{index}"), "generateName": format!("{name}-"),
                "labels": {"kubernetes.io/service-name": name,
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name,
                    "uid": format!("svc-uid-{index}"), "controller": true, "blockOwnerDeletion": true}]
            },
            "addressType": "IPv4",
            "endpoints": endpoint_list,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        }));
    }
    for index in 0..pods {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + 1 + index as u32);
        api.apply(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("pod-{index}"), "namespace": format!("ns-{}", index % NAMESPACES),
                "uid": format!("pod-uid-{index}"), "labels": {"app": "generated"}},
            "spec": {"nodeName": format!("node-{}", index % 500),
                "containers": [{"name": "app", "image": "registry.example/app:1.0",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
            "status": {"phase": "Running", "podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}],
                "hostIP": "192.168.0.1", "qosClass": "Burstable",
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                    "image": "registry.example/app:1.0", "imageID": "sha256:00",
                    "state": {"running": {"startedAt": "2026-11-01T09:00:00Z"}}}]}
        }));
    }
}

/// `VmRSS` and `VmHWM` (the peak) of a process, in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |key: &str| {
        status
            .lines()
            .find(|line| line.starts_with(key))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Asks `name A` once over UDP: the RCODE and how many answers, or `None` without a reply.
async fn probe_a(addr: SocketAddr, name: &str) -> Option<(ResponseCode, usize)> {
    let reply = udp_raw(
        addr,
        &query_bytes(7, name, RecordType::A, Some(1232)),
        Duration::from_millis(200),
    )
    .await?;
    let message = hickory_proto::op::Message::from_vec(&reply).ok()?;
    Some((message.metadata.response_code, message.answers.len()))
}

/// Polls until `name A` has `count` answers (0: NXDOMAIN); how long that took.
async fn time_until(addr: SocketAddr, name: &str, count: usize) -> Duration {
    let began = std::time::Instant::now();
    loop {
        let expected = if count == 0 {
            Some((ResponseCode::NXDomain, 0))
        } else {
            Some((ResponseCode::NoError, count))
        };
        if probe_a(addr, name).await == expected {
            return began.elapsed();
        }
        assert!(
            began.elapsed() < Duration::from_secs(600),
            "{name} never answered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
