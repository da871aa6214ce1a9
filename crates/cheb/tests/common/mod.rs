//! Helpers shared by the integration tests.
#![allow(dead_code)]

use cheb::{Grid, Kind};

/// Maximum of `|p − f|` over `samples` equispaced points of the grid's interval.
pub fn max_error(grid: &Grid<f64>, f: &dyn Fn(f64) -> f64, samples: usize) -> f64 {
    let values: Vec<f64> = grid.nodes().iter().map(|&x| f(x)).collect();
    let (a, b) = grid.interval();
    (0..samples)
        .map(|i| {
            let t = a + (b - a) * i as f64 / (samples - 1) as f64;
            (grid.interpolate(&values, t).expect("inside") - f(t)).abs()
        })
        .fold(0.0, f64::max)
}

/// Both matched kinds.
pub const KINDS: [Kind; 2] = [Kind::Lobatto, Kind::First];

/// `max |f|` over the Bernstein ellipse `E_ρ` of `[−1, 1]`, `z = (ρe^{iθ} + ρ^{-1}e^{-iθ})/2`,
/// for `f` given as a function of `(re, im)` returning `|f(z)|`, sampled at 20 000 angles and
/// padded by 1 % (the maximum of a smooth function between samples this close is far below that).
pub fn max_on_ellipse(rho: f64, abs_f: &dyn Fn(f64, f64) -> f64) -> f64 {
    let n = 20_000;
    let m = (0..n)
        .map(|i| {
            let th = 2.0 * std::f64::consts::PI * i as f64 / n as f64;
            let re = 0.5 * (rho + 1.0 / rho) * th.cos();
            let im = 0.5 * (rho - 1.0 / rho) * th.sin();
            abs_f(re, im)
        })
        .fold(0.0, f64::max);
    1.01 * m
}

/// Least-squares slope of `ys` against `xs`.
pub fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    sxy / sxx
}
