//! Chebyshev coefficients of sampled data, and the "chop" rule that reads off how many of them
//! the data need.
//!
//! The interpolant through the `N + 1` node values is `p(x) = Σ_{m=0}^{N} c_m T_m(x)` on the
//! reference interval. With our increasing node order the discrete cosine transforms are
//!
//! * Lobatto nodes `x_k = −cos(kπ/N)`:
//!   `c_m = (2/N) (−1)^m Σ''_k f_k cos(mkπ/N)`, the double prime halving the `k = 0` and `k = N`
//!   terms, and then `c_0` and `c_N` halved (a DCT-I);
//! * first-kind nodes `x_k = −cos θ_k`, `θ_k = (2k+1)π/(2N+2)`:
//!   `c_m = (2/(N+1)) (−1)^m Σ_k f_k cos(mθ_k)`, then `c_0` halved (a DCT-II).
//!
//! (Trefethen, *Approximation Theory and Approximation Practice*, ch. 3; Mason & Handscomb,
//! *Chebyshev Polynomials*, §6.3.) Both are exact inverses of sampling for polynomials of degree
//! `≤ N`. The transforms are computed directly in `O(N²·dim)`, which for the `N ≤ 128` of IRDM is
//! cheaper than the state interpolation itself; [`Grid::coefficient_matrix`] forms the transform
//! itself in `O(N²)`.
//!
//! **Chop.** For a function with Chebyshev coefficients `a_m`, the interpolant `p_n` of degree
//! `n` satisfies `‖f − p_n‖_∞ ≤ 2 Σ_{m>n} |a_m|` (ATAP Theorem 4.2, aliasing). [`chop`] takes the
//! coefficient magnitudes of the finest grid as stand-ins for `|a_m|` and reports the smallest
//! degree `n` whose tail `Σ_{m>n} |c_m|` is at most `abs_tol + rel_tol · max_m |c_m|`, with the
//! a-posteriori error estimate `2 · tail`. A simplified form of chebfun's `chop`
//! (Aurentz & Trefethen, ACM TOMS 43, 2017): no plateau detection, a plain summed tail.

use crate::error::{ChebError, Result};
use crate::grid::{Grid, Kind};
use crate::real::Real;

/// Cosine of `π · num / den`, with the argument reduced exactly in integers first.
fn cos_pi_ratio<T: Real>(num: usize, den: usize) -> T {
    let r = num % (2 * den);
    (T::PI() * T::of(r as f64) / T::of(den as f64)).cos()
}

impl<T: Real> Grid<T> {
    /// Chebyshev coefficients of node data `(N + 1) × dim` (row-major, one row per node):
    /// returns `(N + 1) × dim` numbers, row `m` holding `c_m` for every component.
    ///
    /// Uses the node kind of the grid (weights play no part).
    ///
    /// ```
    /// use cheb::{Grid, Kind, clenshaw};
    /// let grid = Grid::<f64>::new(Kind::Lobatto, 8, -1.0, 1.0)?;
    /// // T_3(x) = 4x³ − 3x sampled at the nodes has coefficients e_3.
    /// let f: Vec<f64> = grid.nodes().iter().map(|&x| 4.0 * x * x * x - 3.0 * x).collect();
    /// let c = grid.chebyshev_coefficients(&f, 1)?;
    /// assert!((c[3] - 1.0).abs() < 1e-14);
    /// assert!((clenshaw(&c, 0.5) - (4.0 * 0.125 - 1.5)).abs() < 1e-14);
    /// # Ok::<(), cheb::ChebError>(())
    /// ```
    pub fn chebyshev_coefficients(&self, values: &[T], dim: usize) -> Result<Vec<T>> {
        self.check_values(values, dim)?;
        let n = self.degree();
        let mut out = vec![T::zero(); (n + 1) * dim];
        for m in 0..=n {
            let row = &mut out[m * dim..(m + 1) * dim];
            for (k, vals) in values.chunks_exact(dim).enumerate() {
                let w = self.coefficient_weight(m, k);
                for (o, &v) in row.iter_mut().zip(vals) {
                    *o = *o + w * v;
                }
            }
        }
        Ok(out)
    }

    /// The transform of [`Grid::chebyshev_coefficients`] as an `(N + 1) × (N + 1)` row-major
    /// matrix: entry `(m, k)` is the weight of node value `f_k` in `c_m`. Formed directly from the
    /// formulas above in `O(N²)`, for callers that apply the transform where the data live.
    ///
    /// ```
    /// use cheb::{Grid, Kind};
    /// let grid = Grid::<f64>::new(Kind::First, 5, 0.0, 2.0)?;
    /// let f: Vec<f64> = grid.nodes().iter().map(|x| x.exp()).collect();
    /// let (c, t) = (grid.chebyshev_coefficients(&f, 1)?, grid.coefficient_matrix());
    /// for m in 0..=5 {
    ///     let cm: f64 = (0..=5).map(|k| t[m * 6 + k] * f[k]).sum();
    ///     assert!((cm - c[m]).abs() < 1e-14);
    /// }
    /// # Ok::<(), cheb::ChebError>(())
    /// ```
    pub fn coefficient_matrix(&self) -> Vec<T> {
        let size = self.degree() + 1;
        let mut out = Vec::with_capacity(size * size);
        for m in 0..size {
            out.extend((0..size).map(|k| self.coefficient_weight(m, k)));
        }
        out
    }

    /// The weight of node value `f_k` in `c_m` (the module's formulas, scale and sign included).
    fn coefficient_weight(&self, m: usize, k: usize) -> T {
        let n = self.degree();
        let half = T::of(0.5);
        let sign = if m.is_multiple_of(2) {
            T::one()
        } else {
            -T::one()
        };
        match self.kind() {
            Kind::Lobatto => {
                let end_k = if k == 0 || k == n { half } else { T::one() };
                let end_m = if m == 0 || m == n { half } else { T::one() };
                end_k * cos_pi_ratio::<T>(m * k, n) * end_m * T::of(2.0) / T::of(n as f64) * sign
            }
            Kind::First => {
                let end_m = if m == 0 { half } else { T::one() };
                cos_pi_ratio::<T>(m * (2 * k + 1), 2 * n + 2) * end_m * T::of(2.0)
                    / T::of(n as f64 + 1.0)
                    * sign
            }
        }
    }

    /// Smallest degree `m ≥ max(d, 1)` to which this grid restricts ([`Grid::restrict`]), or
    /// `None` when this is not a matched Lobatto grid. For `N = 2^j` this is the next power of two.
    pub fn smallest_nested_degree(&self, d: usize) -> Option<usize> {
        if !self.is_matched() || self.kind() != Kind::Lobatto {
            return None;
        }
        (d.max(1)..=self.degree()).find(|&m| self.nests(m))
    }
}

/// Per-degree magnitudes `max_j |c_m[j]|` of vector coefficients `(N + 1) × dim` (row-major).
pub fn coefficient_magnitudes<T: Real>(coeffs: &[T], dim: usize) -> Vec<T> {
    coeffs
        .chunks_exact(dim.max(1))
        .map(|row| row.iter().fold(T::zero(), |acc, &c| acc.max(c.abs())))
        .collect()
}

/// Evaluates `Σ_m c_m T_m(x)` by Clenshaw's recurrence (scalar coefficients).
pub fn clenshaw<T: Real>(coeffs: &[T], x: T) -> T {
    let two_x = x + x;
    let (mut b1, mut b2) = (T::zero(), T::zero());
    for &c in coeffs.iter().skip(1).rev() {
        let b0 = c + two_x * b1 - b2;
        b2 = b1;
        b1 = b0;
    }
    match coeffs.first() {
        Some(&c0) => c0 + x * b1 - b2,
        None => T::zero(),
    }
}

/// Tolerances of the chop rule: a tail is small when `tail ≤ abs_tol + rel_tol · max_m |c_m|`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChopRule<T> {
    /// Relative tolerance, against the largest coefficient.
    pub rel_tol: T,
    /// Absolute tolerance, in the units of the data.
    pub abs_tol: T,
}

/// What [`chop`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chop<T> {
    /// Smallest degree whose coefficient tail passes the rule (at most `N`).
    pub degree: usize,
    /// `Σ_{m > degree} |c_m|`.
    pub tail: T,
    /// A-posteriori estimate of the interpolation error of degree `degree`: `2 · tail` when
    /// resolved; when not, `2 (|c_{N−1}| + |c_N|)`, the size of the last coefficients.
    pub error_estimate: T,
    /// Whether a degree below `N` passed, i.e. the grid resolves the data.
    pub resolved: bool,
}

/// Sum `Σ_{m > n} magnitudes[m]`.
pub fn tail<T: Real>(magnitudes: &[T], n: usize) -> T {
    magnitudes
        .iter()
        .skip(n + 1)
        .fold(T::zero(), |acc, &c| acc + c)
}

/// The smallest degree whose coefficient tail is below the rule's threshold (see module docs).
///
/// Errors: [`ChebError::BadTolerance`] for negative or non-finite tolerances,
/// [`ChebError::LengthMismatch`] for fewer than two magnitudes, [`ChebError::NonFinite`] for a
/// non-finite magnitude.
pub fn chop<T: Real>(magnitudes: &[T], rule: ChopRule<T>) -> Result<Chop<T>> {
    for (name, v) in [("rel_tol", rule.rel_tol), ("abs_tol", rule.abs_tol)] {
        if !v.is_finite() || v < T::zero() {
            return Err(ChebError::BadTolerance {
                name,
                value: v.as_f64(),
            });
        }
    }
    if magnitudes.len() < 2 {
        return Err(ChebError::LengthMismatch {
            what: "coefficient magnitudes (N + 1 >= 2)",
            expected: 2,
            got: magnitudes.len(),
        });
    }
    if let Some(&bad) = magnitudes.iter().find(|m| !m.is_finite()) {
        return Err(ChebError::NonFinite {
            what: "coefficient magnitude",
            value: bad.as_f64(),
        });
    }
    let n = magnitudes.len() - 1;
    let scale = magnitudes
        .iter()
        .fold(T::zero(), |acc, &c| acc.max(c.abs()));
    let threshold = rule.abs_tol + rule.rel_tol * scale;
    // Tails accumulated from the top degree down: tail(d) for d = N−1, N−2, …
    let mut running = T::zero();
    let mut degree = n;
    let mut degree_tail = T::zero();
    for d in (0..n).rev() {
        running = running + magnitudes[d + 1].abs();
        if running <= threshold {
            degree = d;
            degree_tail = running;
        } else {
            break;
        }
    }
    let resolved = degree < n;
    let error_estimate = if resolved {
        T::of(2.0) * degree_tail
    } else {
        T::of(2.0) * (magnitudes[n - 1].abs() + magnitudes[n].abs())
    };
    Ok(Chop {
        degree,
        tail: degree_tail,
        error_estimate,
        resolved,
    })
}
