//! `dz/dt = A z`: every method against the closed-form gradient (matrix exponential and its
//! Fréchet derivative), with an interior output time, at falling tolerances.

mod common;

use adjoint::{Config, forward};
use common::{Linear, all_methods, linear_exact_gradient, rel_err};

const N: usize = 3;
const A: [f64; 9] = [-0.5, 1.2, 0.0, -1.0, -0.3, 0.4, 0.2, -0.6, -0.8];
const Z0: [f64; 3] = [1.0, -0.5, 2.0];

fn weights() -> Vec<(f64, Vec<f64>)> {
    vec![(0.6, vec![0.3, -1.0, 0.5]), (1.3, vec![1.0, 0.25, -0.7])]
}

fn gradient_errors(method: adjoint::Method, tol: f64) -> (f64, f64) {
    let ts = [0.0, 0.6, 1.3];
    let fwd = forward(
        &mut Linear { n: N },
        &A,
        &Z0,
        &ts,
        method,
        &Config::new(tol, tol),
    )
    .unwrap();
    let w = weights();
    let cot = vec![vec![0.0; N], w[0].1.clone(), w[1].1.clone()];
    let g = fwd.backward(&mut Linear { n: N }, &A, &cot).unwrap();
    let (dz0, da) = linear_exact_gradient(&A, N, &Z0, &w);
    (rel_err(&g.dz0, &dz0), rel_err(&g.dtheta, &da))
}

#[test]
fn every_method_matches_the_closed_form() {
    for (label, method) in all_methods() {
        let errs: Vec<(f64, f64)> = [1e-4, 1e-7, 1e-10]
            .iter()
            .map(|&tol| gradient_errors(method, tol))
            .collect();
        let (ez, ea) = errs[2];
        assert!(
            ez <= 1e-7 && ea <= 1e-7,
            "{label}: at 1e-10 errors {ez:e}, {ea:e}"
        );
        // The error shrinks with the tolerance.
        assert!(
            errs[0].1 > errs[1].1 && errs[1].1 > errs[2].1,
            "{label}: {errs:?}"
        );
        assert!(errs[0].0 > errs[2].0, "{label}: {errs:?}");
    }
}

#[test]
fn closed_form_matches_central_differences() {
    // The reference itself, checked against central differences of L(A) = Σ w_kᵀ e^{A s_k} z0.
    let w = weights();
    let loss = |a: &[f64]| -> f64 {
        w.iter()
            .map(|(s, wk)| {
                let e = common::expm(&a.iter().map(|x| x * s).collect::<Vec<_>>(), N);
                (0..N)
                    .map(|i| wk[i] * (0..N).map(|j| e[i * N + j] * Z0[j]).sum::<f64>())
                    .sum::<f64>()
            })
            .sum()
    };
    let (_, da) = linear_exact_gradient(&A, N, &Z0, &w);
    let eps = 1e-5;
    for k in 0..9 {
        let (mut p, mut m) = (A.to_vec(), A.to_vec());
        p[k] += eps;
        m[k] -= eps;
        let fd = (loss(&p) - loss(&m)) / (2.0 * eps);
        assert!((fd - da[k]).abs() < 1e-8, "A[{k}]: {fd} vs {}", da[k]);
    }
}
