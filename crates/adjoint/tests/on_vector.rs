//! The backend-generic driver called directly on host vectors: bad settings and input, and
//! IRDM's automatic grid. (`adjoint::forward` is this driver on `Vec<T>`, so every other test of
//! the crate exercises it; `crates/gpu` tests it on the GPU against the host.)

mod common;

use adjoint::{AdjointError, BackwardNorm, Config, IrdmGrid, Method, forward_on};
use common::{Mlp, lcg};

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
fn bad_settings_and_input_are_errors_and_the_auto_grid_runs() {
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
    // The automatic grid reads its node values back once and keeps a nested sub-grid.
    let fwd = forward_on(&mut mlp, &theta, &z0, &TS, auto, &config).unwrap();
    let grid = fwd.info().grid.clone().unwrap();
    assert_eq!(grid.n_stored, 16);
    assert!(grid.n <= 16 && 16 % grid.n == 0, "{grid:?}");
    assert!(grid.error_estimate.is_some());
    let g = fwd.backward(&mut mlp, &theta, &cot).unwrap();
    assert!(g.dtheta.iter().all(|v| v.is_finite()));
    let not_pow2 = Method::Irdm {
        grid: IrdmGrid::Auto {
            n_max: 12,
            rel_tol: 1e-6,
            abs_tol: 1e-6,
        },
        norm: BackwardNorm::Full,
    };
    assert!(matches!(
        forward_on(&mut mlp, &theta, &z0, &TS, not_pow2, &config),
        Err(AdjointError::BadSetting { .. })
    ));
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
