//! Cron schedules: the seeds' expressions as defaults, parsing (and refusing) expressions,
//! next and latest fire times across month and year ends and daylight-saving changes (the
//! scheduler works in UTC, so none of them moves), the missed-run rule, and per-job
//! overrides from the environment and the file, refused with exit 64 naming the job's field.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::process::Command;

use chrono::{DateTime, Duration, Utc};
use tenant_config::config::{load, CronConfig, MapEnv, WorkersConfig};
use workers::cron::{is_due, CronJob, Schedule, Schedules};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn sched(expr: &str) -> Schedule {
    Schedule::parse(expr).unwrap()
}

/// The first `n` fire times after `from`.
fn fires(s: &Schedule, from: &str, n: usize) -> Vec<DateTime<Utc>> {
    let mut at = t(from);
    (0..n)
        .map(|_| {
            at = s.next_due(at).unwrap();
            at
        })
        .collect()
}

#[test]
fn defaults_are_the_seeds_schedules() {
    let c = CronConfig::default();
    assert_eq!(c.process_emails, "*/5 * * * *");
    assert_eq!(c.process_donations, "0 * * * *");
    assert_eq!(c.cleanup_sessions, "0 3 * * *");
    assert_eq!(c.generate_reports, "0 6 * * 1");
    let s = Schedules::from_config(&c).unwrap();
    // 2026-11-23 is a Monday.
    let now = t("2026-11-23T05:58:10Z");
    let next = |job| s.get(job).next_due(now).unwrap();
    assert_eq!(next(CronJob::ProcessEmails), t("2026-11-23T06:00:00Z"));
    assert_eq!(next(CronJob::ProcessDonations), t("2026-11-23T06:00:00Z"));
    assert_eq!(next(CronJob::CleanupSessions), t("2026-11-24T03:00:00Z"));
    assert_eq!(next(CronJob::GenerateReports), t("2026-11-23T06:00:00Z"));
    assert_eq!(s.get(CronJob::CleanupSessions).as_str(), "0 3 * * *");
}

#[test]
fn expressions_are_parsed_and_nonsense_is_refused() {
    for ok in [
        "*/5 * * * *",
        "0 6 * * MON",
        "15 2 1 JAN *",
        "0 9-17 * * 1-5",
        "30 4 L * *",
    ] {
        assert!(Schedule::parse(ok).is_ok(), "{ok}");
    }
    for (bad, why) in [
        ("", "not a cron expression"),
        ("*/5 * * *", "not a cron expression"),
        ("0 25 * * *", "not a cron expression"),
        ("61 * * * *", "not a cron expression"),
        ("0 6 * * 9", "not a cron expression"),
        ("0 6 * * FUN", "not a cron expression"),
        ("0 0 3 * * *", "not a cron expression"),
        ("every day", "not a cron expression"),
        ("0 0 31 2 *", "never fires"),
    ] {
        let err = Schedule::parse(bad).expect_err(bad);
        assert!(err.contains(why), "{bad:?}: {err}");
    }
}

#[test]
fn next_fire_times_across_month_and_year_ends() {
    assert_eq!(
        fires(&sched("*/5 * * * *"), "2026-01-31T23:52:00Z", 3),
        [
            t("2026-01-31T23:55:00Z"),
            t("2026-02-01T00:00:00Z"),
            t("2026-02-01T00:05:00Z")
        ]
    );
    assert_eq!(
        fires(&sched("0 * * * *"), "2026-12-31T22:30:00Z", 2),
        [t("2026-12-31T23:00:00Z"), t("2027-01-01T00:00:00Z")]
    );
    assert_eq!(
        fires(&sched("0 3 * * *"), "2026-02-28T03:00:00Z", 2),
        [t("2026-03-01T03:00:00Z"), t("2026-03-02T03:00:00Z")],
        "February 2026 has 28 days"
    );
    assert_eq!(
        fires(&sched("0 3 * * *"), "2028-02-28T03:00:00Z", 1),
        [t("2028-02-29T03:00:00Z")],
        "2028 is a leap year"
    );
    assert_eq!(
        fires(&sched("0 6 * * 1"), "2026-12-28T06:00:00Z", 2),
        [t("2027-01-04T06:00:00Z"), t("2027-01-11T06:00:00Z")],
        "Mondays across the year end"
    );
    // Day 31 skips the months without one.
    assert_eq!(
        fires(&sched("0 0 31 * *"), "2026-01-31T00:00:00Z", 3),
        [
            t("2026-03-31T00:00:00Z"),
            t("2026-05-31T00:00:00Z"),
            t("2026-07-31T00:00:00Z")
        ]
    );
    // The last day of the month, whatever its number.
    assert_eq!(
        fires(&sched("30 4 L * *"), "2026-01-15T00:00:00Z", 3),
        [
            t("2026-01-31T04:30:00Z"),
            t("2026-02-28T04:30:00Z"),
            t("2026-03-31T04:30:00Z")
        ]
    );
}

#[test]
fn daylight_saving_changes_do_not_move_utc_schedules() {
    let daily = sched("0 3 * * *");
    // US spring forward 2026-03-08, EU 2026-03-29; EU fall back 2026-10-25, US 2026-11-01.
    for from in [
        "2026-03-06T03:00:00Z",
        "2026-03-27T03:00:00Z",
        "2026-10-23T03:00:00Z",
        "2026-10-30T03:00:00Z",
    ] {
        let times = fires(&daily, from, 4);
        let mut prev = t(from);
        for at in times {
            assert_eq!(at - prev, Duration::hours(24), "from {from}: {at}");
            assert_eq!(at.format("%H:%M").to_string(), "03:00");
            prev = at;
        }
    }
    // The hours that local clocks skip or repeat (01:00-02:00 UTC in the EU) still fire.
    let hourly = sched("0 * * * *");
    assert_eq!(
        fires(&hourly, "2026-03-29T00:30:00Z", 3),
        [
            t("2026-03-29T01:00:00Z"),
            t("2026-03-29T02:00:00Z"),
            t("2026-03-29T03:00:00Z")
        ]
    );
    assert_eq!(
        fires(&hourly, "2026-10-25T00:30:00Z", 3),
        [
            t("2026-10-25T01:00:00Z"),
            t("2026-10-25T02:00:00Z"),
            t("2026-10-25T03:00:00Z")
        ]
    );
}

#[test]
fn latest_due_time_and_missed_runs_caught_up_once() {
    let every5 = sched("*/5 * * * *");
    assert_eq!(
        every5.last_due(t("2026-11-23T10:07:31Z")),
        Some(t("2026-11-23T10:05:00Z"))
    );
    assert_eq!(
        every5.last_due(t("2026-11-23T10:05:00Z")),
        Some(t("2026-11-23T10:05:00Z")),
        "a due time counts at its own instant"
    );
    let weekly = sched("0 6 * * 1");
    assert_eq!(
        weekly.last_due(t("2026-11-23T05:59:00Z")),
        Some(t("2026-11-16T06:00:00Z"))
    );
    assert_eq!(
        sched("0 3 * * *").last_due(t("2026-03-01T02:00:00Z")),
        Some(t("2026-02-28T03:00:00Z"))
    );

    let daily = sched("0 3 * * *");
    // Down from Friday to Monday 09:00: one run now, not three.
    let now = t("2026-11-23T09:00:00Z");
    assert!(is_due(&daily, now, Some(t("2026-11-20T03:00:05Z"))));
    assert!(is_due(&daily, now, None));
    // After that run, nothing until tomorrow 03:00.
    assert!(!is_due(&daily, now + Duration::minutes(1), Some(now)));
    assert!(!is_due(&daily, t("2026-11-24T02:59:00Z"), Some(now)));
    assert!(is_due(&daily, t("2026-11-24T03:00:00Z"), Some(now)));
    assert!(!is_due(
        &every5,
        t("2026-11-23T10:09:00Z"),
        Some(t("2026-11-23T10:05:01Z"))
    ));
    assert!(is_due(
        &every5,
        t("2026-11-23T10:10:00Z"),
        Some(t("2026-11-23T10:05:01Z"))
    ));
}

const BASE_ENV: [(&str, &str); 2] = [
    (
        "DATABASE_URL",
        "postgres://platform_workers@127.0.0.1:5432/platform",
    ),
    ("CRON_SECRET", "0123456789abcdef0123456789abcdef"),
];

#[test]
fn a_job_is_overridden_from_the_environment_or_the_file() {
    let env = MapEnv::from_pairs(
        BASE_ENV
            .into_iter()
            .chain([("CRON_PROCESS_EMAILS", "*/10 * * * *")]),
    );
    let config: WorkersConfig = load(None, &env).unwrap();
    let s = Schedules::from_config(&config.cron).unwrap();
    assert_eq!(
        s.get(CronJob::ProcessEmails)
            .next_due(t("2026-11-23T10:05:00Z")),
        Some(t("2026-11-23T10:10:00Z"))
    );
    assert_eq!(
        s.get(CronJob::ProcessEmails)
            .next_due(t("2026-11-23T10:10:00Z")),
        Some(t("2026-11-23T10:20:00Z"))
    );
    // The others keep the seeds' schedules.
    assert_eq!(s.get(CronJob::CleanupSessions).as_str(), "0 3 * * *");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("workers.toml");
    std::fs::write(&file, "[cron]\ngenerate_reports = \"30 7 * * FRI\"\n").unwrap();
    let config: WorkersConfig = load(Some(&file), &MapEnv::from_pairs(BASE_ENV)).unwrap();
    let s = Schedules::from_config(&config.cron).unwrap();
    // 2026-11-27 is a Friday.
    assert_eq!(
        s.get(CronJob::GenerateReports)
            .next_due(t("2026-11-23T06:00:00Z")),
        Some(t("2026-11-27T07:30:00Z"))
    );
    assert_eq!(s.get(CronJob::ProcessEmails).as_str(), "*/5 * * * *");

    std::fs::write(&file, "[cron]\nreports = \"0 6 * * 1\"\n").unwrap();
    let err = load::<WorkersConfig>(Some(&file), &MapEnv::from_pairs(BASE_ENV))
        .unwrap_err()
        .to_string();
    assert!(err.contains("reports"), "an unknown job is refused: {err}");
}

fn workers(envs: &[(&str, &str)], command: &str) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_workers"))
        .env_clear()
        .envs(BASE_ENV)
        .envs(envs.iter().copied())
        .arg(command)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_expression_stops_check_config_and_start_naming_the_job() {
    let (code, err) = workers(&[("CRON_PROCESS_DONATIONS", "15 * * * *")], "check-config");
    assert_eq!(code, Some(0), "{err}");
    for command in ["check-config", "run"] {
        for (env, value, field) in [
            (
                "CRON_CLEANUP_SESSIONS",
                "0 25 * * *",
                "cron.cleanup_sessions",
            ),
            (
                "CRON_GENERATE_REPORTS",
                "0 0 31 2 *",
                "cron.generate_reports",
            ),
            (
                "CRON_PROCESS_EMAILS",
                "every 5 minutes",
                "cron.process_emails",
            ),
        ] {
            let (code, err) = workers(&[(env, value)], command);
            assert_eq!(code, Some(64), "{command} {env}={value}: {err}");
            assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
            assert!(err.contains(field), "{command} names {field}: {err}");
        }
    }
}
