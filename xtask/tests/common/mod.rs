//! Helpers shared by the command-line tests: reading a finished `train` run back, and whether
//! a GPU adapter is there.
#![allow(dead_code)]

use std::path::Path;

/// The losses of a run's JSON report (`records[…].loss`).
pub fn read_losses(json: &Path) -> Vec<f64> {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["loss"].as_f64().unwrap())
        .collect()
}

/// The tensors named `prefix…` of a safetensors file in name order, as f64.
pub fn read_params(path: &Path, prefix: &str) -> Vec<f64> {
    let w = nn::Weights::read(path).unwrap();
    let mut names: Vec<String> = w
        .names()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
        .iter()
        .flat_map(|n| w.tensor::<f64>(n).unwrap().1)
        .collect()
}

/// `(losses, parameters)` of a finished `train` run: the losses of `train.json` and the
/// `net.…` tensors of `checkpoint.safetensors`.
pub fn read_run(dir: &Path) -> (Vec<f64>, Vec<f64>) {
    (
        read_losses(&dir.join("train.json")),
        read_params(&dir.join("checkpoint.safetensors"), "net."),
    )
}

/// Whether a GPU adapter opens; without one the caller skips (says so), unless
/// `IRDM_REQUIRE_GPU=1` (CI), where a missing adapter fails.
pub fn gpu_available() -> bool {
    match gpu::GpuContext::new() {
        Ok(_) => true,
        Err(e) => {
            assert!(
                std::env::var("IRDM_REQUIRE_GPU").as_deref() != Ok("1"),
                "IRDM_REQUIRE_GPU=1 but {e}"
            );
            eprintln!("skipped: {e}");
            false
        }
    }
}
