//! Chebyshev grids on an interval `[a, b]` and their barycentric weights.
//!
//! A grid of degree `N` has `N + 1` nodes `τ_k = ((1 − x_k)·a + (1 + x_k)·b) / 2`, the image of
//! reference points `x_k ∈ [−1, 1]` listed in increasing order (so `τ_0` is nearest `a` and `τ_N`
//! nearest `b`; `a > b` is allowed and simply reverses the direction):
//!
//! * **second kind** (Chebyshev–Lobatto, the extrema of `T_N`): `x_k = −cos(kπ/N)`, which contains
//!   both end points; barycentric weights `w_k = (−1)^k δ_k` with `δ_0 = δ_N = 1/2`, else `1`;
//! * **first kind** (the roots of `T_{N+1}`): `x_k = −cos((2k+1)π/(2N+2))`, no end points;
//!   weights `w_k = (−1)^k sin((2k+1)π/(2N+2))`.
//!
//! The reference points are evaluated as `x_k = sin(π(2k − N)/(2N))` and
//! `x_k = sin(π(2k − N)/(2N + 2))`, which are the same numbers written so that the computed grid
//! is exactly symmetric. The weights are those of Berrut & Trefethen, *Barycentric Lagrange
//! Interpolation*, SIAM Review 46 (2004), eqs. (5.3)–(5.4), up to a common factor (which cancels
//! in the second barycentric form, so the affine map to `[a, b]` needs no rescaling).
//!
//! Nodes and weights must belong to the same kind. Lobatto nodes with first-kind weights (the
//! pairing in the IRDM authors' code) still interpolate the data at the nodes, but the resulting
//! rational function is not the polynomial interpolant and converges only algebraically;
//! [`Grid::with_weight_kind`] builds that pairing so that it can be measured, never by default.

use crate::error::{ChebError, Result};
use crate::real::Real;

/// Which Chebyshev points a grid uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Chebyshev points of the first kind (roots of `T_{N+1}`), interior points only.
    First,
    /// Chebyshev points of the second kind (Chebyshev–Lobatto, extrema of `T_N`), end points included.
    Lobatto,
}

impl Kind {
    /// Lower-case name, as used in reports (`"first"` or `"lobatto"`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::First => "first",
            Kind::Lobatto => "lobatto",
        }
    }
}

/// A Chebyshev grid of degree `N` (`N + 1` nodes) on `[a, b]` with its barycentric weights.
///
/// ```
/// use cheb::{Grid, Kind};
/// let grid = Grid::<f64>::new(Kind::Lobatto, 4, 0.0, 2.0)?;
/// assert_eq!(grid.len(), 5);
/// assert_eq!(grid.nodes()[0], 0.0);
/// assert_eq!(grid.nodes()[4], 2.0);
/// assert!((grid.nodes()[2] - 1.0).abs() < 1e-15);
/// # Ok::<(), cheb::ChebError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Grid<T: Real> {
    node_kind: Kind,
    weight_kind: Kind,
    a: T,
    b: T,
    nodes: Vec<T>,
    weights: Vec<T>,
}

fn check_interval<T: Real>(a: T, b: T) -> Result<()> {
    if !a.is_finite() || !b.is_finite() || a == b {
        return Err(ChebError::InvalidInterval {
            a: a.as_f64(),
            b: b.as_f64(),
        });
    }
    Ok(())
}

/// Reference points `x_k ∈ [−1, 1]`, increasing, of the given kind and degree `n ≥ 1`.
fn reference_points<T: Real>(kind: Kind, n: usize) -> Vec<T> {
    let pi = T::PI();
    let two = T::of(2.0);
    match kind {
        Kind::Lobatto => {
            let den = two * T::of(n as f64);
            (0..=n)
                .map(|k| (pi * T::of(2.0 * k as f64 - n as f64) / den).sin())
                .collect()
        }
        Kind::First => {
            let den = two * T::of(n as f64 + 1.0);
            (0..=n)
                .map(|k| (pi * T::of(2.0 * k as f64 - n as f64) / den).sin())
                .collect()
        }
    }
}

/// Barycentric weights of the given kind and degree `n ≥ 1`.
fn reference_weights<T: Real>(kind: Kind, n: usize) -> Vec<T> {
    let sign = |k: usize| {
        if k.is_multiple_of(2) {
            T::one()
        } else {
            -T::one()
        }
    };
    match kind {
        Kind::Lobatto => (0..=n)
            .map(|k| {
                let delta = if k == 0 || k == n {
                    T::of(0.5)
                } else {
                    T::one()
                };
                sign(k) * delta
            })
            .collect(),
        Kind::First => {
            let den = T::of(2.0 * n as f64 + 2.0);
            (0..=n)
                .map(|k| sign(k) * (T::PI() * T::of(2.0 * k as f64 + 1.0) / den).sin())
                .collect()
        }
    }
}

impl<T: Real> Grid<T> {
    /// The grid of the given kind and degree `n` (`n + 1` nodes) on `[a, b]`, with matched weights.
    ///
    /// Errors: [`ChebError::ZeroDegree`] for `n = 0`, [`ChebError::InvalidInterval`] when `a == b`
    /// or an end point is not finite.
    pub fn new(kind: Kind, n: usize, a: T, b: T) -> Result<Self> {
        Self::with_weight_kind(kind, kind, n, a, b)
    }

    /// Nodes of one kind with the weights of (possibly) another.
    ///
    /// Only `node_kind == weight_kind` gives the polynomial interpolant; the mismatched pairing
    /// exists to measure the loss of spectral accuracy it causes (see the module docs).
    pub fn with_weight_kind(
        node_kind: Kind,
        weight_kind: Kind,
        n: usize,
        a: T,
        b: T,
    ) -> Result<Self> {
        if n == 0 {
            return Err(ChebError::ZeroDegree);
        }
        check_interval(a, b)?;
        let half = T::of(0.5);
        let mut nodes: Vec<T> = reference_points::<T>(node_kind, n)
            .into_iter()
            .map(|x| half * ((T::one() - x) * a + (T::one() + x) * b))
            .collect();
        if node_kind == Kind::Lobatto {
            // The formula already gives the end points up to rounding; make them exact.
            nodes[0] = a;
            nodes[n] = b;
        }
        Ok(Self {
            node_kind,
            weight_kind,
            a,
            b,
            nodes,
            weights: reference_weights(weight_kind, n),
        })
    }

    /// Degree `N` of the grid (one less than the number of nodes).
    pub fn degree(&self) -> usize {
        self.nodes.len() - 1
    }

    /// Number of nodes, `N + 1`.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always `false`: a grid has at least two nodes.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The kind of the nodes.
    pub fn kind(&self) -> Kind {
        self.node_kind
    }

    /// The kind of the weights (equal to [`Grid::kind`] unless built by [`Grid::with_weight_kind`]).
    pub fn weight_kind(&self) -> Kind {
        self.weight_kind
    }

    /// Whether nodes and weights are of the same kind (the only pairing with spectral accuracy).
    pub fn is_matched(&self) -> bool {
        self.node_kind == self.weight_kind
    }

    /// The interval `(a, b)` as given (`a > b` allowed).
    pub fn interval(&self) -> (T, T) {
        (self.a, self.b)
    }

    /// Nodes `τ_0 … τ_N`, running from the `a` end to the `b` end.
    pub fn nodes(&self) -> &[T] {
        &self.nodes
    }

    /// Barycentric weights `w_0 … w_N`.
    pub fn weights(&self) -> &[T] {
        &self.weights
    }

    /// Whether `n` is a degree that a Lobatto grid of degree `self.degree()` nests: `1 ≤ m` and `m | N`.
    pub fn nests(&self, m: usize) -> bool {
        self.node_kind == Kind::Lobatto && m >= 1 && self.degree().is_multiple_of(m)
    }

    /// The Lobatto sub-grid of degree `m`, whose nodes are every `(N/m)`-th node of this one.
    ///
    /// Lobatto grids are nested: `−cos(kπ/m) = −cos(k(N/m)π/N)`. The sub-grid's nodes are copied
    /// (bit for bit) from this grid, so data stored at this grid's nodes restrict with
    /// [`Grid::restrict_values`] without new samples.
    ///
    /// Errors: [`ChebError::NotNested`] unless this grid is a matched Lobatto grid and `m ≥ 1`
    /// divides `N`.
    pub fn restrict(&self, m: usize) -> Result<Self> {
        if !self.is_matched() || !self.nests(m) {
            return Err(self.not_nested(m));
        }
        let stride = self.degree() / m;
        Ok(Self {
            node_kind: Kind::Lobatto,
            weight_kind: Kind::Lobatto,
            a: self.a,
            b: self.b,
            nodes: self.nodes.iter().step_by(stride).copied().collect(),
            weights: reference_weights(Kind::Lobatto, m),
        })
    }

    /// Restricts node data (`(N+1) × dim`, row-major: one row per node) to the sub-grid of degree
    /// `m`, i.e. keeps every `(N/m)`-th row.
    pub fn restrict_values(&self, values: &[T], dim: usize, m: usize) -> Result<Vec<T>> {
        if !self.nests(m) {
            return Err(self.not_nested(m));
        }
        self.check_values(values, dim)?;
        let stride = self.degree() / m;
        let mut out = Vec::with_capacity((m + 1) * dim);
        for row in values.chunks_exact(dim).step_by(stride) {
            out.extend_from_slice(row);
        }
        Ok(out)
    }

    fn not_nested(&self, m: usize) -> ChebError {
        ChebError::NotNested {
            kind: if self.is_matched() {
                self.node_kind.name()
            } else {
                "mismatched"
            },
            n: self.degree(),
            m,
        }
    }

    /// Checks that `values` holds `(N + 1) × dim` numbers and `dim ≥ 1`.
    pub(crate) fn check_values(&self, values: &[T], dim: usize) -> Result<()> {
        let expected = self.len() * dim;
        if dim == 0 || values.len() != expected {
            return Err(ChebError::LengthMismatch {
                what: "node values ((N + 1) × dim)",
                expected,
                got: values.len(),
            });
        }
        Ok(())
    }
}
