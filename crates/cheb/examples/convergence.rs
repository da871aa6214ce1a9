//! Maximum barycentric interpolation error on `[−1, 1]` for `exp(x)` and the Runge function
//! `1/(1 + 25x²)`, N = 4, 8, 16, 32, 64, on Lobatto and first-kind grids with matched weights and
//! on Lobatto nodes with first-kind weights ("mismatched", the pairing of the IRDM authors' code).
//!
//! Prints one JSON object per line:
//! `{"kind": "lobatto"|"first"|"mismatched", "f": "exp"|"runge", "n": N, "max_err": E}`.
//!
//! Run with `cargo run --release -p irdm-cheb --example convergence`.

use cheb::{ChebError, Grid, Kind};

/// Number of equispaced sample points on `[−1, 1]` at which the error is measured.
const SAMPLES: usize = 10_001;

fn max_error(grid: &Grid<f64>, f: fn(f64) -> f64) -> Result<f64, ChebError> {
    let values: Vec<f64> = grid.nodes().iter().map(|&x| f(x)).collect();
    let mut worst = 0.0f64;
    for i in 0..SAMPLES {
        let x = -1.0 + 2.0 * i as f64 / (SAMPLES - 1) as f64;
        worst = worst.max((grid.interpolate(&values, x)? - f(x)).abs());
    }
    Ok(worst)
}

/// A named test function.
type Named = (&'static str, fn(f64) -> f64);

fn main() -> Result<(), ChebError> {
    let functions: [Named; 2] = [("exp", f64::exp), ("runge", |x| 1.0 / (1.0 + 25.0 * x * x))];
    let pairings = [
        ("lobatto", Kind::Lobatto, Kind::Lobatto),
        ("first", Kind::First, Kind::First),
        ("mismatched", Kind::Lobatto, Kind::First),
    ];
    for (fname, f) in functions {
        for (kind, nodes, weights) in pairings {
            for n in [4usize, 8, 16, 32, 64] {
                let grid = Grid::with_weight_kind(nodes, weights, n, -1.0, 1.0)?;
                let err = max_error(&grid, f)?;
                println!(r#"{{"kind": "{kind}", "f": "{fname}", "n": {n}, "max_err": {err:e}}}"#);
            }
        }
    }
    Ok(())
}
