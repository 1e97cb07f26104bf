//! Parking without losing a wake-up (docs/SHM.md §5). A side that finds its ring empty (or
//! full) marks itself parked, fences, and looks again before it waits; a side that publishes
//! fences, then looks whether the other is parked and rings it. The two seq_cst fences order
//! "mark, look" against "publish, look": one of the two sides sees the other. Plain logic over
//! the `sleep` words; the stream halves do the waiting and the ringing.

use std::sync::atomic::{AtomicU32, Ordering, fence};

/// One side's parks: each gets a new odd value of its `sleep` word, so that the other side
/// rings at most once per park however often it publishes meanwhile.
#[derive(Debug, Default)]
pub(crate) struct Parker {
    parks: u32,
}

impl Parker {
    /// Marks this side parked. The caller then looks at its ring again before it waits.
    pub fn park(&mut self, own: &AtomicU32) {
        self.parks = self.parks.wrapping_add(1);
        own.store(self.parks.wrapping_mul(2).wrapping_sub(1), Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Marks this side awake (it found what it waited for, or was rung).
    pub fn unpark(&self, own: &AtomicU32) {
        own.store(self.parks.wrapping_mul(2), Ordering::Relaxed);
    }
}

/// Whether to ring the other side after publishing.
#[derive(Debug, Default)]
pub(crate) struct Ringer {
    last_rung: u32,
}

impl Ringer {
    /// After a publish: true if the other side is parked, and not yet rung for this park.
    pub fn should_ring(&mut self, peer: &AtomicU32) -> bool {
        fence(Ordering::SeqCst);
        let sleep = peer.load(Ordering::Relaxed);
        if sleep % 2 == 1 && sleep != self.last_rung {
            self.last_rung = sleep;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The protocol on a sequentially consistent model, every interleaving of the consumer's
    /// steps (park, look) with the producer's (publish, look-and-ring): the consumer either
    /// sees the data when it looks again, or is rung. Never neither.
    #[test]
    fn every_interleaving_wakes() {
        // Consumer: 0 = park (odd sleep), 1 = look at tail. Producer: 0 = publish, 1 = look at sleep.
        for order in 0u32..(1 << 4) {
            let steps: Vec<bool> = (0..4).map(|i| order & (1 << i) != 0).collect();
            if steps.iter().filter(|&&consumer| consumer).count() != 2 {
                continue;
            }
            let (sleep, mut parker, mut ringer) = (AtomicU32::new(0), Parker::default(), Ringer::default());
            let (mut published, mut saw_data, mut rung) = (false, false, false);
            let (mut consumer_step, mut producer_step) = (0, 0);
            for consumer in steps {
                if consumer {
                    match consumer_step {
                        0 => parker.park(&sleep),
                        _ => saw_data = published,
                    }
                    consumer_step += 1;
                } else {
                    match producer_step {
                        0 => published = true,
                        _ => rung = ringer.should_ring(&sleep),
                    }
                    producer_step += 1;
                }
            }
            assert!(saw_data || rung, "interleaving {order:04b}: the consumer would wait forever");
        }
    }

    #[test]
    fn a_park_is_rung_once_however_often_the_peer_publishes() {
        let (sleep, mut parker, mut ringer) = (AtomicU32::new(0), Parker::default(), Ringer::default());
        assert!(!ringer.should_ring(&sleep), "not parked");
        parker.park(&sleep);
        assert!(ringer.should_ring(&sleep));
        assert!(!ringer.should_ring(&sleep), "already rung for this park");
        parker.unpark(&sleep);
        parker.park(&sleep);
        assert!(ringer.should_ring(&sleep), "a new park");
    }
}
