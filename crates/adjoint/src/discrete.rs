//! The discrete adjoint of explicit Runge–Kutta steps (Direct and ANODE) on any [`Vector`]
//! backend.
//!
//! A step of size `h` from `(t, y)` has stage inputs `Y_i = y + h Σ_{j<i} a_ij k_j` and stage
//! derivatives `k_i = f(t + c_i h, Y_i)`; it produces `y⁺ = y + h Σ_i b_i k_i` and, at `θ ∈ (0,1)`,
//! the dense output `y(θ) = y + h Σ_i b_i(θ) k_i`. (For FSAL tableaux the last stage input is
//! `y⁺` itself.) Reverse accumulation with step sizes held fixed: given `ȳ⁺` and the cotangents
//! `z̄` of dense outputs inside the step,
//!
//! ```text
//!     k̄_i = h b_i ȳ⁺ + Σ_outputs h b_i(θ) z̄
//!     for i = s−1 … 0:   Ȳ_i = (∂f/∂z)ᵀ k̄_i,   θ̄ += (∂f/∂θ)ᵀ k̄_i,   k̄_j += h a_ij Ȳ_i (j < i)
//!     ȳ = ȳ⁺ + Σ_outputs z̄ + Σ_i Ȳ_i
//! ```
//!
//! which is the exact gradient of the discrete solution map. The stage inputs are kept as
//! backend vectors and the cotangents carried in stacked vectors of length `n + p`:
//!
//! * `acc = [ȳ, θ̄]` accumulates the state and parameter cotangents;
//! * `k̄_i` holds a stage cotangent in its first `n` entries (the rest is scratch, never read);
//! * one adjoint right-hand side per stage writes `dx = [−Ȳ_i, −θ̄_i]`, so `acc −= dx` adds both
//!   parts at once and `k̄_j −= h a_ij dx` passes `Ȳ_i` on to earlier stages.
//!
//! Which stage cotangents are non-zero is tracked from the tableau's structure (a stage with
//! `b_i = 0` and no dense output or later stage feeding it is skipped: one VJP per live stage;
//! the FSAL stage needs one only when a dense output falls inside the step) instead of being
//! read back, so a reversed step costs no readback.

use crate::vector_vjp::VectorVjp;
use crate::vjp::Real;
use rk::{Rhs, Tableau, Vector};

/// Where an output time fell in the forward pass: at the end of step `step`, or inside it at
/// fraction `theta`. Output 0 (the initial time) has `step = usize::MAX`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutputPos {
    pub step: usize,
    pub theta: Option<f64>,
}

/// The stage inputs `Y_0 … Y_{s−1}` of one accepted step.
pub(crate) struct VecStep<T, V> {
    pub t: T,
    pub h: T,
    pub t_new: T,
    pub stages: Vec<V>,
}

pub(crate) fn copy<V: Vector>(v: &V) -> V {
    let mut c = v.zeros_like();
    c.copy_from(v);
    c
}

/// Tableau coefficients in `T` and backend work vectors for replaying and reversing steps.
pub(crate) struct VecStepper<T, V> {
    tableau: &'static Tableau,
    c: Vec<T>,
    a: Vec<Vec<T>>,
    b: Vec<T>,
    /// Stage derivatives (length `n`), for replays.
    k: Vec<V>,
    ytmp: V,
    /// Stage cotangents (length `n + p`).
    kbar: Vec<V>,
    live: Vec<bool>,
    dx: V,
    coeffs: Vec<T>,
    dense: Vec<f64>,
    k0_valid: bool,
    pub nfe: usize,
    pub vjps: usize,
}

impl<T: Real, V: Vector<Scalar = T>> VecStepper<T, V> {
    /// Work space for states like `state` (length `n`) and stacked cotangents like `stacked`.
    pub fn new(tableau: &'static Tableau, state: &V, stacked: &V) -> Self {
        let of = |xs: &[f64]| {
            xs.iter()
                .map(|&x| <T as rk::Scalar>::of(x))
                .collect::<Vec<T>>()
        };
        let s = tableau.stages();
        Self {
            tableau,
            c: of(tableau.c),
            a: tableau.a.iter().map(|r| of(r)).collect(),
            b: of(tableau.b),
            k: (0..s).map(|_| state.zeros_like()).collect(),
            ytmp: state.zeros_like(),
            kbar: (0..s).map(|_| stacked.zeros_like()).collect(),
            live: vec![false; s],
            dx: stacked.zeros_like(),
            coeffs: vec![T::zero(); s],
            dense: vec![0.0; s],
            k0_valid: false,
            nfe: 0,
            vjps: 0,
        }
    }

    fn stage_time(&self, i: usize, t: T, h: T, t_new: T) -> T {
        if self.c[i] == T::one() {
            t_new
        } else {
            t + self.c[i] * h
        }
    }

    /// Starts a replay from a checkpoint.
    pub fn restart(&mut self) {
        self.k0_valid = false;
    }

    /// Recomputes one forward step from `y` (which becomes `y⁺`), keeping its stage inputs.
    pub fn replay<F: Rhs<V>>(
        &mut self,
        f: &mut F,
        params: &V,
        t: T,
        h: T,
        t_new: T,
        y: &mut V,
    ) -> VecStep<T, V> {
        let s = self.tableau.stages();
        let mut stages = Vec::with_capacity(s);
        stages.push(copy(y));
        if !self.k0_valid {
            f.eval(t, y, params, &mut self.k[0]);
            self.nfe += 1;
        }
        for i in 1..s {
            for (c, &a) in self.coeffs.iter_mut().zip(&self.a[i]) {
                *c = h * a;
            }
            self.ytmp
                .offset_linear_combination(y, &self.coeffs[..i], &self.k);
            stages.push(copy(&self.ytmp));
            let ti = self.stage_time(i, t, h, t_new);
            f.eval(ti, &self.ytmp, params, &mut self.k[i]);
            self.nfe += 1;
        }
        for (c, &b) in self.coeffs.iter_mut().zip(&self.b) {
            *c = h * b;
        }
        self.ytmp
            .offset_linear_combination(y, &self.coeffs[..s], &self.k);
        y.copy_from(&self.ytmp);
        if self.tableau.fsal {
            self.k.swap(0, s - 1);
            self.k0_valid = true;
        } else {
            self.k0_valid = false;
        }
        VecStep {
            t,
            h,
            t_new,
            stages,
        }
    }

    /// Reverses one step: `acc = [ȳ⁺, θ̄]` on entry, `[ȳ, θ̄ + …]` on exit. `outputs` are the
    /// dense outputs inside the step as `(θ, [z̄, 0])` (stacked length).
    pub fn reverse<F: VectorVjp<V>>(
        &mut self,
        f: &mut F,
        params: &V,
        step: &VecStep<T, V>,
        outputs: &[(f64, &V)],
        acc: &mut V,
    ) {
        let s = self.tableau.stages();
        let h = step.h;
        for i in 0..s {
            self.kbar[i].copy_from(acc);
            self.kbar[i].scale(h * self.b[i]);
            self.live[i] = self.b[i] != T::zero();
        }
        for &(theta, zbar) in outputs {
            (self.tableau.dense)(theta, &mut self.dense);
            for i in 0..s {
                if self.dense[i] != 0.0 {
                    self.kbar[i].axpby(h * <T as rk::Scalar>::of(self.dense[i]), zbar, T::one());
                    self.live[i] = true;
                }
            }
            acc.axpby(T::one(), zbar, T::one());
        }
        for i in (0..s).rev() {
            if !self.live[i] {
                continue;
            }
            let ti = self.stage_time(i, step.t, h, step.t_new);
            f.adjoint_rhs(
                ti,
                &step.stages[i],
                0,
                params,
                &self.kbar[i],
                0,
                &mut self.dx,
                None,
                0,
            );
            self.vjps += 1;
            // dx = [−Ȳ_i, −θ̄_i].
            acc.axpby(-T::one(), &self.dx, T::one());
            for j in 0..i {
                let ha = h * self.a[i][j];
                if ha != T::zero() {
                    self.kbar[j].axpby(-ha, &self.dx, T::one());
                    self.live[j] = true;
                }
            }
        }
    }
}

/// The discrete backward pass shared by Direct and ANODE: the output cotangents as stacked
/// vectors `[z̄_k, 0]`, the accumulator `acc = [ȳ, θ̄]` and the step reverser.
pub(crate) struct DiscreteAdjoint<'a, T, V> {
    positions: &'a [OutputPos],
    stacked: Vec<V>,
    pub acc: V,
    pub stepper: VecStepper<T, V>,
    n: usize,
}

impl<'a, T: Real, V: Vector<Scalar = T>> DiscreteAdjoint<'a, T, V> {
    /// Backend work space like `template` (a state) for the cotangents `cotangents[k]` at the
    /// outputs found at `positions`, and `p` parameters.
    pub fn new(
        tableau: &'static Tableau,
        template: &V,
        p: usize,
        cotangents: &[V],
        positions: &'a [OutputPos],
    ) -> Self {
        let n = template.len();
        let stacked: Vec<V> = cotangents
            .iter()
            .map(|c| {
                let mut v = template.zeros_with_len(n + p);
                v.copy_range(0, c, 0..n);
                v
            })
            .collect();
        let acc = template.zeros_with_len(n + p);
        let stepper = VecStepper::new(tableau, template, &acc);
        Self {
            positions,
            stacked,
            acc,
            stepper,
            n,
        }
    }

    /// Reverses `steps` (forward step indices `first …`), last step first, adding each output
    /// cotangent where its output time fell.
    pub fn reverse_steps<F: VectorVjp<V>>(
        &mut self,
        f: &mut F,
        params: &V,
        steps: &[VecStep<T, V>],
        first: usize,
    ) {
        for (offset, step) in steps.iter().enumerate().rev() {
            let index = first + offset;
            let mut inside: Vec<(f64, &V)> = Vec::new();
            for (k, pos) in self.positions.iter().enumerate() {
                if pos.step != index {
                    continue;
                }
                match pos.theta {
                    None => self.acc.axpby(T::one(), &self.stacked[k], T::one()),
                    Some(theta) => inside.push((theta, &self.stacked[k])),
                }
            }
            self.stepper
                .reverse(f, params, step, &inside, &mut self.acc);
        }
    }

    /// Adds the cotangent of the initial output and returns `(dL/dz0, dL/dθ)` on the backend.
    pub fn finish(mut self, params: &V) -> (V, V) {
        for (k, pos) in self.positions.iter().enumerate() {
            if pos.step == usize::MAX {
                self.acc.axpby(T::one(), &self.stacked[k], T::one());
            }
        }
        let mut dz0 = self.acc.zeros_with_len(self.n);
        dz0.copy_range(0, &self.acc, 0..self.n);
        let mut dtheta = params.zeros_like();
        dtheta.copy_range(0, &self.acc, self.n..self.acc.len());
        (dz0, dtheta)
    }
}
