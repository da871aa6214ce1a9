//! The GPU CNF against `nn::Cnf` on the host (same layout, same parameters): the right-hand
//! side, the adjoint right-hand side in both of the drivers' layouts, and whole Direct, ANODE,
//! RDM and IRDM gradients through `adjoint::forward_on`, at f32 tolerance. Skipped without an
//! adapter unless `IRDM_REQUIRE_GPU=1` (CI, on Mesa's lavapipe).

mod common;

use adjoint::{BackwardNorm, Config, Method, VectorVjp, forward_on};
use common::context;
use gpu::{GpuActivation, GpuCnf, GpuContext, GpuVec};
use nn::{Activation, Cnf, Divergence, LayerKind, OdeNet, Rng};
use rk::Rhs;
use std::sync::Arc;

struct Pair {
    gpu: GpuCnf,
    host: Cnf<f32>,
    params: Vec<f32>,
    state: Vec<f32>,
}

fn pair(ctx: &Arc<GpuContext>, dims: &[usize], act: Activation, batch: usize, seed: u64) -> Pair {
    let gact = match act {
        Activation::Tanh => GpuActivation::Tanh,
        Activation::Softplus => GpuActivation::Softplus,
        _ => unreachable!("the GPU CNF has tanh and softplus"),
    };
    let gpu = GpuCnf::new(ctx, dims, gact, batch).unwrap();
    let net = OdeNet::<f32>::new(dims, LayerKind::ConcatSquash, act).unwrap();
    let mut rng = Rng::new(seed);
    let params = net.init_params(&mut rng);
    let host = Cnf::new(net, batch, Divergence::Exact).unwrap();
    assert_eq!(gpu.param_len(), params.len());
    let state = (0..gpu.state_len()).map(|_| rng.normal() as f32).collect();
    Pair {
        gpu,
        host,
        params,
        state,
    }
}

fn rel(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

/// The toy net, a softplus net over several reduction chunks, a batch of one, a layer wider
/// than the tiled weight-cotangent kernel takes (its fallback), and a 20 → 70 layer through the
/// tiled product with partial tiles in every direction.
const CASES: [(&[usize], Activation, usize); 5] = [
    (&[2, 64, 64, 2], Activation::Tanh, 37),
    (&[3, 5, 4, 3], Activation::Softplus, 300),
    (&[2, 8, 2], Activation::Tanh, 1),
    (&[2, 80, 2], Activation::Tanh, 5),
    (&[2, 20, 70, 2], Activation::Softplus, 37),
];

#[test]
fn right_hand_side_matches_the_host() {
    let Some(ctx) = context() else { return };
    for (k, &(dims, act, batch)) in CASES.iter().enumerate() {
        for tiled in [false, true] {
            let mut p = pair(&ctx, dims, act, batch, k as u64);
            p.gpu.set_tiled(tiled);
            let mut want = vec![0.0f32; p.state.len()];
            p.host.eval(0.3, &p.state, &p.params, &mut want);
            let z = GpuVec::from_host(&ctx, &p.state);
            let th = GpuVec::from_host(&ctx, &p.params);
            let mut dz = GpuVec::zeros(&ctx, p.state.len());
            p.gpu.eval(0.3, &z, &th, &mut dz);
            let got = dz.to_host();
            assert!(
                rel(&got, &want) < 1e-5,
                "{dims:?} tiled {tiled}: {:e}",
                rel(&got, &want)
            );
        }
    }
}

#[test]
fn adjoint_right_hand_side_matches_the_host_in_both_layouts() {
    let Some(ctx) = context() else { return };
    for (k, &(dims, act, batch)) in CASES.iter().enumerate() {
        for tiled in [false, true] {
            let mut p = pair(&ctx, dims, act, batch, 10 + k as u64);
            p.gpu.set_tiled(tiled);
            let n = p.state.len();
            let np = p.params.len();
            let mut rng = Rng::new(99);
            let a: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
            let th = GpuVec::from_host(&ctx, &p.params);
            // IRDM layout: z separate, x = [a, g], dx = [−aᵀJ, −aᵀ∂θ].
            let mut x = a.clone();
            x.extend(std::iter::repeat_n(0.5, np));
            let mut want = vec![0.0f32; n + np];
            VectorVjp::adjoint_rhs(
                &mut p.host,
                0.7,
                &p.state,
                0,
                &p.params,
                &x,
                0,
                &mut want,
                None,
                0,
            );
            let zg = GpuVec::from_host(&ctx, &p.state);
            let xg = GpuVec::from_host(&ctx, &x);
            let mut dxg = GpuVec::zeros(&ctx, n + np);
            p.gpu
                .adjoint_rhs(0.7, &zg, 0, &th, &xg, 0, &mut dxg, None, 0);
            let got = dxg.to_host();
            assert!(rel(&got[..n], &want[..n]) < 1e-4, "{dims:?} adj z");
            assert!(
                rel(&got[n..], &want[n..]) < 1e-4,
                "{dims:?} adj θ: {:e}",
                rel(&got[n..], &want[n..])
            );
            // RDM layout: x = [z, a, g], dx = [f, −aᵀJ, −aᵀ∂θ].
            let mut x = p.state.clone();
            x.extend_from_slice(&a);
            x.extend(std::iter::repeat_n(0.0, np));
            let mut want = vec![0.0f32; 2 * n + np];
            VectorVjp::adjoint_rhs(
                &mut p.host,
                0.7,
                &x,
                0,
                &p.params,
                &x,
                n,
                &mut want,
                Some(0),
                n,
            );
            let xg = GpuVec::from_host(&ctx, &x);
            let mut dxg = GpuVec::zeros(&ctx, 2 * n + np);
            p.gpu
                .adjoint_rhs(0.7, &xg, 0, &th, &xg, n, &mut dxg, Some(0), n);
            let got = dxg.to_host();
            assert!(
                rel(&got, &want) < 1e-4,
                "{dims:?} tiled {tiled} RDM layout: {:e}",
                rel(&got, &want)
            );
        }
    }
}

#[test]
fn every_gradient_method_on_the_gpu_matches_the_host() {
    let Some(ctx) = context() else { return };
    for tiled in [false, true] {
        every_method_with(&ctx, tiled);
    }
}

fn every_method_with(ctx: &Arc<GpuContext>, tiled: bool) {
    let mut p = pair(ctx, &[2, 64, 64, 2], Activation::Tanh, 64, 5);
    p.gpu.set_tiled(tiled);
    assert_eq!(p.gpu.is_tiled(), tiled);
    let n = p.state.len();
    // Cotangent of a NLL-like loss at t = 0.5 (the toy CNF's end time).
    let cot_end: Vec<f32> = (0..n).map(|i| 0.01 * (i % 7) as f32 - 0.02).collect();
    let ts = [0.0f32, 0.5];
    let config = Config::new(1e-5f32, 1e-5);
    for m in [
        Method::Rdm {
            norm: BackwardNorm::Full,
        },
        Method::irdm_lobatto(15, BackwardNorm::Seminorm),
        Method::Direct,
        Method::Anode {
            checkpoints: adjoint::Checkpoints::EveryKSteps(2),
        },
        Method::Irdm {
            grid: adjoint::IrdmGrid::Auto {
                n_max: 32,
                rel_tol: 1e-4,
                abs_tol: 1e-4,
            },
            norm: BackwardNorm::Seminorm,
        },
    ] {
        let host_fwd = forward_on(&mut p.host, &p.params, &p.state, &ts, m, &config).unwrap();
        let cot = vec![vec![0.0f32; n], cot_end.clone()];
        let gh = host_fwd.backward(&mut p.host, &p.params, &cot).unwrap();
        let th = GpuVec::from_host(ctx, &p.params);
        let z0 = GpuVec::from_host(ctx, &p.state);
        let gpu_fwd = forward_on(&mut p.gpu, &th, &z0, &ts, m, &config).unwrap();
        assert!(rel(&gpu_fwd.outputs()[1].to_host(), &host_fwd.outputs()[1]) < 1e-5);
        let cot_g: Vec<GpuVec> = cot.iter().map(|c| GpuVec::from_host(ctx, c)).collect();
        let gg = gpu_fwd.backward(&mut p.gpu, &th, &cot_g).unwrap();
        let (dz, dth) = (gg.dz0.to_host(), gg.dtheta.to_host());
        assert!(
            rel(&dz, &gh.dz0) < 1e-4,
            "{}: dz0 {:e}",
            m.name(),
            rel(&dz, &gh.dz0)
        );
        assert!(
            rel(&dth, &gh.dtheta) < 1e-4,
            "{}: dθ {:e}",
            m.name(),
            rel(&dth, &gh.dtheta)
        );
        // The same adaptive steps both ways (f32 rounding may move one rejection at most).
        let (a, b) = (&gg.info, &gh.info);
        assert_eq!(
            a.grid.as_ref().map(|g| g.n),
            b.grid.as_ref().map(|g| g.n),
            "{}: the same grid both ways",
            m.name()
        );
        assert!(a.nfe_forward.abs_diff(b.nfe_forward) <= 7, "{a:?} vs {b:?}");
        assert!(
            a.vjp_backward.abs_diff(b.vjp_backward) <= 7,
            "{a:?} vs {b:?}"
        );
    }
}

#[test]
fn bad_shapes_are_errors() {
    let Some(ctx) = context() else { return };
    assert!(GpuCnf::new(&ctx, &[2], GpuActivation::Tanh, 4).is_err());
    assert!(GpuCnf::new(&ctx, &[2, 0, 2], GpuActivation::Tanh, 4).is_err());
    assert!(GpuCnf::new(&ctx, &[2, 4, 3], GpuActivation::Tanh, 4).is_err());
    assert!(GpuCnf::new(&ctx, &[2, 4, 2], GpuActivation::Tanh, 0).is_err());
    // The kernels hold 1 + D rows per point in registers (D <= 7).
    assert!(GpuCnf::new(&ctx, &[8, 4, 8], GpuActivation::Tanh, 2).is_err());
    assert!(GpuCnf::new(&ctx, &[7, 4, 7], GpuActivation::Tanh, 2).is_ok());
}
