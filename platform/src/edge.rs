//! The router's signed tenant context, verified with the same code that signs it.
//!
//! Requests without a valid `x-edge-signature` (missing, forged, for another host, tenant,
//! method, path or body length, older than `edge.max_skew_secs`, or already used once) are
//! refused with 401 and no detail, so reaching a platform instance directly never lets anyone
//! pose as a tenant or as the admin host, and a captured request cannot be replayed.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tenant_config::edge::{
    signature_mac, verify_any, EdgeContext, ORIGINAL_HOST_HEADER, REQUEST_ID_HEADER, ROUTE_HEADER,
    SIGNATURE_HEADER, TENANT_ID_HEADER, TENANT_SLUG_HEADER,
};
use tenant_config::TenantId;

use crate::error::AppError;
use crate::state::AppState;

/// The `Content-Length` the router forwarded, kept when a middleware rewrote the body (the CSRF
/// form field lifted into its header): the signature covers the length as forwarded.
#[derive(Debug, Clone)]
pub struct ForwardedLength(pub axum::http::HeaderValue);

/// A request the router vouched for.
#[derive(Debug, Clone)]
pub struct EdgeRequest {
    /// `x-request-id`.
    pub request_id: String,
    /// `x-route`: `tenant`, `admin`, `apex` or `webhook`.
    pub route: String,
    /// Tenant on tenant routes.
    pub tenant: Option<TenantId>,
    /// Tenant slug on tenant routes.
    pub slug: Option<String>,
    /// Host the client asked for.
    pub host: String,
}

impl FromRequestParts<AppState> for EdgeRequest {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        // Verified once per request: a second extractor (a session on top of the context)
        // reuses the result instead of spending the signature again.
        if let Some(done) = parts.extensions.get::<EdgeRequest>() {
            return Ok(done.clone());
        }
        let verified = Self::verify(parts, state).await?;
        parts.extensions.insert(verified.clone());
        Ok(verified)
    }
}

impl EdgeRequest {
    async fn verify(parts: &Parts, state: &AppState) -> Result<Self, AppError> {
        let h = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(sig), Some(request_id), Some(route), Some(host)) = (
            h(SIGNATURE_HEADER),
            h(REQUEST_ID_HEADER),
            h(ROUTE_HEADER),
            h(ORIGINAL_HOST_HEADER),
        ) else {
            return Err(AppError::Unauthorized);
        };
        let tenant_id = h(TENANT_ID_HEADER);
        let ctx = EdgeContext {
            request_id,
            route,
            tenant_id,
            host,
            method: parts.method.as_str(),
            target: parts.uri.path_and_query().map_or("/", |pq| pq.as_str()),
            content_length: match parts.extensions.get::<ForwardedLength>() {
                Some(len) => len.0.to_str().ok(),
                None => h(axum::http::header::CONTENT_LENGTH.as_str()),
            },
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        verify_any(
            &state.edge.signers,
            sig,
            &ctx,
            now,
            state.edge.max_skew_secs,
        )
        .map_err(|_| AppError::Unauthorized)?;
        // Verified, so well formed. Checked after the MAC so forgeries never reach Redis.
        let mac = signature_mac(sig).ok_or(AppError::Unauthorized)?;
        if !state.edge.replay.first_use(&mac).await {
            tracing::warn!(request_id, "edge signature replayed; refused");
            return Err(AppError::Unauthorized);
        }
        let tenant = match tenant_id {
            Some(t) => Some(TenantId(t.parse().map_err(|_| AppError::Unauthorized)?)),
            None => None,
        };
        Ok(EdgeRequest {
            request_id: request_id.to_owned(),
            route: route.to_owned(),
            tenant,
            slug: h(TENANT_SLUG_HEADER).map(str::to_owned),
            host: host.to_owned(),
        })
    }
}

/// A verified request on a tenant route; the tenant every query of the request is scoped to.
#[derive(Debug, Clone)]
pub struct TenantRequest {
    /// The tenant.
    pub tenant: TenantId,
    /// The verified context.
    pub edge: EdgeRequest,
}

impl FromRequestParts<AppState> for TenantRequest {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let edge = EdgeRequest::from_request_parts(parts, state).await?;
        match (edge.route.as_str(), edge.tenant) {
            ("tenant", Some(tenant)) => Ok(TenantRequest { tenant, edge }),
            _ => Err(AppError::NotFound),
        }
    }
}
