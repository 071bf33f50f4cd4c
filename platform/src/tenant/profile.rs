//! `GET /api/tenant` (public profile JSON) and `GET /` (landing page).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use tenant_config::TenantId;

use crate::edge::TenantRequest;
use crate::error::AppError;
use crate::state::AppState;

/// What anyone may know about a tenant: shown on its pages and used by the donation form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Profile {
    /// Subdomain label.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Branding.
    pub branding: Branding,
    /// Donation form settings.
    pub donations: DonationSettings,
}

/// Branding from the tenant's settings, with safe defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Branding {
    /// `#rgb` or `#rrggbb`.
    pub primary_color: String,
    /// Page template name.
    pub template: String,
}

/// Donation limits and funds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DonationSettings {
    /// Accepted currencies (ISO 4217, lower case).
    pub currencies: Vec<String>,
    /// Smallest gift in minor units.
    pub min_minor: i64,
    /// Largest gift in minor units.
    pub max_minor: i64,
    /// Funds a donor can give to.
    pub funds: Vec<String>,
}

/// Reads the profile from the tenant's settings JSON, ignoring malformed parts: a bad colour
/// must not take a tenant's donation page down.
pub fn from_settings(slug: String, name: String, settings: &serde_json::Value) -> Profile {
    let b = &settings["branding"];
    let d = &settings["donations"];
    let color = b["primary_color"]
        .as_str()
        .filter(|c| is_hex_color(c))
        .unwrap_or("#2f5d8a")
        .to_owned();
    let strings = |v: &serde_json::Value, default: &[&str]| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .filter(|s| !s.is_empty() && s.len() <= 64)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| default.iter().map(|s| (*s).to_owned()).collect())
    };
    Profile {
        slug,
        name,
        branding: Branding {
            primary_color: color,
            template: b["template"].as_str().unwrap_or("classic").to_owned(),
        },
        donations: DonationSettings {
            // Only ISO 4217 codes: an unknown one could not be formatted or charged.
            currencies: Some(
                strings(&d["currencies"], &["usd"])
                    .into_iter()
                    .map(|c| c.to_ascii_lowercase())
                    .filter(|c| tenant_config::money::currency(c).is_some())
                    .collect::<Vec<_>>(),
            )
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| vec!["usd".to_owned()]),
            min_minor: d["min_minor"].as_i64().filter(|v| *v > 0).unwrap_or(100),
            max_minor: d["max_minor"]
                .as_i64()
                .filter(|v| *v > 0)
                .unwrap_or(1_000_000),
            funds: strings(&d["funds"], &["general"]),
        },
    }
}

pub(crate) fn is_hex_color(c: &str) -> bool {
    c.len() <= 7
        && c.strip_prefix('#')
            .is_some_and(|h| matches!(h.len(), 3 | 6) && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The tenant's profile, from the cache or the database (scoped to the tenant).
pub async fn load(state: &AppState, tenant: TenantId) -> Result<Arc<Profile>, AppError> {
    let db = state.db.clone();
    state
        .profiles
        .get_or_load(tenant, async move {
            let mut conn = db.get().await?;
            let tx = crate::tenant::begin(&mut conn, tenant).await?;
            // Row-level security leaves exactly this tenant's row visible.
            let row = tx
                .query_opt("SELECT slug, name, settings FROM tenants", &[])
                .await?
                .ok_or(AppError::NotFound)?;
            tx.commit().await?;
            let settings: serde_json::Value = row.get(2);
            Ok(from_settings(row.get(0), row.get(1), &settings))
        })
        .await
}

/// `GET /api/tenant`.
#[utoipa::path(get, path = "/api/tenant", operation_id = "get_tenant", tag = "tenant", responses((status = 200, body = Profile), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found (including other tenants' rows)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [])))]
pub async fn get_profile(
    State(state): State<AppState>,
    req: TenantRequest,
) -> Result<Json<Profile>, AppError> {
    let p = load(&state, req.tenant).await?;
    Ok(Json((*p).clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_settings_fall_back_to_defaults() {
        let s = serde_json::json!({
            "branding": {"primary_color": "red; background:url(evil)"},
            "donations": {"funds": [], "min_minor": -5, "currencies": ["eur"]}
        });
        let p = from_settings("grace".into(), "Grace".into(), &s);
        assert_eq!(p.branding.primary_color, "#2f5d8a");
        assert_eq!(p.donations.funds, ["general"]);
        assert_eq!(p.donations.min_minor, 100);
        assert_eq!(p.donations.currencies, ["eur"]);
        let odd = serde_json::json!({"donations": {"currencies": ["XYZ", "JPY"]}});
        let p = from_settings("g".into(), "G".into(), &odd);
        assert_eq!(p.donations.currencies, ["jpy"], "unknown codes dropped");
        assert!(is_hex_color("#abc") && is_hex_color("#A0b1C2") && !is_hex_color("#abcd"));
    }
}
