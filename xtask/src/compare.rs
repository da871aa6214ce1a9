//! `cargo xtask compare-torch`: torchdiffeq (`odeint`, `odeint_adjoint` with full norm and
//! seminorm) against our methods on the very same toy CNF, initial weights and batches,
//! interleaved iteration by iteration in one run. One pass per `--threads` count (default: 1
//! and every logical CPU), torch set to that count and our batch sharded over as many.
//!
//! The torchdiffeq side is `xtask/python/compare_torch.py`, driven over a pipe; it needs
//! `pip install torch torchdiffeq safetensors`. Output: `compare.json` with, per pass, one record
//! per (ours, torchdiffeq mode) pair, and `compare.md`.

use crate::gpu_toy::GpuTrainer;
use crate::machine;
use adjoint::{BackwardNorm, Method};
use nn::train::{TrainConfig, Trainer};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Options of `compare-torch`.
#[derive(clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct CompareArgs {
    /// Python with torch, torchdiffeq and safetensors.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Initial weights (FFJORD names under `net.`; default
    /// `../shared/anchors/toy_cnf_pinwheel_trained.safetensors` beside the workspace).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Interleaved rounds (one iteration of every method per round).
    #[arg(long, default_value_t = 12)]
    iters: usize,
    /// Batch size.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Thread counts to compare at, each a whole pass with torch set to the same count
    /// (`torch.set_num_threads`) and our batch sharded over as many (`0`: every logical CPU).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 0])]
    threads: Vec<usize>,
    /// Torch device: `cpu` (ours on the CPU, single thread) or `cuda[:N]` (ours on the GPU backend
    /// through wgpu).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Output folder (default `target/bench/compare-torch` in the workspace).
    #[arg(long)]
    out: Option<PathBuf>,
}

impl CompareArgs {
    /// `--out`, or its default in the workspace.
    fn out(&self) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| crate::files::in_workspace("target/bench/compare-torch"))
    }

    /// `--weights`, or the anchors' trained pinwheel model beside the workspace.
    fn weights(&self) -> PathBuf {
        self.weights.clone().unwrap_or_else(|| {
            crate::files::in_workspace("../shared/anchors/toy_cnf_pinwheel_trained.safetensors")
        })
    }
}

/// Seed of the pinwheel batches both sides train on.
const BATCH_SEED: u64 = 2024;

/// A lower bound of the bytes one toy-CNF training iteration holds per sample (f32): the sample
/// and its log-density (3), Direct's stage inputs over the 12 steps of 7 stages the toy CNF
/// takes at the least (3 × 7 × 12), and the activations of the three 64-wide layers its VJP
/// keeps for each of the 64-wide layers' input, pre-activation and gate (64 × 3 × 3).
const ITERATION_BYTES_PER_SAMPLE: usize = 4 * (3 + 3 * 7 * 12 + 64 * 3 * 3);

/// One (ours, theirs) pair.
#[derive(Debug, Serialize, Deserialize)]
struct Pair {
    ours: String,
    torch: String,
    time_ratio: f64,
    time_ours_median_s: f64,
    time_torch_median_s: f64,
    nfe_fwd_ours: f64,
    nfe_fwd_torch: f64,
    nfe_bwd_ours: f64,
    nfe_bwd_torch: f64,
    loss_ours_first: f64,
    loss_torch_first: f64,
}

#[derive(Deserialize)]
struct TorchStep {
    seconds: f64,
    nfe_fwd: f64,
    nfe_bwd: f64,
    loss: f64,
}

fn median(mut xs: Vec<f64>) -> f64 {
    crate::toy::median(&mut xs)
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

/// Runs the comparison and returns the folder written.
pub fn run(args: CompareArgs) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let on_gpu = match args.device.as_str() {
        "cpu" => false,
        d if d.starts_with("cuda") => true,
        d => return Err(format!("--device {d}: expected cpu or cuda[:N]").into()),
    };
    if args.iters == 0 || args.batch == 0 {
        return Err("--iters and --batch must be at least 1".into());
    }
    // Sizes first. Batches are drawn one round at a time (the same seeded draws on both sides),
    // so what must fit is one iteration: the batch and a lower bound of what training on it
    // holds (Direct's stage inputs at the fewest steps the toy CNF takes, and the activations
    // the VJP keeps).
    let bytes = args
        .batch
        .checked_mul(ITERATION_BYTES_PER_SAMPLE)
        .ok_or_else(|| format!("--batch {} overflows", args.batch))?;
    if let Some(available) = crate::machine::available_memory_bytes()
        && bytes as u64 > available / 2
    {
        return Err(format!(
            "--batch {} needs at least {:.1} GiB for one iteration ({} bytes per sample), more \
             than half of the {:.1} GiB of memory available",
            args.batch,
            bytes as f64 / 1073741824.0,
            ITERATION_BYTES_PER_SAMPLE,
            available as f64 / 1073741824.0
        )
        .into());
    }
    // The output folder, before any work.
    crate::files::prepare_out_dir(&args.out())?;
    // The weights.
    let weights = nn::Weights::read(args.weights())?;
    let layout = nn::toy_cnf::<f32>(1, nn::Activation::Tanh)?
        .net
        .layout()
        .clone();
    let init = weights.params::<f32>(&layout, "net")?;
    // Then the torch side, before any work: its imports, in one short run.
    let probe = Command::new(&args.python)
        .args(["-c", "import torch, torchdiffeq, safetensors"])
        .output()
        .map_err(|e| format!("cannot start {} ({e}); install Python with `pip install torch torchdiffeq safetensors`", args.python))?;
    if !probe.status.success() {
        return Err(format!(
            "{} cannot import torch, torchdiffeq and safetensors (`pip install torch torchdiffeq safetensors`): {}",
            args.python,
            String::from_utf8_lossy(&probe.stderr).lines().last().unwrap_or("")
        )
        .into());
    }
    let data_path = args.out().join("compare_weights.safetensors");
    nn::io::save(
        &data_path,
        &nn::io::param_tensors(&layout, "net", &init),
        None,
    )?;

    // The driver script: beside the sources when run through cargo, else relative to the
    // repository root (a binary copied to another machine and run from a checkout there).
    let built_in = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/compare_torch.py");
    let script = if built_in.exists() {
        built_in
    } else {
        PathBuf::from("xtask/python/compare_torch.py")
    };
    let mut counts: Vec<usize> = args
        .threads
        .iter()
        .map(|&n| nn::shards::resolve_threads(n))
        .collect();
    counts.dedup();
    if counts.is_empty() {
        return Err("--threads: give at least one thread count".into());
    }
    if on_gpu {
        // Ours runs on the device; one pass, torch at the first count.
        counts.truncate(1);
    }
    let mut passes = Vec::new();
    for &threads in &counts {
        eprintln!("== {threads} thread(s)");
        let (torch_info, records) = compare_at(&args, threads, on_gpu, &init, &data_path, &script)?;
        passes.push((threads, torch_info, records));
    }
    write_outputs(&args, on_gpu, &passes)
}

/// Our pass and torch's at one thread count: `(torch's ready line, one record per pair)`.
#[allow(clippy::too_many_arguments)]
fn compare_at(
    args: &CompareArgs,
    threads: usize,
    on_gpu: bool,
    init: &[f32],
    data_path: &std::path::Path,
    script: &std::path::Path,
) -> Result<(String, Vec<Pair>), Box<dyn std::error::Error>> {
    let mut child = Command::new(&args.python)
        .arg(script)
        .arg("--data")
        .arg(data_path)
        .arg("--threads")
        .arg(threads.to_string())
        .arg("--device")
        .arg(&args.device)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {} ({e}); install Python with `pip install torch torchdiffeq safetensors`", args.python))?;
    let mut to_py = child.stdin.take().ok_or("no stdin pipe")?;
    let mut from_py = BufReader::new(child.stdout.take().ok_or("no stdout pipe")?);
    let mut line = String::new();
    from_py.read_line(&mut line)?;
    if !line.contains("\"ready\"") {
        let _ = child.wait();
        return Err(format!(
            "the torch side did not start (got {line:?}; its own message, if any, is above); is torchdiffeq installed for {}?",
            args.python
        )
        .into());
    }
    let torch_info = line.trim().to_string();

    let pairs: Vec<(&str, Method, &str)> = vec![
        ("direct", Method::Direct, "direct"),
        (
            "rdm",
            Method::Rdm {
                norm: BackwardNorm::Full,
            },
            "adjoint",
        ),
        (
            "rdm-semi",
            Method::Rdm {
                norm: BackwardNorm::Seminorm,
            },
            "adjoint_seminorm",
        ),
        (
            "irdm16-semi",
            Method::irdm_lobatto(15, BackwardNorm::Seminorm),
            "adjoint",
        ),
        (
            "irdm-auto-semi",
            Method::irdm_auto(
                TrainConfig::default().rtol,
                TrainConfig::default().atol,
                BackwardNorm::Seminorm,
            ),
            "adjoint",
        ),
    ];
    let gpu_ctx = if on_gpu {
        Some(gpu::GpuContext::new()?)
    } else {
        None
    };
    let config = TrainConfig {
        batch: args.batch,
        threads,
        ..TrainConfig::default()
    };
    // The product kernels fastest on this adapter at this batch, as in `bench --gpu`.
    let kernels = match &gpu_ctx {
        Some(ctx) => Some(crate::gpu_toy::tuned_kernels(ctx, args.batch, init)?),
        None => None,
    };
    let mut ours: Vec<Ours> = pairs
        .iter()
        .map(
            |(label, m, _)| -> Result<Ours, Box<dyn std::error::Error>> {
                // The fixed-N row is the paper's one grid over the solve, as torch's IRDM
                // reference; the automatic grid keeps its default segments.
                let mut config = config.clone();
                if label.starts_with("irdm16") {
                    config.irdm.segments = adjoint::Segments::Single;
                }
                Ok(match &gpu_ctx {
                    Some(ctx) => Ours::Gpu(Box::new(GpuTrainer::new(
                        ctx,
                        args.batch,
                        *m,
                        init,
                        kernels.unwrap_or(gpu::GpuKernels::Auto),
                    )?)),
                    None => Ours::Cpu(Box::new(Trainer::new(config, *m, Some(init.to_vec()))?)),
                })
            },
        )
        .collect::<Result<_, _>>()?;
    let mut torch_modes: Vec<&str> = pairs.iter().map(|p| p.2).collect();
    torch_modes.sort();
    torch_modes.dedup();
    let mut ours_rec: Vec<Vec<nn::train::IterationRecord>> = vec![Vec::new(); pairs.len()];
    let mut torch_rec: Vec<Vec<TorchStep>> = (0..torch_modes.len()).map(|_| Vec::new()).collect();
    // The same batches for both sides and every pass: pinwheel, seeded, drawn per round and
    // sent to the torch side as little-endian f32.
    let mut rng = nn::Rng::new(BATCH_SEED);
    let mut bytes = Vec::with_capacity(args.batch * 2 * 4);
    for i in 0..args.iters {
        let batch: Vec<f32> = nn::data::Toy::Pinwheel
            .sample(&mut rng, args.batch)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        bytes.clear();
        bytes.extend(batch.iter().flat_map(|v| v.to_le_bytes()));
        writeln!(to_py, "batch {i} {}", args.batch)?;
        to_py.write_all(&bytes)?;
        let batch = &batch;
        // Torch's OpenMP workers spin for a while after its last step; on a machine with no
        // spare cores they would slow whichever of ours runs first (measured on 2 cores at 2
        // threads: Direct 7.1–7.5 ms instead of 4.3–4.6 ms). A short pause lets them settle.
        std::thread::sleep(std::time::Duration::from_millis(20));
        for (k, t) in ours.iter_mut().enumerate() {
            ours_rec[k].push(match t {
                // On the trainer's own pool of `threads` (`TrainConfig::threads`).
                Ours::Cpu(t) => t.step_on(batch)?,
                Ours::Gpu(t) => t.step_on(batch)?,
            });
        }
        for (k, mode) in torch_modes.iter().enumerate() {
            writeln!(to_py, "step {mode} {i}")?;
            to_py.flush()?;
            line.clear();
            from_py.read_line(&mut line)?;
            let step: TorchStep = serde_json::from_str(&line)
                .map_err(|e| format!("torch side said {line:?}: {e}"))?;
            torch_rec[k].push(step);
        }
        eprintln!("round {}/{} done", i + 1, args.iters);
    }
    let _ = writeln!(to_py, "quit");
    let _ = child.wait();

    let mut records = Vec::new();
    for (k, (label, method, mode)) in pairs.iter().enumerate() {
        let tk = torch_modes.iter().position(|m| m == mode).unwrap_or(0);
        let o = &ours_rec[k];
        let t = &torch_rec[tk];
        let time_ours = median(o.iter().map(|r| r.seconds).collect());
        let time_torch = median(t.iter().map(|r| r.seconds).collect());
        let bwd: Vec<f64> = o
            .iter()
            .map(|r| match method {
                Method::Direct | Method::Anode { .. } => r.nfe_backward as f64,
                _ => r.vjp_backward as f64,
            })
            .collect();
        records.push(Pair {
            ours: label.to_string(),
            torch: mode.to_string(),
            time_ratio: time_torch / time_ours,
            time_ours_median_s: time_ours,
            time_torch_median_s: time_torch,
            nfe_fwd_ours: mean(&o.iter().map(|r| r.nfe_forward as f64).collect::<Vec<_>>()),
            nfe_fwd_torch: mean(&t.iter().map(|r| r.nfe_fwd).collect::<Vec<_>>()),
            nfe_bwd_ours: mean(&bwd),
            nfe_bwd_torch: mean(&t.iter().map(|r| r.nfe_bwd).collect::<Vec<_>>()),
            loss_ours_first: o.first().map_or(f64::NAN, |r| r.loss),
            loss_torch_first: t.first().map_or(f64::NAN, |r| r.loss),
        });
    }
    if let (Some(ctx), Some(k)) = (&gpu_ctx, kernels) {
        eprintln!(
            "ours on gpu: {} ({:?}, {:?}), kernels {k:?}",
            ctx.adapter_info.name, ctx.adapter_info.device_type, ctx.adapter_info.backend
        );
    }
    Ok((torch_info, records))
}

/// `compare.json` (one pass per thread count) and `compare.md` (a table per pass).
fn write_outputs(
    args: &CompareArgs,
    on_gpu: bool,
    passes: &[(usize, String, Vec<Pair>)],
) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let threads: Vec<usize> = passes.iter().map(|p| p.0).collect();
    let mut machine = machine::describe(if on_gpu { "gpu" } else { "cpu" }, threads[0]);
    machine.threads = threads.iter().copied().max().unwrap_or(1);
    let runs: Vec<serde_json::Value> = passes
        .iter()
        .map(|(n, info, pairs)| {
            serde_json::json!({
                "threads": n,
                "torch": serde_json::from_str::<serde_json::Value>(info).unwrap_or_default(),
                "pairs": pairs,
            })
        })
        .collect();
    let json = serde_json::json!({
        "machine": machine,
        "settings": {"iters": args.iters, "batch": args.batch, "threads": threads, "device": args.device, "weights": args.weights().display().to_string()},
        "runs": runs,
    });
    nn::io::write_atomic(
        args.out().join("compare.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    let mut md = format!(
        "# Ours against torchdiffeq (same model, weights, batches; {} interleaved rounds, batch {}, torch device {})\n\nMachine: {} ({} logical CPUs, {}), ours on {}, commit `{}`. Each pass sets torch and our sharded batch to the same thread count.\n\n",
        args.iters,
        args.batch,
        args.device,
        machine.cpu,
        machine.logical_cpus,
        machine.os,
        machine.backend,
        machine.commit
    );
    for (threads, torch_info, records) in passes {
        pass_table(&mut md, *threads, torch_info, records);
    }
    md.push_str("\nNFE bwd: right-hand-side calls during the backward pass (torch: calls of `forward()` during `loss.backward()`; ours: augmented backward evaluations for RDM and IRDM, recomputation evaluations for Direct).\n");
    crate::files::write(&args.out().join("compare.md"), md)?;
    Ok(args.out().join("compare.json"))
}

fn pass_table(md: &mut String, threads: usize, torch_info: &str, records: &[Pair]) {
    let _ = writeln!(md, "## {threads} thread(s)\n\nTorch: {torch_info}\n");
    md.push_str("| ours | torchdiffeq | median s/iter ours | median s/iter torch | speedup (torch/ours) | NFE fwd ours / torch | NFE bwd ours / torch | first loss ours / torch |\n|---|---|---|---|---|---|---|---|\n");
    for r in records {
        let _ = writeln!(
            md,
            "| {} | {} | {:.4} | {:.4} | {:.1}× | {:.1} / {:.1} | {:.1} / {:.1} | {:.4} / {:.4} |",
            r.ours,
            r.torch,
            r.time_ours_median_s,
            r.time_torch_median_s,
            r.time_ratio,
            r.nfe_fwd_ours,
            r.nfe_fwd_torch,
            r.nfe_bwd_ours,
            r.nfe_bwd_torch,
            r.loss_ours_first,
            r.loss_torch_first
        );
    }
    md.push('\n');
}

/// Our side of one pair: the CPU trainer or the GPU one.
enum Ours {
    Cpu(Box<Trainer<f32>>),
    Gpu(Box<GpuTrainer>),
}
