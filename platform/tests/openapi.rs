//! The OpenAPI document is served, covers every route, and schemathesis (PyPI), run against the
//! real `platform` binary with a hook that signs requests as the router does, finds no 5xx and
//! no response that violates the document.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

const SECRET: &str = "platform-test-edge-secret-0123456789ab";
const PASSWORD: &str = "a-long-test-password-for-schemathesis";

#[tokio::test]
async fn schemathesis_finds_no_server_errors_or_schema_violations() {
    let db = testkit::database().await;
    let owner = db.connect_as("postgres").await;
    let tenant: uuid::Uuid = owner
        .query_one(
            "INSERT INTO tenants (slug, name, status, settings, stripe_account_id, stripe_account_status)
             VALUES ('alpha', 'Alpha Church', 'active', '{\"donations\": {\"funds\": [\"general\", \"roof\"]}}',
                     'acct_openapialpha', 'enabled') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // Accounts the schemathesis hook logs in with, created through the real CLI.
    let cli = |args: &[&str], var: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_platform"))
            .env_clear()
            .env("DATABASE_URL", db.web_url())
            .env("REDIS_URL", testkit::redis().url())
            .env("EDGE_SIGNING_SECRET", SECRET)
            .env(var, PASSWORD)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    cli(
        &[
            "admin",
            "create-user",
            "--email",
            "st-admin@platform.test",
            "--role",
            "owner",
        ],
        "ADMIN_PASSWORD",
    );
    cli(
        &[
            "tenant",
            "add-staff",
            "--slug",
            "alpha",
            "--email",
            "st-staff@alpha.test",
            "--role",
            "owner",
        ],
        "STAFF_PASSWORD",
    );
    let port = testkit::free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_platform"));
    cmd.env_clear()
        .env("DATABASE_URL", db.web_url())
        .env("REDIS_URL", testkit::redis().url())
        .env("EDGE_SIGNING_SECRET", SECRET)
        .env("TENANT_BASE_DOMAIN", "platform.test")
        .env("PLATFORM_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "PLATFORM_OPERATOR_LISTEN",
            format!("127.0.0.1:{}", testkit::free_port()),
        )
        .env("STRIPE_SECRET_KEY", testkit::STRIPE_TEST_KEY)
        .env("STRIPE_API_BASE", testkit::stripe().url())
        .env("STRIPE_WEBHOOK_SECRET", "whsec_openapi_test")
        .env("LOG_LEVEL", "warn")
        .arg("serve");
    let platform = testkit::Spawned::start(cmd, &dir.path().join("platform.log"));
    assert!(
        testkit::wait_for_port(port, Duration::from_secs(20)),
        "{}",
        platform.output()
    );

    // The document itself.
    let doc: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/api/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/donations",
        "/api/tenant",
        "/api/admin/tenants/{id}/stripe-account",
        "/api/webhooks/stripe/connect",
        "/api/health",
    ] {
        assert!(paths.contains_key(p), "{p} missing from the document");
    }
    // Operator endpoints are not part of the public API.
    for p in ["/metrics", "/ready", "/health"] {
        assert!(!paths.contains_key(p), "{p} is operator-only");
    }
    // The document is valid OpenAPI (a maintained validator, not our reading of the spec), and
    // every operation has its own operationId.
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let check = Command::new("python3")
        .args([
            "-c",
            "import json, sys; from openapi_spec_validator import validate; validate(json.load(open(sys.argv[1]))); print('valid')",
        ])
        .arg(&file)
        .output()
        .expect("python3 with openapi-spec-validator (ops/requirements-test.txt)");
    assert!(
        check.status.success(),
        "OpenAPI document invalid: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|ops| ops.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let total = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), total, "duplicate operationIds");
    let operations: usize = paths.values().map(|v| v.as_object().unwrap().len()).sum();
    // 35: the public API (plans, plan changes and staff settings included); /health, /ready
    // and /metrics are on the operator listener.
    assert_eq!(operations, 35, "every route is documented");

    let hooks = concat!(env!("CARGO_MANIFEST_DIR"), "/../testkit/py");
    let out = Command::new("st")
        .args(["run", &format!("http://127.0.0.1:{port}/api/openapi.json")])
        .args(["--checks", "not_a_server_error,response_schema_conformance,content_type_conformance"])
        .args(["--max-examples", "25", "--workers", "2", "--seed", "20261122"])
        .args(["--generation-with-security-parameters", "false"])
        .arg("--no-color")
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .env("PYTHONPATH", hooks)
        .env("EDGE_SECRET", SECRET)
        .env("TENANT_ID", tenant.to_string())
        .env("TENANT_HOST", "alpha.platform.test")
        .env("ADMIN_HOST", "admin.platform.test")
        .env("BASE_URL", format!("http://127.0.0.1:{port}"))
        .env("ADMIN_EMAIL", "st-admin@platform.test")
        .env("ADMIN_PASSWORD", PASSWORD)
        .env("STAFF_EMAIL", "st-staff@alpha.test")
        .env("STAFF_PASSWORD", PASSWORD)
        .current_dir(dir.path())
        .output()
        .expect("run schemathesis (`st`); install it with `python3 -m pip install -r ops/requirements-test.txt`");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{text}\n--- platform log ---\n{}",
        platform.output()
    );
    // It really got past authentication: signed tenant calls and logged-in admin and staff
    // calls, not only 401s.
    assert!(text.contains("passed"), "{text}");
    assert!(
        !text.contains("Authentication failed"),
        "the hook did not authenticate:\n{text}"
    );
}
