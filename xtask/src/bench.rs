//! `cargo xtask bench`: its flags, the settings of each suite in each mode (`--quick`,
//! `--extended`, `--full`, or counts given by hand), and the run of the chosen suites into one
//! `results.json`, report and plots.

use crate::results::{Results, SCHEMA, Settings};
use crate::{
    AnyResult, classification, files, gpu_peak, gpu_toy, gradient_error, long_horizon, machine,
    mpi_bench, render, stability, tabular, toy, vae, write_json,
};
use indicatif::ProgressBar;
use nn::train::TrainConfig;
use std::path::PathBuf;

#[derive(clap::Args)]
// `--iters -5` is a bad number, not an unknown flag.
#[command(allow_negative_numbers = true)]
pub(crate) struct BenchArgs {
    /// A first look (default): 500 iterations per toy run; about 1.5 minutes on 2 cores.
    #[arg(long, conflicts_with_all = ["full", "extended"])]
    quick: bool,
    /// 1500 iterations per toy run (about 15 minutes on 2 cores).
    #[arg(long, conflicts_with = "full")]
    extended: bool,
    /// The paper's settings (10 000 iterations; hours).
    #[arg(long)]
    full: bool,
    /// Suites to run: toy, gradient-error, stability, classification, tabular, vae, mpi (needs
    /// `--features mpi`), or `all` (every suite but mpi).
    #[arg(long, value_delimiter = ',', default_values_t = ["toy".to_string(), "gradient-error".to_string(), "stability".to_string()])]
    suite: Vec<String>,
    /// Toy data sets.
    #[arg(long, value_delimiter = ',', default_values_t = ["pinwheel".to_string(), "2spirals".to_string(), "moons".to_string(), "circles".to_string()])]
    datasets: Vec<String>,
    /// Training iterations per run (overrides the mode).
    #[arg(long)]
    iters: Option<usize>,
    /// Test NLL every this many iterations (overrides the mode).
    #[arg(long)]
    eval_every: Option<usize>,
    /// Start every toy run from these weights (PyTorch names, prefix `net.`), e.g.
    /// `../shared/anchors/toy_cnf_pinwheel_trained.safetensors`.
    #[arg(long)]
    from_weights: Option<PathBuf>,
    /// Seed of batches and initial weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder (default `target/bench/<mode>-<unix time>` in the workspace).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Fashion-MNIST IDX folder for the classification suite.
    #[arg(long, default_value = nn::idx::DEFAULT_FASHION_MNIST_DIR)]
    fashion_mnist: PathBuf,
    /// Tabular suite: a CSV or `.npy` file (e.g. MAF's miniboone); default: the Fashion-MNIST
    /// PCA stand-in.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Classification: training images (default: quick 12 000, full 60 000).
    #[arg(long)]
    train_images: Option<usize>,
    /// Classification: epochs (default: quick 3, full 10).
    #[arg(long)]
    epochs: Option<usize>,
    /// Classification: model width (default: quick 16, full 64).
    #[arg(long)]
    channels: Option<usize>,
    /// Classification: random crops (±2 pixels) of the training images.
    #[arg(long)]
    augment: bool,
    /// Run the toy suite on the GPU backend instead (RDM, RDM-semi, IRDM16-semi at each of
    /// `--batches`; the adapter is recorded). `IRDM_GPU_ADAPTER` picks an adapter by name.
    #[arg(long)]
    gpu: bool,
    /// The card's published f32 peak in GFLOP/s for the kernel table (known H100/H200 by name
    /// otherwise).
    #[arg(long, value_parser = positive_finite)]
    peak_gflops: Option<f64>,
    /// Seconds of timed runs measuring the adapter's f32 peak for the kernel table
    /// (`gpu::measure_f32_peak`; `0` skips the measurement).
    #[arg(long, default_value_t = 0.3, value_parser = peak_seconds)]
    peak_seconds: f64,
    /// Threads of the host right-hand sides (the batch is sharded over them; `0`: every
    /// logical CPU).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Batch sizes of the GPU toy suite.
    #[arg(long, value_delimiter = ',', default_values_t = [100usize, 1000, 10_000, 100_000])]
    batches: Vec<usize>,
    /// Product kernels of the GPU suite's trainers: `tuned` (timed on the adapter at each
    /// batch, `GpuCnf::tune_kernels`), `auto` (the library's default) or a fixed choice.
    #[arg(long, value_enum, default_value_t = gpu_toy::KernelChoice::Tuned)]
    gpu_kernels: gpu_toy::KernelChoice,
}

/// A finite number above zero (`nan`, `inf`, `0` and negatives are refused by name).
fn positive_finite(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .parse()
        .map_err(|e| format!("{text:?} is not a number: {e}"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{text:?}: must be a finite number above zero"))
    }
}

/// `0` (no measurement) or a time in `(0, gpu::MAX_PEAK_SECONDS]` for `--peak-seconds`.
fn peak_seconds(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .parse()
        .map_err(|e| format!("{text:?} is not a number: {e}"))?;
    if (0.0..=gpu::MAX_PEAK_SECONDS).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "{text:?}: must be 0 (skip) or at most {} seconds",
            gpu::MAX_PEAK_SECONDS
        ))
    }
}

/// The suites `--suite all` runs (every one but `mpi`, which needs the `mpi` build).
const ALL_SUITES: [&str; 6] = [
    "toy",
    "gradient-error",
    "stability",
    "classification",
    "tabular",
    "vae",
];

/// Runs the chosen suites and writes `results.json` (after each suite), `report.md` and the
/// plots into the output folder, which it returns.
pub(crate) fn run(mut args: BenchArgs) -> AnyResult<PathBuf> {
    let started = std::time::Instant::now();
    for s in &args.suite {
        if !(ALL_SUITES.contains(&s.as_str()) || s == "mpi" || s == "all") {
            return Err(format!(
                "unknown suite {s:?}; expected toy, gradient-error, stability, classification, tabular, vae, mpi or all"
            )
            .into());
        }
    }
    if args.suite.iter().any(|s| s == "all") {
        let mpi = args.suite.iter().any(|s| s == "mpi");
        args.suite = ALL_SUITES.iter().map(|s| s.to_string()).collect();
        if mpi {
            args.suite.push("mpi".into());
        }
    }
    for d in &args.datasets {
        d.parse::<nn::data::Toy>()?;
    }
    let full = args.full;
    let mode = if args.iters.is_some() || args.eval_every.is_some() {
        "custom"
    } else if full {
        "full"
    } else if args.extended {
        "extended"
    } else {
        "quick"
    };
    let (default_iters, default_eval_every) = if full {
        (10_000, 250)
    } else if args.extended {
        (1500, 100)
    } else {
        (500, 50)
    };
    let iters = args.iters.unwrap_or(default_iters);
    let eval_every = args.eval_every.unwrap_or(default_eval_every).max(1);
    if iters == 0 {
        return Err("--iters must be at least 1".into());
    }
    if args.gpu && (args.batches.is_empty() || args.batches.contains(&0)) {
        return Err("--batches: every batch size must be at least 1".into());
    }
    let threads = machine::use_threads(args.threads)?;
    let base = TrainConfig {
        test_size: if full { 2000 } else { 500 },
        seed: args.seed,
        threads,
        ..TrainConfig::default()
    };
    let init = match &args.from_weights {
        Some(path) => {
            let w = nn::Weights::read(path)?;
            let layout = nn::toy_cnf::<f32>(1, base.activation)?.net.layout().clone();
            Some(w.params::<f32>(&layout, "net")?)
        }
        None => None,
    };
    let out = args.out.clone().unwrap_or_else(|| {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        files::in_workspace(&format!("target/bench/{mode}-{stamp}"))
    });
    files::prepare_out_dir(&out)?;
    let mut results = Results {
        schema: SCHEMA,
        machine: machine::describe("cpu", threads),
        settings: Settings {
            mode: mode.into(),
            suites: args.suite.clone(),
            datasets: args.datasets.clone(),
            iters,
            batch: base.batch,
            rtol: base.rtol,
            atol: base.atol,
            eval_every,
            test_size: base.test_size,
            seed: args.seed,
            from_weights: args.from_weights.as_ref().map(|p| p.display().to_string()),
            float: "f32".into(),
        },
        runs: Vec::new(),
        gradient_error: Vec::new(),
        long_horizon: Vec::new(),
        stability: Vec::new(),
        classification: Vec::new(),
        gpu_runs: Vec::new(),
        gpu_kernels: Vec::new(),
        gpu_peak: None,
        tabular: Vec::new(),
        vae: Vec::new(),
        mpi: Vec::new(),
        wall_time_s: None,
    };
    if args.gpu {
        let ctx = gpu::GpuContext::new()?;
        results.machine.backend = format!(
            "gpu: {} ({:?}, {:?})",
            ctx.adapter_info.name, ctx.adapter_info.device_type, ctx.adapter_info.backend
        );
        let init = match &init {
            Some(p) => p.clone(),
            None => nn::toy_cnf::<f32>(1, base.activation)?
                .net
                .init_params(&mut nn::Rng::new(args.seed)),
        };
        let gpu_iters = args.iters.unwrap_or(if full { 200 } else { 20 });
        let (runs, mut kernels) = gpu_toy::run(
            &ctx,
            &args.batches,
            gpu_iters,
            &init,
            args.seed,
            args.gpu_kernels,
        )?;
        let peak = gpu_peak::f32_peak(&ctx, args.peak_gflops, args.peak_seconds);
        for k in &mut kernels {
            k.peak_gflops = peak.published_gflops;
        }
        results.gpu_runs = runs;
        results.gpu_kernels = kernels;
        results.gpu_peak = Some(peak);
        results.settings.suites = vec!["gpu-toy".into()];
        results.wall_time_s = Some(started.elapsed().as_secs_f64());
        write_json(&out, &results)?;
        render(&out, &results)?;
        return Ok(out);
    }
    if args.suite.iter().any(|s| s == "toy") {
        let entries = toy::methods(base.rtol, base.atol);
        for d in &args.datasets {
            let settings = toy::ToySettings {
                iters,
                eval_every,
                config: TrainConfig {
                    dataset: d.clone(),
                    ..base.clone()
                },
                init: init.clone(),
            };
            let pb = toy::progress_bar(d, entries.len());
            results
                .runs
                .extend(toy::run_dataset(&settings, &entries, &pb)?);
            pb.finish();
            write_json(&out, &results)?;
        }
    }
    if args.suite.iter().any(|s| s == "gradient-error") {
        let pb = ProgressBar::new(0).with_prefix("gradient-error");
        results.gradient_error = gradient_error::run(if full { 1000 } else { 100 }, &pb)?;
        pb.finish();
        let pb = ProgressBar::new(0).with_prefix("long-horizon");
        results.long_horizon = long_horizon::run(&pb)?;
        pb.finish();
    }
    if args.suite.iter().any(|s| s == "stability") {
        results.stability = stability::run()?;
    }
    if args.suite.iter().any(|s| s == "classification") {
        let settings = classification::ClassSettings {
            data_dir: args.fashion_mnist.clone(),
            train_images: args
                .train_images
                .unwrap_or(if full { 60_000 } else { 12_000 }),
            test_images: if full { 10_000 } else { 1_000 },
            channels: args.channels.unwrap_or(if full { 64 } else { 16 }),
            batch: if full { 128 } else { 64 },
            epochs: args.epochs.unwrap_or(if full { 10 } else { 3 }),
            eval_every: args
                .eval_every
                .unwrap_or(if full { 100 } else { 20 })
                .max(1),
            lr: 0.1,
            tol: 1e-3,
            augment: args.augment,
            seed: args.seed,
        };
        let entries = classification::methods();
        let pb = classification::progress_bar(entries.len());
        results.classification = classification::run(&settings, &entries, &pb)?;
        pb.finish();
    }
    if args.suite.iter().any(|s| s == "tabular") {
        let settings = tabular::TabularSettings {
            data: args.data.clone(),
            fashion_mnist: args.fashion_mnist.clone(),
            stand_in_rows: if full { 60_000 } else { 12_000 },
            blocks: if full { 10 } else { 2 },
            hidden: if full { vec![860, 860] } else { vec![64] },
            batch: if full { 10_000 } else { 500 },
            iters: args.iters.unwrap_or(if full { 10_000 } else { 60 }),
            eval_every: args
                .eval_every
                .unwrap_or(if full { 100 } else { 10 })
                .max(1),
            test_rows: if full { usize::MAX } else { 1000 },
            rtol: 1e-7, // the paper's tolerances in both modes
            atol: 1e-8,
            lr: 1e-3,
            seed: args.seed,
            patience_epochs: full.then_some(30),
        };
        let pb = tabular::progress_bar("tabular");
        results.tabular = tabular::run(&settings, &pb)?;
        pb.finish();
        write_json(&out, &results)?;
    }
    if args.suite.iter().any(|s| s == "vae") {
        let settings = vae::VaeSettings {
            fashion_mnist: args.fashion_mnist.clone(),
            train_images: if full { 60_000 } else { 10_000 },
            test_images: if full { 10_000 } else { 500 },
            latent: if full { 32 } else { 8 },
            context: if full { 32 } else { 8 },
            hidden: if full { 512 } else { 256 },
            flow_hidden: if full { vec![256, 256] } else { vec![64, 64] },
            batch: 100,
            iters: args.iters.unwrap_or(if full { 10_000 } else { 1000 }),
            eval_every: args
                .eval_every
                .unwrap_or(if full { 500 } else { 100 })
                .max(1),
            iw_samples: if full { 100 } else { 5 },
            rtol: 1e-5,
            atol: 1e-5,
            lr: 1e-3,
            seed: args.seed,
            threads,
        };
        let pb = tabular::progress_bar("vae");
        results.vae = vae::run(&settings, &pb)?;
        pb.finish();
        write_json(&out, &results)?;
    }
    if args.suite.iter().any(|s| s == "mpi") {
        let pb = ProgressBar::new_spinner().with_prefix("mpi");
        pb.set_message("mpirun -n 1, 2 at batch 10 000");
        results.mpi = mpi_bench::run(&out, &[1, 2], if full { 50 } else { 10 }, "irdm16-semi")?;
        pb.finish();
    }
    results.wall_time_s = Some(started.elapsed().as_secs_f64());
    write_json(&out, &results)?;
    render(&out, &results)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Cmd};
    use clap::Parser;
    use std::path::Path;

    /// The `results.json` a run wrote into `out`.
    fn read_results(out: &Path) -> Results {
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap()
    }

    fn args(extra: &[&str]) -> BenchArgs {
        let mut argv = vec!["cargo-xtask", "bench"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).expect("valid flags").command {
            Cmd::Bench(a) => a,
            _ => unreachable!("parsed a bench command"),
        }
    }

    #[test]
    fn a_tiny_run_writes_a_complete_report() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
        let out = run(args(&[
            "--iters",
            "2",
            "--eval-every",
            "1",
            "--datasets",
            "moons",
            "--suite",
            "toy,stability",
            "--out",
            dir.to_str().unwrap(),
        ]))
        .unwrap();
        let results = read_results(&out);
        assert_eq!(results.schema, SCHEMA);
        assert_eq!(results.runs.len(), toy::methods(1e-5, 1e-5).len());
        for r in &results.runs {
            assert_eq!((r.iters, r.dataset.as_str()), (2, "moons"));
            assert!(
                r.time_per_iter_median_s > 0.0
                    && r.nfe_fwd_mean > 0.0
                    && r.final_test_nll.is_finite()
            );
            assert_eq!(r.test_curve.len(), 3, "initial + two evaluations");
            assert_eq!(
                r.n_nodes.is_some(),
                r.method == "irdm" && r.grid.as_deref() == Some("lobatto")
            );
        }
        // Every method starts from the same weights and batch: the same initial test NLL.
        let first: Vec<f64> = results
            .runs
            .iter()
            .map(|r| r.test_curve[0].test_nll)
            .collect();
        assert!(first.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(results.stability.len(), 8 * 4);
        let report = std::fs::read_to_string(out.join("report.md")).unwrap();
        for needle in ["Table 1", "irdm16-semi", "moons", "Stability", "## Plots"] {
            assert!(report.contains(needle), "report lacks {needle}");
        }
        let stability_header = report.lines().find(|l| l.starts_with("| tol |")).unwrap();
        assert_eq!(
            stability_header,
            "| tol | rdm | rdm-semi | irdm32 | irdm32-semi |"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_tiny_gpu_run_writes_its_tables() {
        // Needs an adapter (lavapipe in CI, where IRDM_REQUIRE_GPU=1 makes its absence fail).
        if let Err(e) = gpu::GpuContext::new() {
            assert!(
                std::env::var("IRDM_REQUIRE_GPU").as_deref() != Ok("1"),
                "IRDM_REQUIRE_GPU=1 but {e}"
            );
            eprintln!("skipped: {e}");
            return;
        }
        let dir = std::env::temp_dir().join(format!("xtask-gpu-{}", std::process::id()));
        let out = run(args(&[
            "--gpu",
            "--batches",
            "8,16",
            "--iters",
            "1",
            "--peak-gflops",
            "1000",
            "--peak-seconds",
            "0.03",
            "--gpu-kernels",
            "simple",
            "--out",
            dir.to_str().unwrap(),
        ]))
        .unwrap();
        let text = std::fs::read_to_string(out.join("results.json")).unwrap();
        let res: Results = serde_json::from_str(&text).unwrap();
        assert_eq!(res.gpu_runs.len(), 2 * gpu_toy::methods().len());
        assert!(
            res.gpu_kernels
                .iter()
                .all(|k| k.peak_gflops == Some(1000.0))
        );
        assert_eq!(
            res.gpu_kernels.len(),
            4,
            "two batches × simple and tiled kernels"
        );
        assert!(res.machine.backend.starts_with("gpu: "));
        for r in &res.gpu_runs {
            assert!(r.loss_first.is_finite() && r.nfe_fwd_mean > 0.0, "{r:?}");
            assert!(
                r.readbacks_per_iter >= 1.0
                    && r.submissions_per_iter >= r.readbacks_per_iter
                    && r.dispatches_per_iter > r.submissions_per_iter,
                "{r:?}"
            );
            // The profiled iteration dispatches about as much as a timed one (other data).
            if !r.profile.is_empty() {
                let calls: usize = r.profile.iter().map(|k| k.calls).sum();
                let ratio = calls as f64 / r.dispatches_per_iter;
                assert!((0.5..2.0).contains(&ratio), "{calls} calls, {r:?}");
            }
        }
        let md = std::fs::read_to_string(out.join("report.md")).unwrap();
        if res.gpu_runs.iter().any(|r| !r.profile.is_empty()) {
            assert!(md.contains("Device time per iteration in kernels"), "{md}");
        }
        assert!(md.contains("## Toy CNF on the GPU"), "{md}");
        assert!(md.contains("| 16 | irdm16-semi |"), "{md}");
        assert!(res.gpu_runs.iter().all(|r| r.kernels == "Simple"), "{md}");
        // The published peak given, the measured one beside it, both named in the report.
        let peak = res.gpu_peak.as_ref().expect("peak recorded");
        assert_eq!(peak.published_gflops, Some(1000.0));
        assert_eq!(peak.published_source.as_deref(), Some("--peak-gflops"));
        let m = peak.measured.expect("measured");
        assert!(
            m.gflops.is_finite() && m.gflops > 0.0 && m.runs == 3,
            "{m:?}"
        );
        assert!(
            md.contains("published 1000 GFLOP/s (--peak-gflops)"),
            "{md}"
        );
        assert!(
            md.contains(&format!("measured {:.1} GFLOP/s", m.gflops)),
            "{md}"
        );
        let k = &res.gpu_kernels[0];
        let measured_share = format!(
            "{:.2} % / {:.2} % |\n",
            100.0 * k.eval_gflops / m.gflops,
            100.0 * k.vjp_gflops / m.gflops
        );
        assert!(md.contains(&measured_share), "{measured_share} in {md}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_tiny_tabular_run_reads_a_csv_and_reports_every_method() {
        let dir = std::env::temp_dir().join(format!("xtask-tabular-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("data.csv");
        let mut rng = nn::Rng::new(1);
        let mut text = String::from("a,b,c\n");
        for _ in 0..800 {
            let (u, v) = (rng.normal(), rng.normal());
            text.push_str(&format!("{},{},{}\n", u, 0.5 * v + u, 3.0 + u * v));
        }
        std::fs::write(&csv, text).unwrap();
        let out = run(args(&[
            "--suite",
            "tabular",
            "--data",
            csv.to_str().unwrap(),
            "--iters",
            "2",
            "--eval-every",
            "1",
            "--out",
            dir.join("run").to_str().unwrap(),
        ]))
        .unwrap();
        let res = read_results(&out);
        assert_eq!(res.tabular.len(), tabular::methods().len());
        for r in &res.tabular {
            assert_eq!(
                (r.dim, r.summary.iters, r.test_curve.len()),
                (3, 2, 3),
                "{r:?}"
            );
            assert!(r.final_test_nll.is_finite() && r.summary.nfe_fwd_mean > 0.0 && !r.stand_in);
        }
        // Same weights, batches and noise: the same starting test NLL for every method.
        assert!(
            res.tabular
                .windows(2)
                .all(|w| w[0].test_curve[0].test_nll == w[1].test_curve[0].test_nll)
        );
        let md = std::fs::read_to_string(out.join("report.md")).unwrap();
        assert!(
            md.contains("## Tabular density estimation") && md.contains("| irdm16 |"),
            "{md}"
        );
        // Early stopping: every method stops once an epoch brings no better validation NLL.
        let settings = tabular::TabularSettings {
            data: Some(csv.clone()),
            fashion_mnist: PathBuf::new(),
            stand_in_rows: 0,
            blocks: 1,
            hidden: vec![8],
            batch: 100,
            iters: 400,
            eval_every: 1000,
            test_rows: 80,
            rtol: 1e-5,
            atol: 1e-5,
            lr: 0.05,
            seed: 0,
            patience_epochs: Some(1),
        };
        let runs = tabular::run(&settings, &ProgressBar::hidden()).unwrap();
        for r in &runs {
            let at = r.stopped_at.expect("stopped early");
            assert!(at < 400 && at % 6 == 0 && r.summary.iters == at, "{r:?}");
            assert_eq!(r.test_curve.last().unwrap().iter, at);
        }
        let bad = dir.join("bad.csv");
        std::fs::write(&bad, "1,2\n3\n").unwrap();
        let e = run(args(&[
            "--suite",
            "tabular",
            "--data",
            bad.to_str().unwrap(),
            "--out",
            dir.join("r2").to_str().unwrap(),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("bad.csv") && e.contains("line 2"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Writes an uncompressed IDX pair `{prefix}-images-idx3-ubyte` / `-labels-idx1-ubyte`
    /// of `n` 28 × 28 images (stripes whose width depends on the image) into `dir`.
    fn write_idx_set(dir: &Path, prefix: &str, n: usize) {
        let mut images = vec![0, 0, 8, 3];
        for v in [n as u32, 28, 28] {
            images.extend_from_slice(&v.to_be_bytes());
        }
        for i in 0..n {
            for p in 0..28 * 28 {
                images.push(if (p % 28) / (1 + i % 4) % 2 == 0 {
                    230
                } else {
                    10
                });
            }
        }
        let mut labels = vec![0, 0, 8, 1];
        labels.extend_from_slice(&(n as u32).to_be_bytes());
        labels.extend((0..n).map(|i| (i % 10) as u8));
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
    }

    #[test]
    fn a_tiny_vae_run_reports_every_method() {
        let dir = std::env::temp_dir().join(format!("xtask-vae-{}", std::process::id()));
        let idx = dir.join("idx");
        std::fs::create_dir_all(&idx).unwrap();
        write_idx_set(&idx, "train", 120);
        write_idx_set(&idx, "t10k", 100);
        let out = run(args(&[
            "--suite",
            "vae",
            "--fashion-mnist",
            idx.to_str().unwrap(),
            "--iters",
            "3",
            "--eval-every",
            "1",
            "--out",
            dir.join("run").to_str().unwrap(),
        ]))
        .unwrap();
        let res = read_results(&out);
        assert_eq!(res.vae.len(), vae::methods().len());
        for r in &res.vae {
            assert_eq!(
                (r.summary.iters, r.test_curve.len(), r.train_images),
                (3, 4, 120)
            );
            assert!(
                r.final_test_neg_elbo.is_finite() && r.summary.nfe_fwd_mean > 0.0,
                "{r:?}"
            );
            // The importance-weighted estimate is a tighter bound than the ELBO on average.
            assert!(r.final_test_iw_nll < r.final_test_neg_elbo + 1.0, "{r:?}");
        }
        // Same weights, batches and noise: the same starting test loss for every method, and
        // three Adam steps lower it.
        assert!(
            res.vae
                .windows(2)
                .all(|w| w[0].test_curve[0].test_neg_elbo == w[1].test_curve[0].test_neg_elbo)
        );
        assert!(
            res.vae
                .iter()
                .all(|r| r.test_curve[3].test_neg_elbo < r.test_curve[0].test_neg_elbo)
        );
        let md = std::fs::read_to_string(out.join("report.md")).unwrap();
        assert!(
            md.contains("## VAE with a CNF posterior") && md.contains("| irdm16 |"),
            "{md}"
        );
        assert!(out.join("vae_elbo_time.png").is_file());
        let e = run(args(&[
            "--suite",
            "vae",
            "--fashion-mnist",
            dir.join("missing").to_str().unwrap(),
            "--out",
            dir.join("r2").to_str().unwrap(),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("missing") && e.contains("dataset-fashion-mnist"),
            "{e}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn suite_all_names_every_suite_and_unknown_ones_are_refused() {
        let e = run(args(&["--suite", "vea"])).unwrap_err().to_string();
        assert!(
            e.contains("\"vea\"") && e.contains("vae") && e.contains("all"),
            "{e}"
        );
        assert!(ALL_SUITES.contains(&"vae") && ALL_SUITES.contains(&"tabular"));
    }

    #[test]
    fn bad_flags_are_clear_errors() {
        let e = run(args(&["--suite", "nope"])).unwrap_err().to_string();
        assert!(e.contains("unknown suite"), "{e}");
        let e = run(args(&["--datasets", "spirals"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown \"spirals\""), "{e}");
        let e = run(args(&["--gpu", "--batches", "0"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--batches"), "{e}");
        let e = run(args(&["--iters", "0"])).unwrap_err().to_string();
        assert!(e.contains("at least 1"), "{e}");
        assert!(Cli::try_parse_from(["cargo-xtask", "bench", "--quick", "--full"]).is_err());
        assert!(Cli::try_parse_from(["cargo-xtask", "bench", "--iters", "many"]).is_err());
        // A negative count is a bad value of --iters, not an unknown flag.
        let e = Cli::try_parse_from(["cargo-xtask", "bench", "--iters", "-5"])
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("--iters") && e.contains("-5"), "{e}");
        for bad in ["nan", "inf", "0", "-3"] {
            let e = Cli::try_parse_from(["cargo-xtask", "bench", "--peak-gflops", bad])
                .err()
                .expect("refused")
                .to_string();
            assert!(e.contains("--peak-gflops") && e.contains(bad), "{bad}: {e}");
        }
        for bad in ["nan", "inf", "61", "-1"] {
            let e = Cli::try_parse_from(["cargo-xtask", "bench", "--peak-seconds", bad])
                .err()
                .expect("refused")
                .to_string();
            assert!(
                e.contains("--peak-seconds") && e.contains(bad),
                "{bad}: {e}"
            );
        }
        let zero = Cli::try_parse_from(["cargo-xtask", "bench", "--peak-seconds", "0"]);
        assert!(zero.is_ok(), "0 skips the measurement");
        // An output path that cannot be a folder is named.
        let file = std::env::temp_dir().join(format!("xtask-out-file-{}", std::process::id()));
        std::fs::write(&file, b"x").unwrap();
        let e = run(args(&[
            "--suite",
            "stability",
            "--out",
            file.to_str().unwrap(),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains(file.to_str().unwrap()), "{e}");
        std::fs::remove_file(&file).unwrap();
    }
}
