//! Data-parallel training of the toy CNF over a [`Collective`] (threads of one process, or the
//! ranks of an MPI job with the `mpi` feature).
//!
//! Every rank draws the same global batch `x_1 … x_B` from the seeded stream and takes its
//! rows `[⌊rB/R⌋, ⌊(r+1)B/R⌋)`. With `L_r` the mean NLL over rank `r`'s `B_r` rows, the global
//! mean NLL and its gradient are
//!
//! ```text
//!     L = Σ_r (B_r / B) L_r,        ∇θ L = Σ_r (B_r / B) ∇θ L_r,
//! ```
//!
//! summed in `f64` by **one** allreduce per iteration (with the loss and the evaluation counts
//! riding along in the same buffer). Every rank then applies the same Adam step to the same
//! parameters, so they stay identical without being broadcast. Each rank solves its rows as
//! one ODE system with its own adaptive steps, as torch DDP does; the result therefore equals
//! one process computing the same `R` row blocks (bit for bit for `R ≤ 2`, to rounding
//! otherwise), and a single solve of the whole batch to the solver's tolerance.
//!
//! Checkpoints hold the global configuration and batch stream, so a run resumes with any
//! number of ranks ([`DataParallel::resume`]).

use crate::Float;
use crate::collective::Collective;
use crate::error::{NnError, Result};
use crate::train::{IterationRecord, TrainConfig, Trainer};
use adjoint::Method;
use std::path::Path;
use std::time::Instant;

/// Rank `rank`'s rows of a batch of `batch` split over `ranks`.
pub fn rows_of(rank: usize, ranks: usize, batch: usize) -> std::ops::Range<usize> {
    rank * batch / ranks..(rank + 1) * batch / ranks
}

/// The allreduce of a data-parallel step: replaces `gradient` by `Σ_r weight_r · gradient_r`
/// and `extras` by `Σ_r w_r(i) · extras_r[i]`, where the first `weighted` extras are weighted
/// like the gradient (a mean loss) and the rest summed as they are (counts); one allreduce of
/// one `f64` buffer (`buf`, reused). Returns the seconds it took (waiting for the slowest rank
/// included).
pub fn allreduce_weighted<T: Float, C: Collective>(
    group: &mut C,
    weight: f64,
    gradient: &mut [T],
    extras: &mut [f64],
    weighted: usize,
    buf: &mut Vec<f64>,
) -> Result<f64> {
    let p = gradient.len();
    buf.clear();
    buf.extend(
        gradient
            .iter()
            .map(|&g| weight * <T as rk::Scalar>::as_f64(g)),
    );
    buf.extend(
        extras
            .iter()
            .enumerate()
            .map(|(i, &x)| if i < weighted { weight * x } else { x }),
    );
    let start = Instant::now();
    group.sum_in_place(buf)?;
    let seconds = start.elapsed().as_secs_f64();
    for (g, &b) in gradient.iter_mut().zip(&buf[..p]) {
        *g = <T as rk::Scalar>::of(b);
    }
    extras.copy_from_slice(&buf[p..]);
    Ok(seconds)
}

/// One iteration of a data-parallel run, as every rank sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParallelRecord {
    /// The global record: loss of the whole batch; evaluation counts and stored floats summed
    /// over the ranks; the iteration's wall time on this rank.
    pub record: IterationRecord,
    /// Seconds of the iteration spent in the allreduce (waiting for the slowest rank
    /// included).
    pub allreduce_seconds: f64,
}

/// One rank of a data-parallel toy-CNF run.
pub struct DataParallel<T: Float, C: Collective> {
    trainer: Trainer<T>,
    group: C,
    buf: Vec<f64>,
}

impl<T: Float, C: Collective> DataParallel<T, C> {
    /// A run of `config` (its `batch` is the global batch) on rank `group.rank()`: the same
    /// initial weights on every rank (from `config.seed`, or `init`).
    pub fn new(
        config: TrainConfig,
        method: Method,
        init: Option<Vec<T>>,
        group: C,
    ) -> Result<Self> {
        Self::from_trainer(Trainer::new(config, method, init)?, group)
    }

    /// Continues a run from a checkpoint of [`DataParallel::save_checkpoint`] (or of a
    /// single-process [`Trainer`]) on this group, whatever number of ranks wrote it.
    pub fn resume(path: impl AsRef<Path>, method: Method, group: C) -> Result<Self> {
        Self::from_trainer(Trainer::resume(path, method)?, group)
    }

    fn from_trainer(mut trainer: Trainer<T>, group: C) -> Result<Self> {
        let (rank, ranks) = (group.rank(), group.ranks());
        let batch = trainer.config().batch;
        if ranks == 0 || rank >= ranks || batch < ranks {
            return Err(NnError::Invalid {
                name: "data-parallel group".into(),
                reason: format!(
                    "rank {rank} of {ranks} cannot take a share of a batch of {batch} (every rank needs at least one row)"
                ),
            });
        }
        trainer.set_rows(rows_of(rank, ranks, batch))?;
        let buf = Vec::new();
        Ok(Self {
            trainer,
            group,
            buf,
        })
    }

    /// This rank's trainer (parameters, test NLL, layout).
    pub fn trainer(&mut self) -> &mut Trainer<T> {
        &mut self.trainer
    }

    /// The group.
    pub fn group(&self) -> &C {
        &self.group
    }

    /// Ends the run, giving the group back (e.g. to [`crate::LocalGroup::finish`] it).
    pub fn into_group(self) -> C {
        self.group
    }

    /// Whether this is rank 0, the one that writes reports and checkpoints.
    pub fn is_root(&self) -> bool {
        self.group.rank() == 0
    }

    /// One iteration: the next global batch, this rank's gradient on its rows, one allreduce,
    /// the same Adam step on every rank.
    pub fn step(&mut self) -> Result<ParallelRecord> {
        let start = Instant::now();
        let x = self.trainer.next_batch();
        let part = self.trainer.rows_gradient(&x)?;
        let rows = self.trainer.rows().len();
        let weight = rows as f64 / self.trainer.config().batch as f64;
        let mut gradient = part.gradient.clone();
        let info = &part.info;
        let mut extras = [
            part.loss,
            info.nfe_forward as f64,
            info.nfe_backward as f64,
            info.vjp_backward as f64,
            info.stored_floats as f64,
        ];
        let allreduce_seconds = allreduce_weighted(
            &mut self.group,
            weight,
            &mut gradient,
            &mut extras,
            1,
            &mut self.buf,
        )?;
        self.trainer.apply_gradient(&gradient)?;
        let e = extras;
        let mut record = part.record(self.trainer.iteration(), start.elapsed().as_secs_f64());
        record.loss = e[0];
        record.nfe_forward = e[1] as usize;
        record.nfe_backward = e[2] as usize;
        record.vjp_backward = e[3] as usize;
        record.stored_floats = e[4] as usize;
        Ok(ParallelRecord {
            record,
            allreduce_seconds,
        })
    }

    /// Writes a checkpoint on rank 0 (atomically, [`Trainer::save_checkpoint`]); the other
    /// ranks write nothing. Every rank holds the same state, so any could.
    pub fn save_checkpoint(&self, path: impl AsRef<Path>) -> Result<()> {
        if self.is_root() {
            self.trainer.save_checkpoint(path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collective::{LocalGroup, SingleProcess};
    use adjoint::BackwardNorm;

    fn config(batch: usize, tol: f64) -> TrainConfig {
        TrainConfig {
            batch,
            rtol: tol,
            atol: tol,
            test_size: 16,
            seed: 5,
            ..TrainConfig::default()
        }
    }

    fn irdm() -> Method {
        Method::irdm_lobatto(15, BackwardNorm::Seminorm)
    }

    /// `ranks` threads train `iters` iterations; rank 0's losses and parameters.
    fn group_run<T: Float>(
        config: &TrainConfig,
        method: Method,
        ranks: usize,
        iters: usize,
    ) -> (Vec<f64>, Vec<T>) {
        let groups = LocalGroup::new(ranks).unwrap();
        let mut outs: Vec<(Vec<f64>, Vec<T>)> = std::thread::scope(|s| {
            let joins: Vec<_> = groups
                .into_iter()
                .map(|g| {
                    s.spawn(move || {
                        let mut run =
                            DataParallel::<T, _>::new(config.clone(), method, None, g).unwrap();
                        let losses = (0..iters)
                            .map(|_| run.step().unwrap().record.loss)
                            .collect();
                        let params = run.trainer().params().to_vec();
                        run.into_group().finish();
                        (losses, params)
                    })
                })
                .collect();
            joins.into_iter().map(|j| j.join().unwrap()).collect()
        });
        for o in &outs[1..] {
            assert_eq!(o.0, outs[0].0, "every rank sees the same losses");
            assert!(o.1 == outs[0].1, "every rank holds the same parameters");
        }
        outs.swap_remove(0)
    }

    /// `‖a − b‖₂ / ‖b‖₂`.
    fn norm_rel(a: &[f64], b: &[f64]) -> f64 {
        let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
        let n: f64 = b.iter().map(|y| y * y).sum();
        (d / n).sqrt()
    }

    fn max_rel(a: &[f64], b: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(1e-300))
            .fold(0.0, f64::max)
    }

    #[test]
    fn one_rank_is_the_plain_trainer_bit_for_bit() {
        let c = config(40, 1e-5);
        let mut plain = Trainer::<f32>::new(c.clone(), irdm(), None).unwrap();
        let mut one = DataParallel::<f32, _>::new(c, irdm(), None, SingleProcess).unwrap();
        for _ in 0..5 {
            let a = plain.step().unwrap();
            let b = one.step().unwrap().record;
            assert_eq!(
                (a.loss, a.nfe_forward, a.vjp_backward),
                (b.loss, b.nfe_forward, b.vjp_backward)
            );
        }
        assert!(plain.params() == one.trainer().params());
    }

    #[test]
    fn ranks_agree_with_one_solve_of_the_whole_batch_to_the_tolerance() {
        // f64 at a tight tolerance: each rank's own adaptive solve of its rows against one
        // solve of all rows differ only by the solver's error.
        for method in [
            irdm(),
            Method::Rdm {
                norm: BackwardNorm::Full,
            },
        ] {
            let c = config(48, 1e-10);
            let mut plain = Trainer::<f64>::new(c.clone(), method, None).unwrap();
            let losses: Vec<f64> = (0..8).map(|_| plain.step().unwrap().loss).collect();
            for ranks in [2, 3] {
                let (l, p) = group_run::<f64>(&c, method, ranks, 8);
                assert!(
                    max_rel(&l, &losses) < 1e-7,
                    "{ranks} ranks: {l:?} vs {losses:?}"
                );
                let e = norm_rel(&p, plain.params());
                assert!(e < 1e-7, "{ranks} ranks: parameters {e:e}");
            }
        }
    }

    #[test]
    fn a_checkpoint_resumes_on_another_number_of_ranks() {
        let c = config(30, 1e-10);
        let (reference, final_params) = group_run::<f64>(&c, irdm(), 2, 6);
        let dir = std::env::temp_dir().join(format!("nn-dp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ckpt.safetensors");
        // Three iterations on two ranks, checkpoint on rank 0, three more on three ranks.
        let groups = LocalGroup::new(2).unwrap();
        std::thread::scope(|s| {
            for g in groups {
                let (c, path) = (&c, &path);
                s.spawn(move || {
                    let mut run = DataParallel::<f64, _>::new(c.clone(), irdm(), None, g).unwrap();
                    for _ in 0..3 {
                        run.step().unwrap();
                    }
                    run.save_checkpoint(path).unwrap();
                    run.into_group().finish();
                });
            }
        });
        let groups = LocalGroup::new(3).unwrap();
        let resumed: Vec<(Vec<f64>, Vec<f64>)> = std::thread::scope(|s| {
            let joins: Vec<_> = groups
                .into_iter()
                .map(|g| {
                    let path = &path;
                    s.spawn(move || {
                        let mut run = DataParallel::<f64, _>::resume(path, irdm(), g).unwrap();
                        assert_eq!(run.trainer().iteration(), 3);
                        let l = (0..3).map(|_| run.step().unwrap().record.loss).collect();
                        let p = run.trainer().params().to_vec();
                        run.into_group().finish();
                        (l, p)
                    })
                })
                .collect();
            joins.into_iter().map(|j| j.join().unwrap()).collect()
        });
        assert!(
            max_rel(&resumed[0].0, &reference[3..]) < 1e-7,
            "{resumed:?} vs {reference:?}"
        );
        assert!(norm_rel(&resumed[0].1, &final_params) < 1e-7);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failing_rank_stops_the_others_with_its_number() {
        let c = config(20, 1e-5);
        let groups = LocalGroup::new(2).unwrap();
        let errors: Vec<Option<String>> = std::thread::scope(|s| {
            let joins: Vec<_> = groups
                .into_iter()
                .map(|g| {
                    let c = &c;
                    s.spawn(move || {
                        let rank = g.rank();
                        let mut run =
                            DataParallel::<f32, _>::new(c.clone(), irdm(), None, g).unwrap();
                        for i in 0..10 {
                            if rank == 1 && i == 3 {
                                return None; // rank 1 stops: its group handle is dropped
                            }
                            if let Err(e) = run.step() {
                                return Some(e.to_string());
                            }
                        }
                        run.into_group().finish();
                        None
                    })
                })
                .collect();
            joins.into_iter().map(|j| j.join().unwrap()).collect()
        });
        let e = errors[0].as_deref().expect("rank 0 fails");
        assert!(e.contains("rank 1"), "{e}");
    }

    #[test]
    fn more_ranks_than_rows_is_an_error() {
        let mut groups = LocalGroup::new(3).unwrap();
        let g = groups.remove(0);
        for h in groups {
            h.finish();
        }
        let err = DataParallel::<f32, _>::new(config(2, 1e-5), irdm(), None, g)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("at least one row"), "{err}");
    }
}
