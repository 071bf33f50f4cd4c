//! The SMTP transport, built one way for `run` and `check-config`, so a URL that passes the
//! check is one the workers can send with.

use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::Tokio1Executor;
use tenant_config::config::SmtpConfig;

/// The mail transport for `config`, or a one-line error naming the field.
pub fn transport(config: &SmtpConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let url = config.url().map_err(|e| e.to_string())?;
    let url = normalize_url(url.expose());
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
            url: Some(Secret::new(url)),
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

    /// The seeds name the relay as `EMAIL_HOST` and `EMAIL_PORT`: the port decides the TLS as
    /// mail clients do, and the transport is built from that URL.
    #[tokio::test]
    async fn host_and_port_stand_for_a_url() {
        let relay = |host: &str, port: u16| SmtpConfig {
            host: Some(host.into()),
            port: Some(port),
            ..SmtpConfig::default()
        };
        for (host, port, url) in [
            (
                "smtp.sendgrid.net",
                587,
                "smtp://smtp.sendgrid.net:587?tls=required",
            ),
            ("SMTP.Example.org", 465, "smtps://smtp.example.org:465"),
            ("127.0.0.1", 2525, "smtp://127.0.0.1:2525"),
            ("::1", 25, "smtp://[::1]:25"),
        ] {
            let c = relay(host, port);
            assert_eq!(c.url().unwrap().expose(), url);
            assert!(transport(&c).is_ok(), "{url}");
        }
        for (c, field) in [
            (relay("smtp.example.org/x?", 587), "smtp.host"),
            (relay("user@smtp.example.org", 587), "smtp.host"),
            (relay("smtp.example.org", 0), "smtp.port"),
            (
                SmtpConfig {
                    port: Some(587),
                    ..SmtpConfig::default()
                },
                "smtp.host",
            ),
            (
                SmtpConfig {
                    host: Some("smtp.example.org".into()),
                    ..SmtpConfig::default()
                },
                "smtp.port",
            ),
            (
                SmtpConfig {
                    url: Some(Secret::new("smtps://smtp.example.org:465")),
                    ..relay("smtp.example.org", 465)
                },
                "smtp.url",
            ),
        ] {
            let e = transport(&c).unwrap_err();
            assert!(e.starts_with(&format!("{field}: ")), "{e}");
        }
        assert_eq!(
            SmtpConfig::default().url().unwrap().expose(),
            "smtp://127.0.0.1:2525"
        );
    }
}
