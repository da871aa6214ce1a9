//! The paper's "dynamical system that collapses to zero": `dz/dt = A z` with strongly
//! contracting `A`. Reverse-time integration of `z` (RDM) runs an expanding system and needs far
//! more backward evaluations than IRDM, which interpolates `z`, to reach the same gradient
//! accuracy.

mod common;

use adjoint::{BackwardNorm, Config, Method, forward};
use common::{Linear, linear_exact_gradient, rel_err};

const N: usize = 3;
const A: [f64; 9] = [-1.0, 0.5, 0.0, -0.5, -6.0, 0.5, 0.0, -0.5, -12.0];
const Z0: [f64; 3] = [1.0, 1.0, 1.0];
const T: f64 = 2.0;

/// (relative error of dL/dA, backward evaluations) at one tolerance.
fn run(method: Method, tol: f64) -> (f64, usize) {
    let w = vec![1.0, 1.0, 1.0];
    let fwd = forward(
        &mut Linear { n: N },
        &A,
        &Z0,
        &[0.0, T],
        method,
        &Config::new(tol, tol),
    )
    .unwrap();
    let g = fwd
        .backward(&mut Linear { n: N }, &A, &[vec![0.0; N], w.clone()])
        .unwrap();
    let (_, da) = linear_exact_gradient(&A, N, &Z0, &[(T, w)]);
    (rel_err(&g.dtheta, &da), g.info.vjp_backward)
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
