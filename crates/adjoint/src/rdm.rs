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

/// The largest reconstruction discrepancy seen over a backward pass, and where.
pub(crate) struct ReconstructionCheck<T> {
    check: RdmCheck,
    worst: Option<(f64, T)>,
}

impl<T: Real> ReconstructionCheck<T> {
    /// A check with the limits of `check` (`max_discrepancy = ∞` computes nothing).
    pub fn new(check: RdmCheck) -> Self {
        Self { check, worst: None }
    }

    /// Compares the reconstructed state with the stored one at output time `t`.
    pub fn observe(&mut self, reconstructed: &[T], stored: &[T], atol: &Tolerance<T>, t: T) {
        if !self.check.max_discrepancy.is_finite() {
            return;
        }
        let d = discrepancy(reconstructed, stored, atol);
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

/// `max_i |z̃_i − z_i| / (max_i |z_i| + atol)`: the distance of RDM's reconstructed state from
/// the stored one relative to the state's size (NaN when the reconstruction is).
fn discrepancy<T: Real>(rec: &[T], stored: &[T], atol: &Tolerance<T>) -> f64 {
    let f = |x: T| <T as cheb::Real>::as_f64(x);
    let atol = f(atol.largest());
    let size = stored.iter().fold(0.0, |m: f64, &z| m.max(f(z.abs())));
    let mut worst = 0.0f64;
    for (&r, &z) in rec.iter().zip(stored) {
        let diff = f((r - z).abs());
        if diff.is_nan() {
            return f64::NAN;
        }
        worst = worst.max(diff);
    }
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
    fn discrepancy_is_relative_to_the_state_size_and_nan_aware() {
        let atol = Tolerance::Scalar(1e-8);
        assert_eq!(discrepancy(&[1.0, 2.0], &[1.0, 2.0], &atol), 0.0);
        let d = discrepancy(&[1.0, 2.1], &[1.0, 2.0], &atol);
        assert!((d - 0.1 / (2.0 + 1e-8)).abs() < 1e-12, "{d}");
        assert!(discrepancy(&[f64::NAN, 2.0], &[1.0, 2.0], &atol).is_nan());
    }

    #[test]
    fn the_check_keeps_the_worst_time_and_errors_or_flags() {
        let atol = Tolerance::Scalar(0.0);
        let run = |on_exceed| {
            let mut c = ReconstructionCheck::new(RdmCheck {
                max_discrepancy: 1e-2,
                on_exceed,
            });
            c.observe(&[1.0], &[1.0], &atol, 3.0);
            c.observe(&[1.5], &[1.0], &atol, 2.0);
            c.observe(&[1.001], &[1.0], &atol, 1.0);
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
