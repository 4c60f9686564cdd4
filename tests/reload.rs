//! Reloading a running server (what SIGHUP does, through `Running::reload`): new settings take
//! effect, a broken config or zone file leaves the last good one serving and counts a failure,
//! the answer cache survives an unchanged `[forward]`, and clients sending through reloads get
//! every answer.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_net::client::ClientHandle;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, RecordType};

use hearth::app::Running;
use hearth::config::{Config, Overrides};

use common::*;

fn overrides() -> Overrides {
    Overrides {
        listen: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
    }
}

/// Starts the server from the config file at `path`, as `hearth serve --config` does.
async fn start_from(path: &Path) -> Running {
    let config = Config::load(Some(path), &overrides()).expect("config loads");
    hearth::app::start(&config).await.expect("server starts")
}

fn write(path: &Path, text: &str) {
    // Replace by rename, as editors and ConfigMap updates do.
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

fn metrics(running: &Running) -> String {
    running.render_metrics("hearth")
}

/// A server started from a config file that serves `web.example.org` from the first of two
/// hosts files (192.0.2.1; the second has 192.0.2.2), with a local upstream: the directory, the
/// two hosts files, the upstream, the config's path and the server.
async fn serving_the_first_of_two_hosts_files() -> (
    tempfile::TempDir,
    [std::path::PathBuf; 2],
    FakeUpstream,
    std::path::PathBuf,
    Running,
) {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.hosts");
    let second = dir.path().join("second.hosts");
    std::fs::write(&first, "192.0.2.1 web.example.org\n").unwrap();
    std::fs::write(&second, "192.0.2.2 web.example.org\n").unwrap();
    let upstream = FakeUpstream::start().await;
    let config_path = dir.path().join("hearth.toml");
    write(
        &config_path,
        &config(&first, &[upstream.addr], &["files", "dns"]),
    );
    let running = start_from(&config_path).await;
    (dir, [first, second], upstream, config_path, running)
}

#[tokio::test]
async fn a_reload_applies_the_new_order_and_files() {
    let (_dir, [_first, second], upstream, config_path, running) =
        serving_the_first_of_two_hosts_files().await;
    let addr = running.local_addrs()[0];
    assert_eq!(
        rdata(&ask(addr, "web.example.org.", RecordType::A).await),
        ["192.0.2.1"]
    );

    write(
        &config_path,
        &config(&second, &[upstream.addr], &["files", "dns"]),
    );
    running
        .reload(Some(&config_path), &overrides())
        .await
        .expect("reloads");
    assert_eq!(
        rdata(&ask(addr, "web.example.org.", RecordType::A).await),
        ["192.0.2.2"]
    );

    // The order changes too: with only `dns`, the hosts file is no longer consulted.
    upstream.add_a("web.example.org.", Ipv4Addr::new(198, 51, 100, 9));
    write(&config_path, &config(&second, &[upstream.addr], &["dns"]));
    running
        .reload(Some(&config_path), &overrides())
        .await
        .expect("reloads");
    assert_eq!(
        rdata(&ask(addr, "web.example.org.", RecordType::A).await),
        ["198.51.100.9"]
    );
    assert_eq!(
        sample(
            &metrics(&running),
            "hearth_config_reloads_total{result=\"success\"}"
        ),
        Some(2.0)
    );
    running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_broken_config_is_refused_with_its_line_and_the_old_one_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = hosts_file(dir.path(), "192.0.2.1 web.example.org\n");
    let upstream = FakeUpstream::start().await;
    let config_path = dir.path().join("hearth.toml");
    write(
        &config_path,
        &config(&hosts, &[upstream.addr], &["files", "dns"]),
    );
    let running = start_from(&config_path).await;
    let addr = running.local_addrs()[0];

    write(
        &config_path,
        "[resolve]\norder = [\"files\"]\n[files]\npaths = [\"/nonexistent\"]\ntypo_key = 1\n",
    );
    let error = running
        .reload(Some(&config_path), &overrides())
        .await
        .expect_err("a stray key is refused");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("{}:5:", config_path.display())),
        "{message}"
    );
    assert!(message.contains("typo_key"), "{message}");
    assert_eq!(
        rdata(&ask(addr, "web.example.org.", RecordType::A).await),
        ["192.0.2.1"]
    );

    write(&config_path, "[server\n");
    assert!(running
        .reload(Some(&config_path), &overrides())
        .await
        .is_err());
    assert_eq!(
        rdata(&ask(addr, "web.example.org.", RecordType::A).await),
        ["192.0.2.1"]
    );

    let text = metrics(&running);
    assert_eq!(
        sample(&text, "hearth_config_reloads_total{result=\"failure\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "hearth_config_reloads_total{result=\"success\"}"),
        Some(0.0)
    );
    running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_zone_file_broken_before_a_reload_keeps_its_last_good_version() {
    let dir = tempfile::tempdir().unwrap();
    let zones = dir.path().join("zones");
    std::fs::create_dir(&zones).unwrap();
    let zone = zones.join("example.test.zone");
    let good = "$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns hostmaster 1 7200 900 1209600 300\n@ IN NS ns\nns IN A 192.0.2.53\nwww IN A 192.0.2.80\n";
    std::fs::write(&zone, good).unwrap();
    let hosts = hosts_file(dir.path(), "");
    let config_path = dir.path().join("hearth.toml");
    // A long poll interval: only the reload reads the zone again.
    let text = format!(
        "[resolve]\norder = [\"files\", \"zones\"]\n[files]\npaths = [\"{}\"]\n[zones]\ndirectory = \"{}\"\nreload_interval = \"1h\"\n",
        hosts.display(),
        zones.display()
    );
    write(&config_path, &text);
    let running = start_from(&config_path).await;
    let addr = running.local_addrs()[0];
    assert_eq!(
        rdata(&ask(addr, "www.example.test.", RecordType::A).await),
        ["192.0.2.80"]
    );

    std::fs::write(&zone, good.replace("192.0.2.80", "not-an-address")).unwrap();
    running
        .reload(Some(&config_path), &overrides())
        .await
        .expect("the config itself is fine");
    assert_eq!(
        rdata(&ask(addr, "www.example.test.", RecordType::A).await),
        ["192.0.2.80"]
    );
    assert_eq!(
        sample(
            &metrics(&running),
            "hearth_zones_reloads_total{result=\"failure\"}"
        ),
        Some(1.0)
    );

    std::fs::write(&zone, good.replace("192.0.2.80", "192.0.2.81")).unwrap();
    running
        .reload(Some(&config_path), &overrides())
        .await
        .expect("reloads");
    assert_eq!(
        rdata(&ask(addr, "www.example.test.", RecordType::A).await),
        ["192.0.2.81"]
    );
    running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_answer_cache_survives_a_reload_that_leaves_forward_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let first = hosts_file(dir.path(), "192.0.2.1 web.example.org\n");
    let upstream = FakeUpstream::start().await;
    upstream.add_a("far.example.net.", Ipv4Addr::new(198, 51, 100, 7));
    let config_path = dir.path().join("hearth.toml");
    write(
        &config_path,
        &config(&first, &[upstream.addr], &["files", "dns"]),
    );
    let running = start_from(&config_path).await;
    let addr = running.local_addrs()[0];
    ask(addr, "far.example.net.", RecordType::A).await;
    let asked = upstream.queries();

    // Only [files] changes.
    let second = dir.path().join("other.hosts");
    std::fs::write(&second, "192.0.2.2 web.example.org\n").unwrap();
    write(
        &config_path,
        &config(&second, &[upstream.addr], &["files", "dns"]),
    );
    running
        .reload(Some(&config_path), &overrides())
        .await
        .expect("reloads");
    let response = ask(addr, "far.example.net.", RecordType::A).await;
    assert_eq!(rdata(&response), ["198.51.100.7"]);
    assert_eq!(
        upstream.queries(),
        asked,
        "answered from the cache kept across the reload"
    );
    running.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_sending_through_reloads_get_every_answer() {
    const CLIENTS: usize = 4;
    const QUERIES_EACH: usize = 300;
    const RELOADS: usize = 20;

    let (_dir, [a, b], upstream, config_path, running) =
        serving_the_first_of_two_hosts_files().await;
    let running = Arc::new(running);
    let addr = running.local_addrs()[0];

    let answered = Arc::new(AtomicUsize::new(0));
    // Answers seen from the first hosts file and from the second.
    let versions = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let reloads_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for index in 0..CLIENTS {
        let answered = Arc::clone(&answered);
        let versions = Arc::clone(&versions);
        let reloads_done = Arc::clone(&reloads_done);
        clients.push(tokio::spawn(async move {
            // Half over UDP (the fast path), half over TCP.
            let mut client = if index % 2 == 0 {
                udp_client(addr).await
            } else {
                tcp_client(addr).await
            };
            // At least QUERIES_EACH, and on until the last reload is done.
            let mut sent = 0;
            while sent < QUERIES_EACH || !reloads_done.load(Ordering::Acquire) {
                sent += 1;
                let response = client
                    .query(name("web.example.org."), DNSClass::IN, RecordType::A)
                    .await
                    .expect("every query is answered through the reloads");
                assert_eq!(response.metadata.response_code, ResponseCode::NoError);
                let data = rdata(&response);
                match data.as_slice() {
                    [one] if one == "192.0.2.1" => versions[0].fetch_add(1, Ordering::Relaxed),
                    [two] if two == "192.0.2.2" => versions[1].fetch_add(1, Ordering::Relaxed),
                    other => panic!("one version or the other, never a mix: {other:?}"),
                };
                answered.fetch_add(1, Ordering::Relaxed);
            }
            sent
        }));
    }
    for reload in 0..RELOADS {
        let hosts = if reload % 2 == 0 { &b } else { &a };
        write(
            &config_path,
            &config(hosts, &[upstream.addr], &["files", "dns"]),
        );
        running
            .reload(Some(&config_path), &overrides())
            .await
            .expect("reloads");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    reloads_done.store(true, Ordering::Release);
    let mut sent = 0;
    for client in clients {
        sent += client.await.expect("client finished without a lost answer");
    }
    assert_eq!(
        answered.load(Ordering::Relaxed),
        sent,
        "every query sent was answered"
    );
    // The queries really did run across the reloads: both versions were answered.
    assert!(versions[0].load(Ordering::Relaxed) > 0);
    assert!(versions[1].load(Ordering::Relaxed) > 0);
    let text = metrics(&running);
    assert_eq!(
        sample(&text, "hearth_config_reloads_total{result=\"success\"}"),
        Some(RELOADS as f64)
    );
    if let Ok(running) = Arc::try_unwrap(running) {
        running.shutdown(Duration::from_secs(5)).await;
    }
}

/// Lays out `text` as the kubelet lays out a ConfigMap volume: `hearth.toml` is a symlink to
/// `..data/hearth.toml`, `..data` a symlink to a timestamped directory. An update writes a new
/// directory and renames a new `..data` symlink over the old one, atomically.
fn configmap_update(volume: &Path, generation: u32, text: &str) {
    let directory = volume.join(format!("..2026_12_06_00_00_0{generation}"));
    std::fs::create_dir(&directory).unwrap();
    std::fs::write(directory.join("hearth.toml"), text).unwrap();
    let staged = volume.join("..data_tmp");
    std::os::unix::fs::symlink(directory.file_name().unwrap(), &staged).unwrap();
    std::fs::rename(&staged, volume.join("..data")).unwrap();
    let link = volume.join("hearth.toml");
    if std::fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink("..data/hearth.toml", &link).unwrap();
    }
}

/// Asks until the answer is `expected`, for up to 10 s: the watch polls, so a change shows
/// within a poll or two.
async fn until_answer(addr: SocketAddr, name: &str, expected: &[&str]) {
    for _ in 0..200 {
        if rdata(&ask(addr, name, RecordType::A).await) == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never answered {expected:?}");
}

#[tokio::test]
async fn a_watched_config_follows_a_configmap_symlink_swap_and_survives_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let first = hosts_file(dir.path(), "192.0.2.1 web.example.org\n");
    let second = dir.path().join("second.hosts");
    std::fs::write(&second, "192.0.2.2 web.example.org\n").unwrap();
    let upstream = FakeUpstream::start().await;
    let volume = dir.path().join("config");
    std::fs::create_dir(&volume).unwrap();
    configmap_update(
        &volume,
        1,
        &config(&first, &[upstream.addr], &["files", "dns"]),
    );
    let config_path = volume.join("hearth.toml");
    let running = start_from(&config_path).await;
    running.watch_config_file_every(config_path.clone(), overrides(), Duration::from_millis(50));
    let addr = running.local_addrs()[0];
    assert_eq!(
        rdata(&ask(addr, "web.example.org.", RecordType::A).await),
        ["192.0.2.1"]
    );

    // Queries keep flowing through the swap, and every one is answered.
    let asking = tokio::spawn(async move {
        let mut answered = 0;
        for _ in 0..100 {
            let reply = ask(addr, "web.example.org.", RecordType::A).await;
            assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
            answered += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        answered
    });
    configmap_update(
        &volume,
        2,
        &config(&second, &[upstream.addr], &["files", "dns"]),
    );
    until_answer(addr, "web.example.org.", &["192.0.2.2"]).await;
    assert_eq!(asking.await.unwrap(), 100);

    // A broken update: logged, counted, and the last good configuration serves on.
    configmap_update(
        &volume,
        3,
        "[server]\nlisten = [\"127.0.0.1:0\"]\ntypo_key = 1\n",
    );
    let mut failures = None;
    for _ in 0..200 {
        failures = sample(
            &metrics(&running),
            "hearth_config_reloads_total{result=\"failure\"}",
        );
        if failures == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(failures, Some(1.0));
    assert_eq!(
        rdata(&ask(addr, "web.example.org.", RecordType::A).await),
        ["192.0.2.2"]
    );
    // The same broken file is not retried on every poll.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = metrics(&running);
    assert_eq!(
        sample(&text, "hearth_config_reloads_total{result=\"failure\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "hearth_config_reloads_total{result=\"success\"}"),
        Some(1.0)
    );

    // watch_config = false: a later change waits for SIGHUP.
    let off = format!(
        "[server]\nwatch_config = false\n{}",
        config(&first, &[upstream.addr], &["files", "dns"])
    );
    configmap_update(&volume, 4, &off);
    until_answer(addr, "web.example.org.", &["192.0.2.1"]).await;
    configmap_update(
        &volume,
        5,
        &config(&second, &[upstream.addr], &["files", "dns"]),
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        rdata(&ask(addr, "web.example.org.", RecordType::A).await),
        ["192.0.2.1"]
    );
    running.shutdown(Duration::from_secs(5)).await;
}
