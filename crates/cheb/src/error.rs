//! The one error type of the crate.

use thiserror::Error;

/// Everything that can go wrong in `cheb`; every message names the offending values.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ChebError {
    /// A grid needs at least two nodes (`N ≥ 1`).
    #[error("a Chebyshev grid needs degree N >= 1 (N + 1 >= 2 nodes), got N = 0")]
    ZeroDegree,
    /// The interval is empty (`a == b`) or has a non-finite end point.
    #[error("invalid interval [{a}, {b}]: end points must be finite and distinct")]
    InvalidInterval {
        /// Left end point as given.
        a: f64,
        /// Right end point as given.
        b: f64,
    },
    /// A slice has the wrong length.
    #[error("{what}: expected length {expected}, got {got}")]
    LengthMismatch {
        /// Which argument.
        what: &'static str,
        /// The length required.
        expected: usize,
        /// The length passed.
        got: usize,
    },
    /// A value that must be finite is NaN or infinite.
    #[error("{what} must be finite, got {value}")]
    NonFinite {
        /// Which argument.
        what: &'static str,
        /// The value passed.
        value: f64,
    },
    /// An evaluation point lies outside the interval of the grid.
    #[error("t = {t} lies outside the grid's interval [{a}, {b}]")]
    OutsideInterval {
        /// The evaluation point.
        t: f64,
        /// First end point of the grid.
        a: f64,
        /// Second end point of the grid.
        b: f64,
    },
    /// Restriction to a sub-grid needs a Lobatto grid with `N` a multiple of `M`.
    #[error(
        "cannot restrict a {kind} grid of degree {n} to degree {m}: needs a Lobatto grid and m >= 1 dividing n"
    )]
    NotNested {
        /// Kind of the grid that was asked.
        kind: &'static str,
        /// Degree of the fine grid.
        n: usize,
        /// Degree asked for.
        m: usize,
    },
    /// A tolerance is negative or not finite.
    #[error("tolerance {name} = {value} must be finite and >= 0")]
    BadTolerance {
        /// Which tolerance.
        name: &'static str,
        /// Its value.
        value: f64,
    },
}

/// Shorthand for `Result<T, ChebError>`.
pub type Result<T> = std::result::Result<T, ChebError>;
