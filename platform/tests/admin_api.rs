//! Admin host: login, session cookie, CSRF, lockout, session expiry, tenant management with
//! audit log — against real PostgreSQL and Redis, through the signed router contract.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use axum::body::Body;
use axum::http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tenant_config::config::{MapEnv, PlatformConfig};
use tower::ServiceExt;

const SECRET: &str = "platform-test-edge-secret-0123456789ab";
const PASSWORD: &str = "correct horse battery staple";

struct Admin {
    _db: testkit::TestDb,
    owner: tokio_postgres::Client,
    state: platform::AppState,
}

async fn setup() -> Admin {
    let db = testkit::database().await;
    let dns_addr = format!("127.0.0.1:{}", testkit::dns().port);
    let env = MapEnv::from_pairs([
        ("DATABASE_URL", db.web_url().as_str()),
        ("REDIS_URL", testkit::redis().url().as_str()),
        ("EDGE_SIGNING_SECRET", SECRET),
        ("DNS_RESOLVER", dns_addr.as_str()),
    ]);
    let config: PlatformConfig = tenant_config::config::load(None, &env).unwrap();
    let state = platform::AppState::from_config(&config).unwrap();
    platform::admin::auth::create_admin(&state.db, "Ops@Example.org", PASSWORD, "admin")
        .await
        .unwrap();
    Admin {
        owner: db.connect_as("postgres").await,
        _db: db,
        state,
    }
}

fn request(
    method: &str,
    path: &str,
    route: &str,
    body: Option<&str>,
) -> axum::http::request::Builder {
    let b = testkit::edge::Signed::new(SECRET, route, "admin.platform.test")
        .id_prefix("req-admin-0001")
        .request(method, path, body.map(str::len))
        .header("x-real-ip", "198.51.100.23")
        .header("user-agent", "admin-test");
    if body.is_some() {
        b.header("content-type", "application/json")
    } else {
        b
    }
}

struct Resp {
    status: StatusCode,
    cookie: Option<String>,
    body: Value,
}

async fn call(
    state: &platform::AppState,
    method: &str,
    path: &str,
    body: Option<Value>,
    auth: Option<(&str, Option<&str>)>,
) -> Resp {
    let text = body.as_ref().map(Value::to_string);
    let mut b = request(method, path, "admin", text.as_deref());
    if let Some((cookie, csrf)) = auth {
        b = b.header("cookie", format!("theme=dark; {cookie}"));
        if let Some(c) = csrf {
            b = b.header("x-csrf-token", c);
        }
    }
    let req = b.body(text.map_or_else(Body::empty, Body::from)).unwrap();
    let resp = platform::app(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let cookie = resp
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        cookie,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

async fn login(state: &platform::AppState, password: &str) -> Resp {
    call(
        state,
        "POST",
        "/api/admin/login",
        Some(json!({"email": "ops@example.org", "password": password})),
        None,
    )
    .await
}

/// Logs in and returns (cookie pair, csrf token).
async fn session(state: &platform::AppState) -> (String, String) {
    let r = login(state, PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let cookie = r.cookie.unwrap();
    let pair = cookie.split(';').next().unwrap().to_owned();
    (pair, r.body["csrf_token"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn login_sets_a_hardened_cookie_and_csrf_guards_changes() {
    let a = setup().await;
    let r = login(&a.state, PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK);
    let cookie = r.cookie.unwrap();
    for flag in [
        "__Host-admin_session=",
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(cookie.contains(flag), "{flag} missing in {cookie}");
    }
    let (pair, csrf) = session(&a.state).await;

    // Reads need the session but not the CSRF token.
    let list = call(
        &a.state,
        "GET",
        "/api/admin/tenants",
        None,
        Some((&pair, None)),
    )
    .await;
    assert_eq!(list.status, StatusCode::OK);
    let none = call(&a.state, "GET", "/api/admin/tenants", None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);

    let new = json!({"slug": "grace", "name": "Grace Church", "plan_id": "growth"});
    let no_csrf = call(
        &a.state,
        "POST",
        "/api/admin/tenants",
        Some(new.clone()),
        Some((&pair, None)),
    )
    .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    let bad_csrf = call(
        &a.state,
        "POST",
        "/api/admin/tenants",
        Some(new.clone()),
        Some((&pair, Some("00".repeat(32).as_str()))),
    )
    .await;
    assert_eq!(bad_csrf.status, StatusCode::FORBIDDEN);
    let n: i64 = a
        .owner
        .query_one("SELECT count(*) FROM tenants", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "refused requests wrote nothing");

    let ok = call(
        &a.state,
        "POST",
        "/api/admin/tenants",
        Some(new.clone()),
        Some((&pair, Some(&csrf))),
    )
    .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    assert_eq!(ok.body["slug"], "grace");

    // The same session on a tenant route signature is not an admin request.
    let mut b = request("GET", "/api/admin/tenants", "tenant", None);
    b = b.header("cookie", pair.clone());
    let resp = platform::app(a.state.clone())
        .oneshot(b.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_ne!(resp.status(), StatusCode::OK);

    let out = call(
        &a.state,
        "POST",
        "/api/admin/logout",
        None,
        Some((&pair, Some(&csrf))),
    )
    .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let after = call(
        &a.state,
        "GET",
        "/api/admin/tenants",
        None,
        Some((&pair, None)),
    )
    .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "logged out");
}

#[tokio::test]
async fn repeated_failures_lock_the_account_and_unknown_emails_look_the_same() {
    let a = setup().await;
    for _ in 0..5 {
        assert_eq!(
            login(&a.state, "wrong password!").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let locked = login(&a.state, PASSWORD).await;
    assert_eq!(
        locked.status,
        StatusCode::UNAUTHORIZED,
        "locked: even the right password is refused"
    );
    let row = a
        .owner
        .query_one(
            "SELECT failed_attempts, locked_until > now() FROM admin_users",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 5);
    assert!(row.get::<_, bool>(1));

    let unknown = call(
        &a.state,
        "POST",
        "/api/admin/login",
        Some(json!({"email": "nobody@example.org", "password": "x"})),
        None,
    )
    .await;
    assert_eq!(unknown.status, locked.status);
    assert_eq!(
        unknown.body, locked.body,
        "same answer for unknown and locked accounts"
    );

    a.owner
        .execute(
            "UPDATE admin_users SET locked_until = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        login(&a.state, PASSWORD).await.status,
        StatusCode::OK,
        "unlocked after the lockout"
    );
}

#[tokio::test]
async fn sessions_expire_when_idle_or_too_old() {
    let a = setup().await;
    let (pair, _) = session(&a.state).await;
    assert_eq!(
        call(
            &a.state,
            "GET",
            "/api/admin/tenants",
            None,
            Some((&pair, None))
        )
        .await
        .status,
        StatusCode::OK
    );
    a.owner
        .execute(
            "UPDATE sessions SET idle_expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        call(
            &a.state,
            "GET",
            "/api/admin/tenants",
            None,
            Some((&pair, None))
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );

    let (pair, _) = session(&a.state).await;
    a.owner
        .execute("UPDATE sessions SET absolute_expires_at = now() - interval '1 second', idle_expires_at = now() - interval '2 seconds' WHERE idle_expires_at > now()", &[])
        .await
        .unwrap();
    assert_eq!(
        call(
            &a.state,
            "GET",
            "/api/admin/tenants",
            None,
            Some((&pair, None))
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn tenant_lifecycle_is_validated_and_audited() {
    let a = setup().await;
    let (pair, csrf) = session(&a.state).await;
    let post = |path: &'static str, body: Value| {
        let (state, pair, csrf) = (a.state.clone(), pair.clone(), csrf.clone());
        async move { call(&state, "POST", path, Some(body), Some((&pair, Some(&csrf)))).await }
    };
    for (body, field) in [
        (json!({"slug": "www", "name": "X"}), "slug"),
        (json!({"slug": "Bad_Slug", "name": "X"}), "slug"),
        (json!({"slug": "fine", "name": ""}), "name"),
        (
            json!({"slug": "fine", "name": "X", "plan_id": "gold"}),
            "plan_id",
        ),
        (json!({"name": "X"}), "body"),
        // An unknown field is named (it was only "body" before the path-aware reader).
        (
            json!({"slug": "fine", "name": "X", "colour": "red"}),
            "colour",
        ),
    ] {
        let r = post("/api/admin/tenants", body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(r.body["errors"][0]["field"], field, "{body} → {}", r.body);
    }
    let created = post(
        "/api/admin/tenants",
        json!({"slug": "hope", "name": "Hope"}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let dup = post(
        "/api/admin/tenants",
        json!({"slug": "hope", "name": "Hope again"}),
    )
    .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);

    let id = created.body["id"].as_str().unwrap().to_owned();
    let shown = call(
        &a.state,
        "GET",
        &format!("/api/admin/tenants/{id}"),
        None,
        Some((&pair, None)),
    )
    .await;
    assert_eq!(shown.body["slug"], "hope");
    let missing = call(
        &a.state,
        "GET",
        &format!("/api/admin/tenants/{}", uuid::Uuid::new_v4()),
        None,
        Some((&pair, None)),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let path: &'static str = Box::leak(format!("/api/admin/tenants/{id}/suspend").into_boxed_str());
    let s = post(path, json!({"reason": "unpaid invoice"})).await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.body);
    assert_eq!(s.body["status"], "suspended");
    let path: &'static str = Box::leak(format!("/api/admin/tenants/{id}/resume").into_boxed_str());
    assert_eq!(post(path, json!(null)).await.body["status"], "active");

    let audit: Vec<(String, Option<String>, String)> = a
        .owner
        .query(
            "SELECT action, host(ip), request_id FROM audit_log ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let actions: Vec<&str> = audit.iter().map(|(a, _, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "admin.login",
            "tenant.create",
            "tenant.suspend",
            "tenant.resume"
        ]
    );
    assert!(audit
        .iter()
        .all(|(_, ip, rid)| ip.as_deref() == Some("198.51.100.23")
            && rid.starts_with("req-admin-0001-")));
}

#[tokio::test]
async fn custom_domains_are_verified_through_dns() {
    let a = setup().await;
    let (pair, csrf) = session(&a.state).await;
    let auth = Some((pair.as_str(), Some(csrf.as_str())));
    let t = call(
        &a.state,
        "POST",
        "/api/admin/tenants",
        Some(json!({"slug": "grace", "name": "Grace", "plan_id": "growth"})),
        auth,
    )
    .await;
    let tenant = t.body["id"].as_str().unwrap().to_owned();
    let other = call(
        &a.state,
        "POST",
        "/api/admin/tenants",
        Some(json!({"slug": "hope", "name": "Hope", "plan_id": "growth"})),
        auth,
    )
    .await;
    let other = other.body["id"].as_str().unwrap().to_owned();
    let domains = format!("/api/admin/tenants/{tenant}/domains");

    let added = call(
        &a.state,
        "POST",
        &domains,
        Some(json!({"domain": "Give.GraceChurch.org."})),
        auth,
    )
    .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    assert_eq!(added.body["domain"], "give.gracechurch.org");
    assert_eq!(added.body["status"], "pending_verification");
    let name = added.body["txt_record"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let value = added.body["txt_record"]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(name, "_platform-verify.give.gracechurch.org");
    let id = added.body["id"].as_str().unwrap().to_owned();
    let verify = format!("/api/admin/domains/{id}/verify");

    let early = call(&a.state, "POST", &verify, None, auth).await;
    assert_eq!(early.status, StatusCode::OK, "{}", early.body);
    assert_eq!(
        early.body["status"], "pending_verification",
        "nothing published yet"
    );
    assert!(early.body["failure_reason"]
        .as_str()
        .unwrap()
        .contains("not found"));

    testkit::dns().set_txt(&name, "platform-verify=somebody-elses-token");
    let wrong = call(&a.state, "POST", &verify, None, auth).await;
    assert_eq!(
        wrong.body["status"], "pending_verification",
        "a different token proves nothing"
    );

    testkit::dns().set_txt(&name, &value);
    let ok = call(&a.state, "POST", &verify, None, auth).await;
    assert_eq!(ok.body["status"], "verified", "{}", ok.body);
    assert!(ok.body["verified_at"].is_string());
    testkit::dns().clear_txt(&name);

    // The router's own login role now resolves the name to the tenant.
    let routed: i64 = a
        .owner
        .query_one("SELECT count(*) FROM tenant_domains WHERE domain = 'give.gracechurch.org' AND status IN ('verified','active')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(routed, 1);

    for (body, code) in [
        (
            json!({"domain": "shop.platform.test"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"domain": "10.0.0.1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"domain": "give..org"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let r = call(&a.state, "POST", &domains, Some(body.clone()), auth).await;
        assert_eq!(r.status, code, "{body}");
        assert_eq!(r.body["errors"][0]["field"], "domain");
    }
    let taken = call(
        &a.state,
        "POST",
        &format!("/api/admin/tenants/{other}/domains"),
        Some(json!({"domain": "give.gracechurch.org"})),
        auth,
    )
    .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "one tenant per name");

    let second = call(
        &a.state,
        "POST",
        &domains,
        Some(json!({"domain": "gracechurch.org"})),
        auth,
    )
    .await;
    assert_eq!(second.status, StatusCode::CREATED);
    let third = call(
        &a.state,
        "POST",
        &domains,
        Some(json!({"domain": "grace.church"})),
        auth,
    )
    .await;
    assert_eq!(
        third.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "growth plan allows two"
    );

    let removed = call(
        &a.state,
        "DELETE",
        &format!("/api/admin/domains/{id}"),
        None,
        auth,
    )
    .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let listed = call(&a.state, "GET", &domains, None, auth).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    let again = call(
        &a.state,
        "POST",
        &format!("/api/admin/tenants/{other}/domains"),
        Some(json!({"domain": "give.gracechurch.org"})),
        auth,
    )
    .await;
    assert_eq!(
        again.status,
        StatusCode::CREATED,
        "a removed name can be attached again"
    );

    let actions: Vec<String> = a
        .owner
        .query(
            "SELECT action FROM audit_log WHERE action LIKE 'domain.%' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        actions,
        [
            "domain.add",
            "domain.verify",
            "domain.verify",
            "domain.verify",
            "domain.add",
            "domain.remove",
            "domain.add"
        ]
    );
}

#[tokio::test]
async fn platform_metrics_jobs_and_audit_views() {
    let a = setup().await;
    a.owner
        .batch_execute(
            "INSERT INTO tenants (slug, name, status, plan_id) VALUES
                 ('alpha', 'A', 'active', 'growth'), ('bravo', 'B', 'trial', 'starter'),
                 ('carol', 'C', 'cancelled', 'starter');
             INSERT INTO tenant_subscriptions (tenant_id, plan_id, status, amount_minor, currency, billing_interval)
                 SELECT id, 'growth', 'active', 4900, 'usd', 'month' FROM tenants WHERE slug = 'alpha';
             INSERT INTO tenant_subscriptions (tenant_id, plan_id, status, amount_minor, currency, billing_interval)
                 SELECT id, 'starter', 'active', 12000, 'usd', 'year' FROM tenants WHERE slug = 'bravo';
             INSERT INTO donors (tenant_id, email) SELECT id, 'd@a.example' FROM tenants WHERE slug = 'alpha';
             INSERT INTO recurring_donations (tenant_id, donor_id, amount_minor, currency, fee_basis_points, billing_interval, status)
                 SELECT tenant_id, id, 2500, 'usd', 200, 'month', 'active' FROM donors;
             INSERT INTO donations (tenant_id, donor_id, kind, amount_minor, currency, fee_minor, net_minor, status, succeeded_at)
                 SELECT tenant_id, id, 'one_time', 1000, 'usd', 20, 980, 'succeeded', now() FROM donors;
             INSERT INTO donations (tenant_id, donor_id, kind, recurring_donation_id, amount_minor, currency, fee_minor, net_minor, status, succeeded_at)
                 SELECT r.tenant_id, r.donor_id, 'recurring', r.id, 2500, 'usd', 50, 2450, 'succeeded', now() FROM recurring_donations r;
             INSERT INTO donations (tenant_id, donor_id, kind, amount_minor, currency, fee_minor, net_minor, status)
                 SELECT tenant_id, id, 'one_time', 9999, 'usd', 199, 9800, 'pending' FROM donors;
             INSERT INTO jobs (kind, state, run_at) VALUES ('email.send', 'available', now() - interval '90 seconds'),
                 ('email.send', 'completed', now()), ('report.build', 'available', now() + interval '1 hour');",
        )
        .await
        .unwrap();
    let (pair, _) = session(&a.state).await;
    let auth = Some((pair.as_str(), None));
    let m = call(&a.state, "GET", "/api/admin/metrics", None, auth).await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.body);
    assert_eq!(
        m.body["tenants"],
        json!({"total": 3, "active": 1, "trial": 1, "suspended": 0, "churned": 1})
    );
    // 4900 monthly + 12000 yearly / 12 = 5900.
    assert_eq!(
        m.body["revenue"],
        json!([{"currency": "usd", "mrr_minor": 5900, "arr_minor": 70800}])
    );
    let d = &m.body["donations_this_month"][0];
    assert_eq!(
        (
            d["count"].as_i64(),
            d["sum_minor"].as_i64(),
            d["average_minor"].as_i64()
        ),
        (Some(2), Some(3500), Some(1750))
    );
    assert_eq!(d["recurring_share"], 0.5);

    let j = call(&a.state, "GET", "/api/admin/jobs", None, auth).await;
    assert_eq!(j.status, StatusCode::OK);
    let age = j.body["oldest_runnable_age_seconds"].as_f64().unwrap();
    assert!(
        (89.0..200.0).contains(&age),
        "future jobs are not overdue: {age}"
    );

    let audit = call(
        &a.state,
        "GET",
        "/api/admin/audit?action=admin.login&limit=10",
        None,
        auth,
    )
    .await;
    assert_eq!(audit.status, StatusCode::OK);
    let entries = audit.body.as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["ip"], "198.51.100.23");
    let bad = call(&a.state, "GET", "/api/admin/audit?limit=0", None, auth).await;
    assert_eq!(bad.body["errors"][0]["field"], "limit");
}

#[tokio::test]
async fn stripe_account_is_linked_pending_until_stripe_enables_it() {
    let a = setup().await;
    let (pair, csrf) = session(&a.state).await;
    let ids: Vec<uuid::Uuid> = {
        let mut v = Vec::new();
        for slug in ["hope", "faith"] {
            v.push(
                a.owner
                    .query_one(
                        "INSERT INTO tenants (slug, name) VALUES ($1, $1) RETURNING id",
                        &[&slug],
                    )
                    .await
                    .unwrap()
                    .get(0),
            );
        }
        v
    };
    let put = |id: uuid::Uuid, body: Value, with_csrf: bool| {
        let (state, pair, csrf) = (a.state.clone(), pair.clone(), csrf.clone());
        async move {
            let auth = Some((pair.as_str(), with_csrf.then_some(csrf.as_str())));
            call(
                &state,
                "PUT",
                &format!("/api/admin/tenants/{id}/stripe-account"),
                Some(body),
                auth,
            )
            .await
        }
    };
    // CSRF is required, and the id must look like an account id.
    assert_eq!(
        put(ids[0], json!({"account_id": "acct_1Hope"}), false)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let bad = put(ids[0], json!({"account_id": "cus_123"}), true).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["errors"][0]["field"], "account_id");
    let ok = put(ids[0], json!({"account_id": "acct_1Hope"}), true).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["stripe_account_id"], "acct_1Hope");
    assert_eq!(ok.body["stripe_account_status"], "pending");
    // One account belongs to one tenant.
    let taken = put(ids[1], json!({"account_id": "acct_1Hope"}), true).await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    // Disconnecting resets the status; every change is audited.
    let off = put(ids[0], json!({"account_id": null}), true).await;
    assert_eq!(off.body["stripe_account_status"], "not_connected");
    let audited: i64 = a
        .owner
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'tenant.stripe_account'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 2);
}

#[tokio::test]
async fn onboarding_creates_one_express_account_and_returns_a_link() {
    // Connect account endpoints: localstripe has none, so the testkit proxy answers
    // /v1/accounts and /v1/account_links itself (the one emulated piece; see stripe_emulator.py).
    let db = testkit::database().await;
    let env = MapEnv::from_pairs([
        ("DATABASE_URL", db.web_url().as_str()),
        ("REDIS_URL", testkit::redis().url().as_str()),
        ("EDGE_SIGNING_SECRET", SECRET),
        ("TENANT_BASE_DOMAIN", "platform.test"),
        ("STRIPE_SECRET_KEY", testkit::STRIPE_TEST_KEY),
        ("STRIPE_API_BASE", &testkit::stripe().url()),
    ]);
    let config: PlatformConfig = tenant_config::config::load(None, &env).unwrap();
    let state = platform::AppState::from_config(&config).unwrap();
    platform::admin::auth::create_admin(&state.db, "Ops@Example.org", PASSWORD, "admin")
        .await
        .unwrap();
    let owner = db.connect_as("postgres").await;
    let id: uuid::Uuid = owner
        .query_one(
            "INSERT INTO tenants (slug, name) VALUES ('hope', 'Hope') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let (pair, csrf) = session(&state).await;
    let path = format!("/api/admin/tenants/{id}/stripe-onboarding");
    let bad = call(
        &state,
        "POST",
        &path,
        Some(json!({"country": "USA"})),
        Some((&pair, Some(&csrf))),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["errors"][0]["field"], "country");
    let first = call(
        &state,
        "POST",
        &path,
        Some(json!({"email": "Office@Hope.org", "country": "gb"})),
        Some((&pair, Some(&csrf))),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let acct = first.body["account_id"].as_str().unwrap().to_owned();
    assert!(acct.starts_with("acct_"));
    assert!(first.body["url"].as_str().unwrap().contains(&acct));
    let row = owner
        .query_one(
            "SELECT stripe_account_id, stripe_account_status FROM tenants WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        (acct.clone(), "pending".into())
    );
    // Asking again gives a new link for the same account, never a second account.
    let again = call(
        &state,
        "POST",
        &path,
        Some(json!({})),
        Some((&pair, Some(&csrf))),
    )
    .await;
    assert_eq!(again.body["account_id"], acct.as_str());
    let rec = testkit::stripe().recording();
    let created: Vec<&Value> = rec
        .iter()
        .filter(|r| {
            r["path"] == "/v1/accounts" && r["idempotency_key"] == format!("account:{id}").as_str()
        })
        .collect();
    assert_eq!(created.len(), 1);
    assert_eq!(testkit::param(created[0], "type"), Some("express"));
    assert_eq!(testkit::param(created[0], "country"), Some("GB"));
    assert_eq!(testkit::param(created[0], "email"), Some("office@hope.org"));
    let links = rec
        .iter()
        .filter(|r| {
            r["path"] == "/v1/account_links" && testkit::param(r, "account") == Some(acct.as_str())
        })
        .count();
    assert_eq!(links, 2);
}

/// Public suffixes (`co.uk`, `github.io`) are refused as custom domains with a 422
/// problem+json naming the field; names below them are fine.
#[tokio::test]
async fn public_suffixes_are_refused_as_custom_domains() {
    let a = setup().await;
    let (pair, csrf) = session(&a.state).await;
    let auth = Some((pair.as_str(), Some(csrf.as_str())));
    let t = call(
        &a.state,
        "POST",
        "/api/admin/tenants",
        Some(json!({"slug": "grace", "name": "Grace", "plan_id": "growth"})),
        auth,
    )
    .await;
    let tenant = t.body["id"].as_str().unwrap().to_owned();
    let domains = format!("/api/admin/tenants/{tenant}/domains");
    for suffix in ["co.uk", "github.io", "GitHub.IO."] {
        let text = json!({ "domain": suffix }).to_string();
        let req = request("POST", &domains, "admin", Some(&text))
            .header("cookie", &pair)
            .header("x-csrf-token", &csrf)
            .body(Body::from(text))
            .unwrap();
        let resp = platform::app(a.state.clone()).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{suffix}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "{suffix}"
        );
        let body: Value =
            serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(body["errors"][0]["field"], "domain", "{body}");
        assert!(body.to_string().contains("public suffix"), "{body}");
    }
    let stored: i64 = a
        .owner
        .query_one("SELECT count(*) FROM tenant_domains", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "nothing was stored");
    let below = call(
        &a.state,
        "POST",
        &domains,
        Some(json!({"domain": "grace.github.io"})),
        auth,
    )
    .await;
    assert_eq!(below.status, StatusCode::CREATED, "{}", below.body);
}

/// Each domain shows its certificate status beside its ownership status, from the routers'
/// ACME state: none, failed with the error and the next attempt, issued with not-after and
/// the renewal point.
#[tokio::test]
async fn certificate_status_is_shown_beside_ownership() {
    let a = setup().await;
    let (pair, csrf) = session(&a.state).await;
    let auth = Some((pair.as_str(), Some(csrf.as_str())));
    let t = call(
        &a.state,
        "POST",
        "/api/admin/tenants",
        Some(json!({"slug": "grace", "name": "Grace", "plan_id": "growth"})),
        auth,
    )
    .await;
    let tenant = t.body["id"].as_str().unwrap().to_owned();
    let domains = format!("/api/admin/tenants/{tenant}/domains");
    let added = call(
        &a.state,
        "POST",
        &domains,
        Some(json!({"domain": "give.gracechurch.org"})),
        auth,
    )
    .await;
    assert_eq!(added.body["cert_status"], "none", "{}", added.body);
    assert!(added.body["certificate"]["not_after"].is_null());

    a.owner
        .batch_execute(
            "INSERT INTO acme_names (name, state, failures, last_error, next_attempt_at)
             VALUES ('give.gracechurch.org', 'failed', 2, 'connection refused', now() + interval '10 minutes')",
        )
        .await
        .unwrap();
    let listed = call(&a.state, "GET", &domains, None, auth).await;
    let d = &listed.body[0];
    assert_eq!(d["status"], "pending_verification", "ownership is separate");
    assert_eq!(d["cert_status"], "failed");
    assert_eq!(d["certificate"]["last_error"], "connection refused");
    assert!(d["certificate"]["next_attempt_at"].is_string());

    a.owner
        .batch_execute(
            "UPDATE acme_names SET state = 'issued', last_error = NULL, next_attempt_at = NULL,
                 renew_at = now() + interval '60 days' WHERE name = 'give.gracechurch.org';
             INSERT INTO certificates (domain, status, chain_pem, private_key_encrypted, not_before, not_after)
             VALUES ('give.gracechurch.org', 'issued', 'pem', '\\x01', now(), now() + interval '90 days')",
        )
        .await
        .unwrap();
    let listed = call(&a.state, "GET", &domains, None, auth).await;
    let d = &listed.body[0];
    assert_eq!(d["cert_status"], "issued", "{d}");
    assert!(d["certificate"]["not_after"].is_string());
    assert!(d["certificate"]["last_error"].is_null());
    assert!(
        d["certificate"]["next_attempt_at"].is_string(),
        "the renewal point"
    );
}

/// Plans are listed; a tenant moves to another active plan (audited, seen in the tenant's
/// view); an unknown plan is named; a move to a plan with fewer custom domains than the tenant
/// has is refused with 409 and changes nothing.
#[tokio::test]
async fn a_tenant_changes_plan_within_its_domain_allowance() {
    let a = setup().await;
    let (pair, csrf) = session(&a.state).await;
    let auth = Some((pair.as_str(), Some(csrf.as_str())));
    let plans = call(&a.state, "GET", "/api/admin/plans", None, auth).await;
    assert_eq!(plans.status, StatusCode::OK, "{}", plans.body);
    let ids: Vec<&str> = plans
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"starter") && ids.contains(&"growth"),
        "{ids:?}"
    );
    let t = call(
        &a.state,
        "POST",
        "/api/admin/tenants",
        Some(json!({"slug": "grace", "name": "Grace"})),
        auth,
    )
    .await;
    let tenant = t.body["id"].as_str().unwrap().to_owned();
    assert_eq!(t.body["plan_id"], "starter");
    let path = format!("/api/admin/tenants/{tenant}/plan");

    let up = call(
        &a.state,
        "PUT",
        &path,
        Some(json!({"plan_id": "growth"})),
        auth,
    )
    .await;
    assert_eq!(up.status, StatusCode::OK, "{}", up.body);
    assert_eq!(up.body["plan_id"], "growth");
    let unknown = call(
        &a.state,
        "PUT",
        &path,
        Some(json!({"plan_id": "platinum"})),
        auth,
    )
    .await;
    assert_eq!(
        unknown.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unknown.body
    );
    assert_eq!(unknown.body["errors"][0]["field"], "plan_id");
    let missing = call(
        &a.state,
        "PUT",
        &format!("/api/admin/tenants/{}/plan", uuid::Uuid::new_v4()),
        Some(json!({"plan_id": "growth"})),
        auth,
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Growth allows custom domains; starter none: with one added, the downgrade is refused.
    let added = call(
        &a.state,
        "POST",
        &format!("/api/admin/tenants/{tenant}/domains"),
        Some(json!({"domain": "give.grace.org"})),
        auth,
    )
    .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    let down = call(
        &a.state,
        "PUT",
        &path,
        Some(json!({"plan_id": "starter"})),
        auth,
    )
    .await;
    assert_eq!(down.status, StatusCode::CONFLICT, "{}", down.body);
    let plan: String = a
        .owner
        .query_one(
            "SELECT plan_id FROM tenants WHERE id = $1::text::uuid",
            &[&tenant],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(plan, "growth");
    let audited: i64 = a
        .owner
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'tenant.plan' AND details->>'to' = 'growth'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 1);
}
