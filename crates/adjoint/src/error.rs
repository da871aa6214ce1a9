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
    /// IRDM's grid cannot meet the requested accuracy within the caps (the default of
    /// [`crate::OnUnderResolved`]): rather than a gradient from an under-resolved `z(t)`.
    #[error(
        "{method}: the Chebyshev grid of segment {segment} (t in [{t_start}, {t_end}]) is under-resolved: \
         estimated interpolation error {estimate:e} > tolerance {tolerance:e} at the cap {cap} = {cap_value} \
         (raise the cap, loosen the tolerance, use shorter segments, or opt in to a flagged result)"
    )]
    UnderResolved {
        /// Gradient method.
        method: &'static str,
        /// Index of the segment (forward-time order, from 0).
        segment: usize,
        /// Segment start.
        t_start: f64,
        /// Segment end.
        t_end: f64,
        /// Interpolation-error estimate at the cap.
        estimate: f64,
        /// The accuracy required.
        tolerance: f64,
        /// Which cap was hit: `"n_max"` (degree per segment), `"max_nodes"` (nodes over all
        /// segments) or `"N"` (a fixed grid's degree).
        cap: &'static str,
        /// Its value.
        cap_value: usize,
    },
    /// RDM's reverse-time `z` drifted from the forward solution beyond
    /// [`crate::RdmCheck::max_discrepancy`]: its gradient cannot be trusted.
    #[error(
        "{method}: the backward re-solve of z drifted from the forward solution at t = {t}: \
         relative discrepancy {discrepancy:e} > limit {limit:e} (the reverse-time z solve \
         is unstable here; use IRDM, ANODE or Direct, or opt in to a flagged result)"
    )]
    Reconstruction {
        /// Gradient method.
        method: &'static str,
        /// Output time where the discrepancy was found.
        t: f64,
        /// The discrepancy there, relative to the state's size.
        discrepancy: f64,
        /// The limit.
        limit: f64,
    },
    /// The loss given to [`crate::gradient`] is NaN or infinite.
    #[error("the loss is {value}: not finite, so it has no gradient")]
    NonFiniteLoss {
        /// The loss.
        value: f64,
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
