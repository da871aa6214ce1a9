//! The vector-Jacobian trait of the backend-generic drivers ([`crate::forward_pass`]).
//!
//! The continuous backward systems are solved as one stacked vector — IRDM `x = [a, g]`,
//! RDM `x = [z, a, g]` — so that the solver's fused linear combinations and norms run over the
//! whole backward state in one pass on any [`rk::Vector`] backend (host or GPU). A right-hand
//! side therefore reads and writes at offsets inside such vectors:
//!
//! ```text
//!     dx[adj .. adj + n]         = −aᵀ ∂f/∂z (t, z; θ)
//!     dx[adj + n .. adj + n + p] = −aᵀ ∂f/∂θ (t, z; θ)
//!     dx[value .. value + n]     =  f(t, z; θ)              (RDM only)
//! ```
//!
//! with `z = z_vec[z_at .. z_at + n]` and `a = x[a_at .. a_at + n]`.

use crate::vjp::{Real, Vjp};
use rk::vector::HostVector;
use rk::{Rhs, Vector};
use std::ops::Range;

/// A right-hand side on vectors of backend `V` that also evaluates the adjoint system.
pub trait VectorVjp<V: Vector>: Rhs<V> {
    /// Length of the state `z`.
    fn state_len(&self) -> usize;
    /// Length of the parameter vector `θ`.
    fn param_len(&self) -> usize;
    /// The adjoint right-hand side at offsets (module docs). `z_vec` may be `x` itself (RDM).
    #[allow(clippy::too_many_arguments)]
    fn adjoint_rhs(
        &mut self,
        t: V::Scalar,
        z_vec: &V,
        z_at: usize,
        params: &V,
        x: &V,
        a_at: usize,
        dx: &mut V,
        value_at: Option<usize>,
        adj_at: usize,
    );
    /// IRDM's adjoint right-hand side at the interpolated state `z = Σ_j coeffs[j] · values_j`
    /// (`values` holds the node states stacked as rows of `state_len` components), in IRDM's
    /// layout: `x = [a, g]`, `dx = [−aᵀJ, −aᵀ∂θ]`. The default interpolates into `scratch` with
    /// [`rk::Vector::combine_rows`] and calls [`VectorVjp::adjoint_rhs`]; a backend may read
    /// the nodes straight from its kernels instead (`scratch` is then left alone).
    #[allow(clippy::too_many_arguments)]
    fn adjoint_rhs_interpolated(
        &mut self,
        t: V::Scalar,
        coeffs: &[V::Scalar],
        values: &V,
        scratch: &mut V,
        params: &V,
        x: &V,
        dx: &mut V,
    ) {
        scratch.combine_rows(coeffs, values);
        self.adjoint_rhs(t, scratch, 0, params, x, 0, dx, None, 0);
    }
    /// Component groups of the state for the error norm. Default: one group.
    fn state_groups(&self) -> Vec<Range<usize>> {
        std::iter::once(0..self.state_len()).collect()
    }
    /// Component groups of `θ` for the backward error norm. Default: one group.
    fn param_groups(&self) -> Vec<Range<usize>> {
        if self.param_len() == 0 {
            vec![]
        } else {
            std::iter::once(0..self.param_len()).collect()
        }
    }
}

/// Every host [`Vjp`] is a [`VectorVjp`] on `Vec<T>`.
/// Every host [`Vjp`] on every host vector: `Vec<T>`, and `nalgebra::DVector<T>` /
/// `faer::Col<T>` (with `rk`'s features) for a right-hand side that also implements
/// [`Rhs`] on that type. The adjoint system reads and writes the vectors' own slices: no copies.
impl<V, F> VectorVjp<V> for F
where
    V: HostVector,
    V::Elem: Real,
    F: Vjp<V::Elem> + Rhs<V>,
{
    fn state_len(&self) -> usize {
        Vjp::state_len(self)
    }

    fn param_len(&self) -> usize {
        Vjp::param_len(self)
    }

    fn adjoint_rhs(
        &mut self,
        t: V::Elem,
        z_vec: &V,
        z_at: usize,
        params: &V,
        x: &V,
        a_at: usize,
        dx: &mut V,
        value_at: Option<usize>,
        adj_at: usize,
    ) {
        let (z_vec, params, x) = (
            z_vec.as_host_slice(),
            params.as_host_slice(),
            x.as_host_slice(),
        );
        let dx = dx.as_host_slice_mut();
        let n = Vjp::state_len(self);
        let p = Vjp::param_len(self);
        let z = &z_vec[z_at..z_at + n];
        let a = &x[a_at..a_at + n];
        match value_at {
            // RDM's layout [value, adj_z, adj_p] with the value first.
            Some(v) if v + n == adj_at => {
                let (value, adj) = dx[v..adj_at + n + p].split_at_mut(n);
                let (adj_z, adj_p) = adj.split_at_mut(n);
                self.vjp(t, z, params, a, Some(value), adj_z, adj_p);
            }
            Some(v) => {
                let mut value = vec![<V::Elem as rk::Zero>::zero(); n];
                let (adj_z, adj_p) = dx[adj_at..adj_at + n + p].split_at_mut(n);
                self.vjp(t, z, params, a, Some(&mut value), adj_z, adj_p);
                dx[v..v + n].copy_from_slice(&value);
            }
            None => {
                let (adj_z, adj_p) = dx[adj_at..adj_at + n + p].split_at_mut(n);
                self.vjp(t, z, params, a, None, adj_z, adj_p);
            }
        }
        for v in &mut dx[adj_at..adj_at + n + p] {
            *v = -*v;
        }
    }

    fn state_groups(&self) -> Vec<Range<usize>> {
        Vjp::state_groups(self)
    }

    fn param_groups(&self) -> Vec<Range<usize>> {
        Vjp::param_groups(self)
    }
}
