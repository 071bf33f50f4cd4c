//! Rate-limit configuration in nginx's `limit_req` vocabulary: zones with a key, a rate
//! (`N r/s` or `N r/m`), a burst, `nodelay` or `delay=N`, and which requests they cover.
//!
//! The defaults are the seeds' zones (`general` 10 r/s burst 20, `api` 30 r/m burst 50, `auth`
//! 5 r/m burst 10, all `nodelay`), with the auth zone keyed by client address *and* host so one
//! address signing in to several sites does not share one small budget.

use serde::Deserialize;

use super::{Cidr, ConfigError};

/// The `[rate_limits]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    /// Limits are checked at all.
    pub enabled: bool,
    /// The zones, checked in this order for every request they apply to (nginx's multi-zone
    /// rule: none is consumed when any rejects; the largest delay wins).
    #[serde(rename = "zone")]
    pub zones: Vec<LimitZone>,
    /// The tenant-wide limit taken from the tenant's plan (`RateLimitPolicy`).
    pub plan: PlanLimit,
    /// Clients never limited (monitoring, the office), as addresses or CIDR blocks.
    pub exempt_ips: Vec<Cidr>,
    /// Paths never limited (exact path, or prefix when it ends in `/`): ACME challenges and
    /// the public status probe `/api/health` by default (monitors and balancers poll it; the
    /// platform answers it from a half-second cache, so polling costs no queries). Operator
    /// paths never reach the limiter (they are refused on the public listeners).
    pub exempt_paths: Vec<String>,
    /// Longest wait for Redis per request, in milliseconds; past it the request is decided
    /// locally.
    pub redis_timeout_ms: u64,
    /// Consecutive Redis failures that open the circuit breaker (no Redis calls at all until a
    /// background probe succeeds).
    pub breaker_failures: u32,
    /// Milliseconds between probes of an unreachable Redis.
    pub breaker_probe_ms: u64,
    /// Router instances sharing the limits: the local fallback divides rates and bursts by it.
    pub instances: u32,
    /// Most keys the local fallback remembers per zone (older ones are evicted).
    pub local_max_keys: usize,
    /// Prefix of the Redis keys.
    pub key_prefix: String,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            zones: default_zones(),
            plan: PlanLimit::default(),
            exempt_ips: Vec::new(),
            exempt_paths: vec!["/.well-known/acme-challenge/".into(), "/api/health".into()],
            redis_timeout_ms: 5,
            breaker_failures: 3,
            breaker_probe_ms: 1_000,
            instances: 1,
            local_max_keys: 100_000,
            key_prefix: "rl".into(),
        }
    }
}

/// The per-plan limit: each tenant's plan gives a rate (r/s) and burst.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanLimit {
    /// Enforce the plan's limit.
    pub enabled: bool,
    /// What is counted together: `["tenant"]` is one budget for the whole tenant site.
    pub key: Vec<LimitKey>,
    /// Status of a limited answer.
    pub status: u16,
    /// Send `RateLimit` headers on allowed answers too.
    pub advertise: bool,
}

impl Default for PlanLimit {
    fn default() -> Self {
        Self {
            enabled: true,
            key: vec![LimitKey::Tenant],
            status: 429,
            advertise: false,
        }
    }
}

/// One `limit_req` zone.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LimitZone {
    /// Name (metrics label, `RateLimit` policy name): lower-case letters, digits, `-`, `_`.
    pub name: String,
    /// What is counted together; the parts are joined. A request without one of the parts
    /// (no tenant on the apex) is not limited by this zone, as nginx skips an empty key.
    #[serde(default = "client_ip_key")]
    pub key: Vec<LimitKey>,
    /// `N r/s` or `N r/m`.
    pub rate: Rate,
    /// Requests allowed above the rate.
    #[serde(default)]
    pub burst: u32,
    /// Forward excess requests within the burst at once.
    #[serde(default)]
    pub nodelay: bool,
    /// Forward the first `delay` excess requests at once and delay the rest (nginx `delay=N`).
    #[serde(default)]
    pub delay: Option<u32>,
    /// Path prefixes the zone covers (`/` for all).
    #[serde(default = "root_path")]
    pub paths: Vec<String>,
    /// Path prefixes left out even when `paths` matches (nginx's more specific locations).
    #[serde(default)]
    pub except_paths: Vec<String>,
    /// Methods covered (upper case); empty for all.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Host classes covered; empty for all but webhooks.
    #[serde(default)]
    pub hosts: Vec<HostClass>,
    /// Status of a limited answer (nginx's default is 503; ours 429).
    #[serde(default = "too_many")]
    pub status: u16,
    /// Send `RateLimit-Policy` and `RateLimit` on allowed answers too (API routes).
    #[serde(default)]
    pub advertise: bool,
}

/// A part of a zone's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKey {
    /// The client address (the peer, or through trusted proxies the forwarded address).
    ClientIp,
    /// The canonical host name.
    Host,
    /// The resolved tenant.
    Tenant,
    /// The route class (apex, admin, tenant, webhook).
    Route,
}

/// Host classes a zone can cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostClass {
    /// The marketing site.
    Apex,
    /// The admin console.
    Admin,
    /// Tenant sites (subdomains and custom domains).
    Tenant,
    /// Stripe webhooks.
    Webhook,
}

/// A rate as nginx stores it: milli-requests per second, truncated (`1r/m` is 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Rate {
    /// Requests per `per_secs`, as written.
    pub count: u32,
    /// 1 (`r/s`) or 60 (`r/m`).
    pub per_secs: u32,
}

impl Rate {
    /// Milli-requests per second, truncated as nginx does.
    pub fn milli_per_sec(&self) -> u64 {
        u64::from(self.count) * 1000 / u64::from(self.per_secs)
    }

    /// Parses `10r/s`, `5 r/m`.
    pub fn parse(s: &str) -> Option<Self> {
        let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let (n, unit) = compact.split_once("r/")?;
        let per_secs = match unit {
            "s" => 1,
            "m" => 60,
            _ => return None,
        };
        let count: u32 = n.parse().ok()?;
        Some(Self { count, per_secs })
    }
}

impl TryFrom<String> for Rate {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Rate::parse(&s).ok_or_else(|| format!("{s:?} is not a rate like \"10r/s\" or \"5r/m\""))
    }
}

fn client_ip_key() -> Vec<LimitKey> {
    vec![LimitKey::ClientIp]
}

fn root_path() -> Vec<String> {
    vec!["/".into()]
}

fn too_many() -> u16 {
    429
}

const LOGIN_PATHS: [&str; 4] = [
    "/api/staff/login",
    "/api/admin/login",
    "/staff/login",
    "/login",
];

/// The seeds' zones (seed 002's nginx `limit_req`: `api` 10 r/s burst 20, `auth` 5 r/m burst 5,
/// and seed 000's `general` 10 r/s burst 20 for everything outside `/api/`). Logins are in the
/// `auth` zone for `POST` (the guessing that matters); their `GET` and every other `/api/`
/// request count in `api`, so no method on a login path goes unlimited.
pub fn default_zones() -> Vec<LimitZone> {
    let zone = |name: &str, rate: &str, burst: u32| LimitZone {
        name: name.into(),
        key: client_ip_key(),
        rate: Rate::parse(rate).unwrap_or(Rate {
            count: 1,
            per_secs: 1,
        }),
        burst,
        nodelay: true,
        delay: None,
        paths: root_path(),
        except_paths: Vec::new(),
        methods: Vec::new(),
        hosts: Vec::new(),
        status: 429,
        advertise: false,
    };
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    vec![
        LimitZone {
            except_paths: strings(&["/api/"]),
            ..zone("general", "10r/s", 20)
        },
        LimitZone {
            paths: strings(&["/api/"]),
            advertise: true,
            ..zone("api", "10r/s", 20)
        },
        LimitZone {
            key: vec![LimitKey::ClientIp, LimitKey::Host],
            paths: strings(&LOGIN_PATHS),
            methods: strings(&["POST"]),
            advertise: true,
            ..zone("auth", "5r/m", 5)
        },
    ]
}

impl RateLimits {
    /// Checks every zone; errors name the field at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, m: String| Err(ConfigError::invalid(field, m));
        if !(1..=1_000).contains(&self.redis_timeout_ms) {
            return bad(
                "rate_limits.redis_timeout_ms",
                "must be between 1 and 1000".into(),
            );
        }
        if !(1..=1_000).contains(&self.breaker_failures) {
            return bad(
                "rate_limits.breaker_failures",
                "must be between 1 and 1000".into(),
            );
        }
        if !(10..=60_000).contains(&self.breaker_probe_ms) {
            return bad(
                "rate_limits.breaker_probe_ms",
                "must be between 10 and 60000".into(),
            );
        }
        if !(1..=1_000).contains(&self.instances) {
            return bad("rate_limits.instances", "must be between 1 and 1000".into());
        }
        if !(100..=100_000_000).contains(&self.local_max_keys) {
            return bad(
                "rate_limits.local_max_keys",
                "must be between 100 and 100000000".into(),
            );
        }
        if self.key_prefix.is_empty() || !self.key_prefix.is_ascii() {
            return bad("rate_limits.key_prefix", "must be non-empty ASCII".into());
        }
        for p in &self.exempt_paths {
            if !p.starts_with('/') {
                return bad(
                    "rate_limits.exempt_paths",
                    format!("{p:?} must start with /"),
                );
            }
        }
        if self.plan.key.is_empty() || !(400..=599).contains(&self.plan.status) {
            return bad(
                "rate_limits.plan",
                "key must name at least one part and status be 400-599".into(),
            );
        }
        let mut names: Vec<&str> = Vec::new();
        for z in &self.zones {
            let name = &z.name;
            let ok_name = !name.is_empty()
                && name.len() <= 32
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !ok_name || name == "plan" {
                return bad(
                    "rate_limits.zone.name",
                    format!("{name:?}: 1-32 of a-z 0-9 - _, and not \"plan\""),
                );
            }
            if names.contains(&name.as_str()) {
                return bad("rate_limits.zone.name", format!("{name:?} appears twice"));
            }
            names.push(name);
            if z.key.is_empty() {
                return bad(
                    "rate_limits.zone.key",
                    format!("zone {name:?} needs at least one key part"),
                );
            }
            if z.rate.count == 0 || z.rate.count > 1_000_000 || z.rate.milli_per_sec() == 0 {
                return bad(
                    "rate_limits.zone.rate",
                    format!("zone {name:?}: rate must be 1 to 1000000 per unit"),
                );
            }
            if z.burst > 1_000_000 {
                return bad(
                    "rate_limits.zone.burst",
                    format!("zone {name:?}: burst must be at most 1000000"),
                );
            }
            if z.nodelay && z.delay.is_some() {
                return bad(
                    "rate_limits.zone.delay",
                    format!("zone {name:?}: nodelay and delay exclude each other"),
                );
            }
            if z.paths.is_empty() {
                return bad(
                    "rate_limits.zone.paths",
                    format!("zone {name:?} needs at least one path prefix"),
                );
            }
            if let Some(p) = z
                .paths
                .iter()
                .chain(&z.except_paths)
                .find(|p| !p.starts_with('/'))
            {
                return bad(
                    "rate_limits.zone.paths",
                    format!("zone {name:?}: {p:?} must start with /"),
                );
            }
            if let Some(m) = z
                .methods
                .iter()
                .find(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()))
            {
                return bad(
                    "rate_limits.zone.methods",
                    format!("zone {name:?}: {m:?} is not an upper-case method"),
                );
            }
            if !(400..=599).contains(&z.status) {
                return bad(
                    "rate_limits.zone.status",
                    format!("zone {name:?}: status must be 400-599"),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<RateLimits, String> {
        let r: RateLimits = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        r.validate().map_err(|e| e.to_string())?;
        Ok(r)
    }

    #[test]
    fn rates_truncate_like_nginx() {
        assert_eq!(Rate::parse("1r/m").unwrap().milli_per_sec(), 16);
        assert_eq!(Rate::parse("5 r/m").unwrap().milli_per_sec(), 83);
        assert_eq!(Rate::parse("10r/s").unwrap().milli_per_sec(), 10_000);
        assert!(Rate::parse("10r/h").is_none());
        assert!(Rate::parse("ten r/s").is_none());
    }

    #[test]
    fn defaults_are_the_seeds_zones() {
        let d = RateLimits::default();
        d.validate().unwrap();
        let z: Vec<(&str, u64, u32)> = d
            .zones
            .iter()
            .map(|z| (z.name.as_str(), z.rate.milli_per_sec(), z.burst))
            .collect();
        assert_eq!(
            z,
            [
                ("general", 10_000, 20),
                ("api", 10_000, 20),
                ("auth", 83, 5)
            ]
        );
        assert!(d.zones.iter().all(|z| z.nodelay && z.status == 429));
    }

    #[test]
    fn zones_read_from_toml() {
        let r = parse(
            r#"
            [[zone]]
            name = "api"
            key = ["client_ip", "host"]
            rate = "10r/s"
            burst = 20
            delay = 5
            paths = ["/api/"]
            methods = ["POST"]
            hosts = ["tenant"]
            status = 503
            "#,
        )
        .unwrap();
        assert_eq!(r.zones.len(), 1);
        assert_eq!(r.zones[0].delay, Some(5));
        assert_eq!(r.zones[0].hosts, [HostClass::Tenant]);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                "[[zone]]\nname = \"a\"\nrate = \"0r/s\"",
                "rate_limits.zone.rate",
            ),
            (
                "[[zone]]\nname = \"a\"\nrate = \"1r/s\"\nnodelay = true\ndelay = 1",
                "rate_limits.zone.delay",
            ),
            (
                "[[zone]]\nname = \"A\"\nrate = \"1r/s\"",
                "rate_limits.zone.name",
            ),
            (
                "[[zone]]\nname = \"a\"\nrate = \"1r/s\"\npaths = [\"api\"]",
                "rate_limits.zone.paths",
            ),
            (
                "[[zone]]\nname = \"a\"\nrate = \"1r/s\"\nstatus = 200",
                "rate_limits.zone.status",
            ),
            (
                "[[zone]]\nname = \"a\"\nrate = \"1r/s\"\nmethods = [\"get\"]",
                "rate_limits.zone.methods",
            ),
            ("redis_timeout_ms = 0", "rate_limits.redis_timeout_ms"),
            ("instances = 0", "rate_limits.instances"),
        ];
        for (text, field) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.contains(field), "{text}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
        assert!(parse("[[zone]]\nname = \"a\"\nrate = \"fast\"").is_err());
        assert!(parse("[[zone]]\nname = \"a\"\nrate = \"1r/s\"\nbogus = 1").is_err());
    }
}
