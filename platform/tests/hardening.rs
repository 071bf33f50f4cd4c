//! Authorization and input hardening, as an attacker would try it: every admin and staff route
//! asked by every role, sessions of changed accounts, control characters in every kind of
//! input, replayed and re-targeted edge signatures, caching headers on private answers, the
//! cancel page across tenants, and HTTP statuses for malformed bodies. Against real
//! PostgreSQL and Redis.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use platform::access::{Access, AdminRole, StaffRole};
use serde_json::{json, Value};
use tenant_config::config::{MapEnv, PlatformConfig};
use testkit::edge::Signed;
use tower::ServiceExt;
use uuid::Uuid;

const SECRET: &str = "hardening-test-edge-secret-0123456789ab";
const OLD_SECRET: &str = "hardening-test-old-edge-secret-012345678";
const PASSWORD: &str = "correct horse battery staple";
const WHSEC: &str = "whsec_hardening_test";

struct Env {
    _db: testkit::TestDb,
    owner: tokio_postgres::Client,
    state: platform::AppState,
    tenant: Uuid,
    other: Uuid,
}

async fn env() -> Env {
    let db = testkit::database().await;
    let dns_addr = format!("127.0.0.1:{}", testkit::dns().port);
    let env = MapEnv::from_pairs([
        ("DATABASE_URL", db.web_url().as_str()),
        ("REDIS_URL", testkit::redis().url().as_str()),
        ("EDGE_SIGNING_SECRET", SECRET),
        ("EDGE_SIGNING_SECRET_PREVIOUS", OLD_SECRET),
        ("DNS_RESOLVER", dns_addr.as_str()),
        ("STRIPE_WEBHOOK_SECRET", WHSEC),
    ]);
    let config: PlatformConfig = tenant_config::config::load(None, &env).unwrap();
    let state = platform::AppState::from_config(&config).unwrap();
    let tenant =
        platform::admin::tenants::create_tenant(&state.db, "alpha", "Alpha", "starter", None)
            .await
            .unwrap()
            .id;
    let other =
        platform::admin::tenants::create_tenant(&state.db, "bravo", "Bravo", "starter", None)
            .await
            .unwrap()
            .id;
    for role in AdminRole::ALL {
        let email = format!("{}@platform.test", role.as_str());
        platform::admin::auth::create_admin(&state.db, &email, PASSWORD, role.as_str())
            .await
            .unwrap();
    }
    for role in StaffRole::ALL {
        let email = format!("{}@alpha.test", role.as_str());
        platform::tenant::staff::create_staff(&state.db, "alpha", &email, PASSWORD, role.as_str())
            .await
            .unwrap();
    }
    Env {
        owner: db.connect_as("postgres").await,
        _db: db,
        state,
        tenant,
        other,
    }
}

fn admin_edge() -> Signed {
    Signed::new(SECRET, "admin", "admin.platform.test")
}

fn tenant_edge(t: Uuid) -> Signed {
    Signed::new(SECRET, "tenant", "alpha.platform.test").tenant(t)
}

/// Sends `body` (JSON when given) with the edge headers of `edge`, plus a session.
async fn send(
    state: &platform::AppState,
    edge: &Signed,
    method: &str,
    path: &str,
    body: Option<&str>,
    session: Option<&Session>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut b = edge.request(method, path, body.map(str::len));
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    if let Some(s) = session {
        b = b
            .header("cookie", s.cookie.clone())
            .header("x-csrf-token", s.csrf.clone());
    }
    let req = b
        .body(body.map_or_else(Body::empty, |t| Body::from(t.to_owned())))
        .unwrap();
    call(state, req).await
}

async fn call(
    state: &platform::AppState,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let resp = platform::app(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[derive(Clone)]
struct Session {
    cookie: String,
    csrf: String,
}

async fn login(state: &platform::AppState, edge: &Signed, path: &str, email: &str) -> Session {
    let body = json!({"email": email, "password": PASSWORD}).to_string();
    let (status, headers, v) = send(state, edge, "POST", path, Some(&body), None).await;
    assert_eq!(status, StatusCode::OK, "{email}: {v}");
    let cookie = headers["set-cookie"].to_str().unwrap();
    Session {
        cookie: cookie.split(';').next().unwrap().to_owned(),
        csrf: v["csrf_token"].as_str().unwrap().to_owned(),
    }
}

async fn admin_login(state: &platform::AppState, role: AdminRole) -> Session {
    let email = format!("{}@platform.test", role.as_str());
    login(state, &admin_edge(), "/api/admin/login", &email).await
}

async fn staff_login(state: &platform::AppState, tenant: Uuid, role: StaffRole) -> Session {
    let email = format!("{}@alpha.test", role.as_str());
    login(state, &tenant_edge(tenant), "/api/staff/login", &email).await
}

fn concrete(path: &str) -> String {
    path.replace("{id}", &Uuid::new_v4().to_string())
}

/// Every admin and staff route, asked by every role: a role without the route's capability
/// gets 403 before anything else happens; a role with it never gets 401 or 403.
#[tokio::test]
async fn every_route_answers_each_role_by_its_capability() {
    let e = env().await;
    let mut admin_sessions = Vec::new();
    for role in AdminRole::ALL {
        admin_sessions.push((role, admin_login(&e.state, role).await));
    }
    let mut staff_sessions = Vec::new();
    for role in StaffRole::ALL {
        staff_sessions.push((role, staff_login(&e.state, e.tenant, role).await));
    }
    let (mut admin_routes, mut staff_routes) = (0, 0);
    for route in platform::routes() {
        // Logout would end the session the later routes use: it is asked last, below.
        if route.path.ends_with("/logout") {
            continue;
        }
        let path = concrete(route.path);
        // A JSON body for writes: enough to get past the content type, never valid data.
        let body = (route.method != "GET" && route.method != "DELETE").then_some("{}");
        match route.access {
            Access::Admin(cap) => {
                admin_routes += 1;
                for (role, s) in &admin_sessions {
                    let (status, _, v) =
                        send(&e.state, &admin_edge(), route.method, &path, body, Some(s)).await;
                    if role.grants(cap) {
                        assert!(
                            status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                            "{} {} as {}: {status} {v}",
                            route.method,
                            route.path,
                            role.as_str()
                        );
                    } else {
                        assert_eq!(
                            status,
                            StatusCode::FORBIDDEN,
                            "{} {} as {} ({})",
                            route.method,
                            route.path,
                            role.as_str(),
                            cap.as_str()
                        );
                    }
                }
                // Without a session: 401 (pages send the browser to the login form instead).
                let (status, _, _) =
                    send(&e.state, &admin_edge(), route.method, &path, body, None).await;
                let expected = if route.api {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::SEE_OTHER
                };
                assert_eq!(status, expected, "{}", route.path);
            }
            Access::Staff(cap) => {
                staff_routes += 1;
                for (role, s) in &staff_sessions {
                    let (status, _, v) = send(
                        &e.state,
                        &tenant_edge(e.tenant),
                        route.method,
                        &path,
                        body,
                        Some(s),
                    )
                    .await;
                    if role.grants(cap) {
                        assert!(
                            status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                            "{} {} as {}: {status} {v}",
                            route.method,
                            route.path,
                            role.as_str()
                        );
                    } else {
                        assert_eq!(status, StatusCode::FORBIDDEN, "{}", route.path);
                    }
                }
                let (status, _, _) = send(
                    &e.state,
                    &tenant_edge(e.tenant),
                    route.method,
                    &path,
                    body,
                    None,
                )
                .await;
                let expected = if route.api {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::SEE_OTHER
                };
                assert_eq!(status, expected, "{}", route.path);
            }
            Access::Public | Access::Edge => {}
        }
    }
    assert!(
        admin_routes >= 14 && staff_routes >= 3,
        "the table was walked"
    );
    // Logout needs only a session, for every role.
    for (_, s) in &admin_sessions {
        let (status, _, _) = send(
            &e.state,
            &admin_edge(),
            "POST",
            "/api/admin/logout",
            None,
            Some(s),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    for (_, s) in &staff_sessions {
        let (status, _, _) = send(
            &e.state,
            &tenant_edge(e.tenant),
            "POST",
            "/api/staff/logout",
            None,
            Some(s),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
}

/// The route table and the OpenAPI document list the same operations: a route cannot be
/// served (or documented) without its access being declared.
#[tokio::test]
async fn every_documented_operation_is_in_the_route_table() {
    let e = env().await;
    let (status, _, doc) = call(
        &e.state,
        Request::get("/api/openapi.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    let mut declared: Vec<(String, String)> = platform::routes()
        .iter()
        // The document does not list itself, nor the HTML pages.
        .filter(|r| r.api && r.path != "/api/openapi.json")
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    documented.sort();
    declared.sort();
    assert_eq!(documented, declared);
}

/// The reported attack: a viewer created a tenant and redirected a tenant's money.
#[tokio::test]
async fn a_viewer_cannot_create_tenants_or_change_payment_accounts() {
    let e = env().await;
    let viewer = admin_login(&e.state, AdminRole::Viewer).await;
    let body = json!({"slug": "mallory", "name": "Mallory"}).to_string();
    let (status, _, _) = send(
        &e.state,
        &admin_edge(),
        "POST",
        "/api/admin/tenants",
        Some(&body),
        Some(&viewer),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let path = format!("/api/admin/tenants/{}/stripe-account", e.tenant);
    let body = json!({"account_id": "acct_Mallory123"}).to_string();
    let (status, _, _) = send(
        &e.state,
        &admin_edge(),
        "PUT",
        &path,
        Some(&body),
        Some(&viewer),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let row = e
        .owner
        .query_one(
            "SELECT (SELECT count(*) FROM tenants WHERE slug = 'mallory'), stripe_account_id FROM tenants WHERE id = $1",
            &[&e.tenant],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 0);
    assert_eq!(row.get::<_, Option<String>>(1), None);
    // Viewers still read.
    let (status, _, _) = send(
        &e.state,
        &admin_edge(),
        "GET",
        "/api/admin/tenants",
        None,
        Some(&viewer),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

/// Disabling, a role change and a password change end the account's open sessions at once,
/// for admins and staff alike.
#[tokio::test]
async fn sessions_end_when_the_account_changes() {
    let e = env().await;
    let list = |s: Session| {
        let state = e.state.clone();
        async move {
            send(
                &state,
                &admin_edge(),
                "GET",
                "/api/admin/tenants",
                None,
                Some(&s),
            )
            .await
            .0
        }
    };
    for change in [
        "UPDATE admin_users SET disabled_at = now() WHERE email = 'admin@platform.test'",
        "UPDATE admin_users SET role = 'viewer' WHERE email = 'admin@platform.test'",
        "UPDATE admin_users SET password_hash = password_hash || 'x' WHERE email = 'admin@platform.test'",
    ] {
        e.owner
            .execute(
                "UPDATE admin_users SET disabled_at = NULL, role = 'admin' WHERE email = 'admin@platform.test'",
                &[],
            )
            .await
            .unwrap();
        let s = admin_login(&e.state, AdminRole::Admin).await;
        assert_eq!(list(s.clone()).await, StatusCode::OK);
        e.owner.execute(change, &[]).await.unwrap();
        assert_eq!(list(s).await, StatusCode::UNAUTHORIZED, "{change}");
    }
    // The join refuses a disabled account even if its session row survived (e.g. restored).
    let s = admin_login(&e.state, AdminRole::Owner).await;
    e.owner
        .batch_execute(
            "ALTER TABLE admin_users DISABLE TRIGGER admin_users_end_sessions;
             UPDATE admin_users SET disabled_at = now() WHERE email = 'owner@platform.test';
             ALTER TABLE admin_users ENABLE TRIGGER admin_users_end_sessions;",
        )
        .await
        .unwrap();
    assert_eq!(list(s).await, StatusCode::UNAUTHORIZED);

    // Staff.
    let staff_list = |s: Session| {
        let state = e.state.clone();
        let t = e.tenant;
        async move {
            send(
                &state,
                &tenant_edge(t),
                "GET",
                "/api/staff/donations",
                None,
                Some(&s),
            )
            .await
            .0
        }
    };
    for change in [
        "UPDATE tenant_users SET role = 'owner' WHERE email = 'staff@alpha.test'",
        "UPDATE tenant_users SET disabled_at = now() WHERE email = 'staff@alpha.test'",
    ] {
        e.owner
            .execute(
                "UPDATE tenant_users SET disabled_at = NULL, role = 'staff' WHERE email = 'staff@alpha.test'",
                &[],
            )
            .await
            .unwrap();
        let s = staff_login(&e.state, e.tenant, StaffRole::Staff).await;
        assert_eq!(staff_list(s.clone()).await, StatusCode::OK);
        e.owner.execute(change, &[]).await.unwrap();
        assert_eq!(staff_list(s).await, StatusCode::UNAUTHORIZED, "{change}");
    }
}

/// NUL and other control characters anywhere in input are a 422 naming the field, never a
/// 500, and write nothing.
#[tokio::test]
async fn control_characters_are_refused_with_the_field_named() {
    let e = env().await;
    let nul_login = json!({"email": "owner@platform.test\u{0}", "password": "x"}).to_string();
    for (edge, path) in [
        (admin_edge(), "/api/admin/login"),
        (tenant_edge(e.tenant), "/api/staff/login"),
    ] {
        let (status, headers, v) =
            send(&e.state, &edge, "POST", path, Some(&nul_login), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {v}");
        assert_eq!(v["errors"][0]["field"], "email", "{v}");
        assert_eq!(headers["content-type"], "application/problem+json");
    }
    let owner = admin_login(&e.state, AdminRole::Owner).await;
    for name in ["Bad\u{0}Name", "Bell\u{7}", "Line\nBreak", "Esc\u{1b}[31m"] {
        let body = json!({"slug": "ctrl", "name": name}).to_string();
        let (status, _, v) = send(
            &e.state,
            &admin_edge(),
            "POST",
            "/api/admin/tenants",
            Some(&body),
            Some(&owner),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name:?}: {v}");
        assert_eq!(v["errors"][0]["field"], "name");
    }
    let (status, _, v) = send(
        &e.state,
        &admin_edge(),
        "GET",
        "/api/admin/audit?action=tenant.create%00",
        None,
        Some(&owner),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["field"], "action");
    let (status, _, v) = send(
        &e.state,
        &admin_edge(),
        "GET",
        "/api/admin/tenants?q=al%00pha",
        None,
        Some(&owner),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let staff = staff_login(&e.state, e.tenant, StaffRole::Owner).await;
    for q in ["fund=roof%00", "status=%01succeeded"] {
        let (status, _, v) = send(
            &e.state,
            &tenant_edge(e.tenant),
            "GET",
            &format!("/api/staff/donations?{q}"),
            None,
            Some(&staff),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{q}: {v}");
    }
    let gift = json!({"amount_minor": 1000, "currency": "usd", "donor_name": "Ann\u{0}", "donor_email": "ann@example.org"}).to_string();
    let (status, _, v) = send(
        &e.state,
        &tenant_edge(e.tenant),
        "POST",
        "/api/donations",
        Some(&gift),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["field"], "donor_name");
    let written: i64 = e
        .owner
        .query_one(
            "SELECT (SELECT count(*) FROM tenants WHERE slug = 'ctrl') + (SELECT count(*) FROM donations)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(written, 0);
}

fn stripe_signature(body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let t = testkit::edge::unix_now();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(WHSEC.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A validly signed Stripe event carrying a NUL is refused (400s are retried by Stripe, and
/// nothing is half written), naming where the NUL sits.
#[tokio::test]
async fn a_signed_webhook_with_a_nul_is_refused_cleanly() {
    let e = env().await;
    let event = json!({
        "id": "evt_nul_1", "type": "account.updated", "created": testkit::edge::unix_now(),
        "livemode": false, "account": "acct_Nul1",
        "data": {"object": {"id": "acct_Nul1", "business_profile": {"name": "Bad\u{0}Name"}}}
    })
    .to_string();
    let req = Request::post("/api/webhooks/stripe/connect")
        .header("content-type", "application/json")
        .header("stripe-signature", stripe_signature(event.as_bytes()))
        .body(Body::from(event))
        .unwrap();
    let (status, _, v) = call(&e.state, req).await;
    assert!(status.is_client_error(), "{status} {v}");
    assert_eq!(v["errors"][0]["field"], "data.object.business_profile.name");
    let stored: i64 = e
        .owner
        .query_one("SELECT count(*) FROM stripe_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
}

/// The signature binds method, path and length, is accepted once, and the previous secret is
/// still accepted during a roll.
#[tokio::test]
async fn edge_signatures_bind_the_request_and_are_used_once() {
    let e = env().await;
    let edge = tenant_edge(e.tenant);
    // Minted for GET /api/tenant, sent as POST /api/donations: refused.
    let id = edge.next_request_id();
    let sig = edge.signature(&id, "GET", "/api/tenant", None);
    let gift = json!({"amount_minor": 1000, "currency": "usd", "donor_name": "Ann", "donor_email": "ann@example.org"}).to_string();
    let forged = |method: &str, path: &str, body: Option<String>| {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("x-request-id", &id)
            .header("x-route", "tenant")
            .header("x-original-host", "alpha.platform.test")
            .header("x-tenant-id", e.tenant.to_string())
            .header("x-edge-signature", &sig);
        if let Some(b2) = &body {
            b = b
                .header("content-type", "application/json")
                .header("content-length", b2.len());
        }
        b.body(body.map_or_else(Body::empty, Body::from)).unwrap()
    };
    let (status, _, _) = call(
        &e.state,
        forged("POST", "/api/donations", Some(gift.clone())),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call(&e.state, forged("GET", "/api/tenant?x=1", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The genuine request passes once; its exact copy is a replay.
    let (status, _, _) = call(&e.state, forged("GET", "/api/tenant", None)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call(&e.state, forged("GET", "/api/tenant", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "replayed");
    // A longer body than signed is refused.
    let id2 = edge.next_request_id();
    let short = edge.signature(&id2, "POST", "/api/donations", Some("2"));
    let req = Request::post("/api/donations")
        .header("x-request-id", &id2)
        .header("x-route", "tenant")
        .header("x-original-host", "alpha.platform.test")
        .header("x-tenant-id", e.tenant.to_string())
        .header("x-edge-signature", short)
        .header("content-type", "application/json")
        .header("content-length", gift.len())
        .body(Body::from(gift))
        .unwrap();
    assert_eq!(call(&e.state, req).await.0, StatusCode::UNAUTHORIZED);
    // The secret being retired still verifies; a stranger's does not.
    let old = Signed::new(OLD_SECRET, "tenant", "alpha.platform.test").tenant(e.tenant);
    let (status, _, _) = send(&e.state, &old, "GET", "/api/tenant", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let stranger = Signed::new(
        "a-stranger-secret-0123456789abcdefgh",
        "tenant",
        "alpha.platform.test",
    )
    .tenant(e.tenant);
    let (status, _, _) = send(&e.state, &stranger, "GET", "/api/tenant", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Outside the (now 5 s) window.
    let stale = tenant_edge(e.tenant).at(testkit::edge::unix_now() - 20);
    let (status, _, _) = send(&e.state, &stale, "GET", "/api/tenant", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Logins, authenticated answers and gift creation carry `Cache-Control: no-store`.
#[tokio::test]
async fn private_answers_are_not_cacheable() {
    let e = env().await;
    let body = json!({"email": "owner@platform.test", "password": PASSWORD}).to_string();
    let (status, headers, _) = send(
        &e.state,
        &admin_edge(),
        "POST",
        "/api/admin/login",
        Some(&body),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["cache-control"], "no-store");
    let staff = staff_login(&e.state, e.tenant, StaffRole::Owner).await;
    let (status, headers, _) = send(
        &e.state,
        &tenant_edge(e.tenant),
        "GET",
        "/api/staff/donations",
        None,
        Some(&staff),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["cache-control"], "no-store");
    let gift = json!({"amount_minor": 1000, "currency": "usd", "donor_name": "Ann", "donor_email": "ann@example.org"}).to_string();
    let (_, headers, _) = send(
        &e.state,
        &tenant_edge(e.tenant),
        "POST",
        "/api/donations",
        Some(&gift),
        None,
    )
    .await;
    assert_eq!(headers["cache-control"], "no-store");
    // A failed login too.
    let bad = json!({"email": "owner@platform.test", "password": "wrong"}).to_string();
    let (status, headers, _) = send(
        &e.state,
        &admin_edge(),
        "POST",
        "/api/admin/login",
        Some(&bad),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["cache-control"], "no-store");
}

/// Another tenant's host renders no cancel form for a gift it does not own.
#[tokio::test]
async fn the_cancel_page_renders_nothing_for_another_tenants_gift() {
    let e = env().await;
    let gift: Uuid = e
        .owner
        .query_one(
            "WITH d AS (INSERT INTO donors (tenant_id, email, name) VALUES ($1, 'dana@example.org', 'Dana') RETURNING id)
             INSERT INTO recurring_donations (tenant_id, donor_id, amount_minor, currency, fee_basis_points, billing_interval, status)
             SELECT $1, d.id, 1000, 'usd', 200, 'month', 'active' FROM d RETURNING id",
            &[&e.tenant],
        )
        .await
        .unwrap()
        .get(0);
    let token = platform::giving::cancel_token(&e.state, gift);
    let path = format!("/give/cancel?gift={gift}&token={token}");
    let (status, _, _) = send(&e.state, &tenant_edge(e.tenant), "GET", &path, None, None).await;
    assert_eq!(status, StatusCode::OK);
    let bravo = Signed::new(SECRET, "tenant", "bravo.platform.test").tenant(e.other);
    let (status, _, _) = send(&e.state, &bravo, "GET", &path, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let forged = format!("/give/cancel?gift={gift}&token={}", "0".repeat(64));
    let (status, _, _) = send(&e.state, &tenant_edge(e.tenant), "GET", &forged, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// RFC 9110 statuses with problem+json bodies: 400 malformed, 413 too large, 415 wrong type,
/// 422 invalid, 405 with a body.
#[tokio::test]
async fn malformed_bodies_get_the_right_status() {
    let e = env().await;
    let edge = tenant_edge(e.tenant);
    let post = |ctype: &'static str, body: Vec<u8>| {
        let state = e.state.clone();
        let edge = edge.clone();
        async move {
            let req = edge
                .request("POST", "/api/donations", Some(body.len()))
                .header("content-type", ctype)
                .body(Body::from(body))
                .unwrap();
            call(&state, req).await
        }
    };
    let (status, headers, v) = post("application/json", b"{\"amount_minor\": ".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(headers["content-type"], "application/problem+json");
    let big = format!("{{\"donor_name\": \"{}\"}}", "a".repeat(70 * 1024));
    let (status, _, v) = post("application/json", big.into_bytes()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    let (status, _, v) = post("text/plain", b"{}".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    let (status, _, v) = post("application/json", b"{\"amount_minor\": \"ten\"}".to_vec()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["errors"][0]["field"], "amount_minor");
    let (status, headers, v) = send(&e.state, &edge, "DELETE", "/api/donations", None, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(v["status"], 405);
    assert!(headers.contains_key("allow"), "{headers:?}");
}

/// The tenant database role cannot change its tenant's status, plan or payment account, and
/// still can change its name and settings.
#[tokio::test]
async fn the_tenant_role_cannot_change_status_plan_or_payment_account() {
    let e = env().await;
    let mut conn = e.state.db.get().await.unwrap();
    for (sql, allowed) in [
        ("UPDATE tenants SET status = 'active'", false),
        ("UPDATE tenants SET plan_id = 'starter'", false),
        (
            "UPDATE tenants SET stripe_account_id = 'acct_Mallory'",
            false,
        ),
        (
            "UPDATE tenants SET stripe_account_status = 'enabled'",
            false,
        ),
        (
            "UPDATE tenants SET name = 'Alpha Renamed', updated_at = now()",
            true,
        ),
    ] {
        let tx = platform::tenant::begin(&mut conn, tenant_config::TenantId(e.tenant))
            .await
            .unwrap();
        let r = tx.execute(sql, &[]).await;
        assert_eq!(r.is_ok(), allowed, "{sql}: {r:?}");
        if let Err(err) = r {
            assert_eq!(
                err.code(),
                Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
            );
        }
        tx.rollback().await.unwrap();
    }
}

/// A shared buffer the test's log subscriber writes into.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A 5xx is logged once with the request id, tenant, route and the database error's SQLSTATE
/// (and nothing personal): an operator can act on it.
#[tokio::test]
async fn a_server_error_is_logged_with_the_request_identity_and_sqlstate() {
    let e = env().await;
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // A fault of ours: the tenant role lost a privilege it needs.
    e.owner
        .batch_execute("REVOKE SELECT ON tenants FROM platform_app")
        .await
        .unwrap();
    let edge = tenant_edge(e.tenant).id_prefix("req-fault");
    let (status, _, v) = send(&e.state, &edge, "GET", "/api/tenant", None, None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    assert!(v["detail"].is_null(), "no cause shown to the client: {v}");
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("request failed"))
        .unwrap_or_else(|| panic!("no error line in:\n{text}"));
    let line: Value = serde_json::from_str(line).unwrap();
    let fields = &line["fields"];
    assert_eq!(line["level"], "ERROR");
    assert!(
        fields["request_id"]
            .as_str()
            .unwrap()
            .starts_with("req-fault-"),
        "{line}"
    );
    assert_eq!(fields["tenant"], e.tenant.to_string());
    assert_eq!(fields["route"], "/api/tenant");
    assert_eq!(fields["status"], 500);
    assert!(
        fields["cause"].as_str().unwrap().contains("SQLSTATE 42501"),
        "{line}"
    );
}

/// A plain HTML form proves CSRF with a `csrf_token` field (it cannot send the header); without
/// it, or with a wrong one, the change is refused.
#[tokio::test]
async fn html_forms_carry_the_csrf_token_as_a_field() {
    let e = env().await;
    let owner = admin_login(&e.state, AdminRole::Owner).await;
    let path = format!("/api/admin/tenants/{}/resume", e.tenant);
    let post = |form: String| {
        let state = e.state.clone();
        let path = path.clone();
        let cookie = owner.cookie.clone();
        async move {
            let req = admin_edge()
                .request("POST", &path, Some(form.len()))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cookie", cookie)
                .body(Body::from(form))
                .unwrap();
            call(&state, req).await.0
        }
    };
    assert_eq!(post(String::new()).await, StatusCode::FORBIDDEN);
    assert_eq!(
        post(format!("csrf_token={}", "0".repeat(64))).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(format!("csrf_token={}", owner.csrf)).await,
        StatusCode::OK
    );
}

/// Browsers on page paths get errors as HTML pages; API paths always get problem+json.
#[tokio::test]
async fn errors_render_as_html_for_pages_and_json_for_the_api() {
    let e = env().await;
    let edge = tenant_edge(e.tenant);
    let get = |path: &'static str, accept: &'static str| {
        let state = e.state.clone();
        let edge = edge.clone();
        async move {
            let req = edge
                .request("GET", path, None)
                .header("accept", accept)
                .body(Body::empty())
                .unwrap();
            let resp = platform::app(state).oneshot(req).await.unwrap();
            let status = resp.status();
            let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, ctype, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let bad_link = "/give/cancel?gift=not-a-uuid&token=x";
    let (status, ctype, body) = get(bad_link, "text/html,application/xhtml+xml").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    assert!(body.contains("<h1>Invalid request</h1>"), "{body}");
    assert!(body.contains("gift: must be a UUID"), "{body}");
    let (status, ctype, _) = get("/nowhere", "text/html").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(ctype.starts_with("text/html"));
    let (_, ctype, _) = get(bad_link, "application/json").await;
    assert_eq!(ctype, "application/problem+json");
    let (status, ctype, _) = get("/api/donations/not-a-uuid", "text/html").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(ctype, "application/problem+json");
}

/// Answers axum makes itself (a path parameter that is not UTF-8, a webhook body over the
/// limit) are problem+json like every other error, and a page number at the edge of `i64`
/// is clamped instead of overflowing into a 500.
#[tokio::test]
async fn framework_rejections_are_problems_and_huge_pages_are_clamped() {
    let e = env().await;
    let edge = tenant_edge(e.tenant);
    let (status, headers, v) = send(&e.state, &edge, "GET", "/api/donations/%FF", None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(v["status"], 400);
    assert!(
        v["detail"].as_str().is_some_and(|d| d.contains("UTF-8")),
        "{v}"
    );

    let big = format!("{{\"id\": \"{}\"}}", "a".repeat(70 * 1024));
    let req = Request::post("/api/webhooks/stripe/connect")
        .header("content-type", "application/json")
        .header("stripe-signature", stripe_signature(big.as_bytes()))
        .body(Body::from(big))
        .unwrap();
    let (status, headers, v) = call(&e.state, req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(headers["content-type"], "application/problem+json");

    let admin = admin_login(&e.state, AdminRole::Owner).await;
    let req = admin_edge()
        .request("GET", "/tenants?page=9223372036854775807", None)
        .header("cookie", admin.cookie.clone())
        .header("accept", "text/html")
        .body(Body::empty())
        .unwrap();
    let resp = platform::app(e.state.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

/// A browser that says a state-changing request comes from another site (`Sec-Fetch-Site`,
/// else `Origin`) is refused before any handler — the logins and the donation form have no
/// session to bind a token to — while the same request from the site itself, or from a client
/// that sends neither header, goes on.
#[tokio::test]
async fn cross_origin_posts_are_refused() {
    let e = env().await;
    let edge = tenant_edge(e.tenant);
    let login = |extra: &'static [(&'static str, &'static str)]| {
        let state = e.state.clone();
        let edge = edge.clone();
        async move {
            let form = "email=a%40b.org&password=wrong";
            let mut b = edge
                .request("POST", "/staff/login", Some(form.len()))
                .header("content-type", "application/x-www-form-urlencoded");
            for (k, v) in extra {
                b = b.header(*k, *v);
            }
            call(&state, b.body(Body::from(form)).unwrap()).await.0
        }
    };
    assert_eq!(
        login(&[("sec-fetch-site", "cross-site")]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        login(&[("sec-fetch-site", "same-site")]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        login(&[("origin", "https://evil.example")]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(login(&[("origin", "null")]).await, StatusCode::FORBIDDEN);
    // Not refused for where it came from (the wrong password is its own answer).
    for ok in [
        login(&[("sec-fetch-site", "same-origin")]).await,
        login(&[]).await,
    ] {
        assert_ne!(ok, StatusCode::FORBIDDEN);
    }
}

/// Form bodies are read strictly: a %-escape that is not UTF-8 is a 400, not a stored
/// replacement character, and a form that sends the CSRF token both as header and field is
/// accepted (the field never reaches the form's reader).
#[tokio::test]
async fn form_bodies_are_read_strictly() {
    let e = env().await;
    let owner = admin_login(&e.state, AdminRole::Owner).await;
    let post = |path: String, form: String, header: bool| {
        let state = e.state.clone();
        let cookie = owner.cookie.clone();
        let csrf = owner.csrf.clone();
        async move {
            let mut b = admin_edge()
                .request("POST", &path, Some(form.len()))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cookie", cookie);
            if header {
                b = b.header("x-csrf-token", csrf);
            }
            call(&state, b.body(Body::from(form)).unwrap()).await.0
        }
    };
    let suspend = format!("/tenants/{}/suspend", e.tenant);
    let bad = format!("csrf_token={}&reason=bad%FFbyte", owner.csrf);
    assert_eq!(
        post(suspend.clone(), bad, false).await,
        StatusCode::BAD_REQUEST
    );
    let both = format!("csrf_token={}&reason=audit", owner.csrf);
    assert_eq!(post(suspend, both, true).await, StatusCode::SEE_OTHER);
    let status: String = e
        .owner
        .query_one("SELECT status FROM tenants WHERE id = $1", &[&e.tenant])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "suspended");
}
