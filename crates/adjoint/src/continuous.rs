//! The continuous adjoint integrated backward, shared by RDM ([`crate::rdm`]: `z` in the
//! backward state) and IRDM ([`crate::irdm`]: `z` interpolated). One output interval at a time,
//! from `s_K` to `s_0`, `a` jumps by `∂L/∂z(s_k)` at each output time:
//!
//! ```text
//!     da/dt = −aᵀ ∂f/∂z(z(t), t, θ),     dg/dt = −aᵀ ∂f/∂θ,     a(s_K) = ∂L/∂z(s_K),  g(s_K) = 0,
//!     dL/dz0 = a(s_0),                    dL/dθ = g(s_0).
//! ```
//!
//! The backward state is one stacked backend vector — IRDM `[a, g]`, RDM `[z, a, g]` — so the
//! solver's fused kernels cover all of it. Its error norm controls every group, or with
//! [`BackwardNorm::Seminorm`] only the state-sized ones (the parameter integral does not feed
//! back into `a`). The state is assembled from the cotangents, jumped at output times and split
//! into `dL/dz0`, `dL/dθ` on the backend ([`Vector::copy_range`]): the backward pass reads back
//! only the solver's step decisions, plus, for RDM, one reconstruction discrepancy per output
//! time.

use crate::error::{AdjointError, Result};
use crate::irdm::InterpolatedState;
use crate::method::{BackwardNorm, Config, Info, Method};
use crate::piecewise::PiecewiseNodes;
use crate::rdm::{ReconstructionCheck, augmented_rhs};
use crate::vector_vjp::VectorVjp;
use crate::vjp::Real;
use rk::{ErrorNorm, Options, Rhs, Solver, Vector};
use std::ops::Range;

/// What the continuous backward pass needs from the forward pass.
pub(crate) struct Continuous<'a, T: Real, V> {
    pub method: &'a Method,
    pub config: &'a Config<T>,
    pub ts: &'a [T],
    pub outputs: &'a [V],
    /// IRDM: the segments' grids and node values; `None`: RDM.
    pub nodes: Option<&'a PiecewiseNodes<T, V>>,
    pub n: usize,
    pub p: usize,
}

impl<T: Real, V: Vector<Scalar = T>> Continuous<'_, T, V> {
    fn solve_err(&self) -> impl FnOnce(rk::RkError) -> AdjointError + use<'_, T, V> {
        let method = self.method.name();
        move |source| AdjointError::Solve {
            method,
            pass: "backward",
            source,
        }
    }

    /// Integrates the adjoint system from `ts[K]` to `ts[0]`, adding the cotangents
    /// `cotangents[k] = ∂L/∂z(s_k)` at every output time; returns `(dL/dz0, dL/dθ)` on the
    /// backend and the forward record with the backward counts added. `start_checks` (the
    /// cotangents' finiteness, the forward grid's check: it gives the forward record) is called
    /// right after the first interval's start, whose first readback brings its numbers, and its
    /// error comes before the solver's.
    pub fn backward<F: VectorVjp<V>>(
        &self,
        f: &mut F,
        params: &V,
        cotangents: &[V],
        start_checks: impl FnOnce() -> Result<Info>,
    ) -> Result<(V, V, Info)> {
        let (n, p, nodes) = (self.n, self.p, self.nodes);
        let is_irdm = nodes.is_some();
        let norm = match *self.method {
            Method::Rdm { norm } | Method::Irdm { norm, .. } => norm,
            _ => BackwardNorm::Full,
        };
        let a_off = if is_irdm { 0 } else { n };
        let len = a_off + n + p;
        let shift = |rs: Vec<Range<usize>>, by: usize| {
            rs.into_iter().map(move |r| r.start + by..r.end + by)
        };
        let mut groups: Vec<Range<usize>> = Vec::new();
        if !is_irdm {
            groups.extend(shift(f.state_groups(), 0));
        }
        groups.extend(shift(f.state_groups(), a_off));
        if norm == BackwardNorm::Full {
            groups.extend(shift(f.param_groups(), a_off + n));
        }
        let (rtol, atol) = self
            .config
            .backward
            .unwrap_or((self.config.forward.rtol, self.config.forward.atol.largest()));
        let mut options = Options::new(rtol, atol).with_norm(ErrorNorm::Groups(groups));
        options.max_steps = self.config.forward.max_steps;
        options.controller = self.config.forward.controller;
        let tableau = self.config.backward_tableau.unwrap_or(self.config.tableau);
        let template = &self.outputs[0];
        let k_last = self.ts.len() - 1;
        let mut recon = ReconstructionCheck::new(self.config.rdm_check, template, n);
        // x = [z(s_K) (RDM), ∂L/∂z(s_K), 0].
        let mut x = template.zeros_with_len(len);
        if !is_irdm {
            x.copy_range(0, &self.outputs[k_last], 0..n);
        }
        x.copy_range(a_off, &cotangents[k_last], 0..n);
        // a: the adjoint part between jumps (dL/dz0 at the end; ∂L/∂z(s_0) if there is no
        // interval).
        let mut a = template.zeros_like();
        a.copy_from(&cotangents[k_last]);
        let mut solver = Solver::new(tableau, options, &x).map_err(self.solve_err())?;
        let empty = template.zeros_with_len(0);
        let mut rhs = BackwardRhs {
            f,
            params,
            state: match nodes {
                Some(nodes) => StateSource::Interpolated(InterpolatedState::new(nodes, template)),
                None => StateSource::Reconstructed { n },
            },
            vjps: 0,
        };
        // The first interval's first step is picked by the solver; each later output interval
        // starts from the step the controller proposed at the end of the one before, instead of
        // a fresh pick (measured on the 1000-output spiral at tol 1e-9: 9 502 backward VJPs
        // instead of 15 324, same gradient). Starting the first interval from the forward
        // pass's last step was tried and costs more (toy CNF: 16.3 VJPs instead of 14.3, a
        // rejection where the pick costs one evaluation).
        let mut first_step: Option<T> = None;
        let mut start_checks = Some(start_checks);
        let mut info = Info::default();
        for k in (1..=k_last).rev() {
            solver
                .set_first_step(first_step)
                .map_err(self.solve_err())?;
            // A later interval starts from the solver's own (finite) state plus a checked
            // cotangent: no separate finiteness readbacks (a non-finite sum still stops the
            // first step).
            solver.set_start_checked(k == k_last);
            let started = solver.init(&mut rhs, &empty, self.ts[k], self.ts[k - 1], &x);
            if let Some(checks) = start_checks.take() {
                // Their numbers came back with the start's norms: a bad cotangent is named as
                // such, not as a non-finite start.
                info = checks()?;
            }
            started.map_err(self.solve_err())?;
            while !solver.is_finished() {
                solver.step(&mut rhs, &empty).map_err(self.solve_err())?;
            }
            if let StateSource::Interpolated(state) = &mut rhs.state
                && let Some(e) = state.failure.take()
            {
                return Err(AdjointError::Grid {
                    method: self.method.name(),
                    source: e,
                });
            }
            let proposed = solver.proposed_step();
            first_step = Some(proposed).filter(|h| h.is_finite() && *h > T::zero());
            let st = solver.stats();
            info.accepted_backward += st.accepted;
            info.rejected_backward += st.rejected;
            if !is_irdm {
                info.nfe_backward += st.nfe;
            }
            // x = solver state with a += ∂L/∂z(s_{k−1}) and, for RDM, z reset to the stored
            // forward state after comparing the two.
            x.copy_from(solver.state());
            a.copy_range(0, &x, a_off..a_off + n);
            a.axpby(T::one(), &cotangents[k - 1], T::one());
            x.copy_range(a_off, &a, 0..n);
            if !is_irdm {
                recon.observe(
                    &x,
                    &self.outputs[k - 1],
                    &self.config.forward.atol,
                    self.ts[k - 1],
                );
                x.copy_range(0, &self.outputs[k - 1], 0..n);
            }
        }
        if let Some(checks) = start_checks {
            info = checks()?;
        }
        recon.finish(self.method.name(), &mut info)?;
        info.vjp_backward = rhs.vjps;
        let mut dtheta = params.zeros_like();
        dtheta.copy_range(0, &x, a_off + n..len);
        Ok((a, dtheta, info))
    }
}

/// Where the backward right-hand side gets `z(t)`.
enum StateSource<'a, T: Real, V> {
    /// RDM: from the first `n` components of the backward state.
    Reconstructed { n: usize },
    /// IRDM: by interpolation over the stored nodes.
    Interpolated(InterpolatedState<'a, T, V>),
}

/// The backward right-hand side on stacked vectors.
struct BackwardRhs<'a, T: Real, V: Vector<Scalar = T>, F> {
    f: &'a mut F,
    params: &'a V,
    state: StateSource<'a, T, V>,
    vjps: usize,
}

impl<T, V, F> Rhs<V> for BackwardRhs<'_, T, V, F>
where
    T: Real,
    V: Vector<Scalar = T>,
    F: VectorVjp<V>,
{
    fn eval(&mut self, t: T, x: &V, _unused: &V, dx: &mut V) {
        self.vjps += 1;
        match &mut self.state {
            StateSource::Interpolated(state) => state.adjoint_rhs(self.f, t, self.params, x, dx),
            StateSource::Reconstructed { n } => augmented_rhs(self.f, *n, t, self.params, x, dx),
        }
    }
}
