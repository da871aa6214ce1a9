//! The backend-generic driver on host vectors against the host driver: the same step counts and
//! the same gradients (to rounding) for Direct, ANODE, RDM and IRDM (every fixed grid), several
//! output times; and what it refuses.

mod common;

use adjoint::{AdjointError, BackwardNorm, Config, IrdmGrid, Method, forward, forward_on};
use cheb::Kind;
use common::{Mlp, lcg, rel_err};

const N: usize = 3;
const TS: [f64; 4] = [0.0, 0.35, 0.8, 1.5];

fn setup() -> (Mlp, Vec<f64>, Vec<f64>, Vec<Vec<f64>>) {
    let mlp = Mlp::new(N, 8);
    let theta = mlp.params(3, 0.8);
    let z0 = vec![0.5, -0.3, 0.8];
    let w = lcg(N * TS.len(), 5);
    let cot = (0..TS.len())
        .map(|k| w[k * N..(k + 1) * N].to_vec())
        .collect();
    (mlp, theta, z0, cot)
}

#[test]
fn generic_driver_matches_the_host_driver() {
    let norms = [BackwardNorm::Full, BackwardNorm::Seminorm];
    let mut methods = vec![
        Method::Direct,
        Method::Anode {
            checkpoints: adjoint::Checkpoints::EveryKSteps(3),
        },
        Method::Anode {
            checkpoints: adjoint::Checkpoints::Count(4),
        },
    ];
    for norm in norms {
        methods.push(Method::Rdm { norm });
        for grid in [
            IrdmGrid::Fixed {
                kind: Kind::Lobatto,
                n: 12,
            },
            IrdmGrid::Fixed {
                kind: Kind::First,
                n: 9,
            },
            IrdmGrid::Mismatched { n: 8 },
            IrdmGrid::PiecewiseLinear { n: 6 },
        ] {
            methods.push(Method::Irdm { grid, norm });
        }
    }
    let config = Config::new(1e-8, 1e-8);
    for m in methods {
        let (mut mlp, theta, z0, cot) = setup();
        let host = forward(&mut mlp, &theta, &z0, &TS, m, &config).unwrap();
        let gh = host.backward(&mut mlp, &theta, &cot).unwrap();
        let generic = forward_on(&mut mlp, &theta, &z0, &TS, m, &config).unwrap();
        for (a, b) in generic.outputs().iter().zip(host.outputs()) {
            assert!(rel_err(a, b) < 1e-14, "{m:?}");
        }
        let gg = generic.backward(&mut mlp, &theta, &cot).unwrap();
        assert!(
            rel_err(&gg.dz0, &gh.dz0) < 1e-10,
            "{m:?}: {:e}",
            rel_err(&gg.dz0, &gh.dz0)
        );
        assert!(rel_err(&gg.dtheta, &gh.dtheta) < 1e-10, "{m:?}");
        let (a, b) = (&gg.info, &gh.info);
        assert_eq!(
            (
                a.nfe_forward,
                a.nfe_backward,
                a.vjp_backward,
                a.accepted_backward
            ),
            (
                b.nfe_forward,
                b.nfe_backward,
                b.vjp_backward,
                b.accepted_backward
            ),
            "{m:?}"
        );
        assert_eq!(
            (a.stored_floats, &a.grid),
            (b.stored_floats, &b.grid),
            "{m:?}"
        );
    }
}

#[test]
fn unsupported_methods_and_bad_input_are_errors() {
    let (mut mlp, theta, z0, cot) = setup();
    let config = Config::new(1e-6, 1e-6);
    let auto = Method::Irdm {
        grid: IrdmGrid::Auto {
            n_max: 16,
            rel_tol: 1e-6,
            abs_tol: 1e-6,
        },
        norm: BackwardNorm::Full,
    };
    let e = forward_on(&mut mlp, &theta, &z0, &TS, auto, &config)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("adjoint::forward"), "{e}");
    for bad in [
        adjoint::Checkpoints::EveryKSteps(0),
        adjoint::Checkpoints::Count(1),
    ] {
        let m = Method::Anode { checkpoints: bad };
        assert!(matches!(
            forward_on(&mut mlp, &theta, &z0, &TS, m, &config),
            Err(AdjointError::BadSetting { .. })
        ));
    }
    let m = Method::irdm_lobatto(0, BackwardNorm::Full);
    assert!(forward_on(&mut mlp, &theta, &z0, &TS, m, &config).is_err());
    let m = Method::irdm_lobatto(8, BackwardNorm::Full);
    assert!(matches!(
        forward_on(&mut mlp, &theta, &z0[..2].to_vec(), &TS, m, &config),
        Err(AdjointError::LengthMismatch { .. })
    ));
    let fwd = forward_on(&mut mlp, &theta, &z0, &TS, m, &config).unwrap();
    let mut bad = cot.clone();
    bad[2][1] = f64::NAN;
    assert!(matches!(
        fwd.backward(&mut mlp, &theta, &bad),
        Err(AdjointError::NonFiniteCotangent { index: 2, .. })
    ));
    assert!(fwd.backward(&mut mlp, &theta, &cot[..3]).is_err());
}
