//! The right-hand side `dz/dt = f(t, z; θ)`.

use crate::scalar::Scalar;
use crate::vector::Vector;

/// A right-hand side `f(t, z; θ)`, with the parameters `θ` passed explicitly on every call, so
/// that the same function object serves the forward solve and the gradient drivers.
///
/// `eval` writes `f(t, z; θ)` into `dz`; it must not read `dz`. It may keep scratch space in
/// `self` (hence `&mut self`). The solver counts calls and reports them as NFE.
pub trait Rhs<V: Vector> {
    /// `dz = f(t, z; θ)`.
    fn eval(&mut self, t: V::Scalar, z: &V, params: &V, dz: &mut V);
}

/// A host right-hand side from a closure `|t, z, θ, dz|` over slices.
///
/// ```
/// use rk::{FnRhs, Method, Options, solve};
/// // dz/dt = -θ z
/// let mut rhs = FnRhs(|_t: f64, z: &[f64], p: &[f64], dz: &mut [f64]| dz[0] = -p[0] * z[0]);
/// let sol = solve(&mut rhs, &vec![2.0], Method::Dopri5, &Options::new(1e-10, 1e-12), &[0.0, 1.0], &vec![1.0])?;
/// assert!((sol.ys[1][0] - (-2.0f64).exp()).abs() < 1e-9);
/// # Ok::<(), rk::RkError>(())
/// ```
pub struct FnRhs<F>(pub F);

impl<T: Scalar, F: FnMut(T, &[T], &[T], &mut [T])> Rhs<Vec<T>> for FnRhs<F> {
    fn eval(&mut self, t: T, z: &Vec<T>, params: &Vec<T>, dz: &mut Vec<T>) {
        (self.0)(t, z, params, dz)
    }
}
