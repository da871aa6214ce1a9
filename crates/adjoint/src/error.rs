//! The one error type of the crate.

use thiserror::Error;

/// Everything that can go wrong while computing a gradient.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AdjointError {
    /// An ODE solve failed; says which method and which pass.
    #[error("{method}: the {pass} solve failed: {source}")]
    Solve {
        /// Gradient method.
        method: &'static str,
        /// `"forward"`, `"backward"` or `"recomputation"`.
        pass: &'static str,
        /// The solver's error (with time and step size).
        source: rk::RkError,
    },
    /// A Chebyshev-grid operation failed.
    #[error("{method}: Chebyshev grid: {source}")]
    Grid {
        /// Gradient method.
        method: &'static str,
        /// The grid error.
        source: cheb::ChebError,
    },
    /// A vector has the wrong length.
    #[error("{what}: expected length {expected}, got {got}")]
    LengthMismatch {
        /// Which argument.
        what: &'static str,
        /// Required length.
        expected: usize,
        /// Length passed.
        got: usize,
    },
    /// A cotangent `∂L/∂z(s_k)` is NaN or infinite.
    #[error("cotangent for output {index} (t = {t}) has a non-finite component")]
    NonFiniteCotangent {
        /// Output index.
        index: usize,
        /// Output time.
        t: f64,
    },
    /// A method setting is invalid.
    #[error("invalid setting {name} = {value}: {reason}")]
    BadSetting {
        /// Which setting.
        name: &'static str,
        /// Its value.
        value: f64,
        /// Why.
        reason: &'static str,
    },
}

/// Shorthand for `Result<T, AdjointError>`.
pub type Result<T> = std::result::Result<T, AdjointError>;
