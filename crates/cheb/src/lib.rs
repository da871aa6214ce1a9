//! Chebyshev grids, barycentric interpolation and Chebyshev coefficients, for `f32` and `f64`.
//!
//! This crate is the storage format of the interpolated reverse dynamic method (IRDM, Daulbaev
//! et al., NeurIPS 2020): the forward ODE solve records the state at the `N + 1` nodes of a
//! Chebyshev grid, and the backward pass evaluates `z(t) ≈ Σ_k ℓ_k(t) z_k` by barycentric
//! interpolation. It depends on nothing else of the workspace.
//!
//! * [`Grid`] — nodes of the first kind or Chebyshev–Lobatto (second kind) on any interval
//!   `[a, b]` with matched barycentric weights ([`grid`] states the formulas); restriction of a
//!   nested Lobatto grid to a sub-grid ([`Grid::restrict`]).
//! * [`Grid::coefficients`], [`Grid::interpolate`], [`Grid::interpolate_into`], [`Interpolant`]
//!   and the allocation-free kernel [`combine`] — the second barycentric form ([`barycentric`]).
//! * [`Grid::chebyshev_coefficients`], [`chop`], [`clenshaw`] — coefficients of sampled data and an
//!   a-posteriori error estimate from their tail ([`coefficients`]).
//! * [`Grid::lebesgue_constant`] ([`lebesgue`]).
//!
//! Accuracy (Trefethen, ATAP, Theorem 8.2): if `f` is analytic in the Bernstein ellipse `E_ρ` of
//! `[a, b]` and `|f| ≤ M` there, the interpolant at `N + 1` Lobatto points satisfies
//! `‖f − p_N‖_∞ ≤ 4Mρ^{−N}/(ρ − 1)`. The tests in `tests/` check this bound, the geometric rate,
//! exactness on polynomials, the Lebesgue bound, and that mismatched nodes and weights (the
//! pairing in the paper's code) lose the spectral rate.
//!
//! ```
//! use cheb::{Grid, Kind};
//! let grid = Grid::<f64>::new(Kind::Lobatto, 32, 0.0, 1.0)?;
//! let f: Vec<f64> = grid.nodes().iter().map(|t| t.exp()).collect();
//! let p = grid.interpolate(&f, 0.123)?;
//! assert!((p - 0.123f64.exp()).abs() < 1e-14);
//! # Ok::<(), cheb::ChebError>(())
//! ```

pub mod barycentric;
pub mod coefficients;
pub mod error;
pub mod grid;
pub mod lebesgue;
mod real;

pub use barycentric::{Interpolant, coefficients_unchecked, combine};
pub use coefficients::{Chop, ChopRule, chop, clenshaw, coefficient_magnitudes, tail};
pub use error::{ChebError, Result};
pub use grid::{Grid, Kind};
pub use real::Real;

/// The README's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
