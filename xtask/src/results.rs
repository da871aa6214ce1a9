//! The records of `results.json` (schema in `docs/bench.md`).

use adjoint::{BackwardNorm, IrdmGrid, Method};
use serde::{Deserialize, Serialize};

/// Schema version of `results.json`.
pub const SCHEMA: u32 = 2;

/// Oldest schema this build still reads (schema 1 lacks `classification`).
pub const OLDEST_SCHEMA: u32 = 1;

/// Everything one `cargo xtask bench` run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// [`SCHEMA`].
    pub schema: u32,
    /// Where it ran.
    pub machine: Machine,
    /// How it ran.
    pub settings: Settings,
    /// One record per (suite, data set, method, N, norm).
    pub runs: Vec<Run>,
    /// The gradient-error suite (Figure 2).
    pub gradient_error: Vec<GradientError>,
    /// The long-horizon part of the gradient-error suite (the `ode_demo` spiral on `[0, 25]`);
    /// absent before piecewise grids.
    #[serde(default)]
    pub long_horizon: Vec<LongHorizon>,
    /// The stability suite (§4).
    pub stability: Vec<Stability>,
    /// The classification suite (§4.3, Figures 6a/6b); absent in schema 1.
    #[serde(default)]
    pub classification: Vec<ClassRun>,
    /// The toy suite on the GPU backend (`--gpu`); absent in schema 1.
    #[serde(default)]
    pub gpu_runs: Vec<GpuRun>,
    /// Kernel throughput of the GPU CNF per batch size (`--gpu`); absent in schema 1.
    #[serde(default)]
    pub gpu_kernels: Vec<GpuKernel>,
    /// The adapter's f32 peak the kernel table is a share of (`--gpu`): published and
    /// measured; absent before it was recorded.
    #[serde(default)]
    pub gpu_peak: Option<GpuPeak>,
    /// The `tabular` suite (Fig. 3): one record per method; absent before it existed.
    #[serde(default)]
    pub tabular: Vec<TabularRun>,
    /// The `vae` suite (§4.2, Fig. 5): one record per method; absent before it existed.
    #[serde(default)]
    pub vae: Vec<VaeRun>,
    /// The `mpi` suite: data-parallel throughput per rank count; absent before it existed.
    #[serde(default)]
    pub mpi: Vec<MpiRun>,
    /// Wall time of the whole `bench` command (setup, every suite, writing), seconds; absent
    /// in runs before it was recorded.
    #[serde(default)]
    pub wall_time_s: Option<f64>,
}

/// One evaluation of a tabular run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TabularPoint {
    /// Iterations done.
    pub iter: usize,
    /// Cumulative training time, seconds.
    pub train_time_s: f64,
    /// Mean NLL of the evaluated test rows (nats, standardized data).
    pub test_nll: f64,
}

/// A learner's iterations, times and counts (one method of the tabular or VAE suite; its
/// fields appear at the top level of the run's JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Iterations done.
    pub iters: usize,
    /// Median iteration time, seconds.
    pub time_per_iter_median_s: f64,
    /// Training time, seconds.
    pub time_total_s: f64,
    /// Mean forward NFE per iteration.
    pub nfe_fwd_mean: f64,
    /// Mean backward NFE per iteration.
    pub nfe_bwd_mean: f64,
    /// Mean backward VJPs per iteration.
    pub vjp_bwd_mean: f64,
    /// Evaluations per iteration in 20 bins.
    pub nfe_curve: Vec<NfePoint>,
}

/// One method of the `tabular` suite.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TabularRun {
    /// The data set (a path, or the stand-in's name).
    pub data: String,
    /// Whether it is the Fashion-MNIST PCA stand-in for miniboone.
    pub stand_in: bool,
    /// Columns.
    pub dim: usize,
    /// Training rows.
    pub train_rows: usize,
    /// Test rows evaluated.
    pub test_rows: usize,
    /// CNF blocks.
    pub blocks: usize,
    /// Hidden widths per block.
    pub hidden: Vec<usize>,
    /// Batch.
    pub batch: usize,
    /// Solver `rtol`.
    pub rtol: f64,
    /// Solver `atol`.
    pub atol: f64,
    /// `"rdm" | "irdm"`.
    pub method: String,
    /// Label, e.g. `irdm16`.
    pub label: String,
    /// Stored nodes (IRDM).
    pub n_nodes: Option<usize>,
    /// Iterations, times and mean counts (all blocks), evaluations per iteration.
    #[serde(flatten)]
    pub summary: Summary,
    /// Test NLL at the end.
    pub final_test_nll: f64,
    /// The iteration after which early stopping ended training (`--full`: 30 epochs without a
    /// better validation NLL); absent when it ran every iteration.
    #[serde(default)]
    pub stopped_at: Option<usize>,
    /// Test NLL over the run.
    pub test_curve: Vec<TabularPoint>,
}

/// One evaluation of a VAE run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VaePoint {
    /// Iterations done.
    pub iter: usize,
    /// Cumulative training time, seconds.
    pub train_time_s: f64,
    /// Mean negative ELBO of the evaluated test images (nats per image, fixed base noise).
    pub test_neg_elbo: f64,
}

/// One method of the `vae` suite.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VaeRun {
    /// The data set.
    pub data: String,
    /// Training images.
    pub train_images: usize,
    /// Test images evaluated.
    pub test_images: usize,
    /// Latent dimension.
    pub latent: usize,
    /// Context values from the encoder to the flow.
    pub context: usize,
    /// Hidden width of the encoder and the decoder.
    pub hidden: usize,
    /// Hidden widths of the flow's net.
    pub flow_hidden: Vec<usize>,
    /// Batch.
    pub batch: usize,
    /// Solver `rtol`.
    pub rtol: f64,
    /// Solver `atol`.
    pub atol: f64,
    /// `"rdm" | "irdm"`.
    pub method: String,
    /// Label, e.g. `irdm16`.
    pub label: String,
    /// Stored nodes (IRDM).
    pub n_nodes: Option<usize>,
    /// Iterations, times and mean counts, evaluations per iteration.
    #[serde(flatten)]
    pub summary: Summary,
    /// Test negative ELBO at the end.
    pub final_test_neg_elbo: f64,
    /// Importance samples of the final test NLL estimate.
    pub iw_samples: usize,
    /// Importance-weighted test NLL at the end (nats per image).
    pub final_test_iw_nll: f64,
    /// Test negative ELBO over the run.
    pub test_curve: Vec<VaePoint>,
}

/// One rank count of the `mpi` suite.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MpiRun {
    /// MPI ranks.
    pub ranks: usize,
    /// Threads per rank.
    pub threads_per_rank: usize,
    /// Global batch.
    pub batch: usize,
    /// Iterations timed.
    pub iters: usize,
    /// Gradient method's label.
    pub method: String,
    /// Global batch over the median iteration time.
    pub samples_per_second: f64,
    /// Throughput over the first row's (1 rank).
    pub speedup_vs_first: f64,
    /// Median allreduce time over median iteration time (waiting for the slowest rank
    /// included).
    pub allreduce_share: f64,
}

/// The machine and build.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model from `/proc/cpuinfo`.
    pub cpu: String,
    /// Logical CPUs visible.
    pub logical_cpus: usize,
    /// Threads the host right-hand sides shard their batches over (`--threads`).
    pub threads: usize,
    /// Operating system.
    pub os: String,
    /// `rustc --version`.
    pub rustc: String,
    /// `git rev-parse HEAD` (with `-dirty` when the tree has changes).
    pub commit: String,
    /// Unix time of the run, seconds.
    pub unix_time: u64,
    /// Compute backend (`"cpu"`).
    pub backend: String,
}

/// The settings of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// `"quick"`, `"extended"`, `"full"` or `"custom"`.
    pub mode: String,
    /// Suites run.
    pub suites: Vec<String>,
    /// Data sets of the toy suite.
    pub datasets: Vec<String>,
    /// Training iterations per toy run.
    pub iters: usize,
    /// Batch size.
    pub batch: usize,
    /// Solver tolerances of the toy suite.
    pub rtol: f64,
    /// Absolute tolerance of the toy suite.
    pub atol: f64,
    /// Test NLL every this many iterations.
    pub eval_every: usize,
    /// Held-out samples.
    pub test_size: usize,
    /// Seed (same batches and initial weights for every method).
    pub seed: u64,
    /// Initial weights file, if any.
    pub from_weights: Option<String>,
    /// Float type of the toy suite.
    pub float: String,
}

/// One training run of the toy suite.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// `"toy"`.
    pub suite: String,
    /// Data set.
    pub dataset: String,
    /// `"direct" | "rdm" | "anode" | "irdm"`.
    pub method: String,
    /// Short label, e.g. `irdm16-semi`.
    pub label: String,
    /// Stored nodes (IRDM), else null.
    pub n_nodes: Option<usize>,
    /// IRDM grid: `"lobatto"`, `"auto"`.
    pub grid: Option<String>,
    /// Whether the backward error norm is a seminorm.
    pub seminorm: bool,
    /// Iterations done.
    pub iters: usize,
    /// Median wall time of one iteration (forward, backward, update), seconds.
    pub time_per_iter_median_s: f64,
    /// Total training time (test evaluations excluded), seconds.
    pub time_total_s: f64,
    /// Mean forward NFE per iteration.
    pub nfe_fwd_mean: f64,
    /// Mean backward NFE per iteration (RHS evaluations).
    pub nfe_bwd_mean: f64,
    /// Mean backward VJPs per iteration.
    pub vjp_bwd_mean: f64,
    /// Test NLL after the last iteration (nats).
    pub final_test_nll: f64,
    /// Peak floats held for the backward pass.
    pub peak_stored_floats: usize,
    /// Peak resident set of the whole benchmark process when this run ended (bytes; all runs
    /// share the process, so this is an upper bound).
    pub peak_rss_bytes: Option<u64>,
    /// Grid degree chosen by IRDM's automatic mode (mean over iterations).
    pub auto_grid_mean: Option<f64>,
    /// Test NLL against cumulative training time.
    pub test_curve: Vec<CurvePoint>,
    /// Per-iteration records (NFE, training loss, wall time), binned means, at most 500 points.
    pub nfe_curve: Vec<NfePoint>,
}

/// A point of a test-loss curve.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Iterations done.
    pub iter: usize,
    /// Cumulative training time, seconds.
    pub train_time_s: f64,
    /// Test NLL, nats.
    pub test_nll: f64,
}

/// A point of an NFE curve.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NfePoint {
    /// Iteration (bin centre).
    pub iter: usize,
    /// Forward NFE.
    pub nfe_fwd: f64,
    /// Backward NFE plus backward VJPs (each is one pass through the net).
    pub nfe_bwd_total: f64,
    /// Training loss (batch NLL, nats).
    pub train_loss: f64,
    /// Wall time of one iteration, seconds.
    pub seconds: f64,
}

impl NfePoint {
    /// Per-iteration `(counts, training loss, seconds)` averaged over consecutive bins of
    /// `len / bins` iterations (at least one each), each bin placed at its middle iteration.
    pub fn binned(records: &[(adjoint::Info, f64, f64)], bins: usize) -> Vec<NfePoint> {
        let per = (records.len() / bins.max(1)).max(1);
        records
            .chunks(per)
            .enumerate()
            .map(|(k, c)| {
                let m = c.len() as f64;
                NfePoint {
                    iter: k * per + c.len() / 2 + 1,
                    nfe_fwd: c.iter().map(|r| r.0.nfe_forward as f64).sum::<f64>() / m,
                    nfe_bwd_total: c
                        .iter()
                        .map(|r| (r.0.nfe_backward + r.0.vjp_backward) as f64)
                        .sum::<f64>()
                        / m,
                    train_loss: c.iter().map(|r| r.1).sum::<f64>() / m,
                    seconds: c.iter().map(|r| r.2).sum::<f64>() / m,
                }
            })
            .collect()
    }
}

/// One cell of the gradient-error map.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GradientError {
    /// `"lobatto"`, `"first"` or `"mismatched"`.
    pub grid: String,
    /// Stored nodes.
    pub n_nodes: usize,
    /// Solver tolerance (rtol = atol).
    pub tol: f64,
    /// `‖g − g_ref‖₁ / ‖g_ref‖₁`.
    pub rel_l1: f64,
    /// `‖g − g_ref‖₂ / ‖g_ref‖₂`.
    pub rel_l2: f64,
    /// Backward VJPs.
    pub vjp_bwd: usize,
}

/// One (method, tolerance) cell of the long-horizon gradient-error table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LongHorizon {
    /// Method label (`"direct"`, `"irdm16-single"`, `"irdm-auto"`, …).
    pub label: String,
    /// Solver tolerance (rtol = atol).
    pub tol: f64,
    /// `‖g − g_ref‖₂ / ‖g_ref‖₂` of `[dL/dy0, dL/dA]` against Direct at 1e-12; absent when the
    /// method returned an error.
    pub rel_l2: Option<f64>,
    /// Floats held for the backward pass.
    pub stored_floats: usize,
    /// Forward right-hand-side evaluations.
    pub nfe_fwd: usize,
    /// Backward right-hand-side evaluations.
    pub nfe_bwd: usize,
    /// Backward VJPs.
    pub vjp_bwd: usize,
    /// IRDM's interpolation-error estimate (largest over its segments).
    pub error_estimate: Option<f64>,
    /// IRDM's segments (0 for the other methods).
    pub segments: usize,
    /// IRDM's stored nodes over all segments.
    pub nodes: usize,
    /// IRDM's grid could not meet its tolerance within its caps (and the run opted in to a
    /// flagged result).
    pub under_resolved: bool,
    /// The method's error, when it returned one.
    pub error: Option<String>,
}

/// One point of the stability suite.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stability {
    /// Method label.
    pub label: String,
    /// Solver tolerance.
    pub tol: f64,
    /// Relative ℓ2 error of `dL/dθ` against a tight Direct reference.
    pub rel_l2: f64,
    /// Backward right-hand-side evaluations plus VJPs.
    pub bwd_evals: usize,
    /// RDM's reconstruction check flagged the gradient (absent in older files).
    #[serde(default)]
    pub flagged: bool,
}

/// Distinct labels in the order they first appear (report rows and plot series).
pub fn first_seen<'a>(labels: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for l in labels {
        if !out.contains(&l) {
            out.push(l);
        }
    }
    out
}

/// Distinct tolerances, loosest first (report columns).
pub fn loosest_first(tols: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut out: Vec<f64> = tols.into_iter().collect();
    out.sort_by(|a, b| b.total_cmp(a));
    out.dedup();
    out
}

/// `(method name, stored nodes, grid name, seminorm)` of a gradient method, for result records.
pub fn describe(m: &Method) -> (&'static str, Option<usize>, Option<&'static str>, bool) {
    let semi = |norm: BackwardNorm| norm == BackwardNorm::Seminorm;
    match *m {
        Method::Irdm { grid, norm } => {
            let (n, name) = match grid {
                IrdmGrid::Fixed { n, kind } => (Some(n + 1), kind.name()),
                IrdmGrid::Mismatched { n } => (Some(n + 1), "mismatched"),
                IrdmGrid::PiecewiseLinear { n } => (Some(n + 1), "linear"),
                IrdmGrid::Auto { .. } => (None, "auto"),
            };
            ("irdm", n, Some(name), semi(norm))
        }
        Method::Rdm { norm } => ("rdm", None, None, semi(norm)),
        Method::Direct => ("direct", None, None, false),
        Method::Anode { .. } => ("anode", None, None, false),
    }
}

/// One training run of the classification suite.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassRun {
    /// `"fashion-mnist"`.
    pub dataset: String,
    /// `"rdm" | "anode" | "irdm"`.
    pub method: String,
    /// Short label, e.g. `irdm8-linear-semi`.
    pub label: String,
    /// Stored nodes (IRDM), else null.
    pub n_nodes: Option<usize>,
    /// IRDM grid: `"lobatto"` or `"linear"` (Lobatto nodes, piecewise-linear interpolation).
    pub grid: Option<String>,
    /// Whether the backward error norm is a seminorm.
    pub seminorm: bool,
    /// Model width `C`.
    pub channels: usize,
    /// Batch size.
    pub batch: usize,
    /// Training images used.
    pub train_images: usize,
    /// Test images evaluated.
    pub test_images: usize,
    /// Epochs.
    pub epochs: usize,
    /// Iterations done.
    pub iters: usize,
    /// Median wall time of one iteration (forward, backward, update), seconds.
    pub time_per_iter_median_s: f64,
    /// Total training time (test evaluations excluded), seconds.
    pub time_total_s: f64,
    /// Mean forward NFE of the ODE block per iteration.
    pub nfe_fwd_mean: f64,
    /// Mean backward NFE (RHS evaluations) per iteration.
    pub nfe_bwd_mean: f64,
    /// Mean backward VJPs per iteration.
    pub vjp_bwd_mean: f64,
    /// Peak floats held for the ODE block's backward pass.
    pub peak_stored_floats: usize,
    /// Peak resident set of the whole process (bytes; an upper bound shared by all runs).
    pub peak_rss_bytes: Option<u64>,
    /// RDM: iterations whose gradient its reconstruction check flagged (absent in older files).
    #[serde(default)]
    pub rdm_flagged_iters: usize,
    /// RDM: the largest relative discrepancy of its reverse-time `z` over the run.
    #[serde(default)]
    pub rdm_max_discrepancy: Option<f64>,
    /// Test accuracy after the last iteration.
    pub final_test_accuracy: f64,
    /// Mean test cross-entropy after the last iteration (nats).
    pub final_test_loss: f64,
    /// Test metrics against iterations, epochs and cumulative training time.
    pub test_curve: Vec<ClassPoint>,
    /// Per-iteration records (NFE, training loss, wall time), binned means.
    pub nfe_curve: Vec<NfePoint>,
}

/// A point of a classification test curve.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassPoint {
    /// Iterations done.
    pub iter: usize,
    /// Epochs done (fractional).
    pub epoch: f64,
    /// Cumulative training time, seconds.
    pub train_time_s: f64,
    /// Mean test cross-entropy (nats).
    pub test_loss: f64,
    /// Test accuracy.
    pub test_accuracy: f64,
}

/// One method of the GPU toy suite at one batch size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GpuRun {
    /// Batch size.
    pub batch: usize,
    /// `"rdm" | "irdm"`.
    pub method: String,
    /// Label, e.g. `irdm16-semi`.
    pub label: String,
    /// Stored nodes (IRDM).
    pub n_nodes: Option<usize>,
    /// IRDM grid name.
    pub grid: Option<String>,
    /// Seminorm in the backward pass.
    pub seminorm: bool,
    /// Timed iterations (after one warm-up).
    pub iters: usize,
    /// Median wall time of one iteration (forward, NLL, backward, Adam), seconds.
    pub time_per_iter_median_s: f64,
    /// Mean forward NFE.
    pub nfe_fwd_mean: f64,
    /// Mean backward NFE.
    pub nfe_bwd_mean: f64,
    /// Mean backward VJPs.
    pub vjp_bwd_mean: f64,
    /// Training loss of the first timed iteration.
    pub loss_first: f64,
    /// Training loss of the last timed iteration.
    pub loss_last: f64,
    /// Dispatches recorded per timed iteration (mean).
    #[serde(default)]
    pub dispatches_per_iter: f64,
    /// Command-buffer submissions per timed iteration (mean; most end in a readback).
    #[serde(default)]
    pub submissions_per_iter: f64,
    /// Readbacks per timed iteration (mean): submissions the host waited for.
    #[serde(default)]
    pub readbacks_per_iter: f64,
    /// Accepted solver steps per timed iteration (mean), forward and backward together: the
    /// denominator of readbacks per accepted step.
    #[serde(default)]
    pub accepted_steps_per_iter: f64,
    /// Device time per kernel over one further iteration run with timestamp queries, slowest
    /// first (empty where the adapter has no timestamps).
    #[serde(default)]
    pub profile: Vec<ProfiledKernel>,
    /// The product kernels the trainers used (`--gpu-kernels`; by default `GpuCnf::tune_kernels`'
    /// choice at this batch).
    #[serde(default)]
    pub kernels: String,
}

/// One kernel's share of a profiled GPU iteration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfiledKernel {
    /// Entry point in its WGSL module.
    pub kernel: String,
    /// Dispatches in the iteration.
    pub calls: usize,
    /// Device seconds in the iteration.
    pub seconds: f64,
}

/// The GPU adapter's f32 (non-tensor-core) peak, GFLOP/s.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuPeak {
    /// From `--peak-gflops` or a vendor data sheet the adapter's name matches.
    pub published_gflops: Option<f64>,
    /// Where `published_gflops` comes from.
    pub published_source: Option<String>,
    /// Measured on the adapter (`gpu::measure_f32_peak`); absent with `--peak-seconds 0` or
    /// where the measurement failed.
    pub measured: Option<MeasuredPeak>,
    /// Why the measurement gave no rate, if it failed.
    pub measured_error: Option<String>,
}

/// One run of `gpu::measure_f32_peak`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeasuredPeak {
    /// Median rate of the timed runs, GFLOP/s.
    pub gflops: f64,
    /// Median wall seconds of one timed run.
    pub seconds: f64,
    /// Trips through the kernel's loop body per invocation (128 FLOP each).
    pub trips: u32,
    /// Invocations per run.
    pub invocations: u32,
    /// Timed runs.
    pub runs: usize,
}

impl From<gpu::F32Peak> for MeasuredPeak {
    fn from(p: gpu::F32Peak) -> Self {
        Self {
            gflops: p.gflops,
            seconds: p.seconds,
            trips: p.trips,
            invocations: p.invocations,
            runs: p.runs,
        }
    }
}

/// Throughput of the GPU CNF's kernels at one batch size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GpuKernel {
    /// Batch size.
    pub batch: usize,
    /// Median seconds per evaluation of `f` (with divergence).
    pub eval_s: f64,
    /// Median seconds per adjoint right-hand side (forward again plus the reverse pass).
    pub vjp_s: f64,
    /// Matrix-product GFLOP/s of an evaluation (`GpuCnf::flops_per_eval`).
    pub eval_gflops: f64,
    /// Matrix-product GFLOP/s of an adjoint right-hand side (3 × an evaluation's FLOPs).
    pub vjp_gflops: f64,
    /// The card's published f32 (non-tensor-core) peak, GFLOP/s, when known (`--peak-gflops`
    /// or the adapter's name; the measured one is in [`Results::gpu_peak`]).
    #[serde(default)]
    pub peak_gflops: Option<f64>,
    /// Whether the tiled product kernels were used (else one output per invocation).
    #[serde(default)]
    pub tiled: bool,
    /// Device time per kernel of one further evaluation, timed with timestamp queries
    /// (empty where the adapter has none).
    #[serde(default)]
    pub eval_profile: Vec<ProfiledKernel>,
    /// Likewise for one adjoint right-hand side.
    #[serde(default)]
    pub vjp_profile: Vec<ProfiledKernel>,
}
