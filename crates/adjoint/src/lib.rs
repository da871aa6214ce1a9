//! Gradients of a loss through an ODE solve, by four methods behind one API.
//!
//! | method | code | backward state | where `z(t)` comes from | memory | gradient |
//! |---|---|---|---|---|---|
//! | [`Method::Direct`] | [`direct`], [`discrete`] | discrete adjoint of every stage | every stage of every accepted step, stored | O(steps × stages × dim) | exact gradient of the discrete solution |
//! | [`Method::Rdm`] | [`rdm`], [`continuous`] | `[z, a, g]` | re-solved backward from `z(t1)` | O(dim) | continuous adjoint; reverse-time `z` can be unstable |
//! | [`Method::Anode`] | [`anode`], [`discrete`] | discrete adjoint per interval | recomputed from checkpoints | O(checkpoints × dim + one interval) | exact discrete gradient |
//! | [`Method::Irdm`] | [`irdm`], [`continuous`] | `[a, g]` | barycentric interpolation over piecewise Chebyshev grids, one per window of steps | O(nodes over all segments × dim + one window) | continuous adjoint with interpolated `z` |
//!
//! The forward pass shared by all four is [`forward_pass`]; [`irdm`]'s docs say where its grid
//! capture and error estimates live.
//!
//! The continuous adjoint (`a(t) = dL/dz(t)`): `da/dt = −aᵀ∂f/∂z`, `dL/dθ = ∫ aᵀ∂f/∂θ dt`,
//! with `a` jumping by `∂L/∂z(s_k)` at each output time. IRDM is Daulbaev et al., *Interpolation
//! Technique to Speed Up Gradients Propagation in Neural ODEs*, NeurIPS 2020; the seminorm option
//! is Kidger, Chen & Lyons, *"Hey, that's not an ODE"*, ICML 2021.
//!
//! The common case is one call, [`gradient`]: solve, a scalar loss of the outputs, its
//! gradient with respect to `z0` and `θ` (IRDM with the automatic grid by default), for a
//! [`Vjp`] type or a pair of closures ([`FnVjp`]); see its example.
//!
//! For full control: implement [`Vjp`] for the right-hand side, call [`forward`], then
//! [`Forward::backward`] with `∂L/∂z(s_k)` at every output time. The [`Info`] record counts
//! forward and backward evaluations and VJPs apart, steps each way, and the floats each method
//! holds for the backward pass. [`forward`] works on host vectors (`Vec<f32>`, `Vec<f64>`) and
//! runs every method; it is [`forward_on`], which runs every method on any
//! [`rk::Vector`] backend (a GPU vector) through [`VectorVjp`], which every host [`Vjp`]
//! implements.
//!
//! ```
//! use adjoint::{Config, Method, Vjp, forward};
//! use rk::Rhs;
//!
//! /// dz/dt = θ z (scalar).
//! struct Growth;
//! impl Rhs<Vec<f64>> for Growth {
//!     fn eval(&mut self, _t: f64, z: &Vec<f64>, p: &Vec<f64>, dz: &mut Vec<f64>) { dz[0] = p[0] * z[0]; }
//! }
//! impl Vjp<f64> for Growth {
//!     fn state_len(&self) -> usize { 1 }
//!     fn param_len(&self) -> usize { 1 }
//!     fn vjp(&mut self, _t: f64, z: &[f64], p: &[f64], a: &[f64], value: Option<&mut [f64]>,
//!            adj_z: &mut [f64], adj_p: &mut [f64]) {
//!         if let Some(v) = value { v[0] = p[0] * z[0]; }
//!         adj_z[0] = a[0] * p[0];
//!         adj_p[0] = a[0] * z[0];
//!     }
//! }
//!
//! // L = z(1) with z(1) = z0 e^θ: dL/dz0 = e^θ, dL/dθ = z0 e^θ.
//! let theta = [0.5];
//! let fwd = forward(&mut Growth, &theta, &[2.0], &[0.0, 1.0], Method::irdm_lobatto(16, Default::default()),
//!                   &Config::new(1e-10, 1e-12))?;
//! let grad = fwd.backward(&mut Growth, &theta, &[vec![0.0], vec![1.0]])?;
//! assert!((grad.dz0[0] - 0.5f64.exp()).abs() < 1e-8);
//! assert!((grad.dtheta[0] - 2.0 * 0.5f64.exp()).abs() < 1e-8);
//! # Ok::<(), adjoint::AdjointError>(())
//! ```

pub mod anode;
mod auto_grid;
mod capture;
pub mod continuous;
pub mod direct;
pub mod discrete;
pub mod driver;
pub mod error;
pub mod forward_pass;
pub mod irdm;
pub mod method;
pub mod one_call;
mod piecewise;
pub mod rdm;
pub mod toy;
pub mod vector_vjp;
pub mod vjp;

pub use driver::{Forward, Gradient, forward};
pub use error::{AdjointError, Result};
pub use forward_pass::{VectorForward, VectorGradient, forward_on};
pub use method::{
    BackwardNorm, Checkpoints, Config, DEFAULT_AUTO_N_MAX, DEFAULT_STEPS_PER_SEGMENT, GridInfo,
    Info, IrdmGrid, IrdmOptions, MAX_AUTO_DEGREE, Method, OnUnderResolved, RdmCheck, SegmentInfo,
    Segments,
};
pub use one_call::{FnVjp, GradientOptions, LossGradient, gradient};
pub use vector_vjp::VectorVjp;
pub use vjp::{Real, Vjp};

/// The README's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
