//! The tabular suite (paper Fig. 3, appendix B): a multi-block CNF (`nn::multiblock`,
//! softplus, Hutchinson trace) trained on 43-dimensional tabular data by RDM and by IRDM with
//! N ∈ {8, 16, 32} Lobatto nodes, interleaved iteration by iteration with the same initial
//! weights, batches and Hutchinson noise. The data: `--data PATH` (CSV or `.npy`, e.g. MAF's
//! miniboone), else a stand-in with miniboone's shape — Fashion-MNIST's training images
//! projected on their first 43 principal components (`nn::tabular::pca`) — split and
//! standardized as MAF/FFJORD do.

use crate::interleaved::{BatchOrder, learners};
use crate::results::{TabularPoint, TabularRun, describe};
use adjoint::{BackwardNorm, IrdmOptions, Method, Segments};
use indicatif::{ProgressBar, ProgressStyle};
use nn::cnf::{Divergence, Noise};
use nn::tabular::{Table, pca, read_csv, read_npy, split_and_standardize};
use nn::{Activation, BlockSpec, MultiBlockCnf, Rng};
use std::path::PathBuf;

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Settings of the suite.
#[derive(Debug, Clone)]
pub struct TabularSettings {
    /// A CSV or `.npy` file, or `None` for the Fashion-MNIST PCA stand-in.
    pub data: Option<PathBuf>,
    /// Fashion-MNIST folder for the stand-in.
    pub fashion_mnist: PathBuf,
    /// Images of the stand-in (the first ones of the training set).
    pub stand_in_rows: usize,
    /// CNF blocks.
    pub blocks: usize,
    /// Hidden widths of each block's net.
    pub hidden: Vec<usize>,
    /// Batch.
    pub batch: usize,
    /// Iterations.
    pub iters: usize,
    /// Test NLL every this many iterations (and at the end).
    pub eval_every: usize,
    /// Test rows evaluated (the first ones of the test split).
    pub test_rows: usize,
    /// Solver `rtol`.
    pub rtol: f64,
    /// Solver `atol`.
    pub atol: f64,
    /// Adam learning rate.
    pub lr: f64,
    /// Seed of weights, batches and noise.
    pub seed: u64,
    /// Early stopping (the paper's appendix B: 30): a method stops once its validation NLL,
    /// measured after every epoch, has not improved for this many epochs. `None`: never.
    pub patience_epochs: Option<usize>,
}

/// The early-stopping rule: stop after `patience` observations without a new best.
#[derive(Debug, Clone)]
pub struct EarlyStop {
    patience: usize,
    best: f64,
    since_best: usize,
}

impl EarlyStop {
    /// A rule that waits `patience` observations for an improvement.
    pub fn new(patience: usize) -> Self {
        Self {
            patience,
            best: f64::INFINITY,
            since_best: 0,
        }
    }

    /// Records a validation loss; `true` when training should stop.
    pub fn observe(&mut self, loss: f64) -> bool {
        if loss < self.best {
            self.best = loss;
            self.since_best = 0;
        } else {
            self.since_best += 1;
        }
        self.since_best >= self.patience
    }
}

/// Dimension of the stand-in (miniboone's).
pub const STAND_IN_DIM: usize = 43;

/// RDM and IRDM with 8, 16 and 32 nodes (one grid over each block's solve, as in the paper).
pub fn methods() -> Vec<(String, Method)> {
    let mut v = vec![(
        "rdm".to_string(),
        Method::Rdm {
            norm: BackwardNorm::Full,
        },
    )];
    for n in [8, 16, 32] {
        v.push((
            format!("irdm{n}"),
            Method::irdm_lobatto(n - 1, BackwardNorm::Full),
        ));
    }
    v
}

/// The data: `(name, table, is_stand_in)`.
fn load(s: &TabularSettings) -> AnyResult<(String, Table, bool)> {
    match &s.data {
        Some(path) => {
            let table = match path.extension().and_then(|e| e.to_str()) {
                Some("npy") => read_npy(path)?,
                Some("csv") | Some("txt") => read_csv(path, None)?,
                _ => {
                    return Err(
                        format!("--data {}: expected a .csv or .npy file", path.display()).into(),
                    );
                }
            };
            Ok((path.display().to_string(), table, false))
        }
        None => {
            let data = nn::FashionMnist::load(&s.fashion_mnist)?;
            let train = data.train.truncated(s.stand_in_rows);
            let pixels = train.rows * train.cols;
            let n = train.len();
            let table = pca(&train.pixels, n, pixels, STAND_IN_DIM)?;
            Ok((
                format!("fashion-mnist-pca{STAND_IN_DIM} (stand-in for miniboone)"),
                table,
                true,
            ))
        }
    }
}

/// One method's learner of the suite.
type Learner = crate::interleaved::Learner<MultiBlockCnf<f64>, f64, TabularPoint>;

/// Mean NLL of `rows` of `table` in batches of the flow's size (the remainder dropped).
fn mean_nll(
    flow: &mut MultiBlockCnf<f64>,
    params: &[f64],
    table: &Table,
    rows: usize,
    rtol: f64,
    atol: f64,
) -> AnyResult<f64> {
    let b = flow.batch();
    let d = table.cols;
    let batches = (rows.min(table.rows) / b).max(1);
    let mut sum = 0.0;
    let mut count = 0;
    for k in 0..batches {
        let lo = k * b;
        if lo + b > table.rows {
            break;
        }
        let lp = flow.log_density(params, &table.data[lo * d..(lo + b) * d], rtol, atol)?;
        sum -= lp.iter().sum::<f64>();
        count += b;
    }
    Ok(sum / count.max(1) as f64)
}

/// Trains every method; one [`TabularRun`] each.
pub fn run(s: &TabularSettings, progress: &ProgressBar) -> AnyResult<Vec<TabularRun>> {
    if s.batch == 0 || s.iters == 0 || s.blocks == 0 {
        return Err("tabular: batch, iterations and blocks must be >= 1".into());
    }
    let (name, table, stand_in) = load(s)?;
    let splits = split_and_standardize(&table)?;
    let d = table.cols;
    if splits.train.rows < s.batch {
        return Err(format!(
            "tabular: {} training rows, fewer than one batch of {}",
            splits.train.rows, s.batch
        )
        .into());
    }
    let spec = BlockSpec {
        dim: d,
        hidden: s.hidden.clone(),
        blocks: s.blocks,
        activation: Activation::Softplus,
        divergence: Divergence::Hutchinson,
        t1: 0.5,
    };
    let template = MultiBlockCnf::<f64>::new(spec, s.batch)?;
    let init = template.init_params(&mut Rng::new(s.seed));
    let entries = methods();
    let mut learners: Vec<Learner> = learners(entries.len(), &template, &init, s.lr)?;
    // Per method: the early-stopping rule and the iteration it stopped after.
    let mut early: Vec<(Option<EarlyStop>, Option<usize>)> = entries
        .iter()
        .map(|_| (s.patience_epochs.map(EarlyStop::new), None))
        .collect();
    let irdm = IrdmOptions {
        segments: Segments::Single,
        ..IrdmOptions::default()
    };
    let test_batch = s.batch.min(splits.test.rows).max(1);
    let mut evaluator = template.clone();
    evaluator.set_batch(test_batch)?;
    let iters_per_epoch = (splits.train.rows / s.batch).max(1);
    let mut tester = evaluator.clone();
    let mut evaluate = |l: &mut Learner, iter: usize| -> AnyResult<()> {
        let nll = mean_nll(
            &mut tester,
            &l.params,
            &splits.test,
            s.test_rows,
            s.rtol,
            s.atol,
        )?;
        l.curve.push(TabularPoint {
            iter,
            train_time_s: l.clock,
            test_nll: nll,
        });
        Ok(())
    };
    for l in &mut learners {
        evaluate(l, 0)?;
    }
    progress.set_length(s.iters as u64);
    let mut batches = BatchOrder::new(splits.train.rows, s.seed ^ 0x7ab);
    let mut noise_rng = Rng::new(s.seed ^ 0x401e);
    let mut x = vec![0.0; s.batch * d];
    for iter in 1..=s.iters {
        for (j, &r) in batches.next_batch(s.batch).iter().enumerate() {
            x[j * d..(j + 1) * d].copy_from_slice(splits.train.row(r));
        }
        // One noise draw per iteration, the same for every method.
        let noise_seed = noise_rng.next_u64();
        for ((l, (label, method)), stop) in learners.iter_mut().zip(&entries).zip(&early) {
            if stop.1.is_some() {
                continue;
            }
            l.step(|flow, params| {
                flow.sample_noise(&mut Rng::new(noise_seed), Noise::Rademacher);
                let g = flow
                    .loss_and_gradient(params, &x, *method, s.rtol, s.atol, irdm)
                    .map_err(|e| format!("{label}: iteration {iter}: {e}"))?;
                Ok((g.dtheta, g.info, g.loss))
            })?;
        }
        let epoch_end = iter % iters_per_epoch == 0;
        for (l, (rule, stopped_at)) in learners.iter_mut().zip(&mut early) {
            if stopped_at.is_some() {
                continue;
            }
            let stop = match rule {
                Some(rule) if epoch_end => {
                    let v = mean_nll(
                        &mut evaluator,
                        &l.params,
                        &splits.validation,
                        s.test_rows,
                        s.rtol,
                        s.atol,
                    )?;
                    rule.observe(v)
                }
                _ => false,
            };
            if stop || iter % s.eval_every.max(1) == 0 || iter == s.iters {
                evaluate(l, iter)?;
            }
            if stop {
                *stopped_at = Some(iter);
            }
        }
        progress.inc(1);
        if early.iter().all(|e| e.1.is_some()) {
            break;
        }
    }
    Ok(learners
        .into_iter()
        .zip(&entries)
        .zip(&early)
        .map(|((l, (label, method)), stop)| {
            let (kind, n_nodes, _, _) = describe(method);
            let sum = l.summary();
            TabularRun {
                data: name.clone(),
                stand_in,
                dim: d,
                train_rows: splits.train.rows,
                test_rows: s.test_rows.min(splits.test.rows) / test_batch * test_batch,
                blocks: s.blocks,
                hidden: s.hidden.clone(),
                batch: s.batch,
                rtol: s.rtol,
                atol: s.atol,
                method: kind.into(),
                label: label.clone(),
                n_nodes,
                summary: sum,
                final_test_nll: l.curve.last().map_or(f64::NAN, |c| c.test_nll),
                stopped_at: stop.1,
                test_curve: l.curve,
            }
        })
        .collect())
}

/// A progress bar for an interleaved suite: `prefix [bar] iteration/iterations elapsed`.
pub fn progress_bar(prefix: &'static str) -> ProgressBar {
    let pb = ProgressBar::new(0).with_prefix(prefix);
    if let Ok(style) = ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {elapsed}")
    {
        pb.set_style(style);
    }
    pb
}

#[cfg(test)]
mod tests {
    use super::EarlyStop;

    #[test]
    fn early_stop_waits_patience_observations_after_the_best() {
        let mut rule = EarlyStop::new(2);
        let stops: Vec<bool> = [5.0, 4.0, 4.5, 3.9, 4.0, 3.95, 3.95]
            .iter()
            .map(|&v| rule.observe(v))
            .collect();
        assert_eq!(stops, [false, false, false, false, false, true, true]);
        assert!(!EarlyStop::new(1).observe(f64::MAX));
    }
}
