//! A multi-block continuous normalizing flow (FFJORD's tabular models; the IRDM paper's
//! miniboone experiment, Fig. 3): `K` CNF blocks in sequence, each with its own concat-squash
//! net `f_k` on `t ∈ [0, T]`,
//!
//! ```text
//!     [z_k, Δ_k] = Φ_k([z_{k−1}, Δ_{k−1}]),   z_0 = x,  Δ_0 = 0,
//!     dz/dt = f_k(t, z),   dΔ/dt = −tr ∂f_k/∂z           (block k)
//!     log p(x) = log N(z_K; 0, I) − Δ_K,       L = −mean_b log p(x_b),
//! ```
//!
//! so the log-density changes of the blocks add up along the chain. The gradient runs the
//! blocks' backward passes in reverse order, each by the chosen [`Method`]: block `k`'s
//! `dL/d[z_{k−1}, Δ_{k−1}]` is the output cotangent of block `k − 1`, and block `k`'s `dL/dθ_k`
//! fills its slice of the parameters (`θ = [θ_1, …, θ_K]`).

use crate::cnf::{Cnf, Divergence, Noise, nll_loss};
use crate::error::{NnError, Result, shape_err};
use crate::net::{LayerKind, OdeNet};
use crate::rng::Rng;
use crate::{Activation, Float};
use adjoint::{Config, Info, IrdmOptions, Method, Vjp, forward};
use std::ops::Range;

/// Shape of a multi-block CNF.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockSpec {
    /// Data dimension `D`.
    pub dim: usize,
    /// Hidden widths of each block's net (`D → hidden… → D`).
    pub hidden: Vec<usize>,
    /// Blocks `K`.
    pub blocks: usize,
    /// Activation between layers (the paper's tabular models: softplus).
    pub activation: Activation,
    /// Trace: exact or Hutchinson's (FFJORD's default on tabular data).
    pub divergence: Divergence,
    /// Integration time `T` of each block.
    pub t1: f64,
}

/// The chain of blocks, sized for batches of `batch` points.
#[derive(Debug, Clone)]
pub struct MultiBlockCnf<T> {
    spec: BlockSpec,
    blocks: Vec<Cnf<T>>,
    ranges: Vec<Range<usize>>,
}

/// A loss, its gradient and the summed counts of every block.
#[derive(Debug, Clone)]
pub struct BlockGradient<T> {
    /// `L` (mean NLL of the batch, nats).
    pub loss: T,
    /// `dL/dθ`, all blocks.
    pub dtheta: Vec<T>,
    /// Counts summed over the blocks (`stored_floats` too: every block's tape is held until
    /// the backward pass reaches it).
    pub info: Info,
}

impl<T: Float> MultiBlockCnf<T> {
    /// `spec.blocks` blocks for batches of `batch` points.
    pub fn new(spec: BlockSpec, batch: usize) -> Result<Self> {
        if spec.blocks == 0 || spec.dim == 0 || !(spec.t1 > 0.0 && spec.t1.is_finite()) {
            return Err(NnError::Invalid {
                name: "multi-block CNF".into(),
                reason: format!("needs blocks >= 1, dim >= 1 and t1 > 0, got {spec:?}"),
            });
        }
        let mut dims = vec![spec.dim];
        dims.extend(&spec.hidden);
        dims.push(spec.dim);
        let mut blocks = Vec::with_capacity(spec.blocks);
        let mut ranges = Vec::with_capacity(spec.blocks);
        let mut at = 0;
        for _ in 0..spec.blocks {
            let net = OdeNet::new(&dims, LayerKind::ConcatSquash, spec.activation)?;
            let len = net.param_len();
            blocks.push(Cnf::new(net, batch, spec.divergence)?);
            ranges.push(at..at + len);
            at += len;
        }
        Ok(Self {
            spec,
            blocks,
            ranges,
        })
    }

    /// The shape.
    pub fn spec(&self) -> &BlockSpec {
        &self.spec
    }

    /// Points per batch.
    pub fn batch(&self) -> usize {
        self.blocks[0].batch()
    }

    /// Resizes every block for batches of `batch` points.
    pub fn set_batch(&mut self, batch: usize) -> Result<()> {
        self.blocks.iter_mut().try_for_each(|b| b.set_batch(batch))
    }

    /// Shards every block's batch over `threads` threads.
    pub fn set_threads(&mut self, threads: usize) {
        for b in &mut self.blocks {
            b.set_threads(threads);
        }
    }

    /// Parameters of all blocks.
    pub fn param_len(&self) -> usize {
        self.ranges.last().map_or(0, |r| r.end)
    }

    /// Block `k`'s slice of the parameters.
    pub fn block_params(&self, k: usize) -> Range<usize> {
        self.ranges[k].clone()
    }

    /// PyTorch-default initial weights, block after block.
    pub fn init_params(&self, rng: &mut Rng) -> Vec<T> {
        self.blocks
            .iter()
            .flat_map(|b| b.net.init_params(rng))
            .collect()
    }

    /// Draws fresh Hutchinson noise for every block (nothing with the exact trace).
    pub fn sample_noise(&mut self, rng: &mut Rng, noise: Noise) {
        for b in &mut self.blocks {
            b.sample_noise(rng, noise);
        }
    }

    fn config(&self, block: usize, rtol: f64, atol: f64, irdm: IrdmOptions) -> Config<T> {
        let of = <T as rk::Scalar>::of;
        let mut c = Config::new(of(rtol), of(atol));
        c.forward = c
            .forward
            .with_norm(rk::ErrorNorm::Groups(self.blocks[block].state_groups()));
        c.irdm = irdm;
        c
    }

    fn check(&self, params: &[T], x: &[T]) -> Result<()> {
        if params.len() != self.param_len() {
            return Err(shape_err(
                "multi-block CNF parameters",
                self.param_len(),
                params.len(),
            ));
        }
        let want = self.batch() * self.spec.dim;
        if x.len() != want {
            return Err(shape_err("multi-block CNF batch", want, x.len()));
        }
        crate::error::check_finite("multi-block CNF batch", x)
    }

    /// The mean NLL of the batch `x` (`B × D`, row-major) and its gradient, each block
    /// differentiated by `method` at tolerances `rtol`, `atol`.
    pub fn loss_and_gradient(
        &mut self,
        params: &[T],
        x: &[T],
        method: Method,
        rtol: f64,
        atol: f64,
        irdm: IrdmOptions,
    ) -> Result<BlockGradient<T>> {
        self.check(params, x)?;
        let (b, d) = (self.batch(), self.spec.dim);
        let ts = [T::zero(), <T as rk::Scalar>::of(self.spec.t1)];
        let mut state = x.to_vec();
        state.extend(std::iter::repeat_n(T::zero(), b));
        let mut passes = Vec::with_capacity(self.blocks.len());
        let mut info = Info {
            method: method.name(),
            ..Info::default()
        };
        for k in 0..self.blocks.len() {
            let config = self.config(k, rtol, atol, irdm);
            let theta = &params[self.ranges[k].clone()];
            let fwd = forward(&mut self.blocks[k], theta, &state, &ts, method, &config)?;
            state = fwd.outputs()[1].clone();
            passes.push(fwd);
        }
        let (loss, mut cot) = nll_loss(&state, b, d)?;
        let mut dtheta = vec![T::zero(); self.param_len()];
        for (k, fwd) in passes.iter().enumerate().rev() {
            let theta = &params[self.ranges[k].clone()];
            let zeros = vec![T::zero(); cot.len()];
            let g = fwd.backward(&mut self.blocks[k], theta, &[zeros, cot])?;
            dtheta[self.ranges[k].clone()].copy_from_slice(&g.dtheta);
            cot = g.dz0;
            let i = g.info;
            info.nfe_forward += i.nfe_forward;
            info.nfe_backward += i.nfe_backward;
            info.vjp_backward += i.vjp_backward;
            info.accepted_forward += i.accepted_forward;
            info.accepted_backward += i.accepted_backward;
            info.rejected_forward += i.rejected_forward;
            info.rejected_backward += i.rejected_backward;
            info.stored_floats += i.stored_floats;
        }
        crate::error::check_finite("multi-block CNF gradient", &dtheta)?;
        Ok(BlockGradient { loss, dtheta, info })
    }

    /// `log p(x_b)` of every point of the batch `x` (forward solves only).
    pub fn log_density(&mut self, params: &[T], x: &[T], rtol: f64, atol: f64) -> Result<Vec<f64>> {
        self.check(params, x)?;
        let (b, d) = (self.batch(), self.spec.dim);
        let of = <T as rk::Scalar>::of;
        let mut state = x.to_vec();
        state.extend(std::iter::repeat_n(T::zero(), b));
        for k in 0..self.blocks.len() {
            let theta = &params[self.ranges[k].clone()];
            let options = rk::Options::new(of(rtol), of(atol))
                .with_norm(rk::ErrorNorm::Groups(self.blocks[k].state_groups()));
            let sol = rk::solve(
                &mut self.blocks[k],
                &theta.to_vec(),
                rk::Method::Dopri5,
                &options,
                &[T::zero(), of(self.spec.t1)],
                &state,
            )
            .map_err(|source| adjoint::AdjointError::Solve {
                method: "log-density",
                pass: "forward",
                source,
            })?;
            state = sol.ys[1].clone();
        }
        let half_log_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        let f = |v: T| <T as rk::Scalar>::as_f64(v);
        Ok((0..b)
            .map(|i| {
                let log_n: f64 = state[i * d..(i + 1) * d]
                    .iter()
                    .map(|&z| -half_log_2pi - 0.5 * f(z) * f(z))
                    .sum();
                log_n - f(state[b * d + i])
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adjoint::BackwardNorm;

    fn spec(divergence: Divergence) -> BlockSpec {
        BlockSpec {
            dim: 2,
            hidden: vec![8],
            blocks: 2,
            activation: Activation::Softplus,
            divergence,
            t1: 0.5,
        }
    }

    #[test]
    fn the_gradient_matches_central_differences() {
        let mut flow = MultiBlockCnf::<f64>::new(spec(Divergence::Exact), 3).unwrap();
        let theta = flow.init_params(&mut Rng::new(4));
        let x = [0.3, -0.7, 1.1, 0.2, -0.4, 0.9];
        let tol = 1e-11;
        let irdm = IrdmOptions::default();
        let direct = flow
            .loss_and_gradient(&theta, &x, Method::Direct, tol, tol, irdm)
            .unwrap();
        let h = 1e-5;
        let mut worst: f64 = 0.0;
        for i in (0..theta.len()).step_by(7) {
            let (mut up, mut down) = (theta.clone(), theta.clone());
            up[i] += h;
            down[i] -= h;
            let lu = flow
                .loss_and_gradient(&up, &x, Method::Direct, tol, tol, irdm)
                .unwrap()
                .loss;
            let ld = flow
                .loss_and_gradient(&down, &x, Method::Direct, tol, tol, irdm)
                .unwrap()
                .loss;
            let fd = (lu - ld) / (2.0 * h);
            worst = worst.max((fd - direct.dtheta[i]).abs() / fd.abs().max(1e-3));
        }
        assert!(worst < 1e-6, "Direct vs central differences: {worst:e}");
        // The continuous methods agree with the exact discrete gradient at this tolerance.
        for method in [
            Method::Rdm {
                norm: BackwardNorm::Full,
            },
            Method::irdm_lobatto(16, BackwardNorm::Seminorm),
        ] {
            let g = flow
                .loss_and_gradient(&theta, &x, method, tol, tol, irdm)
                .unwrap();
            let err = g
                .dtheta
                .iter()
                .zip(&direct.dtheta)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            let scale = direct.dtheta.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(err < 1e-6 * scale, "{}: {err:e}", method.name());
            assert!((g.loss - direct.loss).abs() < 1e-12);
        }
    }

    #[test]
    fn the_density_integrates_to_one() {
        // Riemann sum of p over [−L, L]² on a grid of n × n cell centres.
        let (l, n) = (7.0f64, 100usize);
        let h = 2.0 * l / n as f64;
        let mut flow = MultiBlockCnf::<f64>::new(spec(Divergence::Exact), n * n).unwrap();
        let theta = flow.init_params(&mut Rng::new(9));
        let mut x = Vec::with_capacity(2 * n * n);
        for i in 0..n {
            for j in 0..n {
                x.push(-l + (i as f64 + 0.5) * h);
                x.push(-l + (j as f64 + 0.5) * h);
            }
        }
        let logp = flow.log_density(&theta, &x, 1e-8, 1e-8).unwrap();
        let mass: f64 = logp.iter().map(|lp| lp.exp() * h * h).sum();
        assert!((mass - 1.0).abs() < 1e-3, "∫p = {mass}");
        // And the loss is the mean of −log p.
        let mut small = MultiBlockCnf::<f64>::new(spec(Divergence::Exact), 3).unwrap();
        let pts = [0.3, -0.7, 1.1, 0.2, -0.4, 0.9];
        let lp = small.log_density(&theta, &pts, 1e-10, 1e-10).unwrap();
        let g = small
            .loss_and_gradient(
                &theta,
                &pts,
                Method::Direct,
                1e-10,
                1e-10,
                IrdmOptions::default(),
            )
            .unwrap();
        let mean = -lp.iter().sum::<f64>() / 3.0;
        assert!((g.loss - mean).abs() < 1e-8, "{} vs {mean}", g.loss);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let mut flow = MultiBlockCnf::<f64>::new(spec(Divergence::Hutchinson), 2).unwrap();
        let theta = flow.init_params(&mut Rng::new(1));
        let irdm = IrdmOptions::default();
        assert!(
            flow.loss_and_gradient(&theta[1..], &[0.0; 4], Method::Direct, 1e-6, 1e-6, irdm)
                .is_err()
        );
        assert!(
            flow.loss_and_gradient(&theta, &[0.0; 3], Method::Direct, 1e-6, 1e-6, irdm)
                .is_err()
        );
        assert!(
            flow.loss_and_gradient(&theta, &[f64::NAN; 4], Method::Direct, 1e-6, 1e-6, irdm)
                .is_err()
        );
        let mut s = spec(Divergence::Exact);
        s.blocks = 0;
        assert!(MultiBlockCnf::<f64>::new(s, 2).is_err());
    }
}
