//! Platform fee arithmetic on integer minor units.
//!
//! Rounding rule: the fee is `floor(amount × basis_points / 10 000)`, so the platform never takes
//! more than the stated percentage; the remainder stays with the tenant. A 2 % fee on a 1 025
//! cent gift is 20 cents (20.5 rounded down), and the tenant's net is 1 005.

/// The platform's fee on `amount_minor` at `basis_points` (200 = 2 %). Never negative, never
/// more than the amount, exact for every `i64` amount (computed in 128 bits).
pub fn platform_fee(amount_minor: i64, basis_points: u32) -> i64 {
    if amount_minor <= 0 {
        return 0;
    }
    let bp = i128::from(basis_points.min(10_000));
    let fee = i128::from(amount_minor) * bp / 10_000;
    // fee <= amount_minor because bp <= 10 000, so it fits back into i64.
    i64::try_from(fee).unwrap_or(amount_minor)
}

/// The fee as Stripe's `application_fee_percent` wants it: a decimal without trailing zeros
/// (200 → `"2"`, 250 → `"2.5"`, 225 → `"2.25"`).
pub fn fee_percent_string(basis_points: u32) -> String {
    let whole = basis_points / 100;
    let frac = basis_points % 100;
    match frac {
        0 => whole.to_string(),
        f if f % 10 == 0 => format!("{whole}.{}", f / 10),
        f => format!("{whole}.{f:02}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn documented_examples() {
        assert_eq!(platform_fee(1025, 200), 20);
        assert_eq!(platform_fee(10_000, 200), 200);
        assert_eq!(platform_fee(1, 200), 0);
        assert_eq!(platform_fee(5000, 0), 0);
        assert_eq!(platform_fee(5000, 10_000), 5000);
        assert_eq!(platform_fee(-5, 200), 0);
        assert_eq!(fee_percent_string(200), "2");
        assert_eq!(fee_percent_string(250), "2.5");
        assert_eq!(fee_percent_string(225), "2.25");
        assert_eq!(fee_percent_string(5), "0.05");
        assert_eq!(fee_percent_string(10_000), "100");
    }

    proptest! {
        #[test]
        fn fee_and_net_add_up(amount in 1i64..i64::MAX, bp in 0u32..=10_000) {
            let fee = platform_fee(amount, bp);
            prop_assert!(fee >= 0 && fee <= amount);
            // Rounded down: the fee is within one minor unit below the exact share.
            let exact = i128::from(amount) * i128::from(bp);
            prop_assert!(i128::from(fee) * 10_000 <= exact);
            prop_assert!((i128::from(fee) + 1) * 10_000 > exact);
        }

        #[test]
        fn percent_string_round_trips(bp in 0u32..=10_000) {
            let s = fee_percent_string(bp);
            let back: f64 = s.parse().unwrap();
            prop_assert_eq!((back * 100.0).round() as u32, bp);
        }
    }
}
