//! The `mpi` suite of `cargo xtask bench` (a build with `--features mpi`): data-parallel
//! throughput of the toy CNF at a global batch of 10 000 with 1 and 2 MPI ranks of one thread
//! each, launched by `mpirun` on this binary's `train --mpi`, and the allreduce's share of the
//! iteration time.

use crate::results::MpiRun;
use std::path::Path;
use std::process::Command;

/// Global batch of the suite.
pub const BATCH: usize = 10_000;

/// Runs `mpirun -n R` for each of `ranks`, `iters` iterations of `method` each, writing each
/// run's folder under `out`.
pub fn run(out: &Path, ranks: &[usize], iters: usize, method: &str) -> Result<Vec<MpiRun>, String> {
    if !cfg!(feature = "mpi") {
        return Err(
            "--suite mpi needs a build with MPI: `cargo xtask-mpi bench --suite mpi`, i.e. \
                    `cargo run --release -p xtask --features mpi -- bench --suite mpi` \
                    (Debian: apt-get install openmpi-bin libopenmpi-dev libclang-dev)"
                .into(),
        );
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut runs: Vec<MpiRun> = Vec::new();
    for &n in ranks {
        let dir = out.join(format!("mpi-{n}-ranks"));
        let output = Command::new("mpirun")
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .args(["-n", &n.to_string(), "--oversubscribe"])
            .arg(&exe)
            .args(["train", "--mpi", "--threads", "1", "--method", method])
            .args(["--iters", &iters.to_string(), "--batch", &BATCH.to_string()])
            .arg("--out")
            .arg(&dir)
            .output()
            .map_err(|e| format!("cannot start mpirun ({e}); apt-get install openmpi-bin"))?;
        if !output.status.success() {
            return Err(format!(
                "mpirun -n {n} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let path = dir.join("train.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let num = |k: &str| {
            json[k]
                .as_f64()
                .ok_or(format!("{}: no {k}", path.display()))
        };
        let samples_per_second = num("samples_per_second_median")?;
        let base = runs
            .first()
            .map_or(samples_per_second, |r| r.samples_per_second);
        runs.push(MpiRun {
            ranks: n,
            threads_per_rank: 1,
            batch: BATCH,
            iters,
            method: method.into(),
            samples_per_second,
            speedup_vs_first: samples_per_second / base,
            allreduce_share: num("allreduce_share_median")?,
        });
    }
    Ok(runs)
}
