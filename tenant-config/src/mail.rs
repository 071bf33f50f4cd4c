//! The one address parser for outgoing mail.
//!
//! The workers send with lettre, which parses the sender and every recipient as a
//! [`Mailbox`] when a message is built. Anything the platform or the configuration accepts
//! must pass that same parse, or the message fails permanently at the first send (a receipt
//! that can never be delivered, a sender every message is refused for). So the sender check at
//! configuration time, the donor e-mail check in the platform and the mailer all call
//! [`mailbox`].

pub use lettre::message::Mailbox;

/// Parses `text` as the mailer does (`Name <user@domain>` or a bare address), or says in one
/// line why it cannot be used. The message never echoes `text`.
pub fn mailbox(text: &str) -> Result<Mailbox, String> {
    text.parse::<Mailbox>().map_err(|e| match e {
        lettre::address::AddressError::InvalidInput => {
            "not an address the mailer can parse (a display name with a comma or other special \
             character must be in double quotes: \"Donations, Inc.\" <no-reply@example.org>)"
                .to_owned()
        }
        other => format!("not an address the mailer can use: {other}"),
    })
}

/// Whether `address` is a bare e-mail address we can queue mail for: the mailer's parse
/// accepts it as it stands (no display name, no angle brackets), the domain is a DNS name with
/// a dot and no empty label (no `[127.0.0.1]` literal, no `x..org`), and it is within the SMTP
/// length limits (RFC 5321: 64 for the local part, 254 in all). Whitespace and control
/// characters are refused.
pub fn valid_recipient(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    address.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && domain.split('.').all(|l| !l.is_empty())
        && !domain.starts_with('[')
        && address
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control())
        && mailbox(address).is_ok_and(|m| m.name.is_none() && m.email.to_string() == address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_the_mailer_accepts() {
        for ok in [
            "a@b.co",
            "first.last+tag@church.example.org",
            "o'neil@example.ie",
        ] {
            assert!(valid_recipient(ok), "{ok}");
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
            // Address alone accepts these; the mailer's Mailbox parse does not.
            "a@[127.0.0.1]",
            "\"a,b\"@x.org",
            "Ann <a@b.co>",
            "<a@b.co>",
        ] {
            assert!(!valid_recipient(bad), "{bad}");
        }
    }

    #[test]
    fn senders_parse_as_the_mailer_parses_them() {
        for ok in [
            "Donations <no-reply@platform.localhost>",
            "\"Donations, Inc.\" <a@x.org>",
            "a@x.org",
        ] {
            assert!(mailbox(ok).is_ok(), "{ok}");
        }
        for bad in [
            "Donations, Inc. <a@x.org>",
            "a@x..org",
            "Ann <a@b.co> x",
            "a@b.co, c@d.co",
        ] {
            let e = mailbox(bad).unwrap_err();
            assert!(!e.contains(bad) && !e.contains('\n'), "{bad}: {e}");
        }
    }
}
