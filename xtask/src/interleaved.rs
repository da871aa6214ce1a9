//! What the suites that train several methods side by side share (tabular, VAE): one learner
//! per method, all from the same initial weights, each taking one Adam step per round on the
//! same batch, so that machine noise hits every method alike; batches drawn epoch by epoch
//! from a seeded permutation of the training rows; and the per-method summary of the records.

use crate::results::{NfePoint, Summary};
use crate::toy::median;
use nn::Rng;
use nn::optim::{Adam, AdamConfig, Optimizer};
use std::time::Instant;

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// One iteration's counts, training loss and seconds (gradient and update).
pub type Record = (adjoint::Info, f64, f64);

/// One method's model, parameters, optimizer and records; `P` is the suite's test point.
pub struct Learner<M, T, P> {
    /// The model (each learner its own work space).
    pub model: M,
    /// Parameters.
    pub params: Vec<T>,
    adam: Adam<T>,
    /// Every iteration's record.
    pub records: Vec<Record>,
    /// Training time so far (evaluations excluded), seconds.
    pub clock: f64,
    /// Test evaluations so far.
    pub curve: Vec<P>,
}

/// `n` learners of copies of `template`, all from `init`, with Adam at learning rate `lr`.
pub fn learners<M: Clone, T: nn::Float, P>(
    n: usize,
    template: &M,
    init: &[T],
    lr: f64,
) -> AnyResult<Vec<Learner<M, T, P>>> {
    let config = AdamConfig {
        lr,
        ..AdamConfig::default()
    };
    (0..n)
        .map(|_| {
            Ok(Learner {
                model: template.clone(),
                params: init.to_vec(),
                adam: Adam::new(init.len(), config)?,
                records: Vec::new(),
                clock: 0.0,
                curve: Vec::new(),
            })
        })
        .collect()
}

impl<M, T: nn::Float, P> Learner<M, T, P> {
    /// One timed iteration: `gradient(model, params)` gives `(dL/dθ, counts, loss)`, then an
    /// Adam step; the record is kept.
    pub fn step(
        &mut self,
        gradient: impl FnOnce(&mut M, &[T]) -> AnyResult<(Vec<T>, adjoint::Info, f64)>,
    ) -> AnyResult<()> {
        let start = Instant::now();
        let (g, info, loss) = gradient(&mut self.model, &self.params)?;
        self.adam.step(&mut self.params, &g)?;
        let dt = start.elapsed().as_secs_f64();
        self.clock += dt;
        self.records.push((info, loss, dt));
        Ok(())
    }

    /// The summary of the records so far.
    pub fn summary(&self) -> Summary {
        let n = self.records.len().max(1) as f64;
        let mean = |f: fn(&adjoint::Info) -> usize| {
            self.records.iter().map(|r| f(&r.0) as f64).sum::<f64>() / n
        };
        let mut times: Vec<f64> = self.records.iter().map(|r| r.2).collect();
        Summary {
            iters: self.records.len(),
            time_per_iter_median_s: median(&mut times),
            time_total_s: self.clock,
            nfe_fwd_mean: mean(|i| i.nfe_forward),
            nfe_bwd_mean: mean(|i| i.nfe_backward),
            vjp_bwd_mean: mean(|i| i.vjp_backward),
            nfe_curve: NfePoint::binned(&self.records, 20),
        }
    }
}

/// Batches of training-row indices: each epoch a fresh seeded permutation of the rows, cut into
/// whole batches (a remainder smaller than a batch is skipped).
pub struct BatchOrder {
    rng: Rng,
    rows: usize,
    order: Vec<usize>,
    next: usize,
}

impl BatchOrder {
    /// Batches of `rows` rows from the seed `seed`.
    pub fn new(rows: usize, seed: u64) -> Self {
        Self {
            rng: Rng::new(seed),
            rows,
            order: Vec::new(),
            next: 0,
        }
    }

    /// The row indices of the next batch of `batch` (at most `rows`).
    pub fn next_batch(&mut self, batch: usize) -> &[usize] {
        if self.next + batch > self.order.len() {
            self.order = self.rng.permutation(self.rows);
            self.next = 0;
        }
        let b = &self.order[self.next..(self.next + batch).min(self.rows)];
        self.next += batch;
        b
    }
}

#[cfg(test)]
mod tests {
    use super::BatchOrder;

    #[test]
    fn every_epoch_visits_each_row_once() {
        let mut order = BatchOrder::new(10, 3);
        for _ in 0..3 {
            let mut seen: Vec<usize> = (0..3).flat_map(|_| order.next_batch(3).to_vec()).collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), 9);
            assert!(seen.iter().all(|&r| r < 10));
        }
    }
}
