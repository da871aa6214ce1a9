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
use crate::method::{GridInfo, Method, SegmentInfo};
use crate::vjp::Real;
use cheb::{ChopRule, Grid};
use rk::Vector;
use std::ops::Range;

/// The accepted sub-grid, its node values (row per node, on the backend of `node_values`) and
/// the grid record.
///
/// The coefficients are formed where the node values live: coefficient `k` of level `L` is one
/// `combine_strided_rows` over every `(N_max/L)`-th stored row (the transform's row `k`), and
/// their magnitudes come back together (`max_abs_groups`: one readback per level on a GPU,
/// instead of the whole `(N_max + 1) × dim` node block).
pub(crate) fn choose<T: Real, V: Vector<Scalar = T>>(
    grid: &Grid<T>,
    node_values: &V,
    n: usize,
    rel_tol: f64,
    abs_tol: f64,
    method: &Method,
) -> Result<(Grid<T>, V, GridInfo)> {
    let err = |source| AdjointError::Grid {
        method: method.name(),
        source,
    };
    let n_stored = grid.degree();
    let rule = ChopRule {
        rel_tol: <T as cheb::Real>::of(rel_tol),
        abs_tol: <T as cheb::Real>::of(abs_tol),
    };
    let mut row = node_values.zeros_with_len(n);
    let mut level = 4.min(n_stored);
    loop {
        let sub = grid.restrict(level).map_err(err)?;
        let transform = sub.coefficient_matrix();
        let stride = n_stored / level;
        let mut coeffs = node_values.zeros_with_len((level + 1) * n);
        for (k, weights) in transform.chunks_exact(level + 1).enumerate() {
            row.combine_strided_rows(weights, node_values, 0, stride);
            coeffs.set_row(k, &row);
        }
        let groups: Vec<Range<usize>> = (0..=level).map(|k| k * n..(k + 1) * n).collect();
        let mags = coeffs.max_abs_groups(&groups);
        let chopped = cheb::chop(&mags, rule).map_err(err)?;
        if chopped.degree <= level / 2 || level == n_stored {
            let m = sub.smallest_nested_degree(chopped.degree).unwrap_or(level);
            let estimate = if m < level {
                <T as cheb::Real>::of(2.0) * cheb::tail(&mags, m)
            } else {
                chopped.error_estimate
            };
            // The accepted grid's node values: every (N_max/m)-th stored row.
            let step = n_stored / m;
            let mut values = node_values.zeros_with_len((m + 1) * n);
            for j in 0..=m {
                row.combine_strided_rows(&[T::one()], node_values, j * step, 1);
                values.set_row(j, &row);
            }
            let scale = mags.iter().fold(T::zero(), |m, &c| m.max(c));
            let tolerance = <T as cheb::Real>::as_f64(rule.abs_tol + rule.rel_tol * scale);
            let resolved = chopped.degree <= level / 2;
            let (a, b) = grid.interval();
            let estimate = <T as cheb::Real>::as_f64(estimate);
            let info = GridInfo {
                kind: "lobatto",
                n: m,
                n_stored,
                error_estimate: Some(estimate),
                nodes: m + 1,
                window_floats: 0,
                under_resolved: !resolved,
                segments: vec![SegmentInfo {
                    t_start: <T as cheb::Real>::as_f64(a),
                    t_end: <T as cheb::Real>::as_f64(b),
                    steps: 0,
                    n: m,
                    error_estimate: estimate,
                    tolerance: Some(tolerance),
                }],
            };
            return Ok((sub.restrict(m).map_err(err)?, values, info));
        }
        level *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cheb::Kind;

    /// The rule computed directly on host rows with the grids' own coefficient transform
    /// (the definition `choose` must agree with): the accepted degree and error estimate.
    fn reference(grid: &Grid<f64>, values: &[f64], n: usize, rule: ChopRule<f64>) -> (usize, f64) {
        let n_stored = grid.degree();
        let mut level = 4.min(n_stored);
        loop {
            let sub = grid.restrict(level).unwrap();
            let vals = grid.restrict_values(values, n, level).unwrap();
            let coeffs = sub.chebyshev_coefficients(&vals, n).unwrap();
            let mags = cheb::coefficient_magnitudes(&coeffs, n);
            let chopped = cheb::chop(&mags, rule).unwrap();
            if chopped.degree <= level / 2 || level == n_stored {
                let m = sub.smallest_nested_degree(chopped.degree).unwrap_or(level);
                let est = if m < level {
                    2.0 * cheb::tail(&mags, m)
                } else {
                    chopped.error_estimate
                };
                return (m, est);
            }
            level *= 2;
        }
    }

    #[test]
    fn the_chop_on_vectors_matches_the_rule_on_host_rows() {
        let grid = Grid::<f64>::new(Kind::Lobatto, 128, 0.0, 2.0).unwrap();
        let n = 3;
        let values: Vec<f64> = grid
            .nodes()
            .iter()
            .flat_map(|&t| [(3.0 * t).sin(), t.exp(), 0.1 * t.powi(5)])
            .collect();
        for (rel_tol, abs_tol) in [(1e-3, 0.0), (1e-8, 0.0), (1e-12, 1e-14)] {
            let rule = ChopRule { rel_tol, abs_tol };
            let (m_ref, est_ref) = reference(&grid, &values, n, rule);
            let (sub, got, info) =
                choose(&grid, &values, n, rel_tol, abs_tol, &Method::Direct).unwrap();
            assert_eq!(info.n, m_ref, "tol {rel_tol}");
            assert_eq!(sub.degree(), m_ref);
            let est = info.error_estimate.unwrap();
            assert!(
                (est - est_ref).abs() <= 1e-12 * est_ref.max(1e-300) + 1e-15,
                "{est} vs {est_ref}"
            );
            // The kept values are the stored rows of the accepted sub-grid, exactly.
            assert_eq!(got, grid.restrict_values(&values, n, m_ref).unwrap());
        }
    }
}
