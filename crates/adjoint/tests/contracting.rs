//! The paper's "dynamical system that collapses to zero": `dz/dt = A z` with strongly
//! contracting `A`. Reverse-time integration of `z` (RDM) runs an expanding system and needs far
//! more backward evaluations than IRDM, which interpolates `z`, to reach the same gradient
//! accuracy.

mod common;

use adjoint::{BackwardNorm, Config, Method, OnUnderResolved, forward};
use common::{Linear, linear_exact_gradient, rel_err};

const N: usize = 3;
const A: [f64; 9] = [-1.0, 0.5, 0.0, -0.5, -6.0, 0.5, 0.0, -0.5, -12.0];
const Z0: [f64; 3] = [1.0, 1.0, 1.0];
const T: f64 = 2.0;

/// (relative error of dL/dA, backward evaluations) at one tolerance.
/// RDM's reconstruction check is set to flag, not refuse, so that its error can be measured.
fn run(method: Method, tol: f64) -> (f64, usize) {
    let (err, evals, _) = run_with_check(method, tol);
    (err, evals)
}

/// `run`, and RDM's reconstruction discrepancy and flag.
fn run_with_check(method: Method, tol: f64) -> (f64, usize, Option<(f64, bool)>) {
    let w = vec![1.0, 1.0, 1.0];
    let mut config = Config::new(tol, tol);
    config.rdm_check.on_exceed = OnUnderResolved::Flag;
    let fwd = forward(&mut Linear { n: N }, &A, &Z0, &[0.0, T], method, &config).unwrap();
    let g = fwd
        .backward(&mut Linear { n: N }, &A, &[vec![0.0; N], w.clone()])
        .unwrap();
    let (_, da) = linear_exact_gradient(&A, N, &Z0, &[(T, w)]);
    let check = g.info.rdm_discrepancy.map(|d| (d, g.info.rdm_flagged));
    (rel_err(&g.dtheta, &da), g.info.vjp_backward, check)
}

/// Fewest backward evaluations over a tolerance sweep that reach `target`.
fn cost_to_reach(method: Method, target: f64) -> usize {
    let mut best = usize::MAX;
    for e in 3..=12 {
        let (err, evals) = run(method, 10f64.powi(-e));
        if err <= target {
            best = best.min(evals);
        }
    }
    best
}

#[test]
fn irdm_needs_several_times_fewer_backward_evaluations_than_rdm() {
    for norm in [BackwardNorm::Full, BackwardNorm::Seminorm] {
        for target in [1e-3, 1e-5] {
            let rdm = cost_to_reach(Method::Rdm { norm }, target);
            let irdm = cost_to_reach(Method::irdm_lobatto(32, norm), target);
            assert!(irdm < usize::MAX, "IRDM never reached {target}");
            let ratio = rdm as f64 / irdm as f64;
            println!(
                "{norm:?} target {target:e}: RDM {rdm} vs IRDM {irdm} backward evaluations, ratio {ratio:.2}"
            );
            assert!(ratio >= 3.0, "{norm:?} {target}: RDM {rdm}, IRDM {irdm}");
        }
    }
}

/// RDM's reconstruction check sees what the gradient error says: across the sweep, every
/// gradient off by more than 10 % is flagged.
#[test]
fn rdm_flags_the_reconstructions_that_ruin_its_gradient() {
    for e in 3..=12 {
        let tol = 10f64.powi(-e);
        let (err, _, check) = run_with_check(
            Method::Rdm {
                norm: BackwardNorm::Full,
            },
            tol,
        );
        let (d, flagged) = check.expect("RDM reports its discrepancy");
        println!("tol {tol:e}: gradient error {err:e}, discrepancy {d:e}, flagged {flagged}");
        if err > 0.1 {
            assert!(
                flagged,
                "tol {tol:e}: error {err:e} not flagged (discrepancy {d:e})"
            );
        }
        // Here the discrepancy bounds the gradient's error.
        assert!(
            err <= d,
            "tol {tol:e}: error {err:e} above discrepancy {d:e}"
        );
        let (_, _, none) = run_with_check(Method::irdm_lobatto(32, BackwardNorm::Full), tol);
        assert!(none.is_none());
    }
}

/// By default a ruined RDM gradient is an error naming the time and the discrepancy.
#[test]
fn a_ruined_rdm_gradient_is_an_error_by_default() {
    let method = Method::Rdm {
        norm: BackwardNorm::Full,
    };
    let fwd = forward(
        &mut Linear { n: N },
        &A,
        &Z0,
        &[0.0, 1.0, T],
        method,
        &Config::new(1e-3, 1e-3),
    )
    .unwrap();
    let err = fwd
        .backward(
            &mut Linear { n: N },
            &A,
            &[vec![0.0; N], vec![0.0; N], vec![1.0; N]],
        )
        .unwrap_err();
    match &err {
        adjoint::AdjointError::Reconstruction {
            method: "rdm",
            discrepancy,
            limit,
            ..
        } => assert!(discrepancy > limit, "{err}"),
        other => panic!("expected a reconstruction error, got {other:?}"),
    }
    assert!(err.to_string().contains("drifted"), "{err}");
    // Turned off, the check neither refuses nor reports.
    let mut off = Config::new(1e-3, 1e-3);
    off.rdm_check.max_discrepancy = f64::INFINITY;
    let fwd = forward(&mut Linear { n: N }, &A, &Z0, &[0.0, T], method, &off).unwrap();
    let g = fwd
        .backward(&mut Linear { n: N }, &A, &[vec![0.0; N], vec![1.0; N]])
        .unwrap();
    assert_eq!((g.info.rdm_discrepancy, g.info.rdm_flagged), (None, false));
}
