//! Tenant-host API through the real router contract: signed context required, and row-level
//! security enforced through HTTP, against real PostgreSQL and Redis.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tenant_config::config::{MapEnv, PlatformConfig};
use tenant_config::TenantId;
use tower::ServiceExt;
use uuid::Uuid;

const SECRET: &str = "platform-test-edge-secret-0123456789ab";

struct Env {
    _db: testkit::TestDb,
    owner: tokio_postgres::Client,
    state: platform::AppState,
    a: Uuid,
    b: Uuid,
    b_donation: Uuid,
}

async fn env() -> Env {
    let db = testkit::database().await;
    let owner = db.connect_as("postgres").await;
    let mut ids = Vec::new();
    for (slug, name) in [("alpha", "Alpha Church"), ("bravo", "Bravo Chapel")] {
        let id: Uuid = owner
            .query_one(
                "INSERT INTO tenants (slug, name, status, settings) VALUES ($1, $2, 'active',
                   '{\"donations\": {\"funds\": [\"general\", \"roof\"]}}') RETURNING id",
                &[&slug, &name],
            )
            .await
            .unwrap()
            .get(0);
        ids.push(id);
    }
    let donor: Uuid = owner
        .query_one(
            "INSERT INTO donors (tenant_id, email) VALUES ($1, 'd@bravo.example') RETURNING id",
            &[&ids[1]],
        )
        .await
        .unwrap()
        .get(0);
    let b_donation: Uuid = owner
        .query_one(
            "INSERT INTO donations (tenant_id, donor_id, kind, amount_minor, currency, fee_minor, net_minor)
             VALUES ($1, $2, 'one_time', 5000, 'usd', 100, 4900) RETURNING id",
            &[&ids[1], &donor],
        )
        .await
        .unwrap()
        .get(0);
    let env = MapEnv::from_pairs([
        ("DATABASE_URL", db.web_url().as_str()),
        ("REDIS_URL", testkit::redis().url().as_str()),
        ("EDGE_SIGNING_SECRET", SECRET),
    ]);
    let config: PlatformConfig = tenant_config::config::load(None, &env).unwrap();
    Env {
        state: platform::AppState::from_config(&config).unwrap(),
        _db: db,
        owner,
        a: ids[0],
        b: ids[1],
        b_donation,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A request as the router would send it, signed with `secret` at time `ts`.
fn signed(path: &str, route: &str, tenant: Option<Uuid>, secret: &str, ts: u64) -> Request<Body> {
    let mut s = testkit::edge::Signed::new(secret, route, "alpha.platform.test").at(ts);
    if let Some(t) = tenant {
        s = s.tenant(t);
    }
    s.request("GET", path, None).body(Body::empty()).unwrap()
}

async fn send(state: &platform::AppState, req: Request<Body>) -> (StatusCode, String, Value) {
    let resp = platform::app(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        ctype,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn tenant_routes_require_a_valid_fresh_signature() {
    let e = env().await;
    let (code, _, body) = send(
        &e.state,
        signed("/api/tenant", "tenant", Some(e.a), SECRET, now()),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["name"], "Alpha Church");
    assert_eq!(
        body["donations"]["funds"],
        serde_json::json!(["general", "roof"])
    );

    let unsigned = Request::get("/api/tenant")
        .header("x-tenant-id", e.a.to_string())
        .header("x-route", "tenant")
        .body(Body::empty())
        .unwrap();
    let forged = signed(
        "/api/tenant",
        "tenant",
        Some(e.a),
        "someone-elses-secret-0123456789abcdef",
        now(),
    );
    let stale = signed("/api/tenant", "tenant", Some(e.a), SECRET, now() - 120);
    let mut swapped = signed("/api/tenant", "tenant", Some(e.a), SECRET, now());
    swapped
        .headers_mut()
        .insert("x-tenant-id", e.b.to_string().parse().unwrap());
    for (what, req) in [
        ("unsigned", unsigned),
        ("forged", forged),
        ("stale", stale),
        ("swapped tenant", swapped),
    ] {
        let (code, ctype, body) = send(&e.state, req).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(ctype, "application/problem+json", "{what}");
        assert_eq!(body["status"], 401);
        assert!(
            body.get("detail").is_none(),
            "{what}: no detail leaked: {body}"
        );
    }

    // A valid signature for the apex route does not open tenant endpoints.
    let (code, _, _) = send(&e.state, signed("/api/tenant", "apex", None, SECRET, now())).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_tenants_rows_are_invisible_through_the_api() {
    let e = env().await;
    let path = format!("/api/donations/{}", e.b_donation);
    let (code, _, body) = send(&e.state, signed(&path, "tenant", Some(e.a), SECRET, now())).await;
    assert_eq!(
        code,
        StatusCode::NOT_FOUND,
        "alpha cannot see bravo's donation: {body}"
    );
    let (code, _, body) = send(&e.state, signed(&path, "tenant", Some(e.b), SECRET, now())).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["amount_minor"], 5000);
    assert_eq!(body["status"], "pending");

    let (code, _, body) = send(
        &e.state,
        signed("/api/donations/nope", "tenant", Some(e.b), SECRET, now()),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "id");

    // A tenant id that does not exist sees nothing at all.
    let ghost = Uuid::new_v4();
    let (code, _, _) = send(
        &e.state,
        signed("/api/tenant", "tenant", Some(ghost), SECRET, now()),
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn profiles_are_cached_and_invalidated_per_tenant() {
    let e = env().await;
    let get_name = |state: platform::AppState, t: Uuid| async move {
        send(
            &state,
            signed("/api/tenant", "tenant", Some(t), SECRET, now()),
        )
        .await
        .2["name"]
            .clone()
    };
    assert_eq!(get_name(e.state.clone(), e.a).await, "Alpha Church");
    e.owner
        .execute(
            "UPDATE tenants SET name = 'Alpha Renamed' WHERE id = $1",
            &[&e.a],
        )
        .await
        .unwrap();
    assert_eq!(
        get_name(e.state.clone(), e.a).await,
        "Alpha Church",
        "served from cache"
    );

    // A second instance (fresh process memory) still hits Redis.
    let other = platform::AppState {
        profiles: platform::cache::ProfileCache::new(e.state.redis.clone()),
        ..e.state.clone()
    };
    assert_eq!(
        get_name(other.clone(), e.a).await,
        "Alpha Church",
        "second level: Redis"
    );

    e.state.profiles.invalidate(TenantId(e.a)).await;
    assert_eq!(get_name(e.state.clone(), e.a).await, "Alpha Renamed");
    assert_eq!(get_name(e.state.clone(), e.b).await, "Bravo Chapel");
}
