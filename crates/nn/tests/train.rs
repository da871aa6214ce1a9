//! Training: the loss falls, every method trains, and a checkpointed run resumes exactly.

use adjoint::{BackwardNorm, Method};
use nn::train::{IterationRecord, TrainConfig, Trainer};
use std::ops::ControlFlow;

fn config() -> TrainConfig {
    TrainConfig {
        batch: 64,
        test_size: 256,
        adam: nn::optim::AdamConfig {
            lr: 1e-2,
            ..Default::default()
        },
        ..TrainConfig::default()
    }
}

#[test]
fn loss_falls_with_irdm() {
    let mut t = Trainer::<f32>::new(
        config(),
        Method::irdm_lobatto(16, BackwardNorm::Seminorm),
        None,
    )
    .unwrap();
    let before = t.test_nll().unwrap();
    let mut seen = 0;
    let mut observer = |r: &IterationRecord| {
        seen += 1;
        assert!(
            r.loss.is_finite() && r.nfe_forward > 0 && r.vjp_backward > 0 && r.grid_n == Some(16)
        );
        ControlFlow::Continue(())
    };
    t.run(40, &mut observer).unwrap();
    assert_eq!(seen, 40);
    let after = t.test_nll().unwrap();
    assert!(after < before - 0.2, "test NLL {before} -> {after}");
}

#[test]
fn observer_can_stop_a_run() {
    let mut t = Trainer::<f64>::new(
        config(),
        Method::Rdm {
            norm: BackwardNorm::Full,
        },
        None,
    )
    .unwrap();
    let mut stop = |r: &IterationRecord| {
        if r.iter == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let records = t.run(10, &mut stop).unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(t.iteration(), 3);
}

#[test]
fn same_seed_same_first_step_for_every_method() {
    // Same batches and initial weights: every method's first loss is the same number.
    let methods = [
        Method::Direct,
        Method::Rdm {
            norm: BackwardNorm::Full,
        },
        Method::irdm_lobatto(8, BackwardNorm::Full),
    ];
    let losses: Vec<f64> = methods
        .iter()
        .map(|&m| {
            Trainer::<f64>::new(config(), m, None)
                .unwrap()
                .step()
                .unwrap()
                .loss
        })
        .collect();
    assert!(losses.windows(2).all(|w| w[0] == w[1]), "{losses:?}");
}

#[test]
fn checkpoint_resume_is_exact() {
    let method = Method::irdm_lobatto(8, BackwardNorm::Full);
    let mut straight = Trainer::<f64>::new(config(), method, None).unwrap();
    for _ in 0..4 {
        straight.step().unwrap();
    }
    let dir = std::env::temp_dir().join(format!("nn-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("run.safetensors");
    let mut first = Trainer::<f64>::new(config(), method, None).unwrap();
    first.step().unwrap();
    first.step().unwrap();
    first.save_checkpoint(&path).unwrap();
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    let mut resumed = Trainer::<f64>::resume(&path, method).unwrap();
    assert_eq!(resumed.iteration(), 2);
    resumed.step().unwrap();
    resumed.step().unwrap();
    assert_eq!(resumed.params(), straight.params());
    // A corrupt checkpoint is an error, not a panic.
    std::fs::write(&path, b"not a checkpoint").unwrap();
    assert!(Trainer::<f64>::resume(&path, method).is_err());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_configs_are_refused() {
    let bad = TrainConfig {
        dataset: "nope".into(),
        ..config()
    };
    assert!(Trainer::<f64>::new(bad, Method::Direct, None).is_err());
    let bad = TrainConfig {
        batch: 0,
        ..config()
    };
    assert!(Trainer::<f64>::new(bad, Method::Direct, None).is_err());
    assert!(Trainer::<f64>::new(config(), Method::Direct, Some(vec![0.0; 3])).is_err());
    let mut p = vec![
        0.0;
        Trainer::<f64>::new(config(), Method::Direct, None)
            .unwrap()
            .params()
            .len()
    ];
    p[0] = f64::NAN;
    assert!(Trainer::<f64>::new(config(), Method::Direct, Some(p)).is_err());
}
