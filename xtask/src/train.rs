//! `cargo xtask train`: one toy-CNF training run, in one process or data-parallel — over
//! threads of this process (`--local-ranks N`) or over the ranks of an MPI job (`--mpi`, a build
//! with `--features mpi`, launched by `mpirun`). Every rank draws the same global batch and
//! computes on its rows, one allreduce per iteration sums the gradients and counts, every rank
//! takes the same Adam step (`nn::data_parallel`). Rank 0 alone writes: `train.json` (the loss
//! curve and counts, samples per second, the allreduce's share) and `checkpoint.safetensors`
//! (atomically, every `--checkpoint-every` iterations and at the end). `--resume` continues a
//! checkpoint with any number of ranks up to `--iters` iterations in all.

use crate::files;
use nn::collective::{Collective, LocalGroup, SingleProcess};
use nn::data_parallel::{DataParallel, ParallelRecord};
use nn::train::TrainConfig;
use serde::Serialize;
use std::path::PathBuf;

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// What `train` trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum Model {
    /// FFJORD's toy CNF on a 2-D toy set (`--dataset`).
    Toy,
    /// torchdiffeq's `odenet_mnist` ODE classifier on Fashion-MNIST (f32).
    Classifier,
}

/// Float type of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum FloatKind {
    /// `f32`.
    F32,
    /// `f64`.
    F64,
}

/// Options of `train`.
#[derive(clap::Args, Debug, Clone)]
#[command(allow_negative_numbers = true)]
pub struct TrainArgs {
    /// The model.
    #[arg(long, value_enum, default_value_t = Model::Toy)]
    model: Model,
    /// Classifier: Fashion-MNIST IDX folder.
    #[arg(long, default_value = nn::idx::DEFAULT_FASHION_MNIST_DIR)]
    fashion_mnist: PathBuf,
    /// Classifier: training images used (the first ones), cycled through in shuffled order.
    #[arg(long, default_value_t = 1024)]
    train_images: usize,
    /// Classifier: model width.
    #[arg(long, default_value_t = 8)]
    channels: usize,
    /// Toy data set.
    #[arg(long, default_value = "pinwheel")]
    dataset: String,
    /// Gradient method, by its bench label (`direct`, `rdm`, `rdm-semi`, `anode-k4`,
    /// `irdm16-semi`, `irdm-auto-semi`, …).
    #[arg(long, default_value = "irdm16-semi")]
    method: String,
    /// Iterations in all (a resumed run continues up to this count).
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// Global batch (split over the ranks).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Seed of the batches and the initial weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Solver tolerances.
    #[arg(long, default_value_t = 1e-5)]
    rtol: f64,
    /// Absolute tolerance.
    #[arg(long, default_value_t = 1e-5)]
    atol: f64,
    /// Float type.
    #[arg(long, value_enum, default_value_t = FloatKind::F32)]
    float: FloatKind,
    /// Threads each rank shards its rows over (`0`: every logical CPU).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Toy CNF: each rank computes on the GPU backend (wgpu; f32; the parameters also go to
    /// `gpu_params.safetensors`, the resumable state to `checkpoint.safetensors`).
    /// `IRDM_GPU_ADAPTER` picks the adapter.
    #[arg(long)]
    gpu: bool,
    /// Ranks are the processes of this MPI job (build with `--features mpi`, run under
    /// `mpirun`).
    #[arg(long, conflicts_with = "local_ranks")]
    mpi: bool,
    /// Ranks as threads of this process (no MPI needed).
    #[arg(long, default_value_t = 1)]
    local_ranks: usize,
    /// Continue from this checkpoint.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Also write the checkpoint every this many iterations (0: only at the end).
    #[arg(long, default_value_t = 0)]
    checkpoint_every: usize,
    /// Output folder, written by rank 0 (default `target/train/<unix time>` in the workspace).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One iteration in `train.json`.
#[derive(Debug, Serialize)]
struct Row {
    iter: usize,
    loss: f64,
    nfe_forward: usize,
    nfe_backward: usize,
    vjp_backward: usize,
    stored_floats: usize,
    seconds: f64,
    allreduce_seconds: f64,
}

/// `train.json`.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    dataset: &'a str,
    method: &'a str,
    float: FloatKind,
    batch: usize,
    ranks: usize,
    threads_per_rank: usize,
    rtol: f64,
    atol: f64,
    seed: u64,
    resumed_from: Option<String>,
    records: Vec<Row>,
    /// Global batch over the median iteration time.
    samples_per_second_median: f64,
    /// Median allreduce time over median iteration time.
    allreduce_share_median: f64,
    /// Mean NLL of the held-out samples after the run (host runs).
    final_test_nll: Option<f64>,
}

/// Runs `train` (for `--mpi`, on every rank of the job).
pub fn run(args: TrainArgs) -> AnyResult<()> {
    if args.iters == 0 || args.batch == 0 {
        return Err("--iters and --batch must be at least 1".into());
    }
    if args.gpu && (args.model != Model::Toy || args.float != FloatKind::F32) {
        return Err("--gpu: the toy CNF in f32".into());
    }
    if args.model == Model::Classifier && (args.float != FloatKind::F32 || args.resume.is_some()) {
        return Err(
            "--model classifier: f32 only, and without --resume (it writes its final \
                    parameters, not a resumable checkpoint)"
                .into(),
        );
    }
    if args.mpi {
        return run_mpi(&args);
    }
    if args.local_ranks == 0 {
        return Err("--local-ranks must be at least 1".into());
    }
    let out = out_dir(&args)?;
    if args.local_ranks == 1 {
        return match args.float {
            FloatKind::F32 => dispatch::<f32, _>(&args, SingleProcess, &out).map(drop),
            FloatKind::F64 => dispatch::<f64, _>(&args, SingleProcess, &out).map(drop),
        };
    }
    let groups = LocalGroup::new(args.local_ranks)?;
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let joins: Vec<_> = groups
            .into_iter()
            .map(|g| {
                let (args, out) = (&args, &out);
                s.spawn(move || {
                    let done = match args.float {
                        FloatKind::F32 => dispatch::<f32, _>(args, g, out),
                        FloatKind::F64 => dispatch::<f64, _>(args, g, out),
                    };
                    done.map(LocalGroup::finish).map_err(|e| e.to_string())
                })
            })
            .collect();
        joins
            .into_iter()
            .map(|j| j.join().unwrap_or_else(|_| Err("panicked".into())))
            .collect()
    });
    // The root cause first: a rank's own error rather than another's report of its loss.
    let mut errors: Vec<(usize, String)> = results
        .into_iter()
        .enumerate()
        .filter_map(|(r, e)| e.err().map(|e| (r, e)))
        .collect();
    errors.sort_by_key(|(_, e)| e.contains("was lost"));
    match errors.first() {
        None => Ok(()),
        Some((r, e)) => Err(format!("rank {r} of {}: {e}", args.local_ranks).into()),
    }
}

#[cfg(feature = "mpi")]
fn run_mpi(args: &TrainArgs) -> AnyResult<()> {
    let (runtime, group) = nn::mpi_group::MpiRuntime::init()?;
    // Rank 0 alone checks and writes the output folder; a failure there stops every rank.
    let out = if group.rank() == 0 {
        match out_dir(args) {
            Ok(o) => o,
            Err(e) => runtime.abort(&e),
        }
    } else {
        PathBuf::new()
    };
    let done = match args.float {
        FloatKind::F32 => dispatch::<f32, _>(args, group, &out).map(drop),
        FloatKind::F64 => dispatch::<f64, _>(args, group, &out).map(drop),
    };
    if let Err(e) = done {
        runtime.abort(&e);
    }
    Ok(())
}

#[cfg(not(feature = "mpi"))]
fn run_mpi(_args: &TrainArgs) -> AnyResult<()> {
    Err(
        "--mpi needs a build with MPI: `cargo build --release -p xtask --features mpi` \
         (Debian: apt-get install openmpi-bin libopenmpi-dev libclang-dev), then \
         `mpirun -n 2 target/release/xtask train --mpi …`"
            .into(),
    )
}

fn out_dir(args: &TrainArgs) -> AnyResult<PathBuf> {
    let out = args.out.clone().unwrap_or_else(|| {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        files::in_workspace(&format!("target/train/{stamp}"))
    });
    files::prepare_out_dir(&out)?;
    Ok(out)
}

fn median(mut xs: Vec<f64>) -> f64 {
    crate::toy::median(&mut xs)
}

/// One rank's run of the chosen model (the classifier runs in f32 only).
fn dispatch<T: nn::Float, C: Collective>(
    args: &TrainArgs,
    group: C,
    out: &std::path::Path,
) -> AnyResult<C> {
    match args.model {
        Model::Toy if args.gpu => run_gpu_rank(args, group, out),
        Model::Toy => run_rank::<T, C>(args, group, out),
        Model::Classifier => run_classifier(args, group, out),
    }
}

/// One rank's toy-CNF run; rank 0 writes `out`.
fn run_rank<T: nn::Float, C: Collective>(
    args: &TrainArgs,
    group: C,
    out: &std::path::Path,
) -> AnyResult<C> {
    let entry = crate::toy::methods(args.rtol, args.atol)
        .into_iter()
        .find(|e| e.label == args.method)
        .ok_or_else(|| {
            let labels: Vec<String> = crate::toy::methods(args.rtol, args.atol)
                .into_iter()
                .map(|e| e.label)
                .collect();
            format!(
                "--method {}: expected one of {}",
                args.method,
                labels.join(", ")
            )
        })?;
    let ranks = group.ranks();
    let mut run: DataParallel<T, C> = match &args.resume {
        Some(path) => {
            let mut r = DataParallel::resume(path, entry.method, group)?;
            r.trainer().set_threads(args.threads)?;
            r
        }
        None => {
            let config = TrainConfig {
                dataset: args.dataset.clone(),
                batch: args.batch,
                rtol: args.rtol,
                atol: args.atol,
                seed: args.seed,
                test_size: 500,
                irdm: entry.irdm,
                threads: args.threads,
                ..TrainConfig::default()
            };
            DataParallel::new(config, entry.method, None, group)?
        }
    };
    let checkpoint = out.join("checkpoint.safetensors");
    let mut records: Vec<ParallelRecord> = Vec::new();
    while run.trainer().iteration() < args.iters {
        let r = run.step()?;
        let iter = r.record.iter;
        records.push(r);
        if args.checkpoint_every > 0 && iter % args.checkpoint_every == 0 {
            run.save_checkpoint(&checkpoint)?;
        }
    }
    run.save_checkpoint(&checkpoint)?;
    if run.is_root() {
        let final_test_nll = run.trainer().test_nll()?;
        let config = run.trainer().config().clone();
        let seconds = median(records.iter().map(|r| r.record.seconds).collect());
        let reduce = median(records.iter().map(|r| r.allreduce_seconds).collect());
        let summary = Summary {
            dataset: &config.dataset,
            method: &args.method,
            float: args.float,
            batch: config.batch,
            ranks,
            threads_per_rank: args.threads,
            rtol: config.rtol,
            atol: config.atol,
            seed: config.seed,
            resumed_from: args.resume.as_ref().map(|p| p.display().to_string()),
            samples_per_second_median: config.batch as f64 / seconds,
            allreduce_share_median: reduce / seconds,
            records: records
                .iter()
                .map(|r| Row {
                    iter: r.record.iter,
                    loss: r.record.loss,
                    nfe_forward: r.record.nfe_forward,
                    nfe_backward: r.record.nfe_backward,
                    vjp_backward: r.record.vjp_backward,
                    stored_floats: r.record.stored_floats,
                    seconds: r.record.seconds,
                    allreduce_seconds: r.allreduce_seconds,
                })
                .collect(),
            final_test_nll: Some(final_test_nll),
        };
        nn::io::write_atomic(
            out.join("train.json"),
            serde_json::to_string_pretty(&summary)?.as_bytes(),
        )?;
        eprintln!(
            "wrote {} and {} ({} ranks, {:.0} samples/s, allreduce {:.1} % of an iteration)",
            out.join("train.json").display(),
            checkpoint.display(),
            ranks,
            summary.samples_per_second_median,
            100.0 * summary.allreduce_share_median
        );
    }
    Ok(run.into_group())
}

/// `classifier.json`.
#[derive(Debug, Serialize)]
struct ClassifierSummary {
    ranks: usize,
    batch: usize,
    channels: usize,
    train_images: usize,
    method: String,
    records: Vec<Row>,
    samples_per_second_median: f64,
    allreduce_share_median: f64,
}

/// One rank's data-parallel run of the ODE classifier: every rank shuffles the same
/// `--train-images` with the seed, takes its rows of each global batch, and the gradients are
/// summed by one allreduce per iteration (`nn::data_parallel::allreduce_weighted`) before the
/// same SGD step (momentum 0.9, weight decay 1e-5, lr 0.1, dopri5 at 1e-3, as the
/// classification suite). Rank 0 writes `classifier.json` and the final parameters
/// (`classifier.safetensors`).
fn run_classifier<C: Collective>(
    args: &TrainArgs,
    mut group: C,
    out: &std::path::Path,
) -> AnyResult<C> {
    use nn::classifier::IMAGE_SIDE;
    use nn::optim::{Optimizer, Sgd, SgdConfig};
    let (rank, ranks) = (group.rank(), group.ranks());
    let method = crate::classification::methods()
        .into_iter()
        .find(|e| e.label == args.method)
        .map(|e| e.method)
        .ok_or_else(|| {
            let labels: Vec<String> = crate::classification::methods()
                .into_iter()
                .map(|e| e.label)
                .collect();
            format!(
                "--method {}: the classifier takes one of {}",
                args.method,
                labels.join(", ")
            )
        })?;
    if args.batch < ranks || args.channels == 0 {
        return Err(format!(
            "--batch {} over {ranks} ranks (each needs a row) and --channels {} (≥ 1)",
            args.batch, args.channels
        )
        .into());
    }
    let data = nn::FashionMnist::load(&args.fashion_mnist)?;
    let train = data.train.truncated(args.train_images);
    if train.len() < args.batch {
        return Err(format!(
            "{} training images, fewer than one batch of {}",
            train.len(),
            args.batch
        )
        .into());
    }
    let rows = nn::data_parallel::rows_of(rank, ranks, args.batch);
    let weight = rows.len() as f64 / args.batch as f64;
    let mut model = nn::OdeClassifier::<f32>::new(args.channels, rows.len())?;
    let mut params = model.init_params(&mut nn::Rng::new(args.seed));
    let mut grad = vec![0.0f32; params.len()];
    let mut opt = Sgd::new(
        params.len(),
        SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            dampening: 0.0,
            weight_decay: 1e-5,
            nesterov: false,
        },
    )?;
    let mut config = adjoint::Config::new(1e-3f32, 1e-3);
    config.rdm_check.on_exceed = adjoint::OnUnderResolved::Flag;
    let per = IMAGE_SIDE * IMAGE_SIDE;
    let mut x = vec![0.0f32; rows.len() * per];
    let mut y = vec![0u8; rows.len()];
    let mut shuffle = nn::Rng::new(args.seed ^ 0x5eed);
    let mut order: Vec<usize> = Vec::new();
    let mut next = 0;
    let mut buf = Vec::new();
    let mut records = Vec::with_capacity(args.iters);
    for iter in 1..=args.iters {
        let start = std::time::Instant::now();
        if next + args.batch > order.len() {
            order = shuffle.permutation(train.len());
            next = 0;
        }
        let batch = &order[next..next + args.batch];
        next += args.batch;
        for (j, &idx) in batch[rows.clone()].iter().enumerate() {
            x[j * per..(j + 1) * per].copy_from_slice(train.image(idx));
            y[j] = train.labels[idx];
        }
        let stats = model.loss_and_gradient(&params, &x, &y, method, &config, &mut grad)?;
        let mut row = reduce_row(
            &mut group,
            weight,
            iter,
            stats.loss,
            &mut grad,
            &stats.info,
            &mut buf,
        )?;
        opt.step(&mut params, &grad)?;
        row.seconds = start.elapsed().as_secs_f64();
        records.push(row);
    }
    if rank == 0 {
        let seconds = median(records.iter().map(|r| r.seconds).collect());
        let reduce = median(records.iter().map(|r| r.allreduce_seconds).collect());
        let summary = ClassifierSummary {
            ranks,
            batch: args.batch,
            channels: args.channels,
            train_images: train.len(),
            method: args.method.clone(),
            samples_per_second_median: args.batch as f64 / seconds,
            allreduce_share_median: reduce / seconds,
            records,
        };
        nn::io::write_atomic(
            out.join("classifier.json"),
            serde_json::to_string_pretty(&summary)?.as_bytes(),
        )?;
        nn::io::save(
            out.join("classifier.safetensors"),
            &nn::io::param_tensors(model.layout(), "model", &params),
            None,
        )?;
        eprintln!(
            "wrote {} ({ranks} ranks)",
            out.join("classifier.json").display()
        );
    }
    Ok(group)
}

/// One rank's toy-CNF run on the GPU backend: the same seeded initial weights and batch stream
/// as the host trainer (`nn::train::Trainer`), this rank's rows on the device, the host
/// allreduce, the same Adam step. Rank 0 writes `train.json` and `gpu_params.safetensors`.
fn run_gpu_rank<C: Collective>(
    args: &TrainArgs,
    mut group: C,
    out: &std::path::Path,
) -> AnyResult<C> {
    let (rank, ranks) = (group.rank(), group.ranks());
    let method = crate::toy::methods(args.rtol, args.atol)
        .into_iter()
        .find(|e| e.label == args.method)
        .map(|e| e.method)
        .ok_or_else(|| format!("--method {}: not a toy-suite label", args.method))?;
    if args.batch < ranks {
        return Err(format!(
            "--batch {} over {ranks} ranks: each needs a row",
            args.batch
        )
        .into());
    }
    let toy: nn::data::Toy = args.dataset.parse()?;
    let ctx = gpu::GpuContext::new()?;
    let net = nn::toy_cnf::<f32>(1, nn::Activation::Tanh)?.net;
    let mut rng = nn::Rng::new(args.seed);
    let init = net.init_params(&mut rng);
    let rows = nn::data_parallel::rows_of(rank, ranks, args.batch);
    let weight = rows.len() as f64 / args.batch as f64;
    let mut trainer =
        crate::gpu_toy::GpuTrainer::new(&ctx, rows.len(), method, &init, gpu::GpuKernels::Auto)?;
    let run = GpuRunId {
        dataset: args.dataset.clone(),
        method: args.method.clone(),
        batch: args.batch,
        seed: args.seed,
    };
    let first = match &args.resume {
        Some(path) => resume_gpu(path, &run, &net, &mut trainer, &mut rng)? + 1,
        None => 1,
    };
    let checkpoint = out.join("checkpoint.safetensors");
    let mut buf = Vec::new();
    let mut records = Vec::with_capacity(args.iters);
    for iter in first..=args.iters {
        let start = std::time::Instant::now();
        let x: Vec<f32> = toy
            .sample(&mut rng, args.batch)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let (loss, mut grad, info) = trainer.gradient_on(&x[2 * rows.start..2 * rows.end])?;
        let mut row = reduce_row(&mut group, weight, iter, loss, &mut grad, &info, &mut buf)?;
        trainer.apply(&grad)?;
        row.seconds = start.elapsed().as_secs_f64();
        records.push(row);
        if rank == 0 && args.checkpoint_every > 0 && iter % args.checkpoint_every == 0 {
            save_gpu_checkpoint(&checkpoint, &run, &net, &trainer, &rng, iter)?;
        }
    }
    if rank == 0 {
        save_gpu_checkpoint(
            &checkpoint,
            &run,
            &net,
            &trainer,
            &rng,
            args.iters.max(first - 1),
        )?;
        let seconds = median(records.iter().map(|r| r.seconds).collect());
        let reduce = median(records.iter().map(|r| r.allreduce_seconds).collect());
        let summary = Summary {
            dataset: &args.dataset,
            method: &args.method,
            float: FloatKind::F32,
            batch: args.batch,
            ranks,
            threads_per_rank: 1,
            rtol: crate::gpu_toy::TOL as f64,
            atol: crate::gpu_toy::TOL as f64,
            seed: args.seed,
            resumed_from: args.resume.as_ref().map(|p| p.display().to_string()),
            samples_per_second_median: args.batch as f64 / seconds,
            allreduce_share_median: reduce / seconds,
            records,
            final_test_nll: None,
        };
        nn::io::write_atomic(
            out.join("train.json"),
            serde_json::to_string_pretty(&summary)?.as_bytes(),
        )?;
        nn::io::save(
            out.join("gpu_params.safetensors"),
            &nn::io::param_tensors(net.layout(), "net", trainer.params()),
            None,
        )?;
        eprintln!(
            "wrote {} ({ranks} ranks on the GPU backend)",
            out.join("train.json").display()
        );
    }
    Ok(group)
}

/// What a GPU checkpoint belongs to: a resumed run must train the same data, method, global
/// batch and seed.
#[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
struct GpuRunId {
    dataset: String,
    method: String,
    batch: usize,
    seed: u64,
}

/// Writes a GPU run's resumable state atomically: the parameters (`net.…`, as
/// `gpu_params.safetensors`), Adam's state (`optim.…`) and, as metadata, the iteration, Adam's
/// step count, the batch stream's generator and the run it belongs to.
fn save_gpu_checkpoint(
    path: &std::path::Path,
    run: &GpuRunId,
    net: &nn::OdeNet<f32>,
    trainer: &crate::gpu_toy::GpuTrainer,
    rng: &nn::Rng,
    iter: usize,
) -> AnyResult<()> {
    let mut tensors = nn::io::param_tensors(net.layout(), "net", trainer.params());
    let (steps, state) = trainer.optimizer_state();
    for (name, values) in state {
        tensors.push((format!("optim.{name}"), vec![values.len()], values));
    }
    let mut meta = std::collections::HashMap::new();
    meta.insert("iter".to_string(), iter.to_string());
    meta.insert("optimizer_steps".to_string(), steps.to_string());
    meta.insert("rng".to_string(), serde_json::to_string(rng)?);
    meta.insert("gpu_run".to_string(), serde_json::to_string(run)?);
    nn::io::save(path, &tensors, Some(meta))?;
    Ok(())
}

/// Restores a checkpoint of [`save_gpu_checkpoint`] into `trainer` and `rng`; returns the
/// iteration it was written at.
///
/// Errors: an unreadable file, one that is not a GPU checkpoint, or one of another run.
fn resume_gpu(
    path: &std::path::Path,
    run: &GpuRunId,
    net: &nn::OdeNet<f32>,
    trainer: &mut crate::gpu_toy::GpuTrainer,
    rng: &mut nn::Rng,
) -> AnyResult<usize> {
    let w = nn::io::Weights::read(path)?;
    let bad = |what: &str| {
        format!(
            "{}: not a GPU training checkpoint (missing or malformed {what})",
            path.display()
        )
    };
    let meta = w.metadata().map_err(|_| bad("metadata"))?;
    let field = |name: &str| meta.get(name).ok_or_else(|| bad(name));
    let saved: GpuRunId = serde_json::from_str(field("gpu_run")?).map_err(|_| bad("gpu_run"))?;
    if &saved != run {
        return Err(format!(
            "{}: a checkpoint of {saved:?}, not of this run ({run:?})",
            path.display()
        )
        .into());
    }
    let iter: usize = field("iter")?.parse().map_err(|_| bad("iter"))?;
    let steps: u64 = field("optimizer_steps")?
        .parse()
        .map_err(|_| bad("optimizer_steps"))?;
    *rng = serde_json::from_str(field("rng")?).map_err(|_| bad("rng"))?;
    let params = w.params::<f32>(net.layout(), "net")?;
    let state: Vec<(&str, Vec<f32>)> = ["exp_avg", "exp_avg_sq"]
        .into_iter()
        .map(|n| Ok((n, w.tensor::<f32>(&format!("optim.{n}"))?.1)))
        .collect::<Result<_, nn::NnError>>()?;
    trainer.restore(&params, steps, &state, iter)?;
    Ok(iter)
}

/// One allreduce of this rank's weighted gradient (in place), mean loss and counts
/// (`nn::data_parallel::allreduce_weighted`), as iteration `iter`'s row (its `seconds` for the
/// caller to fill once the update is done).
#[allow(clippy::too_many_arguments)]
fn reduce_row<C: Collective>(
    group: &mut C,
    weight: f64,
    iter: usize,
    loss: f64,
    grad: &mut [f32],
    info: &adjoint::Info,
    buf: &mut Vec<f64>,
) -> AnyResult<Row> {
    let mut extras = [
        loss,
        info.nfe_forward as f64,
        info.nfe_backward as f64,
        info.vjp_backward as f64,
        info.stored_floats as f64,
    ];
    let reduce = nn::data_parallel::allreduce_weighted(group, weight, grad, &mut extras, 1, buf)?;
    Ok(Row {
        iter,
        loss: extras[0],
        nfe_forward: extras[1] as usize,
        nfe_backward: extras[2] as usize,
        vjp_backward: extras[3] as usize,
        stored_floats: extras[4] as usize,
        seconds: 0.0,
        allreduce_seconds: reduce,
    })
}
