//! Batch sharding for the host right-hand sides: a batch of `B` independent points is cut into
//! `P` contiguous shards `[s_p, s_{p+1})` of nearly equal size, each evaluated by its own copy
//! of the net (its own workspace) on rayon's pool. Per-point outputs (`f`, the divergence,
//! `aᵀ∂f/∂z`) are the shards' outputs side by side; the parameter cotangent is a sum over
//! points, so `aᵀ∂f/∂θ = Σ_p (aᵀ∂f/∂θ)_p`, added in shard order. Results differ from the
//! sequential ones only by that reassociation (and by the row blocking of the products).

use std::ops::Range;

/// Fewest points a shard gets. Below this a shard's products are too small to pay for the
/// hand-off. Measured on a 2-core machine with the toy CNF (trained weights, a whole training
/// iteration, `cargo run --release -p benches --example profile_toy -- METHOD 200 BATCH 1|2`):
/// two shards are 1.6–1.8× faster than one at batch 100, 1.45× at batch 64 and 1.5× at batch
/// 40 (20 points a shard), and 1.9–2.0× at batch 1000, so the floor sits at 16 points.
pub const MIN_POINTS_PER_SHARD: usize = 16;

/// A thread count with `0` read as every logical CPU.
pub fn resolve_threads(threads: usize) -> usize {
    if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    }
}

/// Shards for `batch` points on `threads` threads (`threads = 0` means rayon's pool size):
/// `min(threads, batch / MIN_POINTS_PER_SHARD)`, at least one.
pub fn shard_count(batch: usize, threads: usize) -> usize {
    let threads = if threads == 0 {
        rayon::current_num_threads()
    } else {
        threads
    };
    threads.min(batch / MIN_POINTS_PER_SHARD).max(1)
}

/// The point ranges of `parts` nearly equal contiguous shards of `batch` points (the first
/// `batch mod parts` get one point more).
pub fn ranges(batch: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.clamp(1, batch.max(1));
    let (base, extra) = (batch / parts, batch % parts);
    let mut start = 0;
    (0..parts)
        .map(|p| {
            let len = base + usize::from(p < extra);
            let r = start..start + len;
            start += len;
            r
        })
        .collect()
}

/// Runs `jobs` at once: all but the last on rayon's pool, the last on the calling thread, and
/// returns when all are done.
pub fn run_all<J: FnOnce() + Send>(mut jobs: Vec<J>) {
    let last = jobs.pop();
    rayon::in_place_scope(|s| {
        for job in jobs {
            s.spawn(move |_| job());
        }
        if let Some(job) = last {
            job();
        }
    });
}

/// `out = Σ_p parts[p]`, added in order (`out` is overwritten; no parts leaves it zero).
pub fn sum_into<'a, T: crate::Float + 'a>(out: &mut [T], parts: impl Iterator<Item = &'a [T]>) {
    out.fill(T::zero());
    for part in parts {
        for (o, &p) in out.iter_mut().zip(part) {
            *o += p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_tile_the_batch_in_nearly_equal_pieces() {
        for batch in [1, 2, 7, 16, 100, 1001] {
            for parts in 1..6 {
                let r = ranges(batch, parts);
                assert_eq!(r.len(), parts.min(batch));
                assert_eq!(r[0].start, 0);
                assert_eq!(r.last().unwrap().end, batch);
                for w in r.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                    assert!(w[0].len() >= w[1].len() && w[0].len() <= w[1].len() + 1);
                }
            }
        }
    }

    #[test]
    fn shard_count_keeps_shards_large_enough() {
        assert_eq!(shard_count(1000, 1), 1);
        assert_eq!(shard_count(1000, 2), 2);
        assert_eq!(shard_count(1000, 64), 1000 / MIN_POINTS_PER_SHARD);
        assert_eq!(shard_count(3, 8), 1);
        assert_eq!(shard_count(MIN_POINTS_PER_SHARD * 2 - 1, 2), 1);
    }

    #[test]
    fn sum_adds_every_part() {
        let parts = [vec![1.0f64, 2.0], vec![10.0, 20.0]];
        let mut out = [5.0; 2];
        sum_into(&mut out, parts.iter().map(|p| p.as_slice()));
        assert_eq!(out, [11.0, 22.0]);
    }
}
