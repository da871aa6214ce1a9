//! The vector-Jacobian trait the gradient drivers need.

use rk::Rhs;
use std::ops::Range;

/// Scalars the gradient drivers work in (`f32`, `f64`): both the solver's and the grid's float.
pub trait Real: rk::Scalar + cheb::Real {}
impl<T: rk::Scalar + cheb::Real> Real for T {}

/// A right-hand side `f(t, z; θ)` that can also return vector-Jacobian products.
///
/// Given a cotangent `a` (a row vector of the state's length), [`Vjp::vjp`] writes
/// `aᵀ ∂f/∂z` into `adj_z` and `aᵀ ∂f/∂θ` into `adj_p` (both overwritten), and, when `value` is
/// `Some`, `f(t, z; θ)` itself — one linearization serving both, as reverse-mode autodiff does.
/// Scratch space belongs in `self` (hence `&mut self`), so calls need not allocate.
pub trait Vjp<T: Real>: Rhs<Vec<T>> {
    /// Length of the state `z`.
    fn state_len(&self) -> usize;
    /// Length of the parameter vector `θ`.
    fn param_len(&self) -> usize;
    /// `adj_z = aᵀ ∂f/∂z`, `adj_p = aᵀ ∂f/∂θ`, and `value = f(t, z; θ)` if asked.
    #[allow(clippy::too_many_arguments)]
    fn vjp(
        &mut self,
        t: T,
        z: &[T],
        params: &[T],
        a: &[T],
        value: Option<&mut [T]>,
        adj_z: &mut [T],
        adj_p: &mut [T],
    );
    /// Component groups of the state for the error norm (torchdiffeq's mixed norm treats each
    /// tensor of a tuple state as one group). Default: one group.
    fn state_groups(&self) -> Vec<Range<usize>> {
        std::iter::once(0..self.state_len()).collect()
    }
    /// Component groups of `θ` for the backward error norm (torchdiffeq: one per parameter
    /// tensor). Default: one group.
    fn param_groups(&self) -> Vec<Range<usize>> {
        if self.param_len() == 0 {
            vec![]
        } else {
            std::iter::once(0..self.param_len()).collect()
        }
    }
}
