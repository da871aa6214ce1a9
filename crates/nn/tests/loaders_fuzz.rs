//! Every file loader meets random and mutated bytes with a typed error or a success — never a
//! panic or an abort: safetensors weights (and every accessor on what loads), training
//! checkpoints, and IDX arrays (plain and gzip) with the image-set pairing.

use adjoint::{BackwardNorm, Method};
use nn::idx::{ImageSet, parse_idx};
use nn::train::{TrainConfig, Trainer};
use nn::{Activation, Weights, toy_cnf};
use proptest::prelude::*;
use std::io::Write;
use std::sync::OnceLock;

fn config() -> TrainConfig {
    TrainConfig {
        batch: 16,
        test_size: 16,
        ..TrainConfig::default()
    }
}

fn method() -> Method {
    Method::irdm_lobatto(4, BackwardNorm::Seminorm)
}

/// A valid checkpoint's bytes, made once.
fn checkpoint_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("nn-fuzz-seed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("seed.safetensors");
        let mut t = Trainer::<f32>::new(config(), method(), None).unwrap();
        t.step().unwrap();
        t.save_checkpoint(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        bytes
    })
}

/// A valid IDX image array (`3 × 2 × 2`).
fn idx_bytes() -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3];
    for d in [3u32, 2, 2] {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend((0..12).map(|i| i as u8 * 20));
    b
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Random edits of `seed`: byte overwrites, a truncation, an insertion.
fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = seed.len();
    (
        proptest::collection::vec((0..len.max(1), any::<u8>()), 0..8),
        proptest::option::of(0..len.max(1)),
        proptest::option::of((0..len.max(1), proptest::collection::vec(any::<u8>(), 1..16))),
    )
        .prop_map(move |(flips, cut, insert)| {
            let mut b = seed.clone();
            for (i, v) in flips {
                if i < b.len() {
                    b[i] = v;
                }
            }
            if let Some((at, extra)) = insert
                && at <= b.len()
            {
                b.splice(at..at, extra);
            }
            if let Some(c) = cut
                && c < b.len()
            {
                b.truncate(c);
            }
            b
        })
}

/// Loads `bytes` as weights and, if they load, reads everything out of them.
fn exercise_weights(bytes: Vec<u8>) {
    let Ok(w) = Weights::from_bytes(bytes, "fuzz") else {
        return;
    };
    for name in w.names() {
        let _ = w.tensor::<f32>(&name);
        let _ = w.tensor::<f64>(&name);
    }
    let _ = w.metadata();
    let layout = toy_cnf::<f32>(1, Activation::Tanh)
        .unwrap()
        .net
        .layout()
        .clone();
    let _ = w.params::<f32>(&layout, "net");
}

fn exercise_checkpoint(bytes: &[u8], tag: usize) {
    let dir = std::env::temp_dir().join(format!("nn-fuzz-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.safetensors");
    std::fs::write(&path, bytes).unwrap();
    if let Ok(mut t) = Trainer::<f32>::resume(&path, method()) {
        // A checkpoint that loads must also train.
        let _ = t.step();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn exercise_idx(bytes: &[u8]) {
    if let Ok(images) = parse_idx(bytes, "fuzz") {
        let n = images.dims.first().copied().unwrap_or(0);
        let labels = parse_idx(
            &[
                vec![0, 0, 8, 1],
                (n as u32).to_be_bytes().to_vec(),
                vec![1; n],
            ]
            .concat(),
            "labels",
        );
        if let Ok(labels) = labels {
            let _ = ImageSet::from_idx(images, labels);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise_weights(bytes.clone());
        exercise_idx(&bytes);
        exercise_idx(&gzip(&bytes));
    }

    #[test]
    fn mutated_checkpoints_never_panic(
        bytes in mutated(checkpoint_bytes().to_vec()),
        tag in any::<usize>(),
    ) {
        exercise_weights(bytes.clone());
        exercise_checkpoint(&bytes, tag);
    }

    #[test]
    fn mutated_idx_never_panics(bytes in mutated(idx_bytes())) {
        exercise_idx(&bytes);
        exercise_idx(&gzip(&bytes));
    }
}

#[test]
fn the_seeds_themselves_load() {
    assert!(Weights::from_bytes(checkpoint_bytes().to_vec(), "seed").is_ok());
    assert!(parse_idx(&idx_bytes(), "seed").is_ok());
    assert!(parse_idx(&gzip(&idx_bytes()), "seed").is_ok());
}
