//! Money as people read it, from minor units and the currency's ISO 4217 exponent (the
//! `iso_currency` table): 2500 USD is `25.00 USD`, 2500 JPY is `2500 JPY`, 2500 KWD is
//! `2.500 KWD`. One formatter for receipts, reports and pages, so they never disagree.

use iso_currency::Currency;

/// The ISO 4217 currency for a code in any case, if it is one.
pub fn currency(code: &str) -> Option<Currency> {
    Currency::from_code(&code.to_ascii_uppercase())
}

/// Decimal places of `code` (2 for an unknown code, which configuration validation refuses).
pub fn exponent(code: &str) -> u32 {
    currency(code)
        .and_then(|c| c.exponent())
        .map_or(2, u32::from)
}

/// `minor` units of `code` as a decimal amount with its code: `-25.00 USD`, `2500 JPY`.
pub fn format(minor: i64, code: &str) -> String {
    format!("{} {}", decimal(minor, code), code.to_ascii_uppercase())
}

/// `minor` units of `code` as a plain decimal (`25.00`, `2500`, `-0.05`), for CSV columns.
pub fn decimal(minor: i64, code: &str) -> String {
    let exp = exponent(code);
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    if exp == 0 {
        return format!("{sign}{m}");
    }
    let unit = 10u64.pow(exp);
    format!(
        "{sign}{}.{:0width$}",
        m / unit,
        m % unit,
        width = exp as usize
    )
}

/// Parses an amount a person typed in the major unit (`25`, `25.5`, `$25.50`) into minor units
/// of `code`; `None` when it is not a plain non-negative number with at most the currency's
/// decimals.
pub fn parse(input: &str, code: &str) -> Option<i64> {
    let exp = exponent(code) as usize;
    let s = input.trim().trim_start_matches(['$', '€', '£']);
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if (whole.is_empty() && frac.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > exp
        || whole.len() > 12
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse::<i64>().ok()? * 10i64.pow((exp - frac.len()) as u32)
    };
    whole.checked_mul(10i64.pow(exp as u32))?.checked_add(frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_come_from_iso_4217() {
        assert_eq!(format(2500, "usd"), "25.00 USD");
        assert_eq!(format(-5, "eur"), "-0.05 EUR");
        assert_eq!(format(2500, "jpy"), "2500 JPY");
        assert_eq!(format(2500, "KWD"), "2.500 KWD");
        assert_eq!(decimal(-123456, "usd"), "-1234.56");
        assert_eq!(parse("25", "usd"), Some(2500));
        assert_eq!(parse("25.5", "usd"), Some(2550));
        assert_eq!(parse(" $25.05 ", "usd"), Some(2505));
        assert_eq!(parse(".5", "usd"), Some(50));
        assert_eq!(parse("2500", "jpy"), Some(2500));
        assert_eq!(parse("25.5", "jpy"), None);
        assert_eq!(parse("1.234", "kwd"), Some(1234));
        for bad in [
            "",
            ".",
            "25.555",
            "-5",
            "1e3",
            "2,50",
            "abc",
            "9999999999999",
        ] {
            assert_eq!(parse(bad, "usd"), None, "{bad}");
        }
        assert!(currency("usd").is_some() && currency("xyz").is_none());
    }
}
