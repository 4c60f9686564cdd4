//! `forward` and `cache`: the upstreams (`[forward]`, `[[forward.zone]]`) and the answer cache.

use std::str::FromStr;

use super::parse::Directive;
use super::render::Plan;
use super::CorefileError;
use crate::config::values::UpstreamSpec;

/// A Go duration (`5s`, `1m30s`, `500ms`) as a Hearth duration string.
pub fn duration(text: &str, option: &Directive, plugin: &str) -> Result<String, CorefileError> {
    humantime::parse_duration(text)
        .map(|_| text.to_owned())
        .map_err(|error| {
            CorefileError::unsupported(
                option.line,
                plugin,
                format!("{text:?} is not a duration: {error}"),
            )
        })
}

/// What a `forward` says, in Hearth's terms.
#[derive(Debug, Default)]
struct Forward {
    /// `None`: `/etc/resolv.conf`, which Hearth reads when `upstreams` is left out.
    upstreams: Option<Vec<String>>,
    policy: Option<String>,
    max_concurrent: Option<i64>,
    health_check: Option<String>,
    tls_ca: Option<String>,
    /// One comment per option, for the key's or the table's comment.
    notes: Vec<String>,
}

fn read_forward(directive: &Directive) -> Result<Forward, CorefileError> {
    let line = directive.line;
    let mut forward = Forward::default();
    let mut force_tcp = false;
    let mut server_name: Option<String> = None;
    for option in &directive.block {
        let args = option.arg_texts();
        let head = format!("Corefile line {}: `{}`", option.line, option.normalized());
        match (option.name.as_str(), args.as_slice()) {
            ("force_tcp", []) => {
                force_tcp = true;
                forward.notes.push(format!("{head}: plain upstreams are asked over TCP only (tcp://)."));
            }
            ("prefer_udp", []) => forward.notes.push(format!("{head}: Hearth's way already: UDP, TCP when a reply is truncated.")),
            ("policy", [policy @ ("random" | "round_robin" | "sequential")]) => {
                forward.policy = Some((*policy).to_owned());
                forward.notes.push(format!("{head}."));
            }
            ("max_concurrent", [count]) => {
                let count: i64 = count.parse().map_err(|_| CorefileError::unsupported(option.line, "forward", format!("max_concurrent {count:?} is not a number")))?;
                forward.max_concurrent = Some(count);
                forward.notes.push(format!("{head}: beyond it, REFUSED, as CoreDNS."));
            }
            ("health_check", [interval, rest @ ..]) => {
                forward.health_check = Some(duration(interval, option, "forward")?);
                let mut note = format!("{head}: how often an upstream marked down is probed.");
                if !rest.is_empty() {
                    note.push_str(" Hearth probes with `. NS` (with recursion desired): the options after the interval are not kept.");
                }
                forward.notes.push(note);
            }
            ("tls", []) => forward.notes.push(format!("{head}: the system's CA roots.")),
            ("tls", [ca]) => {
                forward.tls_ca = Some((*ca).to_owned());
                forward.notes.push(format!("{head}: the CA certificates TLS upstreams are checked against."));
            }
            ("tls", _) => return Err(CorefileError::unsupported(option.line, "forward", "tls with a client certificate: Hearth does not present one to upstreams")),
            ("tls_servername", [name]) => {
                server_name = Some((*name).to_owned());
                forward.notes.push(format!("{head}: the name after `#` in each tls:// upstream."));
            }
            ("expire", [_]) => forward.notes.push(format!("{head}: dropped; how long CoreDNS keeps a connection open has no effect on answers.")),
            ("max_fails", [_]) => forward.notes.push(format!("{head}: Hearth marks an upstream down after 2 failures in a row; the count is not configurable.")),
            ("except", _) => return Err(CorefileError::unsupported(option.line, "forward", "`except`: names CoreDNS passes to the next plugin (or fails); in Hearth, list them as [[forward.zone]] with their own upstreams instead")),
            (name, _) => return Err(CorefileError::unsupported(option.line, "forward", format!("option `{name}` has no Hearth equivalent"))),
        }
    }
    let destinations = directive.args.iter().skip(1).collect::<Vec<_>>();
    if destinations.is_empty() {
        return Err(CorefileError::unsupported(line, "forward", "no upstream"));
    }
    if destinations
        .iter()
        .any(|d| d.text.starts_with('/') || d.text.starts_with('.'))
    {
        if let [only] = destinations.as_slice() {
            if only.text == "/etc/resolv.conf" {
                if force_tcp {
                    return Err(CorefileError::unsupported(line, "forward", "force_tcp with /etc/resolv.conf: Hearth takes resolv.conf's nameservers as plain upstreams; list them as tcp://IP instead"));
                }
                return Ok(forward);
            }
        }
        return Err(CorefileError::unsupported(line, "forward", "a resolv.conf other than /etc/resolv.conf, or one mixed with addresses: Hearth reads /etc/resolv.conf only, when forward.upstreams is left out"));
    }
    let mut upstreams = Vec::new();
    for destination in destinations {
        let text = destination
            .text
            .strip_prefix("dns://")
            .unwrap_or(&destination.text);
        let spec = if let Some(address) = text.strip_prefix("tls://") {
            match &server_name {
                Some(name) => format!("tls://{address}#{name}"),
                None => format!("tls://{address}"),
            }
        } else if force_tcp {
            format!("tcp://{text}")
        } else {
            text.to_owned()
        };
        UpstreamSpec::from_str(&spec).map_err(|error| {
            CorefileError::unsupported(
                destination.line,
                "forward",
                format!("upstream {:?}: {error}", destination.text),
            )
        })?;
        upstreams.push(spec);
    }
    forward.upstreams = Some(upstreams);
    Ok(forward)
}

/// `forward . ...` in the `.` block: `[forward]`.
pub fn forward_default(directive: &Directive, plan: &mut Plan) -> Result<(), CorefileError> {
    let forward = read_forward(directive)?;
    let head = format!(
        "Corefile line {}: `forward {}`",
        directive.line,
        directive.arg_texts().join(" ")
    );
    match &forward.upstreams {
        None => plan.note("forward", format!("{head}: forward.upstreams is left out, so Hearth takes the nameservers of /etc/resolv.conf (read once at start; an address that is Hearth itself is left out).")),
        Some(list) => plan.set("forward", "upstreams", list.iter().map(|u| toml::Value::from(u.as_str())).collect::<Vec<_>>(), format!("{head}.")),
    }
    if !forward.notes.is_empty() {
        plan.note("forward", forward.notes.join(" "));
    }
    match forward.policy {
        Some(policy) => plan.set(
            "forward",
            "policy",
            policy,
            format!("{head}: its `policy`."),
        ),
        None => plan.set(
            "forward",
            "policy",
            "random",
            format!("{head}: no `policy`, so CoreDNS's default, random (Hearth's is sequential)."),
        ),
    }
    match forward.max_concurrent {
        Some(count) => plan.set("forward", "max_concurrent", count, format!("{head}: its `max_concurrent`; beyond it, REFUSED, as CoreDNS.")),
        None => plan.note("forward", format!("{head}: no `max_concurrent`, so CoreDNS had no limit; Hearth's default, 1000 upstream queries in flight, applies (up to 100000 may be set).")),
    }
    if let Some(interval) = forward.health_check {
        plan.set(
            "forward",
            "health_check",
            interval,
            format!("{head}: its `health_check`."),
        );
    }
    if let Some(ca) = forward.tls_ca {
        plan.set(
            "forward",
            "tls_ca",
            ca,
            format!("{head}: its `tls` CA file."),
        );
    }
    Ok(())
}

/// `forward` of a stub domain: one `[[forward.zone]]`.
pub fn forward_zone(
    directive: &Directive,
    zone: &str,
    block_line: usize,
    plan: &mut Plan,
) -> Result<(), CorefileError> {
    let from = directive
        .args
        .first()
        .map(|a| a.text.trim_end_matches('.').to_ascii_lowercase())
        .unwrap_or_default();
    if from != "." && !from.is_empty() && from != zone && !from.ends_with(&format!(".{zone}")) {
        return Err(CorefileError::unsupported(
            directive.line,
            "forward",
            format!("forwards {from}, which is not {zone}, its server block's zone"),
        ));
    }
    let forward = read_forward(directive)?;
    let Some(upstreams) = forward.upstreams else {
        return Err(CorefileError::unsupported(
            directive.line,
            "forward",
            format!("{zone} to /etc/resolv.conf: a [[forward.zone]] needs its upstreams listed"),
        ));
    };
    let name = if from == "." || from.is_empty() {
        zone.to_owned()
    } else {
        from
    };
    let mut comment = format!(
        "Corefile line {block_line}: the server block for {zone}, which forwards (line {}: `forward {}`): a stub domain.",
        directive.line,
        directive.arg_texts().join(" ")
    );
    if !forward.notes.is_empty() {
        comment.push(' ');
        comment.push_str(&forward.notes.join(" "));
    }
    plan.push_array("forward.zone", comment);
    plan.set_last("forward.zone", "name", name);
    plan.set_last(
        "forward.zone",
        "upstreams",
        upstreams
            .into_iter()
            .map(toml::Value::from)
            .collect::<Vec<_>>(),
    );
    plan.set_last(
        "forward.zone",
        "policy",
        forward.policy.unwrap_or_else(|| "random".to_owned()),
    );
    if let Some(count) = forward.max_concurrent {
        plan.set_last("forward.zone", "max_concurrent", count);
    }
    if let Some(interval) = forward.health_check {
        plan.set_last("forward.zone", "health_check", interval);
    }
    if let Some(ca) = forward.tls_ca {
        if plan.has("forward", "tls_ca") {
            return Err(CorefileError::unsupported(
                directive.line,
                "forward",
                "a second `tls CA`: Hearth has one forward.tls_ca for every upstream",
            ));
        }
        plan.set(
            "forward",
            "tls_ca",
            ca,
            format!(
                "Corefile line {}: the CA certificates TLS upstreams are checked against.",
                directive.line
            ),
        );
    }
    Ok(())
}

/// CoreDNS's cache defaults (plugin/cache/README.md).
const SUCCESS_MAX_TTL: u64 = 3600;
const DENIAL_MAX_TTL: u64 = 1800;
const MIN_TTL: u64 = 5;
const CAPACITY: u64 = 9984;

/// `cache [TTL] [ZONES...] { success; denial; prefetch; serve_stale; ... }`: `[cache]`.
pub fn cache(directive: &Directive, plan: &mut Plan) -> Result<(), CorefileError> {
    let line = directive.line;
    let head = format!(
        "Corefile line {line}: `cache {}`",
        directive.arg_texts().join(" ")
    );
    let args = directive.arg_texts();
    let mut zones = args.as_slice();
    let mut success_max = SUCCESS_MAX_TTL;
    let mut denial_max = DENIAL_MAX_TTL;
    if let Some(first) = args.first() {
        if let Ok(ttl) = first.parse::<u64>() {
            success_max = ttl;
            denial_max = ttl;
            zones = &args[1..];
        }
    }
    if zones.iter().any(|z| *z != ".") {
        return Err(CorefileError::unsupported(
            line,
            "cache",
            "caching some zones only: Hearth caches every forwarded answer",
        ));
    }
    let (mut success_min, mut denial_min) = (MIN_TTL, MIN_TTL);
    let mut capacity: Option<(u64, u64)> = None;
    let mut prefetch = false;
    let mut serve_stale: Option<String> = None;
    let mut notes = Vec::new();
    let number = |text: &str, option: &Directive| -> Result<u64, CorefileError> {
        text.parse::<u64>().map_err(|_| {
            CorefileError::unsupported(option.line, "cache", format!("{text:?} is not a number"))
        })
    };
    for option in &directive.block {
        let option_args = option.arg_texts();
        let option_head = format!("line {}: `{}`", option.line, option.normalized());
        match (option.name.as_str(), option_args.as_slice()) {
            (kind @ ("success" | "denial"), [cap, rest @ ..]) if rest.len() <= 2 => {
                let cap = number(cap, option)?;
                let (s, d) = capacity.unwrap_or((CAPACITY, CAPACITY));
                capacity = Some(if kind == "success" { (cap, d) } else { (s, cap) });
                if let Some(ttl) = rest.first() {
                    let ttl = number(ttl, option)?;
                    if kind == "success" { success_max = ttl } else { denial_max = ttl }
                }
                if let Some(min) = rest.get(1) {
                    let min = number(min, option)?;
                    if kind == "success" { success_min = min } else { denial_min = min }
                }
                notes.push(option_head);
            }
            ("prefetch", _) => {
                prefetch = true;
                notes.push(format!("{option_head}: Hearth refreshes popular answers in the last tenth of their TTL; CoreDNS's amount, duration and percentage are not kept"));
            }
            ("serve_stale", rest) if rest.len() <= 2 => {
                let stale = match rest.first() {
                    Some(text) => duration(text, option, "cache")?,
                    None => "1h".to_owned(),
                };
                match rest.get(1) {
                    None | Some(&"immediate") => notes.push(format!("{option_head}: Hearth serves a stale answer only once every upstream has failed (CoreDNS's `verify`), where `immediate` serves it first and refreshes it after")),
                    Some(&"verify") => notes.push(format!("{option_head}: the same as Hearth's")),
                    Some(other) => return Err(CorefileError::unsupported(option.line, "cache", format!("serve_stale mode {other:?}"))),
                }
                serve_stale = Some(stale);
            }
            (name, _) => return Err(CorefileError::unsupported(option.line, "cache", format!("option `{name}` has no Hearth equivalent (Hearth caches failures by RFC 9520 and has no per-kind switches)"))),
        }
    }
    if success_min != denial_min {
        return Err(CorefileError::unsupported(line, "cache", format!("different minimum TTLs for success ({success_min}) and denial ({denial_min}): Hearth has one cache.min_ttl")));
    }
    let detail = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    };
    plan.set(
        "cache",
        "max_ttl",
        format!("{success_max}s"),
        format!("{head}{detail}: answers are kept at most {success_max} s."),
    );
    plan.set(
        "cache",
        "negative_max_ttl",
        format!("{denial_max}s"),
        format!("{head}: NXDOMAIN and NODATA at most {denial_max} s."),
    );
    plan.set(
        "cache",
        "min_ttl",
        format!("{success_min}s"),
        format!("{head}: CoreDNS keeps every answer at least {success_min} s."),
    );
    match capacity {
        Some((success, denial)) => plan.set("cache", "capacity", i64::try_from(success + denial).unwrap_or(i64::MAX), format!("{head}: {success} answers and {denial} denials in CoreDNS; one cache of both in Hearth.")),
        None => plan.note("cache", format!("{head}: CoreDNS keeps 9,984 answers and 9,984 denials; Hearth's one cache of 100,000 entries (bounded by cache.max_bytes) is kept.")),
    }
    plan.set(
        "cache",
        "prefetch",
        prefetch,
        if prefetch {
            format!("{head}: prefetch.")
        } else {
            format!("{head}: no `prefetch`, so none, as CoreDNS (Hearth's default is to prefetch).")
        },
    );
    let stale_comment = if serve_stale.is_some() {
        format!("{head}: serve_stale.")
    } else {
        format!("{head}: no `serve_stale`, so stale answers are never served, as CoreDNS (Hearth's default is 1h).")
    };
    plan.set(
        "cache",
        "serve_stale",
        serve_stale.unwrap_or_else(|| "0s".to_owned()),
        stale_comment,
    );
    Ok(())
}
