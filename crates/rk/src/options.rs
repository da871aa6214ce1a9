//! Solver options: tolerances, step-size limits, error norm and controller.
//!
//! **Default controller** (torchdiffeq-compatible, so that NFE can be compared side by side): a
//! step with error ratio `r` is accepted if `r ≤ 1`, and the next step is
//! `h ← h · min(ifactor, max(safety · r^{−1/p}, d))` with `p` the method's order, `safety = 0.9`,
//! `ifactor = 10`, and `d = 1` after an accepted step (never shrink), `d = dfactor = 0.2` after a
//! rejected one; `r = 0` grows by `ifactor`.
//!
//! **PI controller** (Gustafsson; Hairer & Wanner, *Solving ODEs II* §IV.2, as in `DOPRI5`):
//! after an accepted step `h ← h · clamp(safety · r^{−α} · r_prev^{β}, dfactor, ifactor)` with
//! `α = 1/p − 0.75β` and `r_prev` the ratio of the previous accepted step; after a rejection
//! `h ← h · clamp(safety · r^{−1/p}, dfactor, 1)`.

use crate::error::{Result, RkError};
use crate::scalar::Scalar;
use std::ops::Range;

/// Absolute tolerance as given by the user (on the host).
#[derive(Debug, Clone, PartialEq)]
pub enum Tolerance<T> {
    /// One value for every component.
    Scalar(T),
    /// One value per component.
    PerComponent(Vec<T>),
}

/// Which components the error norm measures.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ErrorNorm {
    /// RMS over every component.
    #[default]
    Full,
    /// RMS over one sub-range only (a seminorm: other components are not error-controlled).
    Range(Range<usize>),
    /// Maximum of the RMS norms of several groups (torchdiffeq's norm for tuple states).
    Groups(Vec<Range<usize>>),
}

impl ErrorNorm {
    /// The groups as ranges, checked against a state of length `n`.
    pub fn groups(&self, n: usize) -> Result<Vec<Range<usize>>> {
        let groups = match self {
            ErrorNorm::Full => std::iter::once(0..n).collect(),
            ErrorNorm::Range(r) => vec![r.clone()],
            ErrorNorm::Groups(g) => g.clone(),
        };
        for g in &groups {
            if g.start >= g.end || g.end > n {
                return Err(RkError::LengthMismatch {
                    what: "error-norm range (non-empty, end <= state length)",
                    expected: n,
                    got: g.end,
                });
            }
        }
        if groups.is_empty() {
            return Err(RkError::LengthMismatch {
                what: "error-norm groups (at least one)",
                expected: 1,
                got: 0,
            });
        }
        Ok(groups)
    }
}

/// Step-size controller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Controller {
    /// torchdiffeq's integral controller (see module docs).
    Integral {
        /// Safety factor (0.9).
        safety: f64,
        /// Largest growth factor (10).
        ifactor: f64,
        /// Smallest shrink factor after a rejection (0.2).
        dfactor: f64,
    },
    /// Proportional–integral controller (see module docs).
    Pi {
        /// Safety factor (0.9).
        safety: f64,
        /// Largest growth factor (10).
        ifactor: f64,
        /// Smallest shrink factor (0.2).
        dfactor: f64,
        /// The integral gain `β` (0.04).
        beta: f64,
    },
}

impl Controller {
    /// torchdiffeq's defaults.
    pub const TORCHDIFFEQ: Controller = Controller::Integral {
        safety: 0.9,
        ifactor: 10.0,
        dfactor: 0.2,
    };
    /// A PI controller with `DOPRI5`'s `β = 0.04`.
    pub const PI: Controller = Controller::Pi {
        safety: 0.9,
        ifactor: 10.0,
        dfactor: 0.2,
        beta: 0.04,
    };
}

impl Default for Controller {
    fn default() -> Self {
        Controller::TORCHDIFFEQ
    }
}

impl Controller {
    /// Checks every factor: `safety ∈ (0, 1]`, `ifactor ∈ [1, ∞)`, `dfactor ∈ (0, 1]`, and for
    /// the PI controller `beta ∈ [0, 0.2]` (its stable range for 5th-order pairs), each finite.
    pub fn validate(&self) -> Result<()> {
        let (safety, ifactor, dfactor, beta) = match *self {
            Controller::Integral {
                safety,
                ifactor,
                dfactor,
            } => (safety, ifactor, dfactor, None),
            Controller::Pi {
                safety,
                ifactor,
                dfactor,
                beta,
            } => (safety, ifactor, dfactor, Some(beta)),
        };
        let bad = |name, value, reason| {
            Err(RkError::BadStepOption {
                name,
                value,
                reason,
            })
        };
        if !(safety.is_finite() && safety > 0.0 && safety <= 1.0) {
            return bad("controller.safety", safety, "must lie in (0, 1]");
        }
        if !(ifactor.is_finite() && ifactor >= 1.0) {
            return bad("controller.ifactor", ifactor, "must be finite and >= 1");
        }
        if !(dfactor.is_finite() && dfactor > 0.0 && dfactor <= 1.0) {
            return bad("controller.dfactor", dfactor, "must lie in (0, 1]");
        }
        if let Some(beta) = beta
            && !(beta.is_finite() && (0.0..=0.2).contains(&beta))
        {
            return bad("controller.beta", beta, "must lie in [0, 0.2]");
        }
        Ok(())
    }
}

/// Options of a solve. Build with [`Options::new`] and the `with_*` setters.
#[derive(Debug, Clone, PartialEq)]
pub struct Options<T> {
    /// Relative tolerance.
    pub rtol: T,
    /// Absolute tolerance.
    pub atol: Tolerance<T>,
    /// First step size (magnitude); Hairer's heuristic when `None`. For fixed-step methods (or
    /// `adaptive = false`) this is the step size and is required.
    pub first_step: Option<T>,
    /// Whether embedded methods adapt the step (`false`: fixed steps of `first_step`).
    pub adaptive: bool,
    /// Largest number of step attempts (accepted plus rejected).
    pub max_steps: usize,
    /// Smallest step magnitude the controller may choose (0 = none).
    pub min_step: T,
    /// Largest step magnitude (∞ = none).
    pub max_step: T,
    /// Components measured by the error norm.
    pub norm: ErrorNorm,
    /// Step-size controller.
    pub controller: Controller,
}

impl<T: Scalar> Tolerance<T> {
    /// The largest absolute tolerance (the scalar itself, or the largest component; 0 for none).
    pub fn largest(&self) -> T {
        match self {
            Tolerance::Scalar(a) => *a,
            Tolerance::PerComponent(v) => {
                v.iter().fold(T::zero(), |m, &x| if x > m { x } else { m })
            }
        }
    }
}

/// Checks a first-step magnitude: finite and above zero.
pub(crate) fn check_first_step<T: Scalar>(h: T) -> Result<()> {
    if !h.is_finite() || h <= T::zero() {
        return Err(RkError::BadStepOption {
            name: "first_step",
            value: h.as_f64(),
            reason: "must be finite and > 0 (a magnitude; the direction comes from the interval)",
        });
    }
    Ok(())
}

impl<T: Scalar> Options<T> {
    /// Adaptive options with scalar tolerances and every other setting at its default.
    pub fn new(rtol: T, atol: T) -> Self {
        Self {
            rtol,
            atol: Tolerance::Scalar(atol),
            first_step: None,
            adaptive: true,
            max_steps: 1_000_000,
            min_step: T::zero(),
            max_step: T::infinity(),
            norm: ErrorNorm::Full,
            controller: Controller::default(),
        }
    }

    /// Fixed steps of size `h` (no error control).
    pub fn fixed(h: T) -> Self {
        Self {
            first_step: Some(h),
            adaptive: false,
            ..Self::new(T::one(), T::one())
        }
    }

    /// Per-component absolute tolerances.
    pub fn with_atol_per_component(mut self, atol: Vec<T>) -> Self {
        self.atol = Tolerance::PerComponent(atol);
        self
    }

    /// The first step (or the fixed step size).
    pub fn with_first_step(mut self, h: T) -> Self {
        self.first_step = Some(h);
        self
    }

    /// The error norm.
    pub fn with_norm(mut self, norm: ErrorNorm) -> Self {
        self.norm = norm;
        self
    }

    /// The step-size controller.
    pub fn with_controller(mut self, controller: Controller) -> Self {
        self.controller = controller;
        self
    }

    /// Step-size bounds (magnitudes).
    pub fn with_step_bounds(mut self, min_step: T, max_step: T) -> Self {
        self.min_step = min_step;
        self.max_step = max_step;
        self
    }

    /// Largest number of step attempts.
    pub fn with_max_steps(mut self, max_steps: usize) -> Self {
        self.max_steps = max_steps;
        self
    }

    /// Checks every option that does not depend on the state.
    pub fn validate(&self, adaptive: bool) -> Result<()> {
        if adaptive {
            check_tol("rtol".into(), self.rtol)?;
            // A relative change a thousand times below the unit roundoff cannot be resolved:
            // unless atol dominates, the controller shrinks the step until it underflows.
            let floor = T::epsilon() * T::of(1e-3);
            if self.rtol < floor {
                return Err(RkError::UnresolvableTolerance {
                    value: self.rtol.as_f64(),
                    epsilon: T::epsilon().as_f64(),
                });
            }
            self.controller.validate()?;
            match &self.atol {
                Tolerance::Scalar(a) => check_tol("atol".into(), *a)?,
                Tolerance::PerComponent(v) => {
                    for (i, &a) in v.iter().enumerate() {
                        check_tol(format!("atol[{i}]"), a)?;
                    }
                }
            }
        }
        if let Some(h) = self.first_step {
            check_first_step(h)?;
        }
        if !self.min_step.is_finite() || self.min_step < T::zero() {
            return Err(RkError::BadStepOption {
                name: "min_step",
                value: self.min_step.as_f64(),
                reason: "must be finite and >= 0",
            });
        }
        if self.max_step.is_nan() || self.max_step <= T::zero() || self.max_step < self.min_step {
            return Err(RkError::BadStepOption {
                name: "max_step",
                value: self.max_step.as_f64(),
                reason: "must be > 0 and >= min_step",
            });
        }
        if self.max_steps == 0 {
            return Err(RkError::BadStepOption {
                name: "max_steps",
                value: 0.0,
                reason: "must be >= 1",
            });
        }
        Ok(())
    }
}

fn check_tol<T: Scalar>(name: String, v: T) -> Result<()> {
    if !v.is_finite() || v <= T::zero() {
        return Err(RkError::BadTolerance {
            name,
            value: v.as_f64(),
        });
    }
    Ok(())
}
