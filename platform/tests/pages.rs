//! The web pages, in-process against real PostgreSQL, Redis and the Stripe emulator: the admin
//! console (login, dashboard, tenants, domains), the donation site (form, card token, thank-you
//! page) and the staff area (donations, CSV). Browser behaviour (JavaScript, axe) is covered by
//! the e2e suite; here each page's HTTP contract: status, redirects, cookies, CSRF fields,
//! errors next to fields, the Content-Security-Policy, and what was written.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use axum::body::Body;
use axum::http::StatusCode;
use http_body_util::BodyExt;
use tenant_config::config::{MapEnv, PlatformConfig};
use testkit::edge::Signed;
use tower::ServiceExt;
use uuid::Uuid;

const SECRET: &str = "pages-test-edge-secret-0123456789abcdef";
const PASSWORD: &str = "correct horse battery staple";

struct Env {
    _db: testkit::TestDb,
    owner: tokio_postgres::Client,
    state: platform::AppState,
    tenant: Uuid,
}

async fn env() -> Env {
    let db = testkit::database().await;
    let dns_addr = format!("127.0.0.1:{}", testkit::dns().port);
    let stripe = testkit::stripe().url();
    let env = MapEnv::from_pairs([
        ("DATABASE_URL", db.web_url().as_str()),
        ("REDIS_URL", testkit::redis().url().as_str()),
        ("EDGE_SIGNING_SECRET", SECRET),
        ("TENANT_BASE_DOMAIN", "platform.test"),
        ("DNS_RESOLVER", dns_addr.as_str()),
        ("STRIPE_SECRET_KEY", testkit::STRIPE_TEST_KEY),
        ("STRIPE_PUBLISHABLE_KEY", "pk_test_pages"),
        ("STRIPE_API_BASE", stripe.as_str()),
        ("STRIPE_JS_URL", "http://127.0.0.1:9/js.stripe.com/v3/"),
        ("PUBLIC_SCHEME", "http"),
        ("PUBLIC_PORT", "8000"),
    ]);
    let config: PlatformConfig = tenant_config::config::load(None, &env).unwrap();
    let state = platform::AppState::from_config(&config).unwrap();
    let owner = db.connect_as("postgres").await;
    let acct = format!("acct_pages{}", &Uuid::new_v4().simple().to_string()[..10]);
    let tenant: Uuid = owner
        .query_one(
            "INSERT INTO tenants (slug, name, status, settings, stripe_account_id, stripe_account_status)
             VALUES ('alpha', 'Alpha Church', 'active',
               '{\"donations\": {\"currencies\": [\"usd\"], \"min_minor\": 500,
                 \"max_minor\": 500000, \"funds\": [\"general\", \"roof\"]}}', $1, 'enabled')
             RETURNING id",
            &[&acct],
        )
        .await
        .unwrap()
        .get(0);
    platform::admin::auth::create_admin(&state.db, "ops@platform.test", PASSWORD, "admin")
        .await
        .unwrap();
    platform::tenant::staff::create_staff(&state.db, "alpha", "pat@alpha.test", PASSWORD, "staff")
        .await
        .unwrap();
    Env {
        _db: db,
        owner,
        state,
        tenant,
    }
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Resp {
    fn location(&self) -> &str {
        self.headers["location"].to_str().unwrap()
    }
}

async fn send(
    state: &platform::AppState,
    edge: &Signed,
    method: &str,
    path: &str,
    form: Option<&str>,
    cookies: &str,
) -> Resp {
    let mut b = edge
        .request(method, path, form.map(str::len))
        .header("accept", "text/html");
    if form.is_some() {
        b = b.header("content-type", "application/x-www-form-urlencoded");
    }
    if !cookies.is_empty() {
        b = b.header("cookie", cookies);
    }
    let req = b
        .body(form.map_or_else(Body::empty, |f| Body::from(f.to_owned())))
        .unwrap();
    let resp = platform::app(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn admin() -> Signed {
    Signed::new(SECRET, "admin", "admin.platform.test")
}

fn site(t: Uuid) -> Signed {
    Signed::new(SECRET, "tenant", "alpha.platform.test").tenant(t)
}

/// Signs in through a login form; returns the cookie header and the CSRF token.
async fn sign_in(
    state: &platform::AppState,
    edge: &Signed,
    path: &str,
    email: &str,
) -> (String, String) {
    let form = format!(
        "email={}&password={}",
        email.replace('@', "%40"),
        PASSWORD.replace(' ', "+")
    );
    let r = send(state, edge, "POST", path, Some(&form), "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let cookies: Vec<String> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    assert_eq!(cookies.len(), 2, "session and CSRF cookies: {cookies:?}");
    let csrf = cookies
        .iter()
        .find(|c| c.contains("_csrf="))
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    (cookies.join("; "), csrf)
}

fn value_of<'a>(html: &'a str, marker: &str) -> &'a str {
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in page"))
        + marker.len();
    &html[start..start + html[start..].find('"').unwrap()]
}

#[tokio::test]
async fn the_admin_console_signs_in_manages_tenants_and_domains() {
    let e = env().await;
    // Without a session, pages go to the login form.
    let r = send(&e.state, &admin(), "GET", "/tenants", None, "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/login");
    let r = send(&e.state, &admin(), "GET", "/login", None, "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("<label for=\"email\">Email</label>"));
    let policy = r.headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("script-src 'self';") && !policy.contains("unsafe-inline"),
        "{policy}"
    );
    // A wrong password: 401 and the form again with a message.
    let r = send(
        &e.state,
        &admin(),
        "POST",
        "/login",
        Some("email=ops%40platform.test&password=nope"),
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("role=\"alert\""), "{}", r.body);

    let (cookies, csrf) = sign_in(&e.state, &admin(), "/login", "ops@platform.test").await;
    let r = send(&e.state, &admin(), "GET", "/", None, &cookies).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("<h1>Dashboard</h1>") && r.body.contains("<svg"),
        "{}",
        r.body
    );
    assert_eq!(value_of(&r.body, "name=\"csrf_token\" value=\""), csrf);
    assert_eq!(r.headers["cache-control"], "no-store");

    // Create a tenant: without the CSRF field refused, with a bad slug the error sits by the
    // field and nothing is written, then created.
    let r = send(
        &e.state,
        &admin(),
        "POST",
        "/tenants",
        Some("slug=hope&name=Hope"),
        &cookies,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let bad = format!("csrf_token={csrf}&slug=Bad_Slug&name=Hope&plan_id=starter");
    let r = send(&e.state, &admin(), "POST", "/tenants", Some(&bad), &cookies).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("id=\"slug-error\""), "{}", r.body);
    assert!(r.body.contains("aria-invalid=\"true\""));
    let count = |slug: &'static str| {
        let owner = &e.owner;
        async move {
            owner
                .query_one("SELECT count(*) FROM tenants WHERE slug = $1", &[&slug])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    assert_eq!(count("hope").await, 0);
    let good = format!("csrf_token={csrf}&slug=hope&name=Hope+Chapel&plan_id=growth");
    let r = send(
        &e.state,
        &admin(),
        "POST",
        "/tenants",
        Some(&good),
        &cookies,
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let tenant_page = r.location().to_owned();
    assert!(tenant_page.starts_with("/tenants/"));
    assert_eq!(count("hope").await, 1);

    let r = send(&e.state, &admin(), "GET", "/tenants?q=hope", None, &cookies).await;
    assert!(
        r.body.contains("Hope Chapel") && !r.body.contains("Alpha Church"),
        "{}",
        r.body
    );

    // A custom domain: its TXT record is shown with copy buttons.
    let add = format!("csrf_token={csrf}&hostname=give.hopechapel.org");
    let r = send(
        &e.state,
        &admin(),
        "POST",
        &format!("{tenant_page}/domains"),
        Some(&add),
        &cookies,
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = send(&e.state, &admin(), "GET", &tenant_page, None, &cookies).await;
    assert!(r.body.contains("give.hopechapel.org"), "{}", r.body);
    assert!(r.body.contains("platform-verify="), "{}", r.body);
    assert!(r.body.contains("data-copy="));
    let bad_domain = format!("csrf_token={csrf}&hostname=localhost");
    let r = send(
        &e.state,
        &admin(),
        "POST",
        &format!("{tenant_page}/domains"),
        Some(&bad_domain),
        &cookies,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("id=\"hostname-error\""), "{}", r.body);

    // The plan: a downgrade below the tenant's domains is refused on the page, an upgrade
    // is made.
    let plan_of = || async {
        e.owner
            .query_one("SELECT plan_id FROM tenants WHERE slug = 'hope'", &[])
            .await
            .unwrap()
            .get::<_, String>(0)
    };
    let r = send(&e.state, &admin(), "GET", &tenant_page, None, &cookies).await;
    assert!(
        r.body.contains("name=\"plan_id\"") && r.body.contains("Change plan"),
        "{}",
        r.body
    );
    let down = format!("csrf_token={csrf}&plan_id=starter");
    let r = send(
        &e.state,
        &admin(),
        "POST",
        &format!("{tenant_page}/plan"),
        Some(&down),
        &cookies,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body.contains("remove some first"), "{}", r.body);
    assert_eq!(plan_of().await, "growth");
    let up = format!("csrf_token={csrf}&plan_id=network");
    let r = send(
        &e.state,
        &admin(),
        "POST",
        &format!("{tenant_page}/plan"),
        Some(&up),
        &cookies,
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(plan_of().await, "network");

    // Stripe onboarding from the page: the browser is sent to Stripe's hosted flow.
    let onboard = format!("csrf_token={csrf}&email=office%40hopechapel.org&country=US");
    let r = send(
        &e.state,
        &admin(),
        "POST",
        &format!("{tenant_page}/stripe-onboarding"),
        Some(&onboard),
        &cookies,
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().contains("acct_"), "{}", r.location());

    for page in ["/jobs", "/audit", "/audit?action=tenant.create"] {
        let r = send(&e.state, &admin(), "GET", page, None, &cookies).await;
        assert_eq!(r.status, StatusCode::OK, "{page}");
    }
    let r = send(
        &e.state,
        &admin(),
        "GET",
        "/audit?tenant_id=nope",
        None,
        &cookies,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    let r = send(
        &e.state,
        &admin(),
        "POST",
        "/logout",
        Some(&format!("csrf_token={csrf}")),
        &cookies,
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = send(&e.state, &admin(), "GET", "/", None, &cookies).await;
    assert_eq!(r.location(), "/login");
}

/// A card token from the Stripe emulator (what Stripe.js's createToken makes in the browser).
async fn card_token() -> String {
    token_for("4242424242424242").await
}

/// A token for `number` (the emulator's 3-D Secure test cards include 4000002760003184).
async fn token_for(number: &str) -> String {
    let v = reqwest::Client::new()
        .post(format!("{}/v1/tokens", testkit::stripe().url()))
        .bearer_auth(testkit::STRIPE_TEST_KEY)
        .form(&[
            ("card[number]", number),
            ("card[exp_month]", "12"),
            ("card[exp_year]", "2034"),
            ("card[cvc]", "123"),
        ])
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_donor_gives_once_and_monthly_through_the_form() {
    let e = env().await;
    let r = send(&e.state, &site(e.tenant), "GET", "/", None, "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("<h1>Alpha Church</h1>") && r.body.contains("id=\"give\""),
        "{}",
        r.body
    );
    assert!(r.body.contains("data-stripe-key=\"pk_test_pages\""));
    let policy = r.headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("script-src 'self' http://127.0.0.1:9;"),
        "{policy}"
    );
    assert!(!policy.contains("unsafe-inline"));

    // Bad input: the message sits by the field and nothing is written.
    for (form, field) in [
        ("preset=2500&frequency=one_time&donor_name=Ann&donor_email=nope&card_token=tok_x", "donor_email-error"),
        ("amount=abc&frequency=one_time&donor_name=Ann&donor_email=ann%40example.org&card_token=tok_x", "amount-error"),
        ("amount=1&frequency=one_time&donor_name=Ann&donor_email=ann%40example.org&card_token=tok_x", "amount-error"),
        ("preset=2500&frequency=one_time&donor_name=&donor_email=ann%40example.org&card_token=tok_x", "donor_name-error"),
        ("preset=2500&frequency=one_time&donor_name=Ann&donor_email=ann%40example.org", "card-errors"),
    ] {
        let r = send(&e.state, &site(e.tenant), "POST", "/give", Some(form), "").await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{form}");
        assert!(r.body.contains(&format!("id=\"{field}\"")), "{form}: {}", r.body);
    }
    let gifts = || async {
        e.owner
            .query_one(
                "SELECT (SELECT count(*) FROM donations) + (SELECT count(*) FROM recurring_donations)",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(gifts().await, 0);

    // One time, with a custom amount.
    let form = format!(
        "preset=2500&amount=40.50&fund=roof&frequency=one_time&donor_name=Ann+Lee&donor_email=ann%40example.org&card_token={}",
        card_token().await
    );
    let r = send(&e.state, &site(e.tenant), "POST", "/give", Some(&form), "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let thanks = r.location().to_owned();
    assert!(thanks.starts_with("/give/thanks?gift="), "{thanks}");
    let row = e
        .owner
        .query_one(
            "SELECT amount_minor, fund, stripe_payment_intent_id IS NOT NULL FROM donations",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 4050);
    assert_eq!(row.get::<_, String>(1), "roof");
    assert!(row.get::<_, bool>(2));
    let r = send(&e.state, &site(e.tenant), "GET", &thanks, None, "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("<h1>Thank you</h1>") && r.body.contains("40.50 USD"),
        "{}",
        r.body
    );

    // Monthly: the thank-you page carries the cancel link, on the public scheme and port.
    let form = format!(
        "preset=1000&fund=general&frequency=month&donor_name=Bo&donor_email=bo%40example.org&card_token={}",
        card_token().await
    );
    let r = send(&e.state, &site(e.tenant), "POST", "/give", Some(&form), "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let thanks = r.location().to_owned();
    assert!(thanks.starts_with("/give/thanks?recurring="), "{thanks}");
    let r = send(&e.state, &site(e.tenant), "GET", &thanks, None, "").await;
    assert!(
        r.body
            .contains("href=\"http://alpha.platform.test:8000/give/cancel?gift="),
        "{}",
        r.body
    );
    // A forged token shows no cancel link.
    let forged = format!("{}{}", &thanks[..thanks.len() - 4], "0000");
    let r = send(&e.state, &site(e.tenant), "GET", &forged, None, "").await;
    assert!(!r.body.contains("/give/cancel?"));
    let status: String = e
        .owner
        .query_one("SELECT status FROM recurring_donations", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(status, "incomplete_expired");
}

#[tokio::test]
async fn staff_see_their_donations_and_download_them_as_csv() {
    let e = env().await;
    e.owner
        .execute(
            "WITH d AS (INSERT INTO donors (tenant_id, email, name) VALUES ($1, 'dana@example.org', '=HYPERLINK(1)') RETURNING id)
             INSERT INTO donations (tenant_id, donor_id, kind, amount_minor, currency, fee_minor, net_minor, fund, status)
             SELECT $1, d.id, 'one_time', 2500, 'usd', 50, 2450, 'roof', 'succeeded' FROM d",
            &[&e.tenant],
        )
        .await
        .unwrap();
    let r = send(&e.state, &site(e.tenant), "GET", "/staff", None, "").await;
    assert_eq!(r.location(), "/staff/login");
    let (cookies, _) = sign_in(&e.state, &site(e.tenant), "/staff/login", "pat@alpha.test").await;
    let r = send(&e.state, &site(e.tenant), "GET", "/staff", None, &cookies).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("<h1>Donations</h1>") && r.body.contains("25.00 USD"),
        "{}",
        r.body
    );
    let r = send(
        &e.state,
        &site(e.tenant),
        "GET",
        "/staff?status=nonsense",
        None,
        &cookies,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = send(
        &e.state,
        &site(e.tenant),
        "GET",
        "/staff/donations.csv?fund=roof",
        None,
        &cookies,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let lines: Vec<&str> = r.body.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.body);
    assert!(
        lines[1].contains("\"'=HYPERLINK(1)\"") && lines[1].contains("\"2500\""),
        "{}",
        lines[1]
    );
    for page in ["/staff/reports", "/staff/domains"] {
        let r = send(&e.state, &site(e.tenant), "GET", page, None, &cookies).await;
        assert_eq!(r.status, StatusCode::OK, "{page}");
    }
}

#[tokio::test]
async fn a_card_that_needs_3d_secure_gets_the_bank_confirmation_step() {
    let e = env().await;
    for (frequency, next) in [
        ("one_time", "/give/thanks?gift="),
        ("month", "/give/thanks?recurring="),
    ] {
        let form = format!(
            "preset=2500&fund=general&frequency={frequency}&donor_name=Cy&donor_email=cy%40example.org&card_token={}",
            token_for("4000002760003184").await
        );
        let r = send(&e.state, &site(e.tenant), "POST", "/give", Some(&form), "").await;
        // Not a redirect to "thank you": the bank has not said yes yet.
        assert_eq!(r.status, StatusCode::OK, "{frequency}: {}", r.body);
        assert!(r.body.contains("Confirm with your bank"), "{}", r.body);
        assert!(
            r.body.contains("data-client-secret=\"pi_"),
            "{frequency}: no PaymentIntent client secret: {}",
            r.body
        );
        assert!(
            r.body.contains(&format!("data-next=\"{next}")),
            "{}",
            r.body
        );
        assert!(r.body.contains("/static/confirm.js"));
        // The page holds the client secret: no cache may keep it.
        let cache = r.headers["cache-control"].to_str().unwrap();
        assert!(cache.contains("no-store"), "{cache}");
    }
    // Nothing has succeeded before the bank confirms.
    let succeeded: i64 = e
        .owner
        .query_one(
            "SELECT count(*) FROM donations WHERE status = 'succeeded'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(succeeded, 0);
    let r = send(
        &e.state,
        &site(e.tenant),
        "GET",
        "/static/confirm.js",
        None,
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("confirmCardPayment"));
}

/// A declined card brings the donor back to the form with the reason by the card field —
/// one time and monthly, whether Stripe refuses the card outright or the first charge of a
/// subscription fails — and never to the thank-you page.
#[tokio::test]
async fn a_declined_card_is_shown_by_the_card_field() {
    let e = env().await;
    for number in ["4000000000000002", "4000000000000341"] {
        for frequency in ["one_time", "month"] {
            let form = format!(
                "preset=2500&fund=general&frequency={frequency}&donor_name=Di&donor_email=di%40example.org&card_token={}",
                token_for(number).await
            );
            let r = send(&e.state, &site(e.tenant), "POST", "/give", Some(&form), "").await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{number} {frequency}: {}",
                r.body
            );
            assert!(
                r.body.contains("id=\"card-errors\"") && r.body.contains("declined"),
                "{number} {frequency}: {}",
                r.body
            );
        }
    }
}
