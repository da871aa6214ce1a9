//! One call for the common case: solve `dz/dt = f(t, z; θ)` from `z(ts[0]) = z0`, evaluate a
//! scalar loss `L(z(s_0), …, z(s_K))` of the outputs, and return `L`, `dL/dz0` and `dL/dθ`.
//!
//! The loss closure returns `L` and its cotangents `∂L/∂z(s_k)` (one per output time, `s_0`
//! included); the gradient is then [`forward`](crate::forward) followed by
//! [`Forward::backward`](crate::Forward::backward) with those cotangents, by the chosen method —
//! by default IRDM with the automatic piecewise grid for the solve's tolerances
//! ([`Method::irdm_auto`]). A right-hand side can be a [`Vjp`] type or two closures
//! ([`FnVjp`]).

use crate::error::{AdjointError, Result};
use crate::method::{BackwardNorm, Config, Info, Method};
use crate::vjp::{Real, Vjp};
use rk::Rhs;

/// A right-hand side given as two closures: `f(t, z, θ, dz)` writes `f(t, z; θ)` into `dz`, and
/// `vjp(t, z, θ, a, adj_z, adj_p)` writes `aᵀ∂f/∂z` into `adj_z` and `aᵀ∂f/∂θ` into `adj_p`
/// (both overwritten).
pub struct FnVjp<F, G> {
    /// The right-hand side.
    pub f: F,
    /// Its vector-Jacobian products.
    pub vjp: G,
    /// Length of `z`.
    pub state_len: usize,
    /// Length of `θ`.
    pub param_len: usize,
}

impl<T, F, G> Rhs<Vec<T>> for FnVjp<F, G>
where
    T: Real,
    F: FnMut(T, &[T], &[T], &mut [T]),
{
    fn eval(&mut self, t: T, z: &Vec<T>, params: &Vec<T>, dz: &mut Vec<T>) {
        (self.f)(t, z, params, dz);
    }
}

impl<T, F, G> Vjp<T> for FnVjp<F, G>
where
    T: Real,
    F: FnMut(T, &[T], &[T], &mut [T]),
    G: FnMut(T, &[T], &[T], &[T], &mut [T], &mut [T]),
{
    fn state_len(&self) -> usize {
        self.state_len
    }
    fn param_len(&self) -> usize {
        self.param_len
    }
    fn vjp(
        &mut self,
        t: T,
        z: &[T],
        params: &[T],
        a: &[T],
        value: Option<&mut [T]>,
        adj_z: &mut [T],
        adj_p: &mut [T],
    ) {
        if let Some(v) = value {
            (self.f)(t, z, params, v);
        }
        (self.vjp)(t, z, params, a, adj_z, adj_p);
    }
}

/// What [`gradient`] returns.
#[derive(Debug, Clone)]
pub struct LossGradient<T> {
    /// `L`.
    pub loss: T,
    /// The states at the output times (`outputs[0] = z0`).
    pub outputs: Vec<Vec<T>>,
    /// `dL/dz0`.
    pub dz0: Vec<T>,
    /// `dL/dθ`.
    pub dtheta: Vec<T>,
    /// Counts, memory and (IRDM) the grid's accuracy.
    pub info: Info,
}

/// The settings of [`gradient`]: tolerances (both passes) and the method.
#[derive(Debug, Clone)]
pub struct GradientOptions<T> {
    /// Solver settings (dopri5; tolerances; IRDM capture; RDM check).
    pub config: Config<T>,
    /// The method (`None`: IRDM with the automatic grid for `config`'s tolerances).
    pub method: Option<Method>,
}

impl<T: Real> GradientOptions<T> {
    /// dopri5 at `(rtol, atol)` both ways, IRDM with the automatic grid.
    pub fn new(rtol: T, atol: T) -> Self {
        Self {
            config: Config::new(rtol, atol),
            method: None,
        }
    }

    /// Another gradient method.
    pub fn with_method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    fn method(&self) -> Method {
        self.method.unwrap_or_else(|| {
            let forward = &self.config.forward;
            Method::irdm_auto(
                <T as cheb::Real>::as_f64(forward.rtol),
                <T as cheb::Real>::as_f64(forward.atol.largest()),
                BackwardNorm::Full,
            )
        })
    }
}

/// Solves from `z0` at the output times `ts`, evaluates `loss(outputs) = (L, ∂L/∂outputs)`, and
/// returns `L` with `dL/dz0` and `dL/dθ`.
///
/// Errors: those of [`crate::forward`] and [`crate::Forward::backward`] (shapes, settings,
/// solver failures, an under-resolved IRDM grid), a loss that is not finite, and cotangents of
/// the wrong number or length.
///
/// ```
/// use adjoint::{FnVjp, GradientOptions, gradient};
/// // dz/dt = −θ z: z(1) = z0 e^{−θ}; L = z(1)².
/// let mut decay = FnVjp {
///     f: |_t: f64, z: &[f64], p: &[f64], dz: &mut [f64]| dz[0] = -p[0] * z[0],
///     vjp: |_t: f64, z: &[f64], p: &[f64], a: &[f64], adj_z: &mut [f64], adj_p: &mut [f64]| {
///         adj_z[0] = -p[0] * a[0];
///         adj_p[0] = -z[0] * a[0];
///     },
///     state_len: 1,
///     param_len: 1,
/// };
/// let (z0, theta) = ([2.0], [0.7]);
/// let g = gradient(&mut decay, &theta, &z0, &[0.0, 1.0], |zs| {
///     let z1 = zs[1][0];
///     (z1 * z1, vec![vec![0.0], vec![2.0 * z1]])
/// }, &GradientOptions::new(1e-10, 1e-10))?;
/// let z1 = 2.0 * (-0.7f64).exp();
/// assert!((g.loss - z1 * z1).abs() < 1e-8);
/// assert!((g.dz0[0] - 2.0 * z1 * (-0.7f64).exp()).abs() < 1e-7);
/// assert!((g.dtheta[0] + 2.0 * z1 * z1).abs() < 1e-7);
/// assert_eq!(g.info.method, "irdm");
/// # Ok::<(), adjoint::AdjointError>(())
/// ```
pub fn gradient<T, F, L>(
    f: &mut F,
    params: &[T],
    z0: &[T],
    ts: &[T],
    loss: L,
    options: &GradientOptions<T>,
) -> Result<LossGradient<T>>
where
    T: Real,
    F: Vjp<T>,
    L: FnOnce(&[Vec<T>]) -> (T, Vec<Vec<T>>),
{
    let method = options.method();
    let fwd = crate::forward(f, params, z0, ts, method, &options.config)?;
    let (value, cotangents) = loss(fwd.outputs());
    if !value.is_finite() {
        return Err(AdjointError::NonFiniteLoss {
            value: <T as cheb::Real>::as_f64(value),
        });
    }
    let g = fwd.backward(f, params, &cotangents)?;
    Ok(LossGradient {
        loss: value,
        outputs: fwd.outputs().to_vec(),
        dz0: g.dz0,
        dtheta: g.dtheta,
        info: g.info,
    })
}
