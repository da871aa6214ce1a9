//! Every error case returns its error (with time and step size), never a panic.

mod common;

use common::Test2;
use rk::{ErrorNorm, FnRhs, Method, Options, RkError, Solver, solve};

fn run(options: Options<f64>, ts: &[f64], y0: &[f64]) -> Result<rk::Solution<Vec<f64>>, RkError> {
    solve(
        &mut Test2,
        &vec![],
        Method::Dopri5,
        &options,
        ts,
        &y0.to_vec(),
    )
}

#[test]
fn bad_tolerances() {
    for (rtol, atol, name) in [
        (0.0, 1e-6, "rtol"),
        (1e-6, -1.0, "atol"),
        (f64::NAN, 1e-6, "rtol"),
        (1e-6, f64::INFINITY, "atol"),
    ] {
        match run(Options::new(rtol, atol), &[0.0, 1.0], &[1.0, 1.0]) {
            Err(RkError::BadTolerance { name: n, .. }) => assert_eq!(n, name),
            other => panic!("{rtol} {atol}: {other:?}"),
        }
    }
    let per = Options::new(1e-6, 1e-6).with_atol_per_component(vec![1e-6, 0.0]);
    assert!(
        matches!(run(per, &[0.0, 1.0], &[1.0, 1.0]), Err(RkError::BadTolerance { name, .. }) if name == "atol[1]")
    );
    let short = Options::new(1e-6, 1e-6).with_atol_per_component(vec![1e-6]);
    assert!(matches!(
        run(short, &[0.0, 1.0], &[1.0, 1.0]),
        Err(RkError::LengthMismatch {
            what: "per-component atol",
            expected: 2,
            got: 1
        })
    ));
}

#[test]
fn bad_step_options() {
    let o = Options::new(1e-6, 1e-6);
    assert!(matches!(
        run(o.clone().with_first_step(-1.0), &[0.0, 1.0], &[1.0, 1.0]),
        Err(RkError::BadStepOption {
            name: "first_step",
            ..
        })
    ));
    assert!(matches!(
        run(
            o.clone().with_step_bounds(0.5, 0.1),
            &[0.0, 1.0],
            &[1.0, 1.0]
        ),
        Err(RkError::BadStepOption {
            name: "max_step",
            ..
        })
    ));
    assert!(matches!(
        run(
            o.clone().with_step_bounds(f64::NAN, 1.0),
            &[0.0, 1.0],
            &[1.0, 1.0]
        ),
        Err(RkError::BadStepOption {
            name: "min_step",
            ..
        })
    ));
    assert!(matches!(
        run(o.clone().with_max_steps(0), &[0.0, 1.0], &[1.0, 1.0]),
        Err(RkError::BadStepOption {
            name: "max_steps",
            ..
        })
    ));
    let euler = solve(
        &mut Test2,
        &vec![],
        Method::Euler,
        &o,
        &[0.0, 1.0],
        &vec![1.0, 1.0],
    );
    assert!(matches!(
        euler,
        Err(RkError::MissingStepSize { method: "euler" })
    ));
    assert!(matches!(
        run(
            o.clone().with_norm(ErrorNorm::Range(1..3)),
            &[0.0, 1.0],
            &[1.0, 1.0]
        ),
        Err(RkError::LengthMismatch {
            expected: 2,
            got: 3,
            ..
        })
    ));
    assert!(matches!(
        run(
            o.with_norm(ErrorNorm::Groups(vec![])),
            &[0.0, 1.0],
            &[1.0, 1.0]
        ),
        Err(RkError::LengthMismatch { .. })
    ));
}

#[test]
fn bad_times() {
    let o = Options::new(1e-6, 1e-6);
    assert!(matches!(
        run(o.clone(), &[0.0], &[1.0, 1.0]),
        Err(RkError::BadInterval { .. })
    ));
    assert!(matches!(
        run(o.clone(), &[1.0, 1.0], &[1.0, 1.0]),
        Err(RkError::BadInterval { .. })
    ));
    assert!(matches!(
        run(o.clone(), &[f64::NAN, 1.0], &[1.0, 1.0]),
        Err(RkError::BadInterval { .. })
    ));
    assert_eq!(
        run(o.clone(), &[0.0, 0.5, 0.4, 1.0], &[1.0, 1.0]).unwrap_err(),
        RkError::TimesNotMonotone {
            prev_index: 1,
            prev: 0.5,
            index: 2,
            next: 0.4
        }
    );
    assert!(matches!(
        run(o.clone(), &[1.0, 0.5, 0.7, 0.0], &[1.0, 1.0]),
        Err(RkError::TimesNotMonotone { index: 2, .. })
    ));
    assert!(matches!(
        run(o, &[0.0, f64::NAN, 1.0], &[1.0, 1.0]),
        Err(RkError::TimesNotMonotone { index: 1, .. })
    ));
}

#[test]
fn non_finite_state_and_derivative() {
    let o = Options::new(1e-6, 1e-6);
    assert!(matches!(
        run(o.clone(), &[0.0, 1.0], &[f64::NAN, 1.0]),
        Err(RkError::NonFinite {
            what: "initial state",
            ..
        })
    ));
    // A derivative that turns NaN at t > 0.5.
    let mut rhs = FnRhs(|t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| {
        dy[0] = if t > 0.5 { f64::NAN } else { -y[0] };
    });
    match solve(
        &mut rhs,
        &vec![],
        Method::Dopri5,
        &o,
        &[0.0, 1.0],
        &vec![1.0],
    ) {
        Err(RkError::NonFinite { what, t, h }) => {
            assert!(what == "derivative" || what == "state", "{what}");
            assert!(t <= 0.5 && t + h > 0.5, "t = {t}, h = {h}");
        }
        other => panic!("{other:?}"),
    }
    let mut nan0 = FnRhs(|_t: f64, _y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = f64::NAN);
    assert!(matches!(
        solve(
            &mut nan0,
            &vec![],
            Method::Dopri5,
            &o,
            &[0.0, 1.0],
            &vec![1.0]
        ),
        Err(RkError::NonFinite {
            what: "derivative f(t0, y0)",
            ..
        })
    ));
    // Fixed-step methods detect a blow-up too.
    let mut blow = FnRhs(|_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = y[0] * y[0]);
    assert!(matches!(
        solve(
            &mut blow,
            &vec![],
            Method::Euler,
            &Options::fixed(0.5),
            &[0.0, 100.0],
            &vec![10.0]
        ),
        Err(RkError::NonFinite { what: "state", .. })
    ));
}

#[test]
fn step_size_underflow_and_max_steps() {
    // y' = y², y(0) = 1 blows up at t = 1.
    let mut blow = FnRhs(|_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = y[0] * y[0]);
    let o = Options::new(1e-8, 1e-8).with_step_bounds(1e-4, f64::INFINITY);
    match solve(
        &mut blow,
        &vec![],
        Method::Dopri5,
        &o,
        &[0.0, 2.0],
        &vec![1.0],
    ) {
        Err(RkError::StepSizeUnderflow { t, h, error_ratio }) => {
            assert!(t < 1.0 && t > 0.9, "t = {t}");
            assert!(h.abs() <= 1e-4 * (1.0 + 1e-12));
            assert!(error_ratio > 1.0);
        }
        other => panic!("{other:?}"),
    }
    // Without min_step the step shrinks until time cannot advance, or the state overflows.
    let r = solve(
        &mut blow,
        &vec![],
        Method::Dopri5,
        &Options::new(1e-8, 1e-8),
        &[0.0, 2.0],
        &vec![1.0],
    );
    assert!(
        matches!(
            r,
            Err(RkError::StepSizeUnderflow { .. }) | Err(RkError::NonFinite { .. })
        ),
        "{r:?}"
    );
    let o = Options::new(1e-8, 1e-8).with_max_steps(5);
    match run(o, &[0.0, 10.0], &[1.0, 1.0]) {
        Err(RkError::MaxStepsExceeded { max_steps: 5, t, h }) => assert!(t > 0.0 && h > 0.0),
        other => panic!("{other:?}"),
    }
}

/// A failed restart leaves no solve to step: not the old one (its state is overwritten), not a
/// half-started new one.
#[test]
fn a_failed_init_stops_the_running_solve() {
    let y0 = vec![1.0, 1.0];
    for first_step in [None, Some(0.01)] {
        let mut o = Options::new(1e-6, 1e-6);
        o.first_step = first_step;
        let mut s = Solver::new(Method::Dopri5, o, &y0).unwrap();
        s.init(&mut Test2, &vec![], 0.0, 1.0, &y0).unwrap();
        s.step(&mut Test2, &vec![]).unwrap();
        assert!(matches!(
            s.init(&mut Test2, &vec![], 0.0, 1.0, &vec![f64::NAN, 1.0]),
            Err(RkError::NonFinite {
                what: "initial state",
                ..
            })
        ));
        assert!(matches!(
            s.step(&mut Test2, &vec![]),
            Err(RkError::NotRunning(_))
        ));
        s.init(&mut Test2, &vec![], 0.0, 1.0, &y0).unwrap();
        assert!(s.step(&mut Test2, &vec![]).is_ok());
    }
}

/// With the start checks off, a non-finite start with a given first step is still an error,
/// at the first step, for every tableau: never a solve that runs on with NaN.
#[test]
fn an_unchecked_start_still_stops_at_the_first_step() {
    for method in [
        Method::Dopri5,
        Method::Tsit5,
        Method::Bosh3,
        Method::Euler,
        Method::Rk4,
    ] {
        let adaptive = !matches!(method, Method::Euler | Method::Rk4);
        let mut o = if adaptive {
            Options::new(1e-6, 1e-6)
        } else {
            Options::fixed(0.1)
        };
        o.first_step = Some(0.1);
        let y0 = vec![1.0, 1.0];
        let mut s = Solver::new(method, o, &y0).unwrap();
        s.set_start_checked(false);
        for bad in [vec![f64::NAN, 1.0], vec![1.0, f64::INFINITY]] {
            // The init reads nothing back, so it succeeds; the step finds the NaN.
            s.init(&mut Test2, &vec![], 0.0, 1.0, &bad).unwrap();
            match s.step(&mut Test2, &vec![]) {
                Err(RkError::NonFinite { t, .. }) => assert_eq!(t, 0.0, "{method:?}"),
                other => panic!("{method:?}: {other:?}"),
            }
        }
        // A finite start solves as with the checks on.
        s.init(&mut Test2, &vec![], 0.0, 1.0, &y0).unwrap();
        while !s.is_finished() {
            s.step(&mut Test2, &vec![])
                .unwrap_or_else(|e| panic!("{method:?}: {e}"));
        }
    }
}

#[test]
fn misuse_of_the_step_api() {
    let y0 = vec![1.0, 1.0];
    let mut s = Solver::new(Method::Dopri5, Options::new(1e-6, 1e-6), &y0).unwrap();
    assert!(matches!(
        s.step(&mut Test2, &vec![]),
        Err(RkError::NotRunning(_))
    ));
    let mut out = vec![0.0; 2];
    assert!(matches!(
        s.interpolate(0.0, &mut out),
        Err(RkError::NotRunning(_))
    ));
    assert!(matches!(
        s.init(&mut Test2, &vec![], 0.0, 1.0, &vec![1.0]),
        Err(RkError::LengthMismatch {
            what: "initial state",
            ..
        })
    ));
    s.init(&mut Test2, &vec![], 0.0, 1.0, &y0).unwrap();
    let t = s.step(&mut Test2, &vec![]).unwrap();
    assert!(matches!(
        s.interpolate(t * 1.5, &mut out),
        Err(RkError::OutsideInterval { .. })
    ));
    assert!(matches!(
        s.interpolate(-0.1, &mut out),
        Err(RkError::OutsideInterval { .. })
    ));
    assert!(matches!(
        s.interpolate(0.5 * t, &mut vec![0.0; 3]),
        Err(RkError::LengthMismatch { .. })
    ));
    while !s.is_finished() {
        s.step(&mut Test2, &vec![]).unwrap();
    }
    assert!(matches!(
        s.step(&mut Test2, &vec![]),
        Err(RkError::NotRunning(_))
    ));
    let msg = RkError::NonFinite {
        what: "state",
        t: 0.25,
        h: 0.125,
    }
    .to_string();
    assert!(
        msg.contains("t = 0.25") && msg.contains("h = 0.125"),
        "{msg}"
    );
}

/// Controller factors, an rtol below the float type's resolution and an empty state are refused
/// when the solve starts, each naming what is wrong, instead of failing later as a step-size
/// underflow or a non-finite derivative.
#[test]
fn controller_tolerance_floor_and_empty_state() {
    use rk::Controller;
    let integral = |safety, ifactor, dfactor| Controller::Integral {
        safety,
        ifactor,
        dfactor,
    };
    for (controller, name) in [
        (integral(-1.0, 10.0, 0.2), "controller.safety"),
        (integral(0.9, 0.0, 0.2), "controller.ifactor"),
        (integral(0.9, 10.0, 5.0), "controller.dfactor"),
        (
            Controller::Pi {
                safety: f64::NAN,
                ifactor: 10.0,
                dfactor: 0.2,
                beta: 0.04,
            },
            "controller.safety",
        ),
        (
            Controller::Pi {
                safety: 0.9,
                ifactor: 10.0,
                dfactor: 0.2,
                beta: 1.0,
            },
            "controller.beta",
        ),
    ] {
        let options = Options::new(1e-6, 1e-6).with_controller(controller);
        match run(options, &[0.0, 1.0], &[1.0, 1.0]) {
            Err(RkError::BadStepOption { name: n, .. }) => assert_eq!(n, name),
            other => panic!("{controller:?}: {other:?}"),
        }
    }
    // The defaults pass.
    for c in [Controller::TORCHDIFFEQ, Controller::PI] {
        assert!(
            run(
                Options::new(1e-6, 1e-6).with_controller(c),
                &[0.0, 1.0],
                &[1.0, 1.0]
            )
            .is_ok()
        );
    }
    // f64 resolves 1e-15 but not 1e-300; f32 resolves 1e-8 but not 1e-12.
    assert!(run(Options::new(1e-15, 1e-15), &[0.0, 1.0], &[1.0, 1.0]).is_ok());
    let err = run(Options::new(1e-300, 1e-6), &[0.0, 1.0], &[1.0, 1.0]).unwrap_err();
    assert!(
        matches!(err, RkError::UnresolvableTolerance { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("float type"), "{err}");
    let f32_solve = |rtol: f32| {
        let mut f = FnRhs(|_t: f32, y: &[f32], _p: &[f32], dy: &mut [f32]| dy[0] = -y[0]);
        solve(
            &mut f,
            &vec![],
            Method::Dopri5,
            &Options::new(rtol, 1e-6),
            &[0.0, 1.0],
            &vec![1.0f32],
        )
    };
    assert!(f32_solve(1e-8).is_ok());
    assert!(matches!(
        f32_solve(1e-12),
        Err(RkError::UnresolvableTolerance { .. })
    ));
    // An empty state, adaptive or fixed-step.
    for options in [Options::new(1e-6, 1e-6), Options::fixed(0.1)] {
        let mut f = FnRhs(|_t: f64, _y: &[f64], _p: &[f64], _dy: &mut [f64]| {});
        let err = solve(&mut f, &vec![], Method::Rk4, &options, &[0.0, 1.0], &vec![]);
        assert!(matches!(err, Err(RkError::EmptyState)), "{err:?}");
    }
}
