//! nginx `limit_req` arithmetic (`ngx_http_limit_req_module.c`), which is GCRA with emission
//! interval 1/rate and tolerance burst/rate, kept in nginx's integer units so decisions match
//! nginx's for the same arrival times.
//!
//! State per key is `excess` in milli-requests and `last`, the time in milliseconds of the last
//! accounted request. A request computes `excess = previous − rate·elapsed/1000 + 1000`
//! (floored at 0, integer division) and is rejected when `excess > burst`. A new key starts at
//! 0, so `burst + 1` requests pass at once. `last` only moves when time has passed (nginx's
//! `if (ms) lr->last = now`), so truncated decay is lost exactly as in nginx.
//!
//! Several zones on one request: each is looked at in order without writing; the first that
//! rejects ends it and nothing is written; otherwise every zone is written and the largest
//! delay wins. The same steps run in Redis (`shared.lua`) and in the local fallback.

/// A zone's parameters in nginx's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Milli-requests per second (nginx `ctx->rate`), at least 1.
    pub rate: i64,
    /// Burst in milli-requests (nginx `limit->burst`).
    pub burst: i64,
    /// Excess forwarded without delay, in milli-requests (`nodelay`: effectively infinite).
    pub delay: i64,
}

/// `delay` of a `nodelay` zone (nginx uses `NGX_MAX_INT_T_VALUE / 1000 * 1000`).
pub const NODELAY: i64 = i64::MAX / 1000 * 1000;

/// One key's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    /// Milli-requests above the rate.
    pub excess: i64,
    /// Milliseconds, the clock of whoever keeps the state.
    pub last: i64,
}

/// Elapsed milliseconds as nginx clamps them (a clock that went back a little counts as 0,
/// a lot as 1).
pub fn elapsed(now: i64, last: i64) -> i64 {
    let ms = now.saturating_sub(last);
    if ms < -60_000 {
        1
    } else {
        ms.max(0)
    }
}

/// The excess a request at `now` would leave, without writing (nginx's lookup).
pub fn probe(node: Option<Node>, p: &Params, now: i64) -> i64 {
    match node {
        None => 0,
        Some(n) => {
            let ms = elapsed(now, n.last);
            (n.excess - p.rate.saturating_mul(ms) / 1000 + 1000).max(0)
        }
    }
}

/// The state after accounting a request at `now` that left `excess`.
pub fn commit(node: Option<Node>, now: i64, excess: i64) -> Node {
    match node {
        Some(n) if elapsed(now, n.last) == 0 => Node {
            excess,
            last: n.last,
        },
        _ => Node { excess, last: now },
    }
}

/// The verdict for one request over its zones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Forwarded; `excess[i]` is zone `i`'s new excess; `delay_ms` and the zone that set it.
    Pass {
        /// New excess per zone.
        excess: Vec<i64>,
        /// Milliseconds to hold the request (0: none).
        delay_ms: u64,
        /// The zone with the largest delay.
        delay_zone: Option<usize>,
    },
    /// Rejected by zone `zone` with `excess` (above its burst); nothing was consumed.
    Reject {
        /// Index of the rejecting zone.
        zone: usize,
        /// The excess the request would have left.
        excess: i64,
    },
}

/// nginx's delay for a zone at `excess`: `(excess − delay)·1000/rate` above the delay
/// threshold.
pub fn delay_ms(p: &Params, excess: i64) -> u64 {
    if excess <= p.delay {
        0
    } else {
        u64::try_from((excess - p.delay).saturating_mul(1000) / p.rate).unwrap_or(0)
    }
}

/// The delay over all zones: the largest wins; on a tie the last zone, then the earlier ones
/// in reverse order (nginx's `ngx_http_limit_req_account`).
pub fn pass(params: &[Params], excess: Vec<i64>) -> Verdict {
    let mut best: Option<(u64, usize)> = None;
    for i in (0..params.len()).rev() {
        let d = delay_ms(&params[i], excess[i]);
        if d > 0 && best.is_none_or(|(b, _)| d > b) {
            best = Some((d, i));
        }
    }
    Verdict::Pass {
        excess,
        delay_ms: best.map_or(0, |b| b.0),
        delay_zone: best.map(|b| b.1),
    }
}

/// Milliseconds until a request rejected at `excess` would pass (the decay that brings it to
/// the burst), rounded up.
pub fn wait_ms(p: &Params, excess: i64) -> u64 {
    let over = (excess - p.burst).max(0);
    u64::try_from((over.saturating_mul(1000) + p.rate - 1) / p.rate).unwrap_or(0)
}

/// Milliseconds until the excess has drained to nothing, rounded up.
pub fn drain_ms(p: &Params, excess: i64) -> u64 {
    u64::try_from((excess.max(0).saturating_mul(1000) + p.rate - 1) / p.rate).unwrap_or(0)
}

/// How long a key must be kept: after this its state is the same as a new key's (the next
/// request would compute 0 either way).
pub fn keep_ms(p: &Params, excess: i64) -> u64 {
    drain_ms(p, excess + 1000) + 1000
}

/// Evaluates one request against in-memory nodes (the local fallback, and the reference the
/// Redis script is tested against): lookups first, writes only when every zone passes.
pub fn check(params: &[Params], nodes: &mut [Option<Node>], now: i64) -> Verdict {
    let mut excess = Vec::with_capacity(params.len());
    for (i, p) in params.iter().enumerate() {
        let e = probe(nodes[i], p, now);
        if e > p.burst {
            return Verdict::Reject { zone: i, excess: e };
        }
        excess.push(e);
    }
    for (node, e) in nodes.iter_mut().zip(&excess) {
        *node = Some(commit(*node, now, *e));
    }
    pass(params, excess)
}

#[cfg(test)]
mod tests {
    //! The model: a line-by-line transcription of nginx's handler, lookup and account functions
    //! (single key per zone, nodes never expired), against which [`check`] is compared.
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Copy, Default)]
    struct NgxNode {
        exists: bool,
        excess: i64,
        last: i64,
        count: i64,
    }

    const NGX_BUSY: i32 = -3;
    const NGX_AGAIN: i32 = -2;
    const NGX_OK: i32 = 0;

    /// `ngx_http_limit_req_lookup` for one key.
    fn ngx_lookup(p: &Params, lr: &mut NgxNode, now: i64, ep: &mut i64, account: bool) -> i32 {
        if lr.exists {
            let mut ms = now - lr.last;
            if ms < -60000 {
                ms = 1;
            } else if ms < 0 {
                ms = 0;
            }
            let mut excess = lr.excess - p.rate * ms / 1000 + 1000;
            if excess < 0 {
                excess = 0;
            }
            *ep = excess;
            if excess > p.burst {
                return NGX_BUSY;
            }
            if account {
                lr.excess = excess;
                if ms != 0 {
                    lr.last = now;
                }
                return NGX_OK;
            }
            lr.count += 1;
            return NGX_AGAIN;
        }
        *ep = 0;
        lr.exists = true;
        lr.excess = 0;
        if account {
            lr.last = now;
            lr.count = 0;
            return NGX_OK;
        }
        lr.last = 0;
        lr.count = 1;
        NGX_AGAIN
    }

    /// `ngx_http_limit_req_account`.
    fn ngx_account(
        ps: &[Params],
        nodes: &mut [NgxNode],
        n: usize,
        ep: &mut i64,
        limit: &mut usize,
        now: i64,
    ) -> i64 {
        let mut excess = *ep;
        let mut max_delay = if excess <= ps[*limit].delay {
            0
        } else {
            (excess - ps[*limit].delay) * 1000 / ps[*limit].rate
        };
        let mut n = n;
        while n > 0 {
            n -= 1;
            let lr = &mut nodes[n];
            let mut ms = now - lr.last;
            if ms < -60000 {
                ms = 1;
            } else if ms < 0 {
                ms = 0;
            }
            excess = lr.excess - ps[n].rate * ms / 1000 + 1000;
            if excess < 0 {
                excess = 0;
            }
            if ms != 0 {
                lr.last = now;
            }
            lr.excess = excess;
            lr.count -= 1;
            if excess <= ps[n].delay {
                continue;
            }
            let delay = (excess - ps[n].delay) * 1000 / ps[n].rate;
            if delay > max_delay {
                max_delay = delay;
                *ep = excess;
                *limit = n;
            }
        }
        max_delay
    }

    /// The handler: `Err(zone)` for a rejection, `Ok(delay)` otherwise.
    fn ngx_handler(ps: &[Params], nodes: &mut [NgxNode], now: i64) -> Result<i64, usize> {
        let mut excess = 0;
        let mut rc = NGX_OK;
        let mut n = 0;
        let mut limit = 0;
        while n < ps.len() {
            limit = n;
            let account = n == ps.len() - 1;
            rc = ngx_lookup(&ps[n], &mut nodes[n], now, &mut excess, account);
            if rc != NGX_AGAIN {
                break;
            }
            n += 1;
        }
        if rc == NGX_BUSY {
            for node in nodes.iter_mut().take(n) {
                node.count -= 1;
            }
            return Err(n);
        }
        if rc == NGX_AGAIN {
            excess = 0;
        }
        Ok(ngx_account(ps, nodes, n, &mut excess, &mut limit, now))
    }

    fn params() -> impl Strategy<Value = Params> {
        (
            1i64..=20_000,
            0i64..=30,
            prop_oneof![Just(NODELAY), (0i64..=10).prop_map(|d| d * 1000)],
        )
            .prop_map(|(rate, burst, delay)| Params {
                rate,
                burst: burst * 1000,
                delay,
            })
    }

    fn run_both(ps: &[Params], gaps: &[i64]) {
        let mut ngx = vec![NgxNode::default(); ps.len()];
        let mut ours = vec![None; ps.len()];
        let mut now = 1_000_000_000i64;
        for (step, gap) in gaps.iter().enumerate() {
            now += gap;
            let want = ngx_handler(ps, &mut ngx, now);
            let got = check(ps, &mut ours, now);
            match (&want, &got) {
                (Err(z), Verdict::Reject { zone, .. }) => assert_eq!(z, zone, "step {step}"),
                (Ok(d), Verdict::Pass { delay_ms, .. }) => {
                    assert_eq!(*d as u64, *delay_ms, "step {step}")
                }
                _ => panic!("step {step}: nginx {want:?}, ours {got:?}"),
            }
            for (a, b) in ngx.iter().zip(&ours) {
                if let Some(b) = b {
                    assert_eq!((a.excess, a.last), (b.excess, b.last), "step {step}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn one_zone_matches_nginx(p in params(), gaps in prop::collection::vec(0i64..3_000, 1..80)) {
            run_both(&[p], &gaps);
        }

        #[test]
        fn several_zones_match_nginx(
            ps in prop::collection::vec(params(), 2..4),
            gaps in prop::collection::vec(prop_oneof![0i64..50, 0i64..5_000], 1..80),
        ) {
            run_both(&ps, &gaps);
        }
    }

    #[test]
    fn new_key_lets_burst_plus_one_through() {
        let p = [Params {
            rate: 10_000,
            burst: 20_000,
            delay: NODELAY,
        }];
        let mut n = [None];
        let passed = (0..30)
            .filter(|_| matches!(check(&p, &mut n, 5), Verdict::Pass { .. }))
            .count();
        assert_eq!(passed, 21);
    }

    #[test]
    fn a_later_rejection_consumes_nothing_earlier() {
        let p = [
            Params {
                rate: 1_000,
                burst: 5_000,
                delay: NODELAY,
            },
            Params {
                rate: 1_000,
                burst: 0,
                delay: NODELAY,
            },
        ];
        let mut n = [None, None];
        assert!(matches!(check(&p, &mut n, 0), Verdict::Pass { .. }));
        let before = n;
        assert_eq!(
            check(&p, &mut n, 0),
            Verdict::Reject {
                zone: 1,
                excess: 1000
            }
        );
        assert_eq!(n, before);
    }
}
