//! When to act: the renewal point (a random moment inside ARI's suggested window, RFC 9773
//! §4.2, else two thirds into the certificate's lifetime), retry backoff that honours the CA's
//! `Retry-After`, and jittered scan intervals. Pure functions over explicit times, so tests
//! pin them without a clock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

/// The renewal point without ARI: two thirds of the way from `not_before` to `not_after`
/// (Let's Encrypt's and certmagic's rule of thumb: a 90-day certificate renews at day 60).
pub fn two_thirds(not_before: DateTime<Utc>, not_after: DateTime<Utc>) -> DateTime<Utc> {
    let life = not_after - not_before;
    not_before + life * 2 / 3
}

/// A uniformly random point in ARI's suggested window `[start, end]`. A window that starts in
/// the past means "now" (RFC 9773 §4.2: renew immediately); a window whose end is before its
/// start is taken as its start.
pub fn in_window(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> DateTime<Utc> {
    if end <= start {
        return start.max(now);
    }
    if start <= now {
        return now;
    }
    let span = (end - start).num_milliseconds().max(0);
    let at = start + chrono::Duration::milliseconds(rng.random_range(0..=span));
    at.max(now)
}

/// The delay before retry number `failures` (1 = after the first failure): `min * 2^(n-1)`,
/// capped at `max`, with up to a tenth added at random so instances spread out. A CA's
/// `Retry-After` is a floor: never retried sooner.
pub fn backoff(
    failures: u32,
    min: Duration,
    max: Duration,
    retry_after: Option<Duration>,
    rng: &mut impl Rng,
) -> Duration {
    let shift = failures.saturating_sub(1).min(30);
    let base = min.saturating_mul(1u32 << shift).min(max);
    let jitter = base / 10;
    let with_jitter = base + jitter.mul_f64(rng.random::<f64>());
    match retry_after {
        Some(ra) => with_jitter.max(ra),
        None => with_jitter,
    }
}

/// `interval` moved by up to a fifth either way, so instances that started together drift
/// apart instead of scanning the database in step.
pub fn jittered(interval: Duration, rng: &mut impl Rng) -> Duration {
    let fifth = interval.as_secs_f64() / 5.0;
    let offset = rng.random_range(-fifth..=fifth);
    Duration::from_secs_f64((interval.as_secs_f64() + offset).max(0.05))
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn two_thirds_of_ninety_days_is_day_sixty() {
        let nb = t("2026-01-01T00:00:00Z");
        assert_eq!(
            two_thirds(nb, t("2026-04-01T00:00:00Z")),
            t("2026-03-02T00:00:00Z")
        );
        // Short-lived (120 s) certificates renew after 80 s.
        let short = two_thirds(nb, nb + chrono::Duration::seconds(120));
        assert_eq!(short, nb + chrono::Duration::seconds(80));
    }

    #[test]
    fn window_points_stay_inside_and_past_windows_mean_now() {
        let mut rng = StdRng::seed_from_u64(7);
        let now = t("2026-03-01T00:00:00Z");
        let (s, e) = (t("2026-03-10T00:00:00Z"), t("2026-03-12T00:00:00Z"));
        let mut seen_low = false;
        let mut seen_high = false;
        for _ in 0..1_000 {
            let p = in_window(s, e, now, &mut rng);
            assert!(p >= s && p <= e, "{p}");
            seen_low |= p < s + chrono::Duration::hours(12);
            seen_high |= p > e - chrono::Duration::hours(12);
        }
        assert!(seen_low && seen_high, "points spread over the window");
        assert_eq!(in_window(t("2026-02-01T00:00:00Z"), e, now, &mut rng), now);
        assert_eq!(
            in_window(e, s, now, &mut rng),
            e,
            "inverted window: its start"
        );
    }

    #[test]
    fn backoff_doubles_caps_and_honours_retry_after() {
        let mut rng = StdRng::seed_from_u64(1);
        let (min, max) = (Duration::from_secs(60), Duration::from_secs(3_600));
        let d = |n, ra, rng: &mut StdRng| backoff(n, min, max, ra, rng);
        let first = d(1, None, &mut rng);
        assert!(first >= min && first <= min + min / 10);
        let third = d(3, None, &mut rng);
        assert!(third >= min * 4 && third <= min * 4 + min * 4 / 10);
        let capped = d(40, None, &mut rng);
        assert!(capped >= max && capped <= max + max / 10);
        let ra = Duration::from_secs(7_200);
        assert_eq!(d(1, Some(ra), &mut rng), ra, "Retry-After is a floor");
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        let mut rng = StdRng::seed_from_u64(3);
        let i = Duration::from_secs(100);
        for _ in 0..1_000 {
            let j = jittered(i, &mut rng);
            assert!(j >= Duration::from_secs(80) && j <= Duration::from_secs(120));
        }
    }
}
