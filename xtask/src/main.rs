//! `cargo xtask <command>`: the project's experiments and reports.
//!
//! * `bench` — reproduces the paper's experiments (suites `toy`, `gradient-error` with the
//!   long-horizon table, `stability`, and on request `classification`, `tabular`, `vae` and
//!   `mpi`; `--gpu` for the toy suite on the GPU backend) and writes `results.json`,
//!   `report.md` and PNG plots under `target/bench/<run>/`. `--quick` (default) finishes in
//!   minutes, `--full` uses the paper's 10 000 iterations. See `bench.rs` and `docs/bench.md`.
//! * `compare-torch` — torchdiffeq on the very same model, weights and batches, interleaved with
//!   our runs; writes `compare.json`.
//! * `report DIR` — redraws `report.md` and the plots from `DIR/results.json`.
//! * `convergence` — `cheb`'s interpolation-error table.
//! * `train` — one toy-CNF training run, data-parallel over threads or MPI ranks (see
//!   `docs/mpi.md`).

mod bench;
mod classification;
mod compare;
mod convergence;
mod files;
mod gpu_peak;
mod gpu_toy;
mod gradient_error;
mod interleaved;
mod long_horizon;
mod machine;
mod mpi_bench;
mod plots;
mod report;
mod results;
mod stability;
mod tabular;
mod toy;
mod train;
mod vae;

use clap::{Parser, Subcommand};
use results::{OLDEST_SCHEMA, Results, SCHEMA};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Experiments and reports of the IRDM workspace"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Reproduce the paper's experiments and write a report.
    Bench(bench::BenchArgs),
    /// Compare with torchdiffeq on the same model, weights and batches.
    CompareTorch(compare::CompareArgs),
    /// Redraw `report.md` and the plots of an earlier run from its `results.json`.
    Report {
        /// The run's folder.
        dir: PathBuf,
    },
    /// Train the toy CNF, in one process or data-parallel (`--local-ranks N` threads, or `--mpi`
    /// under `mpirun` with `--features mpi`).
    Train(train::TrainArgs),
    /// The interpolation-accuracy table of `cheb`.
    Convergence {
        /// Output folder (default `target/bench/convergence` in the workspace).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Draws the plots and writes `report.md` for `results` into `out`.
fn render(out: &Path, results: &Results) -> AnyResult<()> {
    let (plots, note) = match plots::register_font() {
        Ok(()) => (plots::draw_all(out, results)?, None),
        Err(why) => (Vec::new(), Some(why)),
    };
    files::write(
        &out.join("report.md"),
        report::render(results, &plots, note.as_deref()),
    )?;
    Ok(())
}

fn rerender(dir: PathBuf) -> AnyResult<()> {
    let path = dir.join("results.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let results: Results =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if !(OLDEST_SCHEMA..=SCHEMA).contains(&results.schema) {
        return Err(format!(
            "{}: schema {} (this build reads {OLDEST_SCHEMA} to {SCHEMA})",
            path.display(),
            results.schema
        )
        .into());
    }
    render(&dir, &results)?;
    println!("wrote {}/report.md and plots", dir.display());
    Ok(())
}

fn write_json(out: &Path, results: &Results) -> AnyResult<()> {
    let text = serde_json::to_string_pretty(results)?;
    nn::io::write_atomic(out.join("results.json"), text.as_bytes())?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Bench(args) => bench::run(args)
            .map(|out| println!("wrote {}/report.md, results.json and plots", out.display())),
        Cmd::CompareTorch(args) => {
            compare::run(args).map(|out| println!("wrote {}", out.display()))
        }
        Cmd::Report { dir } => rerender(dir),
        Cmd::Train(args) => train::run(args),
        Cmd::Convergence { out } => {
            convergence::run(out.unwrap_or_else(|| files::in_workspace("target/bench/convergence")))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
