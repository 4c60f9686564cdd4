//! Each plugin of the `.` block mapped to Hearth's keys, with the comment that says how.
//! `forward` and `cache` are in [`super::upstreams`] (they are the biggest).

use std::net::{IpAddr, SocketAddr};

use super::parse::{Directive, ServerBlock};
use super::render::Plan;
use super::upstreams;
use super::{CorefileError, ImportOptions};

/// What the `.` block set that a stub-domain block must agree with, and what `finish` needs.
#[derive(Debug, Default)]
pub struct Shared {
    /// The `.` block's `cache`, normalized (see [`normalized`]).
    pub cache: Option<String>,
    pub cache_line: Option<usize>,
    /// Addresses of `health`, `ready` and `prometheus` in the `.` block.
    pub admin_addresses: Vec<String>,
    /// The `.` block's `bind`, normalized.
    pub bind: Option<String>,
    /// Sources in the order: `hosts`, `kubernetes`, `forward`.
    pub files: bool,
    pub zones: bool,
    /// The line of `forward .` in the `.` block.
    pub forward_default: Option<usize>,
    /// Whether `forward` in the `.` block named other zones.
    pub forward_zones: bool,
    pub root_line: usize,
}

/// A directive as text without its lines, to compare two blocks' settings.
pub fn normalized(directive: &Directive) -> String {
    directive.normalized()
}

/// Refuses any option block on a plugin that takes none.
fn no_block(directive: &Directive) -> Result<(), CorefileError> {
    match directive.block.first() {
        Some(option) => Err(CorefileError::unsupported(
            option.line,
            &directive.name,
            format!("option `{}` has no Hearth equivalent", option.name),
        )),
        None => Ok(()),
    }
}

/// `line N: plugin` for comments.
fn from(directive: &Directive) -> String {
    format!(
        "Corefile line {}: `{}`",
        directive.line,
        normalized_head(directive)
    )
}

/// The directive's first line, as written (name and arguments).
fn normalized_head(directive: &Directive) -> String {
    let mut text = directive.name.clone();
    for arg in &directive.args {
        text.push(' ');
        text.push_str(&arg.text);
    }
    text
}

/// `:8080`, `0.0.0.0:8080`, `localhost:9153`, `[::]:8080` as an `IP:port`.
fn address(text: &str, directive: &Directive) -> Result<String, CorefileError> {
    let text = text
        .strip_prefix("localhost")
        .map_or_else(|| text.to_owned(), |rest| format!("127.0.0.1{rest}"));
    let text = if text.starts_with(':') {
        format!("0.0.0.0{text}")
    } else {
        text
    };
    text.parse::<SocketAddr>()
        .map(|address| address.to_string())
        .map_err(|_| {
            CorefileError::unsupported(
                directive.line,
                &directive.name,
                format!("{text:?} is not an IP:port (Hearth takes addresses, not host names)"),
            )
        })
}

/// The address `health`, `ready` or `prometheus` serves on, with CoreDNS's defaults.
pub fn admin_address(directive: &Directive) -> Result<String, CorefileError> {
    let default = match directive.name.as_str() {
        "health" => ":8080",
        "ready" => ":8181",
        _ => "localhost:9153",
    };
    match directive.args.as_slice() {
        [] => address(default, directive),
        [one] => address(&one.text, directive),
        [_, extra, ..] => Err(CorefileError::unsupported(
            extra.line,
            &directive.name,
            "one address at most",
        )),
    }
}

/// The `.` block: every plugin mapped, or an error.
pub fn root_block(
    block: &ServerBlock,
    port: u16,
    plan: &mut Plan,
    options: &ImportOptions,
) -> Result<Shared, CorefileError> {
    let mut shared = Shared {
        root_line: block.line,
        ..Shared::default()
    };
    let find = |name: &str| block.directives.iter().find(|d| d.name == name);
    for directive in &block.directives {
        if let Some(first) = block
            .directives
            .iter()
            .find(|d| d.name == directive.name && !std::ptr::eq(*d, directive))
        {
            if directive.name != "forward" && first.line < directive.line {
                return Err(CorefileError::conflict(
                    directive.line,
                    format!(
                        "`{}` appears twice in the `.` block (first on line {})",
                        directive.name, first.line
                    ),
                ));
            }
        }
    }

    // Listen addresses: `bind`, else every address, as CoreDNS.
    match find("bind") {
        Some(bind) => {
            no_block(bind)?;
            let mut listen = Vec::new();
            for arg in &bind.args {
                let ip: IpAddr = arg.text.parse().map_err(|_| {
                    CorefileError::unsupported(
                        arg.line,
                        "bind",
                        format!("{:?} is not an IP address: Hearth listens on addresses, not interface names", arg.text),
                    )
                })?;
                listen.push(toml::Value::from(SocketAddr::new(ip, port).to_string()));
            }
            if listen.is_empty() {
                return Err(CorefileError::unsupported(bind.line, "bind", "no address"));
            }
            shared.bind = Some(normalized(bind));
            plan.set(
                "server",
                "listen",
                listen,
                format!("{}: the same addresses, port {port} from the server block (line {}).", from(bind), block.line),
            );
        }
        None => plan.set(
            "server",
            "listen",
            vec![toml::Value::from(format!("0.0.0.0:{port}"))],
            format!(
                "Corefile line {}: the server block's port, {port}, on every address. CoreDNS binds IPv6 too: add \"[::]:{port}\" on dual-stack pods.",
                block.line
            ),
        ),
    }

    let mut admin_line: Option<(String, String)> = None;
    for directive in &block.directives {
        let line = directive.line;
        match directive.name.as_str() {
            "bind" | "forward" | "cache" => {}
            "errors" => plan.header.push(format!(
                "{}: dropped; Hearth always logs errors to stderr (`--log-format json` for one JSON object per line).",
                from(directive)
            )),
            "debug" | "pprof" => {
                plan.header.push(format!(
                    "{}: dropped; a debugging aid of CoreDNS's own, with no effect on answers.",
                    from(directive)
                ));
            }
            "bufsize" => plan.header.push(format!(
                "{}: dropped; it lowers the EDNS buffer size, which changes when a UDP answer is truncated (the client then asks over TCP), never the answer. Hearth advertises 1232 bytes.",
                from(directive)
            )),
            "loop" => {
                no_block(directive)?;
                plan.header.push(format!(
                    "{}: always on in Hearth: each upstream is probed at start, and one that leads back is disabled with an error in the log (CoreDNS exits instead).",
                    from(directive)
                ));
            }
            "health" => {
                let address = admin_address(directive)?;
                shared.admin_addresses.push(address.clone());
                let mut lameduck = "0s".to_owned();
                for option in &directive.block {
                    match (option.name.as_str(), option.arg_texts().as_slice()) {
                        ("lameduck", [duration]) => {
                            lameduck = upstreams::duration(duration, option, "health")?
                        }
                        _ => {
                            return Err(CorefileError::unsupported(
                                option.line,
                                "health",
                                format!("option `{}` has no Hearth equivalent", normalized(option)),
                            ))
                        }
                    }
                }
                plan.set(
                    "server",
                    "lameduck",
                    lameduck.clone(),
                    if lameduck == "0s" {
                        format!("{}: no lameduck, so Hearth stops at once on SIGTERM as CoreDNS did (Hearth's default is 5s).", from(directive))
                    } else {
                        format!("{}: lameduck {lameduck}; /ready fails during it, while queries are still answered.", from(directive))
                    },
                );
                admin_line = Some((address, from(directive)));
            }
            "ready" => {
                no_block(directive)?;
                let address = admin_address(directive)?;
                shared.admin_addresses.push(address.clone());
                if admin_line.is_none() || find("health").is_none() {
                    admin_line = Some((address, from(directive)));
                }
            }
            "prometheus" => {
                no_block(directive)?;
                let address = admin_address(directive)?;
                shared.admin_addresses.push(address.clone());
                if find("health").is_none() && find("ready").is_none() {
                    admin_line = Some((address, from(directive)));
                }
                plan.set(
                    "admin",
                    "metrics",
                    "coredns",
                    format!("{}: /metrics with CoreDNS's metric names and labels, so its dashboards and alerts keep working.", from(directive)),
                );
            }
            "kubernetes" => {
                kubernetes(directive, block, plan)?;
                shared.zones = true;
            }
            "autopath" => {
                no_block(directive)?;
                match directive.arg_texts().as_slice() {
                    ["@kubernetes"] if find("kubernetes").is_some() => plan.set(
                        "kubernetes",
                        "autopath",
                        true,
                        format!("{}: a pod's search-path walk answered in one round trip.", from(directive)),
                    ),
                    ["@kubernetes"] => return Err(CorefileError::unsupported(line, "autopath", "@kubernetes without a `kubernetes` plugin in the block")),
                    _ => return Err(CorefileError::unsupported(line, "autopath", "only `autopath @kubernetes` has a Hearth equivalent (kubernetes.autopath); a resolv.conf search list does not")),
                }
            }
            "hosts" => {
                hosts(directive, plan, options)?;
                shared.files = true;
            }
            "reload" => plan.set(
                "server",
                "watch_config",
                true,
                format!("{}: Hearth checks --config every second (a ConfigMap volume's symlink swap included) and re-reads it when it changed, where CoreDNS polls every 30 s.", from(directive)),
            ),
            "loadbalance" => {
                no_block(directive)?;
                match directive.arg_texts().as_slice() {
                    [] | ["round_robin"] => plan.set(
                        "resolve",
                        "rotate",
                        true,
                        format!("{}: A and AAAA records rotated between answers (CoreDNS shuffles them at random; Hearth turns them by one record per answer, which gives every order in turn).", from(directive)),
                    ),
                    _ => return Err(CorefileError::unsupported(line, "loadbalance", "only round_robin has a Hearth equivalent (resolve.rotate)")),
                }
            }
            "log" => log(directive, plan)?,
            "acl" => acl(directive, plan)?,
            other => return Err(no_equivalent(directive, other)),
        }
    }
    if find("reload").is_none() {
        plan.set(
            "server",
            "watch_config",
            false,
            "The Corefile has no `reload`: the file is not watched (Hearth's default is to watch it); SIGHUP re-reads it.",
        );
    }
    if let Some((address, source)) = admin_line {
        let others: Vec<&str> = ["health", "ready", "prometheus"]
            .into_iter()
            .filter(|name| find(name).is_some())
            .collect();
        plan.set(
            "admin",
            "listen",
            address,
            format!(
                "{source}: Hearth serves /health, /ready and /metrics on this one address (the Corefile had {}); point the Deployment's probes and the metrics Service here.",
                others.join(", ")
            ),
        );
    }
    if find("acl").is_none() {
        plan.header.push(
            "The Corefile has no `acl`, so CoreDNS answered every client. Hearth without [access] answers loopback, RFC 1918, 100.64.0.0/10, link-local and fc00::/7 and refuses the rest, so it is not an open resolver: add an [access] table with allow = [...] for a cluster's global IPv6 ranges.".to_owned(),
        );
    }
    if let Some(cache) = find("cache") {
        upstreams::cache(cache, plan)?;
        shared.cache = Some(normalized(cache));
        shared.cache_line = Some(cache.line);
    } else {
        plan.set(
            "cache",
            "capacity",
            0,
            format!("Corefile line {}: the `.` block has no `cache`, so nothing is cached, as in CoreDNS.", block.line),
        );
    }
    for forward in block.directives.iter().filter(|d| d.name == "forward") {
        match forward.args.first().map(|a| a.text.as_str()) {
            Some(".") => {
                if let Some(first) = shared.forward_default {
                    return Err(CorefileError::conflict(
                        forward.line,
                        format!("a second `forward .` (the first is on line {first})"),
                    ));
                }
                upstreams::forward_default(forward, plan)?;
                shared.forward_default = Some(forward.line);
            }
            Some(zone) => {
                let zone = zone.trim_end_matches('.').to_ascii_lowercase();
                forward_zone(forward, &zone, forward.line, plan)?;
                shared.forward_zones = true;
            }
            None => {
                return Err(CorefileError::unsupported(
                    forward.line,
                    "forward",
                    "no zone and no upstream",
                ))
            }
        }
    }
    Ok(shared)
}

/// `forward` of a stub domain (or `forward ZONE ...` in the `.` block): one `[[forward.zone]]`.
pub fn forward_zone(
    forward: &Directive,
    zone: &str,
    block_line: usize,
    plan: &mut Plan,
) -> Result<(), CorefileError> {
    upstreams::forward_zone(forward, zone, block_line, plan)
}

/// The order, from which sources the `.` block had.
pub fn finish(plan: &mut Plan, shared: &Shared, stubs: bool) -> Result<(), CorefileError> {
    if shared.forward_default.is_none() {
        return Err(CorefileError::conflict(
            shared.root_line,
            "the `.` block has no `forward .`: CoreDNS answers SERVFAIL for names no plugin has, while Hearth would answer NXDOMAIN; add `forward . /etc/resolv.conf` (or the upstreams)",
        ));
    }
    let mut order = Vec::new();
    let mut how = Vec::new();
    if shared.files {
        order.push(toml::Value::from("files"));
        how.push("files (hosts)");
    }
    if shared.zones {
        order.push(toml::Value::from("zones"));
        how.push("zones (kubernetes)");
    }
    order.push(toml::Value::from("dns"));
    how.push(if stubs || shared.forward_zones {
        "dns (forward, and the stub domains' [[forward.zone]])"
    } else {
        "dns (forward)"
    });
    plan.set(
        "resolve",
        "order",
        order,
        format!(
            "The `.` block's plugins in the order CoreDNS runs them (plugin.cfg): {}.{}",
            how.join(", then "),
            if shared.files {
                ""
            } else {
                " No `hosts`, so no hosts files: a pod's /etc/hosts names the pod itself."
            }
        ),
    );
    Ok(())
}

/// The error for a plugin Hearth has nothing for, with the closest thing it has.
fn no_equivalent(directive: &Directive, name: &str) -> CorefileError {
    let reason = match name {
        "rewrite" => "Hearth does not rewrite questions or answers; serve the other name from a zone file in [zones] (a CNAME), or resolve it where it lives",
        "template" => "Hearth does not synthesize answers from templates; write the records into a zone file (zones.directory)",
        "file" | "auto" | "secondary" => "Hearth serves zone files from one directory (zones.directory, each file `<origin>.zone`); put the zone file there, and the block's zone is then answered from it",
        "whoami" => "Hearth does not answer with the client's address",
        "any" => "Hearth does not answer ANY questions with HINFO (RFC 8482) for forwarded names",
        "k8s_external" => "Hearth does not publish Services' external addresses under another zone",
        "dnssec" | "sign" => "Hearth does not sign answers (DNSSEC)",
        "chaos" => "Hearth does not answer CH-class version.bind or hostname.bind",
        "import" => "`import` reads other files",
        "minimal" | "header" | "nsid" | "local" | "cancel" | "timeouts" | "tsig" | "transfer" | "view" | "metadata" | "trace" | "dnstap" | "grpc" | "etcd" | "route53" | "azure" | "clouddns" | "federation" | "erratic" | "on" | "root" => "Hearth has nothing that does this",
        _ => "not a plugin Hearth knows",
    };
    CorefileError::no_equivalent(directive.line, name, reason)
}

/// `kubernetes [ZONES...] { options }`: the cluster zone.
fn kubernetes(
    directive: &Directive,
    block: &ServerBlock,
    plan: &mut Plan,
) -> Result<(), CorefileError> {
    let line = directive.line;
    let mut domain: Option<String> = None;
    let mut reverse: Vec<String> = Vec::new();
    let zones: Vec<String> = if directive.args.is_empty() {
        block.keys.iter().map(|k| k.text.clone()).collect()
    } else {
        directive.args.iter().map(|a| a.text.clone()).collect()
    };
    for zone in &zones {
        let zone = zone
            .split(':')
            .next()
            .unwrap_or_default()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if zone.ends_with("in-addr.arpa") || zone.ends_with("ip6.arpa") {
            reverse.push(zone);
        } else if zone.is_empty() || zone == "." {
            return Err(CorefileError::unsupported(line, "kubernetes", "the root as the cluster zone: Hearth's kubernetes.domain is one domain, not the root"));
        } else if let Some(first) = &domain {
            return Err(CorefileError::unsupported(line, "kubernetes", format!("a second cluster zone, {zone} (the first is {first}): Hearth's kubernetes.domain is one domain")));
        } else {
            domain = Some(zone);
        }
    }
    let Some(domain) = domain else {
        return Err(CorefileError::unsupported(
            line,
            "kubernetes",
            "no cluster domain among its zones",
        ));
    };
    plan.set(
        "kubernetes",
        "domain",
        domain.clone(),
        format!("{}: the cluster domain.", from(directive)),
    );
    let mut api = (
        "in-cluster".to_owned(),
        format!(
            "{}: the pod's service account, as CoreDNS without `endpoint` or `kubeconfig`.",
            from(directive)
        ),
    );
    let mut fallthrough_reverse = false;
    let mut pods = "disabled".to_owned();
    let mut pods_comment = format!(
        "{}: no `pods` option, so no pod records (CoreDNS's default).",
        from(directive)
    );
    let mut ttl = "5".to_owned();
    let mut ttl_comment = format!(
        "{}: no `ttl` option: 5 s, CoreDNS's default and Hearth's.",
        from(directive)
    );
    for option in &directive.block {
        let args = option.arg_texts();
        let head = format!("Corefile line {}: `{}`", option.line, normalized(option));
        match (option.name.as_str(), args.as_slice()) {
            ("pods", [mode @ ("disabled" | "insecure" | "verified")]) => {
                pods = (*mode).to_owned();
                pods_comment = format!("{head}: the same mode.");
            }
            ("ttl", [seconds]) => {
                let value: u32 = seconds.parse().map_err(|_| CorefileError::unsupported(option.line, "kubernetes", format!("ttl {seconds:?} is not a number of seconds")))?;
                ttl = value.to_string();
                ttl_comment = format!("{head}.");
            }
            ("fallthrough", zones) => {
                let zones: Vec<String> = zones.iter().map(|z| z.trim_end_matches('.').to_ascii_lowercase()).collect();
                if zones.is_empty() || zones.iter().any(|z| *z == domain || domain.ends_with(&format!(".{z}")) || z == ".") {
                    return Err(CorefileError::unsupported(option.line, "kubernetes", format!("`fallthrough` for the cluster domain {domain}: Hearth answers the cluster domain itself, NXDOMAIN included, and never passes its names on; list only reverse zones")));
                }
                if let Some(other) = zones.iter().find(|z| !z.ends_with("in-addr.arpa") && !z.ends_with("ip6.arpa")) {
                    return Err(CorefileError::unsupported(option.line, "kubernetes", format!("`fallthrough {other}`: only reverse zones fall through in Hearth")));
                }
                fallthrough_reverse = true;
                plan.note("kubernetes", format!("{head}: built in; reverse names the cluster does not have go on down the order."));
            }
            ("endpoint", [url]) => api = ((*url).to_owned(), format!("{head}: the API server's URL (unauthenticated in Hearth, e.g. `kubectl proxy`).")),
            ("kubeconfig", [path]) => api = ((*path).to_owned(), format!("{head}: a kubeconfig, at its current context.")),
            ("upstream" | "resyncperiod", _) => plan.note("kubernetes", format!("{head}: dropped; CoreDNS ignores it too (deprecated).")),
            (name, _) => return Err(CorefileError::unsupported(option.line, "kubernetes", format!("option `{name}` has no Hearth equivalent"))),
        }
    }
    if !reverse.is_empty() && !fallthrough_reverse {
        return Err(CorefileError::unsupported(line, "kubernetes", format!("reverse zones {} without `fallthrough` for them: CoreDNS answers NXDOMAIN for reverse names the cluster lacks, while Hearth passes them on down the order", reverse.join(" "))));
    }
    plan.note(
        "kubernetes",
        if reverse.is_empty() {
            format!("{}: no reverse zones listed, but Hearth answers PTR questions for service and endpoint addresses from the cluster's objects anyway (CoreDNS would have forwarded them).", from(directive))
        } else {
            format!("{}: the reverse zones ({}) are not listed in Hearth: PTR questions for service and endpoint addresses are answered from the cluster's objects.", from(directive), reverse.join(" "))
        },
    );
    plan.set("kubernetes", "api", api.0, api.1);
    plan.set("kubernetes", "pods", pods, pods_comment);
    let ttl: u32 = ttl.parse().unwrap_or(5);
    plan.set("kubernetes", "ttl", i64::from(ttl), ttl_comment);
    Ok(())
}

/// `hosts [FILE [ZONES...]] { entries; options }`: `[files]`.
fn hosts(
    directive: &Directive,
    plan: &mut Plan,
    options: &ImportOptions,
) -> Result<(), CorefileError> {
    let line = directive.line;
    let args = directive.arg_texts();
    let file = args.first().copied().unwrap_or("/etc/hosts");
    let zones: Vec<String> = args
        .iter()
        .skip(1)
        .map(|z| z.trim_end_matches('.').to_ascii_lowercase())
        .filter(|z| !z.is_empty())
        .collect();
    let mut entries = String::new();
    let mut fallthrough = false;
    let mut paths = vec![toml::Value::from(file)];
    let mut path_comment = format!(
        "{}: {file}{}, re-read when it changes.",
        from(directive),
        if args.is_empty() {
            " (the hosts plugin's default file)"
        } else {
            ""
        }
    );
    if !zones.is_empty() {
        path_comment.push_str(&format!(
            " CoreDNS answered from it only names under {}; Hearth answers every name it holds.",
            zones.join(" ")
        ));
    }
    for option in &directive.block {
        let option_args = option.arg_texts();
        let head = format!("Corefile line {}: `{}`", option.line, normalized(option));
        if option.name.parse::<IpAddr>().is_ok() {
            if option_args.is_empty() {
                return Err(CorefileError::unsupported(
                    option.line,
                    "hosts",
                    "an address with no name",
                ));
            }
            for name in &option_args {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if !zones.is_empty()
                    && !zones
                        .iter()
                        .any(|z| name == *z || name.ends_with(&format!(".{z}")))
                {
                    return Err(CorefileError::unsupported(option.line, "hosts", format!("{name} is outside the plugin's zones ({}): CoreDNS never answers it, Hearth would", zones.join(" "))));
                }
            }
            entries.push_str(&format!("{} {}\n", option.name, option_args.join(" ")));
            continue;
        }
        match (option.name.as_str(), option_args.as_slice()) {
            ("ttl", [seconds]) => {
                let ttl: u32 = seconds.parse().map_err(|_| {
                    CorefileError::unsupported(
                        option.line,
                        "hosts",
                        format!("ttl {seconds:?} is not a number of seconds"),
                    )
                })?;
                plan.set("files", "ttl", i64::from(ttl), format!("{head}."));
            }
            ("reload", [duration]) if *duration == "0" || *duration == "0s" => {
                plan.note("files", format!("{head}: CoreDNS then never re-reads the file; Hearth always does (files.reload_interval)."));
            }
            ("reload", [duration]) => {
                let duration = super::upstreams::duration(duration, option, "hosts")?;
                plan.set(
                    "files",
                    "reload_interval",
                    duration,
                    format!("{head}: how often the file is checked for changes."),
                );
            }
            ("fallthrough", zones_through) => {
                if !zones_through.is_empty() {
                    let through: Vec<String> = zones_through
                        .iter()
                        .map(|z| z.trim_end_matches('.').to_ascii_lowercase())
                        .collect();
                    let covered = if zones.is_empty() {
                        through.iter().any(|z| z.is_empty())
                    } else {
                        zones.iter().all(|z| through.contains(z))
                    };
                    if !covered {
                        return Err(CorefileError::unsupported(option.line, "hosts", "`fallthrough` for some zones only: in Hearth every name a hosts file lacks goes on down the order"));
                    }
                }
                fallthrough = true;
            }
            ("no_reverse", []) => {
                return Err(CorefileError::unsupported(
                    option.line,
                    "hosts",
                    "no_reverse: Hearth answers PTR questions for hosts-file addresses",
                ))
            }
            (name, _) => {
                return Err(CorefileError::unsupported(
                    option.line,
                    "hosts",
                    format!("option `{name}` has no Hearth equivalent"),
                ))
            }
        }
    }
    if !fallthrough {
        return Err(CorefileError::unsupported(line, "hosts", "without `fallthrough`, CoreDNS answers SERVFAIL for every name of its zones the file lacks, so nothing after it answers; Hearth passes such names on down the order. Add `fallthrough` if that is what is meant"));
    }
    if !entries.is_empty() {
        let Some(inline) = &options.inline_hosts else {
            return Err(CorefileError::unsupported(line, "hosts", "inline entries: Hearth reads hosts files only; run with --inline-hosts FILE to have them written there"));
        };
        paths.push(toml::Value::from(inline.display().to_string()));
        path_comment.push_str(&format!(
            " The block's inline entries are written to {} (--inline-hosts).",
            inline.display()
        ));
        plan.inline_hosts = Some(entries);
    }
    plan.set("files", "paths", paths, path_comment);
    Ok(())
}

/// `log [NAMES...] [FORMAT] { class CLASSES... }`: one line per query, or none.
fn log(directive: &Directive, plan: &mut Plan) -> Result<(), CorefileError> {
    let mut classes: Vec<String> = vec!["all".to_owned()];
    for option in &directive.block {
        match option.name.as_str() {
            "class" => {
                classes = option
                    .arg_texts()
                    .iter()
                    .map(|c| c.to_ascii_lowercase())
                    .collect()
            }
            name => {
                return Err(CorefileError::unsupported(
                    option.line,
                    "log",
                    format!("option `{name}` has no Hearth equivalent"),
                ))
            }
        }
    }
    let names: Vec<&str> = directive
        .arg_texts()
        .into_iter()
        .filter(|a| !a.contains('{'))
        .collect();
    let format_note = if directive.args.iter().any(|a| a.text.contains('{')) {
        " CoreDNS's custom format is not kept: Hearth writes its own fields."
    } else {
        ""
    };
    let every = classes.iter().any(|c| c == "all" || c == "success");
    let some_names = names.iter().any(|n| *n != ".");
    if every {
        plan.set(
            "log",
            "queries",
            true,
            format!(
                "{}: one line per query (client, name, type, RCODE, duration, source).{}{}",
                from(directive),
                if some_names {
                    " CoreDNS logged only the names listed; Hearth logs every query."
                } else {
                    ""
                },
                format_note
            ),
        );
    } else {
        plan.set("log", "queries", false, format!("{}: CoreDNS logged only answers of class {}; Hearth logs every query or none, and always logs its errors, so query lines stay off.{format_note}", from(directive), classes.join(" ")));
    }
    Ok(())
}

/// `acl [ZONES...] { ACTION [type TYPES...] [net NETWORKS...] }`: `[access]`.
fn acl(directive: &Directive, plan: &mut Plan) -> Result<(), CorefileError> {
    if directive.args.iter().any(|a| a.text != ".") {
        return Err(CorefileError::unsupported(
            directive.line,
            "acl",
            "rules for some zones only: Hearth's [access] decides per client, for every name",
        ));
    }
    let mut rules: Vec<(ipnet::IpNet, &'static str, usize)> = Vec::new();
    for option in &directive.block {
        let action = match option.name.as_str() {
            "allow" => "allow",
            "block" => "refuse",
            "drop" => "deny",
            "filter" => return Err(CorefileError::unsupported(option.line, "acl", "filter (an empty NOERROR answer) has no Hearth equivalent: [access] allows, refuses or drops")),
            name => return Err(CorefileError::unsupported(option.line, "acl", format!("unknown action `{name}`"))),
        };
        let args = option.arg_texts();
        let mut networks: Vec<&str> = Vec::new();
        let mut field = "";
        for arg in args {
            match arg {
                "type" | "net" => field = arg,
                "*" if field == "type" => {}
                _ if field == "type" => {
                    return Err(CorefileError::unsupported(
                        option.line,
                        "acl",
                        format!(
                            "type {arg}: Hearth's [access] decides per client, not per query type"
                        ),
                    ))
                }
                _ if field == "net" => networks.push(arg),
                _ => {
                    return Err(CorefileError::unsupported(
                        option.line,
                        "acl",
                        format!("unexpected {arg:?}"),
                    ))
                }
            }
        }
        if networks.is_empty() || networks.contains(&"*") {
            networks = vec!["0.0.0.0/0", "::/0"];
        }
        for network in networks {
            let parsed: ipnet::IpNet = network
                .parse()
                .or_else(|_| network.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    CorefileError::unsupported(
                        option.line,
                        "acl",
                        format!("{network:?} is not a network"),
                    )
                })?;
            let parsed = parsed.trunc();
            // CoreDNS takes the first rule that matches; Hearth the most specific prefix. They
            // agree unless an earlier rule holds a later, narrower one with another action.
            if let Some((outer, outer_action, outer_line)) =
                rules.iter().find(|(outer, _, _)| outer.contains(&parsed))
            {
                if *outer_action != action || *outer == parsed {
                    return Err(CorefileError::unsupported(option.line, "acl", format!("{parsed} is inside {outer} (line {outer_line}), which CoreDNS matches first; Hearth's most specific prefix would decide otherwise. Put the narrower rule first")));
                }
                continue;
            }
            rules.push((parsed, action, option.line));
        }
    }
    let catch_all = rules.iter().any(|(n, _, _)| n.prefix_len() == 0);
    for action in ["allow", "refuse", "deny"] {
        let mut list: Vec<toml::Value> = rules
            .iter()
            .filter(|(_, a, _)| *a == action)
            .map(|(n, _, _)| toml::Value::from(n.to_string()))
            .collect();
        if action == "allow" && !catch_all {
            list.push(toml::Value::from("0.0.0.0/0"));
            list.push(toml::Value::from("::/0"));
        }
        if !list.is_empty() {
            let how = match action {
                "allow" => {
                    if catch_all {
                        "answered"
                    } else {
                        "answered; with 0.0.0.0/0 and ::/0, since CoreDNS answers a client no rule matches"
                    }
                }
                "refuse" => "REFUSED, as CoreDNS's `block`",
                _ => "dropped without a reply, as CoreDNS's `drop`",
            };
            plan.set(
                "access",
                action,
                list,
                format!("{}: {how}.", from(directive)),
            );
        }
    }
    Ok(())
}
