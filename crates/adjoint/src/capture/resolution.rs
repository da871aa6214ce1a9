//! How well a captured grid resolves `z(t)`: the Chebyshev coefficient magnitudes of a
//! segment's node values, `max_components |c_m|` for `m = 0..=N`, formed where the values live;
//! a fixed grid's estimate `2 (|c_{N−1}| + |c_N|)` and its test against
//! [`IrdmOptions::fixed_tolerance`] (`estimate ≤ 2 · (a + r · max_m |c_m|)`), read at once or
//! deferred to the backward solver's first readback ([`GridCheck`]); an ablation rule's
//! distance from the matched interpolant; and the errors a failed check gives.

use super::grid_err;
use crate::error::{AdjointError, Result};
use crate::method::{GridInfo, IrdmOptions, Method, OnUnderResolved, SegmentInfo};
use crate::piecewise::{NodeRule, rule_coefficients};
use crate::vjp::Real;
use cheb::{Grid, Kind};
use rk::{Deferred, Vector};
use std::ops::Range;

/// A fixed grid's segment whose check is still to be read: its coefficient magnitudes,
/// deferred ([`Vector::max_abs_groups_deferred`]).
pub(super) struct PendingSegment<T> {
    pub(super) index: usize,
    pub(super) degree: usize,
    pub(super) magnitudes: Deferred<T>,
    /// Added to the estimate: an ablation's midpoint distance from the matched interpolant.
    pub(super) extra: f64,
}

/// IRDM's grid record as the forward pass leaves it, with the fixed grids' checks not yet
/// read. A fixed grid's estimate `2 (|c_{N−1}| + |c_N|)` needs its coefficient magnitudes,
/// and nothing in the forward pass waits for them: on a GPU they come back with the backward
/// solver's first norms instead of in a round trip at the end of the forward pass.
/// [`GridCheck::resolve`] fills the estimates and says whether a segment is under-resolved
/// (an error unless [`OnUnderResolved::Flag`]) or its node
/// values are not finite. Automatic grids are chosen during the forward pass, so theirs is
/// read there.
pub(crate) struct GridCheck<T> {
    pub(super) method: Method,
    pub(super) options: IrdmOptions,
    pub(super) info: GridInfo,
    pub(super) pending: Vec<PendingSegment<T>>,
}

impl<T: Real> GridCheck<T> {
    /// A record with nothing left to read.
    pub(super) fn read(method: Method, options: IrdmOptions, info: GridInfo) -> Self {
        Self {
            method,
            options,
            info,
            pending: Vec::new(),
        }
    }

    /// The completed record, and the first failure of a segment (`Ok` where none failed or
    /// under-resolution is only flagged).
    pub fn resolve(self) -> (GridInfo, Result<()>) {
        let Self {
            method,
            options,
            mut info,
            pending,
        } = self;
        let mut outcome = Ok(());
        let resolved = !pending.is_empty();
        for p in pending {
            let mags = as_f64(p.magnitudes.get());
            let seg = &mut info.segments[p.index];
            if let Some(&bad) = mags.iter().find(|m| !m.is_finite()) {
                seg.error_estimate = f64::INFINITY;
                info.under_resolved = true;
                if outcome.is_ok() {
                    outcome = Err(non_finite_node(&method, bad));
                }
                continue;
            }
            let (estimate, tolerance) = fixed_check(&mags, &options);
            seg.error_estimate = estimate + p.extra;
            seg.tolerance = tolerance;
            if seg
                .tolerance
                .is_some_and(|tol| seg.error_estimate > 2.0 * tol)
            {
                info.under_resolved = true;
                if outcome.is_ok() {
                    outcome =
                        under_resolved_or_flag(&method, &options, p.index, seg, "N", p.degree);
                }
            }
        }
        if resolved {
            let worst = info
                .segments
                .iter()
                .fold(0.0f64, |m, s| m.max(s.error_estimate));
            info.error_estimate = Some(worst);
        }
        (info, outcome)
    }
}

pub(super) fn under_resolved(
    method: &Method,
    segment: usize,
    info: &SegmentInfo,
    cap: &'static str,
    cap_value: usize,
) -> AdjointError {
    AdjointError::UnderResolved {
        method: method.name(),
        segment,
        t_start: info.t_start,
        t_end: info.t_end,
        estimate: info.error_estimate,
        tolerance: 2.0 * info.tolerance.unwrap_or(0.0),
        cap,
        cap_value,
    }
}

/// `Err(UnderResolved)` unless the user opted in to a flagged result.
pub(super) fn under_resolved_or_flag(
    method: &Method,
    options: &IrdmOptions,
    segment: usize,
    info: &SegmentInfo,
    cap: &'static str,
    cap_value: usize,
) -> Result<()> {
    match options.on_under_resolved {
        OnUnderResolved::Error => Err(under_resolved(method, segment, info, cap, cap_value)),
        OnUnderResolved::Flag => Ok(()),
    }
}

/// Coefficient magnitudes as `f64`.
pub(super) fn as_f64<T: Real>(mags: Vec<T>) -> Vec<f64> {
    mags.into_iter().map(<T as cheb::Real>::as_f64).collect()
}

/// A fixed grid's estimate from its coefficient magnitudes and the tolerance it must meet
/// ([`IrdmOptions::fixed_tolerance`] scaled by the largest magnitude), if any.
pub(super) fn fixed_check(mags: &[f64], options: &IrdmOptions) -> (f64, Option<f64>) {
    let scale = mags.iter().fold(0.0f64, |m, &c| m.max(c));
    let tolerance = options.fixed_tolerance.map(|(r, a)| a + r * scale);
    (fixed_estimate(mags), tolerance)
}

/// A fixed grid's estimate from its own coefficients: `2 (|c_{N−1}| + |c_N|)`.
fn fixed_estimate(mags: &[f64]) -> f64 {
    let n = mags.len() - 1;
    2.0 * (mags[n] + if n >= 2 { mags[n - 1] } else { 0.0 })
}

/// `max_components |c_m|` for `m = 0..=N` of the node values `values` on `grid`, formed where
/// the values live (one combination per coefficient, one readback for all).
pub(super) fn magnitudes<T: Real, V: Vector<Scalar = T>>(
    grid: &Grid<T>,
    values: &V,
    n: usize,
    cache: &mut Vec<(Kind, usize, Vec<T>)>,
    method: &Method,
) -> Result<Vec<f64>> {
    let mags = as_f64(magnitudes_deferred(grid, values, n, cache).get());
    if let Some(&bad) = mags.iter().find(|m| !m.is_finite()) {
        return Err(non_finite_node(method, bad));
    }
    Ok(mags)
}

/// The error of a grid whose node values are not finite (`bad`: a coefficient magnitude).
pub(super) fn non_finite_node(method: &Method, bad: f64) -> AdjointError {
    AdjointError::Grid {
        method: method.name(),
        source: cheb::ChebError::NonFinite {
            what: "node value",
            value: bad,
        },
    }
}

/// [`magnitudes`] recorded, to be read later (non-finite node values give `+∞`). `cache` keeps
/// each kind and degree's map from node values to coefficients ([`Grid::coefficient_matrix`],
/// `O(N²)`; it does not depend on the interval).
pub(super) fn magnitudes_deferred<T: Real, V: Vector<Scalar = T>>(
    grid: &Grid<T>,
    values: &V,
    n: usize,
    cache: &mut Vec<(Kind, usize, Vec<T>)>,
) -> Deferred<T> {
    let (kind, deg) = (grid.kind(), grid.degree());
    let pos = match cache.iter().position(|(k, d, _)| *k == kind && *d == deg) {
        Some(p) => p,
        None => {
            cache.push((kind, deg, grid.coefficient_matrix()));
            cache.len() - 1
        }
    };
    let transform = &cache[pos].2;
    let size = deg + 1;
    let mut row = values.zeros_with_len(n);
    let mut coeffs = values.zeros_with_len(size * n);
    for (m, weights) in transform.chunks_exact(size).enumerate() {
        row.combine_rows(weights, values);
        coeffs.set_row(m, &row);
    }
    let groups: Vec<Range<usize>> = (0..size).map(|m| m * n..(m + 1) * n).collect();
    coeffs.max_abs_groups_deferred(&groups)
}

/// `max_j max_components |p_rule(t_j) − p_matched(t_j)|` at the midpoints `t_j` between
/// neighbouring nodes: how far an ablation rule is from the matched Chebyshev interpolant of
/// the same node values.
pub(super) fn midpoint_distance<T: Real, V: Vector<Scalar = T>>(
    grid: &Grid<T>,
    rule: NodeRule,
    matched: &Grid<T>,
    values: &V,
    n: usize,
    method: &Method,
) -> Result<f64> {
    let len = grid.len();
    let mut c_rule = vec![T::zero(); len];
    let mut c_matched = vec![T::zero(); len];
    let mut diff = values.zeros_with_len(n);
    let mut worst = 0.0f64;
    let half = <T as cheb::Real>::of(0.5);
    for w in grid.nodes().windows(2) {
        let t = (w[0] + w[1]) * half;
        rule_coefficients(rule, grid, t, &mut c_rule).map_err(grid_err(method))?;
        matched
            .coefficients(t, &mut c_matched)
            .map_err(grid_err(method))?;
        for (r, &m) in c_rule.iter_mut().zip(&c_matched) {
            *r = *r - m;
        }
        diff.combine_rows(&c_rule, values);
        let d = diff.max_abs_groups(std::slice::from_ref(&(0..n)))[0];
        worst = worst.max(<T as cheb::Real>::as_f64(d));
    }
    Ok(worst)
}
