//! The toy CNF trained with its state on the GPU (`cargo xtask bench --gpu`, and the ours side
//! of `compare-torch --device cuda`): `gpu::GpuCnf` with the weights of `nn::toy_cnf`, RDM or
//! IRDM through `adjoint::forward_on`, the NLL's cotangent on the device, the NLL and Adam on
//! the host (the final state and `dL/dθ` downloaded together after the backward pass, one
//! upload of `θ` per iteration).

use crate::results::{GpuKernel, GpuRun, ProfiledKernel, describe};
use crate::toy::median;
use adjoint::{BackwardNorm, Config, Method, VectorVjp, forward_on};
use gpu::{GpuActivation, GpuCnf, GpuContext, GpuKernels, GpuVec};
use nn::optim::{Adam, AdamConfig, Optimizer};
use nn::train::IterationRecord;
use rk::{Rhs, Vector};
use std::sync::Arc;
use std::time::Instant;

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// End time of the toy CNF (FFJORD's toy experiments, as `nn::train`).
const T1: f32 = 0.5;
/// Solver tolerance (appendix B.2).
pub(crate) const TOL: f32 = 1e-5;

/// One method training the toy CNF on the GPU.
pub struct GpuTrainer {
    ctx: Arc<GpuContext>,
    cnf: GpuCnf,
    params: Vec<f32>,
    params_gpu: GpuVec,
    adam: Adam<f32>,
    method: Method,
    config: Config<f32>,
    batch: usize,
    iter: usize,
    /// The output cotangents `[∂L/∂z(0) = 0, ∂L/∂z(T)]`, rewritten on the device each iteration.
    cotangents: [GpuVec; 2],
    /// `1/B` per point: the NLL's cotangent of `Δlogp`.
    inv_batch: GpuVec,
    /// The counts of the last gradient.
    last_info: Option<adjoint::Info>,
}

impl GpuTrainer {
    /// A trainer for batches of `batch` points starting from `init` (the `nn::toy_cnf` layout),
    /// with the given product kernels (see [`tuned_kernels`]).
    pub fn new(
        ctx: &Arc<GpuContext>,
        batch: usize,
        method: Method,
        init: &[f32],
        kernels: GpuKernels,
    ) -> AnyResult<Self> {
        let mut cnf = GpuCnf::toy(ctx, batch, GpuActivation::Tanh)?;
        cnf.set_kernels(kernels);
        if init.len() != cnf.param_len() {
            return Err(format!(
                "initial weights: {} floats, the toy CNF has {}",
                init.len(),
                cnf.param_len()
            )
            .into());
        }
        let mut config = Config::new(TOL, TOL);
        // IRDM16 is the paper's one grid over the solve, as in torch's IRDM reference.
        config.irdm.segments = adjoint::Segments::Single;
        config.forward = config
            .forward
            .with_norm(rk::ErrorNorm::Groups(cnf.state_groups()));
        let state_len = cnf.state_len();
        Ok(Self {
            ctx: Arc::clone(ctx),
            cotangents: [GpuVec::zeros(ctx, state_len), GpuVec::zeros(ctx, state_len)],
            inv_batch: GpuVec::from_host(ctx, &vec![1.0 / batch as f32; batch]),
            last_info: None,
            params_gpu: GpuVec::from_host(ctx, init),
            params: init.to_vec(),
            adam: Adam::new(init.len(), AdamConfig::default())?,
            cnf,
            method,
            config,
            batch,
            iter: 0,
        })
    }

    /// One iteration on the points `x` (`batch × 2`): forward, NLL, backward, Adam.
    pub fn step_on(&mut self, x: &[f32]) -> AnyResult<IterationRecord> {
        let start = Instant::now();
        let (loss, dtheta, info) = self.gradient_on(x)?;
        self.apply(&dtheta)?;
        Ok(IterationRecord {
            iter: self.iter,
            loss,
            nfe_forward: info.nfe_forward,
            nfe_backward: info.nfe_backward,
            vjp_backward: info.vjp_backward,
            seconds: start.elapsed().as_secs_f64(),
            stored_floats: info.stored_floats,
            grid_n: info.grid.map(|g| g.n),
        })
    }

    /// The mean NLL of the batch `x` (`batch × 2`) and its gradient on the host, without an
    /// update (a data-parallel rank's share, `train --gpu`).
    pub fn gradient_on(&mut self, x: &[f32]) -> AnyResult<(f64, Vec<f32>, adjoint::Info)> {
        if x.len() != 2 * self.batch {
            return Err(format!("batch of {} floats, expected {}", x.len(), 2 * self.batch).into());
        }
        let mut y0 = x.to_vec();
        y0.extend(std::iter::repeat_n(0.0, self.batch));
        let z0 = GpuVec::from_host(&self.ctx, &y0);
        let ts = [0.0, T1];
        let fwd = forward_on(
            &mut self.cnf,
            &self.params_gpu,
            &z0,
            &ts,
            self.method,
            &self.config,
        )?;
        // ∂L/∂z(T) of the mean NLL (`nn::nll_loss`): `[z_b / B, 1/B]`, formed on the device.
        let end = &fwd.outputs()[1];
        let zs = 2 * self.batch;
        let cot = &mut self.cotangents[1];
        cot.copy_from(end);
        cot.scale(1.0 / self.batch as f32);
        cot.copy_range(zs, &self.inv_batch, 0..self.batch);
        let grad = fwd.backward(&mut self.cnf, &self.params_gpu, &self.cotangents)?;
        // The loss from the same final state, read back with the gradient; a non-finite state
        // or loss is an error here, so its gradient is never used.
        let mut read = GpuVec::read_together(&[end, &grad.dtheta])?.into_iter();
        let (end, dtheta) = (
            read.next().unwrap_or_default(),
            read.next().unwrap_or_default(),
        );
        let (loss, _) = nn::nll_loss(&end, self.batch, 2)?;
        self.last_info = Some(grad.info.clone());
        Ok((f64::from(loss), dtheta, grad.info))
    }

    /// One Adam step along `dtheta`, counted as an iteration.
    pub fn apply(&mut self, dtheta: &[f32]) -> AnyResult<()> {
        self.adam.step(&mut self.params, dtheta)?;
        self.params_gpu.copy_from_host(&self.params);
        self.iter += 1;
        Ok(())
    }

    /// The counts (steps, evaluations) of the last gradient, if any.
    pub fn last_info(&self) -> Option<&adjoint::Info> {
        self.last_info.as_ref()
    }

    /// Adam's step count and named state vectors (for a checkpoint).
    pub fn optimizer_state(&self) -> (u64, Vec<(&'static str, &[f32])>) {
        (self.adam.steps(), self.adam.state())
    }

    /// Continues from a checkpoint: parameters, Adam's state after `steps` steps, and the
    /// iteration count.
    ///
    /// Errors: parameters or state of the wrong length.
    pub fn restore(
        &mut self,
        params: &[f32],
        steps: u64,
        state: &[(&str, Vec<f32>)],
        iter: usize,
    ) -> AnyResult<()> {
        if params.len() != self.params.len() {
            return Err(format!(
                "checkpoint parameters: {} floats, the toy CNF has {}",
                params.len(),
                self.params.len()
            )
            .into());
        }
        self.adam.restore(steps, state)?;
        self.params.copy_from_slice(params);
        self.params_gpu.copy_from_host(&self.params);
        self.iter = iter;
        Ok(())
    }

    /// The current parameters.
    pub fn params(&self) -> &[f32] {
        &self.params
    }
}

/// The methods of the GPU suite.
pub fn methods() -> Vec<(String, Method)> {
    vec![
        (
            "rdm".into(),
            Method::Rdm {
                norm: BackwardNorm::Full,
            },
        ),
        (
            "rdm-semi".into(),
            Method::Rdm {
                norm: BackwardNorm::Seminorm,
            },
        ),
        (
            "irdm16-semi".into(),
            Method::irdm_lobatto(15, BackwardNorm::Seminorm),
        ),
    ]
}

/// The product kernels `GpuCnf::tune_kernels` finds fastest for the toy CNF at `batch` on this
/// adapter (10 calls per timing), which the trainers of the GPU suite and of `compare-torch`
/// then use; logged on stderr.
pub fn tuned_kernels(ctx: &Arc<GpuContext>, batch: usize, init: &[f32]) -> AnyResult<GpuKernels> {
    let mut cnf = GpuCnf::toy(ctx, batch, GpuActivation::Tanh)?;
    let th = GpuVec::try_from_host(ctx, init)?;
    let kernels = cnf.tune_kernels(&th, 10)?;
    eprintln!("gpu: batch {batch}: tuned kernels {kernels:?}");
    Ok(kernels)
}

/// Median seconds of one evaluation and of one adjoint right-hand side at `batch` with the
/// simple or the tiled product kernels, each timed over `reps` calls closed by a readback.
pub fn kernel_rates(
    ctx: &Arc<GpuContext>,
    batch: usize,
    init: &[f32],
    reps: usize,
    tiled: bool,
) -> AnyResult<GpuKernel> {
    let mut cnf = GpuCnf::toy(ctx, batch, GpuActivation::Tanh)?;
    cnf.set_tiled(tiled);
    let mut rng = nn::Rng::new(3);
    let host: Vec<f32> = (0..cnf.state_len()).map(|_| rng.normal() as f32).collect();
    let z = GpuVec::from_host(ctx, &host);
    let th = GpuVec::from_host(ctx, init);
    let n = cnf.state_len();
    let mut out = GpuVec::zeros(ctx, n);
    let mut x = host.clone();
    x.extend(std::iter::repeat_n(0.0, init.len()));
    let xg = GpuVec::from_host(ctx, &x);
    let mut dx = GpuVec::zeros(ctx, n + init.len());
    let mut eval_t = Vec::new();
    let mut vjp_t = Vec::new();
    // Warm-up (pipeline creation, first allocations), then timed rounds.
    for round in 0..4 {
        let s = Instant::now();
        for _ in 0..reps {
            cnf.eval(0.25, &z, &th, &mut out);
        }
        let _ = out.dot(&out);
        let e = s.elapsed().as_secs_f64() / reps as f64;
        let s = Instant::now();
        for _ in 0..reps {
            cnf.adjoint_rhs(0.25, &z, 0, &th, &xg, 0, &mut dx, None, 0);
        }
        let _ = dx.dot(&dx);
        let v = s.elapsed().as_secs_f64() / reps as f64;
        if round > 0 {
            eval_t.push(e);
            vjp_t.push(v);
        }
    }
    let (e, v) = (median(&mut eval_t), median(&mut vjp_t));
    // One more of each with every dispatch timed on the device.
    let eval_profile = profile(ctx, || {
        cnf.eval(0.25, &z, &th, &mut out);
        let _ = out.dot(&out);
    })?;
    let vjp_profile = profile(ctx, || {
        cnf.adjoint_rhs(0.25, &z, 0, &th, &xg, 0, &mut dx, None, 0);
        let _ = dx.dot(&dx);
    })?;
    let flops = cnf.flops_per_eval() as f64;
    Ok(GpuKernel {
        batch,
        eval_s: e,
        vjp_s: v,
        eval_gflops: flops / e / 1e9,
        vjp_gflops: 3.0 * flops / v / 1e9,
        peak_gflops: None,
        tiled,
        eval_profile,
        vjp_profile,
    })
}

/// Which product kernels the GPU suite's trainers use (`--gpu-kernels`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KernelChoice {
    /// The fastest on this adapter at each batch ([`tuned_kernels`]).
    Tuned,
    /// `GpuKernels::Auto`, the library's default.
    Auto,
    /// `GpuKernels::Simple`.
    Simple,
    /// `GpuKernels::Tiled`.
    Tiled,
    /// `GpuKernels::TiledForward`.
    TiledForward,
    /// `GpuKernels::TiledBackward`.
    TiledBackward,
}

impl KernelChoice {
    /// The kernels at `batch`: tuned there, or the fixed choice.
    fn at(self, ctx: &Arc<GpuContext>, batch: usize, init: &[f32]) -> AnyResult<GpuKernels> {
        Ok(match self {
            Self::Tuned => tuned_kernels(ctx, batch, init)?,
            Self::Auto => GpuKernels::Auto,
            Self::Simple => GpuKernels::Simple,
            Self::Tiled => GpuKernels::Tiled,
            Self::TiledForward => GpuKernels::TiledForward,
            Self::TiledBackward => GpuKernels::TiledBackward,
        })
    }
}

/// Trains every method at every batch size for `iters` iterations (after one warm-up
/// iteration), interleaved per iteration, on the same pinwheel batches, with the product
/// kernels `choice` gives at each batch.
pub fn run(
    ctx: &Arc<GpuContext>,
    batches: &[usize],
    iters: usize,
    init: &[f32],
    seed: u64,
    choice: KernelChoice,
) -> AnyResult<(Vec<GpuRun>, Vec<GpuKernel>)> {
    let mut runs = Vec::new();
    let mut kernels = Vec::new();
    for &batch in batches {
        eprintln!("gpu toy suite: batch {batch}");
        // Both kernel variants side by side: which is faster depends on the adapter.
        for tiled in [false, true] {
            // 40 calls per timing, so that the closing readback (~0.1 ms) weighs little.
            kernels.push(kernel_rates(ctx, batch, init, 40, tiled)?);
        }
        let chosen = choice.at(ctx, batch, init)?;
        let entries = methods();
        let mut trainers = entries
            .iter()
            .map(|(_, m)| GpuTrainer::new(ctx, batch, *m, init, chosen))
            .collect::<AnyResult<Vec<_>>>()?;
        let mut rng = nn::Rng::new(seed);
        let mut records: Vec<Vec<IterationRecord>> = vec![Vec::new(); entries.len()];
        // Dispatches, submissions, readbacks and accepted steps (forward and backward) over the
        // timed iterations, per method.
        let mut counts = vec![(0usize, 0usize, 0usize, 0usize); entries.len()];
        let mut sample = || -> Vec<f32> {
            nn::data::Toy::Pinwheel
                .sample(&mut rng, batch)
                .into_iter()
                .map(|v| v as f32)
                .collect()
        };
        for i in 0..=iters {
            let x = sample();
            for (k, t) in trainers.iter_mut().enumerate() {
                let (d0, s0, r0) = (ctx.dispatches(), ctx.submissions(), ctx.readbacks());
                let r = t.step_on(&x)?;
                if i > 0 {
                    records[k].push(r);
                    counts[k].0 += ctx.dispatches() - d0;
                    counts[k].1 += ctx.submissions() - s0;
                    counts[k].2 += ctx.readbacks() - r0;
                    counts[k].3 += t
                        .last_info()
                        .map_or(0, |i| i.accepted_forward + i.accepted_backward);
                }
            }
        }
        // One more iteration per method with every dispatch timed on the device.
        let x = sample();
        let mut profiles = Vec::new();
        for t in &mut trainers {
            profiles.push(profile_step(ctx, t, &x)?);
        }
        for ((((label, method), recs), (dispatches, submissions, readbacks, accepted)), profile) in
            entries.iter().zip(records).zip(counts).zip(profiles)
        {
            let n = recs.len() as f64;
            let mut times: Vec<f64> = recs.iter().map(|r| r.seconds).collect();
            let (name, n_nodes, grid, seminorm) = describe(method);
            runs.push(GpuRun {
                batch,
                method: name.into(),
                label: label.clone(),
                n_nodes,
                grid: grid.map(String::from),
                seminorm,
                iters: recs.len(),
                time_per_iter_median_s: median(&mut times),
                nfe_fwd_mean: recs.iter().map(|r| r.nfe_forward as f64).sum::<f64>() / n,
                nfe_bwd_mean: recs.iter().map(|r| r.nfe_backward as f64).sum::<f64>() / n,
                vjp_bwd_mean: recs.iter().map(|r| r.vjp_backward as f64).sum::<f64>() / n,
                loss_first: recs.first().map_or(f64::NAN, |r| r.loss),
                loss_last: recs.last().map_or(f64::NAN, |r| r.loss),
                dispatches_per_iter: dispatches as f64 / n,
                submissions_per_iter: submissions as f64 / n,
                readbacks_per_iter: readbacks as f64 / n,
                accepted_steps_per_iter: accepted as f64 / n,
                profile,
                kernels: format!("{chosen:?}"),
            });
        }
    }
    Ok((runs, kernels))
}

/// One training iteration with every dispatch timed on the device: the device time per kernel
/// (empty, with a note, where the adapter has no timestamp queries).
fn profile_step(
    ctx: &Arc<GpuContext>,
    trainer: &mut GpuTrainer,
    x: &[f32],
) -> AnyResult<Vec<ProfiledKernel>> {
    let mut stepped = Ok(());
    let profile = profile(ctx, || stepped = trainer.step_on(x).map(|_| ()))?;
    stepped?;
    Ok(profile)
}

/// `work` with every dispatch timed on the device: the device time per kernel, slowest first
/// (empty, with a note, where the adapter has no timestamp queries; `work` runs either way).
fn profile(ctx: &Arc<GpuContext>, work: impl FnOnce()) -> AnyResult<Vec<ProfiledKernel>> {
    if let Err(e) = ctx.start_profiling() {
        eprintln!("gpu: no kernel profile: {e}");
        work();
        return Ok(Vec::new());
    }
    work();
    Ok(ctx
        .stop_profiling()?
        .into_iter()
        .map(|k| ProfiledKernel {
            kernel: k.kernel,
            calls: k.calls,
            seconds: k.seconds,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Readbacks per iteration, pinned: one per solver attempt (forward and backward, accepted
    /// or rejected), two per initial-step pick (forward and backward; the cotangent check and
    /// IRDM's grid check ride with the backward pick's first), one for the final state with
    /// `dL/dθ`, and for RDM one more for its reconstruction check. The gradient with the device-side cotangent equals the one
    /// from the host's `nn::nll_loss` cotangent exactly.
    #[test]
    fn readbacks_per_iteration_are_pinned_and_the_device_cotangent_is_the_hosts() {
        let ctx = match GpuContext::new() {
            Ok(c) => c,
            Err(e) => {
                assert!(
                    std::env::var("IRDM_REQUIRE_GPU").as_deref() != Ok("1"),
                    "IRDM_REQUIRE_GPU=1 but {e}"
                );
                eprintln!("skipped: {e}");
                return;
            }
        };
        let batch = 37;
        let init: Vec<f32> = nn::OdeNet::<f32>::new(
            &[2, 64, 64, 2],
            nn::LayerKind::ConcatSquash,
            nn::Activation::Tanh,
        )
        .unwrap()
        .init_params(&mut nn::Rng::new(3));
        let mut rng = nn::Rng::new(4);
        let x: Vec<f32> = nn::data::Toy::Pinwheel
            .sample(&mut rng, batch)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        for (label, method) in methods() {
            let mut t = GpuTrainer::new(&ctx, batch, method, &init, GpuKernels::Simple).unwrap();
            let r0 = ctx.readbacks();
            let (loss, dtheta, info) = t.gradient_on(&x).unwrap();
            let readbacks = ctx.readbacks() - r0;
            let attempts = info.accepted_forward
                + info.rejected_forward
                + info.accepted_backward
                + info.rejected_backward;
            let fixed = if matches!(method, Method::Rdm { .. }) {
                6
            } else {
                5
            };
            assert_eq!(readbacks, attempts + fixed, "{label}: {info:?}");

            // The same gradient with the host's cotangent.
            let mut y0 = x.clone();
            y0.extend(std::iter::repeat_n(0.0, batch));
            let z0 = GpuVec::from_host(&ctx, &y0);
            let fwd = forward_on(
                &mut t.cnf,
                &t.params_gpu,
                &z0,
                &[0.0, T1],
                method,
                &t.config,
            )
            .unwrap();
            let (host_loss, cot) = nn::nll_loss(&fwd.outputs()[1].to_host(), batch, 2).unwrap();
            let cots = [z0.zeros_like(), GpuVec::from_host(&ctx, &cot)];
            let grad = fwd.backward(&mut t.cnf, &t.params_gpu, &cots).unwrap();
            assert_eq!(f64::from(host_loss), loss, "{label}");
            assert_eq!(grad.dtheta.to_host(), dtheta, "{label}");
        }
    }
}
