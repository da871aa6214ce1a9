//! Embedded explicit Runge–Kutta solvers with dense output, over a backend-neutral vector trait.
//!
//! * [`Vector`] — in-place vector operations (SUNDIALS `N_Vector` style) with the host
//!   implementation for every [`vector::HostVector`] (contiguous host storage): `Vec<f32>` /
//!   `Vec<f64>`, and `nalgebra::DVector` / `faer::Col` behind the `nalgebra` / `faer` features;
//!   [`vector_conformance_tests!`] checks any backend.
//! * [`Rhs`] — the right-hand side `f(t, z; θ)` with explicit parameters; [`FnRhs`] wraps a closure.
//! * [`tableau`] — Dormand–Prince 5(4) (default), Tsitouras 5(4), Bogacki–Shampine 3(2), Euler,
//!   midpoint, RK4, each with its source.
//! * [`Solver`] — step-by-step integration with dense output inside the last step;
//!   [`solve()`] — outputs at a list of times. Either time direction; the last step is clipped to
//!   the end of the interval, so nothing is evaluated outside it.
//! * [`Options`] — tolerances (scalar or per component), first step, step bounds, max steps, the
//!   error norm (full, seminorm over a sub-range, or max over groups) and the controller
//!   (torchdiffeq-compatible integral controller or PI).
//!
//! The crate depends on nothing else of the workspace.

mod conformance;
pub mod error;
mod foreign;
pub mod options;
pub mod rhs;
mod scalar;
pub mod solve;
pub mod solver;
pub mod tableau;
pub mod vector;

pub use error::{Result, RkError};
pub use num_traits::{Float, One, Zero};
pub use options::{Controller, ErrorNorm, Options, Tolerance};
pub use rhs::{FnRhs, Rhs};
pub use scalar::Scalar;
pub use solve::{Solution, check_times, solve};
pub use solver::{Solver, Stats};
pub use tableau::{Method, Tableau};
pub use vector::{Atol, CheckedNorms, Deferred, Vector};

/// The README's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
