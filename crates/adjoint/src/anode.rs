//! Checkpointing ([`crate::Method::Anode`], Zhang, Gholami & Biros, *ANODE*, 2019): the forward
//! pass keeps the state at checkpoints and the `(t, h, t_new)` of every accepted step; the
//! backward pass, last checkpoint interval first, replays the interval's steps from its
//! checkpoint (recomputing their stage inputs, `stages − 1` evaluations per step with FSAL) and
//! reverses them with the discrete adjoint of [`crate::discrete`], so the gradient equals
//! Direct's. Memory: `checkpoints × dim + 3 × steps` floats plus one interval's stage inputs.
//!
//! Placement: [`Checkpoints::EveryKSteps`] puts one every `k` steps;
//! [`Checkpoints::Count`] starts with one per step and, whenever `c` are held, keeps every other
//! one and doubles the spacing, so at most `c` are held and they stay evenly spaced in steps.

use crate::discrete::{DiscreteAdjoint, OutputPos, VecStep, copy};
use crate::error::{AdjointError, Result};
use crate::method::{Checkpoints, Info};
use crate::vector_vjp::VectorVjp;
use crate::vjp::Real;
use rk::{Tableau, Vector};

/// What the forward pass of ANODE keeps: the steps and the checkpoints to replay them from.
pub(crate) struct AnodeTape<T, V> {
    rule: Checkpoints,
    spacing: usize,
    /// `(t, h, t_new)` of every accepted step.
    steps: Vec<(T, T, T)>,
    /// `(index of the first step after the checkpoint, state)`.
    checkpoints: Vec<(usize, V)>,
}

impl<T: Real, V: Vector<Scalar = T>> AnodeTape<T, V> {
    /// Checks the placement rule and keeps `z0` as the first checkpoint.
    pub fn new(rule: Checkpoints, z0: &V) -> Result<Self> {
        let spacing = match rule {
            Checkpoints::EveryKSteps(0) => {
                return Err(AdjointError::BadSetting {
                    name: "ANODE k",
                    value: 0.0,
                    reason: "checkpoint spacing must be >= 1",
                });
            }
            Checkpoints::Count(c) if c < 2 => {
                return Err(AdjointError::BadSetting {
                    name: "ANODE checkpoints",
                    value: c as f64,
                    reason: "needs at least 2 checkpoints",
                });
            }
            Checkpoints::EveryKSteps(k) => k,
            Checkpoints::Count(_) => 1,
        };
        Ok(Self {
            rule,
            spacing,
            steps: Vec::new(),
            checkpoints: vec![(0, copy(z0))],
        })
    }

    /// Records the accepted step `(t, h, t_new)` (the `step_index`-th, from 0) that ended at
    /// `state`; `finished` says it was the last one (no checkpoint is kept at the end).
    pub fn after_step(&mut self, step: (T, T, T), step_index: usize, finished: bool, state: &V) {
        self.steps.push(step);
        let done = step_index + 1;
        if done.is_multiple_of(self.spacing) && !finished {
            self.checkpoints.push((done, copy(state)));
            if let Checkpoints::Count(c) = self.rule
                && self.checkpoints.len() >= c
            {
                // Thin out: keep every other checkpoint, double the spacing.
                self.spacing *= 2;
                let spacing = self.spacing;
                self.checkpoints.retain(|(i, _)| i % spacing == 0);
            }
        }
    }

    /// Floats held between the passes: the checkpoints and `(t, h, t_new)` per step.
    pub fn stored_floats(&self) -> usize {
        let n = self.checkpoints[0].1.len();
        self.checkpoints.len() * n + 3 * self.steps.len()
    }

    /// Replays and reverses each checkpoint interval, last first: returns `(dL/dz0, dL/dθ)`,
    /// fills the backward counts of `info` and adds the largest interval's stage inputs to its
    /// stored floats.
    pub fn backward<F: VectorVjp<V>>(
        &self,
        f: &mut F,
        params: &V,
        tableau: &'static Tableau,
        cotangents: &[V],
        positions: &[OutputPos],
        info: &mut Info,
    ) -> (V, V) {
        let template = &self.checkpoints[0].1;
        let n = template.len();
        let mut adjoint =
            DiscreteAdjoint::new(tableau, template, params.len(), cotangents, positions);
        let mut peak = 0;
        for (ci, (start, state)) in self.checkpoints.iter().enumerate().rev() {
            let end = self
                .checkpoints
                .get(ci + 1)
                .map_or(self.steps.len(), |c| c.0);
            let mut y = copy(state);
            adjoint.stepper.restart();
            let records: Vec<VecStep<T, V>> = self.steps[*start..end]
                .iter()
                .map(|&(t, h, t_new)| adjoint.stepper.replay(f, params, t, h, t_new, &mut y))
                .collect();
            peak = peak.max(records.iter().map(|r| r.stages.len()).sum::<usize>() * n);
            adjoint.reverse_steps(f, params, &records, *start);
        }
        info.accepted_backward = self.steps.len();
        info.nfe_backward = adjoint.stepper.nfe;
        info.vjp_backward = adjoint.stepper.vjps;
        info.stored_floats += peak;
        adjoint.finish(params)
    }
}
