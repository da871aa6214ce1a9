//! The command line as a user meets it: every bad input in the table below exits non-zero with
//! an error naming the path or value at fault, before any long work; and `compare-torch` drives
//! a torch side (here a protocol-compatible stand-in, `fixtures/fake_torch.py`) with batches
//! drawn one round at a time.

mod common;

use common::{gpu_available, read_run};
use std::path::{Path, PathBuf};
use std::process::Command;

fn xtask(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("xtask runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A scratch folder for this test process.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Toy-CNF weights with PyTorch names, as `compare-torch --weights` reads them.
fn weights_file(dir: &Path) -> PathBuf {
    let net = nn::toy_cnf::<f32>(1, nn::Activation::Tanh).unwrap().net;
    let params = net.init_params(&mut nn::Rng::new(3));
    let path = dir.join("weights.safetensors");
    nn::io::save(
        &path,
        &nn::io::param_tensors(net.layout(), "net", &params),
        None,
    )
    .unwrap();
    path
}

fn python3() -> bool {
    let found = Command::new("python3").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var("IRDM_REQUIRE_PYTHON").as_deref() != Ok("1"),
            "IRDM_REQUIRE_PYTHON=1 but python3 does not start"
        );
        eprintln!("skipped: no python3");
    }
    found
}

#[test]
fn bad_input_names_the_culprit() {
    let dir = scratch("table");
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let empty = dir.join("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    let weights = weights_file(&dir);
    let (file_s, empty_s, weights_s) = (
        file.to_str().unwrap(),
        empty.to_str().unwrap(),
        weights.to_str().unwrap(),
    );
    let out = dir.join("out");
    let out_s = out.to_str().unwrap();
    #[rustfmt::skip]
    let table: Vec<(Vec<&str>, Vec<String>)> = vec![
        // Output folders: named, and refused before the run.
        (vec!["bench", "--suite", "stability", "--out", "/proc/x"],
         vec!["--out /proc/x: cannot create the folder".into()]),
        (vec!["bench", "--suite", "stability", "--out", file_s],
         vec![format!("--out {file_s}: exists and is not a folder")]),
        (vec!["convergence", "--out", file_s],
         vec![format!("--out {file_s}: exists and is not a folder")]),
        (vec!["compare-torch", "--weights", weights_s, "--out", file_s],
         vec![format!("--out {file_s}: exists and is not a folder")]),
        // Files read: named, with what is wrong.
        (vec!["bench", "--suite", "toy", "--from-weights", empty_s, "--out", out_s],
         vec![empty_s.into()]),
        (vec!["bench", "--suite", "toy", "--from-weights", "/nonexistent/w.safetensors", "--out", out_s],
         vec!["/nonexistent/w.safetensors".into()]),
        (vec!["compare-torch", "--weights", empty_s, "--out", out_s],
         vec![empty_s.into()]),
        (vec!["compare-torch", "--weights", "/nonexistent/w.safetensors", "--out", out_s],
         vec!["/nonexistent/w.safetensors".into()]),
        (vec!["report", "/nonexistent/run"],
         vec!["/nonexistent/run/results.json".into()]),
        // Numbers: bad values, not unknown flags; sizes checked against memory first.
        (vec!["bench", "--iters", "-5"],
         vec!["invalid value '-5' for '--iters <ITERS>'".into()]),
        (vec!["bench", "--iters", "0", "--out", out_s],
         vec!["--iters must be at least 1".into()]),
        (vec!["bench", "--peak-gflops", "nan"],
         vec!["invalid value 'nan' for '--peak-gflops <PEAK_GFLOPS>'".into()]),
        (vec!["bench", "--suite", "nope", "--out", out_s],
         vec!["unknown suite \"nope\"".into()]),
        (vec!["bench", "--datasets", "spirals", "--out", out_s],
         vec!["unknown \"spirals\"".into()]),
        (vec!["compare-torch", "--batch", "1000000000000", "--out", out_s],
         vec!["--batch 1000000000000 needs at least".into(), "GiB".into()]),
        (vec!["compare-torch", "--iters", "0", "--out", out_s],
         vec!["--iters and --batch must be at least 1".into()]),
        (vec!["compare-torch", "--device", "tpu", "--out", out_s],
         vec!["--device tpu: expected cpu or cuda[:N]".into()]),
        // The torch side is checked before any work.
        (vec!["compare-torch", "--weights", weights_s, "--python", "/nonexistent/python3", "--out", out_s],
         vec!["cannot start /nonexistent/python3".into()]),
    ];
    for (args, needles) in &table {
        let (ok, stderr) = xtask(args);
        assert!(!ok, "{args:?} succeeded");
        for needle in needles {
            assert!(
                stderr.contains(needle.as_str()),
                "{args:?}: {stderr:?} lacks {needle:?}"
            );
        }
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn compare_torch_sends_each_round_its_batch() {
    if !python3() {
        return;
    }
    let dir = scratch("fake");
    let weights = weights_file(&dir);
    let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake_torch.py");
    let out = dir.join("out");
    let (ok, stderr) = xtask(&[
        "compare-torch",
        "--python",
        fake.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
        "--iters",
        "3",
        "--batch",
        "7",
        "--threads",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("round 3/3 done"), "{stderr}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).unwrap()).unwrap();
    // The stand-in answers with the sum of the first batch it was sent: the seeded pinwheel
    // draw, as f32.
    let first: f64 = nn::data::Toy::Pinwheel
        .sample(&mut nn::Rng::new(2024), 7)
        .into_iter()
        .map(|v| v as f32 as f64)
        .sum();
    let pairs = json["runs"][0]["pairs"].as_array().expect("pairs");
    assert_eq!(pairs.len(), 5, "{json}");
    for p in pairs {
        let got = p["loss_torch_first"].as_f64().unwrap();
        assert!((got - first).abs() < 1e-4, "{got} vs {first}: {p}");
        assert!(p["loss_ours_first"].as_f64().unwrap().is_finite(), "{p}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// `train --gpu` writes a resumable checkpoint: 3 iterations on two ranks, resumed on one up to
/// 6, end where 6 uninterrupted iterations on two ranks end (f32; the allreduce sums the two
/// ranks' shares where one rank computes the whole batch, so to 1e-4); a checkpoint of another
/// run is refused, naming what differs.
#[test]
fn a_gpu_checkpoint_resumes_on_another_rank_count() {
    if !gpu_available() {
        return;
    }
    let dir = scratch("gpu-resume");
    let (whole, first, second) = (dir.join("whole"), dir.join("first"), dir.join("second"));
    let run = |extra: &[&str], out: &Path| {
        let mut args = vec![
            "train",
            "--gpu",
            "--batch",
            "32",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let (ok, stderr) = xtask(&args);
        assert!(ok, "{args:?}: {stderr}");
    };
    run(&["--iters", "6", "--local-ranks", "2"], &whole);
    run(
        &[
            "--iters",
            "3",
            "--local-ranks",
            "2",
            "--checkpoint-every",
            "2",
        ],
        &first,
    );
    let ckpt = first.join("checkpoint.safetensors");
    run(
        &["--iters", "6", "--resume", ckpt.to_str().unwrap()],
        &second,
    );
    let iter = |out: &Path| -> usize {
        let w = nn::Weights::read(out.join("checkpoint.safetensors")).unwrap();
        w.metadata().unwrap()["iter"].parse().unwrap()
    };
    let (lw, pw) = read_run(&whole);
    let (ls, ps) = read_run(&second);
    assert_eq!(
        (iter(&whole), iter(&second), ls.len()),
        (6, 6, 3),
        "iterations 4 … 6 resumed"
    );
    for (a, b) in ls.iter().zip(&lw[3..]) {
        assert!((a - b).abs() <= 1e-4 * b.abs(), "{ls:?} vs {:?}", &lw[3..]);
    }
    let worst = ps
        .iter()
        .zip(&pw)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1e-3))
        .fold(0.0, f64::max);
    assert!(worst < 1e-4, "parameters differ by {worst:e}");
    // Another seed is another run: refused.
    let (ok, stderr) = xtask(&[
        "train",
        "--gpu",
        "--batch",
        "32",
        "--seed",
        "9",
        "--iters",
        "6",
        "--resume",
        ckpt.to_str().unwrap(),
        "--out",
        dir.join("other").to_str().unwrap(),
    ]);
    assert!(
        !ok && stderr.contains("not of this run") && stderr.contains("seed: 9"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}
