//! Configuration: the top level of the TOML file, and the validated [`Config`] the server is
//! built from.
//!
//! Reading happens in two steps. The `*Table` types mirror the file exactly (serde,
//! `deny_unknown_fields`, so a misspelt key is an error rather than a silently ignored setting);
//! their value types ([`values`]) check themselves as they are read, so a bad value is reported
//! with its line and key. What comes out of validation has no optional fields left, defaults
//! applied, cross-key rules checked.
//!
//! This file owns the tables of the server itself (`[server]`, `[resolve]`, `[admin]`, `[log]`).
//! Each source owns its own tables, in its folder: [`file::Tables`] hands each of them its
//! tables with their places in the text, and the registry (`sources::REGISTRY`) says which
//! source reads which. A top-level table nobody reads is an error.
//!
//! The embedded default is `config/hearth.toml`, compiled in with `include_str!` so the file
//! shipped and the default run can never drift apart.

pub mod file;
pub mod front_door;
pub mod values;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::chain::order::{self, OrderEntry};
pub use crate::chain::shape::AnswerShaping;
use crate::sources::setup::SourceConfig;
use crate::sources::REGISTRY;
use file::{line_of, Tables};
pub use file::{ConfigError, Location, MAX_TTL};
pub use front_door::{
    AccessAction, AccessConfig, RateLimitConfig, MAX_RESPONSES_PER_SECOND, PRIVATE_NETWORKS,
};
use values::{DomainName, HumanDuration, ListenAddr, OrderValue};

/// The default configuration, as shipped in `config/hearth.toml`.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/hearth.toml");

/// How the embedded default is named in messages.
pub const DEFAULT_CONFIG_NAME: &str = "config/hearth.toml (embedded default)";

/// `server.fast_path_memory` by default, at the least: room for the replies of about 200,000
/// names (a 100,000-record zone asked in turn, a large hosts file), taken only when the
/// working set asks for it (`server::fast::growth`). With a larger answer cache the default
/// follows it (`default_fast_path_memory`).
pub const DEFAULT_FAST_PATH_MEMORY: u64 = 64 << 20;
/// The least: the table must hold a few hundred replies to be worth its lookup.
const MIN_FAST_PATH_MEMORY: u64 = 64 << 10;
/// The most: 64 GiB, past any machine this runs on; a typo is refused rather than obeyed.
const MAX_FAST_PATH_MEMORY: u64 = 64 << 30;

/// Connections are counted by a semaphore; far beyond any real need, far below its limit.
const MAX_TCP_CONNECTIONS: usize = 1_000_000;

/// Queries in flight per UDP socket: each holds a task and a copy of its query.
const MAX_IN_FLIGHT: usize = 1_000_000;

/// An idle TCP connection is closed after at most this long.
const MAX_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// The longest lameduck; Kubernetes' default grace period is 30 s, and the pod must exit
/// within it.
const MAX_LAMEDUCK: Duration = Duration::from_secs(300);

/// The tables of the server itself; the sources' are theirs (`sources::REGISTRY`).
const SERVER_TABLES: [&str; 6] = ["server", "resolve", "admin", "log", "access", "rate_limit"];

// ---------------------------------------------------------------------------------------------
// The server's own tables, as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminTable {
    listen: SocketAddr,
    namespace: Option<String>,
    metrics: Option<MetricNames>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogTable {
    queries: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerTable {
    listen: Option<Vec<ListenAddr>>,
    tcp_idle_timeout: Option<HumanDuration>,
    tcp_max_connections: Option<usize>,
    tcp_max_connections_per_client: Option<usize>,
    max_waiting_per_client: Option<u32>,
    cookies: Option<bool>,
    max_in_flight: Option<usize>,
    fast_path: Option<bool>,
    fast_path_memory: Option<u64>,
    lameduck: Option<HumanDuration>,
    watch_config: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveTable {
    /// Spanned, so that a source the registry does not have is reported on its line.
    order: Option<Vec<Spanned<OrderValue>>>,
    nsswitch: Option<PathBuf>,
    rotate: Option<bool>,
    filter_aaaa: Option<Vec<DomainName>>,
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
    /// `[resolve]`'s answer shaping: rotation and the AAAA filter.
    pub answers: AnswerShaping,
    /// `[admin]`, when present: the HTTP endpoints (`/health`, `/ready`, `/metrics`).
    pub admin: Option<AdminConfig>,
    /// `[log]`.
    pub log: LogConfig,
    /// `[access]`: which clients are answered.
    pub access: AccessConfig,
    /// `[rate_limit]`, when present: how fast each client prefix is answered over UDP.
    pub rate_limit: Option<RateLimitConfig>,
    /// Each source's configuration, in the registry's order.
    pub sources: Vec<Arc<dyn SourceConfig>>,
}

impl Config {
    /// The configuration of the source whose configuration type is `T`.
    pub fn source<T: SourceConfig>(&self) -> Option<&T> {
        self.sources.iter().find_map(|config| config.downcast_ref())
    }

    /// The configuration of the source named `name`.
    pub fn source_named(&self, name: &str) -> Option<&Arc<dyn SourceConfig>> {
        self.sources.iter().find(|config| config.name() == name)
    }

    /// Whether the order asks the source named `name`.
    pub fn in_order(&self, name: &str) -> bool {
        self.order.iter().any(|entry| entry.source == name)
    }
}

/// `[admin]`: health, readiness and Prometheus metrics over HTTP.
#[derive(Clone, Debug)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// The prefix of every metric name (`hearth_requests_total`).
    pub namespace: String,
    /// Whose metric names `/metrics` uses: Hearth's own, or CoreDNS's.
    pub metrics: MetricNames,
}

/// `admin.metrics`: the names and labels `/metrics` exposes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricNames {
    /// `hearth_*` (or `<namespace>_*`), as documented in the README.
    #[default]
    Hearth,
    /// `coredns_*`, with the names, labels and meanings of CoreDNS's `prometheus`, `cache`
    /// and `forward` plugins, so the CoreDNS mixin's alerts and dashboards work unchanged.
    Coredns,
}

/// `[log]`.
#[derive(Clone, Debug, Default)]
pub struct LogConfig {
    /// One line per query (client, name, type, RCODE, duration, source), at INFO. Off by default:
    /// at hundreds of thousands of queries a second the log would cost more than the answers.
    pub queries: bool,
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
    /// Connections one client (its /32, or its /64 for IPv6) may hold open at once.
    pub tcp_max_connections_per_client: usize,
    /// Queries one client may have waiting on upstreams at once; more are answered SERVFAIL
    /// at once (the DNSBomb pattern, CVE-2024-33655).
    pub max_waiting_per_client: u32,
    /// DNS Cookies (RFC 7873, server cookies per RFC 9018).
    pub cookies: bool,
    /// Queries on the general path (misses) at once per UDP socket; beyond, the fast path
    /// sheds them with SERVFAIL so its hits never wait behind them.
    pub max_in_flight: usize,
    /// Answer UDP through the batched fast path (`server::fast`); off: one datagram at a time.
    pub fast_path: bool,
    /// The most the fast path's encoded replies may take, in bytes. The table starts at 4 MiB
    /// and grows only while replies it evicted are asked again (`server::fast::growth`).
    pub fast_path_memory: u64,
    /// Re-read `--config` when the file changes (a ConfigMap volume's symlink swap included),
    /// as on SIGHUP, as CoreDNS's `reload` plugin: the image has no shell to send a signal from.
    pub watch_config: bool,
    /// On SIGTERM/SIGINT, how long `/ready` fails while queries are still answered, so load
    /// balancers and kube-proxy stop sending before the listeners close (CoreDNS's `lameduck`).
    pub lameduck: Duration,
}

/// Values given on the command line, which take precedence over the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Vec<SocketAddr>,
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
        let mut tables = Tables::parse(text, file)?;
        check_table_names(&tables)?;
        let (mut server, fast_path_memory_set) = server(&tables, overrides)?;
        tables.set_listen(server.listen.clone());
        let admin = admin(&tables)?;
        let log: LogTable = tables.read_or_default("log")?;
        let access = front_door::access(&tables)?;
        let rate_limit = front_door::rate_limit(&tables)?;
        let (order, answers) = resolve(&tables, text)?;
        let sources = REGISTRY
            .iter()
            .map(|setup| setup.configure(&tables))
            .collect::<Result<Vec<_>, _>>()?;
        if !fast_path_memory_set {
            server.fast_path_memory = default_fast_path_memory(&sources);
        }
        Ok(Config {
            origin: file.to_owned(),
            server,
            order,
            answers,
            admin,
            log: LogConfig {
                queries: log.queries.unwrap_or(false),
            },
            access,
            rate_limit,
            sources,
        })
    }
}

/// `server.fast_path_memory` when the file does not set it: [`DEFAULT_FAST_PATH_MEMORY`], or
/// half the memory the sources give to answers they keep (`cache.max_bytes`) if that is more.
///
/// An operator who gives the cache room for a million answers has a working set that large in
/// mind, and a table held to 64 MiB (about 200,000 replies) would send most of its hits down
/// the general path, at about half the rate (issue 16's hit-tail: 92,000 q/s against 180,000
/// with the table holding them). The table still takes that memory only while replies it
/// evicted are asked again; a scan leaves it at 4 MiB. Half, because a reply in the table
/// costs about what its answer costs in the cache, and the cache's budget is a ceiling that
/// its entries' floor weight rarely reaches.
fn default_fast_path_memory(sources: &[Arc<dyn SourceConfig>]) -> u64 {
    let answers: u64 = sources.iter().map(|source| source.answer_memory()).sum();
    (answers / 2).clamp(DEFAULT_FAST_PATH_MEMORY, MAX_FAST_PATH_MEMORY)
}

/// Every top-level key must be a table someone reads: the server's or a source's.
fn check_table_names(tables: &Tables<'_>) -> Result<(), ConfigError> {
    let known: Vec<&str> = SERVER_TABLES
        .iter()
        .copied()
        .chain(
            REGISTRY
                .iter()
                .flat_map(|setup| setup.tables().iter().copied()),
        )
        .collect();
    match tables.names().find(|name| !known.contains(name)) {
        None => Ok(()),
        Some(unknown) => Err(ConfigError::Value {
            location: Location {
                file: tables.file().to_owned(),
                line: tables.line_of(unknown),
            },
            key: unknown.to_owned(),
            reason: format!(
                "unknown table `{unknown}`, expected one of {}",
                known.join(", ")
            ),
        }),
    }
}

/// `[admin]`.
fn admin(tables: &Tables<'_>) -> Result<Option<AdminConfig>, ConfigError> {
    let Some(table) = tables.read::<AdminTable>("admin")? else {
        return Ok(None);
    };
    let namespace = table.namespace.unwrap_or_else(|| "hearth".to_owned());
    // Prometheus metric names are [a-zA-Z_:][a-zA-Z0-9_:]*; the namespace is their prefix, and
    // colons are reserved for recording rules.
    let valid = namespace
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(tables.invalid(
            "admin.namespace",
            format!("{namespace:?} is not a Prometheus name: use letters, digits and _, not starting with a digit"),
        ));
    }
    Ok(Some(AdminConfig {
        listen: table.listen,
        namespace,
        metrics: table.metrics.unwrap_or_default(),
    }))
}

/// `[server]`, with the command line's listen addresses over the file's; and whether the file
/// sets `server.fast_path_memory` (unset, it follows the sources: [`default_fast_path_memory`]).
fn server(tables: &Tables<'_>, overrides: &Overrides) -> Result<(ServerConfig, bool), ConfigError> {
    let server: ServerTable = tables.read_or_default("server")?;
    let listen: Vec<SocketAddr> = if overrides.listen.is_empty() {
        server
            .listen
            .map(|list| list.into_iter().map(|a| a.0).collect())
            .unwrap_or_else(|| vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 53))])
    } else {
        overrides.listen.clone()
    };
    if listen.is_empty() {
        return Err(tables.invalid("server.listen", "no address to listen on"));
    }
    for (index, address) in listen.iter().enumerate() {
        if listen[..index].contains(address) {
            return Err(tables.invalid("server.listen", format!("{address} is listed twice")));
        }
    }
    let tcp_max_connections = server.tcp_max_connections.unwrap_or(1024);
    if !(1..=MAX_TCP_CONNECTIONS).contains(&tcp_max_connections) {
        return Err(tables.invalid(
            "server.tcp_max_connections",
            format!("must be between 1 and {MAX_TCP_CONNECTIONS}"),
        ));
    }
    let tcp_max_connections_per_client = server.tcp_max_connections_per_client.unwrap_or(64);
    if !(1..=MAX_TCP_CONNECTIONS).contains(&tcp_max_connections_per_client) {
        return Err(tables.invalid(
            "server.tcp_max_connections_per_client",
            format!("must be between 1 and {MAX_TCP_CONNECTIONS}"),
        ));
    }
    let max_in_flight = server.max_in_flight.unwrap_or(4096);
    if !(1..=MAX_IN_FLIGHT).contains(&max_in_flight) {
        return Err(tables.invalid(
            "server.max_in_flight",
            format!("must be between 1 and {MAX_IN_FLIGHT}"),
        ));
    }
    let max_waiting_per_client = server.max_waiting_per_client.unwrap_or(100);
    if max_waiting_per_client == 0 {
        return Err(tables.invalid(
            "server.max_waiting_per_client",
            "must be at least 1 (a client that may not wait cannot be forwarded for)",
        ));
    }
    let fast_path_memory_set = server.fast_path_memory.is_some();
    let fast_path_memory = server.fast_path_memory.unwrap_or(DEFAULT_FAST_PATH_MEMORY);
    if !(MIN_FAST_PATH_MEMORY..=MAX_FAST_PATH_MEMORY).contains(&fast_path_memory) {
        return Err(tables.invalid(
            "server.fast_path_memory",
            format!("must be between {MIN_FAST_PATH_MEMORY} and {MAX_FAST_PATH_MEMORY} bytes"),
        ));
    }
    let config = ServerConfig {
        listen,
        tcp_idle_timeout: tables.bounded(
            server.tcp_idle_timeout,
            Duration::from_secs(10),
            MAX_TCP_IDLE_TIMEOUT,
            "server.tcp_idle_timeout",
        )?,
        tcp_max_connections,
        tcp_max_connections_per_client,
        max_waiting_per_client,
        cookies: server.cookies.unwrap_or(true),
        max_in_flight,
        fast_path: server.fast_path.unwrap_or(true),
        fast_path_memory,
        watch_config: server.watch_config.unwrap_or(true),
        lameduck: match server.lameduck {
            None => Duration::from_secs(5),
            Some(HumanDuration(duration)) if duration > MAX_LAMEDUCK => {
                return Err(tables.invalid(
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
    Ok((config, fast_path_memory_set))
}

/// `[resolve]`: the order, and how answers are shaped.
fn resolve(
    tables: &Tables<'_>,
    text: &str,
) -> Result<(Vec<OrderEntry>, AnswerShaping), ConfigError> {
    let mut resolve: ResolveTable = tables.read_or_default("resolve")?;
    let mut filter_aaaa: Vec<hickory_proto::rr::Name> = resolve
        .filter_aaaa
        .take()
        .unwrap_or_default()
        .into_iter()
        .map(|domain| domain.0)
        .collect();
    // One filtered domain under another adds nothing; the root covers them all.
    filter_aaaa.sort_by_key(|name| name.num_labels());
    let mut kept: Vec<hickory_proto::rr::Name> = Vec::with_capacity(filter_aaaa.len());
    for name in filter_aaaa {
        if !kept.iter().any(|outer| outer.zone_of(&name)) {
            kept.push(name);
        }
    }
    let answers = AnswerShaping {
        rotate: resolve.rotate.take().unwrap_or(false),
        filter_aaaa: kept,
        // Set from the source that serves the cluster zone, when the chain is built.
        autopath: None,
    };
    Ok((order_of(resolve, tables, text)?, answers))
}

/// `resolve.order`, an nsswitch.conf, or the registry's order.
fn order_of(
    resolve: ResolveTable,
    tables: &Tables<'_>,
    text: &str,
) -> Result<Vec<OrderEntry>, ConfigError> {
    let known = crate::sources::names();
    match (resolve.order, resolve.nsswitch) {
        (Some(_), Some(_)) => Err(tables.invalid(
            "resolve.nsswitch",
            "set either resolve.order or resolve.nsswitch, not both",
        )),
        (Some(list), None) => {
            let mut entries = Vec::with_capacity(list.len());
            for (index, value) in list.into_iter().enumerate() {
                let span = value.span();
                let entry = value.into_inner().0;
                order::check_source(&entry, &known).map_err(|error| ConfigError::Value {
                    location: Location {
                        file: tables.file().to_owned(),
                        line: Some(line_of(text, span.start)),
                    },
                    key: format!("resolve.order[{index}]"),
                    reason: format!("{:?}: {error}", entry.to_string()),
                })?;
                entries.push(entry);
            }
            order::check_order(&entries, &known)
                .map_err(|error| tables.invalid("resolve.order", error.to_string()))?;
            Ok(entries)
        }
        (None, Some(path)) => {
            let read = order::read_nsswitch(&path, &known)?;
            if !read.skipped.is_empty() {
                tracing::info!(
                    file = %path.display(),
                    line = read.line,
                    skipped = ?read.skipped,
                    "nsswitch services Hearth does not have are skipped"
                );
            }
            Ok(read.entries)
        }
        (None, None) => Ok(known.iter().map(|name| OrderEntry::plain(name)).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::forward::{ForwardConfig, Policy};
    use crate::sources::hosts::FilesConfig;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, "test.toml", &Overrides::default())
    }

    #[test]
    fn embedded_default_loads() {
        let config = Config::load(None, &Overrides::default()).unwrap();
        assert_eq!(config.server.listen, ["127.0.0.1:5353".parse().unwrap()]);
        assert_eq!(
            config.source::<FilesConfig>().unwrap().paths,
            [PathBuf::from("/etc/hosts")]
        );
        assert_eq!(config.order.len(), 3);
    }

    /// Unset, the fast path's budget is 64 MiB, or half the cache's if that is more; set, it is
    /// what the file says, whatever the cache.
    #[test]
    fn the_fast_path_budget_follows_the_cache_unless_set() {
        let memory = |text: &str| load(text).unwrap().server.fast_path_memory;
        assert_eq!(memory(""), DEFAULT_FAST_PATH_MEMORY);
        assert_eq!(
            Config::load(None, &Overrides::default())
                .unwrap()
                .server
                .fast_path_memory,
            DEFAULT_FAST_PATH_MEMORY,
            "the embedded default: a 50 MiB cache"
        );
        assert_eq!(memory("[cache]\nmax_bytes = 1073741824\n"), 512 << 20);
        assert_eq!(
            memory("[cache]\nmax_bytes = 1048576\n"),
            DEFAULT_FAST_PATH_MEMORY,
            "never below the default"
        );
        assert_eq!(
            memory("[cache]\ncapacity = 0\nmax_bytes = 1073741824\n"),
            DEFAULT_FAST_PATH_MEMORY,
            "no cache, nothing to follow"
        );
        assert_eq!(
            memory("[server]\nfast_path_memory = 1048576\n[cache]\nmax_bytes = 1073741824\n"),
            1 << 20
        );
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
        let forward = config.source::<ForwardConfig>().unwrap();
        assert_eq!(forward.policy, Policy::RoundRobin);
        assert_eq!(forward.timeout, Duration::from_millis(500));
        assert_eq!(forward.udp_ports, 16_384, "the default pool");
        let socket_per_query = load("[forward]\nudp_ports = 0\n").unwrap();
        assert_eq!(
            socket_per_query
                .source::<ForwardConfig>()
                .unwrap()
                .udp_ports,
            0
        );
        assert_eq!(
            forward.upstreams[1].address,
            "192.0.2.2:53".parse().unwrap()
        );
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
            (
                "[forward]\nudp_ports = 65536\n",
                "test.toml: forward.udp_ports: must be at most 65535",
            ),
            ("[forward]\nudp_ports = -1\n", "test.toml:2: forward.udp_ports:"),
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
    fn access_rules_are_read_and_checked() {
        let config = load(
            "[access]\nallow = [\"10.0.0.0/8\", \"2001:db8::/32\"]\nrefuse = [\"192.0.2.0/24\"]\ndeny = [\"198.51.100.7\"]\n",
        )
        .unwrap();
        let rule = |text: &str| {
            let network: ipnet::IpNet = text.parse().unwrap();
            config
                .access
                .rules
                .iter()
                .find(|(n, _)| *n == network)
                .map(|(_, action)| *action)
        };
        assert_eq!(rule("10.0.0.0/8"), Some(AccessAction::Allow));
        assert_eq!(rule("198.51.100.7/32"), Some(AccessAction::Deny));
        assert_eq!(
            rule("127.0.0.0/8"),
            Some(AccessAction::Allow),
            "loopback, implicitly"
        );
        assert_eq!(
            rule("0.0.0.0/0"),
            Some(AccessAction::Refuse),
            "the rest, implicitly"
        );
        assert!(!config.access.built_in);
        assert!(load("").unwrap().access.built_in);
        let open = load("[access]\nallow = [\"0.0.0.0/0\"]\n").unwrap();
        assert!(open.access.allows_everyone());
        assert_eq!(
            open.access
                .rules
                .iter()
                .filter(|(n, _)| n.prefix_len() == 0)
                .count(),
            2,
            "the operator's 0.0.0.0/0 replaces the implicit one"
        );
        for (text, expected) in [
            (
                "[access]\nallow = [\"10.0.0.1/8\"]\n",
                "test.toml:2: access.allow[0]: \"10.0.0.1/8\" has bits set after the prefix: the network is 10.0.0.0/8",
            ),
            ("[access]\nrefuse = [\"ten\"]\n", "test.toml:2: access.refuse[0]: invalid prefix"),
            (
                "[access]\nallow = [\"10.0.0.0/8\"]\ndeny = [\"10.0.0.0/8\"]\n",
                "test.toml: access.deny: 10.0.0.0/8 is listed twice",
            ),
            ("[access]\npermit = []\n", "test.toml:2: access.permit: unknown field `permit`"),
        ] {
            let error = error_of(text);
            assert!(error.starts_with(expected), "{text:?}\n  gave {error:?}");
        }
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

    #[test]
    fn issue_15_keys_have_coredns_like_defaults() {
        let config = load("[forward]\nupstreams = [\"192.0.2.1\"]\n").unwrap();
        assert!(config.server.watch_config);
        assert_eq!(config.answers, AnswerShaping::default());

        let config = load(
            "[server]\nwatch_config = false\n[resolve]\nrotate = true\n\
             filter_aaaa = [\"corp.example\", \"a.corp.example\", \"lab\"]\n\
             [admin]\nlisten = \"127.0.0.1:9153\"\nmetrics = \"coredns\"\n\
             [forward]\nupstreams = [\"192.0.2.1\"]\n",
        )
        .unwrap();
        assert!(!config.server.watch_config);
        assert!(config.answers.rotate);
        let filtered: Vec<String> = config
            .answers
            .filter_aaaa
            .iter()
            .map(|n| n.to_string())
            .collect();
        // a.corp.example is inside corp.example: kept once.
        assert_eq!(filtered, ["lab.", "corp.example."]);
        assert_eq!(config.admin.unwrap().metrics, MetricNames::Coredns);

        let config = load(
            "[resolve]\nfilter_aaaa = [\"corp.example\", \".\"]\n[forward]\nupstreams = [\"192.0.2.1\"]\n",
        )
        .unwrap();
        assert_eq!(
            config.answers.filter_aaaa,
            [hickory_proto::rr::Name::root()]
        );

        let error = load("[admin]\nlisten = \"127.0.0.1:9153\"\nmetrics = \"bind\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("admin") && error.contains("metrics"),
            "{error}"
        );
    }
}
