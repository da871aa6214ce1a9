//! Direct backpropagation through the solver ([`crate::Method::Direct`]): the forward pass
//! keeps the stage inputs `Y_0 … Y_{s−1}` of every accepted step (a `StageRecorder` wraps the
//! right-hand side and keeps the inputs of its last `s` evaluations); the backward pass reverses
//! every step exactly with the discrete adjoint of [`crate::discrete`], so the gradient is the
//! exact gradient of the discrete solution map. Memory: `steps × stages × dim` floats.

use crate::discrete::{DiscreteAdjoint, OutputPos, VecStep, copy};
use crate::method::Info;
use crate::vector_vjp::VectorVjp;
use crate::vjp::Real;
use rk::{Rhs, Tableau, Vector};

/// Wraps a right-hand side and keeps copies of the inputs of its last `s` evaluations.
pub(crate) struct StageRecorder<'a, V, F> {
    pub f: &'a mut F,
    ring: Vec<V>,
    next: usize,
}

impl<'a, V: Vector, F> StageRecorder<'a, V, F> {
    pub fn new(f: &'a mut F, stages: usize, template: &V) -> Self {
        Self {
            f,
            ring: (0..stages).map(|_| template.zeros_like()).collect(),
            next: 0,
        }
    }

    /// The stage inputs of the step just accepted, which started from `y_prev`.
    pub fn take_step<T>(
        &self,
        tableau: &Tableau,
        y_prev: &V,
        t: T,
        h: T,
        t_new: T,
    ) -> VecStep<T, V> {
        let s = tableau.stages();
        let mut stages = Vec::with_capacity(s);
        let recorded = if tableau.fsal {
            stages.push(copy(y_prev));
            s - 1
        } else {
            s
        };
        for back in (1..=recorded).rev() {
            stages.push(copy(&self.ring[(self.next + s - back) % s]));
        }
        VecStep {
            t,
            h,
            t_new,
            stages,
        }
    }
}

impl<V: Vector, F: Rhs<V>> Rhs<V> for StageRecorder<'_, V, F> {
    fn eval(&mut self, t: V::Scalar, z: &V, params: &V, dz: &mut V) {
        self.f.eval(t, z, params, dz);
        let s = self.ring.len();
        self.ring[self.next].copy_from(z);
        self.next = (self.next + 1) % s;
    }
}

/// What the forward pass of Direct keeps: every accepted step's stage inputs.
pub(crate) struct DirectTape<T, V> {
    steps: Vec<VecStep<T, V>>,
    /// The state at the start of the step being taken.
    y_prev: V,
}

impl<T: Real, V: Vector<Scalar = T>> DirectTape<T, V> {
    /// An empty tape for a solve from `z0`.
    pub fn new(z0: &V) -> Self {
        Self {
            steps: Vec::new(),
            y_prev: copy(z0),
        }
    }

    /// Records the step from `t` to `t_new = t + h` just accepted, which ended at `state`.
    pub fn after_step<F>(
        &mut self,
        recorder: &StageRecorder<'_, V, F>,
        tableau: &Tableau,
        (t, h, t_new): (T, T, T),
        state: &V,
    ) {
        self.steps
            .push(recorder.take_step(tableau, &self.y_prev, t, h, t_new));
        self.y_prev.copy_from(state);
    }

    /// Floats held for the backward pass: the stage inputs plus `(t, h, t_new)` per step.
    pub fn stored_floats(&self) -> usize {
        self.steps
            .iter()
            .map(|st| st.stages.len() * self.y_prev.len() + 3)
            .sum()
    }

    /// The discrete adjoint of every recorded step, last step first: returns
    /// `(dL/dz0, dL/dθ)` and fills the backward counts of `info`.
    pub fn backward<F: VectorVjp<V>>(
        &self,
        f: &mut F,
        params: &V,
        tableau: &'static Tableau,
        cotangents: &[V],
        positions: &[OutputPos],
        info: &mut Info,
    ) -> (V, V) {
        let mut adjoint =
            DiscreteAdjoint::new(tableau, &self.y_prev, params.len(), cotangents, positions);
        adjoint.reverse_steps(f, params, &self.steps, 0);
        info.accepted_backward = self.steps.len();
        info.vjp_backward = adjoint.stepper.vjps;
        adjoint.finish(params)
    }
}
