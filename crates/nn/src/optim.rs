//! Optimizers with PyTorch's update rules (`torch.optim.Adam`, `torch.optim.SGD`).
//!
//! **Adam** (Kingma & Ba 2015, PyTorch form): with `g ← g + λθ` (weight decay),
//! `m ← β1 m + (1−β1) g`, `v ← β2 v + (1−β2) g²`, and at step `k`
//! `θ ← θ − (lr / (1 − β1ᵏ)) · m / (√v / √(1 − β2ᵏ) + ε)`.
//!
//! **SGD** with momentum `μ`, dampening `τ`: `g ← g + λθ`; `b ← g` at the first step, else
//! `b ← μ b + (1 − τ) g`; the step direction is `b`, or `g + μ b` with Nesterov; `θ ← θ − lr · d`.

use crate::Float;
use crate::error::{NnError, Result, check_finite, shape_err};
use serde::{Deserialize, Serialize};

/// An optimizer updates parameters in place from a gradient.
pub trait Optimizer<T> {
    /// One update. Errors on length mismatch or a non-finite gradient (parameters untouched).
    fn step(&mut self, params: &mut [T], grad: &[T]) -> Result<()>;
    /// Steps taken so far.
    fn steps(&self) -> u64;
    /// Named state vectors (for checkpoints).
    fn state(&self) -> Vec<(&'static str, &[T])>;
    /// Restores state saved by [`Optimizer::state`] after `steps` steps.
    fn restore(&mut self, steps: u64, state: &[(&str, Vec<T>)]) -> Result<()>;
}

fn check<T: Float>(n: usize, params: &[T], grad: &[T]) -> Result<()> {
    if params.len() != n || grad.len() != n {
        return Err(shape_err(
            "optimizer (params, grad)",
            format!("({n}, {n})"),
            format!("({}, {})", params.len(), grad.len()),
        ));
    }
    check_finite("gradient", grad)
}

fn invalid(name: &str, reason: &str) -> NnError {
    NnError::Invalid {
        name: name.into(),
        reason: reason.into(),
    }
}

/// Hyperparameters of [`Adam`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Learning rate (1e-3).
    pub lr: f64,
    /// `β1` (0.9).
    pub beta1: f64,
    /// `β2` (0.999).
    pub beta2: f64,
    /// `ε` (1e-8).
    pub eps: f64,
    /// L2 weight decay `λ` (0).
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Adam.
#[derive(Debug, Clone)]
pub struct Adam<T> {
    config: AdamConfig,
    m: Vec<T>,
    v: Vec<T>,
    steps: u64,
}

impl<T: Float> Adam<T> {
    /// Adam for `n` parameters.
    pub fn new(n: usize, config: AdamConfig) -> Result<Self> {
        let c = config;
        if !(c.lr > 0.0 && c.lr.is_finite()) {
            return Err(invalid("Adam lr", "must be finite and > 0"));
        }
        if !((0.0..1.0).contains(&c.beta1) && (0.0..1.0).contains(&c.beta2)) {
            return Err(invalid("Adam betas", "must lie in [0, 1)"));
        }
        if !(c.eps > 0.0 && c.weight_decay >= 0.0 && c.weight_decay.is_finite()) {
            return Err(invalid(
                "Adam eps / weight_decay",
                "eps must be > 0, weight_decay >= 0",
            ));
        }
        Ok(Self {
            config,
            m: vec![T::zero(); n],
            v: vec![T::zero(); n],
            steps: 0,
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> AdamConfig {
        self.config
    }
}

impl<T: Float> Optimizer<T> for Adam<T> {
    fn step(&mut self, params: &mut [T], grad: &[T]) -> Result<()> {
        check(self.m.len(), params, grad)?;
        let of = <T as rk::Scalar>::of;
        let c = self.config;
        self.steps += 1;
        let k = self.steps as i32;
        let bc1 = 1.0 - c.beta1.powi(k);
        let bc2_sqrt = of((1.0 - c.beta2.powi(k)).sqrt());
        let step_size = of(c.lr / bc1);
        let (b1, b2, wd, eps) = (of(c.beta1), of(c.beta2), of(c.weight_decay), of(c.eps));
        let one = T::one();
        for i in 0..params.len() {
            let g = grad[i] + wd * params[i];
            self.m[i] = b1 * self.m[i] + (one - b1) * g;
            self.v[i] = b2 * self.v[i] + (one - b2) * g * g;
            let denom = self.v[i].sqrt() / bc2_sqrt + eps;
            params[i] -= step_size * self.m[i] / denom;
        }
        Ok(())
    }

    fn steps(&self) -> u64 {
        self.steps
    }

    fn state(&self) -> Vec<(&'static str, &[T])> {
        vec![("exp_avg", &self.m), ("exp_avg_sq", &self.v)]
    }

    fn restore(&mut self, steps: u64, state: &[(&str, Vec<T>)]) -> Result<()> {
        for (name, dst) in [("exp_avg", &mut self.m), ("exp_avg_sq", &mut self.v)] {
            let (_, v) = state
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| invalid("Adam state", &format!("missing {name}")))?;
            if v.len() != dst.len() {
                return Err(shape_err(format!("Adam {name}"), dst.len(), v.len()));
            }
            dst.copy_from_slice(v);
        }
        self.steps = steps;
        Ok(())
    }
}

/// Hyperparameters of [`Sgd`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f64,
    /// Momentum `μ` (0 = plain SGD).
    pub momentum: f64,
    /// Dampening `τ`.
    pub dampening: f64,
    /// L2 weight decay `λ`.
    pub weight_decay: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// Stochastic gradient descent with momentum.
#[derive(Debug, Clone)]
pub struct Sgd<T> {
    config: SgdConfig,
    buf: Vec<T>,
    steps: u64,
}

impl<T: Float> Sgd<T> {
    /// SGD for `n` parameters.
    pub fn new(n: usize, config: SgdConfig) -> Result<Self> {
        let c = config;
        if !(c.lr > 0.0 && c.lr.is_finite()) {
            return Err(invalid("SGD lr", "must be finite and > 0"));
        }
        if !(c.momentum >= 0.0 && c.dampening >= 0.0 && c.weight_decay >= 0.0) {
            return Err(invalid(
                "SGD momentum / dampening / weight_decay",
                "must be >= 0",
            ));
        }
        if c.nesterov && (c.momentum <= 0.0 || c.dampening != 0.0) {
            return Err(invalid(
                "SGD nesterov",
                "needs momentum > 0 and zero dampening",
            ));
        }
        Ok(Self {
            config,
            buf: vec![T::zero(); n],
            steps: 0,
        })
    }
}

impl<T: Float> Optimizer<T> for Sgd<T> {
    fn step(&mut self, params: &mut [T], grad: &[T]) -> Result<()> {
        check(self.buf.len(), params, grad)?;
        let of = <T as rk::Scalar>::of;
        let c = self.config;
        let (lr, mu, damp, wd) = (
            of(c.lr),
            of(c.momentum),
            of(c.dampening),
            of(c.weight_decay),
        );
        let first = self.steps == 0;
        self.steps += 1;
        for i in 0..params.len() {
            let g = grad[i] + wd * params[i];
            let d = if c.momentum != 0.0 {
                self.buf[i] = if first {
                    g
                } else {
                    mu * self.buf[i] + (T::one() - damp) * g
                };
                if c.nesterov {
                    g + mu * self.buf[i]
                } else {
                    self.buf[i]
                }
            } else {
                g
            };
            params[i] -= lr * d;
        }
        Ok(())
    }

    fn steps(&self) -> u64 {
        self.steps
    }

    fn state(&self) -> Vec<(&'static str, &[T])> {
        vec![("momentum_buffer", &self.buf)]
    }

    fn restore(&mut self, steps: u64, state: &[(&str, Vec<T>)]) -> Result<()> {
        let (_, v) = state
            .iter()
            .find(|(n, _)| *n == "momentum_buffer")
            .ok_or_else(|| invalid("SGD state", "missing momentum_buffer"))?;
        if v.len() != self.buf.len() {
            return Err(shape_err("SGD momentum_buffer", self.buf.len(), v.len()));
        }
        self.buf.copy_from_slice(v);
        self.steps = steps;
        Ok(())
    }
}
