//! Configuration loading: file, environment overrides (including `_FILE` secrets), validation.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::io::Write;

use tenant_config::config::{
    load, ConfigError, MapEnv, PlatformConfig, RouterConfig, WorkersConfig,
};

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn platform_env<'a>(extra: &[(&'a str, &'a str)]) -> MapEnv {
    let mut pairs = vec![
        ("DATABASE_URL", "postgres://platform_web@127.0.0.1/platform"),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        ("EDGE_SIGNING_SECRET", SECRET),
    ];
    pairs.extend_from_slice(extra);
    MapEnv::from_pairs(pairs)
}

#[test]
fn environment_overrides_the_file() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        f,
        "listen = '127.0.0.1:9999'\n[domain]\nbase_domain = 'file.example'\n[stripe]\nplatform_fee_percent = 3.5"
    )
    .unwrap();
    let env = platform_env(&[
        ("TENANT_BASE_DOMAIN", "env.example"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_a, whsec_b"),
    ]);
    let c: PlatformConfig = load(Some(f.path()), &env).unwrap();
    assert_eq!(c.domain.base_domain, "env.example");
    assert_eq!(c.listen, "127.0.0.1:9999");
    assert_eq!(c.stripe.fee_basis_points().unwrap(), 350);
    assert_eq!(c.stripe.webhook_secrets.len(), 2);
    assert_eq!(c.domain.rules().unwrap().admin(), "admin.env.example");
}

#[test]
fn secrets_can_come_from_files_and_are_never_debug_printed() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "{SECRET}").unwrap();
    let path = f.path().to_str().unwrap().to_owned();
    let env = MapEnv::from_pairs([
        (
            "DATABASE_URL",
            "postgres://platform_workers:pw-in-url@127.0.0.1/platform",
        ),
        ("CRON_SECRET_FILE", path.as_str()),
    ]);
    let c: WorkersConfig = load(None, &env).unwrap();
    assert_eq!(c.cron_secret.expose(), SECRET, "trailing newline trimmed");
    let debug = format!("{c:?}");
    assert!(
        !debug.contains(SECRET) && !debug.contains("pw-in-url"),
        "{debug}"
    );

    let missing = MapEnv::from_pairs([
        ("DATABASE_URL", "postgres://x@127.0.0.1/p"),
        ("CRON_SECRET_FILE", "/nonexistent/secret"),
    ]);
    let err = load::<WorkersConfig>(None, &missing)
        .unwrap_err()
        .to_string();
    assert!(err.contains("CRON_SECRET_FILE"), "{err}");
}

#[test]
fn errors_name_the_field() {
    let cases: Vec<(MapEnv, &str)> = vec![
        (
            platform_env(&[("DATABASE_MAX_CONNECTIONS", "0")]),
            "database.max_connections",
        ),
        (
            platform_env(&[("DATABASE_MAX_CONNECTIONS", "ten")]),
            "DATABASE_MAX_CONNECTIONS",
        ),
        (
            platform_env(&[("TENANT_BASE_DOMAIN", "localhost")]),
            "domain.base_domain",
        ),
        (
            platform_env(&[("ADMIN_HOST", "bad host")]),
            "domain.admin_host",
        ),
        (platform_env(&[("REDIS_URL", "http://x")]), "redis.url"),
        (platform_env(&[("PLATFORM_LISTEN", "everywhere")]), "listen"),
        (
            platform_env(&[("STRIPE_SECRET_KEY", "pk_live_x")]),
            "stripe.secret_key",
        ),
        (
            platform_env(&[("STRIPE_WEBHOOK_SECRET", "nope")]),
            "stripe.webhook_secrets",
        ),
        (
            platform_env(&[("STRIPE_PLATFORM_FEE_PERCENT", "150")]),
            "stripe.platform_fee_percent",
        ),
        (
            platform_env(&[("ENABLE_CUSTOM_DOMAINS", "maybe")]),
            "ENABLE_CUSTOM_DOMAINS",
        ),
        (
            platform_env(&[("STRIPE_WEBHOOK_BATCH_MAX", "0")]),
            "stripe.webhook_batch_max",
        ),
        (
            platform_env(&[("STRIPE_WEBHOOK_BATCHES", "0")]),
            "stripe.webhook_batches",
        ),
    ];
    for (env, field) in cases {
        let err = load::<PlatformConfig>(None, &env).unwrap_err().to_string();
        assert!(err.contains(field), "expected {field} in: {err}");
    }
    let err = load::<PlatformConfig>(None, &MapEnv::default()).unwrap_err();
    assert!(matches!(err, ConfigError::Shape { .. }), "{err}");
    // A pool smaller than the default number of webhook groups is still a valid setup.
    let small = load::<PlatformConfig>(None, &platform_env(&[("DATABASE_MAX_CONNECTIONS", "2")]));
    assert!(small.is_ok(), "{small:?}");
}

#[test]
fn unknown_keys_are_refused_with_their_path() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        f,
        "[upstreams]\nplatform = ['127.0.0.1:8080']\nworker = ['127.0.0.1:1']"
    )
    .unwrap();
    let env = MapEnv::from_pairs([
        ("EDGE_SIGNING_SECRET", SECRET),
        ("ROUTER_STATIC_TENANTS", "/x"),
    ]);
    let err = load::<RouterConfig>(Some(f.path()), &env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("upstreams") && err.contains("worker"), "{err}");
}

#[test]
fn router_upstream_lists_come_from_comma_separated_env() {
    let env = MapEnv::from_pairs([
        ("EDGE_SIGNING_SECRET", SECRET),
        ("ROUTER_STATIC_TENANTS", "/tmp/t.toml"),
        ("UPSTREAM_PLATFORM", "127.0.0.1:8081, 127.0.0.1:8082,"),
    ]);
    let c: RouterConfig = load(None, &env).unwrap();
    let platform: Vec<String> = c.upstreams.platform.iter().map(|a| a.to_string()).collect();
    assert_eq!(platform, ["127.0.0.1:8081", "127.0.0.1:8082"]);
    let bad = MapEnv::from_pairs([
        ("EDGE_SIGNING_SECRET", SECRET),
        ("ROUTER_STATIC_TENANTS", "/tmp/t.toml"),
        ("UPSTREAM_PLATFORM", "platform:http"),
    ]);
    let err = load::<RouterConfig>(None, &bad).unwrap_err().to_string();
    assert!(err.contains("upstreams.platform"), "{err}");
}
