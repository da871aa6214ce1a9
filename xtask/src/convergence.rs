//! `cargo xtask convergence`: the interpolation-accuracy table of `cheb`.
//!
//! Runs `cheb`'s `convergence` example (interpolation error of `exp(x)` and `1/(1+25x²)` for
//! N = 4 … 64 on both grids and the mismatched pairing) and writes its lines as
//! `results.jsonl` plus a table in `report.md`.

use serde::Deserialize;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

/// One line printed by `cheb`'s convergence example.
#[derive(Debug, Deserialize)]
struct ConvergenceRow {
    kind: String,
    f: String,
    n: usize,
    max_err: f64,
}

/// Runs the example and writes the report into `out`.
pub fn run(out: PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    // The output folder is checked before the run, and the example is run from the workspace
    // this binary was built from, whatever the working directory.
    crate::files::prepare_out_dir(&out)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let run = Command::new(cargo)
        .current_dir(&workspace)
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "irdm-cheb",
            "--example",
            "convergence",
        ])
        .output()?;
    if !run.status.success() {
        return Err(format!(
            "the convergence example failed: {}",
            String::from_utf8_lossy(&run.stderr)
        )
        .into());
    }
    let text = String::from_utf8(run.stdout)?;
    let rows = text
        .lines()
        .map(serde_json::from_str::<ConvergenceRow>)
        .collect::<Result<Vec<_>, _>>()?;
    let mut md = String::from(
        "# Barycentric interpolation error on [-1, 1] (f64)\n\n\
         Maximum error over 10 001 equispaced points. `mismatched` = Lobatto nodes with first-kind weights.\n\n\
         | f | N | lobatto | first | mismatched |\n|---|---|---|---|---|\n",
    );
    let mut keys: Vec<(&str, usize)> = rows.iter().map(|r| (r.f.as_str(), r.n)).collect();
    keys.sort_by(|x, y| x.0.cmp(y.0).then(x.1.cmp(&y.1)));
    keys.dedup();
    for (f, n) in keys {
        let cell = |kind: &str| {
            rows.iter()
                .find(|r| r.f == f && r.n == n && r.kind == kind)
                .map_or_else(|| "–".to_string(), |r| format!("{:.3e}", r.max_err))
        };
        writeln!(
            md,
            "| {f} | {n} | {} | {} | {} |",
            cell("lobatto"),
            cell("first"),
            cell("mismatched")
        )?;
    }
    crate::files::write(&out.join("results.jsonl"), &text)?;
    crate::files::write(&out.join("report.md"), &md)?;
    print!("{md}");
    println!("\nwrote {}", out.display());
    Ok(())
}
