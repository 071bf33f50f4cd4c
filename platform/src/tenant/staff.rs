//! Tenant staff (owners and staff) on their tenant's host: login, sessions and logout. Same
//! policy as platform admins (argon2id, hashed tokens, CSRF, lockout, idle and absolute
//! timeouts), but every query runs scoped to the tenant, so row-level security confines a
//! staff member — and any bug in this code — to their own tenant.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tenant_config::TenantId;
use uuid::Uuid;

use crate::access::{required_staff, StaffRole};
use crate::auth::{
    authenticate, check_csrf, client, cookie, login_response, open_session, token_hash, Accounts,
    Login, SessionOwner, IDLE_TIMEOUT,
};
use crate::edge::TenantRequest;
use crate::error::AppError;
use crate::input::ApiJson;
use crate::state::AppState;

/// Session cookie, host-only: a staff session on one tenant's host is never sent to another's.
pub const STAFF_COOKIE: &str = "__Host-staff_session";

/// An authenticated staff member of the request's tenant.
#[derive(Debug, Clone)]
pub struct StaffSession {
    /// The tenant (from the router's signed context).
    pub tenant: TenantId,
    /// Staff user id.
    pub user_id: Uuid,
    /// `owner` or `staff`, read with the session.
    pub role: StaffRole,
    token_hash: Vec<u8>,
}

impl FromRequestParts<AppState> for StaffSession {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let req = TenantRequest::from_request_parts(parts, state).await?;
        let needed = required_staff(&parts.extensions)?;
        let token = cookie(&parts.headers, STAFF_COOKIE).ok_or(AppError::Unauthorized)?;
        if token.len() != 64 {
            return Err(AppError::Unauthorized);
        }
        let hash = token_hash(&token);
        let mut conn = state.db.get().await?;
        let tx = crate::tenant::begin(&mut conn, req.tenant).await?;
        let row = tx
            .query_opt(
                "UPDATE sessions s SET last_seen_at = now(),
                     idle_expires_at = LEAST(now() + make_interval(secs => $2), s.absolute_expires_at)
                 FROM tenant_users u
                 WHERE s.token_hash = $1 AND s.kind = 'tenant_staff' AND u.id = s.staff_user_id
                   AND u.disabled_at IS NULL
                   AND s.idle_expires_at > now() AND s.absolute_expires_at > now()
                 RETURNING s.staff_user_id, s.csrf_token_hash, u.role",
                &[&hash, &(IDLE_TIMEOUT.as_secs() as f64)],
            )
            .await?;
        tx.commit().await?;
        let row = row.ok_or(AppError::Unauthorized)?;
        let role = StaffRole::parse(row.get::<_, &str>(2));
        let Some(role) = role.filter(|r| r.grants(needed)) else {
            tracing::info!(request_id = %req.edge.request_id, role = row.get::<_, &str>(2), needs = ?needed, "staff member lacks the capability; refused");
            return Err(AppError::Forbidden);
        };
        check_csrf(parts, &row.get::<_, Vec<u8>>(1))?;
        Ok(StaffSession {
            tenant: req.tenant,
            user_id: row.get(0),
            role,
            token_hash: hash,
        })
    }
}

/// `POST /api/staff/login` on a tenant host.
#[utoipa::path(post, path = "/api/staff/login", operation_id = "post_staff_login", tag = "staff", request_body = crate::auth::Login, responses((status = 200, description = "Session cookie set; body carries the CSRF token", body = Object), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found (including other tenants' rows)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [])))]
pub async fn login(
    State(state): State<AppState>,
    req: TenantRequest,
    headers: HeaderMap,
    ApiJson(form): ApiJson<Login>,
) -> Result<Response, AppError> {
    let session = sign_in(&state, &req, &headers, &form).await?;
    Ok(login_response(STAFF_COOKIE, &session))
}

/// Checks a staff member's credentials on the request's tenant and opens a session (audited):
/// the login API and the staff login form both call this.
pub async fn sign_in(
    state: &AppState,
    req: &TenantRequest,
    headers: &HeaderMap,
    form: &Login,
) -> Result<crate::auth::NewSession, AppError> {
    let mut conn = state.db.get().await?;
    let tx = crate::tenant::begin(&mut conn, req.tenant).await?;
    // Row-level security: only this tenant's staff are visible here.
    let Some(id) = authenticate(&tx, Accounts::Staff, form).await? else {
        tx.commit().await?;
        return Err(AppError::Unauthorized);
    };
    let (ip, ua) = client(headers);
    let session = open_session(
        &tx,
        SessionOwner::Staff {
            tenant: req.tenant.0,
            user: id,
        },
        ip,
        ua.as_deref(),
    )
    .await?;
    tx.execute(
        "INSERT INTO audit_log (actor_type, actor_id, tenant_id, action, target_type, target_id, ip, user_agent, request_id)
         VALUES ('tenant_staff', $1, $2, 'staff.login', 'tenant_user', $1, $3, $4, $5)",
        &[&id.to_string(), &req.tenant.0, &ip, &ua, &req.edge.request_id],
    )
    .await?;
    tx.commit().await?;
    Ok(session)
}

/// `POST /api/staff/logout`.
#[utoipa::path(post, path = "/api/staff/logout", operation_id = "post_staff_logout", tag = "staff", responses((status = 204, description = "Session ended"), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here (wrong host, missing CSRF token, suspended tenant)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found (including other tenants' rows)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "staff_session" = [], "csrf" = [])))]
pub async fn logout(State(state): State<AppState>, s: StaffSession) -> Result<Response, AppError> {
    let mut conn = state.db.get().await?;
    let tx = crate::tenant::begin(&mut conn, s.tenant).await?;
    tx.execute(
        "DELETE FROM sessions WHERE token_hash = $1",
        &[&s.token_hash],
    )
    .await?;
    tx.commit().await?;
    let clear = format!("{STAFF_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0");
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear)]).into_response())
}

/// Creates a staff account for the tenant with `slug` (the `platform tenant add-staff`
/// command). Runs as `platform_service`.
pub async fn create_staff(
    db: &tenant_config::db::Pool,
    slug: &str,
    email: &str,
    password: &str,
    role: &str,
) -> Result<Uuid, AppError> {
    let roles = StaffRole::ALL.map(StaffRole::as_str);
    let (email, hash) = crate::auth::new_account(email, password, role, &roles)?;
    let mut conn = db.get().await?;
    let tx = crate::admin::begin(&mut conn).await?;
    let row = tx
        .query_opt(
            "INSERT INTO tenant_users (tenant_id, email, password_hash, role)
             SELECT id, $2, $3, $4 FROM tenants WHERE slug = $1 RETURNING id",
            &[&slug, &email, &hash, &role],
        )
        .await
        .map_err(|e| match e.code() {
            Some(c) if *c == tokio_postgres::error::SqlState::UNIQUE_VIOLATION => {
                AppError::Conflict("this tenant already has a staff member with this email".into())
            }
            _ => e.into(),
        })?
        .ok_or(AppError::Invalid {
            field: "slug".into(),
            message: "no such tenant".into(),
        })?;
    tx.commit().await?;
    Ok(row.get(0))
}
