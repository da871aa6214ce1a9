//! The interpolated reverse dynamic method ([`crate::Method::Irdm`], Daulbaev et al., NeurIPS
//! 2020): the backward state is `[a, g]` alone, and `z(t)` is read from the forward solution
//! stored at Chebyshev nodes,
//!
//! ```text
//!     z(t) = Σ_j ℓ_j^{(s)}(t) · z(τ_j^{(s)})      on the segment s that holds t,
//!     da/dt = −aᵀ ∂f/∂z(z(t), t, θ),   dg/dt = −aᵀ ∂f/∂θ,
//! ```
//!
//! with `ℓ^{(s)}` the barycentric coefficients of segment `s`'s grid. Where the pieces live:
//!
//! * capture of the nodes from the solver's dense output during the forward pass, segment by
//!   segment, with each segment's error estimate: the private module `capture` (the automatic
//!   degree choice: `auto_grid`);
//! * the stored segments and the coefficients `ℓ_j(t)`: `piecewise`;
//! * the right-hand side that interpolates and calls the model: `InterpolatedState` here;
//! * the integration loop, shared with RDM: [`crate::continuous`].

use crate::piecewise::{PiecewiseNodes, rule_coefficients};
use crate::vector_vjp::VectorVjp;
use crate::vjp::Real;
use rk::Vector;

/// IRDM's source of `z(t)` in the backward pass: the stored segments, the coefficient buffer and
/// the segment of the last evaluation (where the next one most likely falls).
pub(crate) struct InterpolatedState<'a, T: Real, V> {
    nodes: &'a PiecewiseNodes<T, V>,
    coeffs: Vec<T>,
    segment: usize,
    /// The interpolated state (scratch for [`VectorVjp::adjoint_rhs_interpolated`]).
    z: V,
    /// The first coefficient failure (a time outside every segment); the right-hand side then
    /// writes NaN and the loop reports this error.
    pub failure: Option<cheb::ChebError>,
}

impl<'a, T: Real, V: Vector<Scalar = T>> InterpolatedState<'a, T, V> {
    /// Reads `z(t)` from `nodes`, with states like `template`.
    pub fn new(nodes: &'a PiecewiseNodes<T, V>, template: &V) -> Self {
        Self {
            nodes,
            coeffs: vec![T::zero(); nodes.max_len()],
            segment: 0,
            z: template.zeros_like(),
            failure: None,
        }
    }

    /// IRDM's backward right-hand side on `x = [a, g]`: `dx = [−aᵀJ, −aᵀ∂θ]` at the
    /// interpolated `z(t)`.
    pub fn adjoint_rhs<F: VectorVjp<V>>(&mut self, f: &mut F, t: T, params: &V, x: &V, dx: &mut V) {
        self.segment = self.nodes.locate(t, self.segment);
        let seg = &self.nodes.segments[self.segment];
        let coeffs = &mut self.coeffs[..seg.grid.len()];
        if let Err(e) = rule_coefficients(self.nodes.rule, &seg.grid, t, coeffs) {
            self.failure = Some(e);
            dx.fill(T::nan());
            return;
        }
        f.adjoint_rhs_interpolated(t, coeffs, &seg.values, &mut self.z, params, x, dx);
    }
}
