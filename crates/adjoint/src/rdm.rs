//! The reverse dynamic method ([`crate::Method::Rdm`], the backsolve adjoint of Chen et al.,
//! torchdiffeq's `odeint_adjoint`): the backward state is `[z, a, g]` and `z` is re-solved
//! backward with the adjoint,
//!
//! ```text
//!     dz/dt = f(z, t, θ),   da/dt = −aᵀ ∂f/∂z,   dg/dt = −aᵀ ∂f/∂θ,
//! ```
//!
//! restarted from the stored `z(s_k)` at every output time (as torchdiffeq does). Reverse-time
//! `z` can drift from the forward solution (unstable backward dynamics); at each output time the
//! reconstructed `z̃(s_k)` is compared with the stored one,
//!
//! ```text
//!     d = max_i |z̃_i − z_i| / (max_i |z_i| + atol),
//! ```
//!
//! and the largest `d` over the solve is checked against [`crate::RdmCheck`]. The integration
//! loop shared with IRDM is in [`crate::continuous`].

use crate::error::{AdjointError, Result};
use crate::method::{Info, OnUnderResolved, RdmCheck};
use crate::vector_vjp::VectorVjp;
use crate::vjp::Real;
use rk::{Tolerance, Vector};

/// RDM's backward right-hand side on `x = [z, a, g]` (`n` state components): `dx = [f, −aᵀJ,
/// −aᵀ∂θ]`.
pub(crate) fn augmented_rhs<V: Vector, F: VectorVjp<V>>(
    f: &mut F,
    n: usize,
    t: V::Scalar,
    params: &V,
    x: &V,
    dx: &mut V,
) {
    f.adjoint_rhs(t, x, 0, params, x, n, dx, Some(0), n);
}

/// The largest reconstruction discrepancy seen over a backward pass, and where. The two
/// maxima of `d` come back in one readback per output time, from a backend scratch vector
/// `[z̃ − z, z]`.
pub(crate) struct ReconstructionCheck<T, V> {
    check: RdmCheck,
    worst: Option<(f64, T)>,
    /// `(z̃ − z, [z̃ − z, z])` work space, absent with the check off.
    scratch: Option<(V, V)>,
}

impl<T: Real, V: Vector<Scalar = T>> ReconstructionCheck<T, V> {
    /// A check with the limits of `check` for states of `n` components on the backend of
    /// `template` (`max_discrepancy = ∞` computes nothing and allocates nothing).
    pub fn new(check: RdmCheck, template: &V, n: usize) -> Self {
        let scratch = check
            .max_discrepancy
            .is_finite()
            .then(|| (template.zeros_with_len(n), template.zeros_with_len(2 * n)));
        Self {
            check,
            worst: None,
            scratch,
        }
    }

    /// Compares the reconstructed state, the first `stored.len()` components of `x`, with the
    /// stored one at output time `t`.
    pub fn observe(&mut self, x: &V, stored: &V, atol: &Tolerance<T>, t: T) {
        let Some((diff, stacked)) = &mut self.scratch else {
            return;
        };
        let n = stored.len();
        diff.copy_range(0, x, 0..n);
        diff.axpby(-T::one(), stored, T::one());
        stacked.copy_range(0, diff, 0..n);
        stacked.copy_range(n, stored, 0..n);
        let m = stacked.max_abs_groups(&[0..n, n..2 * n]);
        let f = |x: T| <T as cheb::Real>::as_f64(x);
        let d = discrepancy(f(m[0]), f(m[1]), f(atol.largest()));
        self.worst = match self.worst {
            Some((w, _)) if w >= d => self.worst,
            _ => Some((d, t)),
        };
    }

    /// Records the largest discrepancy in `info` and applies the limit: an error naming the
    /// output time, or [`Info::rdm_flagged`].
    pub fn finish(self, method: &'static str, info: &mut Info) -> Result<()> {
        let Some((d, t)) = self.worst else {
            return Ok(());
        };
        info.rdm_discrepancy = Some(d);
        if d.is_nan() || d > self.check.max_discrepancy {
            match self.check.on_exceed {
                OnUnderResolved::Error => {
                    return Err(AdjointError::Reconstruction {
                        method,
                        t: <T as cheb::Real>::as_f64(t),
                        discrepancy: d,
                        limit: self.check.max_discrepancy,
                    });
                }
                OnUnderResolved::Flag => info.rdm_flagged = true,
            }
        }
        Ok(())
    }
}

/// `worst / (size + atol)` for `worst = max_i |z̃_i − z_i|` and `size = max_i |z_i|`: the
/// distance of RDM's reconstructed state from the stored one relative to the state's size
/// (`+∞` when the reconstruction is not finite, which [`Vector::max_abs_groups`] reports as an
/// infinite maximum).
fn discrepancy(worst: f64, size: f64, atol: f64) -> f64 {
    if worst == 0.0 {
        0.0
    } else {
        worst / (size + atol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discrepancy_is_relative_to_the_state_size_and_infinite_for_a_nan() {
        let atol = Tolerance::Scalar(1e-8);
        let observe = |rec: &[f64], stored: &[f64]| {
            let mut c = ReconstructionCheck::new(RdmCheck::default(), &stored.to_vec(), 2);
            let mut x = rec.to_vec();
            x.extend([7.0, 8.0]); // the rest of [z, a, g] is not compared
            c.observe(&x, &stored.to_vec(), &atol, 0.0);
            c.worst.unwrap().0
        };
        assert_eq!(observe(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        let d = observe(&[1.0, 2.1], &[1.0, 2.0]);
        assert!((d - 0.1 / (2.0 + 1e-8)).abs() < 1e-12, "{d}");
        assert_eq!(observe(&[f64::NAN, 2.0], &[1.0, 2.0]), f64::INFINITY);
    }

    #[test]
    fn the_check_keeps_the_worst_time_and_errors_or_flags() {
        let atol = Tolerance::Scalar(0.0);
        let run = |on_exceed| {
            let check = RdmCheck {
                max_discrepancy: 1e-2,
                on_exceed,
            };
            let mut c = ReconstructionCheck::new(check, &vec![0.0], 1);
            let one = vec![1.0];
            c.observe(&vec![1.0], &one, &atol, 3.0);
            c.observe(&vec![1.5], &one, &atol, 2.0);
            c.observe(&vec![1.001], &one, &atol, 1.0);
            let mut info = Info::default();
            (c.finish("RDM", &mut info), info)
        };
        match run(OnUnderResolved::Error).0 {
            Err(AdjointError::Reconstruction { t, discrepancy, .. }) => {
                assert_eq!(t, 2.0);
                assert!((discrepancy - 0.5).abs() < 1e-12);
            }
            other => panic!("expected a reconstruction error, got {other:?}"),
        }
        let (result, info) = run(OnUnderResolved::Flag);
        assert!(result.is_ok() && info.rdm_flagged);
        assert_eq!(info.rdm_discrepancy, Some(0.5));
    }
}
