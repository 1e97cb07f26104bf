//! Restart delays: exponential, capped, with jitter.

use std::time::Duration;

use super::plan::Backoff;

/// The shortest delay before a restart, whatever the backoff says (`initial = 0`, a jitter of
/// 1): a program that crashes at once must not make the supervisor spin on it.
pub const MIN_DELAY: Duration = Duration::from_millis(100);

/// The delay before restart number `attempt` (0 for the first restart), at least `MIN_DELAY` (100 ms, so that a crash loop with a zero backoff cannot spin).
/// `unit` is a uniform draw in [0, 1) that spreads the delay by ± `jitter`.
pub fn delay(backoff: &Backoff, attempt: u32, unit: f64) -> Duration {
    let base = backoff.initial.as_secs_f64() * backoff.factor.powi(i32::try_from(attempt).unwrap_or(i32::MAX));
    let capped = base.min(backoff.max.as_secs_f64());
    let spread = 1.0 + backoff.jitter * (2.0 * unit - 1.0);
    Duration::try_from_secs_f64((capped * spread).max(0.0)).unwrap_or(backoff.max).max(MIN_DELAY)
}

/// A small deterministic generator (xorshift64*): jitter needs spread, not cryptography, and a
/// seed makes the supervisor's decisions reproducible in tests.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// A generator whose draws follow from `seed`.
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed | 1)
    }

    /// A uniform draw in [0, 1).
    pub fn next_unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        bits as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_the_factor_up_to_the_cap() {
        let backoff =
            Backoff { initial: Duration::from_millis(100), factor: 2.0, max: Duration::from_secs(1), jitter: 0.0 };
        let delays: Vec<u128> = (0..6).map(|n| delay(&backoff, n, 0.5).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn no_delay_is_below_the_floor() {
        let backoff = Backoff { initial: Duration::ZERO, factor: 1.0, max: Duration::ZERO, jitter: 1.0 };
        assert_eq!(delay(&backoff, 0, 0.0), MIN_DELAY);
        assert_eq!(delay(&backoff, 5, 0.99), MIN_DELAY);
    }

    #[test]
    fn jitter_spreads_within_its_bounds() {
        let backoff =
            Backoff { initial: Duration::from_secs(1), factor: 2.0, max: Duration::from_secs(10), jitter: 0.2 };
        let mut jitter = Jitter::new(7);
        for _ in 0..1000 {
            let d = delay(&backoff, 0, jitter.next_unit()).as_secs_f64();
            assert!((0.8..=1.2).contains(&d), "{d}");
        }
        assert_eq!(delay(&backoff, 0, 0.0), Duration::from_millis(800));
    }
}
