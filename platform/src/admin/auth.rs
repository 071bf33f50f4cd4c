//! Platform-admin authentication: argon2id passwords, server-side sessions in PostgreSQL
//! (only SHA-256 hashes of tokens are stored), an `HttpOnly; Secure; SameSite=Strict` cookie,
//! a CSRF token required on every state-changing request, lockout after repeated failures,
//! and idle plus absolute session timeouts.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::{begin, Actor};
use crate::access::{required_admin, AdminRole};
use crate::auth::{
    authenticate, check_csrf, client, cookie, login_response, open_session, token_hash, Accounts,
    Login, SessionOwner, IDLE_TIMEOUT,
};
use crate::edge::EdgeRequest;
use crate::error::AppError;
use crate::state::AppState;

/// Session cookie. `__Host-` makes browsers refuse it unless Secure, Path=/ and host-only.
pub const SESSION_COOKIE: &str = "__Host-admin_session";

/// Requires the router's admin route.
fn require_admin_route(edge: &EdgeRequest) -> Result<(), AppError> {
    if edge.route == "admin" {
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}

/// `POST /api/admin/login`: on success sets the session cookie and returns the CSRF token.
#[utoipa::path(post, path = "/api/admin/login", operation_id = "post_admin_login", tag = "admin", request_body = crate::auth::Login, responses((status = 200, description = "Session cookie set; body carries the CSRF token", body = Object), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here (wrong host, missing CSRF token, suspended tenant)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 422, description = "A field is invalid; `errors` names it", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [])))]
pub async fn login(
    State(state): State<AppState>,
    edge: EdgeRequest,
    headers: HeaderMap,
    crate::input::ApiJson(form): crate::input::ApiJson<Login>,
) -> Result<Response, AppError> {
    let session = sign_in(&state, &edge, &headers, &form).await?;
    Ok(login_response(SESSION_COOKIE, &session))
}

/// Checks an admin's credentials and opens a session (audited): the login API and the
/// console's login form both call this.
pub async fn sign_in(
    state: &AppState,
    edge: &EdgeRequest,
    headers: &HeaderMap,
    form: &Login,
) -> Result<crate::auth::NewSession, AppError> {
    require_admin_route(edge)?;
    let mut conn = state.db.get().await?;
    let tx = begin(&mut conn).await?;
    let Some(id) = authenticate(&tx, Accounts::Admins, form).await? else {
        tx.commit().await?;
        return Err(AppError::Unauthorized);
    };
    let (ip, ua) = client(headers);
    let session = open_session(&tx, SessionOwner::Admin(id), ip, ua.as_deref()).await?;
    let actor = Actor {
        admin_id: id,
        ip,
        user_agent: ua,
        request_id: edge.request_id.clone(),
    };
    super::audit(
        &tx,
        &actor,
        "admin.login",
        None,
        ("admin_user", &id.to_string()),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(session)
}

/// An authenticated admin allowed on this route. Extracting it checks the router's signature,
/// the admin route, the session (idle and absolute timeouts, sliding the idle one; the
/// account not disabled), the capability the route declares ([`crate::access`]) against the
/// account's current role, and for any method other than GET/HEAD/OPTIONS the CSRF token.
#[derive(Debug, Clone)]
pub struct AdminSession {
    /// Who, from where, for the audit log.
    pub actor: Actor,
    /// The account's role, read with the session.
    pub role: AdminRole,
    token_hash: Vec<u8>,
}

impl AdminSession {
    /// Ends this session.
    pub async fn end(&self, state: &AppState) -> Result<(), AppError> {
        let mut conn = state.db.get().await?;
        let tx = begin(&mut conn).await?;
        tx.execute(
            "DELETE FROM sessions WHERE token_hash = $1",
            &[&self.token_hash],
        )
        .await?;
        super::audit(
            &tx,
            &self.actor,
            "admin.logout",
            None,
            ("admin_user", &self.actor.admin_id.to_string()),
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

impl FromRequestParts<AppState> for AdminSession {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let edge = EdgeRequest::from_request_parts(parts, state).await?;
        require_admin_route(&edge)?;
        let needed = required_admin(&parts.extensions)?;
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or(AppError::Unauthorized)?;
        if token.len() != 64 {
            return Err(AppError::Unauthorized);
        }
        let hash = token_hash(&token);
        let mut conn = state.db.get().await?;
        let tx = begin(&mut conn).await?;
        // The account is read with the session, so disabling it ends every session at once
        // (migration 0010 also deletes them when the account is disabled, deleted, or its role
        // or password changes).
        let row = tx
            .query_opt(
                "UPDATE sessions s SET last_seen_at = now(),
                     idle_expires_at = LEAST(now() + make_interval(secs => $2), s.absolute_expires_at)
                 FROM admin_users a
                 WHERE s.token_hash = $1 AND s.kind = 'admin' AND a.id = s.admin_user_id
                   AND a.disabled_at IS NULL
                   AND s.idle_expires_at > now() AND s.absolute_expires_at > now()
                 RETURNING s.admin_user_id, s.csrf_token_hash, a.role",
                &[&hash, &(IDLE_TIMEOUT.as_secs() as f64)],
            )
            .await?;
        tx.commit().await?;
        let row = row.ok_or(AppError::Unauthorized)?;
        let role = AdminRole::parse(row.get::<_, &str>(2));
        if !role.is_some_and(|r| r.grants(needed)) {
            tracing::info!(request_id = %edge.request_id, role = row.get::<_, &str>(2), needs = needed.as_str(), "admin lacks the capability; refused");
            return Err(AppError::Forbidden);
        }
        check_csrf(parts, &row.get::<_, Vec<u8>>(1))?;
        let (ip, user_agent) = client(&parts.headers);
        Ok(AdminSession {
            actor: Actor {
                admin_id: row.get(0),
                ip,
                user_agent,
                request_id: edge.request_id,
            },
            role: role.unwrap_or(AdminRole::Viewer),
            token_hash: hash,
        })
    }
}

/// `POST /api/admin/logout`.
#[utoipa::path(post, path = "/api/admin/logout", operation_id = "post_admin_logout", tag = "admin", responses((status = 204, description = "Session ended"), (status = 401, description = "No valid edge signature or session", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Not allowed here (wrong host, missing CSRF token, suspended tenant)", body = crate::error::Problem, content_type = "application/problem+json"), (status = 503, description = "A dependency is unavailable", body = crate::error::Problem, content_type = "application/problem+json")), security(("edge_signature" = [], "admin_session" = [], "csrf" = [])))]
pub async fn logout(
    State(state): State<AppState>,
    session: AdminSession,
) -> Result<Response, AppError> {
    session.end(&state).await?;
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0");
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear)]).into_response())
}

/// Creates an admin account (the `platform admin create-user` command).
pub async fn create_admin(
    db: &tenant_config::db::Pool,
    email: &str,
    password: &str,
    role: &str,
) -> Result<Uuid, AppError> {
    let roles = AdminRole::ALL.map(AdminRole::as_str);
    let (email, hash) = crate::auth::new_account(email, password, role, &roles)?;
    let mut conn = db.get().await?;
    let tx = begin(&mut conn).await?;
    let id: Uuid = tx
        .query_one(
            "INSERT INTO admin_users (email, password_hash, role) VALUES ($1, $2, $3) RETURNING id",
            &[&email, &hash, &role],
        )
        .await
        .map_err(|e| match e.code() {
            Some(c) if *c == tokio_postgres::error::SqlState::UNIQUE_VIOLATION => {
                AppError::Conflict("an admin with this email exists".into())
            }
            _ => e.into(),
        })?
        .get(0);
    tx.commit().await?;
    Ok(id)
}
