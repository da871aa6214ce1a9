//! The toy suite: FFJORD's toy CNF (paper appendix B.2) trained by every method, interleaved
//! iteration by iteration so that all methods see the same machine conditions, the same
//! batches and the same initial weights.

use crate::machine::peak_rss_bytes;
use crate::results::{CurvePoint, NfePoint, Run, describe};
use adjoint::{BackwardNorm, Checkpoints, IrdmOptions, Method, Segments};
use indicatif::{ProgressBar, ProgressStyle};
use nn::train::{IterationRecord, TrainConfig, Trainer};

/// Stored-node counts of the paper's Table 1.
pub const NODE_COUNTS: [usize; 6] = [4, 8, 16, 32, 64, 128];

/// A method of the suite with its report label.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Label, e.g. `irdm16-semi`.
    pub label: String,
    /// The gradient method.
    pub method: Method,
    /// IRDM's capture settings.
    pub irdm: IrdmOptions,
}

impl Entry {
    fn new(label: &str, method: Method) -> Self {
        Self {
            label: label.into(),
            method,
            irdm: IrdmOptions::default(),
        }
    }
}

/// The methods of the suite: Direct, RDM (full and seminorm), ANODE, IRDM at every node count
/// with both norms (`N + 1` stored Lobatto nodes on one grid over the solve, the paper's Table 1),
/// and IRDM's automatic piecewise grid with the library's defaults for the solve's tolerances
/// (`adjoint::IrdmGrid::for_tolerances`).
pub fn methods(rtol: f64, atol: f64) -> Vec<Entry> {
    let mut v = vec![
        Entry::new("direct", Method::Direct),
        Entry::new(
            "rdm",
            Method::Rdm {
                norm: BackwardNorm::Full,
            },
        ),
        Entry::new(
            "rdm-semi",
            Method::Rdm {
                norm: BackwardNorm::Seminorm,
            },
        ),
        Entry::new(
            "anode-k4",
            Method::Anode {
                checkpoints: Checkpoints::EveryKSteps(4),
            },
        ),
    ];
    for norm in [BackwardNorm::Full, BackwardNorm::Seminorm] {
        for nodes in NODE_COUNTS {
            let suffix = if norm == BackwardNorm::Seminorm {
                "-semi"
            } else {
                ""
            };
            let mut e = Entry::new(
                &format!("irdm{nodes}{suffix}"),
                Method::irdm_lobatto(nodes - 1, norm),
            );
            e.irdm.segments = Segments::Single;
            v.push(e);
        }
    }
    v.push(Entry::new(
        "irdm-auto-semi",
        Method::irdm_auto(rtol, atol, BackwardNorm::Seminorm),
    ));
    v
}

/// Settings of one data set's runs.
pub struct ToySettings {
    /// Iterations.
    pub iters: usize,
    /// Test NLL every this many iterations.
    pub eval_every: usize,
    /// Training configuration shared by all methods.
    pub config: TrainConfig,
    /// Initial weights (all methods), if any.
    pub init: Option<Vec<f32>>,
}

/// Median (NaN for no values).
pub fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        xs[n / 2]
    } else {
        0.5 * (xs[n / 2 - 1] + xs[n / 2])
    }
}

fn nfe_curve(records: &[IterationRecord]) -> Vec<NfePoint> {
    let bins = records.len().clamp(1, 500);
    let per = records.len().div_ceil(bins).max(1);
    records
        .chunks(per)
        .map(|c| {
            let n = c.len() as f64;
            NfePoint {
                iter: c[c.len() / 2].iter,
                nfe_fwd: c.iter().map(|r| r.nfe_forward as f64).sum::<f64>() / n,
                nfe_bwd_total: c
                    .iter()
                    .map(|r| (r.nfe_backward + r.vjp_backward) as f64)
                    .sum::<f64>()
                    / n,
                train_loss: c.iter().map(|r| r.loss).sum::<f64>() / n,
                seconds: c.iter().map(|r| r.seconds).sum::<f64>() / n,
            }
        })
        .collect()
}

/// Trains every method on one data set, interleaved, and returns one [`Run`] per method.
pub fn run_dataset(
    settings: &ToySettings,
    entries: &[Entry],
    progress: &ProgressBar,
) -> Result<Vec<Run>, nn::NnError> {
    let mut trainers = entries
        .iter()
        .map(|e| {
            let config = nn::train::TrainConfig {
                irdm: e.irdm,
                ..settings.config.clone()
            };
            Trainer::<f32>::new(config, e.method, settings.init.clone())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut records: Vec<Vec<IterationRecord>> =
        vec![Vec::with_capacity(settings.iters); entries.len()];
    let mut curves: Vec<Vec<CurvePoint>> = vec![Vec::new(); entries.len()];
    let mut clock = vec![0.0f64; entries.len()];
    for (k, t) in trainers.iter_mut().enumerate() {
        curves[k].push(CurvePoint {
            iter: 0,
            train_time_s: 0.0,
            test_nll: t.test_nll()?,
        });
    }
    progress.set_length(settings.iters as u64);
    for i in 1..=settings.iters {
        for (k, t) in trainers.iter_mut().enumerate() {
            let r = t.step()?;
            clock[k] += r.seconds;
            records[k].push(r);
        }
        if i % settings.eval_every == 0 || i == settings.iters {
            for (k, t) in trainers.iter_mut().enumerate() {
                curves[k].push(CurvePoint {
                    iter: i,
                    train_time_s: clock[k],
                    test_nll: t.test_nll()?,
                });
            }
        }
        progress.inc(1);
    }
    let rss = peak_rss_bytes();
    Ok(entries
        .iter()
        .zip(records)
        .zip(curves)
        .map(|((e, recs), curve)| {
            let n = recs.len() as f64;
            let mut times: Vec<f64> = recs.iter().map(|r| r.seconds).collect();
            let (method, n_nodes, grid, seminorm) = describe(&e.method);
            let auto_grid_mean = (grid == Some("auto"))
                .then(|| recs.iter().filter_map(|r| r.grid_n).sum::<usize>() as f64 / n);
            Run {
                suite: "toy".into(),
                dataset: settings.config.dataset.clone(),
                method: method.into(),
                label: e.label.clone(),
                n_nodes,
                grid: grid.map(String::from),
                seminorm,
                iters: recs.len(),
                time_per_iter_median_s: median(&mut times),
                time_total_s: recs.iter().map(|r| r.seconds).sum(),
                nfe_fwd_mean: recs.iter().map(|r| r.nfe_forward as f64).sum::<f64>() / n,
                nfe_bwd_mean: recs.iter().map(|r| r.nfe_backward as f64).sum::<f64>() / n,
                vjp_bwd_mean: recs.iter().map(|r| r.vjp_backward as f64).sum::<f64>() / n,
                final_test_nll: curve.last().map_or(f64::NAN, |c| c.test_nll),
                peak_stored_floats: recs.iter().map(|r| r.stored_floats).max().unwrap_or(0),
                peak_rss_bytes: rss,
                auto_grid_mean,
                nfe_curve: nfe_curve(&recs),
                test_curve: curve,
            }
        })
        .collect())
}

/// A progress bar for one data set.
pub fn progress_bar(dataset: &str, methods: usize) -> ProgressBar {
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix:>12} [{elapsed_precise}] {bar:40} {pos}/{len} iterations × {msg} methods",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_prefix(dataset.to_string());
    pb.set_message(methods.to_string());
    pb
}
