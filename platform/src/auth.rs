//! Authentication primitives shared by platform admins and tenant staff: argon2id password
//! hashes, random tokens stored only as SHA-256 hashes, cookie parsing, the CSRF check, and
//! the lockout and timeout policy.

use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::AppError;

/// Header carrying the CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Failed logins before the account locks.
pub const MAX_FAILED_LOGINS: i32 = 5;
/// How long a locked account stays locked.
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Inactivity after which a session ends.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Longest a session lives, however active.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);

/// Login form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// Account email.
    pub email: String,
    /// Password.
    pub password: String,
}

/// Hashes a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, AppError> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| AppError::Internal(format!("rng: {e}")))?;
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| AppError::Internal(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(format!("argon2: {e}")))
}

/// Whether `password` matches the PHC hash (false for a malformed hash).
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A PHC hash of a random password, verified against when the email is unknown so that
/// unknown and known accounts take the same time to refuse.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not-a-real-password-7f3a").unwrap_or_default())
}

/// 32 random bytes as hex: session and CSRF tokens.
pub fn random_token() -> Result<String, AppError> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).map_err(|e| AppError::Internal(format!("rng: {e}")))?;
    Ok(hex::encode(b))
}

/// SHA-256 of a token, the only form in which tokens are stored.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Client address (`x-real-ip`, set by the router) and a truncated user agent.
pub fn client(headers: &HeaderMap) -> (Option<std::net::IpAddr>, Option<String>) {
    let ip = headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(256).collect());
    (ip, ua)
}

/// The value of cookie `name`, if sent.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// For any method other than GET/HEAD/OPTIONS, requires the `x-csrf-token` header to hash to
/// `expected` (constant-time comparison). 403 otherwise.
pub fn check_csrf(parts: &Parts, expected: &[u8]) -> Result<(), AppError> {
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let sent = parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(token_hash)
        .unwrap_or_default();
    if sent.len() == expected.len() && bool::from(sent.ct_eq(expected)) {
        Ok(())
    } else {
        Err(AppError::Forbidden)
    }
}

/// Form field carrying the CSRF token in HTML forms, which cannot set headers.
pub const CSRF_FIELD: &str = "csrf_token";

/// Middleware: lets a plain HTML form prove CSRF like the API does. For a URL-encoded body the
/// `csrf_token` field is moved into the `x-csrf-token` header (unless the client sent that
/// header) and out of the body, so the form's own reader never sees it; the session extractors
/// then check it exactly as they check the API's header. The other pairs pass byte for byte.
pub async fn csrf_form_field(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form || matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, crate::MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) if is_length_limit(&e) => return AppError::PayloadTooLarge.into_response(),
        Err(_) => {
            return AppError::BadRequest("the request body could not be read".into())
                .into_response()
        }
    };
    let (token, rest) = split_csrf_field(&bytes);
    if token.is_none() {
        // No field: the body goes on as it came, and the session extractor refuses a
        // missing token (or checks the header the client sent).
        return next
            .run(axum::extract::Request::from_parts(
                parts,
                axum::body::Body::from(bytes),
            ))
            .await;
    }
    // The header, when a client sent one, wins; the field leaves the body either way so
    // the form's own reader never sees it.
    if !parts.headers.contains_key(CSRF_HEADER) {
        if let Some(Ok(value)) = token.map(|t| axum::http::HeaderValue::from_bytes(&t)) {
            parts.headers.insert(CSRF_HEADER, value);
        }
    }
    // The router signed the length it forwarded; keep it for the signature check.
    if let Some(len) = parts.headers.get(header::CONTENT_LENGTH).cloned() {
        parts.extensions.insert(crate::edge::ForwardedLength(len));
    }
    parts.headers.insert(
        header::CONTENT_LENGTH,
        axum::http::HeaderValue::from(rest.len()),
    );
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(rest),
    ))
    .await
}

/// Whether reading a body failed because it was over the limit (413), not because it was
/// broken (400).
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// Splits the `csrf_token` pair out of a URL-encoded body: the token (percent-decoded) and
/// every other pair exactly as sent, so the form's own reader judges their encoding.
fn split_csrf_field(body: &[u8]) -> (Option<Vec<u8>>, Vec<u8>) {
    let mut token = None;
    let mut rest = Vec::with_capacity(body.len());
    for pair in body.split(|&b| b == b'&') {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        if key == CSRF_FIELD.as_bytes() {
            token = Some(
                form_urlencoded::parse(&[b"t=", value].concat())
                    .next()
                    .map(|(_, v)| v.into_owned().into_bytes())
                    .unwrap_or_default(),
            );
            continue;
        }
        if !rest.is_empty() {
            rest.push(b'&');
        }
        rest.extend_from_slice(pair);
    }
    (token, rest)
}

/// Validates a new account's email, password and role, and returns the normalised email and
/// the password hash. Shared by admin and staff account creation.
pub fn new_account(
    email: &str,
    password: &str,
    role: &str,
    roles: &[&str],
) -> Result<(String, String), AppError> {
    let email = email.trim().to_lowercase();
    if !email.contains('@') || email.len() > 254 {
        return Err(AppError::Invalid {
            field: "email".into(),
            message: "must be an email address".into(),
        });
    }
    if password.chars().count() < 12 {
        return Err(AppError::Invalid {
            field: "password".into(),
            message: "must be at least 12 characters".into(),
        });
    }
    if !roles.contains(&role) {
        return Err(AppError::Invalid {
            field: "role".into(),
            message: format!("must be one of {}", roles.join(", ")),
        });
    }
    Ok((email, hash_password(password)?))
}

/// Which account table a failed login is counted in (a closed set: table names are never
/// taken from input).
#[derive(Debug, Clone, Copy)]
pub enum Accounts {
    /// `admin_users`.
    Admins,
    /// `tenant_users`.
    Staff,
}

/// Counts a failed login and locks the account once it reaches [`MAX_FAILED_LOGINS`].
pub async fn record_failed_login(
    tx: &tokio_postgres::Transaction<'_>,
    accounts: Accounts,
    id: uuid::Uuid,
) -> Result<(), AppError> {
    let sql = match accounts {
        Accounts::Admins => "UPDATE admin_users SET failed_attempts = failed_attempts + 1,
                 locked_until = CASE WHEN failed_attempts + 1 >= $2 THEN now() + make_interval(secs => $3) END,
                 updated_at = now() WHERE id = $1",
        Accounts::Staff => "UPDATE tenant_users SET failed_attempts = failed_attempts + 1,
                 locked_until = CASE WHEN failed_attempts + 1 >= $2 THEN now() + make_interval(secs => $3) END,
                 updated_at = now() WHERE id = $1",
    };
    tx.execute(sql, &[&id, &MAX_FAILED_LOGINS, &(LOCKOUT.as_secs() as f64)])
        .await?;
    Ok(())
}

impl Accounts {
    fn select_sql(self) -> &'static str {
        match self {
            Accounts::Admins => {
                "SELECT id, password_hash, locked_until, disabled_at IS NOT NULL
                                 FROM admin_users WHERE email = $1 FOR UPDATE"
            }
            Accounts::Staff => {
                "SELECT id, password_hash, locked_until, disabled_at IS NOT NULL
                                FROM tenant_users WHERE email = $1 FOR UPDATE"
            }
        }
    }

    fn reset_sql(self) -> &'static str {
        match self {
            Accounts::Admins => {
                "UPDATE admin_users SET failed_attempts = 0, locked_until = NULL,
                                 last_login_at = now(), updated_at = now() WHERE id = $1"
            }
            Accounts::Staff => {
                "UPDATE tenant_users SET failed_attempts = 0, locked_until = NULL,
                                last_login_at = now(), updated_at = now() WHERE id = $1"
            }
        }
    }
}

/// Checks a login form against the account table, inside the caller's transaction (scoped by
/// the caller: service for admins, the tenant for staff). Returns the account id, or `None`
/// when refused — unknown email (after a dummy hash check, so it takes as long), wrong
/// password (counted, and the account locked at the limit), locked or disabled. The caller
/// commits the transaction either way, so failure counts persist.
pub async fn authenticate(
    tx: &tokio_postgres::Transaction<'_>,
    accounts: Accounts,
    form: &Login,
) -> Result<Option<uuid::Uuid>, AppError> {
    let email = form.email.trim().to_lowercase();
    if email.len() > 254 || form.password.len() > 1024 {
        return Ok(None);
    }
    let Some(row) = tx.query_opt(accounts.select_sql(), &[&email]).await? else {
        let _ = verify_password(&form.password, dummy_hash());
        return Ok(None);
    };
    let id: uuid::Uuid = row.get(0);
    let locked = row
        .get::<_, Option<chrono::DateTime<chrono::Utc>>>(2)
        .is_some_and(|t| t > chrono::Utc::now());
    let disabled: bool = row.get(3);
    let password_ok = verify_password(&form.password, row.get::<_, &str>(1));
    if password_ok && !locked && !disabled {
        tx.execute(accounts.reset_sql(), &[&id]).await?;
        return Ok(Some(id));
    }
    if !password_ok && !locked {
        record_failed_login(tx, accounts, id).await?;
    }
    Ok(None)
}

/// Whose session is being opened.
#[derive(Debug, Clone, Copy)]
pub enum SessionOwner {
    /// A platform admin.
    Admin(uuid::Uuid),
    /// A staff member of a tenant.
    Staff {
        /// The tenant.
        tenant: uuid::Uuid,
        /// The staff user.
        user: uuid::Uuid,
    },
}

/// A session just opened: the cookie token and the CSRF token, shown once and stored hashed.
#[derive(Debug)]
pub struct NewSession {
    /// Goes into the session cookie.
    pub token: String,
    /// Returned to the client for the `x-csrf-token` header.
    pub csrf: String,
}

/// Stores a new session (hashed tokens, idle and absolute expiry) in the caller's transaction.
pub async fn open_session(
    tx: &tokio_postgres::Transaction<'_>,
    owner: SessionOwner,
    ip: Option<std::net::IpAddr>,
    user_agent: Option<&str>,
) -> Result<NewSession, AppError> {
    let token = random_token()?;
    let csrf = random_token()?;
    let (kind, admin, tenant, staff) = match owner {
        SessionOwner::Admin(id) => ("admin", Some(id), None, None),
        SessionOwner::Staff { tenant, user } => ("tenant_staff", None, Some(tenant), Some(user)),
    };
    tx.execute(
        "INSERT INTO sessions (token_hash, kind, admin_user_id, tenant_id, staff_user_id, csrf_token_hash,
                               ip, user_agent, idle_expires_at, absolute_expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                 now() + make_interval(secs => $9), now() + make_interval(secs => $10))",
        &[
            &token_hash(&token),
            &kind,
            &admin,
            &tenant,
            &staff,
            &token_hash(&csrf),
            &ip,
            &user_agent,
            &(IDLE_TIMEOUT.as_secs() as f64),
            &(ABSOLUTE_TIMEOUT.as_secs() as f64),
        ],
    )
    .await?;
    Ok(NewSession { token, csrf })
}

/// The cookie holding a page session's CSRF token, so each page can put it in its forms. It is
/// `HttpOnly` (scripts never need it) and host-only; a forged cross-site form cannot read it,
/// and the server still checks the submitted value against the session's stored hash.
pub fn csrf_cookie_name(session_cookie: &str) -> String {
    format!("{session_cookie}_csrf")
}

/// The console's login answer: both cookies, and a 303 to `to`.
pub fn page_login_response(
    cookie_name: &str,
    s: &NewSession,
    to: &str,
) -> axum::response::Response {
    let mut resp = crate::web::see_other(to);
    for (name, value) in [
        (cookie_name.to_owned(), &s.token),
        (csrf_cookie_name(cookie_name), &s.csrf),
    ] {
        let c = format!(
            "{name}={value}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
            ABSOLUTE_TIMEOUT.as_secs()
        );
        if let Ok(v) = axum::http::HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// The page answer to signing out: both cookies cleared, 303 to `to`.
pub fn page_logout_response(cookie_name: &str, to: &str) -> axum::response::Response {
    let mut resp = crate::web::see_other(to);
    for name in [cookie_name.to_owned(), csrf_cookie_name(cookie_name)] {
        let c = format!("{name}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0");
        if let Ok(v) = axum::http::HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// The login response: the session cookie (`__Host-` prefixed name) and the CSRF token.
pub fn login_response(cookie_name: &str, s: &NewSession) -> axum::response::Response {
    use axum::response::IntoResponse;
    let cookie = format!(
        "{cookie_name}={}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        s.token,
        ABSOLUTE_TIMEOUT.as_secs()
    );
    (
        axum::http::StatusCode::OK,
        [(header::SET_COOKIE, cookie)],
        axum::Json(serde_json::json!({ "csrf_token": s.csrf })),
    )
        .into_response()
}
