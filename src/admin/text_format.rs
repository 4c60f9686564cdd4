//! Content negotiation for `/metrics`, and the Prometheus text format 0.0.4 made from
//! prometheus-client's OpenMetrics text.
//!
//! Why a converter by hand: prometheus-client encodes OpenMetrics 1.0 only, and what most
//! consumers besides Prometheus parse (Datadog's and Netdata's CoreDNS checks, the
//! OpenTelemetry collector's receivers, older Prometheus servers, `promtool check metrics`) is
//! 0.0.4, which the crate cannot write. The two formats differ in a few mechanical ways, all
//! handled line by line here, so every metric is still declared and encoded once:
//!
//! | OpenMetrics                                  | 0.0.4                                     |
//! |----------------------------------------------|-------------------------------------------|
//! | counter family `x`, sample `x_total`         | family `x_total`, sample `x_total`        |
//! | `x_created` samples of a counter             | dropped (0.0.4 has none)                  |
//! | `# TYPE x info`, sample `x_info{...} 1`      | `# TYPE x_info gauge`                     |
//! | `# TYPE x unknown` / `stateset`              | `untyped` / `gauge`                       |
//! | `# UNIT x seconds`                           | dropped (the unit is in the name)         |
//! | exemplars (`... # {trace_id="..."} 1`)       | dropped                                   |
//! | `# EOF`                                      | dropped                                   |
//!
//! Label values are escaped the same way in both. Help texts are written as declared, and
//! none contains a backslash or a newline (the two characters 0.0.4 would escape).

/// The media type of OpenMetrics.
const OPENMETRICS: &str = "application/openmetrics-text";

/// The formats `/metrics` answers in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0, for scrapers that ask for it.
    OpenMetrics,
    /// The Prometheus text format 0.0.4: the default.
    Prometheus,
}

impl Format {
    /// The format for a request's `Accept` header: OpenMetrics only when it is asked for
    /// (with a quality above 0, and not below that of `text/plain`), as Prometheus asks
    /// (`application/openmetrics-text;version=1.0.0,...,text/plain;version=0.0.4;q=0.5`);
    /// 0.0.4 otherwise, including without an `Accept` header and for `*/*`.
    pub fn from_accept(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Format::Prometheus;
        };
        let mut openmetrics: Option<f32> = None;
        let mut plain: Option<f32> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media_type = parts.next().unwrap_or("").to_ascii_lowercase();
            let quality = parts
                .filter_map(|parameter| parameter.split_once('='))
                .find(|(key, _)| key.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, value)| value.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let best = match media_type.as_str() {
                OPENMETRICS => &mut openmetrics,
                "text/plain" => &mut plain,
                _ => continue,
            };
            *best = Some(best.map_or(quality, |q| q.max(quality)));
        }
        match openmetrics {
            Some(q) if q > 0.0 && plain.is_none_or(|plain| q >= plain) => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    /// The `Content-Type` of a reply in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Rewrites OpenMetrics text as prometheus-client writes it into the 0.0.4 format (see the
/// table in the module docs).
pub fn to_prometheus(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // The family being read: its name in OpenMetrics, its OpenMetrics type, and the HELP line
    // waiting for the TYPE line (which decides the name it is written under).
    let mut family = String::new();
    let mut kind = String::new();
    let mut pending_help: Option<String> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            family = name.to_owned();
            kind.clear();
            pending_help = Some(help.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, openmetrics_type) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            family = name.to_owned();
            kind = openmetrics_type.to_owned();
            let (exposed, exposed_type) = match openmetrics_type {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "stateset" => (name.to_owned(), "gauge"),
                "gaugehistogram" => (name.to_owned(), "histogram"),
                "unknown" => (name.to_owned(), "untyped"),
                other => (name.to_owned(), other),
            };
            if let Some(help) = pending_help.take() {
                out.push_str(&format!("# HELP {exposed} {help}\n"));
            }
            out.push_str(&format!("# TYPE {exposed} {exposed_type}\n"));
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            // `# UNIT`, `# EOF`, and anything else OpenMetrics-only.
            continue;
        }
        let sample = strip_exemplar(line);
        if kind == "counter" {
            let name_end = sample.find(['{', ' ']).unwrap_or(sample.len());
            if sample[..name_end] == format!("{family}_created") {
                continue;
            }
        }
        out.push_str(sample);
        out.push('\n');
    }
    out
}

/// A sample line without its exemplar (` # {labels} value [timestamp]`), which comes after
/// the value, outside any label value's quotes.
fn strip_exemplar(line: &str) -> &str {
    let mut quoted = false;
    let mut escaped = false;
    for (index, character) in line.char_indices() {
        match character {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '#' if !quoted => return line[..index].trim_end(),
            _ => {}
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_only_when_asked_for() {
        assert_eq!(Format::from_accept(None), Format::Prometheus);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Prometheus);
        assert_eq!(
            Format::from_accept(Some("text/plain;version=0.0.4")),
            Format::Prometheus
        );
        // What Prometheus 2.x and 3.x send.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(
            Format::from_accept(Some("Application/OpenMetrics-Text; version=1.0.0")),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::from_accept(Some("text/plain;q=0.9, application/openmetrics-text;q=0.5")),
            Format::Prometheus,
            "text/plain preferred"
        );
        assert_eq!(
            Format::from_accept(Some("application/openmetrics-text;q=0")),
            Format::Prometheus,
            "q=0 means not acceptable"
        );
    }

    #[test]
    fn counters_info_units_and_eof_become_0_0_4() {
        let openmetrics = "\
# HELP hearth_build Build information: version.
# TYPE hearth_build info
hearth_build_info{version=\"0.1.0\"} 1
# HELP hearth_requests Queries received.
# TYPE hearth_requests counter
hearth_requests_total{protocol=\"udp\",type=\"A\"} 6
hearth_requests_created{protocol=\"udp\",type=\"A\"} 1700000000.0
# HELP hearth_request_duration_seconds Time.
# TYPE hearth_request_duration_seconds histogram
# UNIT hearth_request_duration_seconds seconds
hearth_request_duration_seconds_sum{protocol=\"udp\"} 0.5
hearth_request_duration_seconds_count{protocol=\"udp\"} 2
hearth_request_duration_seconds_bucket{le=\"+Inf\",protocol=\"udp\"} 2 # {trace_id=\"a # b\"} 0.1
# HELP hearth_odd An odd one.
# TYPE hearth_odd unknown
hearth_odd{note=\"a # in \\\"quotes\\\"\"} 3
# EOF
";
        let expected = "\
# HELP hearth_build_info Build information: version.
# TYPE hearth_build_info gauge
hearth_build_info{version=\"0.1.0\"} 1
# HELP hearth_requests_total Queries received.
# TYPE hearth_requests_total counter
hearth_requests_total{protocol=\"udp\",type=\"A\"} 6
# HELP hearth_request_duration_seconds Time.
# TYPE hearth_request_duration_seconds histogram
hearth_request_duration_seconds_sum{protocol=\"udp\"} 0.5
hearth_request_duration_seconds_count{protocol=\"udp\"} 2
hearth_request_duration_seconds_bucket{le=\"+Inf\",protocol=\"udp\"} 2
# HELP hearth_odd An odd one.
# TYPE hearth_odd untyped
hearth_odd{note=\"a # in \\\"quotes\\\"\"} 3
";
        assert_eq!(to_prometheus(openmetrics), expected);
    }
}
