//! Barycentric interpolation in the second ("true") form.
//!
//! For nodes `τ_k` with weights `w_k`, the interpolant of data `f_k` is
//!
//! ```text
//!     p(t) = Σ_k ℓ_k(t) f_k,      ℓ_k(t) = (w_k / (t − τ_k)) / Σ_j (w_j / (t − τ_j)),
//! ```
//!
//! with `ℓ_k(τ_j) = δ_kj` returned exactly at the nodes (Berrut & Trefethen 2004, eq. (4.2);
//! Higham 2004 proves the formula forward stable at Chebyshev points). The coefficients `ℓ_k(t)`
//! depend only on `t`, so interpolating a state vector of any length is one linear combination
//! `Σ_k ℓ_k(t) z_k` of stored node vectors — computed once per `t`, at `O(N)` cost, then applied by
//! the allocation-free kernel [`combine`].

use crate::error::{ChebError, Result};
use crate::grid::Grid;
use crate::real::Real;

impl<T: Real> Grid<T> {
    /// Validates an evaluation point: finite and inside the interval. A point outside by at most
    /// a few units of rounding (`4·ε·max(|a|, |b|)`) is clamped onto the interval, so that a
    /// time stepper's `t + h` that misses the end point by rounding is still accepted.
    pub fn check_point(&self, t: T) -> Result<T> {
        if !t.is_finite() {
            return Err(ChebError::NonFinite {
                what: "evaluation point t",
                value: t.as_f64(),
            });
        }
        let (a, b) = self.interval();
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        let slack = T::of(4.0) * T::epsilon() * a.abs().max(b.abs());
        if t < lo - slack || t > hi + slack {
            return Err(ChebError::OutsideInterval {
                t: t.as_f64(),
                a: a.as_f64(),
                b: b.as_f64(),
            });
        }
        Ok(t.max(lo).min(hi))
    }

    /// Writes the barycentric coefficients `ℓ_0(t) … ℓ_N(t)` into `out` (length `N + 1`).
    ///
    /// At a node `τ_j` the result is exactly the unit vector `e_j`. The coefficients sum to one.
    ///
    /// ```
    /// use cheb::{Grid, Kind};
    /// let grid = Grid::<f64>::new(Kind::First, 6, -1.0, 1.0)?;
    /// let mut l = vec![0.0; grid.len()];
    /// grid.coefficients(0.3, &mut l)?;
    /// assert!((l.iter().sum::<f64>() - 1.0).abs() < 1e-14);
    /// # Ok::<(), cheb::ChebError>(())
    /// ```
    pub fn coefficients(&self, t: T, out: &mut [T]) -> Result<()> {
        if out.len() != self.len() {
            return Err(ChebError::LengthMismatch {
                what: "coefficient buffer (N + 1)",
                expected: self.len(),
                got: out.len(),
            });
        }
        let t = self.check_point(t)?;
        coefficients_unchecked(self.nodes(), self.weights(), t, out);
        Ok(())
    }

    /// Interpolates scalar data `values[k] = f(τ_k)` at `t`.
    pub fn interpolate(&self, values: &[T], t: T) -> Result<T> {
        let mut out = [T::zero()];
        self.interpolate_into(values, 1, t, &mut out)?;
        Ok(out[0])
    }

    /// Interpolates vector data at `t`: `values` holds one row of length `dim` per node
    /// (`(N + 1) × dim`, row-major) and `out` receives `Σ_k ℓ_k(t) values[k, :]`.
    ///
    /// This allocates the `N + 1` coefficients; use [`Interpolant`] in loops.
    pub fn interpolate_into(&self, values: &[T], dim: usize, t: T, out: &mut [T]) -> Result<()> {
        self.check_values(values, dim)?;
        check_out(out, dim)?;
        let mut l = vec![T::zero(); self.len()];
        self.coefficients(t, &mut l)?;
        combine(&l, values, out);
        Ok(())
    }
}

fn check_out<T>(out: &[T], dim: usize) -> Result<()> {
    if out.len() != dim {
        return Err(ChebError::LengthMismatch {
            what: "output vector (dim)",
            expected: dim,
            got: out.len(),
        });
    }
    Ok(())
}

/// The barycentric coefficients at a point already known to be valid, without allocation.
///
/// `nodes`, `weights` and `out` must have equal lengths.
pub fn coefficients_unchecked<T: Real>(nodes: &[T], weights: &[T], t: T, out: &mut [T]) {
    debug_assert!(nodes.len() == weights.len() && nodes.len() == out.len());
    if let Some(j) = nodes.iter().position(|&x| x == t) {
        out.fill(T::zero());
        out[j] = T::one();
        return;
    }
    let mut sum = T::zero();
    for ((o, &x), &w) in out.iter_mut().zip(nodes).zip(weights) {
        *o = w / (t - x);
        sum = sum + *o;
    }
    if !sum.is_finite() || sum == T::zero() {
        // t sits within rounding of a node: w/(t − τ) overflowed. The interpolant there is the
        // node value to working precision.
        let j = nearest(nodes, t);
        out.fill(T::zero());
        out[j] = T::one();
        return;
    }
    let inv = sum.recip();
    for o in out.iter_mut() {
        *o = *o * inv;
    }
}

fn nearest<T: Real>(nodes: &[T], t: T) -> usize {
    let mut best = 0;
    for (k, &x) in nodes.iter().enumerate() {
        if (x - t).abs() < (nodes[best] - t).abs() {
            best = k;
        }
    }
    best
}

/// The linear-combination kernel `out = Σ_k coeffs[k] · values[k, :]`, with `values` row-major
/// `coeffs.len() × out.len()`. Allocation-free; rows with a zero coefficient are skipped.
pub fn combine<T: Real>(coeffs: &[T], values: &[T], out: &mut [T]) {
    let dim = out.len();
    debug_assert_eq!(values.len(), coeffs.len() * dim);
    out.fill(T::zero());
    for (&c, row) in coeffs.iter().zip(values.chunks_exact(dim)) {
        if c == T::zero() {
            continue;
        }
        for (o, &v) in out.iter_mut().zip(row) {
            *o = *o + c * v;
        }
    }
}

/// A grid together with vector data at its nodes: the object IRDM's backward pass queries.
///
/// Holds the `(N + 1) × dim` node values and a coefficient buffer, so that [`Interpolant::eval`]
/// allocates nothing.
///
/// ```
/// use cheb::{Grid, Interpolant, Kind};
/// let grid = Grid::<f64>::new(Kind::Lobatto, 16, 0.0, 1.0)?;
/// // Store (sin t, cos t) at the nodes.
/// let values: Vec<f64> = grid.nodes().iter().flat_map(|&t| [t.sin(), t.cos()]).collect();
/// let mut interp = Interpolant::new(grid, values, 2)?;
/// let mut z = [0.0; 2];
/// interp.eval(0.3, &mut z)?;
/// assert!((z[0] - 0.3f64.sin()).abs() < 1e-14 && (z[1] - 0.3f64.cos()).abs() < 1e-14);
/// # Ok::<(), cheb::ChebError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Interpolant<T: Real> {
    grid: Grid<T>,
    values: Vec<T>,
    dim: usize,
    coeffs: Vec<T>,
}

impl<T: Real> Interpolant<T> {
    /// Wraps node data `(N + 1) × dim` (row-major) on `grid`.
    pub fn new(grid: Grid<T>, values: Vec<T>, dim: usize) -> Result<Self> {
        grid.check_values(&values, dim)?;
        if let Some(&bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(ChebError::NonFinite {
                what: "node value",
                value: bad.as_f64(),
            });
        }
        let coeffs = vec![T::zero(); grid.len()];
        Ok(Self {
            grid,
            values,
            dim,
            coeffs,
        })
    }

    /// The grid.
    pub fn grid(&self) -> &Grid<T> {
        &self.grid
    }

    /// Length of each node vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Node data, `(N + 1) × dim` row-major.
    pub fn values(&self) -> &[T] {
        &self.values
    }

    /// Number of floats held (node values plus the coefficient buffer).
    pub fn stored_floats(&self) -> usize {
        self.values.len() + self.coeffs.len()
    }

    /// Writes the interpolated vector at `t` into `out` (length `dim`). Allocation-free.
    pub fn eval(&mut self, t: T, out: &mut [T]) -> Result<()> {
        check_out(out, self.dim)?;
        self.grid.coefficients(t, &mut self.coeffs)?;
        combine(&self.coeffs, &self.values, out);
        Ok(())
    }
}
