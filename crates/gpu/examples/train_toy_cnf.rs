//! Trains FFJORD's toy CNF on pinwheel with every state-sized number on the GPU: IRDM with 16
//! Lobatto nodes and the seminorm through `adjoint::forward_on`, the NLL's cotangent on the
//! device, the NLL and Adam on the host (`z(T)` and `dL/dθ` downloaded together, one upload of
//! `θ` per iteration), with the product kernels `tune_kernels` finds fastest on the adapter.
//!
//! ```text
//! cargo run --release -p irdm-gpu --example train_toy_cnf -- [iterations] [batch]
//! ```

use adjoint::{BackwardNorm, Config, Method, VectorVjp, forward_on};
use gpu::{GpuActivation, GpuCnf, GpuContext, GpuVec};
use nn::data::Toy;
use nn::optim::{Adam, AdamConfig, Optimizer};
use nn::{Activation, LayerKind, OdeNet, Rng};
use rk::Vector;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let iterations: usize = args.next().map_or(Ok(100), |s| s.parse())?;
    let batch: usize = args.next().map_or(Ok(256), |s| s.parse())?;

    let ctx = GpuContext::new()?;
    let mut cnf = GpuCnf::toy(&ctx, batch, GpuActivation::Tanh)?;
    // Initial weights from the host model of the same layout.
    let host_net = OdeNet::<f32>::new(&[2, 64, 64, 2], LayerKind::ConcatSquash, Activation::Tanh)?;
    let mut rng = Rng::new(0);
    let mut theta = host_net.init_params(&mut rng);
    let mut theta_gpu = GpuVec::try_from_host(&ctx, &theta)?;
    let mut adam = Adam::new(theta.len(), AdamConfig::default())?;
    // The product kernels that are fastest on this adapter at this batch (timed once).
    println!("kernels: {:?}", cnf.tune_kernels(&theta_gpu, 10)?);

    let method = Method::irdm_lobatto(15, BackwardNorm::Seminorm);
    let mut config = Config::new(1e-5f32, 1e-5);
    // Error norm over z and Δlogp separately (as FFJORD's per-tensor norms).
    config.forward = config
        .forward
        .with_norm(rk::ErrorNorm::Groups(cnf.state_groups()));
    let ts = [0.0f32, 0.5];
    // Output cotangents [∂L/∂z(0) = 0, ∂L/∂z(T)] and the NLL's 1/B per point.
    let mut cotangents = [
        GpuVec::try_zeros(&ctx, cnf.state_len())?,
        GpuVec::try_zeros(&ctx, cnf.state_len())?,
    ];
    let inv_batch = GpuVec::try_from_host(&ctx, &vec![1.0 / batch as f32; batch])?;

    for it in 1..=iterations {
        let start = Instant::now();
        let x = Toy::Pinwheel.sample(&mut rng, batch);
        // State [z (B × 2), Δlogp (B)] with Δlogp(0) = 0.
        let mut z0: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        z0.extend(std::iter::repeat_n(0.0, batch));
        let z0 = GpuVec::try_from_host(&ctx, &z0)?;
        let fwd = forward_on(&mut cnf, &theta_gpu, &z0, &ts, method, &config)?;
        // ∂L/∂z(T) of the mean NLL, [z_b / B, 1/B], without leaving the device.
        let end = &fwd.outputs()[1];
        cotangents[1].copy_from(end);
        cotangents[1].scale(1.0 / batch as f32);
        cotangents[1].copy_range(2 * batch, &inv_batch, 0..batch);
        let grad = fwd.backward(&mut cnf, &theta_gpu, &cotangents)?;
        // One readback for the loss's input and the gradient.
        let read = GpuVec::read_together(&[end, &grad.dtheta])?;
        let (loss, _) = nn::nll_loss(&read[0], batch, 2)?;
        adam.step(&mut theta, &read[1])?;
        theta_gpu.copy_from_host(&theta);
        if it == 1 || it % 10 == 0 || it == iterations {
            println!(
                "iter {it:4}: NLL {loss:.3}, NFE forward {}, VJPs backward {}, {:.1} ms",
                grad.info.nfe_forward,
                grad.info.vjp_backward,
                1e3 * start.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
