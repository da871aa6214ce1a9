//! The GPU models against their host counterparts on the same parameters (same layout):
//! `GpuCnf` against `nn::Cnf` with exact divergence and `GpuNetRhs` against `nn::NetRhs`. For
//! each: the right-hand side, the adjoint right-hand side in both of the drivers' layouts, and
//! whole Direct, ANODE, RDM and IRDM gradients through `adjoint::forward_on`, at f32 tolerance.
//! Skipped without an adapter unless `IRDM_REQUIRE_GPU=1` (CI, on Mesa's lavapipe).

mod common;

use adjoint::{BackwardNorm, Config, Method, VectorVjp, Vjp, forward_on};
use common::context;
use gpu::{
    AUTO_TILED_ROWS, GpuActivation, GpuCnf, GpuContext, GpuKernels, GpuNetRhs, GpuVec,
    TRANSPOSED_WEIGHT_ROWS,
};
use nn::{Activation, Cnf, Divergence, LayerKind, NetRhs, Noise, OdeNet, Rng};
use rk::{Rhs, Vector};
use std::sync::Arc;

/// A GPU model and its host twin with the same parameters, and a random state.
struct Pair<G, H> {
    gpu: G,
    host: H,
    params: Vec<f32>,
    state: Vec<f32>,
}

fn gpu_activation(act: Activation) -> GpuActivation {
    match act {
        Activation::Tanh => GpuActivation::Tanh,
        Activation::Softplus => GpuActivation::Softplus,
        _ => unreachable!("the GPU nets have tanh and softplus"),
    }
}

fn net_and_params(dims: &[usize], act: Activation, rng: &mut Rng) -> (OdeNet<f32>, Vec<f32>) {
    let net = OdeNet::<f32>::new(dims, LayerKind::ConcatSquash, act).unwrap();
    let params = net.init_params(rng);
    (net, params)
}

fn random_state(len: usize, rng: &mut Rng) -> Vec<f32> {
    (0..len).map(|_| rng.normal() as f32).collect()
}

/// A GPU model, its host twin built from the same net, random parameters and state.
fn pair<G: VectorVjp<GpuVec>, H>(
    gpu: G,
    dims: &[usize],
    act: Activation,
    seed: u64,
    host: impl FnOnce(OdeNet<f32>) -> H,
) -> Pair<G, H> {
    let mut rng = Rng::new(seed);
    let (net, params) = net_and_params(dims, act, &mut rng);
    assert_eq!(gpu.param_len(), params.len());
    let state = random_state(gpu.state_len(), &mut rng);
    Pair {
        host: host(net),
        gpu,
        params,
        state,
    }
}

fn cnf_pair(
    ctx: &Arc<GpuContext>,
    dims: &[usize],
    act: Activation,
    batch: usize,
    seed: u64,
) -> Pair<GpuCnf, Cnf<f32>> {
    let gpu = GpuCnf::new(ctx, dims, gpu_activation(act), batch).unwrap();
    assert_eq!(gpu.state_len(), batch * (dims[0] + 1));
    pair(gpu, dims, act, seed, |net| {
        Cnf::new(net, batch, Divergence::Exact).unwrap()
    })
}

/// Hutchinson's CNF on both sides with the same Gaussian noise (`nn::Cnf::sample_noise` draws
/// it row-major from the generator, as here).
fn hutchinson_pair(
    ctx: &Arc<GpuContext>,
    dims: &[usize],
    act: Activation,
    batch: usize,
    seed: u64,
) -> Pair<GpuCnf, Cnf<f32>> {
    let mut gpu = GpuCnf::hutchinson(ctx, dims, gpu_activation(act), batch).unwrap();
    let noise_seed = 1000 + seed;
    let mut rng = Rng::new(noise_seed);
    let noise: Vec<f32> = (0..batch * dims[0]).map(|_| rng.normal() as f32).collect();
    gpu.set_noise(&noise).unwrap();
    assert_eq!(gpu.state_len(), batch * (dims[0] + 1));
    pair(gpu, dims, act, seed, |net| {
        let mut host = Cnf::new(net, batch, Divergence::Hutchinson).unwrap();
        host.sample_noise(&mut Rng::new(noise_seed), Noise::Gaussian);
        host
    })
}

fn net_pair(
    ctx: &Arc<GpuContext>,
    dims: &[usize],
    act: Activation,
    batch: usize,
    seed: u64,
) -> Pair<GpuNetRhs, NetRhs<f32>> {
    let gpu = GpuNetRhs::new(ctx, dims, gpu_activation(act), batch).unwrap();
    assert_eq!(gpu.state_len(), batch * dims[0]);
    pair(gpu, dims, act, seed, |net| NetRhs::new(net, batch).unwrap())
}

fn rel(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

/// The toy net, a softplus net over several reduction chunks (at batch 341, one point more than
/// whole-point workgroups of the last layer would hold if the dispatch were sized by its 3
/// units per point), a batch of one, a layer wider
/// than the tiled weight-cotangent kernel takes (its fallback), a 20 → 70 layer through the
/// tiled product with partial tiles in every direction, 30 reduction chunks (more than the 16
/// slices of the final reduction, so each slice sums several), the toy net at 2 100 stacked
/// rows, and layers wider than `net_forward` takes at 2 100 rows (at least
/// `TRANSPOSED_WEIGHT_ROWS`: layer by layer, the simple products read the transposed weights);
/// and states 5 and 7 wide (6 and 8 rows per point: the kernels' second vector of rows), in one
/// dispatch and layer by layer; tiled middle layers with 6 and 8 rows per point (the tiled layer
/// kernel's tiles then hold 10 and 8 whole points, not a multiple of its 4-row blocks).
const CNF_CASES: [(&[usize], Activation, usize); 12] = [
    (&[2, 64, 64, 2], Activation::Tanh, 37),
    (&[3, 5, 4, 3], Activation::Softplus, 341),
    (&[2, 8, 2], Activation::Tanh, 1),
    (&[2, 80, 2], Activation::Tanh, 5),
    (&[2, 20, 70, 2], Activation::Softplus, 37),
    (&[2, 24, 2], Activation::Softplus, 2500),
    (&[2, 64, 64, 2], Activation::Tanh, 700),
    (&[2, 80, 72, 2], Activation::Tanh, 700),
    (&[7, 12, 7], Activation::Tanh, 23),
    (&[5, 70, 5], Activation::Softplus, 41),
    (&[5, 24, 20, 5], Activation::Softplus, 29),
    (&[7, 20, 36, 7], Activation::Tanh, 19),
];

/// Hutchinson's estimator takes any width: the toy net, a 10-wide state over several reduction
/// chunks, a batch of one, 2 200 stacked rows with layers wider than `net_forward` takes
/// (transposed weights), and a 20-wide state whose first and last layers are both tiled (the
/// estimate then from `write_value`).
const HUTCHINSON_CASES: [(&[usize], Activation, usize); 5] = [
    (&[2, 64, 64, 2], Activation::Tanh, 37),
    (&[10, 32, 10], Activation::Softplus, 300),
    (&[3, 8, 3], Activation::Tanh, 1),
    (&[4, 70, 70, 4], Activation::Tanh, 1100),
    (&[20, 24, 20], Activation::Softplus, 45),
];

/// The plain net takes states wider than the CNF's 7 (no tangent rows): a 12-wide state, a
/// 20-wide one through the tiled products at both ends, a batch of one, a many-chunk batch, and
/// 2 100 rows with layers wider than `net_forward` takes (transposed weights).
const NET_CASES: [(&[usize], Activation, usize); 6] = [
    (&[2, 64, 64, 2], Activation::Tanh, 37),
    (&[12, 5, 4, 12], Activation::Softplus, 300),
    (&[3, 8, 3], Activation::Tanh, 1),
    (&[20, 80, 20], Activation::Tanh, 700),
    (&[4, 20, 70, 4], Activation::Softplus, 37),
    (&[6, 72, 72, 6], Activation::Tanh, 2100),
];

/// `f` on the device against the host: the relative error.
fn check_rhs<G: Rhs<GpuVec>, H: Rhs<Vec<f32>>>(
    ctx: &Arc<GpuContext>,
    p: &mut Pair<G, H>,
) -> Vec<f64> {
    let mut want = vec![0.0f32; p.state.len()];
    p.host.eval(0.3, &p.state, &p.params, &mut want);
    let z = GpuVec::from_host(ctx, &p.state);
    let th = GpuVec::from_host(ctx, &p.params);
    let mut dz = GpuVec::zeros(ctx, p.state.len());
    p.gpu.eval(0.3, &z, &th, &mut dz);
    vec![rel(&dz.to_host(), &want)]
}

/// The adjoint right-hand side in IRDM's layout (`z` separate, `x = [a, g]`,
/// `dx = [−aᵀJ, −aᵀ∂θ]`) and in RDM's (`x = [z, a, g]`, `dx = [f, −aᵀJ, −aᵀ∂θ]`), against the
/// host's; returns the relative errors (IRDM's state part, IRDM's parameter part, RDM's whole).
fn check_adjoint_rhs<G: VectorVjp<GpuVec>, H: Vjp<f32>>(
    ctx: &Arc<GpuContext>,
    p: &mut Pair<G, H>,
) -> Vec<f64> {
    let n = p.state.len();
    let np = p.params.len();
    let mut rng = Rng::new(99);
    let a = random_state(n, &mut rng);
    let th = GpuVec::from_host(ctx, &p.params);
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
    let zg = GpuVec::from_host(ctx, &p.state);
    let xg = GpuVec::from_host(ctx, &x);
    let mut dxg = GpuVec::zeros(ctx, n + np);
    p.gpu
        .adjoint_rhs(0.7, &zg, 0, &th, &xg, 0, &mut dxg, None, 0);
    let got = dxg.to_host();
    let irdm = [rel(&got[..n], &want[..n]), rel(&got[n..], &want[n..])];
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
    let xg = GpuVec::from_host(ctx, &x);
    let mut dxg = GpuVec::zeros(ctx, 2 * n + np);
    p.gpu
        .adjoint_rhs(0.7, &xg, 0, &th, &xg, n, &mut dxg, Some(0), n);
    vec![irdm[0], irdm[1], rel(&dxg.to_host(), &want)]
}

/// The GPU models' kernel switch, for the generic checks below.
trait Kernels {
    fn use_kernels(&mut self, kernels: GpuKernels);
}

impl Kernels for GpuCnf {
    fn use_kernels(&mut self, kernels: GpuKernels) {
        self.set_kernels(kernels);
    }
}

impl Kernels for GpuNetRhs {
    fn use_kernels(&mut self, kernels: GpuKernels) {
        self.set_kernels(kernels);
    }
}

/// Every fixed kernel choice: simple, tiled, and tiled one way only.
const FIXED_KERNELS: [GpuKernels; 4] = [
    GpuKernels::Simple,
    GpuKernels::Tiled,
    GpuKernels::TiledForward,
    GpuKernels::TiledBackward,
];

type Case = (&'static [usize], Activation, usize);
type MakePair<G, H> = fn(&Arc<GpuContext>, &[usize], Activation, usize, u64) -> Pair<G, H>;

/// `check` on every case with every fixed kernel choice: each error it returns is below `tol`.
fn check_cases<G: Kernels, H>(
    ctx: &Arc<GpuContext>,
    label: &str,
    cases: &[Case],
    make: MakePair<G, H>,
    seed: u64,
    tol: f64,
    check: fn(&Arc<GpuContext>, &mut Pair<G, H>) -> Vec<f64>,
) {
    for kernels in FIXED_KERNELS {
        for (k, &(dims, act, batch)) in cases.iter().enumerate() {
            let mut p = make(ctx, dims, act, batch, seed + k as u64);
            p.gpu.use_kernels(kernels);
            let e = check(ctx, &mut p);
            assert!(
                e.iter().all(|&e| e < tol),
                "{label} {dims:?} {kernels:?}: {e:?}"
            );
        }
    }
}

#[test]
fn right_hand_sides_match_the_host() {
    let Some(ctx) = context() else { return };
    check_cases(&ctx, "CNF", &CNF_CASES, cnf_pair, 0, 1e-5, check_rhs);
    check_cases(&ctx, "net", &NET_CASES, net_pair, 0, 1e-5, check_rhs);
    let cases = &HUTCHINSON_CASES;
    check_cases(
        &ctx,
        "Hutchinson",
        cases,
        hutchinson_pair,
        0,
        1e-5,
        check_rhs,
    );
}

#[test]
fn adjoint_right_hand_sides_match_the_host_in_both_layouts() {
    let Some(ctx) = context() else { return };
    check_cases(
        &ctx,
        "CNF",
        &CNF_CASES,
        cnf_pair,
        10,
        1e-4,
        check_adjoint_rhs,
    );
    check_cases(
        &ctx,
        "net",
        &NET_CASES,
        net_pair,
        10,
        1e-4,
        check_adjoint_rhs,
    );
    let cases = &HUTCHINSON_CASES;
    check_cases(
        &ctx,
        "Hutchinson",
        cases,
        hutchinson_pair,
        10,
        1e-4,
        check_adjoint_rhs,
    );
}

/// Every gradient method on the device against the same method on the host: `dL/dz0` and
/// `dL/dθ` to 1e-4, the same IRDM grid, NFE and VJP counts within one step attempt.
fn check_every_method<G: VectorVjp<GpuVec>, H: Vjp<f32>>(
    ctx: &Arc<GpuContext>,
    p: &mut Pair<G, H>,
    t_end: f32,
    label: &str,
) {
    let n = p.state.len();
    // Cotangent of a loss at the end time.
    let cot_end: Vec<f32> = (0..n).map(|i| 0.01 * (i % 7) as f32 - 0.02).collect();
    let ts = [0.0f32, t_end];
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
        let name = m.name();
        let e = rel(&dz, &gh.dz0);
        assert!(e < 1e-4, "{label} {name}: dz0 {e:e}");
        let e = rel(&dth, &gh.dtheta);
        assert!(e < 1e-4, "{label} {name}: dθ {e:e}");
        // The same adaptive steps both ways (f32 rounding may move one rejection at most).
        let (a, b) = (&gg.info, &gh.info);
        assert_eq!(
            a.grid.as_ref().map(|g| g.n),
            b.grid.as_ref().map(|g| g.n),
            "{label} {name}: the same grid both ways"
        );
        assert!(a.nfe_forward.abs_diff(b.nfe_forward) <= 7, "{a:?} vs {b:?}");
        assert!(
            a.vjp_backward.abs_diff(b.vjp_backward) <= 7,
            "{a:?} vs {b:?}"
        );
    }
}

#[test]
fn every_gradient_method_on_the_gpu_matches_the_host() {
    let Some(ctx) = context() else { return };
    for tiled in [false, true] {
        // The toy CNF on its time span.
        let mut p = cnf_pair(&ctx, &[2, 64, 64, 2], Activation::Tanh, 64, 5);
        p.gpu.set_tiled(tiled);
        assert_eq!(p.gpu.is_tiled(), tiled);
        check_every_method(&ctx, &mut p, 0.5, "CNF");
        // Hutchinson's estimate on the toy CNF.
        let mut p = hutchinson_pair(&ctx, &[2, 64, 64, 2], Activation::Tanh, 64, 7);
        p.gpu.set_tiled(tiled);
        check_every_method(&ctx, &mut p, 0.5, "Hutchinson");
        // A plain neural ODE on a wider state, over a longer span.
        let mut p = net_pair(&ctx, &[10, 32, 10], Activation::Softplus, 50, 6);
        p.gpu.set_tiled(tiled);
        check_every_method(&ctx, &mut p, 1.0, "net");
    }
}

#[test]
fn bad_shapes_are_errors() {
    let Some(ctx) = context() else { return };
    let tanh = GpuActivation::Tanh;
    assert!(GpuCnf::new(&ctx, &[2], tanh, 4).is_err());
    assert!(GpuCnf::new(&ctx, &[2, 0, 2], tanh, 4).is_err());
    assert!(GpuCnf::new(&ctx, &[2, 4, 3], tanh, 4).is_err());
    assert!(GpuCnf::new(&ctx, &[2, 4, 2], tanh, 0).is_err());
    // The CNF's kernels hold 1 + D rows per point in registers (D <= 7); the plain net has one.
    assert!(GpuCnf::new(&ctx, &[8, 4, 8], tanh, 2).is_err());
    assert!(GpuCnf::new(&ctx, &[7, 4, 7], tanh, 2).is_ok());
    assert!(GpuNetRhs::new(&ctx, &[8, 4, 8], tanh, 2).is_ok());
    assert!(GpuNetRhs::new(&ctx, &[2], tanh, 4).is_err());
    assert!(GpuNetRhs::new(&ctx, &[2, 0, 2], tanh, 4).is_err());
    assert!(GpuNetRhs::new(&ctx, &[2, 4, 3], tanh, 4).is_err());
    assert!(GpuNetRhs::new(&ctx, &[2, 4, 2], tanh, 0).is_err());
    let e = GpuNetRhs::new(&ctx, &[2, 4, 3], tanh, 4).unwrap_err();
    assert!(e.to_string().contains("GPU ODE net"), "{e}");
    // Beyond what the device binds: an error naming the limit, not a wgpu panic.
    let too_many = ctx.max_buffer_floats() / 2 + 1;
    let e = GpuNetRhs::new(&ctx, &[2, 2], tanh, too_many).unwrap_err();
    assert!(e.to_string().contains("binds at most"), "{e}");
    assert!(GpuVec::try_zeros(&ctx, 2 * too_many).is_err());
    // The final reduction's table of layers rides in one dispatch: 372 layers at most.
    let e = GpuNetRhs::new(&ctx, &[2; 374], tanh, 1).unwrap_err();
    assert!(e.to_string().contains("at most 372"), "{e}");
}

/// The divergence term is what separates the two: on the same parameters and `z`, the CNF's
/// `dz` equals the plain net's, and its `dΔlogp` is the negated trace of the Jacobian, checked
/// against central differences of the plain net on the device.
#[test]
fn the_cnf_divergence_is_the_trace_of_the_net_jacobian() {
    let Some(ctx) = context() else { return };
    let dims = [3, 16, 3];
    let batch = 5;
    let mut cnf = GpuCnf::new(&ctx, &dims, GpuActivation::Softplus, batch).unwrap();
    let mut net = GpuNetRhs::new(&ctx, &dims, GpuActivation::Softplus, batch).unwrap();
    let mut rng = Rng::new(3);
    let (_, params) = net_and_params(&dims, Activation::Softplus, &mut rng);
    let z = random_state(batch * 3, &mut rng);
    let th = GpuVec::from_host(&ctx, &params);
    let mut zc = z.clone();
    zc.extend(std::iter::repeat_n(0.0, batch));
    let mut out = GpuVec::zeros(&ctx, zc.len());
    cnf.eval(0.4, &GpuVec::from_host(&ctx, &zc), &th, &mut out);
    let cnf_out = out.to_host();
    let mut f = GpuVec::zeros(&ctx, z.len());
    net.eval(0.4, &GpuVec::from_host(&ctx, &z), &th, &mut f);
    assert!(rel(&cnf_out[..z.len()], &f.to_host()) < 1e-6);
    let h = 1e-2f32;
    for b in 0..batch {
        let mut trace = 0.0f64;
        for k in 0..3 {
            let mut eval_at = |shift: f32| {
                let mut zs = z.clone();
                zs[b * 3 + k] += shift;
                net.eval(0.4, &GpuVec::from_host(&ctx, &zs), &th, &mut f);
                f64::from(f.to_host()[b * 3 + k])
            };
            trace += (eval_at(h) - eval_at(-h)) / (2.0 * f64::from(h));
        }
        let got = f64::from(cnf_out[batch * 3 + b]);
        assert!(
            (got + trace).abs() < 2e-3 * (1.0 + trace.abs()),
            "point {b}: dΔlogp {got} vs −tr J {}",
            -trace
        );
    }
}

/// No buffer is created per step anywhere in a gradient: a whole forward and backward pass
/// creates as many buffers at a tight tolerance (several times the steps) as at a loose one,
/// except that IRDM's piecewise capture creates exactly one more buffer (the node values) per
/// further segment it closes.
#[test]
fn buffers_created_per_gradient_do_not_grow_with_the_steps() {
    if context().is_none() {
        return;
    }
    // A context of its own, so that the count is this test's alone.
    let ctx = GpuContext::new().expect("an adapter was found above");
    let mut p = cnf_pair(&ctx, &[2, 16, 2], Activation::Tanh, 32, 8);
    let n = p.state.len();
    let th = GpuVec::from_host(&ctx, &p.params);
    let z0 = GpuVec::from_host(&ctx, &p.state);
    let cot = [
        GpuVec::zeros(&ctx, n),
        GpuVec::from_host(&ctx, &vec![0.1; n]),
    ];
    for m in [
        Method::irdm_lobatto(16, BackwardNorm::Seminorm),
        Method::Rdm {
            norm: BackwardNorm::Full,
        },
    ] {
        let mut created_and_steps = Vec::new();
        // The first pass at each tolerance brings the kept reduction and readback buffers.
        for tol in [1e-2f32, 1e-2, 1e-7] {
            let before = ctx.buffers_created();
            let mut config = Config::new(tol, tol);
            // Short segments, so that the tight solve closes several more than the loose one.
            config.irdm.segments = adjoint::Segments::EveryKSteps(2);
            let fwd = forward_on(&mut p.gpu, &th, &z0, &[0.0, 4.0], m, &config).unwrap();
            let g = fwd.backward(&mut p.gpu, &th, &cot).unwrap();
            let segments = g.info.grid.as_ref().map_or(0, |grid| grid.segments.len());
            created_and_steps.push((ctx.buffers_created() - before, g.info.nfe_forward, segments));
        }
        let [_, loose, tight] = created_and_steps[..] else {
            unreachable!()
        };
        assert!(
            tight.1 >= 2 * loose.1 && tight.2 >= loose.2,
            "{}: {created_and_steps:?}",
            m.name()
        );
        if m.name() == "irdm" {
            assert!(tight.2 > loose.2, "{created_and_steps:?}");
        }
        // buffers(tight) − buffers(loose) = segments(tight) − segments(loose), without
        // subtracting (a pass may create fewer buffers than it closes segments: the pool
        // holds the earlier passes' node buffers).
        assert_eq!(
            tight.0 + loose.2,
            loose.0 + tight.2,
            "{}: (buffers, nfe, segments) {created_and_steps:?}",
            m.name()
        );
    }
}

/// Hutchinson's estimate is unbiased: over many Rademacher draws for copies of one point, the
/// mean of `−dΔlogp` approaches the exact divergence (within four standard errors).
#[test]
fn hutchinson_estimates_average_to_the_exact_divergence() {
    let Some(ctx) = context() else { return };
    let dims = [3, 16, 3];
    let copies = 4000;
    let mut rng = Rng::new(21);
    let (_, params) = net_and_params(&dims, Activation::Softplus, &mut rng);
    let th = GpuVec::from_host(&ctx, &params);
    let point = [0.3f32, -0.7, 1.1];
    let mut exact = GpuCnf::new(&ctx, &dims, GpuActivation::Softplus, 1).unwrap();
    let mut out = GpuVec::zeros(&ctx, 4);
    let mut state = point.to_vec();
    state.push(0.0);
    exact.eval(0.2, &GpuVec::from_host(&ctx, &state), &th, &mut out);
    let exact_div = -f64::from(out.to_host()[3]);

    let mut est = GpuCnf::hutchinson(&ctx, &dims, GpuActivation::Softplus, copies).unwrap();
    let noise: Vec<f32> = (0..copies * 3).map(|_| rng.rademacher() as f32).collect();
    est.set_noise(&noise).unwrap();
    let mut state: Vec<f32> = (0..copies).flat_map(|_| point).collect();
    state.extend(std::iter::repeat_n(0.0, copies));
    let mut out = GpuVec::zeros(&ctx, state.len());
    est.eval(0.2, &GpuVec::from_host(&ctx, &state), &th, &mut out);
    let divs: Vec<f64> = out.to_host()[3 * copies..]
        .iter()
        .map(|&v| -f64::from(v))
        .collect();
    let mean = divs.iter().sum::<f64>() / copies as f64;
    let var = divs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (copies - 1) as f64;
    let se = (var / copies as f64).sqrt();
    assert!(var > 0.0, "the estimates vary with the noise");
    assert!(
        (mean - exact_div).abs() < 4.0 * se,
        "mean {mean} vs exact {exact_div} (standard error {se})"
    );
}

#[test]
fn hutchinson_noise_is_checked() {
    let Some(ctx) = context() else { return };
    let tanh = GpuActivation::Tanh;
    let mut exact = GpuCnf::new(&ctx, &[2, 4, 2], tanh, 3).unwrap();
    assert!(exact.set_noise(&[1.0; 6]).is_err());
    let mut h = GpuCnf::hutchinson(&ctx, &[2, 4, 2], tanh, 3).unwrap();
    assert!(h.set_noise(&[1.0; 6]).is_ok());
    assert!(h.set_noise(&[1.0; 5]).is_err());
    let e = h
        .set_noise(&[1.0, 1.0, f32::NAN, 1.0, 1.0, 1.0])
        .unwrap_err();
    assert!(e.to_string().contains("entry 2"), "{e}");
    // Any width: 12 would be beyond the exact divergence.
    assert!(GpuCnf::hutchinson(&ctx, &[12, 4, 12], tanh, 2).is_ok());
    assert!(GpuCnf::new(&ctx, &[12, 4, 12], tanh, 2).is_err());
}

/// A model moved to another batch size computes what a model built for it does: `f` and the
/// adjoint right-hand side against the host at the new size; a bad size is an error that
/// leaves the old one working.
#[test]
fn set_batch_matches_a_model_built_for_that_batch() {
    let Some(ctx) = context() else { return };
    let dims: &[usize] = &[3, 20, 3];
    let mut moved = cnf_pair(&ctx, dims, Activation::Tanh, 9, 3);
    assert!(moved.gpu.set_batch(0).is_err());
    assert_eq!(moved.gpu.batch(), 9);
    assert!(check_rhs(&ctx, &mut moved)[0] < 1e-5);
    let fresh = cnf_pair(&ctx, dims, Activation::Tanh, 301, 3);
    moved.gpu.set_batch(301).unwrap();
    assert_eq!(moved.gpu.state_len(), 301 * 4);
    let mut p = Pair {
        gpu: moved.gpu,
        host: fresh.host,
        params: fresh.params,
        state: fresh.state,
    };
    assert!(check_rhs(&ctx, &mut p)[0] < 1e-5);
    let e = check_adjoint_rhs(&ctx, &mut p);
    assert!(e.iter().all(|&e| e < 1e-4), "{e:?}");
    let mut net = GpuNetRhs::new(&ctx, dims, GpuActivation::Tanh, 4).unwrap();
    net.set_batch(7).unwrap();
    assert_eq!(net.state_len(), 21);
}

/// The default kernel choice tiles the forward and backward products from `AUTO_TILED_ROWS`
/// stacked rows on and follows the batch; an explicit choice stays.
#[test]
fn the_automatic_kernel_choice_follows_the_stacked_rows() {
    let Some(ctx) = context() else { return };
    let mut cnf = GpuCnf::toy(&ctx, 100, GpuActivation::Tanh).unwrap();
    assert_eq!(cnf.kernels(), GpuKernels::Auto);
    assert!(!cnf.is_tiled() && !cnf.is_tiled_backward());
    // The exact CNF stacks 1 + D = 3 rows per point.
    cnf.set_batch(AUTO_TILED_ROWS.div_ceil(3)).unwrap();
    assert!(cnf.is_tiled() && cnf.is_tiled_backward());
    cnf.set_tiled(false);
    assert!(!cnf.is_tiled() && !cnf.is_tiled_backward());
    assert_eq!(cnf.kernels(), GpuKernels::Simple);
    cnf.set_kernels(GpuKernels::TiledBackward);
    assert!(!cnf.is_tiled() && cnf.is_tiled_backward());
    let net = GpuNetRhs::new(&ctx, &[2, 16, 2], GpuActivation::Tanh, AUTO_TILED_ROWS - 1).unwrap();
    assert!(!net.is_tiled() && !net.is_tiled_backward());
}

/// IRDM's adjoint right-hand side at interpolated node states: the forward pass reading the
/// nodes itself (simple kernels: no `combine_rows` dispatch) and the layer-by-layer fallback
/// (tiled, through the scratch vector) both give what interpolating first and calling
/// `adjoint_rhs` gives, for the exact and Hutchinson CNFs and the plain net.
#[test]
fn interpolated_adjoint_rhs_matches_interpolating_first() {
    let Some(ctx) = context() else { return };
    let mut rng = Rng::new(21);
    let check = |gpu: &mut dyn VectorVjp<GpuVec>, label: &str, rng: &mut Rng| {
        let (n, np) = (gpu.state_len(), gpu.param_len());
        let nodes = 5;
        let values = GpuVec::from_host(&ctx, &random_state(nodes * n, rng));
        let coeffs = [0.1f32, -0.3, 0.7, 0.4, 0.1];
        let th = GpuVec::from_host(&ctx, &random_state(np, rng));
        let x = GpuVec::from_host(&ctx, &random_state(n + np, rng));
        let mut z = GpuVec::zeros(&ctx, n);
        z.combine_rows(&coeffs, &values);
        let mut want = GpuVec::zeros(&ctx, n + np);
        gpu.adjoint_rhs(0.4, &z, 0, &th, &x, 0, &mut want, None, 0);
        let mut scratch = GpuVec::zeros(&ctx, n);
        let mut got = GpuVec::zeros(&ctx, n + np);
        gpu.adjoint_rhs_interpolated(0.4, &coeffs, &values, &mut scratch, &th, &x, &mut got);
        let e = rel(&got.to_host(), &want.to_host());
        assert!(e < 1e-5, "{label}: {e:e}");
    };
    for kernels in [GpuKernels::Simple, GpuKernels::Tiled] {
        let mut cnf = GpuCnf::toy(&ctx, 37, GpuActivation::Tanh).unwrap();
        cnf.set_kernels(kernels);
        check(&mut cnf, "exact", &mut rng);
        let mut h = GpuCnf::hutchinson(&ctx, &[3, 16, 3], GpuActivation::Softplus, 9).unwrap();
        h.set_kernels(kernels);
        check(&mut h, "Hutchinson", &mut rng);
        let mut net = GpuNetRhs::new(&ctx, &[4, 20, 4], GpuActivation::Tanh, 11).unwrap();
        net.set_kernels(kernels);
        check(&mut net, "net", &mut rng);
    }
    // The simple kernels read the nodes in the forward pass: no combine_rows.
    let ctx2 = GpuContext::new().expect("an adapter was found above");
    if ctx2.start_profiling().is_err() {
        return;
    }
    let _ = ctx2.stop_profiling();
    let mut cnf = GpuCnf::toy(&ctx2, 37, GpuActivation::Tanh).unwrap();
    let (n, np) = (cnf.state_len(), cnf.param_len());
    let values = GpuVec::zeros(&ctx2, 3 * n);
    let th = GpuVec::zeros(&ctx2, np);
    let x = GpuVec::zeros(&ctx2, n + np);
    let mut scratch = GpuVec::zeros(&ctx2, n);
    let mut dx = GpuVec::zeros(&ctx2, n + np);
    ctx2.start_profiling().unwrap();
    cnf.adjoint_rhs_interpolated(
        0.4,
        &[0.2, 0.5, 0.3],
        &values,
        &mut scratch,
        &th,
        &x,
        &mut dx,
    );
    let _ = dx.to_host();
    let profile = ctx2.stop_profiling().unwrap();
    assert!(profile.iter().all(|k| k.kernel != "combine_rows"));
    assert_eq!(profile.iter().map(|k| k.calls).sum::<usize>(), 6);
}

/// Tuning times the kernels and keeps a fixed choice, which still matches the host; bad
/// arguments are errors that leave the choice alone.
#[test]
fn tuned_kernels_are_a_fixed_choice_that_matches_the_host() {
    let Some(ctx) = context() else { return };
    let mut p = cnf_pair(&ctx, &[2, 64, 64, 2], Activation::Tanh, 200, 4);
    let th = GpuVec::from_host(&ctx, &p.params);
    let short = GpuVec::from_host(&ctx, &p.params[1..]);
    assert!(p.gpu.tune_kernels(&short, 2).is_err());
    assert!(p.gpu.tune_kernels(&th, 0).is_err());
    assert_eq!(p.gpu.kernels(), GpuKernels::Auto);
    let chosen = p.gpu.tune_kernels(&th, 2).unwrap();
    assert!(FIXED_KERNELS.contains(&chosen), "{chosen:?}");
    assert_eq!(p.gpu.kernels(), chosen);
    assert!(check_rhs(&ctx, &mut p)[0] < 1e-5);
    let e = check_adjoint_rhs(&ctx, &mut p);
    assert!(e.iter().all(|&e| e < 1e-4), "{chosen:?}: {e:?}");
    let mut net = GpuNetRhs::new(&ctx, &[3, 16, 3], GpuActivation::Tanh, 10).unwrap();
    let th = GpuVec::zeros(&ctx, net.param_len());
    assert!(FIXED_KERNELS.contains(&net.tune_kernels(&th, 1).unwrap()));
}

/// The dispatches of one evaluation, by kernel (profiled), for the toy CNF's `L = 3` layers
/// with the simple kernels: the forward pass is one dispatch (`net_forward`: every layer with
/// its rows in workgroup memory, from the state and the tangent seeds to the value and the
/// divergence, exact or Hutchinson's), so `f` is one and the adjoint right-hand side `L + 3`
/// (the forward pass keeping every layer's rows, the last layer's row cotangents, one dispatch
/// per layer for its parameter partials and its input cotangent, which goes straight on
/// through the activation below or, in the first layer, into the state's cotangent, and one
/// final reduction for all layers), also with RDM's value. Layer by layer (tiled forward
/// products, or a layer wider than 64) `f` is `L` dispatches, a tiled layer's product and the
/// rest of it in one (`layer_tiled`), Hutchinson's value summed in the last layer as the exact
/// divergence is; the transposition of the weights from `TRANSPOSED_WEIGHT_ROWS` stacked rows
/// on takes one more.
#[test]
fn dispatches_per_evaluation_are_pinned() {
    if context().is_none() {
        return;
    }
    let ctx = GpuContext::new().expect("an adapter was found above");
    if ctx.start_profiling().is_err() {
        eprintln!("skipped: no timestamp queries");
        return;
    }
    ctx.stop_profiling().unwrap();
    // Calls per kernel of `work` (profiled; its last readback closes it), sorted by name.
    let profiled = |work: &mut dyn FnMut()| -> Vec<(String, usize)> {
        ctx.start_profiling().unwrap();
        work();
        let mut c: Vec<(String, usize)> = ctx
            .stop_profiling()
            .unwrap()
            .into_iter()
            .map(|t| (t.kernel, t.calls))
            .collect();
        c.sort();
        c
    };
    let named = |calls: &[(&str, usize)]| -> Vec<(String, usize)> {
        calls.iter().map(|&(k, c)| (k.to_string(), c)).collect()
    };
    let batch = 50;
    let mut cnf = GpuCnf::toy(&ctx, batch, GpuActivation::Tanh).unwrap();
    let mut rng = Rng::new(5);
    let n = cnf.state_len();
    let np = cnf.param_len();
    let th = GpuVec::from_host(&ctx, &random_state(np, &mut rng));
    let z = GpuVec::from_host(&ctx, &random_state(n, &mut rng));
    let mut dz = GpuVec::zeros(&ctx, n);
    let mut eval = |model: &mut GpuCnf, th: &GpuVec| {
        profiled(&mut || {
            model.eval(0.2, &z, th, &mut dz);
            let _ = dz.to_host();
        })
    };
    let one_forward = named(&[("net_forward", 1)]);
    assert_eq!(eval(&mut cnf, &th), one_forward);
    let mut hutchinson =
        GpuCnf::hutchinson(&ctx, &[2, 64, 64, 2], GpuActivation::Tanh, batch).unwrap();
    assert_eq!(eval(&mut hutchinson, &th), one_forward);
    // Layer by layer with tiled forward products (or a layer wider than 64): `L` dispatches,
    // Hutchinson's too.
    hutchinson.set_kernels(GpuKernels::TiledForward);
    assert_eq!(
        eval(&mut hutchinson, &th),
        named(&[("layer_forward", 2), ("layer_tiled", 1)])
    );
    let mut wide = GpuCnf::new(&ctx, &[2, 80, 2], GpuActivation::Tanh, batch).unwrap();
    let th_wide = GpuVec::from_host(&ctx, &random_state(wide.param_len(), &mut rng));
    assert_eq!(eval(&mut wide, &th_wide), named(&[("layer_forward", 2)]));
    cnf.set_kernels(GpuKernels::TiledForward);
    assert_eq!(
        eval(&mut cnf, &th),
        named(&[("layer_forward", 2), ("layer_tiled", 1)])
    );
    cnf.set_kernels(GpuKernels::Auto);
    // The adjoint right-hand side in IRDM's layout and in RDM's (the value `f` in front): the
    // same dispatches.
    let adjoint = named(&[
        ("first_layer_backward", 1),
        ("layer_backward", 2),
        ("layer_backward_rows", 1),
        ("net_forward", 1),
        ("reduce_final", 1),
    ]);
    let x = GpuVec::from_host(&ctx, &random_state(n + np, &mut rng));
    let mut dx = GpuVec::zeros(&ctx, n + np);
    let calls = profiled(&mut || {
        cnf.adjoint_rhs(0.2, &z, 0, &th, &x, 0, &mut dx, None, 0);
        let _ = dx.to_host();
    });
    assert_eq!(calls, adjoint);
    let x = GpuVec::from_host(&ctx, &random_state(2 * n + np, &mut rng));
    let mut dx = GpuVec::zeros(&ctx, 2 * n + np);
    let mut rdm = |cnf: &mut GpuCnf| {
        profiled(&mut || {
            cnf.adjoint_rhs(0.2, &x, 0, &th, &x, n, &mut dx, Some(0), n);
            let _ = dx.to_host();
        })
    };
    assert_eq!(rdm(&mut cnf), adjoint);
    // Tiled one way only: the tiled product in `f` (the middle layer's) or the tiled weight
    // reductions in the adjoint right-hand side, not both.
    let calls_of = |calls: &[(String, usize)], kernel: &str| {
        calls.iter().find(|(k, _)| k == kernel).map_or(0, |c| c.1)
    };
    for (kernels, forward, backward) in [
        (GpuKernels::TiledForward, 1, 0),
        (GpuKernels::TiledBackward, 0, 3),
        (GpuKernels::Tiled, 1, 3),
    ] {
        cnf.set_kernels(kernels);
        assert_eq!(calls_of(&eval(&mut cnf, &th), "layer_tiled"), forward);
        assert_eq!(calls_of(&rdm(&mut cnf), "reduce_weights"), backward);
    }
    cnf.set_kernels(GpuKernels::Auto);
    // Layer by layer, from `TRANSPOSED_WEIGHT_ROWS` stacked rows on, one more dispatch
    // transposes the weights first (once per evaluation, for every layer); `net_forward` reads
    // them through workgroup memory at any batch.
    let mut wide_net = GpuCnf::new(&ctx, &[2, 80, 80, 2], GpuActivation::Tanh, 1).unwrap();
    let th_wide = GpuVec::from_host(&ctx, &random_state(wide_net.param_len(), &mut rng));
    let at = TRANSPOSED_WEIGHT_ROWS.div_ceil(3);
    let mut eval_at = |model: &mut GpuCnf, th: &GpuVec, batch: usize| {
        model.set_batch(batch).unwrap();
        let n = model.state_len();
        let z = GpuVec::from_host(&ctx, &random_state(n, &mut rng));
        let mut dz = GpuVec::zeros(&ctx, n);
        profiled(&mut || {
            model.eval(0.2, &z, th, &mut dz);
            let _ = dz.to_host();
        })
    };
    assert_eq!(
        eval_at(&mut wide_net, &th_wide, at),
        named(&[("layer_forward", 3), ("transpose_weights", 1)])
    );
    assert_eq!(
        eval_at(&mut wide_net, &th_wide, at - 1),
        named(&[("layer_forward", 3)])
    );
    assert_eq!(eval_at(&mut cnf, &th, at), one_forward);
}

/// Readbacks of a whole gradient do not grow with the number of output times beyond the
/// solver's own step decisions: the backward restarts at output times read nothing back (their
/// state is the solver's plus a checked cotangent), the cotangents are checked together with
/// the backward solver's first norms (no readback of their own), and `dL/dz0`, `dL/dθ` stay on
/// the device, as does IRDM's grid check. IRDM on one grid: `attempts + 4` (two readbacks for
/// each of the two initial step picks); RDM: `attempts + 4 + K` (its reconstruction check at
/// each of the `K` output times before the last). The gradients and IRDM's grid estimate match
/// the host's.
#[test]
fn readbacks_per_gradient_do_not_grow_with_the_output_times() {
    if context().is_none() {
        return;
    }
    // A context of its own, so that the readback count is this test's alone.
    let ctx = GpuContext::new().expect("an adapter was found above");
    let mut p = net_pair(&ctx, &[3, 16, 3], Activation::Tanh, 20, 11);
    let n = p.state.len();
    let mut config = Config::new(1e-5f32, 1e-5);
    config.irdm.segments = adjoint::Segments::Single;
    let rdm = Method::Rdm {
        norm: BackwardNorm::Seminorm,
    };
    let irdm = Method::irdm_lobatto(16, BackwardNorm::Seminorm);
    for outputs in [2usize, 6] {
        let ts: Vec<f32> = (0..outputs)
            .map(|k| k as f32 / (outputs - 1) as f32)
            .collect();
        // A cotangent at every output time but the first.
        let cot: Vec<Vec<f32>> = (0..outputs)
            .map(|k| {
                (0..n)
                    .map(|i| {
                        if k == 0 {
                            0.0
                        } else {
                            0.01 * ((i + k) % 5) as f32 - 0.02
                        }
                    })
                    .collect()
            })
            .collect();
        for (m, extra) in [(irdm, 4), (rdm, 4 + outputs - 1)] {
            let th = GpuVec::from_host(&ctx, &p.params);
            let z0 = GpuVec::from_host(&ctx, &p.state);
            let cot_g: Vec<GpuVec> = cot.iter().map(|c| GpuVec::from_host(&ctx, c)).collect();
            let r0 = ctx.readbacks();
            let fwd = forward_on(&mut p.gpu, &th, &z0, &ts, m, &config).unwrap();
            let g = fwd.backward(&mut p.gpu, &th, &cot_g).unwrap();
            let readbacks = ctx.readbacks() - r0;
            let i = &g.info;
            let attempts =
                i.accepted_forward + i.rejected_forward + i.accepted_backward + i.rejected_backward;
            assert_eq!(
                readbacks,
                attempts + extra,
                "{} with {outputs} output times: {i:?}",
                m.name()
            );
            let host_fwd = forward_on(&mut p.host, &p.params, &p.state, &ts, m, &config).unwrap();
            let gh = host_fwd.backward(&mut p.host, &p.params, &cot).unwrap();
            let e = rel(&g.dtheta.to_host(), &gh.dtheta);
            assert!(
                e < 1e-4,
                "{} with {outputs} output times: dθ {e:e}",
                m.name()
            );
            let e = rel(&g.dz0.to_host(), &gh.dz0);
            assert!(
                e < 1e-4,
                "{} with {outputs} output times: dz0 {e:e}",
                m.name()
            );
            let estimate = |i: &adjoint::Info| i.grid.as_ref().and_then(|g| g.error_estimate);
            match (estimate(&g.info), estimate(&gh.info)) {
                (None, None) => assert_eq!(m, rdm),
                (Some(gpu), Some(host)) => {
                    assert!(
                        (gpu - host).abs() <= 0.05 * host + 1e-6,
                        "{} with {outputs} output times: estimate {gpu:e} vs {host:e}",
                        m.name()
                    )
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

/// A non-finite cotangent on the device is named with its output time by every method, at the
/// last output time (where the backward solver's start would also fail: the cotangent check,
/// read with that start's norms, is reported first) and at an earlier one.
#[test]
fn a_non_finite_cotangent_on_the_device_is_named_by_every_method() {
    if context().is_none() {
        return;
    }
    let ctx = GpuContext::new().expect("an adapter was found above");
    let mut p = net_pair(&ctx, &[3, 16, 3], Activation::Tanh, 20, 11);
    let n = p.state.len();
    let config = Config::new(1e-5f32, 1e-5);
    let ts = [0.0f32, 0.5, 1.0];
    let methods = [
        Method::Direct,
        Method::Anode {
            checkpoints: adjoint::Checkpoints::EveryKSteps(2),
        },
        Method::Rdm {
            norm: BackwardNorm::Seminorm,
        },
        Method::irdm_lobatto(16, BackwardNorm::Seminorm),
    ];
    for m in methods {
        let th = GpuVec::from_host(&ctx, &p.params);
        let z0 = GpuVec::from_host(&ctx, &p.state);
        let fwd = forward_on(&mut p.gpu, &th, &z0, &ts, m, &config).unwrap();
        for (bad, value) in [(2usize, f32::NAN), (1, f32::INFINITY)] {
            let cot: Vec<GpuVec> = (0..ts.len())
                .map(|k| {
                    let mut c = vec![0.01f32; n];
                    if k == bad {
                        c[n / 2] = value;
                    }
                    GpuVec::from_host(&ctx, &c)
                })
                .collect();
            let err = fwd.backward(&mut p.gpu, &th, &cot).err();
            assert_eq!(
                err,
                Some(adjoint::AdjointError::NonFiniteCotangent {
                    index: bad,
                    t: f64::from(ts[bad]),
                }),
                "{} with a bad cotangent at {bad}",
                m.name()
            );
        }
    }
}
