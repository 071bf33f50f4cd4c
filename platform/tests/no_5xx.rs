//! Property test: arbitrary input at every endpoint that reads a body or a query string never
//! gets a 5xx. Bodies are JSON objects whose keys come from every property name in the OpenAPI
//! document (so handlers see their own fields) with arbitrary values — strings with NUL and
//! other control characters, huge and negative numbers, nesting — sent with valid edge
//! signatures and, on admin and staff routes, an owner's session, so the input reaches the
//! handlers and the database. Stripe events are signed with the webhook secret. Against real
//! PostgreSQL, Redis, DNS and the Stripe emulator.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use platform::access::Access;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};
use tenant_config::config::{MapEnv, PlatformConfig};
use testkit::edge::Signed;
use tower::ServiceExt;

const SECRET: &str = "no-5xx-test-edge-secret-0123456789abcdef";
const PASSWORD: &str = "correct horse battery staple";
const WHSEC: &str = "whsec_no_5xx_test";

fn value(keys: Vec<String>) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<String>().prop_map(Value::from),
        "[\\x00-\\x1f\\x7f a-z@.]{0,12}".prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
        Just(Value::from("acct_1Abc")),
        Just(Value::from("usd")),
        Just(Value::from(1000)),
    ];
    let keys2 = keys.clone();
    leaf.prop_recursive(2, 12, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::vec((prop::sample::select(keys2.clone()), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn object(keys: Vec<String>) -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (
            prop_oneof![
                4 => prop::sample::select(keys.clone()),
                1 => any::<String>(),
            ],
            value(keys),
        ),
        0..7,
    )
    .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>()))
}

fn query(keys: Vec<String>) -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(keys), any::<String>()), 0..4).prop_map(|kv| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in kv {
            s.append_pair(&k, &v);
        }
        s.finish()
    })
}

fn property_names(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(props)) = m.get("properties") {
                out.extend(props.keys().cloned());
            }
            if m.get("in").is_some() {
                if let Some(Value::String(name)) = m.get("name") {
                    out.insert(name.clone());
                }
            }
            m.values().for_each(|x| property_names(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| property_names(x, out)),
        _ => {}
    }
}

fn stripe_signature(body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let t = testkit::edge::unix_now();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(WHSEC.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[test]
fn arbitrary_input_never_gets_a_5xx() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _entered = rt.enter();
    let db = rt.block_on(testkit::database());
    let dns_addr = format!("127.0.0.1:{}", testkit::dns().port);
    let env = MapEnv::from_pairs([
        ("DATABASE_URL", db.web_url().as_str()),
        ("REDIS_URL", testkit::redis().url().as_str()),
        ("EDGE_SIGNING_SECRET", SECRET),
        ("DNS_RESOLVER", dns_addr.as_str()),
        ("STRIPE_WEBHOOK_SECRET", WHSEC),
        ("STRIPE_SECRET_KEY", testkit::STRIPE_TEST_KEY),
        ("STRIPE_API_BASE", testkit::stripe().url().as_str()),
    ]);
    let config: PlatformConfig = tenant_config::config::load(None, &env).unwrap();
    let state = platform::AppState::from_config(&config).unwrap();
    let app = platform::app(state.clone());
    let tenant = rt.block_on(async {
        let t =
            platform::admin::tenants::create_tenant(&state.db, "alpha", "Alpha", "starter", None)
                .await
                .unwrap()
                .id;
        platform::admin::auth::create_admin(&state.db, "owner@platform.test", PASSWORD, "owner")
            .await
            .unwrap();
        platform::tenant::staff::create_staff(
            &state.db,
            "alpha",
            "owner@alpha.test",
            PASSWORD,
            "owner",
        )
        .await
        .unwrap();
        t
    });
    let admin = Signed::new(SECRET, "admin", "admin.platform.test");
    let staff = Signed::new(SECRET, "tenant", "alpha.platform.test").tenant(tenant);
    let send = |req: Request<Body>| {
        let app = app.clone();
        async move {
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        }
    };
    let login = |edge: &Signed, path: &str, email: &str| {
        let body = json!({"email": email, "password": PASSWORD}).to_string();
        let req = edge
            .request("POST", path, Some(body.len()))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let resp = rt.block_on(async { app.clone().oneshot(req).await.unwrap() });
        let cookie = resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let bytes = rt.block_on(resp.into_body().collect()).unwrap().to_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        (cookie, v["csrf_token"].as_str().unwrap().to_owned())
    };
    let admin_session = login(&admin, "/api/admin/login", "owner@platform.test");
    let staff_session = login(&staff, "/api/staff/login", "owner@alpha.test");

    let (_, doc) = rt.block_on(send(
        Request::get("/api/openapi.json")
            .body(Body::empty())
            .unwrap(),
    ));
    let mut names = BTreeSet::new();
    property_names(&serde_json::from_str(&doc).unwrap(), &mut names);
    let keys: Vec<String> = names.into_iter().collect();
    assert!(keys.len() > 20, "{keys:?}");

    let mut checked = 0;
    let statuses = std::sync::Mutex::new(std::collections::BTreeMap::<u16, usize>::new());
    for route in platform::routes() {
        // Logouts end the session the other routes use.
        if route.path.ends_with("/logout") || route.access == Access::Public {
            continue;
        }
        let (edge, session) = match route.access {
            Access::Admin(_) => (&admin, Some(&admin_session)),
            Access::Staff(_) => (&staff, Some(&staff_session)),
            _ if route.path.starts_with("/api/admin/") => (&admin, None),
            _ => (&staff, None),
        };
        let with_body = route.method == "POST" || route.method == "PUT";
        let webhook = route.path.starts_with("/api/webhooks/");
        let mut runner = TestRunner::new(Config {
            cases: if webhook { 48 } else { 24 },
            failure_persistence: None,
            ..Config::default()
        });
        let strategy = (
            object(keys.clone()),
            query(keys.clone()),
            "[a-zA-Z0-9%_-]{0,40}",
        );
        let result = runner.run(&strategy, |(body, q, id)| {
            let path = route.path.replace("{id}", &id);
            let target = if with_body || q.is_empty() {
                path
            } else {
                format!("{path}?{q}")
            };
            let body = if webhook {
                let mut event = json!({
                    "id": "evt_prop", "type": "payment_intent.succeeded", "created": 1_700_000_000,
                    "livemode": false, "account": "acct_1Abc", "data": {"object": body.clone()}
                });
                if let Value::Object(extra) = &body {
                    for (k, v) in extra {
                        if matches!(k.as_str(), "id" | "type" | "account") {
                            event[k] = v.clone();
                        }
                    }
                }
                event.to_string()
            } else {
                body.to_string()
            };
            // The signature covers the URI as sent; an unparseable one is the router's to refuse.
            if target.parse::<axum::http::Uri>().is_err() {
                return Ok(());
            }
            let mut b = edge.request(route.method, &target, with_body.then_some(body.len()));
            if let Some((cookie, csrf)) = session {
                b = b.header("cookie", cookie).header("x-csrf-token", csrf);
            }
            let req = if with_body {
                let b = b.header("content-type", "application/json");
                let b = if webhook {
                    b.header("stripe-signature", stripe_signature(body.as_bytes()))
                } else {
                    b
                };
                b.body(Body::from(body.clone())).unwrap()
            } else {
                b.body(Body::empty()).unwrap()
            };
            let (status, answer) = rt.block_on(send(req));
            *statuses.lock().unwrap().entry(status.as_u16()).or_default() += 1;
            if status.is_server_error() {
                return Err(TestCaseError::fail(format!(
                    "{} {target} answered {status}: {answer}\nbody: {body}",
                    route.method
                )));
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("{} {}: {e}", route.method, route.path);
        }
        checked += 1;
    }
    assert!(checked >= 25, "{checked} routes checked");
    // The input reached the handlers: answers range from success to field-level refusals,
    // not just signature or session failures.
    let statuses = statuses.into_inner().unwrap();
    eprintln!("statuses: {statuses:?}");
    for expected in [200, 400, 422] {
        assert!(
            statuses.contains_key(&expected),
            "no {expected} in {statuses:?}"
        );
    }
    let auth_failures =
        statuses.get(&401).copied().unwrap_or(0) + statuses.get(&403).copied().unwrap_or(0);
    assert!(
        auth_failures * 10 < statuses.values().sum::<usize>(),
        "{statuses:?}"
    );
}
