//! The one error type of the crate. Every variant carries the time and step size (or the
//! offending values) so that a failed solve says where it failed.

use thiserror::Error;

/// Everything that can go wrong in `rk`.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RkError {
    /// The state, a stage derivative or the error estimate became NaN or infinite.
    #[error(
        "non-finite {what} at t = {t} (step size h = {h}); check the right-hand side or reduce the step size"
    )]
    NonFinite {
        /// What was found non-finite.
        what: &'static str,
        /// Time at the start of the step.
        t: f64,
        /// Step size tried.
        h: f64,
    },
    /// The step size fell below what the time variable can resolve, or below `min_step`
    /// while the error test still failed.
    #[error("step size underflow at t = {t}: h = {h} (error ratio {error_ratio})")]
    StepSizeUnderflow {
        /// Time at which stepping stalled.
        t: f64,
        /// The step size that was too small.
        h: f64,
        /// The last error ratio (≤ 1 means acceptable).
        error_ratio: f64,
    },
    /// More than `max_steps` step attempts (accepted plus rejected).
    #[error("max_steps = {max_steps} exceeded at t = {t} (step size h = {h})")]
    MaxStepsExceeded {
        /// The limit.
        max_steps: usize,
        /// Time reached.
        t: f64,
        /// Current step size.
        h: f64,
    },
    /// A tolerance is not finite or not positive.
    #[error("tolerance {name} = {value} must be finite and > 0")]
    BadTolerance {
        /// Which tolerance (`rtol`, `atol` or `atol[i]`).
        name: String,
        /// Its value.
        value: f64,
    },
    /// A step-size option is invalid (non-finite, non-positive, or `min_step > max_step`).
    #[error("invalid step option {name} = {value}: {reason}")]
    BadStepOption {
        /// Which option.
        name: &'static str,
        /// Its value.
        value: f64,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Output times are not strictly monotone in one direction, or not finite.
    #[error(
        "output times must be finite and strictly monotone: t[{index}] = {next} after t[{prev_index}] = {prev}"
    )]
    TimesNotMonotone {
        /// Index of the earlier time.
        prev_index: usize,
        /// The earlier time.
        prev: f64,
        /// Index of the offending time.
        index: usize,
        /// The offending time.
        next: f64,
    },
    /// Fewer than two output times, or an empty or non-finite interval.
    #[error("invalid time interval [{t0}, {t1}]: needs two distinct finite times")]
    BadInterval {
        /// Start.
        t0: f64,
        /// End.
        t1: f64,
    },
    /// A time asked for dense output lies outside the last step, or outside the interval.
    #[error("t = {t} lies outside [{from}, {to}]")]
    OutsideInterval {
        /// The requested time.
        t: f64,
        /// Start of the admissible range.
        from: f64,
        /// End of the admissible range.
        to: f64,
    },
    /// Vector lengths disagree (state, tolerances, norm ranges, outputs).
    #[error("{what}: expected length {expected}, got {got}")]
    LengthMismatch {
        /// Which object.
        what: &'static str,
        /// Required length.
        expected: usize,
        /// Length found.
        got: usize,
    },
    /// `rtol` is far below the float type's unit roundoff: no step can meet it.
    #[error(
        "rtol = {value:e} is below what this float type can resolve (unit roundoff {epsilon:e}; \
         rtol must be at least epsilon / 1000): use a larger rtol or a wider float type"
    )]
    UnresolvableTolerance {
        /// The rtol given.
        value: f64,
        /// The float type's machine epsilon.
        epsilon: f64,
    },
    /// The state has no components.
    #[error("the state is empty: an ODE needs at least one component")]
    EmptyState,
    /// A fixed-step solve needs a step size (`Options::first_step`).
    #[error("method {method} takes fixed steps: set Options::first_step to the step size")]
    MissingStepSize {
        /// The method name.
        method: &'static str,
    },
    /// `step` or `interpolate` was called before `init`, or after the end was reached.
    #[error("solver is not running: {0}")]
    NotRunning(&'static str),
}

/// Shorthand for `Result<T, RkError>`.
pub type Result<T> = std::result::Result<T, RkError>;
