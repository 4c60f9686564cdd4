//! Configuration: the TOML file as written, and the validated types the server is built from.
//!
//! Reading happens in two steps. The `*Table` types mirror the file exactly (serde,
//! `deny_unknown_fields`, so a misspelt key is an error rather than a silently ignored setting);
//! their value types ([`values`]) check themselves as they are read, so a bad value is reported
//! with its line and key. [`Config`] is what comes out of validation: no optional fields left,
//! defaults applied, cross-key rules (a forwarding loop, `order` beside `nsswitch`) checked.
//!
//! The embedded default is `config/hearth.toml`, compiled in with `include_str!` so the file
//! shipped and the default run can never drift apart.

pub mod values;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::chain::order::{self, NsswitchError, OrderEntry, SourceKind};
use values::{DomainName, HumanDuration, ListenAddr, OrderValue, UpstreamAddr};

/// The default configuration, as shipped in `config/hearth.toml`.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/hearth.toml");

/// How the embedded default is named in messages.
pub const DEFAULT_CONFIG_NAME: &str = "config/hearth.toml (embedded default)";

/// Connections are counted by a semaphore; far beyond any real need, far below its limit.
const MAX_TCP_CONNECTIONS: usize = 1_000_000;

/// Upstream queries in flight: each holds a socket, so far below any file-descriptor limit.
const MAX_CONCURRENT_UPSTREAM: usize = 100_000;

/// A query waits at most this long for one upstream: a DNS client gives up long before.
const MAX_FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// An idle TCP connection is closed after at most this long.
const MAX_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// The largest TTL a record may carry: RFC 2181 §8, "a 32 bit unsigned integer ... with the most
/// significant bit zero"; values with that bit set are treated as zero by resolvers.
pub const MAX_TTL: u32 = i32::MAX as u32;

/// The longest lameduck; Kubernetes' default grace period is 30 s, and the pod must exit
/// within it.
const MAX_LAMEDUCK: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------------------------
// The file as written.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    server: ServerTable,
    #[serde(default)]
    resolve: ResolveTable,
    #[serde(default)]
    files: FilesTable,
    #[serde(default)]
    forward: ForwardTable,
    #[serde(default)]
    zones: ZonesTable,
    kubernetes: Option<KubernetesTable>,
    #[serde(default)]
    cache: CacheTable,
    admin: Option<AdminTable>,
    #[serde(default)]
    log: LogTable,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminTable {
    listen: SocketAddr,
    namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogTable {
    queries: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheTable {
    capacity: Option<usize>,
    min_ttl: Option<HumanDuration>,
    max_ttl: Option<HumanDuration>,
    negative_max_ttl: Option<HumanDuration>,
    serve_stale: Option<HumanDuration>,
    prefetch: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerTable {
    listen: Option<Vec<ListenAddr>>,
    tcp_idle_timeout: Option<HumanDuration>,
    tcp_max_connections: Option<usize>,
    fast_path: Option<bool>,
    lameduck: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveTable {
    order: Option<Vec<OrderValue>>,
    nsswitch: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesTable {
    paths: Option<Vec<PathBuf>>,
    ttl: Option<u32>,
    reload_interval: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForwardTable {
    upstreams: Option<Vec<UpstreamAddr>>,
    policy: Option<Policy>,
    timeout: Option<HumanDuration>,
    max_concurrent: Option<usize>,
    health_check: Option<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZonesTable {
    directory: Option<PathBuf>,
    fallthrough: Option<Vec<DomainName>>,
    reload_interval: Option<HumanDuration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KubernetesTable {
    domain: Option<DomainName>,
    manifests: Option<PathBuf>,
    api: Option<String>,
    pods: Option<PodMode>,
    ttl: Option<u32>,
}

// ---------------------------------------------------------------------------------------------
// The validated configuration.

/// Everything the server is built from.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the configuration came from, for messages: a path, or [`DEFAULT_CONFIG_NAME`].
    pub origin: String,
    pub server: ServerConfig,
    /// The order of sources and their actions, from `resolve.order` or `resolve.nsswitch`.
    pub order: Vec<OrderEntry>,
    pub files: FilesConfig,
    pub forward: ForwardConfig,
    pub zones: ZonesConfig,
    /// `[kubernetes]`, when present.
    pub kubernetes: Option<KubernetesConfig>,
    /// `[admin]`, when present: the HTTP endpoints (`/health`, `/ready`, `/metrics`).
    pub admin: Option<AdminConfig>,
    /// `[log]`.
    pub log: LogConfig,
}

/// `[admin]`: health, readiness and Prometheus metrics over HTTP.
#[derive(Clone, Debug)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// The prefix of every metric name (`hearth_requests_total`).
    pub namespace: String,
}

/// `[log]`.
#[derive(Clone, Debug, Default)]
pub struct LogConfig {
    /// One line per query (client, name, type, RCODE, duration, source), at INFO. Off by default:
    /// at hundreds of thousands of queries a second the log would cost more than the answers.
    pub queries: bool,
}

/// `[zones]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZonesConfig {
    /// Every `*.zone` file in it is one zone; `None`: no zone files.
    pub directory: Option<PathBuf>,
    /// Zones whose NXDOMAIN is NOTFOUND, so the chain goes on (CoreDNS's `fallthrough`).
    pub fallthrough: Vec<hickory_proto::rr::Name>,
    /// How often zone files and manifests are checked for changes.
    pub reload_interval: Duration,
}

impl Default for ZonesConfig {
    /// No zones.
    fn default() -> Self {
        Self {
            directory: None,
            fallthrough: Vec::new(),
            reload_interval: Duration::from_secs(1),
        }
    }
}

/// `[kubernetes]`: the cluster zone built from Kubernetes objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesConfig {
    /// The cluster domain, fully qualified (`cluster.local.`).
    pub domain: hickory_proto::rr::Name,
    /// Where the Service, EndpointSlice, Pod and Namespace objects come from.
    pub feed: KubernetesFeed,
    pub pods: PodMode,
    pub ttl: u32,
}

/// The two feeds of the cluster zone; one record builder serves both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KubernetesFeed {
    /// A directory of objects (JSON or YAML), polled for changes.
    Manifests(PathBuf),
    /// A live list-and-watch of a Kubernetes API server.
    Api(KubernetesApi),
}

/// How to reach the Kubernetes API (`kubernetes.api`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KubernetesApi {
    /// `"in-cluster"`: the pod's service account (token, CA and `KUBERNETES_SERVICE_HOST`).
    InCluster,
    /// A kubeconfig file, at its current context.
    Kubeconfig(PathBuf),
    /// A plain `http://` or `https://` URL, unauthenticated (`kubectl proxy`, tests).
    Url(String),
}

/// Pod records, as CoreDNS's `pods` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PodMode {
    /// No `pod.<domain>` records.
    Disabled,
    /// `a-b-c-d.<ns>.pod.<domain>` answers a.b.c.d for any name of that shape, unchecked.
    Insecure,
    /// Only for pods that exist in that namespace with that address.
    Verified,
}

/// `[server]`.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Each address is served on UDP and TCP.
    pub listen: Vec<SocketAddr>,
    /// A TCP connection with no complete query for this long is closed (RFC 7766 §6.2.3 asks
    /// servers to free idle connections; CoreDNS and Unbound use 10 s and 30 s).
    pub tcp_idle_timeout: Duration,
    /// Connections beyond this are refused at accept, so idle clients cannot starve the rest.
    pub tcp_max_connections: usize,
    /// Answer UDP through the batched fast path (`server::fast`); off: one datagram at a time.
    pub fast_path: bool,
    /// On SIGTERM/SIGINT, how long `/ready` fails while queries are still answered, so load
    /// balancers and kube-proxy stop sending before the listeners close (CoreDNS's `lameduck`).
    pub lameduck: Duration,
}

/// `[files]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilesConfig {
    pub paths: Vec<PathBuf>,
    pub ttl: u32,
    /// How often the files are checked for changes.
    pub reload_interval: Duration,
}

/// `[forward]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardConfig {
    pub upstreams: Vec<SocketAddr>,
    /// Where `upstreams` came from, for the startup log.
    pub upstreams_from: UpstreamsFrom,
    pub policy: Policy,
    /// The longest one attempt at one upstream may take.
    pub timeout: Duration,
    /// Upstream queries in flight at most; beyond, queries are REFUSED (as CoreDNS does).
    pub max_concurrent: usize,
    /// How often an upstream marked down is probed.
    pub health_check: Duration,
    /// The answer cache in front of the upstreams.
    pub cache: crate::cache::CacheConfig,
}

/// Which upstream is tried first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Always the first; the next only when one fails.
    Sequential,
    /// A random order for every query.
    Random,
    /// Each query starts one further along the list.
    RoundRobin,
}

/// Where the upstreams came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamsFrom {
    Config,
    ResolvConf,
    /// Neither the config nor resolv.conf named one.
    Fallback,
}

/// Values given on the command line, which take precedence over the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Vec<SocketAddr>,
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// A place in a config file: the file, and the line when it is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file),
            None => f.write_str(&self.file),
        }
    }
}

/// Why a configuration was refused. Every variant names the file; all but `Read` name the key.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{location}: {reason}")]
    Syntax { location: Location, reason: String },
    #[error("{location}: {key}: {reason}")]
    Value {
        location: Location,
        key: String,
        reason: String,
    },
    #[error("{0}")]
    Nsswitch(#[from] NsswitchError),
}

impl ConfigError {
    fn invalid(file: &str, key: &str, reason: impl Into<String>) -> Self {
        Self::Value {
            location: Location {
                file: file.to_owned(),
                line: None,
            },
            key: key.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Line number (from 1) of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

// ---------------------------------------------------------------------------------------------
// Loading.

impl Config {
    /// Loads `path`, or the embedded default when `path` is `None`.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        match path {
            None => Self::from_toml(DEFAULT_CONFIG, DEFAULT_CONFIG_NAME, overrides),
            Some(path) => {
                let file = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    file: file.clone(),
                    source,
                })?;
                Self::from_toml(&text, &file, overrides)
            }
        }
    }

    /// Reads and validates configuration text; `file` names it in errors.
    pub fn from_toml(text: &str, file: &str, overrides: &Overrides) -> Result<Self, ConfigError> {
        let parsed = parse_file(text, file)?;
        validate(parsed, file, overrides)
    }
}

fn parse_file(text: &str, file: &str) -> Result<ConfigFile, ConfigError> {
    let location = |error: &toml::de::Error| Location {
        file: file.to_owned(),
        line: error.span().map(|span| line_of(text, span.start)),
    };
    let deserializer = toml::Deserializer::parse(text).map_err(|error| ConfigError::Syntax {
        location: location(&error),
        reason: error.message().to_owned(),
    })?;
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let key = error.path().to_string();
        let inner = error.into_inner();
        ConfigError::Value {
            location: location(&inner),
            key,
            reason: inner.message().to_owned(),
        }
    })
}

fn validate(parsed: ConfigFile, file: &str, overrides: &Overrides) -> Result<Config, ConfigError> {
    let ConfigFile {
        server,
        resolve,
        files,
        forward,
        zones,
        kubernetes,
        cache,
        admin,
        log,
    } = parsed;

    // [admin]
    let admin = match admin {
        None => None,
        Some(table) => {
            let namespace = table.namespace.unwrap_or_else(|| "hearth".to_owned());
            // Prometheus metric names are [a-zA-Z_:][a-zA-Z0-9_:]*; the namespace is their
            // prefix, and colons are reserved for recording rules.
            let valid = namespace
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && namespace
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(ConfigError::invalid(
                    file,
                    "admin.namespace",
                    format!("{namespace:?} is not a Prometheus name: use letters, digits and _, not starting with a digit"),
                ));
            }
            Some(AdminConfig {
                listen: table.listen,
                namespace,
            })
        }
    };

    // [server]
    let listen: Vec<SocketAddr> = if overrides.listen.is_empty() {
        server
            .listen
            .map(|list| list.into_iter().map(|a| a.0).collect())
            .unwrap_or_else(|| vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 53))])
    } else {
        overrides.listen.clone()
    };
    if listen.is_empty() {
        return Err(ConfigError::invalid(
            file,
            "server.listen",
            "no address to listen on",
        ));
    }
    for (index, address) in listen.iter().enumerate() {
        if listen[..index].contains(address) {
            return Err(ConfigError::invalid(
                file,
                "server.listen",
                format!("{address} is listed twice"),
            ));
        }
    }
    let tcp_max_connections = server.tcp_max_connections.unwrap_or(1024);
    if !(1..=MAX_TCP_CONNECTIONS).contains(&tcp_max_connections) {
        return Err(ConfigError::invalid(
            file,
            "server.tcp_max_connections",
            format!("must be between 1 and {MAX_TCP_CONNECTIONS}"),
        ));
    }
    let server = ServerConfig {
        listen,
        tcp_idle_timeout: bounded(
            server.tcp_idle_timeout,
            Duration::from_secs(10),
            MAX_TCP_IDLE_TIMEOUT,
            file,
            "server.tcp_idle_timeout",
        )?,
        tcp_max_connections,
        fast_path: server.fast_path.unwrap_or(true),
        lameduck: match server.lameduck {
            None => Duration::from_secs(5),
            Some(HumanDuration(duration)) if duration > MAX_LAMEDUCK => {
                return Err(ConfigError::invalid(
                    file,
                    "server.lameduck",
                    format!(
                        "must be at most {}",
                        humantime::format_duration(MAX_LAMEDUCK)
                    ),
                ))
            }
            Some(HumanDuration(duration)) => duration,
        },
    };

    // [resolve]
    let order = match (resolve.order, resolve.nsswitch) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                file,
                "resolve.nsswitch",
                "set either resolve.order or resolve.nsswitch, not both",
            ))
        }
        (Some(list), None) => {
            let entries: Vec<OrderEntry> = list.into_iter().map(|v| v.0).collect();
            order::check_order(&entries)
                .map_err(|error| ConfigError::invalid(file, "resolve.order", error.to_string()))?;
            entries
        }
        (None, Some(path)) => {
            let read = order::read_nsswitch(&path)?;
            if !read.skipped.is_empty() {
                tracing::info!(
                    file = %path.display(),
                    line = read.line,
                    skipped = ?read.skipped,
                    "nsswitch services Hearth does not have are skipped"
                );
            }
            read.entries
        }
        (None, None) => [SourceKind::Files, SourceKind::Zones, SourceKind::Dns]
            .map(|source| OrderEntry {
                source,
                actions: Default::default(),
            })
            .to_vec(),
    };

    // [files]
    let ttl = files.ttl.unwrap_or(3600);
    if ttl > MAX_TTL {
        return Err(ConfigError::invalid(
            file,
            "files.ttl",
            format!("{ttl} is above the largest TTL, {MAX_TTL} (RFC 2181 §8)"),
        ));
    }
    let files = FilesConfig {
        paths: files
            .paths
            .unwrap_or_else(|| vec![PathBuf::from("/etc/hosts")]),
        ttl,
        reload_interval: positive(
            files.reload_interval,
            Duration::from_secs(1),
            file,
            "files.reload_interval",
        )?,
    };

    // [forward]
    let timeout = bounded(
        forward.timeout,
        Duration::from_secs(2),
        MAX_FORWARD_TIMEOUT,
        file,
        "forward.timeout",
    )?;
    let (upstreams, upstreams_from) =
        match forward.upstreams {
            Some(list) if list.is_empty() => return Err(ConfigError::invalid(
                file,
                "forward.upstreams",
                "is empty: list at least one upstream, or remove the key to use /etc/resolv.conf",
            )),
            Some(list) => (
                list.into_iter().map(|a| a.0).collect(),
                UpstreamsFrom::Config,
            ),
            None => default_upstreams(&server.listen),
        };
    for upstream in &upstreams {
        if server
            .listen
            .iter()
            .any(|listen| is_same_socket(*listen, *upstream))
        {
            return Err(ConfigError::invalid(
                file,
                "forward.upstreams",
                format!("{upstream} is Hearth's own listen address: forwarding to it would loop"),
            ));
        }
    }
    let max_concurrent = forward.max_concurrent.unwrap_or(1000);
    if !(1..=MAX_CONCURRENT_UPSTREAM).contains(&max_concurrent) {
        return Err(ConfigError::invalid(
            file,
            "forward.max_concurrent",
            format!("must be between 1 and {MAX_CONCURRENT_UPSTREAM}"),
        ));
    }
    let defaults = crate::cache::CacheConfig::default();
    let duration = |value: Option<HumanDuration>, default: Duration| value.map_or(default, |v| v.0);
    let cache = crate::cache::CacheConfig {
        capacity: cache.capacity.unwrap_or(defaults.capacity),
        min_ttl: duration(cache.min_ttl, defaults.min_ttl),
        max_ttl: duration(cache.max_ttl, defaults.max_ttl),
        negative_max_ttl: duration(cache.negative_max_ttl, defaults.negative_max_ttl),
        serve_stale: duration(cache.serve_stale, defaults.serve_stale),
        prefetch: cache.prefetch.unwrap_or(defaults.prefetch),
    };
    for (key, value) in [
        ("cache.min_ttl", cache.min_ttl),
        ("cache.max_ttl", cache.max_ttl),
        ("cache.negative_max_ttl", cache.negative_max_ttl),
    ] {
        if value.as_secs() > u64::from(MAX_TTL) {
            return Err(ConfigError::invalid(
                file,
                key,
                format!("must be at most {MAX_TTL}s (RFC 2181 §8)"),
            ));
        }
    }
    if cache.min_ttl > cache.max_ttl {
        return Err(ConfigError::invalid(
            file,
            "cache.min_ttl",
            "is above cache.max_ttl",
        ));
    }
    let forward = ForwardConfig {
        upstreams,
        upstreams_from,
        policy: forward.policy.unwrap_or(Policy::Sequential),
        timeout,
        max_concurrent,
        health_check: bounded(
            forward.health_check,
            Duration::from_millis(500),
            Duration::from_secs(3600),
            file,
            "forward.health_check",
        )?,
        cache,
    };

    // [zones]
    let zones = ZonesConfig {
        directory: zones.directory,
        fallthrough: zones
            .fallthrough
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.0)
            .collect(),
        reload_interval: positive(
            zones.reload_interval,
            Duration::from_secs(1),
            file,
            "zones.reload_interval",
        )?,
    };

    // [kubernetes]
    let kubernetes = match kubernetes {
        None => None,
        Some(table) => {
            let ttl = table.ttl.unwrap_or(5);
            if ttl > MAX_TTL {
                return Err(ConfigError::invalid(
                    file,
                    "kubernetes.ttl",
                    format!("{ttl} is above the largest TTL, {MAX_TTL} (RFC 2181 §8)"),
                ));
            }
            let domain = match table.domain {
                Some(domain) => domain.0,
                None => hickory_proto::rr::Name::from_ascii("cluster.local.")
                    .map_err(|e| ConfigError::invalid(file, "kubernetes.domain", e.to_string()))?,
            };
            if domain.is_root() {
                return Err(ConfigError::invalid(
                    file,
                    "kubernetes.domain",
                    "the root cannot be the cluster domain",
                ));
            }
            let feed = match (table.manifests, table.api) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::invalid(
                        file,
                        "kubernetes.api",
                        "set either kubernetes.manifests or kubernetes.api, not both",
                    ))
                }
                (None, None) => {
                    return Err(ConfigError::invalid(
                        file,
                        "kubernetes",
                        "needs kubernetes.manifests (a directory of objects) or kubernetes.api (\"in-cluster\", a kubeconfig path or a URL)",
                    ))
                }
                (Some(directory), None) => KubernetesFeed::Manifests(directory),
                (None, Some(api)) => KubernetesFeed::Api(parse_api(&api, file)?),
            };
            Some(KubernetesConfig {
                domain,
                feed,
                pods: table.pods.unwrap_or(PodMode::Insecure),
                ttl,
            })
        }
    };

    Ok(Config {
        origin: file.to_owned(),
        server,
        order,
        files,
        forward,
        zones,
        kubernetes,
        admin,
        log: LogConfig {
            queries: log.queries.unwrap_or(false),
        },
    })
}

/// `kubernetes.api`: `"in-cluster"`, an `http(s)://` URL, or else a kubeconfig path.
fn parse_api(value: &str, file: &str) -> Result<KubernetesApi, ConfigError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ConfigError::invalid(
            file,
            "kubernetes.api",
            "is empty: use \"in-cluster\", a kubeconfig path or a URL",
        ));
    }
    if value == "in-cluster" {
        return Ok(KubernetesApi::InCluster);
    }
    if let Some(rest) = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
    {
        if rest.is_empty() || rest.starts_with('/') {
            return Err(ConfigError::invalid(
                file,
                "kubernetes.api",
                format!("{value:?} has no host"),
            ));
        }
        return Ok(KubernetesApi::Url(value.to_owned()));
    }
    if value.contains("://") {
        return Err(ConfigError::invalid(
            file,
            "kubernetes.api",
            format!("{value:?}: only http:// and https:// URLs are supported"),
        ));
    }
    Ok(KubernetesApi::Kubeconfig(PathBuf::from(value)))
}

/// A duration that must be above zero, or the default when absent.
fn positive(
    value: Option<HumanDuration>,
    default: Duration,
    file: &str,
    key: &str,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(HumanDuration(duration)) if duration.is_zero() => {
            Err(ConfigError::invalid(file, key, "must be longer than zero"))
        }
        Some(HumanDuration(duration)) => Ok(duration),
    }
}

/// A duration within `(0, max]`, or the default when absent.
fn bounded(
    value: Option<HumanDuration>,
    default: Duration,
    max: Duration,
    file: &str,
    key: &str,
) -> Result<Duration, ConfigError> {
    let duration = positive(value, default, file, key)?;
    if duration > max {
        return Err(ConfigError::invalid(
            file,
            key,
            format!("must be at most {}", humantime::format_duration(max)),
        ));
    }
    Ok(duration)
}

/// Whether a packet sent to `upstream` would arrive at a socket bound to `listen`. An IPv6
/// socket is IPv6-only (`server::udp::bind`), so `[::]` never receives what is sent to
/// 127.0.0.1. (A wildcard listener also receives what is sent to the host's own interface
/// addresses; that loop is not caught here.)
fn is_same_socket(listen: SocketAddr, upstream: SocketAddr) -> bool {
    listen.port() == upstream.port()
        && listen.is_ipv4() == upstream.is_ipv4()
        && (listen.ip() == upstream.ip()
            || (listen.ip().is_unspecified() && upstream.ip().is_loopback()))
}

/// The nameservers of /etc/resolv.conf, less any that are Hearth itself (a host whose
/// resolv.conf already points at Hearth must not forward to itself); 8.8.8.8 when none is left.
fn default_upstreams(listen: &[SocketAddr]) -> (Vec<SocketAddr>, UpstreamsFrom) {
    let from_resolv_conf: Vec<SocketAddr> = match hickory_resolver::system_conf::read_system_conf()
    {
        Ok((config, _)) => config
            .name_servers()
            .iter()
            .map(|server| SocketAddr::new(server.ip, 53))
            .filter(|upstream| {
                let is_self = listen.iter().any(|l| is_same_socket(*l, *upstream));
                if is_self {
                    tracing::warn!(%upstream, "a nameserver of /etc/resolv.conf may be Hearth itself; not used as an upstream (set forward.upstreams to use it)");
                }
                !is_self
            })
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "cannot read /etc/resolv.conf for default upstreams");
            Vec::new()
        }
    };
    if from_resolv_conf.is_empty() {
        (
            vec![SocketAddr::from((Ipv4Addr::new(8, 8, 8, 8), 53))],
            UpstreamsFrom::Fallback,
        )
    } else {
        (from_resolv_conf, UpstreamsFrom::ResolvConf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, "test.toml", &Overrides::default())
    }

    #[test]
    fn embedded_default_loads() {
        let config = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(config.server.listen, ["127.0.0.1:5353".parse().unwrap()]);
        assert_eq!(config.files.paths, [PathBuf::from("/etc/hosts")]);
        assert_eq!(config.order.len(), 3);
    }

    #[test]
    fn the_contract_example_loads() {
        let config = load(
            r#"
            [server]
            listen = ["127.0.0.1:5353"]
            [resolve]
            order = ["files [NOTFOUND=return]", "zones", "dns"]
            [files]
            paths = ["/etc/hosts"]
            ttl = 3600
            [forward]
            upstreams = ["192.0.2.1:53", "192.0.2.2"]
            policy = "round_robin"
            timeout = "500ms"
            "#,
        )
        .unwrap();
        assert_eq!(config.forward.policy, Policy::RoundRobin);
        assert_eq!(config.forward.timeout, Duration::from_millis(500));
        assert_eq!(config.forward.upstreams[1], "192.0.2.2:53".parse().unwrap());
        assert_eq!(config.order[0].to_string(), "files [NOTFOUND=return]");
    }

    fn error_of(text: &str) -> String {
        load(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_file_line_key_and_reason() {
        let cases = [
            (
                "[forward]\ntimeout = \"2x\"\n",
                "test.toml:2: forward.timeout: invalid duration",
            ),
            (
                "[server]\nlisten = [\"127.0.0.1:0\"]\n",
                "test.toml:2: server.listen[0]: invalid address \"127.0.0.1:0\": port 0",
            ),
            (
                "[resolve]\norder = [\"files\", \"nis\"]\n",
                "test.toml:2: resolve.order[1]: \"nis\": unknown source `nis`",
            ),
            (
                "[forward]\npolicy = \"fastest\"\n",
                "test.toml:2: forward.policy: unknown variant `fastest`",
            ),
            ("[files]\nttl = -1\n", "test.toml:2: files.ttl:"),
            (
                "[files]\nttl = 4294967295\n",
                "test.toml: files.ttl: 4294967295 is above the largest TTL",
            ),
            (
                "[server]\nlisten = [\"127.0.0.1:5353\"]\n[forward]\nupstreams = [\"127.0.0.1:5353\"]\n",
                "test.toml: forward.upstreams: 127.0.0.1:5353 is Hearth's own listen address",
            ),
            ("[forward]\nupstreams = []\n", "test.toml: forward.upstreams: is empty"),
            ("[forward]\ntimeout = \"0s\"\n", "test.toml: forward.timeout: must be longer"),
            ("[forward]\ntimeout = \"1h\"\n", "test.toml: forward.timeout: must be at most 30s"),
            (
                "[server]\ntcp_max_connections = 2305843009213693952\n",
                "test.toml: server.tcp_max_connections: must be between 1 and 1000000",
            ),
            (
                "[server]\ntcp_idle_timeout = \"100y\"\n",
                "test.toml: server.tcp_idle_timeout: must be at most 1h",
            ),
            ("[server\nlisten = 1\n", "test.toml:1: "),
            (
                "[resolve]\norder = [\"files\", \"files\"]\n",
                "test.toml: resolve.order: `files` appears twice",
            ),
            (
                "[resolve]\norder = [\"files\"]\nnsswitch = \"/etc/nsswitch.conf\"\n",
                "test.toml: resolve.nsswitch: set either",
            ),
        ];
        for (text, expected) in cases {
            let error = error_of(text);
            assert!(
                error.starts_with(expected),
                "config {text:?}\n  gave {error:?}\n  expected it to start with {expected:?}"
            );
        }
    }

    /// Every table rejects a key it does not know, and says which.
    #[test]
    fn stray_keys_are_rejected_in_every_table() {
        for table in ["server", "resolve", "files", "forward"] {
            let error = error_of(&format!("[{table}]\nbogus = 1\n"));
            assert!(
                error.starts_with(&format!("test.toml:2: {table}")) && error.contains("bogus"),
                "{table}: {error}"
            );
        }
        let error = error_of("bogus = 1\n");
        assert!(error.contains("bogus"), "{error}");
        let error = error_of("[bogus]\n");
        assert!(error.contains("bogus"), "{error}");
    }

    #[test]
    fn nsswitch_file_gives_the_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nsswitch.conf");
        std::fs::write(&path, "hosts: dns [NOTFOUND=return] files\n").unwrap();
        let config = load(&format!(
            "[resolve]\nnsswitch = {:?}\n[forward]\nupstreams = [\"192.0.2.1\"]\n",
            path.display().to_string()
        ))
        .unwrap();
        let order: Vec<String> = config.order.iter().map(|e| e.to_string()).collect();
        assert_eq!(order, ["zones", "dns [NOTFOUND=return]", "files"]);
    }

    #[test]
    fn listen_override_replaces_the_file() {
        let overrides = Overrides {
            listen: vec!["127.0.0.1:5300".parse().unwrap()],
        };
        let config =
            Config::from_toml("[forward]\nupstreams = [\"192.0.2.1\"]\n", "t", &overrides).unwrap();
        assert_eq!(config.server.listen, overrides.listen);
    }
}
