//! Checkpoints survive what long runs meet: a truncated or random-bytes file is a typed error
//! naming the file, and a writer killed in the middle of a write leaves the previous checkpoint
//! intact (written to a temporary file, synced, renamed, folder synced).

use adjoint::{BackwardNorm, Method};
use nn::NnError;
use nn::train::{TrainConfig, Trainer};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Set in the child process that writes checkpoints until it is killed.
const WRITER_ENV: &str = "NN_CHECKPOINT_WRITER_PATH";

fn config() -> TrainConfig {
    TrainConfig {
        batch: 32,
        test_size: 64,
        ..TrainConfig::default()
    }
}

fn method() -> Method {
    Method::irdm_lobatto(8, BackwardNorm::Seminorm)
}

fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nn-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn assert_names_file(err: &NnError, path: &Path) {
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()),
        "the error does not name {}: {text}",
        path.display()
    );
}

#[test]
fn truncated_and_random_checkpoints_are_typed_errors_naming_the_file() {
    let dir = scratch_dir("ckpt-bad");
    let path = dir.join("run.safetensors");
    let mut t = Trainer::<f32>::new(config(), method(), None).unwrap();
    t.step().unwrap();
    t.save_checkpoint(&path).unwrap();
    let good = std::fs::read(&path).unwrap();
    // Truncated at several points (inside the header, inside the data, one byte short).
    for cut in [0, 4, 8, good.len() / 3, good.len() - 1] {
        std::fs::write(&path, &good[..cut]).unwrap();
        let err = Trainer::<f32>::resume(&path, method())
            .err()
            .expect("truncated");
        assert_names_file(&err, &path);
    }
    // Random bytes of the same length, from a fixed seed.
    let mut rng = nn::Rng::new(7);
    let noise: Vec<u8> = (0..good.len())
        .map(|_| (rng.uniform() * 256.0) as u8)
        .collect();
    std::fs::write(&path, &noise).unwrap();
    let err = Trainer::<f32>::resume(&path, method())
        .err()
        .expect("random");
    assert_names_file(&err, &path);
    // The intact bytes resume.
    std::fs::write(&path, &good).unwrap();
    assert_eq!(
        Trainer::<f32>::resume(&path, method()).unwrap().iteration(),
        1
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The child: trains and checkpoints to the same path as fast as it can, until killed.
#[test]
fn checkpoint_writer_child() {
    let Ok(path) = std::env::var(WRITER_ENV) else {
        return; // only runs as the child of the test below
    };
    let mut t = Trainer::<f32>::new(config(), method(), None).unwrap();
    loop {
        t.step().unwrap();
        t.save_checkpoint(&path).unwrap();
    }
}

#[test]
fn a_writer_killed_mid_write_leaves_an_intact_checkpoint() {
    let dir = scratch_dir("ckpt-kill");
    let path = dir.join("run.safetensors");
    let exe = std::env::current_exe().unwrap();
    for round in 0..5 {
        let mut child = Command::new(&exe)
            .args(["--exact", "checkpoint_writer_child", "--nocapture"])
            .env(WRITER_ENV, &path)
            .spawn()
            .unwrap();
        // Wait for the first checkpoint, then kill at a different moment each round.
        let start = Instant::now();
        while !path.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no checkpoint written"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(3 + 7 * round));
        child.kill().unwrap();
        child.wait().unwrap();
        let resumed = Trainer::<f32>::resume(&path, method())
            .unwrap_or_else(|e| panic!("round {round}: the checkpoint is torn: {e}"));
        assert!(resumed.iteration() >= 1);
    }
    std::fs::remove_dir_all(dir).unwrap();
}
