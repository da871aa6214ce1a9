//! The discrete adjoint of explicit Runge–Kutta steps (Direct and ANODE).
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
//! which is the exact gradient of the discrete solution map (one VJP per stage with a non-zero
//! cotangent; the FSAL stage needs one only when a dense output falls inside the step).

use crate::vjp::{Real, Vjp};
use rk::{Rhs, Tableau, Vector};

/// Stage inputs of one accepted step: `stages[i·n .. (i+1)·n] = Y_i`.
#[derive(Debug, Clone)]
pub(crate) struct StepRecord<T> {
    pub t: T,
    pub h: T,
    pub t_new: T,
    pub stages: Vec<T>,
}

/// Where an output time fell in the forward pass: at the end of step `step`, or inside it at
/// fraction `theta`. Output 0 (the initial time) has `step = usize::MAX`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutputPos {
    pub step: usize,
    pub theta: Option<f64>,
}

/// Wraps a right-hand side and keeps copies of the inputs of its last `s` evaluations, so that
/// the stage inputs of each accepted step can be read off after the solver returns.
pub(crate) struct Recorder<'a, T, F> {
    pub f: &'a mut F,
    ring: Vec<Vec<T>>,
    next: usize,
}

impl<'a, T: Real, F> Recorder<'a, T, F> {
    pub fn new(f: &'a mut F, stages: usize, n: usize) -> Self {
        Self {
            f,
            ring: vec![vec![T::zero(); n]; stages],
            next: 0,
        }
    }

    /// The stage inputs of the step just accepted, given the state `y_prev` it started from.
    pub fn take_step(
        &self,
        tableau: &Tableau,
        y_prev: &[T],
        t: T,
        h: T,
        t_new: T,
    ) -> StepRecord<T> {
        let s = tableau.stages();
        let n = y_prev.len();
        let mut stages = Vec::with_capacity(s * n);
        // Evaluations recorded for this step, oldest first.
        let recorded = if tableau.fsal {
            stages.extend_from_slice(y_prev);
            s - 1
        } else {
            s
        };
        for back in (1..=recorded).rev() {
            let slot = (self.next + s - back) % s;
            stages.extend_from_slice(&self.ring[slot]);
        }
        StepRecord {
            t,
            h,
            t_new,
            stages,
        }
    }
}

impl<T: Real, F: Rhs<Vec<T>>> Rhs<Vec<T>> for Recorder<'_, T, F> {
    fn eval(&mut self, t: T, z: &Vec<T>, params: &Vec<T>, dz: &mut Vec<T>) {
        self.f.eval(t, z, params, dz);
        let s = self.ring.len();
        self.ring[self.next].copy_from_slice(z);
        self.next = (self.next + 1) % s;
    }
}

/// Tableau coefficients converted to `T`, and work space for replaying and reversing steps.
pub(crate) struct Stepper<T> {
    pub tableau: &'static Tableau,
    c: Vec<T>,
    a: Vec<Vec<T>>,
    b: Vec<T>,
    k: Vec<Vec<T>>,
    kbar: Vec<Vec<T>>,
    adj_z: Vec<T>,
    adj_p: Vec<T>,
    coeffs: Vec<T>,
    dense: Vec<f64>,
    ytmp: Vec<T>,
    k0_valid: bool,
    pub nfe: usize,
    pub vjps: usize,
}

impl<T: Real> Stepper<T> {
    pub fn new(tableau: &'static Tableau, n: usize, p: usize) -> Self {
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
            k: vec![vec![T::zero(); n]; s],
            kbar: vec![vec![T::zero(); n]; s],
            adj_z: vec![T::zero(); n],
            adj_p: vec![T::zero(); p],
            coeffs: vec![T::zero(); s],
            dense: vec![0.0; s],
            ytmp: vec![T::zero(); n],
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

    /// Starts a replay from a checkpoint: the next step evaluates `f(t, y)` afresh.
    pub fn restart(&mut self) {
        self.k0_valid = false;
    }

    /// Recomputes one step of the forward pass from `y` (which becomes `y⁺`), recording its
    /// stage inputs. Same arithmetic as the solver's step.
    pub fn replay<F: Rhs<Vec<T>>>(
        &mut self,
        f: &mut F,
        params: &Vec<T>,
        t: T,
        h: T,
        t_new: T,
        y: &mut Vec<T>,
    ) -> StepRecord<T> {
        let s = self.tableau.stages();
        let n = y.len();
        let mut stages = Vec::with_capacity(s * n);
        stages.extend_from_slice(y);
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
            stages.extend_from_slice(&self.ytmp);
            let ti = self.stage_time(i, t, h, t_new);
            f.eval(ti, &self.ytmp, params, &mut self.k[i]);
            self.nfe += 1;
        }
        for (c, &b) in self.coeffs.iter_mut().zip(&self.b) {
            *c = h * b;
        }
        self.ytmp
            .offset_linear_combination(y, &self.coeffs[..s], &self.k);
        y.copy_from_slice(&self.ytmp);
        if self.tableau.fsal {
            self.k.swap(0, s - 1);
            self.k0_valid = true;
        } else {
            self.k0_valid = false;
        }
        StepRecord {
            t,
            h,
            t_new,
            stages,
        }
    }

    /// Reverses one step: on entry `ybar = ȳ⁺`, on exit `ȳ`; adds into `pbar`. `outputs` are the
    /// dense outputs inside the step as `(θ, z̄)`.
    pub fn reverse<F: Vjp<T>>(
        &mut self,
        f: &mut F,
        params: &[T],
        rec: &StepRecord<T>,
        outputs: &[(f64, &[T])],
        ybar: &mut [T],
        pbar: &mut [T],
    ) {
        let s = self.tableau.stages();
        let n = ybar.len();
        let h = rec.h;
        for (kb, &b) in self.kbar.iter_mut().zip(&self.b) {
            let hb = h * b;
            for (x, &y) in kb.iter_mut().zip(ybar.iter()) {
                *x = hb * y;
            }
        }
        for &(theta, zbar) in outputs {
            (self.tableau.dense)(theta, &mut self.dense);
            for (kb, &d) in self.kbar.iter_mut().zip(&self.dense) {
                let hd = h * <T as rk::Scalar>::of(d);
                for (x, &z) in kb.iter_mut().zip(zbar) {
                    *x = *x + hd * z;
                }
            }
            for (y, &z) in ybar.iter_mut().zip(zbar) {
                *y = *y + z;
            }
        }
        for i in (0..s).rev() {
            if self.kbar[i].iter().all(|&x| x == T::zero()) {
                continue;
            }
            let ti = self.stage_time(i, rec.t, h, rec.t_new);
            let yi = &rec.stages[i * n..(i + 1) * n];
            f.vjp(
                ti,
                yi,
                params,
                &self.kbar[i],
                None,
                &mut self.adj_z,
                &mut self.adj_p,
            );
            self.vjps += 1;
            for (g, &d) in pbar.iter_mut().zip(&self.adj_p) {
                *g = *g + d;
            }
            for (y, &d) in ybar.iter_mut().zip(&self.adj_z) {
                *y = *y + d;
            }
            for j in 0..i {
                let ha = h * self.a[i][j];
                if ha == T::zero() {
                    continue;
                }
                for (x, &d) in self.kbar[j].iter_mut().zip(&self.adj_z) {
                    *x = *x + ha * d;
                }
            }
        }
    }
}
