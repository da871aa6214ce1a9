//! Property test of IRDM's per-segment interpolation-error estimates: on random smooth
//! trajectories with a known solution, every segment's reported estimate bounds the true error
//! of interpolating the exact `z(t)` on that segment's grid (within a factor of 10).
//!
//! The trajectory is a damped rotation `z₀₁' = A z₀₁`, `A = [[−λ, ω], [−ω, −λ]]`, with
//! `z₀₁(t) = e^{−λt} R(ωt) z₀₁(0)`, beside a logistic component `z₂' = a z₂ (1 − z₂)`,
//! `z₂(t) = 1 / (1 + (1/z₂(0) − 1) e^{−at})`. The solve runs at 1e-12, so its own error is far
//! below the estimates being tested; the true error is measured against the analytic solution,
//! independently of anything the capture computed.

use adjoint::{BackwardNorm, Config, IrdmGrid, Method, OnUnderResolved, Segments, Vjp, forward};
use cheb::{Grid, Kind};
use proptest::prelude::*;
use rk::Rhs;

/// `θ = [λ, ω, a]`.
struct RotationAndLogistic;

impl Rhs<Vec<f64>> for RotationAndLogistic {
    fn eval(&mut self, _t: f64, z: &Vec<f64>, p: &Vec<f64>, dz: &mut Vec<f64>) {
        dz[0] = -p[0] * z[0] + p[1] * z[1];
        dz[1] = -p[1] * z[0] - p[0] * z[1];
        dz[2] = p[2] * z[2] * (1.0 - z[2]);
    }
}

impl Vjp<f64> for RotationAndLogistic {
    fn state_len(&self) -> usize {
        3
    }
    fn param_len(&self) -> usize {
        3
    }
    fn vjp(
        &mut self,
        _t: f64,
        z: &[f64],
        p: &[f64],
        w: &[f64],
        value: Option<&mut [f64]>,
        adj_z: &mut [f64],
        adj_p: &mut [f64],
    ) {
        if let Some(v) = value {
            v[0] = -p[0] * z[0] + p[1] * z[1];
            v[1] = -p[1] * z[0] - p[0] * z[1];
            v[2] = p[2] * z[2] * (1.0 - z[2]);
        }
        adj_z[0] = -p[0] * w[0] - p[1] * w[1];
        adj_z[1] = p[1] * w[0] - p[0] * w[1];
        adj_z[2] = p[2] * (1.0 - 2.0 * z[2]) * w[2];
        adj_p[0] = -z[0] * w[0] - z[1] * w[1];
        adj_p[1] = z[1] * w[0] - z[0] * w[1];
        adj_p[2] = z[2] * (1.0 - z[2]) * w[2];
    }
}

fn exact(p: &[f64; 3], z0: &[f64; 3], t: f64) -> [f64; 3] {
    let (s, c) = (p[1] * t).sin_cos();
    let decay = (-p[0] * t).exp();
    [
        decay * (c * z0[0] + s * z0[1]),
        decay * (-s * z0[0] + c * z0[1]),
        1.0 / (1.0 + (1.0 / z0[2] - 1.0) * (-p[2] * t).exp()),
    ]
}

/// `max_t max_i |p_N[z_i](t) − z_i(t)|` over `[a, b]`, with `p_N` the interpolant of the exact
/// solution on the grid of `kind` and degree `n`, sampled at 400 points.
fn true_error(kind: Kind, n: usize, a: f64, b: f64, p: &[f64; 3], z0: &[f64; 3]) -> f64 {
    let grid = Grid::new(kind, n, a, b).unwrap();
    let values: Vec<f64> = grid.nodes().iter().flat_map(|&t| exact(p, z0, t)).collect();
    let mut out = [0.0; 3];
    let mut worst = 0.0f64;
    for i in 0..=400 {
        let t = a + (b - a) * i as f64 / 400.0;
        grid.interpolate_into(&values, 3, t, &mut out).unwrap();
        let z = exact(p, z0, t);
        for (o, e) in out.iter().zip(z) {
            worst = worst.max((o - e).abs());
        }
    }
    worst
}

/// The solve's own error: what the estimate cannot see below.
const SOLVE_FLOOR: f64 = 1e-9;

fn check(grid: IrdmGrid, kind: Kind, steps: usize, p: [f64; 3], z0: [f64; 3], t1: f64) {
    let mut config = Config::new(1e-12, 1e-12);
    config.irdm.segments = Segments::EveryKSteps(steps);
    config.irdm.on_under_resolved = OnUnderResolved::Flag;
    let method = Method::Irdm {
        grid,
        norm: BackwardNorm::Full,
    };
    let fwd = forward(
        &mut RotationAndLogistic,
        &p,
        &z0,
        &[0.0, t1],
        method,
        &config,
    )
    .unwrap();
    let info = fwd.info().grid.clone().unwrap();
    assert!(!info.segments.is_empty());
    let mut overall = 0.0f64;
    for (i, s) in info.segments.iter().enumerate() {
        let truth = true_error(kind, s.n, s.t_start, s.t_end, &p, &z0);
        assert!(
            truth <= 10.0 * s.error_estimate + SOLVE_FLOOR,
            "segment {i} {s:?}: true error {truth:e} > 10 × estimate {:e}",
            s.error_estimate
        );
        overall = overall.max(s.error_estimate);
    }
    // The overall estimate is the worst segment's.
    assert_eq!(info.error_estimate, Some(overall));
}

fn params() -> impl Strategy<Value = ([f64; 3], [f64; 3], f64)> {
    (
        (0.0..1.0f64, 0.5..6.0f64, 0.5..4.0f64),
        (-2.0..2.0f64, -2.0..2.0f64, 0.05..0.95f64),
        1.0..10.0f64,
    )
        .prop_map(|((l, w, a), (x, y, z), t1)| ([l, w, a], [x, y, z], t1))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn fixed_grids_bound_their_error(
        (p, z0, t1) in params(),
        n in prop::sample::select(vec![4usize, 6, 8, 12, 16]),
        first_kind in any::<bool>(),
        steps in 1usize..12,
    ) {
        let kind = if first_kind { Kind::First } else { Kind::Lobatto };
        check(IrdmGrid::Fixed { kind, n }, kind, steps, p, z0, t1);
    }

    #[test]
    fn automatic_grids_bound_their_error(
        (p, z0, t1) in params(),
        tol in prop::sample::select(vec![1e-4, 1e-6, 1e-8]),
        steps in 1usize..40,
    ) {
        let grid = IrdmGrid::Auto { n_max: 64, rel_tol: tol, abs_tol: tol };
        check(grid, Kind::Lobatto, steps, p, z0, t1);
    }
}
