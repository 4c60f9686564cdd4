//! The front door's tables: `[access]` (who is answered) and `[rate_limit]` (how fast). The
//! server's admission step (`server::admission`) applies them; this module only reads and
//! checks them.

use serde::Deserialize;

use super::file::Tables;
use super::values::Prefix;
use super::ConfigError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessTable {
    allow: Option<Vec<Prefix>>,
    refuse: Option<Vec<Prefix>>,
    deny: Option<Vec<Prefix>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitTable {
    responses_per_second: u32,
    ipv4_prefix: Option<u8>,
    ipv6_prefix: Option<u8>,
    slip: Option<u32>,
    exempt: Option<Vec<Prefix>>,
}

/// What `[access]` does with a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessAction {
    /// Answered.
    Allow,
    /// Answered REFUSED, with Extended DNS Error 18 (Prohibited) for an EDNS client.
    Refuse,
    /// Dropped without a reply; over TCP, closed at accept.
    Deny,
}

/// `[access]`: a rule per prefix; the most specific prefix that holds the client decides, as
/// Unbound's `access-control`. Without `[access]`, [`AccessConfig::default`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessConfig {
    pub rules: Vec<(ipnet::IpNet, AccessAction)>,
    /// Whether the rules are the built-in default (no `[access]` in the file).
    pub built_in: bool,
}

/// Loopback (RFC 1122, RFC 4291): answered with or without `[access]`, unless a rule for the
/// same prefix says otherwise.
const LOOPBACK: [&str; 2] = ["127.0.0.0/8", "::1/128"];

/// Answered without `[access]`: the networks a client on the same host, site or cluster comes
/// from. Loopback (RFC 1122), private (RFC 1918), shared address space (RFC 6598, which
/// carrier-grade NAT and some Kubernetes pod networks use), link-local (RFC 3927, RFC 4291),
/// unique local IPv6 (RFC 4193).
pub const PRIVATE_NETWORKS: [&str; 9] = [
    LOOPBACK[0],
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    LOOPBACK[1],
    "fc00::/7",
    "fe80::/10",
];

impl Default for AccessConfig {
    /// Loopback and private networks answered, everyone else REFUSED: a copy of the config
    /// that lands on a public address is not an open resolver.
    fn default() -> Self {
        let mut rules = Vec::new();
        for network in PRIVATE_NETWORKS {
            if let Ok(network) = network.parse() {
                rules.push((network, AccessAction::Allow));
            }
        }
        rules.extend(Self::catch_all(AccessAction::Refuse));
        Self {
            rules,
            built_in: true,
        }
    }
}

impl AccessConfig {
    /// `0.0.0.0/0` and `::/0` with `action`.
    fn catch_all(action: AccessAction) -> [(ipnet::IpNet, AccessAction); 2] {
        [
            (ipnet::IpNet::V4(ipnet::Ipv4Net::default()), action),
            (ipnet::IpNet::V6(ipnet::Ipv6Net::default()), action),
        ]
    }

    /// Whether a client anywhere (`0.0.0.0/0` or `::/0`) is answered.
    pub fn allows_everyone(&self) -> bool {
        self.rules
            .iter()
            .any(|(network, action)| network.prefix_len() == 0 && *action == AccessAction::Allow)
    }
}

/// The most responses per second `[rate_limit]` can allow a prefix: what the limiter's 24-bit
/// count holds.
pub const MAX_RESPONSES_PER_SECOND: u32 = (1 << 24) - 1;

/// `[rate_limit]`, validated: response rate limiting as BIND and Knot do it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Responses per second per client prefix.
    pub responses_per_second: u32,
    /// How much of a client's address is its prefix (BIND's defaults: /24 and /56).
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Every `slip`-th limited response goes out truncated (TC=1, no records); the rest are
    /// dropped. 0 drops all, 1 truncates all. BIND's and Knot's default is 2.
    pub slip: u32,
    /// Prefixes never limited.
    pub exempt: Vec<ipnet::IpNet>,
}

/// `[access]`: the operator's rules, with loopback still answered and everyone else refused
/// unless a rule for the same prefix says otherwise.
pub(super) fn access(tables: &Tables<'_>) -> Result<AccessConfig, ConfigError> {
    let Some(table) = tables.read::<AccessTable>("access")? else {
        return Ok(AccessConfig::default());
    };
    let mut rules: Vec<(ipnet::IpNet, AccessAction)> = Vec::new();
    for (key, list, action) in [
        ("access.allow", table.allow, AccessAction::Allow),
        ("access.refuse", table.refuse, AccessAction::Refuse),
        ("access.deny", table.deny, AccessAction::Deny),
    ] {
        for Prefix(network) in list.unwrap_or_default() {
            if let Some((_, other)) = rules.iter().find(|(n, _)| *n == network) {
                return Err(tables.invalid(
                    key,
                    format!("{network} is listed twice (also {other:?}): one action per prefix"),
                ));
            }
            rules.push((network, action));
        }
    }
    let implicit = LOOPBACK
        .iter()
        .filter_map(|n| n.parse().ok())
        .map(|network| (network, AccessAction::Allow))
        .chain(AccessConfig::catch_all(AccessAction::Refuse));
    for (network, action) in implicit.collect::<Vec<_>>() {
        if !rules.iter().any(|(n, _)| *n == network) {
            rules.push((network, action));
        }
    }
    Ok(AccessConfig {
        rules,
        built_in: false,
    })
}

/// `[rate_limit]`: off unless the table is there.
pub(super) fn rate_limit(tables: &Tables<'_>) -> Result<Option<RateLimitConfig>, ConfigError> {
    let Some(table) = tables.read::<RateLimitTable>("rate_limit")? else {
        return Ok(None);
    };
    if !(1..=MAX_RESPONSES_PER_SECOND).contains(&table.responses_per_second) {
        return Err(tables.invalid(
            "rate_limit.responses_per_second",
            format!("must be between 1 and {MAX_RESPONSES_PER_SECOND}"),
        ));
    }
    let ipv4_prefix = table.ipv4_prefix.unwrap_or(24);
    if ipv4_prefix > 32 {
        return Err(tables.invalid("rate_limit.ipv4_prefix", "must be at most 32"));
    }
    let ipv6_prefix = table.ipv6_prefix.unwrap_or(56);
    if ipv6_prefix > 128 {
        return Err(tables.invalid("rate_limit.ipv6_prefix", "must be at most 128"));
    }
    let slip = table.slip.unwrap_or(2);
    if slip > 10 {
        // BIND's limit: beyond 10 a slip is too rare to help a real client behind the prefix.
        return Err(tables.invalid("rate_limit.slip", "must be between 0 and 10"));
    }
    Ok(Some(RateLimitConfig {
        responses_per_second: table.responses_per_second,
        ipv4_prefix,
        ipv6_prefix,
        slip,
        exempt: table
            .exempt
            .unwrap_or_default()
            .into_iter()
            .map(|Prefix(network)| network)
            .collect(),
    }))
}
