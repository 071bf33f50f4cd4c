//! Tenant staff: login on their tenant's host, donations list with filters and pagination,
//! reports — and no way to reach another tenant's data, even with a valid session.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tenant_config::config::{MapEnv, PlatformConfig};
use tower::ServiceExt;
use uuid::Uuid;

const SECRET: &str = "platform-test-edge-secret-0123456789ab";
const PASSWORD: &str = "staff password, long enough";

struct Env {
    _db: testkit::TestDb,
    state: platform::AppState,
    a: Uuid,
    b: Uuid,
    a_report: Uuid,
    b_report: Uuid,
}

async fn env() -> Env {
    let db = testkit::database().await;
    let owner = db.connect_as("postgres").await;
    let env = MapEnv::from_pairs([
        ("DATABASE_URL", db.web_url().as_str()),
        ("REDIS_URL", testkit::redis().url().as_str()),
        ("EDGE_SIGNING_SECRET", SECRET),
    ]);
    let config: PlatformConfig = tenant_config::config::load(None, &env).unwrap();
    let state = platform::AppState::from_config(&config).unwrap();
    let a = platform::admin::tenants::create_tenant(&state.db, "alpha", "Alpha", "starter", None)
        .await
        .unwrap()
        .id;
    let b = platform::admin::tenants::create_tenant(&state.db, "bravo", "Bravo", "starter", None)
        .await
        .unwrap()
        .id;
    platform::tenant::staff::create_staff(
        &state.db,
        "alpha",
        "Pat@Alpha.example",
        PASSWORD,
        "owner",
    )
    .await
    .unwrap();
    platform::tenant::staff::create_staff(
        &state.db,
        "bravo",
        "sam@bravo.example",
        PASSWORD,
        "staff",
    )
    .await
    .unwrap();
    for (t, n) in [(a, 3), (b, 2)] {
        owner
            .execute(
                "WITH d AS (INSERT INTO donors (tenant_id, email, name) VALUES ($1::uuid, 'donor@' || $1::uuid::text || '.example', 'Dana') RETURNING id)
                 INSERT INTO donations (tenant_id, donor_id, kind, amount_minor, currency, fee_minor, net_minor, fund, status, created_at)
                 SELECT $1::uuid, d.id, 'one_time', 1000 * g, 'usd', 20 * g, 980 * g,
                        CASE WHEN g = 1 THEN 'roof' ELSE 'general' END, 'succeeded', now() - make_interval(mins => g)
                 FROM d, generate_series(1, $2::int) g",
                &[&t, &n],
            )
            .await
            .unwrap();
    }
    let mut reports = Vec::new();
    for t in [a, b] {
        let id: Uuid = owner
            .query_one(
                "INSERT INTO reports (tenant_id, kind, period_start, period_end, csv, summary)
                 VALUES ($1, 'weekly_tenant', '2026-11-09', '2026-11-16', 'fund,gross\ngeneral,5000\n', '{\"gross\": 5000}')
                 RETURNING id",
                &[&t],
            )
            .await
            .unwrap()
            .get(0);
        reports.push(id);
    }
    Env {
        _db: db,
        state,
        a,
        b,
        a_report: reports[0],
        b_report: reports[1],
    }
}

fn req(
    method: &str,
    path: &str,
    tenant: Uuid,
    cookie: Option<&str>,
    csrf: Option<&str>,
    body: Option<Value>,
) -> Request<Body> {
    let text = body.map(|v| v.to_string());
    let mut b = testkit::edge::Signed::new(SECRET, "tenant", "tenant.platform.test")
        .tenant(tenant)
        .id_prefix("req-staff-0001")
        .request(method, path, text.as_ref().map(String::len));
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    if let Some(c) = csrf {
        b = b.header("x-csrf-token", c);
    }
    match text {
        Some(v) => b
            .header("content-type", "application/json")
            .body(Body::from(v))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

async fn send(
    state: &platform::AppState,
    r: Request<Body>,
) -> (StatusCode, Option<String>, String, Vec<u8>) {
    let resp = platform::app(state.clone()).oneshot(r).await.unwrap();
    let status = resp.status();
    let cookie = resp
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        status,
        cookie,
        ctype,
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
}

async fn login(e: &Env, tenant: Uuid, email: &str) -> (StatusCode, Option<(String, String)>) {
    let (code, cookie, _, body) = send(
        &e.state,
        req(
            "POST",
            "/api/staff/login",
            tenant,
            None,
            None,
            Some(json!({"email": email, "password": PASSWORD})),
        ),
    )
    .await;
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (
        code,
        cookie.map(|c| (c, v["csrf_token"].as_str().unwrap_or_default().to_owned())),
    )
}

#[tokio::test]
async fn staff_see_only_their_tenants_donations_with_pagination() {
    let e = env().await;
    let (code, session) = login(&e, e.a, "pat@alpha.example").await;
    assert_eq!(code, StatusCode::OK);
    let (cookie, _csrf) = session.unwrap();
    assert!(cookie.starts_with("__Host-staff_session="));

    let (code, _, _, body) = send(
        &e.state,
        req(
            "GET",
            "/api/staff/donations",
            e.a,
            Some(&cookie),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let page: Value = serde_json::from_slice(&body).unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "alpha's three donations, none of bravo's");
    assert!(items.iter().all(|d| d["donor_email"]
        .as_str()
        .unwrap()
        .contains(&e.a.to_string())));
    assert!(page["next"].is_null());

    // Pagination: two pages of 2 and 1, newest first, no overlap.
    let (_, _, _, p1) = send(
        &e.state,
        req(
            "GET",
            "/api/staff/donations?limit=2",
            e.a,
            Some(&cookie),
            None,
            None,
        ),
    )
    .await;
    let p1: Value = serde_json::from_slice(&p1).unwrap();
    let next = p1["next"].as_str().unwrap();
    let (_, _, _, p2) = send(
        &e.state,
        req(
            "GET",
            &format!("/api/staff/donations?limit=2&after={next}"),
            e.a,
            Some(&cookie),
            None,
            None,
        ),
    )
    .await;
    let p2: Value = serde_json::from_slice(&p2).unwrap();
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    assert_eq!(p2["items"].as_array().unwrap().len(), 1);
    assert_ne!(p1["items"][1]["id"], p2["items"][0]["id"]);
    assert_eq!(p1["items"][0]["amount_minor"], 1000, "newest first");

    let (_, _, _, roof) = send(
        &e.state,
        req(
            "GET",
            "/api/staff/donations?fund=roof",
            e.a,
            Some(&cookie),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(
        serde_json::from_slice::<Value>(&roof).unwrap()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (code, _, _, bad) = send(
        &e.state,
        req(
            "GET",
            "/api/staff/donations?after=garbage",
            e.a,
            Some(&cookie),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        serde_json::from_slice::<Value>(&bad).unwrap()["errors"][0]["field"],
        "after"
    );
}

#[tokio::test]
async fn a_session_or_account_of_one_tenant_opens_nothing_at_another() {
    let e = env().await;
    let (_, session) = login(&e, e.a, "pat@alpha.example").await;
    let (cookie, csrf) = session.unwrap();
    // Alpha's cookie presented on bravo's host (a request the router signed for bravo).
    let (code, ..) = send(
        &e.state,
        req(
            "GET",
            "/api/staff/donations",
            e.b,
            Some(&cookie),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    // Alpha's staff cannot log in at bravo.
    let (code, session) = login(&e, e.b, "pat@alpha.example").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(session.is_none());
    // Without a session nothing is listed.
    let (code, ..) = send(
        &e.state,
        req("GET", "/api/staff/donations", e.a, None, None, None),
    )
    .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    // Logout needs the CSRF token.
    let (code, ..) = send(
        &e.state,
        req("POST", "/api/staff/logout", e.a, Some(&cookie), None, None),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, ..) = send(
        &e.state,
        req(
            "POST",
            "/api/staff/logout",
            e.a,
            Some(&cookie),
            Some(&csrf),
            None,
        ),
    )
    .await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, ..) = send(
        &e.state,
        req(
            "GET",
            "/api/staff/donations",
            e.a,
            Some(&cookie),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn reports_list_and_csv_download_stay_within_the_tenant() {
    let e = env().await;
    let (_, session) = login(&e, e.a, "pat@alpha.example").await;
    let (cookie, _) = session.unwrap();
    let (code, _, _, body) = send(
        &e.state,
        req("GET", "/api/staff/reports", e.a, Some(&cookie), None, None),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let list: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], e.a_report.to_string());

    let (code, _, ctype, csv) = send(
        &e.state,
        req(
            "GET",
            &format!("/api/staff/reports/{}/csv", e.a_report),
            e.a,
            Some(&cookie),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert!(ctype.starts_with("text/csv"));
    assert_eq!(
        String::from_utf8(csv).unwrap(),
        "fund,gross\ngeneral,5000\n"
    );
    let (code, ..) = send(
        &e.state,
        req(
            "GET",
            &format!("/api/staff/reports/{}/csv", e.b_report),
            e.a,
            Some(&cookie),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(
        code,
        StatusCode::NOT_FOUND,
        "bravo's report does not exist for alpha"
    );
}

/// An owner changes the site's name, colour and funds (audited; the public profile shows them
/// at once); bad values are named; a staff member (not an owner) is refused both the API and
/// the settings page.
#[tokio::test]
async fn owners_change_site_settings_and_staff_cannot() {
    let e = env().await;
    let (code, session) = login(&e, e.a, "pat@alpha.example").await;
    assert_eq!(code, StatusCode::OK);
    let (cookie, csrf) = session.unwrap();
    let put = |body: Value| {
        req(
            "PUT",
            "/api/staff/settings",
            e.a,
            Some(&cookie),
            Some(&csrf),
            Some(body),
        )
    };

    let (code, _, _, body) = send(&e.state, put(json!({"name": "Alpha Chapel", "primary_color": "#ABC", "funds": [" general ", "roof", ""]}))).await;
    assert_eq!(code, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["name"], "Alpha Chapel");
    assert_eq!(v["primary_color"], "#abc");
    assert_eq!(v["funds"], json!(["general", "roof"]));
    let (_, _, _, body) = send(&e.state, req("GET", "/api/tenant", e.a, None, None, None)).await;
    let profile: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(profile["name"], "Alpha Chapel");
    assert_eq!(profile["donations"]["funds"], json!(["general", "roof"]));

    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "Bad\u{202E}Name"}), "name"),
        (json!({"primary_color": "red"}), "primary_color"),
        (json!({"funds": ["a", "A"]}), "funds"),
        (json!({"funds": []}), "funds"),
    ] {
        let (code, _, _, out) = send(&e.state, put(body.clone())).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["errors"][0]["field"], field, "{body}");
    }
    let (code, _, _, _) = send(&e.state, put(json!({"status": "active"}))).await;
    assert_eq!(
        code,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown fields are refused"
    );

    let (code, session) = login(&e, e.b, "sam@bravo.example").await;
    assert_eq!(code, StatusCode::OK);
    let (cookie_b, csrf_b) = session.unwrap();
    let (code, _, _, _) = send(
        &e.state,
        req(
            "PUT",
            "/api/staff/settings",
            e.b,
            Some(&cookie_b),
            Some(&csrf_b),
            Some(json!({"name": "Taken"})),
        ),
    )
    .await;
    assert_eq!(
        code,
        StatusCode::FORBIDDEN,
        "a staff member is not an owner"
    );
    let (code, _, _, _) = send(
        &e.state,
        req("GET", "/staff/settings", e.b, Some(&cookie_b), None, None),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, _, _, page) = send(
        &e.state,
        req("GET", "/staff/settings", e.a, Some(&cookie), None, None),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains("value=\"#aabbcc\"") && page.contains("roof"),
        "{page}"
    );
}
