//! Adam and SGD reproduce PyTorch's updates on a fixed gradient sequence.
//!
//! Reference trajectories: `torch.optim.Adam(lr=0.1, weight_decay=0.01)`,
//! `torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01)` (also with `nesterov=True`), and
//! `SGD(lr=0.1, momentum=0.5, dampening=0.3)`, from `θ = [0.5, −1, 2]`, float64, PyTorch 2.15.

use nn::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};

const GRADS: [[f64; 3]; 4] = [
    [0.3, -0.2, 1.0],
    [0.1, 0.4, -0.5],
    [-0.7, 0.05, 0.2],
    [0.0, -1.0, 0.3],
];

fn run(opt: &mut dyn Optimizer<f64>, want: &[[f64; 3]; 4]) {
    let mut p = vec![0.5, -1.0, 2.0];
    for (g, w) in GRADS.iter().zip(want) {
        opt.step(&mut p, g).unwrap();
        for (a, b) in p.iter().zip(w) {
            assert!((a - b).abs() < 1e-14, "{p:?} vs {w:?}");
        }
    }
    assert_eq!(opt.steps(), 4);
}

#[test]
fn adam_matches_pytorch() {
    let cfg = AdamConfig {
        lr: 0.1,
        weight_decay: 0.01,
        ..AdamConfig::default()
    };
    run(
        &mut Adam::new(3, cfg).unwrap(),
        &[
            [0.4000000032786884, -0.9000000047619046, 1.9000000009803921],
            [0.31255623865840865, -0.933871986222442, 1.8711524338660754],
            [0.34220029718377604, -0.9657774501821872, 1.8370885677152693],
            [0.36622348233885926, -0.923148449890178, 1.7946610782622043],
        ],
    );
}

#[test]
fn sgd_matches_pytorch() {
    let base = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.0,
        weight_decay: 0.01,
        nesterov: false,
    };
    run(
        &mut Sgd::new(3, base).unwrap(),
        &[
            [0.4695, -0.979, 1.898],
            [0.4315805, -0.9991209999999999, 1.854302],
            [0.46702136949999995, -1.021230779, 1.7931194979999998],
            [0.49845113068049995, -0.940108349321, 1.7062621267019997],
        ],
    );
    run(
        &mut Sgd::new(
            3,
            SgdConfig {
                nesterov: true,
                ..base
            },
        )
        .unwrap(),
        &[
            [0.44205, -0.9601, 1.8062],
            [0.39750510499999997, -1.01726581, 1.81514822],
            [0.4990572848005, -1.0411463239610002, 1.738378416382],
            [0.526863792374329, -0.8670761477393742, 1.628616307532674],
        ],
    );
    run(
        &mut Sgd::new(
            3,
            SgdConfig {
                lr: 0.1,
                momentum: 0.5,
                dampening: 0.3,
                weight_decay: 0.0,
                nesterov: false,
            },
        )
        .unwrap(),
        &[
            [0.47, -0.98, 1.9],
            [0.448, -0.998, 1.885],
            [0.486, -1.0105, 1.8635],
            [0.505, -0.94675, 1.83175],
        ],
    );
}

#[test]
fn bad_settings_and_gradients_are_refused() {
    assert!(
        Adam::<f64>::new(
            3,
            AdamConfig {
                lr: 0.0,
                ..AdamConfig::default()
            }
        )
        .is_err()
    );
    assert!(
        Adam::<f64>::new(
            3,
            AdamConfig {
                beta1: 1.0,
                ..AdamConfig::default()
            }
        )
        .is_err()
    );
    let nesterov_damped = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        dampening: 0.1,
        weight_decay: 0.0,
        nesterov: true,
    };
    assert!(Sgd::<f64>::new(3, nesterov_damped).is_err());
    let mut adam = Adam::<f64>::new(3, AdamConfig::default()).unwrap();
    let mut p = vec![1.0, 2.0, 3.0];
    assert!(adam.step(&mut p, &[0.0, f64::NAN, 0.0]).is_err());
    assert!(adam.step(&mut p, &[0.0, 0.0]).is_err());
    assert_eq!(
        p,
        vec![1.0, 2.0, 3.0],
        "a refused step leaves the parameters alone"
    );
    assert_eq!(adam.steps(), 0);
}
