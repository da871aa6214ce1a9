//! The gradient-error suite (the paper's Figure 2): an MLP ODE trained on the spiral
//! `dy/dt = (y³) A` (torchdiffeq's `ode_demo`), then the relative error of IRDM's `dL/dθ` against
//! a tight-tolerance Direct reference, over solver tolerances and stored-node counts, for Lobatto
//! and first-kind grids and for the authors' mismatched pairing (Lobatto nodes, first-kind
//! weights), each one grid over `[0, 10]` as in the paper. The long-horizon part, where one grid
//! is not enough, is [`crate::long_horizon`].

use crate::results::GradientError;
use crate::toy::NODE_COUNTS;
use adjoint::{BackwardNorm, Config, IrdmGrid, Method, Segments, forward};
use cheb::Kind;
use indicatif::ProgressBar;
use nn::optim::{Adam, AdamConfig, Optimizer};
use nn::{Activation, LayerKind, NetRhs, OdeNet, Rng};
use rk::{FnRhs, Options, solve};

/// Tolerances of the map.
pub const TOLS: [f64; 6] = [1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8];
const T_END: f64 = 10.0;
const N_OUT: usize = 20;

/// Builds an IRDM grid of degree `N`.
type GridOfDegree = fn(usize) -> IrdmGrid;

type Problem = (NetRhs<f64>, Vec<f64>, Vec<f64>, Vec<Vec<f64>>);

/// The spiral data and a trained MLP ODE `2 → 50 → 2` (tanh): `(rhs, θ, output times, data)`.
fn trained_model(train_iters: usize) -> Result<Problem, Box<dyn std::error::Error>> {
    let mut spiral = FnRhs(|_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| {
        let (a, b) = (y[0].powi(3), y[1].powi(3));
        dy[0] = -0.1 * a - 2.0 * b;
        dy[1] = 2.0 * a - 0.1 * b;
    });
    let ts: Vec<f64> = (0..=N_OUT)
        .map(|i| T_END * i as f64 / N_OUT as f64)
        .collect();
    let truth = solve(
        &mut spiral,
        &vec![],
        rk::Method::Dopri5,
        &Options::new(1e-10, 1e-12),
        &ts,
        &vec![2.0, 0.0],
    )?
    .ys;
    let net = OdeNet::<f64>::new(&[2, 50, 2], LayerKind::Linear, Activation::Tanh)?;
    let mut theta = net.init_params(&mut Rng::new(0));
    let mut rhs = NetRhs::new(net, 1)?;
    let mut adam = Adam::new(
        theta.len(),
        AdamConfig {
            lr: 1e-2,
            ..AdamConfig::default()
        },
    )?;
    let method = Method::irdm_lobatto(32, BackwardNorm::Seminorm);
    for _ in 0..train_iters {
        let fwd = forward(
            &mut rhs,
            &theta,
            &truth[0],
            &ts,
            method,
            &paper_config(1e-6),
        )?;
        let cot = cotangents(fwd.outputs(), &truth);
        let g = fwd.backward(&mut rhs, &theta, &cot)?;
        adam.step(&mut theta, &g.dtheta)?;
    }
    Ok((rhs, theta, ts, truth))
}

/// `L = mean_k ‖z(t_k) − y_k‖²` and its cotangents.
fn cotangents(outputs: &[Vec<f64>], truth: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let scale = 2.0 / outputs.len() as f64;
    outputs
        .iter()
        .zip(truth)
        .map(|(z, y)| z.iter().zip(y).map(|(a, b)| scale * (a - b)).collect())
        .collect()
}

/// The paper's setting: rtol = atol = `tol`, one grid over the whole solve.
fn paper_config(tol: f64) -> Config<f64> {
    let mut config = Config::new(tol, tol);
    config.irdm.segments = Segments::Single;
    config
}

fn gradient(
    p: &mut Problem,
    method: Method,
    tol: f64,
) -> Result<adjoint::Gradient<f64>, adjoint::AdjointError> {
    let (rhs, theta, ts, truth) = p;
    let fwd = forward(rhs, theta, &truth[0], ts, method, &paper_config(tol))?;
    let cot = cotangents(fwd.outputs(), truth);
    fwd.backward(rhs, theta, &cot)
}

/// `‖x − y‖_p / ‖y‖_p`.
pub fn rel(x: &[f64], y: &[f64], p: i32) -> f64 {
    let num: f64 = x
        .iter()
        .zip(y)
        .map(|(a, b)| (a - b).abs().powi(p))
        .sum::<f64>();
    let den: f64 = y.iter().map(|b| b.abs().powi(p)).sum::<f64>();
    (num / den).powf(1.0 / f64::from(p))
}

/// Runs the suite.
pub fn run(
    train_iters: usize,
    progress: &ProgressBar,
) -> Result<Vec<GradientError>, Box<dyn std::error::Error>> {
    let mut problem = trained_model(train_iters)?;
    let reference = gradient(&mut problem, Method::Direct, 1e-11)?.dtheta;
    let grids: [(&str, GridOfDegree); 3] = [
        ("lobatto", |n| IrdmGrid::Fixed {
            kind: Kind::Lobatto,
            n,
        }),
        ("first", |n| IrdmGrid::Fixed {
            kind: Kind::First,
            n,
        }),
        ("mismatched", |n| IrdmGrid::Mismatched { n }),
    ];
    progress.set_length((grids.len() * TOLS.len() * NODE_COUNTS.len()) as u64);
    let mut out = Vec::new();
    for (name, make) in grids {
        for tol in TOLS {
            for nodes in NODE_COUNTS {
                let m = Method::Irdm {
                    grid: make(nodes - 1),
                    norm: BackwardNorm::Full,
                };
                let g = gradient(&mut problem, m, tol)?;
                out.push(GradientError {
                    grid: name.into(),
                    n_nodes: nodes,
                    tol,
                    rel_l1: rel(&g.dtheta, &reference, 1),
                    rel_l2: rel(&g.dtheta, &reference, 2),
                    vjp_bwd: g.info.vjp_backward,
                });
                progress.inc(1);
            }
        }
    }
    Ok(out)
}
