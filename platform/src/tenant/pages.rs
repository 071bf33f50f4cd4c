//! The staff area on a tenant's host: sign in, the tenant's donations (filters, CSV download),
//! its reports and its custom domains. Pages over the same functions as the staff API; without
//! a session the browser is sent to `/staff/login`.

use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::staff::{StaffSession, STAFF_COOKIE};
use crate::auth::Login;
use crate::edge::TenantRequest;
use crate::error::AppError;
use crate::input::{ApiForm, ApiQuery};
use crate::state::AppState;
use crate::web::{money, private_page as page, FieldErrors, LoginForm, PageSession, SignedIn};

/// A signed-in staff member on a page (no session → `/staff/login`).
pub type StaffPage = SignedIn<StaffSession>;

impl PageSession for StaffSession {
    const COOKIE: &'static str = STAFF_COOKIE;
    const LOGIN: &'static str = "/staff/login";
}

#[derive(Template)]
#[template(path = "staff/login.html")]
struct LoginPage {
    name: String,
    email: String,
    errors: FieldErrors,
}

/// `GET /staff/login`.
pub async fn login_form(
    State(state): State<AppState>,
    req: TenantRequest,
) -> Result<Response, AppError> {
    let p = super::profile::load(&state, req.tenant).await?;
    Ok(page(
        StatusCode::OK,
        &LoginPage {
            name: p.name.clone(),
            email: String::new(),
            errors: FieldErrors::default(),
        },
    ))
}

/// `POST /staff/login`.
pub async fn login_submit(
    State(state): State<AppState>,
    req: TenantRequest,
    headers: HeaderMap,
    ApiForm(f): ApiForm<LoginForm>,
) -> Result<Response, AppError> {
    let form = Login {
        email: f.email.clone(),
        password: f.password,
    };
    match super::staff::sign_in(&state, &req, &headers, &form).await {
        Ok(s) => Ok(crate::auth::page_login_response(STAFF_COOKIE, &s, "/staff")),
        Err(AppError::Unauthorized) => {
            let p = super::profile::load(&state, req.tenant).await?;
            Ok(page(
                StatusCode::UNAUTHORIZED,
                &LoginPage {
                    name: p.name.clone(),
                    email: f.email,
                    errors: FieldErrors::one(
                        "_",
                        "That email and password do not match an active account.",
                    ),
                },
            ))
        }
        Err(e) => Err(e),
    }
}

/// `POST /staff/logout`.
pub async fn logout(State(state): State<AppState>, p: StaffPage) -> Result<Response, AppError> {
    super::staff::logout(State(state), p.session).await?;
    Ok(crate::auth::page_logout_response(
        STAFF_COOKIE,
        "/staff/login",
    ))
}

/// A donation row as the page shows it.
struct Row {
    created: String,
    donor: String,
    email: String,
    kind: String,
    amount: String,
    net: String,
    fund: String,
    status: String,
}

#[derive(Template)]
#[template(path = "staff/donations.html")]
struct DonationsPage {
    csrf: String,
    rows: Vec<Row>,
    status: String,
    fund: String,
    next: Option<String>,
    csv: String,
    errors: FieldErrors,
}

/// The donations list's filters.
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    status: String,
    #[serde(default)]
    fund: String,
    #[serde(default)]
    after: Option<String>,
}

fn filter_query(f: &Filters) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    if !f.status.is_empty() {
        s.append_pair("status", &f.status);
    }
    if !f.fund.is_empty() {
        s.append_pair("fund", &f.fund);
    }
    s.finish()
}

async fn donations_page(
    state: AppState,
    session: StaffSession,
    f: &Filters,
    limit: i64,
) -> Result<super::donations::Page, AppError> {
    let Json(page) = super::donations::list(
        State(state),
        session,
        ApiQuery(super::donations::ListQuery {
            status: Some(f.status.clone()).filter(|s| !s.is_empty()),
            fund: Some(f.fund.clone()).filter(|s| !s.is_empty()),
            from: None,
            to: None,
            limit: Some(limit),
            after: f.after.clone(),
        }),
    )
    .await?;
    Ok(page)
}

/// `GET /staff`: the tenant's donations, newest first, 50 to a page.
pub async fn donations(
    State(state): State<AppState>,
    p: StaffPage,
    ApiQuery(f): ApiQuery<Filters>,
) -> Result<Response, AppError> {
    let query = filter_query(&f);
    let result = donations_page(state, p.session.clone(), &f, 50).await;
    let (page_data, errors) = match result {
        Ok(d) => (d, FieldErrors::default()),
        Err(e) => (
            super::donations::Page {
                items: Vec::new(),
                next: None,
            },
            FieldErrors::from_error(e, &[])?,
        ),
    };
    let rows = page_data
        .items
        .iter()
        .map(|d| Row {
            created: d.created_at.format("%Y-%m-%d %H:%M").to_string(),
            donor: d.donor_name.clone(),
            email: d.donor_email.clone(),
            kind: d.kind.clone(),
            amount: money(d.amount_minor, &d.currency),
            net: money(d.net_minor, &d.currency),
            fund: d.fund.clone(),
            status: d.status.clone(),
        })
        .collect();
    let next = page_data.next.map(|after| {
        let mut s = form_urlencoded::Serializer::new(query.clone());
        s.append_pair("after", &after);
        format!("/staff?{}", s.finish())
    });
    Ok(page(
        if errors.any() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        },
        &DonationsPage {
            csrf: p.csrf,
            rows,
            status: f.status,
            fund: f.fund,
            next,
            csv: format!("/staff/donations.csv?{query}"),
            errors,
        },
    ))
}

/// Quotes a CSV field; a leading `=`, `+`, `-`, `@`, tab or CR is defused with `'` so a
/// spreadsheet never runs a donor-supplied formula.
fn csv_field(s: &str) -> String {
    let defused = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    format!("\"{}\"", defused.replace('"', "\"\""))
}

/// `GET /staff/donations.csv`: every donation matching the filters, as CSV.
pub async fn donations_csv(
    State(state): State<AppState>,
    p: StaffPage,
    ApiQuery(mut f): ApiQuery<Filters>,
) -> Result<Response, AppError> {
    let mut out = String::from(
        "created_at,donor_name,donor_email,kind,amount_minor,fee_minor,net_minor,currency,fund,status\r\n",
    );
    // Page through everything (bounded: 200 pages of 200).
    for _ in 0..200 {
        let page_data = donations_page(state.clone(), p.session.clone(), &f, 200).await?;
        for d in &page_data.items {
            let fields = [
                d.created_at.to_rfc3339(),
                d.donor_name.clone(),
                d.donor_email.clone(),
                d.kind.clone(),
                d.amount_minor.to_string(),
                d.fee_minor.to_string(),
                d.net_minor.to_string(),
                d.currency.clone(),
                d.fund.clone(),
                d.status.clone(),
            ];
            let line: Vec<String> = fields.iter().map(|x| csv_field(x)).collect();
            out.push_str(&line.join(","));
            out.push_str("\r\n");
        }
        match page_data.next {
            Some(n) => f.after = Some(n),
            None => break,
        }
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"donations.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        out,
    )
        .into_response())
}

#[derive(Template)]
#[template(path = "staff/reports.html")]
struct ReportsPage {
    csrf: String,
    reports: Vec<super::reports::ReportItem>,
}

/// `GET /staff/reports`.
pub async fn reports(State(state): State<AppState>, p: StaffPage) -> Result<Response, AppError> {
    let Json(reports) = super::reports::list(State(state), p.session.clone()).await?;
    Ok(page(
        StatusCode::OK,
        &ReportsPage {
            csrf: p.csrf,
            reports,
        },
    ))
}

#[derive(Template)]
#[template(path = "staff/domains.html")]
struct DomainsPage {
    csrf: String,
    domains: Vec<(String, String, String)>,
}

/// `GET /staff/domains`: the tenant's custom domains and where they stand.
pub async fn domains(State(state): State<AppState>, p: StaffPage) -> Result<Response, AppError> {
    let mut conn = state.db.get().await?;
    let tx = super::begin(&mut conn, p.session.tenant).await?;
    let rows = tx
        .query(
            // The certificate's state from the routers' store (tenant-scoped by its RLS policy):
            // issued or expired when stored, pending while a verified name waits for one.
            "SELECT domain, status,
                    COALESCE((SELECT CASE WHEN c.not_after <= now() THEN 'expired' ELSE 'issued' END
                              FROM certificates c
                              WHERE c.domain = tenant_domains.domain AND c.status = 'issued'),
                             CASE WHEN status IN ('verified', 'active') THEN 'pending' ELSE 'none' END)
             FROM tenant_domains WHERE status <> 'removed' ORDER BY domain",
            &[],
        )
        .await?;
    tx.commit().await?;
    Ok(page(
        StatusCode::OK,
        &DomainsPage {
            csrf: p.csrf,
            domains: rows
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("Ann"), "\"Ann\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=SUM(A1)"), "\"'=SUM(A1)\"");
        assert_eq!(csv_field("\tx"), "\"'\tx\"");
        assert_eq!(csv_field("a\rb"), "\"a\rb\"");
    }
}
