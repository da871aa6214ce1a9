//! IRDM's automatic grid: from node values stored on a nested Lobatto grid of degree `N_max`,
//! the smallest nested sub-grid that interpolates them to a tolerance.
//!
//! Coarse to fine over the nested sub-grids (degrees 4, 8, …): the Chebyshev coefficients of
//! the level-`L` interpolant (per component) are chopped with the rule
//! `tail ≤ abs_tol + rel_tol · max|c_m|` (maximum over components); the first level whose
//! coefficients have decayed below the rule over at least the upper half of its degrees is
//! accepted, and its smallest nested degree `m` covering the chopped degree is kept, with the
//! error estimate `2 · tail(m)`. Costs `O(Σ L² · dim)` up to the accepted level instead of
//! `O(N_max² · dim)`.

use crate::error::{AdjointError, Result};
use crate::method::{GridInfo, Method};
use crate::vjp::Real;
use cheb::{ChopRule, Grid};

/// The accepted sub-grid, its node values (row per node) and the grid record.
pub(crate) fn choose<T: Real>(
    grid: &Grid<T>,
    node_values: &[T],
    n: usize,
    rel_tol: f64,
    abs_tol: f64,
    method: &Method,
) -> Result<(Grid<T>, Vec<T>, GridInfo)> {
    let err = |source| AdjointError::Grid {
        method: method.name(),
        source,
    };
    let n_stored = grid.degree();
    let rule = ChopRule {
        rel_tol: <T as cheb::Real>::of(rel_tol),
        abs_tol: <T as cheb::Real>::of(abs_tol),
    };
    let mut level = 4.min(n_stored);
    loop {
        let sub = grid.restrict(level).map_err(err)?;
        let vals = grid.restrict_values(node_values, n, level).map_err(err)?;
        let coeffs = sub.chebyshev_coefficients(&vals, n).map_err(err)?;
        let mags = cheb::coefficient_magnitudes(&coeffs, n);
        let chopped = cheb::chop(&mags, rule).map_err(err)?;
        if chopped.degree <= level / 2 || level == n_stored {
            let m = sub.smallest_nested_degree(chopped.degree).unwrap_or(level);
            let estimate = if m < level {
                <T as cheb::Real>::of(2.0) * cheb::tail(&mags, m)
            } else {
                chopped.error_estimate
            };
            let values = sub.restrict_values(&vals, n, m).map_err(err)?;
            let info = GridInfo {
                kind: "lobatto",
                n: m,
                n_stored,
                error_estimate: Some(<T as cheb::Real>::as_f64(estimate)),
            };
            return Ok((sub.restrict(m).map_err(err)?, values, info));
        }
        level *= 2;
    }
}
