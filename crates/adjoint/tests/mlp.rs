//! A tanh-MLP ODE with several output times and a nonlinear loss: every method against central
//! differences, the discrete methods against differences of the same discrete map, IRDM's error
//! trend in N and tolerance, and the memory each method holds.

mod common;

use adjoint::{BackwardNorm, Checkpoints, Config, IrdmGrid, Method, Segments, forward};
use cheb::Kind;
use common::{Mlp, all_methods, lcg, rel_err};
use rk::{Options, solve};

const N: usize = 3;
const H: usize = 8;
const TS: [f64; 4] = [0.0, 0.35, 0.8, 1.5];

/// `L = Σ_k w_kᵀ z(s_k) + ½‖z(T)‖²` and its cotangents.
fn loss_and_cotangents(outputs: &[Vec<f64>]) -> (f64, Vec<Vec<f64>>) {
    let w = lcg(N * TS.len(), 7);
    let mut loss = 0.0;
    let mut cot = Vec::new();
    for (k, z) in outputs.iter().enumerate() {
        let wk = &w[k * N..(k + 1) * N];
        loss += wk.iter().zip(z).map(|(a, b)| a * b).sum::<f64>();
        let mut c = wk.to_vec();
        if k == TS.len() - 1 {
            loss += 0.5 * z.iter().map(|x| x * x).sum::<f64>();
            for (ci, zi) in c.iter_mut().zip(z) {
                *ci += zi;
            }
        }
        cot.push(c);
    }
    (loss, cot)
}

fn setup() -> (Mlp, Vec<f64>, Vec<f64>) {
    let mlp = Mlp::new(N, H);
    let theta = mlp.params(3, 0.8);
    let z0 = vec![0.5, -0.3, 0.8];
    (mlp, theta, z0)
}

/// Central differences of `L` through a fixed-step solve (a smooth map of `(z0, θ)`).
fn fd_gradient(method: rk::Method, h: f64) -> (Vec<f64>, Vec<f64>) {
    let (mut mlp, theta, z0) = setup();
    let mut loss = |z0: &[f64], th: &[f64]| {
        let sol = solve(
            &mut mlp,
            &th.to_vec(),
            method,
            &Options::fixed(h),
            &TS,
            &z0.to_vec(),
        )
        .unwrap();
        loss_and_cotangents(&sol.ys).0
    };
    let eps = 1e-6;
    let mut dz = vec![0.0; N];
    for i in 0..N {
        let (mut p, mut m) = (z0.clone(), z0.clone());
        p[i] += eps;
        m[i] -= eps;
        dz[i] = (loss(&p, &theta) - loss(&m, &theta)) / (2.0 * eps);
    }
    let mut dth = vec![0.0; theta.len()];
    for i in 0..theta.len() {
        let (mut p, mut m) = (theta.clone(), theta.clone());
        p[i] += eps;
        m[i] -= eps;
        dth[i] = (loss(&z0, &p) - loss(&z0, &m)) / (2.0 * eps);
    }
    (dz, dth)
}

fn gradient(method: Method, config: &Config<f64>) -> adjoint::Gradient<f64> {
    let (mut mlp, theta, z0) = setup();
    let fwd = forward(&mut mlp, &theta, &z0, &TS, method, config).unwrap();
    let (_, cot) = loss_and_cotangents(fwd.outputs());
    fwd.backward(&mut mlp, &theta, &cot).unwrap()
}

#[test]
fn all_methods_agree_with_central_differences() {
    // RK4 with h = 1e-3 is accurate to ~1e-12: its differences are the true gradient to ~1e-8.
    let (dz_ref, dth_ref) = fd_gradient(rk::Method::Rk4, 1e-3);
    let config = Config::new(1e-10, 1e-10);
    let direct = gradient(Method::Direct, &config);
    for (label, method) in all_methods() {
        let g = gradient(method, &config);
        let (ez, et) = (rel_err(&g.dz0, &dz_ref), rel_err(&g.dtheta, &dth_ref));
        assert!(
            ez < 1e-7 && et < 1e-7,
            "{label}: vs differences {ez:e} {et:e}"
        );
        let agree = rel_err(&g.dtheta, &direct.dtheta);
        assert!(agree < 1e-7, "{label}: vs direct {agree:e}");
    }
}

#[test]
fn direct_is_the_exact_gradient_of_the_discrete_map() {
    // Fixed-step RK4 with outputs between grid points (dense output): Direct must match the
    // differences of the very same discrete map far below its discretization error.
    let h = 0.1;
    let (dz_ref, dth_ref) = fd_gradient(rk::Method::Rk4, h);
    let mut config = Config::new(1.0, 1.0);
    config.tableau = rk::Method::Rk4;
    config.forward = Options::fixed(h);
    for method in [
        Method::Direct,
        Method::Anode {
            checkpoints: Checkpoints::EveryKSteps(4),
        },
    ] {
        let g = gradient(method, &config);
        assert!(rel_err(&g.dz0, &dz_ref) < 1e-8, "{method:?}");
        assert!(rel_err(&g.dtheta, &dth_ref) < 1e-8, "{method:?}");
    }
    // Same for adaptive dopri5 (step sizes held fixed): ANODE reproduces Direct to rounding.
    let config = Config::new(1e-5, 1e-5);
    let d = gradient(Method::Direct, &config);
    let a = gradient(
        Method::Anode {
            checkpoints: Checkpoints::Count(3),
        },
        &config,
    );
    assert!(rel_err(&a.dtheta, &d.dtheta) < 1e-12);
    assert!(rel_err(&a.dz0, &d.dz0) < 1e-12);
    assert_eq!(a.info.vjp_backward, d.info.vjp_backward);
}

/// `config` with the paper's single grid over the whole solve.
fn single(mut config: Config<f64>) -> Config<f64> {
    config.irdm.segments = Segments::Single;
    config
}

fn irdm(kind: Kind, n: usize) -> Method {
    Method::Irdm {
        grid: IrdmGrid::Fixed { kind, n },
        norm: BackwardNorm::Full,
    }
}

#[test]
fn irdm_error_falls_geometrically_in_n_then_meets_the_tolerance_floor() {
    let reference = gradient(Method::Direct, &Config::new(1e-12, 1e-12));
    for kind in [Kind::Lobatto, Kind::First] {
        let config = single(Config::new(1e-9, 1e-9));
        let errs: Vec<f64> = [2usize, 4, 8, 16, 32]
            .iter()
            .map(|&n| rel_err(&gradient(irdm(kind, n), &config).dtheta, &reference.dtheta))
            .collect();
        // Geometric fall while interpolation dominates: each doubling gains at least 10×.
        assert!(
            errs[1] < errs[0] / 10.0 && errs[2] < errs[1] / 10.0,
            "{kind:?}: {errs:?}"
        );
        // Then the solver floor: N = 16 and N = 32 are both at the tolerance level.
        assert!(errs[3] < 1e-7 && errs[4] < 1e-7, "{kind:?}: {errs:?}");
        // And the floor falls with the tolerance.
        let loose = rel_err(
            &gradient(irdm(kind, 32), &single(Config::new(1e-5, 1e-5))).dtheta,
            &reference.dtheta,
        );
        assert!(
            loose > 10.0 * errs[4],
            "{kind:?}: loose {loose:e} vs tight {:e}",
            errs[4]
        );
    }
    // The mismatched pairing (Lobatto nodes, first-kind weights) is far worse than a matched
    // grid of the same size and falls only algebraically (measured: about N^-4.5).
    let config = single(Config::new(1e-9, 1e-9));
    let mismatched: Vec<f64> = [8usize, 16, 32]
        .iter()
        .map(|&n| {
            let m = Method::Irdm {
                grid: IrdmGrid::Mismatched { n },
                norm: BackwardNorm::Full,
            };
            rel_err(&gradient(m, &config).dtheta, &reference.dtheta)
        })
        .collect();
    let matched = rel_err(
        &gradient(irdm(Kind::Lobatto, 16), &config).dtheta,
        &reference.dtheta,
    );
    assert!(
        mismatched[1] > 30.0 * matched,
        "{mismatched:?} vs {matched:e}"
    );
    assert!(mismatched[1] / mismatched[2] < 64.0, "{mismatched:?}");
}

#[test]
fn irdm_auto_picks_a_small_grid_and_reports_its_error() {
    let reference = gradient(Method::Direct, &Config::new(1e-12, 1e-12));
    let auto = |rel_tol: f64| Method::Irdm {
        grid: IrdmGrid::Auto {
            n_max: 128,
            rel_tol,
            abs_tol: 0.0,
        },
        norm: BackwardNorm::Full,
    };
    let coarse = gradient(auto(1e-4), &single(Config::new(1e-10, 1e-10)));
    let fine = gradient(auto(1e-8), &single(Config::new(1e-10, 1e-10)));
    let (gc, gf) = (
        coarse.info.grid.clone().unwrap(),
        fine.info.grid.clone().unwrap(),
    );
    assert_eq!((gc.n_stored, gf.n_stored), (128, 128));
    assert!(gc.n < gf.n && gf.n < 128, "{gc:?} {gf:?}");
    assert!(gc.n.is_power_of_two() && gf.n.is_power_of_two());
    assert!(gc.error_estimate.unwrap() > gf.error_estimate.unwrap());
    assert!(rel_err(&fine.dtheta, &reference.dtheta) < 1e-7);
    // Peak memory is the stored n_max grid.
    assert_eq!(fine.info.stored_floats, 129 * N);
}

#[test]
fn the_default_automatic_grid_stores_few_nodes_on_a_smooth_solve() {
    // t ∈ [0, 1], tol 1e-9: 16 nodes already reach the tolerance floor (measured N = 16
    // 1.2e-9, N = 128 1.1e-9 with one grid); the piecewise automatic grid must keep ≤ 32.
    let reference = gradient(Method::Direct, &Config::new(1e-12, 1e-12));
    let tol = 1e-9;
    let auto = gradient(
        Method::irdm_auto(tol, tol, BackwardNorm::Full),
        &Config::new(tol, tol),
    );
    let grid = auto.info.grid.clone().unwrap();
    assert!(grid.nodes <= 32, "{grid:?}");
    assert_eq!(auto.info.stored_floats, grid.nodes * N);
    assert!(grid.n_stored <= 2 * grid.n, "{grid:?}");
    let direct = gradient(Method::Direct, &Config::new(tol, tol));
    let (ea, ed) = (
        rel_err(&auto.dtheta, &reference.dtheta),
        rel_err(&direct.dtheta, &reference.dtheta),
    );
    assert!(ea <= 2.0 * ed, "auto {ea:e} vs direct {ed:e}");
    assert!(auto.info.stored_floats < direct.info.stored_floats);
}

#[test]
fn memory_accounting() {
    let tight = Config::new(1e-9, 1e-9);
    let loose = Config::new(1e-5, 1e-5);
    let g = gradient(irdm(Kind::Lobatto, 16), &single(tight.clone()));
    assert_eq!(g.info.stored_floats, 17 * N);
    // Per segment (the default, N/2 = 8 steps each): 17 nodes for every segment.
    let p = gradient(irdm(Kind::Lobatto, 16), &tight);
    let grid = p.info.grid.clone().unwrap();
    assert_eq!(grid.segments.len(), p.info.accepted_forward.div_ceil(8));
    assert_eq!(p.info.stored_floats, 17 * N * grid.segments.len());
    assert_eq!(g.info.nfe_backward, 0);
    let r = gradient(
        Method::Rdm {
            norm: BackwardNorm::Full,
        },
        &tight,
    );
    assert_eq!(r.info.stored_floats, (TS.len() - 1) * N);
    assert!(r.info.nfe_backward > 0 && r.info.nfe_backward == r.info.vjp_backward);
    let dt = gradient(Method::Direct, &tight);
    let dl = gradient(Method::Direct, &loose);
    // Direct holds every stage of every step: 7 stage inputs of N floats, plus (t, h, t_new).
    assert_eq!(
        dt.info.stored_floats,
        dt.info.accepted_forward * (7 * N + 3)
    );
    assert!(dt.info.stored_floats > dl.info.stored_floats);
    assert_eq!(dt.info.nfe_backward, 0);
    let a = gradient(
        Method::Anode {
            checkpoints: Checkpoints::EveryKSteps(4),
        },
        &tight,
    );
    let steps = a.info.accepted_forward;
    let checkpoints = steps.div_ceil(4);
    assert!(
        a.info.stored_floats <= checkpoints * N + 3 * steps + 4 * 7 * N,
        "{:?}",
        a.info
    );
    assert!(a.info.stored_floats < dt.info.stored_floats);
    // ANODE recomputes every step: (stages − 1) per step plus one per interval restart.
    assert_eq!(a.info.nfe_backward, 6 * steps + checkpoints);
    // The info record serializes.
    let json = serde_json::to_string(&g.info).unwrap();
    assert!(
        json.contains("\"method\":\"irdm\"") && json.contains("\"stored_floats\":51"),
        "{json}"
    );
}

#[test]
fn piecewise_linear_interpolation_converges_only_to_second_order() {
    // The paper's Figure 6b ablation: the same Lobatto nodes, z(t) interpolated linearly. The
    // error is O(h²) in the largest node gap, so doubling N gains about 4×, never the 10×+ of
    // barycentric interpolation, and at N = 16 it is far above the barycentric error.
    let reference = gradient(Method::Direct, &Config::new(1e-12, 1e-12));
    let config = Config::new(1e-10, 1e-10);
    let linear = |n| {
        let m = Method::Irdm {
            grid: IrdmGrid::PiecewiseLinear { n },
            norm: BackwardNorm::Full,
        };
        let g = gradient(m, &config);
        assert_eq!(g.info.grid.as_ref().unwrap().kind, "linear");
        rel_err(&g.dtheta, &reference.dtheta)
    };
    let errs: Vec<f64> = [8usize, 16, 32, 64].iter().map(|&n| linear(n)).collect();
    for w in errs.windows(2) {
        let ratio = w[0] / w[1];
        assert!((2.5..8.0).contains(&ratio), "{errs:?}");
    }
    let bary = rel_err(
        &gradient(irdm(Kind::Lobatto, 16), &config).dtheta,
        &reference.dtheta,
    );
    assert!(errs[1] > 1000.0 * bary, "{errs:?} vs {bary:e}");
}
