//! HTTP-01 answers for `/.well-known/acme-challenge/<token>`, read from `acme_challenges` so any
//! router instance answers a token another instance published (the CA's validation request
//! lands wherever the load balancer sends it).
//!
//! Tokens are checked before any lookup: base64url only, 16 to 128 characters (RFC 8555 §8.3
//! asks for at least 128 bits of entropy; CAs send 43). Found answers are cached for a few
//! seconds; unknown tokens for one second, which blunts a flood of made-up tokens without
//! hiding a token published a moment later for long.

use std::time::Duration;

use moka::sync::Cache;
use tenant_config::db::Pool;

/// A published answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The name the challenge is for.
    pub domain: String,
    /// The body the CA expects.
    pub key_authorization: String,
}

/// Whether `token` has the shape of an ACME token.
pub fn valid_token(token: &str) -> bool {
    (16..=128).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Looks answers up, with a short cache.
pub struct Answers {
    pool: Pool,
    found: Cache<String, Answer>,
    unknown: Cache<String, ()>,
}

impl Answers {
    /// Over `pool` (the router's login role).
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            found: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(5))
                .build(),
            unknown: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(1))
                .build(),
        }
    }

    /// The answer for `token`, if one is published and unexpired. `Err` when the database
    /// could not be asked.
    pub async fn lookup(&self, token: &str) -> Result<Option<Answer>, String> {
        if !valid_token(token) {
            return Ok(None);
        }
        if let Some(a) = self.found.get(token) {
            return Ok(Some(a));
        }
        if self.unknown.contains_key(token) {
            return Ok(None);
        }
        let conn = self.pool.get().await.map_err(|e| e.to_string())?;
        let row = conn
            .query_opt(
                "SELECT domain, key_authorization FROM acme_challenges
                 WHERE token = $1 AND expires_at > now()",
                &[&token],
            )
            .await
            .map_err(|e| e.to_string())?;
        match row {
            Some(r) => {
                let a = Answer {
                    domain: r.get(0),
                    key_authorization: r.get(1),
                };
                self.found.insert(token.to_owned(), a.clone());
                Ok(Some(a))
            }
            None => {
                self.unknown.insert(token.to_owned(), ());
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_syntax_is_strict() {
        assert!(valid_token("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"));
        assert!(valid_token("abcdefghijklmnop"));
        for bad in [
            "",
            "short",
            "has space in the token xx",
            "dots.are.not.base64url.",
            "slash/inside/the/token/x",
            "percent%2Fencoded_tokenxx",
            "non-ascii-é-token-xxxxxx",
        ] {
            assert!(!valid_token(bad), "{bad:?}");
        }
        assert!(!valid_token(&"a".repeat(129)));
    }
}
