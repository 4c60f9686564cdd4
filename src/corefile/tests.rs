//! Corefile text in, the generated configuration's keys out (parsed back with `toml`); and
//! each refusal with its line.

use super::*;

fn import_text(text: &str) -> Result<toml::Table, CorefileError> {
    let imported = import(text, &ImportOptions::default())?;
    Ok(imported
        .toml
        .parse::<toml::Table>()
        .expect("the output is TOML"))
}

/// `table.key` of the generated configuration, as TOML text (`"5s"`, `30`, `["a", "b"]`).
fn key(config: &toml::Table, path: &str) -> Option<String> {
    let mut value: Option<&toml::Value> = None;
    let mut table = config;
    for part in path.split('.') {
        value = table.get(part);
        if let Some(toml::Value::Table(inner)) = value {
            table = inner;
        }
    }
    value.map(ToString::to_string)
}

const KUBEADM: &str = "\
.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
";

/// kubeadm's Corefile gives what config/kubernetes/configmap.yaml says by hand, plus CoreDNS's
/// own defaults where Hearth's differ.
#[test]
fn kubeadm_matches_the_hand_translation() {
    let config = import_text(KUBEADM).unwrap();
    for (path, expected) in [
        ("server.listen", r#"["0.0.0.0:53"]"#),
        ("server.lameduck", r#""5s""#),
        ("server.watch_config", "true"),
        ("resolve.order", r#"["zones", "dns"]"#),
        ("resolve.rotate", "true"),
        ("kubernetes.domain", r#""cluster.local""#),
        ("kubernetes.api", r#""in-cluster""#),
        ("kubernetes.pods", r#""insecure""#),
        ("kubernetes.ttl", "30"),
        ("forward.max_concurrent", "1000"),
        ("forward.policy", r#""random""#),
        ("cache.max_ttl", r#""30s""#),
        ("cache.negative_max_ttl", r#""30s""#),
        ("cache.serve_stale", r#""0s""#),
        ("cache.prefetch", "false"),
        ("admin.listen", r#""0.0.0.0:8080""#),
        ("admin.metrics", r#""coredns""#),
    ] {
        assert_eq!(key(&config, path).as_deref(), Some(expected), "{path}");
    }
    assert_eq!(key(&config, "forward.upstreams"), None, "resolv.conf");
    assert_eq!(key(&config, "access"), None, "Hearth's private default");
    assert_eq!(key(&config, "files"), None);
}

#[test]
fn every_setting_says_where_it_came_from() {
    let imported = import(KUBEADM, &ImportOptions::default()).unwrap();
    // Comments are wrapped; read them as one text.
    let text = imported.toml.replace("\n# ", " ");
    for expected in [
        "Corefile line 3: `health`: lameduck 5s",
        "Corefile line 10: `ttl 30`.",
        "Corefile line 16: `cache 30`: answers are kept at most 30 s.",
        "`loop`: always on in Hearth",
        "`errors`: dropped",
    ] {
        assert!(text.contains(expected), "{expected:?} in\n{text}");
    }
}

#[test]
fn stub_domains_become_forward_zones() {
    let config = import_text(
        ".:53 {
    forward . 8.8.8.8 tls://1.1.1.1 {
        tls_servername cloudflare-dns.com
        policy round_robin
        health_check 5s
    }
    cache 30
}
consul.local:53 example.org {
    cache 30
    forward . 10.150.0.1 10.150.0.2:5353 {
        force_tcp
        max_concurrent 50
    }
}
",
    )
    .unwrap();
    assert_eq!(
        key(&config, "forward.upstreams").as_deref(),
        Some(r#"["8.8.8.8", "tls://1.1.1.1#cloudflare-dns.com"]"#)
    );
    assert_eq!(
        key(&config, "forward.policy").as_deref(),
        Some(r#""round_robin""#)
    );
    assert_eq!(
        key(&config, "forward.health_check").as_deref(),
        Some(r#""5s""#)
    );
    let zones = config["forward"]["zone"].as_array().unwrap();
    assert_eq!(zones.len(), 2);
    assert_eq!(zones[0]["name"].as_str(), Some("consul.local"));
    assert_eq!(zones[1]["name"].as_str(), Some("example.org"));
    assert_eq!(
        zones[0]["upstreams"].to_string(),
        r#"["tcp://10.150.0.1", "tcp://10.150.0.2:5353"]"#
    );
    assert_eq!(zones[0]["max_concurrent"].as_integer(), Some(50));
    assert_eq!(key(&config, "cache.capacity"), None);
    assert_eq!(key(&config, "resolve.order").as_deref(), Some(r#"["dns"]"#));
    assert_eq!(
        key(&config, "server.watch_config").as_deref(),
        Some("false")
    );
}

#[test]
fn hosts_cache_acl_log_bind_and_autopath() {
    let dir = tempfile::tempdir().unwrap();
    let inline = dir.path().join("inline.hosts");
    let imported = import(
        ".:53 {
    bind 10.0.0.10 fd00::10
    acl {
        block net 10.1.0.0/16
        allow net 10.0.0.0/8
        drop net 192.0.2.0/24
    }
    hosts /etc/coredns/NodeHosts example.org {
        10.0.0.1 a.example.org b.example.org
        ttl 60
        reload 15s
        fallthrough
    }
    kubernetes cluster.local {
        pods verified
    }
    autopath @kubernetes
    log
    forward . 192.0.2.53
    cache {
        success 5000 600 10
        denial 1000 60 10
        prefetch 10 1m 10%
        serve_stale 2h verify
    }
}
",
        &ImportOptions {
            inline_hosts: Some(inline.clone()),
        },
    )
    .unwrap();
    assert_eq!(
        imported.inline_hosts.as_deref(),
        Some("10.0.0.1 a.example.org b.example.org\n")
    );
    let config: toml::Table = imported.toml.parse().unwrap();
    for (path, expected) in [
        ("server.listen", r#"["10.0.0.10:53", "[fd00::10]:53"]"#),
        ("access.allow", r#"["10.0.0.0/8", "0.0.0.0/0", "::/0"]"#),
        ("access.refuse", r#"["10.1.0.0/16"]"#),
        ("access.deny", r#"["192.0.2.0/24"]"#),
        ("resolve.order", r#"["files", "zones", "dns"]"#),
        ("files.ttl", "60"),
        ("files.reload_interval", r#""15s""#),
        ("kubernetes.pods", r#""verified""#),
        ("kubernetes.autopath", "true"),
        ("kubernetes.ttl", "5"),
        ("log.queries", "true"),
        ("forward.upstreams", r#"["192.0.2.53"]"#),
        ("cache.capacity", "6000"),
        ("cache.max_ttl", r#""600s""#),
        ("cache.negative_max_ttl", r#""60s""#),
        ("cache.min_ttl", r#""10s""#),
        ("cache.prefetch", "true"),
        ("cache.serve_stale", r#""2h""#),
    ] {
        assert_eq!(key(&config, path).as_deref(), Some(expected), "{path}");
    }
    assert_eq!(
        key(&config, "files.paths"),
        Some(format!(
            r#"["/etc/coredns/NodeHosts", "{}"]"#,
            inline.display()
        ))
    );
    assert_eq!(
        key(&config, "admin"),
        None,
        "no health, ready or prometheus"
    );
    assert_eq!(key(&config, "server.lameduck"), None);
}

#[test]
fn health_without_lameduck_stops_at_once_and_no_cache_is_no_cache() {
    let config = import_text(".:1053 {\n    health :8081\n    forward . 192.0.2.1\n}\n").unwrap();
    assert_eq!(
        key(&config, "server.listen").as_deref(),
        Some(r#"["0.0.0.0:1053"]"#)
    );
    assert_eq!(key(&config, "server.lameduck").as_deref(), Some(r#""0s""#));
    assert_eq!(
        key(&config, "admin.listen").as_deref(),
        Some(r#""0.0.0.0:8081""#)
    );
    assert_eq!(key(&config, "admin.metrics"), None);
    assert_eq!(key(&config, "cache.capacity").as_deref(), Some("0"));
}

fn error_of(text: &str) -> CorefileError {
    import(text, &ImportOptions::default()).unwrap_err()
}

/// Each refusal names its line and says why.
#[test]
fn refusals_name_the_line_and_the_reason() {
    let cases: &[(&str, usize, &str)] = &[
        (
            ".:53 {\n    forward . 192.0.2.1\n    rewrite name foo.example bar.example\n}\n",
            3,
            "plugin `rewrite` has no Hearth equivalent: Hearth does not rewrite",
        ),
        (
            ".:53 {\n    template IN A example {\n        answer \"{{ .Name }} 60 IN A 192.0.2.1\"\n    }\n}\n",
            2,
            "plugin `template` has no Hearth equivalent",
        ),
        (
            ".:53 {\n    frobnicate\n}\n",
            2,
            "plugin `frobnicate` has no Hearth equivalent: not a plugin Hearth knows",
        ),
        (
            ".:53 {\n    forward . 192.0.2.1 {\n        next NXDOMAIN\n    }\n}\n",
            3,
            "forward: option `next` has no Hearth equivalent",
        ),
        (
            ".:53 {\n    forward . 192.0.2.1\n    cache 30 {\n        disable denial\n    }\n}\n",
            4,
            "cache: option `disable`",
        ),
        (
            ".:53 {\n    forward . 192.0.2.1\n    import custom/*.override\n}\n",
            3,
            "`import` is not supported",
        ),
        ("import common.conf\n", 1, "`import` is not supported"),
        (
            ".:53 {\n    forward . {$UPSTREAM}\n}\n",
            2,
            "\"{$UPSTREAM}\" names an environment variable",
        ),
        (
            ".:53 {\n    forward . 192.0.2.1\n}\nexample.org:5353 {\n    forward . 192.0.2.2\n}\n",
            4,
            "server block for example.org listens on port 5353, the `.` block (line 1) on 53",
        ),
        (
            ".:53 {\n    forward . 192.0.2.1\n}\nexample.org {\n    forward . 192.0.2.2\n    hosts {\n        fallthrough\n    }\n}\n",
            6,
            "the block for example.org has `hosts`",
        ),
        (
            ".:53 {\n    forward . 192.0.2.1\n    cache 30\n}\nexample.org {\n    forward . 192.0.2.2\n}\n",
            5,
            "the block for example.org has no cache",
        ),
        (
            "example.org {\n    forward . 192.0.2.2\n}\n",
            1,
            "no `.` server block",
        ),
        (
            ".:53 {\n    kubernetes cluster.local {\n        fallthrough\n    }\n    forward . 192.0.2.1\n}\n",
            3,
            "kubernetes: `fallthrough` for the cluster domain",
        ),
        (
            ".:53 {\n    kubernetes cluster.local in-addr.arpa\n    forward . 192.0.2.1\n}\n",
            2,
            "kubernetes: reverse zones in-addr.arpa without `fallthrough`",
        ),
        (
            ".:53 {\n    hosts /etc/hosts\n    forward . 192.0.2.1\n}\n",
            2,
            "hosts: without `fallthrough`",
        ),
        (
            ".:53 {\n    hosts {\n        192.0.2.7 printer.lan\n        fallthrough\n    }\n    forward . 192.0.2.1\n}\n",
            2,
            "hosts: inline entries: Hearth reads hosts files only; run with --inline-hosts FILE",
        ),
        (
            ".:53 {\n    acl {\n        allow net 10.0.0.0/8\n        block net 10.1.0.0/16\n    }\n    forward . 192.0.2.1\n}\n",
            4,
            "acl: 10.1.0.0/16 is inside 10.0.0.0/8 (line 3)",
        ),
        (
            ".:53 {\n    forward . 192.0.2.1 {\n        except internal.example\n    }\n}\n",
            3,
            "forward: `except`",
        ),
        (
            ".:53 {\n    bind eth0\n    forward . 192.0.2.1\n}\n",
            2,
            "bind: \"eth0\" is not an IP address",
        ),
        (".:53 {\n    forward . 192.0.2.1\n", 1, "this `{` is never closed"),
        (
            ".:53 {\n    kubernetes cluster.local\n}\n",
            1,
            "the `.` block has no `forward .`",
        ),
        (
            "tls://.:853 {\n    forward . 192.0.2.1\n}\n",
            1,
            "server block \"tls://.:853\": tls:// listeners",
        ),
    ];
    for (text, line, reason) in cases {
        let error = error_of(text);
        assert_eq!(error.line, *line, "{text:?}: {error}");
        assert!(
            error.kind.to_string().starts_with(reason),
            "{text:?}\n  gave {error}\n  expected {reason:?}"
        );
    }
}

#[test]
fn dropped_plugins_are_said_to_be_dropped() {
    let imported = import(
        ".:53 {\n    debug\n    bufsize 512\n    errors\n    forward . 192.0.2.1\n}\n",
        &ImportOptions::default(),
    )
    .unwrap();
    assert!(imported.toml.contains("Corefile line 2: `debug`: dropped"));
    assert!(imported
        .toml
        .contains("Corefile line 3: `bufsize 512`: dropped"));
}

#[test]
fn parser_reads_blocks_comments_quotes_and_commas() {
    let blocks = parse(
        "# top\nexample.org:53, example.net:53 { # open\n    template IN A {\n        answer \"{{ .Name }} 60 IN A 192.0.2.1\" # a comment\n    }\n    health { lameduck 5s }\n}\n",
    )
    .unwrap();
    assert_eq!(blocks.len(), 1);
    let keys: Vec<&str> = blocks[0].keys.iter().map(|k| k.text.as_str()).collect();
    assert_eq!(keys, ["example.org:53", "example.net:53"]);
    let template = &blocks[0].directives[0];
    assert_eq!(template.line, 3);
    assert_eq!(
        template.block[0].args[0].text,
        "{{ .Name }} 60 IN A 192.0.2.1"
    );
    assert_eq!(template.block[0].line, 4);
    let health = &blocks[0].directives[1];
    assert_eq!(health.block[0].name, "lameduck");
    assert_eq!(health.block[0].arg_texts(), ["5s"]);
}
