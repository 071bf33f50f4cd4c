//! Platform-admin authentication: argon2id passwords, server-side sessions in PostgreSQL
//! (only SHA-256 hashes of tokens are stored), an `HttpOnly; Secure; SameSite=Strict` cookie,
//! a CSRF token required on every state-changing request, lockout after repeated failures,
//! and idle plus absolute session timeouts.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{begin, Actor};
use crate::auth::{
    check_csrf, client, cookie, dummy_hash, random_token, token_hash, verify_password, Login,
    ABSOLUTE_TIMEOUT, IDLE_TIMEOUT,
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
pub async fn login(
    State(state): State<AppState>,
    edge: EdgeRequest,
    headers: HeaderMap,
    crate::error::ApiJson(form): crate::error::ApiJson<Login>,
) -> Result<Response, AppError> {
    require_admin_route(&edge)?;
    let email = form.email.trim().to_lowercase();
    if email.len() > 254 || form.password.len() > 1024 {
        return Err(AppError::Unauthorized);
    }
    let mut conn = state.db.get().await?;
    let tx = begin(&mut conn).await?;
    let row = tx
        .query_opt(
            "SELECT id, password_hash, failed_attempts, locked_until, disabled_at IS NOT NULL
             FROM admin_users WHERE email = $1 FOR UPDATE",
            &[&email],
        )
        .await?;
    let Some(row) = row else {
        // Same work as a real check, same answer.
        let _ = verify_password(&form.password, dummy_hash());
        return Err(AppError::Unauthorized);
    };
    let id: Uuid = row.get(0);
    let locked_until: Option<DateTime<Utc>> = row.get(3);
    let disabled: bool = row.get(4);
    let password_ok = verify_password(&form.password, row.get::<_, &str>(1));
    let locked = locked_until.is_some_and(|t| t > Utc::now());
    if !password_ok || locked || disabled {
        if !password_ok && !locked {
            // Count the failure; lock when the limit is reached. Committed even though the
            // request fails, so the count survives.
            crate::auth::record_failed_login(&tx, crate::auth::Accounts::Admins, id).await?;
            tx.commit().await?;
        }
        tracing::info!(admin = %id, locked, disabled, "admin login refused");
        return Err(AppError::Unauthorized);
    }
    let token = random_token()?;
    let csrf = random_token()?;
    let (ip, ua) = client(&headers);
    tx.execute(
        "UPDATE admin_users SET failed_attempts = 0, locked_until = NULL, last_login_at = now(), updated_at = now()
         WHERE id = $1",
        &[&id],
    )
    .await?;
    tx.execute(
        "INSERT INTO sessions (token_hash, kind, admin_user_id, csrf_token_hash, ip, user_agent,
                               idle_expires_at, absolute_expires_at)
         VALUES ($1, 'admin', $2, $3, $4, $5, now() + make_interval(secs => $6), now() + make_interval(secs => $7))",
        &[
            &token_hash(&token),
            &id,
            &token_hash(&csrf),
            &ip,
            &ua,
            &(IDLE_TIMEOUT.as_secs() as f64),
            &(ABSOLUTE_TIMEOUT.as_secs() as f64),
        ],
    )
    .await?;
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
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        ABSOLUTE_TIMEOUT.as_secs()
    );
    Ok((
        StatusCode::OK,
        [(header::SET_COOKIE, cookie)],
        Json(serde_json::json!({ "csrf_token": csrf })),
    )
        .into_response())
}

/// An authenticated admin. Extracting it checks the router's signature, the admin route, the
/// session (idle and absolute timeouts, sliding the idle one), and for any method other than
/// GET/HEAD/OPTIONS the CSRF token.
#[derive(Debug, Clone)]
pub struct AdminSession {
    /// Who, from where, for the audit log.
    pub actor: Actor,
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
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or(AppError::Unauthorized)?;
        if token.len() != 64 {
            return Err(AppError::Unauthorized);
        }
        let hash = token_hash(&token);
        let mut conn = state.db.get().await?;
        let tx = begin(&mut conn).await?;
        let row = tx
            .query_opt(
                "UPDATE sessions SET last_seen_at = now(),
                     idle_expires_at = LEAST(now() + make_interval(secs => $2), absolute_expires_at)
                 WHERE token_hash = $1 AND kind = 'admin'
                   AND idle_expires_at > now() AND absolute_expires_at > now()
                 RETURNING admin_user_id, csrf_token_hash",
                &[&hash, &(IDLE_TIMEOUT.as_secs() as f64)],
            )
            .await?;
        tx.commit().await?;
        let row = row.ok_or(AppError::Unauthorized)?;
        check_csrf(parts, &row.get::<_, Vec<u8>>(1))?;
        let (ip, user_agent) = client(&parts.headers);
        Ok(AdminSession {
            actor: Actor {
                admin_id: row.get(0),
                ip,
                user_agent,
                request_id: edge.request_id,
            },
            token_hash: hash,
        })
    }
}

/// `POST /api/admin/logout`.
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
    let (email, hash) =
        crate::auth::new_account(email, password, role, &["owner", "admin", "viewer"])?;
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
