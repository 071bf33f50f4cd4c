//! The tenant's own site settings, changed by its owners: the name donors see, the brand
//! colour, and the funds a gift can go to. Staff members (role `staff`) may read donations and
//! reports but not change the site: these routes need `StaffCap::SettingsWrite`, which only
//! owners hold.
//!
//! The tenant database role may update exactly these columns of its own row (migration 0010:
//! name and settings, never status, plan or payment account), so the change runs in the
//! tenant-scoped transaction like every other tenant query, and is audited there. The cached
//! profile is dropped at once, so the next page shows the change.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::pages::StaffPage;
use super::staff::StaffSession;
use crate::error::AppError;
use crate::input::{check_text, ApiForm, ApiJson, ApiQuery};
use crate::state::AppState;
use crate::web::{private_page as page, see_other, FieldErrors};

/// Most funds a donation form offers.
pub const MAX_FUNDS: usize = 20;

/// What an owner can change about the site.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SiteSettings {
    /// The name donors see.
    pub name: String,
    /// Brand colour, `#rgb` or `#rrggbb`.
    pub primary_color: String,
    /// Funds a donor can give to, in the order shown.
    pub funds: Vec<String>,
}

/// Body of `PUT /api/staff/settings`: the fields to change (others stay as they are).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    /// New name (1 to 200 characters).
    pub name: Option<String>,
    /// New brand colour (`#rgb` or `#rrggbb`).
    pub primary_color: Option<String>,
    /// New funds (1 to 20 names of 1 to 64 characters, no duplicates).
    pub funds: Option<Vec<String>>,
}

/// `GET /api/staff/settings` (owners).
#[utoipa::path(get, path = "/api/staff/settings", operation_id = "get_staff_settings", tag = "staff", responses((status = 200, body = SiteSettings), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not an owner of this tenant", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "staff_session" = [])))]
pub async fn get(
    State(state): State<AppState>,
    staff: StaffSession,
) -> Result<Json<SiteSettings>, AppError> {
    current(&state, &staff).await.map(Json)
}

/// `PUT /api/staff/settings` (owners): changes the name, colour or funds; audited.
#[utoipa::path(put, path = "/api/staff/settings", operation_id = "put_staff_settings", tag = "staff", request_body = SettingsChange, responses((status = 200, body = SiteSettings), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not an owner of this tenant, or a missing CSRF token", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "staff_session" = [], "csrf" = [])))]
pub async fn put(
    State(state): State<AppState>,
    staff: StaffSession,
    headers: HeaderMap,
    ApiJson(change): ApiJson<SettingsChange>,
) -> Result<Json<SiteSettings>, AppError> {
    change_settings(&state, &staff, &headers, change)
        .await
        .map(Json)
}

/// The site's settings as the owner sees them (the profile's defaults filled in).
pub async fn current(state: &AppState, staff: &StaffSession) -> Result<SiteSettings, AppError> {
    let p = super::profile::load(state, staff.tenant).await?;
    Ok(SiteSettings {
        name: p.name.clone(),
        primary_color: p.branding.primary_color.clone(),
        funds: p.donations.funds.clone(),
    })
}

/// Validates and applies `change` in one tenant-scoped transaction with its audit entry; the
/// API and the settings page both call this.
pub async fn change_settings(
    state: &AppState,
    staff: &StaffSession,
    headers: &HeaderMap,
    change: SettingsChange,
) -> Result<SiteSettings, AppError> {
    let invalid = |field: &str, message: &str| AppError::Invalid {
        field: field.to_owned().into(),
        message: message.into(),
    };
    let name = match change.name.as_deref().map(str::trim) {
        Some(n) if n.is_empty() || n.chars().count() > 200 => {
            return Err(invalid("name", "must be 1 to 200 characters"))
        }
        Some(n) if check_text(n).is_err() || n.chars().any(is_invisible) => {
            return Err(invalid(
                "name",
                "must not contain control or invisible characters",
            ))
        }
        other => other.map(str::to_owned),
    };
    let color = match change.primary_color.as_deref().map(str::trim) {
        Some(c) if !super::profile::is_hex_color(c) => {
            return Err(invalid("primary_color", "must be a colour like #2f5d8a"))
        }
        other => other.map(str::to_ascii_lowercase),
    };
    let funds = match change.funds {
        Some(funds) => Some(valid_funds(funds).map_err(|m| invalid("funds", &m))?),
        None => None,
    };
    let mut conn = state.db.get().await?;
    let tx = super::begin(&mut conn, staff.tenant).await?;
    let mut patch = serde_json::Map::new();
    if let Some(c) = &color {
        patch.insert("primary_color".into(), c.clone().into());
    }
    // Each part is merged into the stored JSON, so settings this page does not know stay.
    tx.execute(
        "UPDATE tenants SET
             name = COALESCE($2, name),
             settings = jsonb_set(
                 jsonb_set(settings, '{branding}', COALESCE(settings->'branding', '{}'::jsonb) || $3::jsonb),
                 '{donations}',
                 COALESCE(settings->'donations', '{}'::jsonb)
                     || CASE WHEN $4::jsonb IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('funds', $4::jsonb) END),
             updated_at = now()
         WHERE id = $1",
        &[
            &staff.tenant.0,
            &name,
            &serde_json::Value::Object(patch),
            &funds.as_ref().map(|f| serde_json::json!(f)),
        ],
    )
    .await?;
    let (ip, ua) = crate::auth::client(headers);
    tx.execute(
        "INSERT INTO audit_log (actor_type, actor_id, tenant_id, action, target_type, target_id, ip, user_agent, details)
         VALUES ('tenant_staff', $1, $2, 'tenant.settings', 'tenant', $2::uuid::text, $3, $4, $5)",
        &[
            &staff.user_id.to_string(),
            &staff.tenant.0,
            &ip,
            &ua,
            &serde_json::json!({ "name": name, "primary_color": color, "funds": funds }),
        ],
    )
    .await?;
    tx.commit().await?;
    state.profiles.invalidate(staff.tenant).await;
    current(state, staff).await
}

#[derive(Template)]
#[template(path = "staff/settings.html")]
struct SettingsPage {
    csrf: String,
    name: String,
    primary_color: String,
    /// One fund per line.
    funds: String,
    saved: bool,
    errors: FieldErrors,
}

/// `?saved=1` after a change.
#[derive(Debug, Default, Deserialize)]
pub struct SavedQuery {
    #[serde(default)]
    saved: Option<String>,
}

/// `GET /staff/settings` (owners).
pub async fn page_form(
    State(state): State<AppState>,
    p: StaffPage,
    ApiQuery(q): ApiQuery<SavedQuery>,
) -> Result<Response, AppError> {
    let s = current(&state, &p.session).await?;
    Ok(page(
        StatusCode::OK,
        &SettingsPage {
            csrf: p.csrf,
            name: s.name,
            primary_color: expand_color(&s.primary_color),
            funds: s.funds.join("\n"),
            saved: q.saved.is_some(),
            errors: FieldErrors::default(),
        },
    ))
}

/// The settings form as posted.
#[derive(Debug, Default, Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    primary_color: String,
    #[serde(default)]
    funds: String,
}

/// `POST /staff/settings` (owners): saves and shows the form again (303), or the form with the
/// errors beside their fields.
pub async fn page_submit(
    State(state): State<AppState>,
    p: StaffPage,
    headers: HeaderMap,
    ApiForm(f): ApiForm<SettingsForm>,
) -> Result<Response, AppError> {
    let change = SettingsChange {
        name: Some(f.name.clone()),
        primary_color: Some(f.primary_color.clone()),
        funds: Some(f.funds.lines().map(str::to_owned).collect()),
    };
    match change_settings(&state, &p.session, &headers, change).await {
        Ok(_) => Ok(see_other("/staff/settings?saved=1")),
        Err(e) => {
            let errors = FieldErrors::from_error(e, &[])?;
            Ok(page(
                StatusCode::UNPROCESSABLE_ENTITY,
                &SettingsPage {
                    csrf: p.csrf,
                    name: f.name,
                    primary_color: expand_color(&f.primary_color),
                    funds: f.funds,
                    saved: false,
                    errors,
                },
            ))
        }
    }
}

/// `#abc` → `#aabbcc`: the colour input only takes the six-digit form.
fn expand_color(c: &str) -> String {
    match c.strip_prefix('#') {
        Some(h) if h.len() == 3 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            h.chars().fold(String::from("#"), |mut s, ch| {
                s.push(ch);
                s.push(ch);
                s
            })
        }
        Some(h) if h.len() == 6 && h.bytes().all(|b| b.is_ascii_hexdigit()) => c.to_owned(),
        _ => "#2f5d8a".to_owned(),
    }
}

/// Trims, checks and de-duplicates a fund list.
fn valid_funds(funds: Vec<String>) -> Result<Vec<String>, String> {
    let funds: Vec<String> = funds
        .into_iter()
        .map(|f| f.trim().to_owned())
        .filter(|f| !f.is_empty())
        .collect();
    if funds.is_empty() || funds.len() > MAX_FUNDS {
        return Err(format!("list 1 to {MAX_FUNDS} funds"));
    }
    for (i, f) in funds.iter().enumerate() {
        if f.chars().count() > 64 {
            return Err(format!("{f:?} is longer than 64 characters"));
        }
        if check_text(f).is_err() || f.chars().any(is_invisible) {
            return Err("a fund name must not contain control or invisible characters".into());
        }
        if funds[..i].iter().any(|g| g.eq_ignore_ascii_case(f)) {
            return Err(format!("{f:?} is listed twice"));
        }
    }
    Ok(funds)
}

/// Zero-width and direction-changing characters: invisible in a name, and able to make one
/// name look like another.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_colours_are_expanded_for_the_colour_input() {
        assert_eq!(expand_color("#abc"), "#aabbcc");
        assert_eq!(expand_color("#2f5d8a"), "#2f5d8a");
        assert_eq!(expand_color("red"), "#2f5d8a");
    }

    #[test]
    fn funds_are_trimmed_checked_and_unique() {
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            valid_funds(v(&[" general ", "", "roof"])).unwrap(),
            v(&["general", "roof"])
        );
        assert!(valid_funds(v(&[])).is_err());
        assert!(valid_funds(v(&["a", "A"])).is_err());
        assert!(valid_funds(v(&["bad\u{202E}name"])).is_err());
        assert!(valid_funds(v(&[&"x".repeat(65)])).is_err());
        assert!(valid_funds((0..21).map(|i| i.to_string()).collect()).is_err());
    }
}
