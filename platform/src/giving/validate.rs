//! Checking a donation form against the tenant's limits, field by field.

use super::create::{Frequency, NewDonation};
use crate::error::AppError;
use crate::tenant::profile::from_settings;

/// A donation form that passed validation, normalised.
pub(crate) struct Valid {
    pub(crate) amount: i64,
    pub(crate) currency: String,
    pub(crate) fund: String,
    pub(crate) name: String,
    pub(crate) email: String,
    pub(crate) frequency: Frequency,
    pub(crate) payment_method: Option<String>,
    pub(crate) card_token: Option<String>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> AppError {
    AppError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// An address the mailer will accept. The rule lives in `tenant_config::mail`, next to the
/// parser the workers send with, so a receipt is never queued for an address that can only
/// fail there (`a@[127.0.0.1]` and `"a,b"@x.org` are addresses to lettre's `Address`, but not
/// to the `Mailbox` parse every message goes through).
pub fn valid_email(e: &str) -> bool {
    tenant_config::mail::valid_recipient(e)
}

/// Known payment method id shape (`pm_` then letters, digits and underscores).
pub(crate) fn valid_pm(pm: &str) -> bool {
    pm.len() <= 255
        && pm.strip_prefix("pm_").is_some_and(|r| {
            !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

pub(crate) fn validate(d: NewDonation, settings: &serde_json::Value) -> Result<Valid, AppError> {
    let limits = from_settings(String::new(), String::new(), settings).donations;
    let currency = d.currency.trim().to_ascii_lowercase();
    if !limits.currencies.contains(&currency) {
        return Err(invalid(
            "currency",
            format!("must be one of: {}", limits.currencies.join(", ")),
        ));
    }
    if d.amount_minor < limits.min_minor || d.amount_minor > limits.max_minor {
        return Err(invalid(
            "amount_minor",
            format!(
                "must be between {} and {} (minor units)",
                limits.min_minor, limits.max_minor
            ),
        ));
    }
    let fund = match d.fund {
        Some(f) if limits.funds.contains(&f) => f,
        Some(_) => {
            return Err(invalid(
                "fund",
                format!("must be one of: {}", limits.funds.join(", ")),
            ))
        }
        None => limits
            .funds
            .first()
            .cloned()
            .unwrap_or_else(|| "general".into()),
    };
    let name = d.donor_name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(invalid(
            "donor_name",
            "must be 1 to 200 printable characters",
        ));
    }
    let email = d.donor_email.trim().to_lowercase();
    if !valid_email(&email) {
        return Err(invalid("donor_email", "must be an email address"));
    }
    let card_token = match d.card_token {
        Some(t) if valid_token(&t) => Some(t),
        Some(_) => return Err(invalid("card_token", "must be a tok_… id from Stripe.js")),
        None => None,
    };
    if card_token.is_some() && d.payment_method.is_some() {
        return Err(invalid(
            "payment_method",
            "send either a payment method or a card token, not both",
        ));
    }
    let payment_method = match (d.frequency, d.payment_method) {
        _ if card_token.is_some() => None,
        (Frequency::OneTime, Some(_)) => {
            return Err(invalid(
                "payment_method",
                "only for recurring gifts; one-time gifts are confirmed with the client secret",
            ))
        }
        (Frequency::OneTime, None) => None,
        (_, Some(pm)) if valid_pm(&pm) => Some(pm),
        (_, Some(_)) => return Err(invalid("payment_method", "must be a pm_… id")),
        (_, None) => {
            return Err(invalid(
                "payment_method",
                "required for recurring gifts (create it with Stripe.js)",
            ))
        }
    };
    Ok(Valid {
        amount: d.amount_minor,
        currency,
        fund,
        name,
        email,
        frequency: d.frequency,
        payment_method,
        card_token,
    })
}

/// Card token shape (`tok_` then letters, digits and underscores).
fn valid_token(t: &str) -> bool {
    t.len() <= 255
        && t.strip_prefix("tok_").is_some_and(|r| {
            !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_payment_methods() {
        for ok in ["a@b.co", "first.last+tag@church.example.org"] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "@b.co",
            "a@.co",
            "a@b.co.",
            "a b@c.co",
            "a@b@c.co",
            "a,b@x.org",
            "a@x..org",
            "a@[127.0.0.1]",
            "\"a,b\"@x.org",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
        assert!(valid_pm("pm_1AbC_d"));
        assert!(!valid_pm("pm_") && !valid_pm("card_1") && !valid_pm("pm_a/b"));
    }

    #[test]
    fn validation_names_the_field() {
        let settings = serde_json::json!({"donations": {"currencies": ["usd", "eur"],
            "min_minor": 500, "max_minor": 100000, "funds": ["general", "roof"]}});
        let base = || NewDonation {
            amount_minor: 2500,
            currency: "USD".into(),
            fund: None,
            donor_name: " Ann ".into(),
            donor_email: "Ann@Example.org".into(),
            frequency: Frequency::OneTime,
            payment_method: None,
            card_token: None,
        };
        let v = validate(base(), &settings).unwrap();
        assert_eq!(
            (
                v.currency.as_str(),
                v.fund.as_str(),
                v.email.as_str(),
                v.name.as_str()
            ),
            ("usd", "general", "ann@example.org", "Ann")
        );
        let field = |d: NewDonation| match validate(d, &settings) {
            Err(AppError::Invalid { field, .. }) => field,
            other => panic!("expected a validation error, got {:?}", other.map(|_| ())),
        };
        assert_eq!(
            field(NewDonation {
                amount_minor: 499,
                ..base()
            }),
            "amount_minor"
        );
        assert_eq!(
            field(NewDonation {
                amount_minor: 100_001,
                ..base()
            }),
            "amount_minor"
        );
        assert_eq!(
            field(NewDonation {
                currency: "gbp".into(),
                ..base()
            }),
            "currency"
        );
        assert_eq!(
            field(NewDonation {
                fund: Some("pool".into()),
                ..base()
            }),
            "fund"
        );
        assert_eq!(
            field(NewDonation {
                donor_email: "nope".into(),
                ..base()
            }),
            "donor_email"
        );
        assert_eq!(
            field(NewDonation {
                donor_name: "  ".into(),
                ..base()
            }),
            "donor_name"
        );
        assert_eq!(
            field(NewDonation {
                frequency: Frequency::Month,
                ..base()
            }),
            "payment_method"
        );
        assert_eq!(
            field(NewDonation {
                payment_method: Some("pm_1".into()),
                ..base()
            }),
            "payment_method"
        );
    }
}
