//! The SMTP transport, built one way for `run` and `check-config`, so a URL that passes the
//! check is one the workers can send with.

use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::Tokio1Executor;
use tenant_config::config::SmtpConfig;

/// The mail transport for `config`, or a one-line error naming the field.
pub fn transport(config: &SmtpConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let url = normalize_url(config.url.expose());
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
        .map_err(|e| {
            format!("smtp.url: {e} (use smtps://host:465 or smtp://host:587?tls=required)")
        })?
        .timeout(Some(Duration::from_secs(20)));
    match (&config.username, &config.password) {
        (Some(user), Some(pass)) => {
            builder = builder.credentials(Credentials::new(user.clone(), pass.expose().to_owned()));
        }
        (None, None) => {}
        (Some(_), None) => return Err("smtp.password: required when smtp.username is set".into()),
        (None, Some(_)) => return Err("smtp.username: required when smtp.password is set".into()),
    }
    Ok(builder.build())
}

/// `smtp+starttls://…` (the spelling several guides use) as lettre's `smtp://…?tls=required`.
fn normalize_url(url: &str) -> String {
    match url.strip_prefix("smtp+starttls://") {
        Some(rest) if rest.contains("tls=") => format!("smtp://{rest}"),
        Some(rest) if rest.contains('?') => format!("smtp://{rest}&tls=required"),
        Some(rest) => format!("smtp://{rest}?tls=required"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenant_config::config::Secret;

    fn smtp(url: &str) -> SmtpConfig {
        SmtpConfig {
            url: Secret::new(url),
            ..SmtpConfig::default()
        }
    }

    // The transport's connection pool needs a runtime, as in the binary.
    #[tokio::test]
    async fn the_documented_forms_build_and_nonsense_names_the_field() {
        for ok in [
            "smtp://127.0.0.1:2525",
            "smtps://user:pass@smtp.sendgrid.net:465",
            "smtp://user:pass@smtp.example.org:587?tls=required",
            "smtp+starttls://user:pass@smtp.example.org:587",
        ] {
            assert!(transport(&smtp(ok)).is_ok(), "{ok}");
        }
        for bad in ["smtpx://host", "http://host:25", "not a url"] {
            let e = transport(&smtp(bad)).unwrap_err();
            assert!(e.starts_with("smtp.url: "), "{bad}: {e}");
        }
        let mut c = smtp("smtps://smtp.sendgrid.net:465");
        c.username = Some("apikey".into());
        assert!(transport(&c).unwrap_err().starts_with("smtp.password"));
        c.password = Some(Secret::new("SG.key"));
        assert!(transport(&c).is_ok());
        assert_eq!(
            normalize_url("smtp+starttls://h:587"),
            "smtp://h:587?tls=required"
        );
    }
}
