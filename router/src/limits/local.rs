//! The in-process fallback: the same nginx arithmetic on a capped, sharded map, used while
//! Redis is unreachable. Limits are divided by the number of instances, so the fleet as a
//! whole stays near the configured rate.
//!
//! Memory is bounded: each shard holds at most `cap` keys. A full shard first drops keys whose
//! state has drained back to a new key's (at most one sweep a second), then evicts an arbitrary
//! key; an evicted client starts again as new, which only ever lets it through sooner.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use super::gcra::{self, Node, Params, Verdict};

const SHARDS: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Slot {
    node: Node,
    /// After this (ms) the state is a new key's and may be dropped.
    expires: i64,
}

struct Shard {
    map: HashMap<Box<str>, Slot, ahash::RandomState>,
    last_sweep: i64,
}

/// The local limiter.
pub struct Local {
    shards: Vec<Mutex<Shard>>,
    cap: usize,
    hasher: ahash::RandomState,
    epoch: Instant,
}

impl Local {
    /// At most `max_keys` keys in all.
    pub fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::default(),
                        last_sweep: 0,
                    })
                })
                .collect(),
            cap: max_keys.div_ceil(SHARDS).max(1),
            hasher: ahash::RandomState::new(),
            epoch: Instant::now(),
        }
    }

    /// Milliseconds on this process's monotonic clock.
    pub fn now_ms(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    fn shard_of(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) as usize) % SHARDS
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).map.len())
            .sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One request over its zones (`keys[i]` with `params[i]`), at the current time.
    pub fn check(&self, keys: &[String], params: &[Params]) -> Verdict {
        self.check_at(keys, params, self.now_ms())
    }

    /// As [`Local::check`], at `now`. Every shard involved is locked (in index order, so two
    /// requests never wait on each other crosswise) for the whole decision, so concurrent
    /// requests on one key are counted exactly.
    pub fn check_at(&self, keys: &[String], params: &[Params], now: i64) -> Verdict {
        let idx: Vec<usize> = keys.iter().map(|k| self.shard_of(k)).collect();
        let mut order = idx.clone();
        order.sort_unstable();
        order.dedup();
        let mut guards: Vec<(usize, MutexGuard<'_, Shard>)> = order
            .iter()
            .map(|&i| (i, self.shards[i].lock().unwrap_or_else(|e| e.into_inner())))
            .collect();
        let slot_of = |shard: usize| order.binary_search(&shard).unwrap_or(0);
        let mut nodes: Vec<Option<Node>> = keys
            .iter()
            .zip(&idx)
            .map(|(k, &s)| guards[slot_of(s)].1.map.get(k.as_str()).map(|e| e.node))
            .collect();
        let verdict = gcra::check(params, &mut nodes, now);
        if let Verdict::Pass { excess, .. } = &verdict {
            for (i, key) in keys.iter().enumerate() {
                let Some(node) = nodes[i] else { continue };
                let expires = now.saturating_add(
                    i64::try_from(gcra::keep_ms(&params[i], excess[i])).unwrap_or(i64::MAX),
                );
                let shard = &mut guards[slot_of(idx[i])].1;
                shard.put(key, Slot { node, expires }, self.cap, now);
            }
        }
        verdict
    }
}

impl Shard {
    fn put(&mut self, key: &str, slot: Slot, cap: usize, now: i64) {
        if let Some(s) = self.map.get_mut(key) {
            *s = slot;
            return;
        }
        if self.map.len() >= cap {
            if now - self.last_sweep >= 1_000 {
                self.last_sweep = now;
                self.map.retain(|_, s| s.expires > now);
            }
            if self.map.len() >= cap {
                if let Some(k) = self.map.keys().next().cloned() {
                    self.map.remove(&k);
                }
            }
        }
        self.map.insert(key.into(), slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::gcra::NODELAY;

    #[test]
    fn memory_stays_bounded_under_many_keys() {
        let l = Local::new(1_600);
        let p = [Params {
            rate: 1_000,
            burst: 5_000,
            delay: NODELAY,
        }];
        for i in 0..50_000 {
            l.check_at(&[format!("k{i}")], &p, i64::from(i) / 10);
        }
        assert!(l.len() <= 1_600, "{}", l.len());
    }

    #[test]
    fn one_key_is_limited_at_burst_plus_one() {
        let l = Local::new(1_000);
        let p = [Params {
            rate: 1_000,
            burst: 2_000,
            delay: NODELAY,
        }];
        let k = ["a".to_owned()];
        let passed = (0..10)
            .filter(|_| matches!(l.check_at(&k, &p, 100), Verdict::Pass { .. }))
            .count();
        assert_eq!(passed, 3);
    }
}
