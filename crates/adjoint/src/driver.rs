//! The entry points: [`forward`] solves and keeps what the chosen method needs;
//! [`Forward::backward`] turns output cotangents into `dL/dz0` and `dL/dθ`.
//!
//! Continuous methods (RDM, IRDM) integrate the adjoint system backward one output interval at
//! a time, from `s_K` to `s_0`, adding `∂L/∂z(s_k)` to `a` at each output time:
//!
//! ```text
//!     da/dt = −aᵀ ∂f/∂z(z(t), t, θ),     dg/dt = −aᵀ ∂f/∂θ,     g(t1) = 0,
//!     dL/dz0 = a(t0),                     dL/dθ = g(t0),
//! ```
//!
//! RDM carries `z` in the backward state (`dz/dt = f`, started from the stored `z(s_k)` on each
//! interval, as torchdiffeq does); IRDM evaluates `z(t)` by barycentric interpolation over the
//! Chebyshev nodes stored in the forward pass, read from the solver's dense output at no extra
//! right-hand-side evaluations (or piecewise-linearly, for the ablation). Discrete methods
//! (Direct, ANODE) reverse the recorded (or recomputed) steps exactly (the formulas are in
//! [`crate::discrete`]).
//!
//! These entry points are [`crate::forward_pass`]'s drivers on host vectors (`Vec<T>`), so every
//! backend runs the same code.

use crate::error::Result;
use crate::forward_pass::{VectorForward, forward_on};
use crate::method::{Config, Info, Method};
use crate::vjp::{Real, Vjp};

/// The result of [`forward`]: outputs at the requested times, and what the backward pass needs.
pub struct Forward<T: Real> {
    inner: VectorForward<T, Vec<T>>,
}

/// The gradient of a loss through the solve.
#[derive(Debug, Clone)]
pub struct Gradient<T> {
    /// `dL/dz0`.
    pub dz0: Vec<T>,
    /// `dL/dθ`.
    pub dtheta: Vec<T>,
    /// Counts and memory of the forward and backward passes.
    pub info: Info,
}

/// Solves `dz/dt = f(t, z; θ)` from `z(ts[0]) = z0` and returns the states at `ts` together with
/// what `method` needs for the backward pass.
///
/// Errors: wrong state or parameter length, invalid method settings, and any solver failure
/// (tagged with the method and pass).
pub fn forward<T: Real, F: Vjp<T>>(
    f: &mut F,
    params: &[T],
    z0: &[T],
    ts: &[T],
    method: Method,
    config: &Config<T>,
) -> Result<Forward<T>> {
    let inner = forward_on(f, &params.to_vec(), &z0.to_vec(), ts, method, config)?;
    Ok(Forward { inner })
}

impl<T: Real> Forward<T> {
    /// The states at the output times (`outputs()[0]` is `z0`).
    pub fn outputs(&self) -> &[Vec<T>] {
        self.inner.outputs()
    }

    /// The output times.
    pub fn times(&self) -> &[T] {
        self.inner.times()
    }

    /// Forward counts and memory so far.
    pub fn info(&self) -> &Info {
        self.inner.info()
    }

    /// The gradient for the output cotangents `cotangents[k] = ∂L/∂z(s_k)` (one per output time,
    /// including `s_0`). `f` and `params` must be those of the forward pass.
    pub fn backward<F: Vjp<T>>(
        &self,
        f: &mut F,
        params: &[T],
        cotangents: &[Vec<T>],
    ) -> Result<Gradient<T>> {
        let g = self.inner.backward(f, &params.to_vec(), cotangents)?;
        Ok(Gradient {
            dz0: g.dz0,
            dtheta: g.dtheta,
            info: g.info,
        })
    }
}
