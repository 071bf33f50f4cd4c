//! The admin console on `admin.<base>`: server-rendered pages over the same functions as the
//! admin API. Every form posts back here (URL-encoded, with the CSRF token as a field), and
//! answers with a 303 to the page to show next, or the same page with the errors beside their
//! fields. Without a session any page sends the browser to `/login`.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::auth::{AdminSession, SESSION_COOKIE};
use super::tenants::TenantView;
use crate::auth::Login;
use crate::edge::EdgeRequest;
use crate::error::AppError;
use crate::input::{ApiForm, ApiJson, ApiQuery};
use crate::state::AppState;
use crate::web::{
    money, private_page as page, see_other, FieldErrors, LoginForm, PageSession, SignedIn,
};

/// A signed-in admin on a page (no session → `/login`).
pub type AdminPage = SignedIn<AdminSession>;

impl PageSession for AdminSession {
    const COOKIE: &'static str = SESSION_COOKIE;
    const LOGIN: &'static str = "/login";
}

/// `GET /login`.
#[derive(Template)]
#[template(path = "admin/login.html")]
struct LoginPage {
    email: String,
    errors: FieldErrors,
}

/// `GET /login` on the admin host.
pub async fn login_form(edge: EdgeRequest) -> Result<Response, AppError> {
    if edge.route != "admin" {
        return Err(AppError::NotFound);
    }
    Ok(page(
        StatusCode::OK,
        &LoginPage {
            email: String::new(),
            errors: FieldErrors::default(),
        },
    ))
}

/// `POST /login`: signs in and goes to the dashboard, or shows the form again.
pub async fn login_submit(
    State(state): State<AppState>,
    edge: EdgeRequest,
    headers: HeaderMap,
    ApiForm(f): ApiForm<LoginForm>,
) -> Result<Response, AppError> {
    let form = Login {
        email: f.email.clone(),
        password: f.password,
    };
    match super::auth::sign_in(&state, &edge, &headers, &form).await {
        Ok(s) => Ok(crate::auth::page_login_response(SESSION_COOKIE, &s, "/")),
        Err(AppError::Unauthorized) => Ok(page(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                email: f.email,
                errors: FieldErrors::one(
                    "_",
                    "That email and password do not match an active account.",
                ),
            },
        )),
        Err(e) => Err(e),
    }
}

/// `POST /logout`.
pub async fn logout(State(state): State<AppState>, p: AdminPage) -> Result<Response, AppError> {
    p.session.end(&state).await?;
    Ok(crate::auth::page_logout_response(SESSION_COOKIE, "/login"))
}

/// A bar of the dashboard's chart.
struct Bar {
    label: String,
    value: i64,
    x: i64,
    y: i64,
    height: i64,
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct Dashboard {
    csrf: String,
    total: i64,
    active: i64,
    trial: i64,
    suspended: i64,
    churned: i64,
    revenue: Vec<(String, String)>,
    donations: Vec<(String, i64, String)>,
    bars: Vec<Bar>,
}

/// Bars for tenants by status, scaled into a 300-unit-high chart.
fn bars(values: &[(&str, i64)]) -> Vec<Bar> {
    let max = values.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    values
        .iter()
        .enumerate()
        .map(|(i, (label, value))| {
            let height = value * 200 / max;
            Bar {
                label: (*label).to_owned(),
                value: *value,
                x: 20 + i as i64 * 90,
                y: 230 - height,
                height,
            }
        })
        .collect()
}

/// `GET /` on the admin host: the dashboard.
pub async fn dashboard(State(state): State<AppState>, p: AdminPage) -> Result<Response, AppError> {
    let Json(m) = super::overview::platform_metrics(State(state), p.session.clone()).await?;
    let n = |k: &str| m["tenants"][k].as_i64().unwrap_or(0);
    let revenue = m["revenue"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let c = r["currency"].as_str().unwrap_or("");
            (
                money(r["mrr_minor"].as_i64().unwrap_or(0), c),
                money(r["arr_minor"].as_i64().unwrap_or(0), c),
            )
        })
        .collect();
    let donations = m["donations_this_month"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let c = d["currency"].as_str().unwrap_or("");
            (
                c.to_uppercase(),
                d["count"].as_i64().unwrap_or(0),
                money(d["sum_minor"].as_i64().unwrap_or(0), c),
            )
        })
        .collect();
    let bars = bars(&[
        ("Active", n("active")),
        ("Trial", n("trial")),
        ("Suspended", n("suspended")),
        ("Cancelled", n("churned")),
    ]);
    Ok(page(
        StatusCode::OK,
        &Dashboard {
            csrf: p.csrf,
            total: n("total"),
            active: n("active"),
            trial: n("trial"),
            suspended: n("suspended"),
            churned: n("churned"),
            revenue,
            donations,
            bars,
        },
    ))
}

#[derive(Template)]
#[template(path = "admin/tenants.html")]
struct TenantsPage {
    csrf: String,
    q: String,
    items: Vec<TenantView>,
    page: i64,
    next: Option<i64>,
    prev: Option<i64>,
    plans: Vec<String>,
    form: NewTenantForm,
    errors: FieldErrors,
}

/// The new-tenant form's fields (kept to show them again with errors).
#[derive(Debug, Default, Deserialize)]
pub struct NewTenantForm {
    #[serde(default)]
    slug: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    plan_id: String,
}

/// The tenant list's query.
#[derive(Debug, Default, Deserialize)]
pub struct TenantsQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: Option<i64>,
}

const PAGE_SIZE: i64 = 25;
/// Highest page number a list link may ask for (25 million rows in): far past any real list,
/// and low enough that the offset never overflows.
const MAX_PAGE: i64 = 1_000_000;

async fn tenants_page(
    state: AppState,
    p: AdminPage,
    query: TenantsQuery,
    form: NewTenantForm,
    errors: FieldErrors,
    status: StatusCode,
) -> Result<Response, AppError> {
    let page_no = query.page.unwrap_or(1).clamp(1, MAX_PAGE);
    let Json(mut items) = super::tenants::list(
        State(state.clone()),
        p.session.clone(),
        ApiQuery(super::tenants::ListQuery {
            status: None,
            q: Some(query.q.clone()),
            limit: Some(PAGE_SIZE + 1),
            offset: Some((page_no - 1) * PAGE_SIZE),
        }),
    )
    .await?;
    let more = items.len() as i64 > PAGE_SIZE;
    items.truncate(PAGE_SIZE as usize);
    let plans = plans(&state).await?;
    Ok(page(
        status,
        &TenantsPage {
            csrf: p.csrf,
            q: query.q,
            items,
            page: page_no,
            next: more.then_some(page_no + 1),
            prev: (page_no > 1).then_some(page_no - 1),
            plans,
            form,
            errors,
        },
    ))
}

/// The active plans' ids, for the plan selects.
pub(super) async fn plans(state: &AppState) -> Result<Vec<String>, AppError> {
    let mut conn = state.db.get().await?;
    let tx = super::begin(&mut conn).await?;
    let rows = tx
        .query("SELECT id FROM plans WHERE active ORDER BY id", &[])
        .await?;
    tx.commit().await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// `GET /tenants`: search, pages, and the new-tenant form.
pub async fn tenants(
    State(state): State<AppState>,
    p: AdminPage,
    ApiQuery(q): ApiQuery<TenantsQuery>,
) -> Result<Response, AppError> {
    tenants_page(
        state,
        p,
        q,
        NewTenantForm::default(),
        FieldErrors::default(),
        StatusCode::OK,
    )
    .await
}

/// `POST /tenants`: creates a tenant and shows it, or the list with the form's errors.
pub async fn create_tenant(
    State(state): State<AppState>,
    p: AdminPage,
    ApiForm(form): ApiForm<NewTenantForm>,
) -> Result<Response, AppError> {
    let body = super::tenants::NewTenant {
        slug: form.slug.clone(),
        name: form.name.clone(),
        plan_id: (!form.plan_id.is_empty()).then(|| form.plan_id.clone()),
    };
    match super::tenants::create(State(state.clone()), p.session.clone(), ApiJson(body)).await {
        Ok((_, Json(t))) => Ok(see_other(&format!("/tenants/{}", t.id))),
        Err(e) => {
            // The one conflict creating a tenant can meet is a slug already taken.
            let errors = match e {
                AppError::Conflict(what) => FieldErrors::one("slug", what),
                e => FieldErrors::from_error(e, &[])?,
            };
            tenants_page(
                state,
                p,
                TenantsQuery::default(),
                form,
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

#[derive(Template)]
#[template(path = "admin/jobs.html")]
struct JobsPage {
    csrf: String,
    rows: Vec<(String, String, i64)>,
    runs: Vec<(String, String, String, String)>,
}

/// `GET /jobs`: the queue by kind and state, and the cron jobs' last runs.
pub async fn jobs(State(state): State<AppState>, p: AdminPage) -> Result<Response, AppError> {
    let Json(j) = super::overview::jobs(State(state.clone()), p.session.clone()).await?;
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    };
    let rows = j["queue"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                text(&r["kind"]),
                text(&r["state"]),
                r["count"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    let runs = j["last_cron_runs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                text(&r["job"]),
                text(&r["started_at"]),
                text(&r["finished_at"]),
                text(&r["outcome"]),
            )
        })
        .collect();
    Ok(page(
        StatusCode::OK,
        &JobsPage {
            csrf: p.csrf,
            rows,
            runs,
        },
    ))
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    csrf: String,
    action: String,
    tenant_id: String,
    entries: Vec<super::overview::AuditEntry>,
    next: Option<String>,
    errors: FieldErrors,
}

/// The audit log's filters.
#[derive(Debug, Default, Deserialize)]
pub struct AuditFilters {
    #[serde(default)]
    action: String,
    #[serde(default)]
    tenant_id: String,
    #[serde(default)]
    before: Option<i64>,
}

/// `GET /audit`: newest first, filtered by action and tenant, 50 to a page.
pub async fn audit(
    State(state): State<AppState>,
    p: AdminPage,
    ApiQuery(f): ApiQuery<AuditFilters>,
) -> Result<Response, AppError> {
    let tenant = match f.tenant_id.trim() {
        "" => None,
        t => match t.parse() {
            Ok(id) => Some(id),
            Err(_) => {
                return Ok(page(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &AuditPage {
                        csrf: p.csrf,
                        action: f.action,
                        tenant_id: f.tenant_id,
                        entries: Vec::new(),
                        next: None,
                        errors: FieldErrors::one("tenant_id", "must be a tenant id (UUID)"),
                    },
                ))
            }
        },
    };
    let action = f.action.trim().to_owned();
    let Json(entries) = super::overview::audit_log(
        State(state),
        p.session.clone(),
        ApiQuery(super::overview::AuditQuery {
            tenant_id: tenant,
            action: (!action.is_empty()).then(|| action.clone()),
            before: f.before,
            limit: Some(50),
        }),
    )
    .await?;
    let next = (entries.len() == 50)
        .then(|| entries.last().map(|e| e.id))
        .flatten()
        .map(|before| {
            let mut s = form_urlencoded::Serializer::new(String::new());
            s.append_pair("action", &action)
                .append_pair("tenant_id", f.tenant_id.trim())
                .append_pair("before", &before.to_string());
            format!("/audit?{}", s.finish())
        });
    Ok(page(
        StatusCode::OK,
        &AuditPage {
            csrf: p.csrf,
            action,
            tenant_id: f.tenant_id,
            entries,
            next,
            errors: FieldErrors::default(),
        },
    ))
}
