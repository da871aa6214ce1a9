//! Bad input gets an error naming what is wrong, never a panic.

mod common;

use adjoint::{AdjointError, BackwardNorm, Checkpoints, Config, IrdmGrid, Method, forward};
use common::Linear;

const A: [f64; 4] = [-1.0, 0.5, -0.5, -1.0];

fn fwd(method: Method) -> Result<adjoint::Forward<f64>, AdjointError> {
    forward(
        &mut Linear { n: 2 },
        &A,
        &[1.0, 0.0],
        &[0.0, 1.0],
        method,
        &Config::new(1e-6, 1e-6),
    )
}

#[test]
fn shapes_and_settings() {
    let bad_params = forward(
        &mut Linear { n: 2 },
        &A[..3],
        &[1.0, 0.0],
        &[0.0, 1.0],
        Method::Direct,
        &Config::new(1e-6, 1e-6),
    );
    assert!(matches!(
        bad_params,
        Err(AdjointError::LengthMismatch {
            what: "parameters θ",
            expected: 4,
            got: 3
        })
    ));
    let bad_z0 = forward(
        &mut Linear { n: 2 },
        &A,
        &[1.0],
        &[0.0, 1.0],
        Method::Direct,
        &Config::new(1e-6, 1e-6),
    );
    assert!(matches!(
        bad_z0,
        Err(AdjointError::LengthMismatch {
            what: "initial state z0",
            ..
        })
    ));
    assert!(matches!(
        fwd(Method::Irdm {
            grid: IrdmGrid::Fixed {
                kind: cheb::Kind::Lobatto,
                n: 0
            },
            norm: BackwardNorm::Full
        }),
        Err(AdjointError::BadSetting { name: "IRDM N", .. })
    ));
    assert!(matches!(
        fwd(Method::Irdm {
            grid: IrdmGrid::Auto {
                n_max: 12,
                rel_tol: 1e-6,
                abs_tol: 0.0
            },
            norm: BackwardNorm::Full
        }),
        Err(AdjointError::BadSetting {
            name: "IRDM n_max",
            ..
        })
    ));
    // An absurd cap is refused up front, not spent on (its transform alone would be
    // (2n_max)² numbers).
    assert!(matches!(
        fwd(Method::Irdm {
            grid: IrdmGrid::Auto {
                n_max: 2 * adjoint::MAX_AUTO_DEGREE,
                rel_tol: 1e-6,
                abs_tol: 1e-6
            },
            norm: BackwardNorm::Full
        }),
        Err(AdjointError::BadSetting {
            name: "IRDM n_max",
            ..
        })
    ));
    assert!(matches!(
        fwd(Method::Irdm {
            grid: IrdmGrid::Auto {
                n_max: 16,
                rel_tol: -1.0,
                abs_tol: 0.0
            },
            norm: BackwardNorm::Full
        }),
        Err(AdjointError::BadSetting {
            name: "IRDM chop tolerance",
            ..
        })
    ));
    assert!(matches!(
        fwd(Method::Anode {
            checkpoints: Checkpoints::EveryKSteps(0)
        }),
        Err(AdjointError::BadSetting { .. })
    ));
    assert!(matches!(
        fwd(Method::Anode {
            checkpoints: Checkpoints::Count(1)
        }),
        Err(AdjointError::BadSetting { .. })
    ));
    let bad_times = forward(
        &mut Linear { n: 2 },
        &A,
        &[1.0, 0.0],
        &[0.0, 1.0, 0.5],
        Method::Direct,
        &Config::new(1e-6, 1e-6),
    );
    assert!(matches!(
        bad_times,
        Err(AdjointError::Solve {
            method: "direct",
            pass: "forward",
            ..
        })
    ));
}

#[test]
fn cotangents() {
    for (_, method) in common::all_methods() {
        let f = fwd(method).unwrap();
        let wrong_count = f.backward(&mut Linear { n: 2 }, &A, &[vec![1.0, 0.0]]);
        assert!(matches!(
            wrong_count,
            Err(AdjointError::LengthMismatch {
                expected: 2,
                got: 1,
                ..
            })
        ));
        let wrong_len = f.backward(&mut Linear { n: 2 }, &A, &[vec![0.0, 0.0], vec![1.0]]);
        assert!(matches!(
            wrong_len,
            Err(AdjointError::LengthMismatch {
                what: "cotangent",
                ..
            })
        ));
        let nan = f.backward(
            &mut Linear { n: 2 },
            &A,
            &[vec![0.0, 0.0], vec![f64::NAN, 1.0]],
        );
        assert_eq!(
            nan.unwrap_err(),
            AdjointError::NonFiniteCotangent { index: 1, t: 1.0 }
        );
        let params = f.backward(
            &mut Linear { n: 2 },
            &A[..2],
            &[vec![0.0, 0.0], vec![1.0, 1.0]],
        );
        assert!(matches!(
            params,
            Err(AdjointError::LengthMismatch {
                what: "parameters θ",
                ..
            })
        ));
    }
}

#[test]
fn solver_failures_name_the_method_and_pass() {
    // A forward solve that cannot finish in 3 steps.
    let mut config = Config::new(1e-10, 1e-10);
    config.forward = config.forward.with_max_steps(3);
    let r = forward(
        &mut Linear { n: 2 },
        &A,
        &[1.0, 0.0],
        &[0.0, 5.0],
        Method::Rdm {
            norm: BackwardNorm::Full,
        },
        &config,
    );
    match r {
        Err(
            e @ AdjointError::Solve {
                method: "rdm",
                pass: "forward",
                ..
            },
        ) => {
            assert!(e.to_string().contains("max_steps"), "{e}");
        }
        Err(other) => panic!("unexpected error {other:?}"),
        Ok(_) => panic!("expected a failure"),
    }
    // A backward solve that cannot finish: the forward has room, the backward inherits
    // max_steps and, at a far tighter tolerance, needs more.
    let mut config = Config::new(1e-8, 1e-8);
    config.forward = config.forward.with_max_steps(40);
    config.backward = Some((1e-14, 1e-14));
    let f = forward(
        &mut Linear { n: 2 },
        &A,
        &[1.0, 0.0],
        &[0.0, 1.0],
        Method::Rdm {
            norm: BackwardNorm::Full,
        },
        &config,
    )
    .unwrap();
    assert!(f.info().accepted_forward < 40);
    let r = f.backward(&mut Linear { n: 2 }, &A, &[vec![0.0, 0.0], vec![1.0, 1.0]]);
    assert!(
        matches!(
            r,
            Err(AdjointError::Solve {
                method: "rdm",
                pass: "backward",
                ..
            })
        ),
        "{r:?}"
    );
}
