//! The one-call API against the two-step one and against central differences, with a
//! right-hand side given as closures; a non-finite loss is an error.

use adjoint::toy::Spiral;
use adjoint::{
    AdjointError, BackwardNorm, Config, FnVjp, GradientOptions, Method, forward, gradient,
};

/// `dz/dt = A z` with `θ = A` (2 × 2, row-major) as two closures.
fn linear() -> impl adjoint::Vjp<f64> {
    FnVjp {
        f: |_t: f64, z: &[f64], a: &[f64], dz: &mut [f64]| {
            dz[0] = a[0] * z[0] + a[1] * z[1];
            dz[1] = a[2] * z[0] + a[3] * z[1];
        },
        vjp: |_t: f64, z: &[f64], a: &[f64], w: &[f64], adj_z: &mut [f64], adj_p: &mut [f64]| {
            adj_z[0] = a[0] * w[0] + a[2] * w[1];
            adj_z[1] = a[1] * w[0] + a[3] * w[1];
            adj_p.copy_from_slice(&[w[0] * z[0], w[0] * z[1], w[1] * z[0], w[1] * z[1]]);
        },
        state_len: 2,
        param_len: 4,
    }
}

/// `L = Σ_k ‖z(s_k)‖²` over every output.
fn sum_of_squares(zs: &[Vec<f64>]) -> (f64, Vec<Vec<f64>>) {
    let l = zs.iter().flatten().map(|x| x * x).sum();
    (
        l,
        zs.iter()
            .map(|z| z.iter().map(|x| 2.0 * x).collect())
            .collect(),
    )
}

#[test]
fn closures_match_central_differences() {
    let a = [-0.3, 1.1, -0.9, -0.2];
    let z0 = [1.0, 0.5];
    let ts = [0.0, 0.5, 1.0, 2.0];
    let options = GradientOptions::new(1e-11, 1e-11);
    let g = gradient(&mut linear(), &a, &z0, &ts, sum_of_squares, &options).unwrap();
    assert_eq!(g.info.method, "irdm");
    assert!(g.info.grid.is_some() && g.outputs.len() == ts.len());
    let loss = |a: &[f64], z0: &[f64]| {
        gradient(&mut linear(), a, z0, &ts, sum_of_squares, &options)
            .unwrap()
            .loss
    };
    let h = 1e-5;
    for k in 0..4 {
        let (mut up, mut down) = (a, a);
        up[k] += h;
        down[k] -= h;
        let fd = (loss(&up, &z0) - loss(&down, &z0)) / (2.0 * h);
        assert!(
            (fd - g.dtheta[k]).abs() <= 1e-6 * fd.abs().max(1.0),
            "θ[{k}]: {fd} vs {}",
            g.dtheta[k]
        );
    }
    for i in 0..2 {
        let (mut up, mut down) = (z0, z0);
        up[i] += h;
        down[i] -= h;
        let fd = (loss(&a, &up) - loss(&a, &down)) / (2.0 * h);
        assert!(
            (fd - g.dz0[i]).abs() <= 1e-6 * fd.abs().max(1.0),
            "z0[{i}]: {fd} vs {}",
            g.dz0[i]
        );
    }
}

#[test]
fn one_call_equals_forward_then_backward() {
    let ts: Vec<f64> = (0..=10).map(|i| i as f64).collect();
    let method = Method::Rdm {
        norm: BackwardNorm::Full,
    };
    let options = GradientOptions::new(1e-8, 1e-8).with_method(method);
    let g = gradient(
        &mut Spiral,
        &Spiral::A,
        &Spiral::Y0,
        &ts,
        sum_of_squares,
        &options,
    )
    .unwrap();
    let fwd = forward(
        &mut Spiral,
        &Spiral::A,
        &Spiral::Y0,
        &ts,
        method,
        &Config::new(1e-8, 1e-8),
    )
    .unwrap();
    let (l, cot) = sum_of_squares(fwd.outputs());
    let two_step = fwd.backward(&mut Spiral, &Spiral::A, &cot).unwrap();
    assert_eq!(
        (g.loss, &g.dz0, &g.dtheta),
        (l, &two_step.dz0, &two_step.dtheta)
    );
    assert_eq!(g.info.method, "rdm");
}

#[test]
fn a_non_finite_loss_is_an_error() {
    let err = gradient(
        &mut linear(),
        &[0.0; 4],
        &[1.0, 1.0],
        &[0.0, 1.0],
        |zs: &[Vec<f64>]| (f64::NAN, vec![vec![0.0; 2]; zs.len()]),
        &GradientOptions::new(1e-6, 1e-6),
    )
    .unwrap_err();
    assert!(matches!(err, AdjointError::NonFiniteLoss { .. }), "{err:?}");
    assert!(err.to_string().contains("not finite"), "{err}");
}

/// Bad input through the one-call API: a typed error for each, never a panic.
#[test]
fn bad_input_is_a_typed_error() {
    let ok_loss = |zs: &[Vec<f64>]| (0.0, vec![vec![0.0; 2]; zs.len()]);
    let opts = GradientOptions::new(1e-6, 1e-6);
    let run = |theta: &[f64], z0: &[f64], ts: &[f64]| {
        gradient(&mut linear(), theta, z0, ts, ok_loss, &opts).unwrap_err()
    };
    // Mismatched lengths.
    let e = run(&[0.0; 3], &[1.0, 1.0], &[0.0, 1.0]);
    assert!(
        matches!(
            e,
            AdjointError::LengthMismatch {
                what: "parameters θ",
                expected: 4,
                got: 3
            }
        ),
        "{e:?}"
    );
    let e = run(&[0.0; 4], &[1.0, 1.0, 1.0], &[0.0, 1.0]);
    assert!(
        matches!(
            e,
            AdjointError::LengthMismatch {
                what: "initial state z0",
                ..
            }
        ),
        "{e:?}"
    );
    // NaN in z0.
    let e = run(&[0.0; 4], &[f64::NAN, 1.0], &[0.0, 1.0]);
    assert!(matches!(e, AdjointError::Solve { .. }), "{e:?}");
    assert!(e.to_string().to_lowercase().contains("finite"), "{e}");
    // t0 == t1, and a single time.
    let e = run(&[0.0; 4], &[1.0, 1.0], &[0.5, 0.5]);
    assert!(matches!(e, AdjointError::Solve { .. }), "{e:?}");
    let e = run(&[0.0; 4], &[1.0, 1.0], &[0.5]);
    assert!(matches!(e, AdjointError::Solve { .. }), "{e:?}");
    // An empty state.
    let mut empty = FnVjp {
        f: |_t: f64, _z: &[f64], _p: &[f64], _dz: &mut [f64]| {},
        vjp: |_t: f64, _z: &[f64], _p: &[f64], _a: &[f64], _az: &mut [f64], _ap: &mut [f64]| {},
        state_len: 0,
        param_len: 0,
    };
    let e = gradient(
        &mut empty,
        &[],
        &[],
        &[0.0, 1.0],
        |_zs: &[Vec<f64>]| (0.0, vec![vec![]; 2]),
        &opts,
    )
    .unwrap_err();
    assert!(matches!(e, AdjointError::Solve { .. }), "{e:?}");
    assert!(e.to_string().contains("empty"), "{e}");
    // A loss whose cotangents have the wrong shape.
    let e = gradient(
        &mut linear(),
        &[0.0; 4],
        &[1.0, 1.0],
        &[0.0, 1.0],
        |_zs: &[Vec<f64>]| (0.0, vec![vec![0.0; 2]]),
        &opts,
    )
    .unwrap_err();
    assert!(matches!(e, AdjointError::LengthMismatch { .. }), "{e:?}");
}
