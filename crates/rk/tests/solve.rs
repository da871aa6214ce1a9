//! Adaptive solves: the torchdiffeq spiral snapshot, accuracy against analytic solutions,
//! reverse time, dense outputs without extra evaluations, the interval never left, seminorms and
//! per-component tolerances, the PI controller, and f32.

mod common;

use common::{Spiral, Test2, max_diff, test2_exact};
use rk::{Controller, ErrorNorm, FnRhs, Method, Options, Rhs, Solver, solve};

/// torchdiffeq 0.2.5's `ode_demo` spiral in f64 (rtol 1e-7, atol 1e-9, 1000 output times):
/// measured here with torchdiffeq 0.2.5 and torch 2 on CPU, 2450 evaluations and
/// `y(25) = [-0.44362288065720373, 0.2794428693066235]`. The point
/// `[-0.443623487, 0.279440642]` quoted in the issue is the exact solution (a solve at
/// rtol 1e-12 reproduces it to 9 digits), about 2e-6 away from what dopri5 at rtol 1e-7 gives.
/// Our dopri5 uses torchdiffeq's error weights, controller and initial step and takes exactly
/// the same steps. The counts are pinned as a snapshot: a change in them must be noticed.
#[test]
fn spiral_matches_torchdiffeq() {
    let ts: Vec<f64> = (0..1000).map(|i| 25.0 * i as f64 / 999.0).collect();
    let options = Options::new(1e-7, 1e-9);
    let sol = solve(
        &mut Spiral,
        &vec![],
        Method::Dopri5,
        &options,
        &ts,
        &vec![2.0, 0.0],
    )
    .unwrap();
    assert_eq!(
        (sol.stats.nfe, sol.stats.accepted, sol.stats.rejected),
        (2450, 329, 79),
        "snapshot of (nfe, accepted, rejected)"
    );
    assert!(sol.stats.nfe as f64 <= 2450.0 * 1.1);
    let torchdiffeq = [-0.44362288065720373, 0.2794428693066235];
    assert!(
        max_diff(&sol.ys[999], &torchdiffeq) < 1e-8,
        "{:?}",
        sol.ys[999]
    );
    let exact = [-0.443623487, 0.279440642];
    let tight = solve(
        &mut Spiral,
        &vec![],
        Method::Dopri5,
        &Options::new(1e-12, 1e-14),
        &[0.0, 25.0],
        &vec![2.0, 0.0],
    )
    .unwrap();
    assert!(max_diff(&tight.ys[1], &exact) < 1e-9);
    assert!(max_diff(&sol.ys[999], &exact) < 5e-6);
}

#[test]
fn adaptive_solves_reach_the_requested_accuracy() {
    for m in [Method::Dopri5, Method::Tsit5, Method::Bosh3] {
        for tol in [1e-4, 1e-6, 1e-8, 1e-10] {
            if m == Method::Bosh3 && tol < 1e-8 {
                continue; // third order at 1e-10 takes ~1e5 steps: not a unit test
            }
            for controller in [Controller::TORCHDIFFEQ, Controller::PI] {
                let options = Options::new(tol, tol).with_controller(controller);
                let ts = [0.0, 1.0, 2.5, 4.0];
                let sol = solve(&mut Test2, &vec![], m, &options, &ts, &vec![1.0, 1.0]).unwrap();
                for (t, y) in ts.iter().zip(&sol.ys) {
                    let err = max_diff(y, &test2_exact(*t));
                    assert!(
                        err <= 10.0 * tol * 4.0,
                        "{m:?} {controller:?} tol {tol}: error {err:e} at t = {t}"
                    );
                }
            }
        }
    }
}

#[test]
fn reverse_time_agrees_with_forward_time() {
    let forward = solve(
        &mut Test2,
        &vec![],
        Method::Dopri5,
        &Options::new(1e-10, 1e-12),
        &[0.0, 3.0],
        &vec![1.0, 1.0],
    )
    .unwrap();
    let back = solve(
        &mut Test2,
        &vec![],
        Method::Dopri5,
        &Options::new(1e-10, 1e-12),
        &[3.0, 1.5, 0.0],
        &forward.ys[1],
    )
    .unwrap();
    assert!(max_diff(&back.ys[2], &[1.0, 1.0]) < 1e-8);
    assert!(max_diff(&back.ys[1], &test2_exact(1.5)) < 1e-8);
    // Fixed-step reverse solves also take exactly n steps.
    let sol = solve(
        &mut Test2,
        &vec![],
        Method::Rk4,
        &Options::fixed(0.01),
        &[3.0, 0.0],
        &test2_exact(3.0),
    )
    .unwrap();
    assert_eq!(sol.stats.accepted, 300);
    assert!(max_diff(&sol.ys[1], &[1.0, 1.0]) < 1e-8);
}

/// Records every time the right-hand side is evaluated at.
struct Recorder(Vec<f64>);

impl Rhs<Vec<f64>> for Recorder {
    fn eval(&mut self, t: f64, y: &Vec<f64>, p: &Vec<f64>, dy: &mut Vec<f64>) {
        self.0.push(t);
        Test2.eval(t, y, p, dy);
    }
}

#[test]
fn outputs_cost_no_evaluations_and_the_interval_is_never_left() {
    for m in Method::ALL {
        for (t0, t1) in [(0.0, 1.7), (1.7, 0.0), (0.1, 0.1 + 1e-3)] {
            let options = if m.is_adaptive() {
                Options::new(1e-6, 1e-8)
            } else {
                Options::fixed(0.013)
            };
            let y0 = test2_exact(t0);
            let mut few = Recorder(vec![]);
            let a = solve(&mut few, &vec![], m, &options, &[t0, t1], &y0).unwrap();
            let many_ts: Vec<f64> = (0..=500)
                .map(|i| t0 + (t1 - t0) * i as f64 / 500.0)
                .collect();
            let mut many = Recorder(vec![]);
            let b = solve(&mut many, &vec![], m, &options, &many_ts, &y0).unwrap();
            assert_eq!(a.stats, b.stats, "{m:?}: outputs must not change the solve");
            assert_eq!(few.0.len(), a.stats.nfe);
            let (lo, hi) = (t0.min(t1), t0.max(t1));
            assert!(
                many.0.iter().all(|&t| lo <= t && t <= hi),
                "{m:?}: evaluated outside [{lo}, {hi}]"
            );
            assert_eq!(
                b.ys[500], a.ys[1],
                "{m:?}: the end point is the last step's state"
            );
            for (t, y) in many_ts.iter().zip(&b.ys) {
                let tol = if m.is_adaptive() { 1e-4 } else { 0.1 };
                assert!(max_diff(y, &test2_exact(*t)) < tol, "{m:?} at {t}");
            }
        }
    }
}

#[test]
fn torchdiffeq_step_count_formula_holds() {
    // FSAL: 1 evaluation at t0, 1 for the initial step, then (stages − 1) per attempt.
    let sol = solve(
        &mut Test2,
        &vec![],
        Method::Dopri5,
        &Options::new(1e-6, 1e-8),
        &[0.0, 5.0],
        &vec![1.0, 1.0],
    )
    .unwrap();
    let s = sol.stats;
    assert_eq!(s.nfe, 2 + 6 * (s.accepted + s.rejected));
    assert_eq!(s.stored_floats, (7 + 4) * 2);
    // With a given first step the heuristic's evaluation is saved.
    let opts = Options::new(1e-6, 1e-8).with_first_step(1e-3);
    let s = solve(
        &mut Test2,
        &vec![],
        Method::Dopri5,
        &opts,
        &[0.0, 5.0],
        &vec![1.0, 1.0],
    )
    .unwrap()
    .stats;
    assert_eq!(s.nfe, 1 + 6 * (s.accepted + s.rejected));
    // Fixed step RK4: 4 per step.
    let s = solve(
        &mut Test2,
        &vec![],
        Method::Rk4,
        &Options::fixed(0.1),
        &[0.0, 1.0],
        &vec![1.0, 1.0],
    )
    .unwrap()
    .stats;
    assert_eq!((s.nfe, s.accepted), (40, 10));
}

#[test]
fn seminorm_ignores_uncontrolled_components() {
    // Component 2 is a fast, rough quadrature-like variable: controlling only component 1 takes
    // fewer steps, and component 1 keeps its accuracy.
    let mut rhs = FnRhs(|t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| {
        dy[0] = -y[0];
        dy[1] = (40.0 * t).sin() * y[0];
    });
    let full = Options::new(1e-8, 1e-10);
    let semi = full.clone().with_norm(ErrorNorm::Range(0..1));
    let a = solve(
        &mut rhs,
        &vec![],
        Method::Dopri5,
        &full,
        &[0.0, 2.0],
        &vec![1.0, 0.0],
    )
    .unwrap();
    let b = solve(
        &mut rhs,
        &vec![],
        Method::Dopri5,
        &semi,
        &[0.0, 2.0],
        &vec![1.0, 0.0],
    )
    .unwrap();
    assert!(
        b.stats.nfe < a.stats.nfe,
        "seminorm {} vs full {}",
        b.stats.nfe,
        a.stats.nfe
    );
    assert!((b.ys[1][0] - (-2.0f64).exp()).abs() < 1e-8);
    // Groups: the max of per-group norms is at least as strict as either group alone.
    let groups = full.clone().with_norm(ErrorNorm::Groups(vec![0..1, 1..2]));
    let c = solve(
        &mut rhs,
        &vec![],
        Method::Dopri5,
        &groups,
        &[0.0, 2.0],
        &vec![1.0, 0.0],
    )
    .unwrap();
    assert!(c.stats.nfe >= b.stats.nfe);
}

#[test]
fn per_component_atol_is_used() {
    let loose = Options::new(1e-3, 1.0).with_atol_per_component(vec![1e-12, 1e-12]);
    let scalar = Options::new(1e-3, 1e-12);
    let a = solve(
        &mut Test2,
        &vec![],
        Method::Dopri5,
        &loose,
        &[0.0, 2.0],
        &vec![1.0, 1.0],
    )
    .unwrap();
    let b = solve(
        &mut Test2,
        &vec![],
        Method::Dopri5,
        &scalar,
        &[0.0, 2.0],
        &vec![1.0, 1.0],
    )
    .unwrap();
    assert_eq!(
        (a.stats.nfe, a.stats.accepted),
        (b.stats.nfe, b.stats.accepted)
    );
    assert_eq!(a.stats.stored_floats, b.stats.stored_floats + 2);
    let mixed = Options::new(1e-10, 1.0).with_atol_per_component(vec![1e-12, 1e6]);
    let c = solve(
        &mut Test2,
        &vec![],
        Method::Dopri5,
        &mixed,
        &[0.0, 2.0],
        &vec![1.0, 1.0],
    )
    .unwrap();
    assert!((c.ys[1][0] - 2.0f64.sin().exp()).abs() < 1e-8);
}

#[test]
fn f32_solves_work() {
    let mut rhs = FnRhs(|_t: f32, y: &[f32], p: &[f32], dy: &mut [f32]| {
        dy[0] = p[0] * y[1];
        dy[1] = -p[0] * y[0];
    });
    let sol = solve(
        &mut rhs,
        &vec![2.0f32],
        Method::Tsit5,
        &Options::new(1e-5, 1e-6),
        &[0.0, 1.0],
        &vec![0.0f32, 1.0],
    )
    .unwrap();
    assert!((sol.ys[1][0] - 2.0f32.sin()).abs() < 1e-4);
}

#[test]
fn step_by_step_api_records_as_it_goes() {
    let y0 = vec![1.0, 1.0];
    let mut s = Solver::new(Method::Dopri5, Options::new(1e-8, 1e-10), &y0).unwrap();
    s.init(&mut Test2, &vec![], 0.0, 2.0, &y0).unwrap();
    let mut last = 0.0;
    let mut out = vec![0.0; 2];
    while !s.is_finished() {
        let t = s.step(&mut Test2, &vec![]).unwrap();
        assert!(t > last);
        let (a, b) = s.last_step();
        assert_eq!((a, b), (last, t));
        s.interpolate(0.5 * (a + b), &mut out).unwrap();
        assert!(max_diff(&out, &test2_exact(0.5 * (a + b))) < 1e-7);
        last = t;
    }
    assert_eq!(last, 2.0);
}
