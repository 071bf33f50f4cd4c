//! Reading request input: JSON bodies, query strings and forms, each with the RFC 9110
//! status for what is wrong (400 malformed, 413 too large, 415 wrong type, 422 naming the
//! field), and no text with NUL or other control characters ever reaching SQL.

use axum::http::header;

use crate::error::AppError;

/// Refuses text that no field of ours may hold: NUL (PostgreSQL cannot store it) and other
/// control characters (invisible in the console, dangerous in logs and CSV).
pub fn check_text(value: &str) -> Result<(), &'static str> {
    if value.chars().any(char::is_control) {
        Err("must not contain control characters")
    } else {
        Ok(())
    }
}

/// Walks parsed JSON and refuses the first string (value or key) that [`check_text`] refuses,
/// naming where it sits (`donor_name`, `settings.funds[2]`).
pub fn check_json_text(v: &serde_json::Value) -> Result<(), AppError> {
    walk_json(v, &mut String::new(), check_text)
}

/// Like [`check_json_text`] but refusing only NUL, which PostgreSQL cannot store: for payloads
/// we do not author (Stripe events), where a newline in a description is legitimate.
pub fn check_json_storable(v: &serde_json::Value) -> Result<(), AppError> {
    walk_json(v, &mut String::new(), |s| {
        if s.contains('\0') {
            Err("must not contain NUL")
        } else {
            Ok(())
        }
    })
}

fn walk_json(
    v: &serde_json::Value,
    path: &mut String,
    check: fn(&str) -> Result<(), &'static str>,
) -> Result<(), AppError> {
    let bad = |path: &str, message: &'static str| AppError::Invalid {
        field: if path.is_empty() {
            "body".into()
        } else {
            path.to_owned().into()
        },
        message: message.into(),
    };
    match v {
        serde_json::Value::String(s) => check(s).map_err(|m| bad(path, m)),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk_json(item, path, check)?;
                path.truncate(len);
            }
            Ok(())
        }
        serde_json::Value::Object(map) => {
            for (k, item) in map {
                if let Err(m) = check(k) {
                    return Err(bad(path, m));
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                walk_json(item, path, check)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Reads a body of at most [`crate::MAX_BODY_BYTES`], as 413 when it is larger.
async fn body_bytes(req: axum::extract::Request) -> Result<axum::body::Bytes, AppError> {
    axum::body::to_bytes(req.into_body(), crate::MAX_BODY_BYTES)
        .await
        .map_err(|_| AppError::PayloadTooLarge)
}

fn content_type_is(req: &axum::extract::Request, want: &str) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            let v = v.trim();
            v.eq_ignore_ascii_case(want)
                || (want == "application/json"
                    && v.len() > 5
                    && v[..v.len() - 5].contains('/')
                    && v.to_ascii_lowercase().ends_with("+json"))
        })
}

/// Deserialises `value` into `T`, naming the field at fault in a 422.
fn typed<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, AppError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        AppError::Invalid {
            field: if path == "." {
                "body".into()
            } else {
                path.into()
            },
            message: e.into_inner().to_string(),
        }
    })
}

/// A JSON body: 415 unless `Content-Type` is JSON, 413 over the size limit, 400 when it is
/// not JSON, 422 naming the field when a value is missing, of the wrong type, unknown or
/// holds control characters.
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: axum::extract::Request, _state: &S) -> Result<Self, AppError> {
        if !content_type_is(&req, "application/json") {
            return Err(AppError::UnsupportedMediaType("application/json"));
        }
        let bytes = body_bytes(req).await?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| AppError::BadRequest(format!("body is not valid JSON: {e}")))?;
        check_json_text(&value)?;
        typed(value).map(ApiJson)
    }
}

/// Deserialises a URL-encoded string (query or form) into `T`: 422 naming the parameter when
/// a name or value holds control characters or a value does not fit its field.
fn from_urlencoded<T: serde::de::DeserializeOwned>(
    raw: &str,
    what: &'static str,
) -> Result<T, AppError> {
    // `form_urlencoded` decodes leniently (a broken escape becomes U+FFFD): refuse what does
    // not decode to UTF-8 instead of storing a replacement character.
    for part in raw.split(['&', '=']) {
        if percent_encoding::percent_decode_str(part)
            .decode_utf8()
            .is_err()
        {
            return Err(AppError::BadRequest(format!(
                "the {what} has a %-escape that is not UTF-8"
            )));
        }
    }
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        if let Err(m) = check_text(&k) {
            return Err(AppError::Invalid {
                field: what.into(),
                message: format!("a parameter name {m}"),
            });
        }
        if let Err(m) = check_text(&v) {
            return Err(AppError::Invalid {
                field: k.into_owned().into(),
                message: m.into(),
            });
        }
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        AppError::Invalid {
            field: if path == "." {
                what.into()
            } else {
                path.into()
            },
            message: e.into_inner().to_string(),
        }
    })
}

/// A query string: 422 naming the parameter when it is invalid or holds control characters.
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, AppError> {
        from_urlencoded(parts.uri.query().unwrap_or_default(), "query").map(ApiQuery)
    }
}

/// A URL-encoded form body: 415 unless it is one, 413 over the limit, 422 naming the field.
pub struct ApiForm<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiForm<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: axum::extract::Request, _state: &S) -> Result<Self, AppError> {
        if !content_type_is(&req, "application/x-www-form-urlencoded") {
            return Err(AppError::UnsupportedMediaType(
                "application/x-www-form-urlencoded",
            ));
        }
        let bytes = body_bytes(req).await?;
        let raw = std::str::from_utf8(&bytes)
            .map_err(|_| AppError::BadRequest("form body is not UTF-8".into()))?;
        from_urlencoded(raw, "body").map(ApiForm)
    }
}
