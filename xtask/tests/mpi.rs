//! Data-parallel training over MPI (`--features mpi`; `.ci/run` installs OpenMPI): `mpirun -n 2`
//! against one process computing the same row blocks (`--local-ranks 2`) and against one solve
//! of the whole batch; a rank killed mid-run stops the job naming it; a checkpoint written by
//! two ranks resumes on one.
#![cfg(feature = "mpi")]

mod common;

use common::{gpu_available, read_losses, read_params, read_run};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-mpi-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn mpirun(ranks: usize) -> Command {
    let mut c = Command::new("mpirun");
    // Root in CI containers; more ranks than cores is fine for a test.
    c.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .args([
            "-n",
            &ranks.to_string(),
            "--oversubscribe",
            XTASK,
            "train",
            "--mpi",
        ]);
    c
}

fn check(out: Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(1e-30))
        .fold(0.0, f64::max)
}

fn norm_rel(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let n: f64 = b.iter().map(|y| y * y).sum();
    (d / n).sqrt()
}

#[test]
fn two_mpi_ranks_match_one_process() {
    for method in ["irdm16-semi", "rdm"] {
        for (float, limit) in [("f32", 1e-5), ("f64", 1e-10)] {
            let common = [
                "--iters", "20", "--batch", "64", "--method", method, "--float", float,
            ];
            let a = scratch(&format!("mpi-{method}-{float}"));
            let b = scratch(&format!("local-{method}-{float}"));
            check(
                mpirun(2)
                    .args(common)
                    .args(["--out", a.to_str().unwrap()])
                    .output()
                    .unwrap(),
                "mpirun -n 2",
            );
            check(
                Command::new(XTASK)
                    .arg("train")
                    .args(common)
                    .args(["--local-ranks", "2", "--out", b.to_str().unwrap()])
                    .output()
                    .unwrap(),
                "--local-ranks 2",
            );
            let (la, pa) = read_run(&a);
            let (lb, pb) = read_run(&b);
            assert_eq!(la.len(), 20);
            let (el, ep) = (max_rel(&la, &lb), norm_rel(&pa, &pb));
            assert!(
                el <= limit && ep <= limit,
                "{method} {float}: losses {el:e}, params {ep:e}"
            );
            for d in [a, b] {
                std::fs::remove_dir_all(d).unwrap();
            }
        }
    }
    // Against one solve of the whole batch: equal to the solver's tolerance (f64, tight).
    let tight = [
        "--iters", "10", "--batch", "64", "--float", "f64", "--rtol", "1e-10", "--atol", "1e-10",
    ];
    let a = scratch("mpi-tight");
    let b = scratch("single-tight");
    check(
        mpirun(2)
            .args(tight)
            .args(["--out", a.to_str().unwrap()])
            .output()
            .unwrap(),
        "tight",
    );
    check(
        Command::new(XTASK)
            .arg("train")
            .args(tight)
            .args(["--out", b.to_str().unwrap()])
            .output()
            .unwrap(),
        "single",
    );
    let ((la, pa), (lb, pb)) = (read_run(&a), read_run(&b));
    assert!(max_rel(&la, &lb) < 1e-7 && norm_rel(&pa, &pb) < 1e-7);
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// The PID of the process of MPI rank `rank` whose command line mentions `marker`.
fn pid_of_rank(marker: &str, rank: usize) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if !cmdline.contains(marker) || !cmdline.starts_with(XTASK) {
            continue;
        }
        let env = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let want = format!("OMPI_COMM_WORLD_RANK={rank}");
        if env.split(|&b| b == 0).any(|kv| kv == want.as_bytes()) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn a_killed_rank_stops_every_rank_naming_it() {
    let out = scratch("killed");
    let marker = out.to_str().unwrap().to_string();
    let mut job = mpirun(2)
        .args(["--iters", "1000000", "--batch", "2000", "--out", &marker])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let pid = loop {
        if let Some(pid) = pid_of_rank(&marker, 1) {
            break pid;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "rank 1 never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Let it train a little, then kill rank 1 from outside.
    std::thread::sleep(Duration::from_millis(1500));
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let killed_at = Instant::now();
    let status = loop {
        if let Some(s) = job.try_wait().unwrap() {
            break s;
        }
        if killed_at.elapsed() > Duration::from_secs(60) {
            let _ = job.kill();
            panic!("the job still runs 60 s after rank 1 was killed");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = job.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("rank 1"), "{stderr}");
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn a_checkpoint_of_two_ranks_resumes_on_one_and_on_three() {
    let tight = [
        "--float", "f64", "--rtol", "1e-10", "--atol", "1e-10", "--batch", "48",
    ];
    let whole = scratch("whole");
    check(
        mpirun(2)
            .args(tight)
            .args(["--iters", "10", "--out", whole.to_str().unwrap()])
            .output()
            .unwrap(),
        "uninterrupted",
    );
    let first = scratch("first");
    check(
        mpirun(2)
            .args(tight)
            .args(["--iters", "5", "--out", first.to_str().unwrap()])
            .output()
            .unwrap(),
        "first half",
    );
    let ckpt = first.join("checkpoint.safetensors");
    let (lw, pw) = read_run(&whole);
    for ranks in [1, 3] {
        let second = scratch(&format!("second-{ranks}"));
        check(
            mpirun(ranks)
                .args(tight)
                .args(["--iters", "10", "--resume", ckpt.to_str().unwrap()])
                .args(["--out", second.to_str().unwrap()])
                .output()
                .unwrap(),
            "resumed",
        );
        let (ls, ps) = read_run(&second);
        assert_eq!(ls.len(), 5, "iterations 6 … 10");
        assert!(
            max_rel(&ls, &lw[5..]) < 1e-7,
            "{ranks} ranks: {ls:?} vs {:?}",
            &lw[5..]
        );
        assert!(norm_rel(&ps, &pw) < 1e-7);
        std::fs::remove_dir_all(second).unwrap();
    }
    for d in [whole, first] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn the_classifier_on_two_mpi_ranks_matches_one_process() {
    let data = nn::idx::DEFAULT_FASHION_MNIST_DIR;
    if !Path::new(data).is_dir() {
        assert!(
            std::env::var("IRDM_REQUIRE_FASHION_MNIST").as_deref() != Ok("1"),
            "IRDM_REQUIRE_FASHION_MNIST=1 but {data} is missing"
        );
        eprintln!("skipped: no Fashion-MNIST at {data}");
        return;
    }
    let common = [
        "--model",
        "classifier",
        "--iters",
        "4",
        "--batch",
        "16",
        "--channels",
        "4",
        "--train-images",
        "64",
    ];
    let a = scratch("classifier-mpi");
    let b = scratch("classifier-local");
    check(
        mpirun(2)
            .args(common)
            .args(["--out", a.to_str().unwrap()])
            .output()
            .unwrap(),
        "mpirun",
    );
    check(
        Command::new(XTASK)
            .arg("train")
            .args(common)
            .args(["--local-ranks", "2", "--out", b.to_str().unwrap()])
            .output()
            .unwrap(),
        "--local-ranks 2",
    );
    let read = |dir: &Path| {
        (
            read_losses(&dir.join("classifier.json")),
            read_params(&dir.join("classifier.safetensors"), ""),
        )
    };
    let ((la, pa), (lb, pb)) = (read(&a), read(&b));
    assert_eq!(la.len(), 4);
    assert!(
        max_rel(&la, &lb) <= 1e-5 && norm_rel(&pa, &pb) <= 1e-5,
        "{la:?} vs {lb:?}"
    );
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn ranks_on_the_gpu_backend_match_host_ranks() {
    if !gpu_available() {
        return;
    }
    let common = ["--iters", "5", "--batch", "32"];
    let a = scratch("gpu-mpi");
    let b = scratch("host-local");
    check(
        mpirun(2)
            .args(common)
            .args(["--gpu", "--out", a.to_str().unwrap()])
            .output()
            .unwrap(),
        "mpirun --gpu",
    );
    check(
        Command::new(XTASK)
            .arg("train")
            .args(common)
            .args(["--local-ranks", "2", "--out", b.to_str().unwrap()])
            .output()
            .unwrap(),
        "host --local-ranks 2",
    );
    let (la, lb) = (
        read_losses(&a.join("train.json")),
        read_losses(&b.join("train.json")),
    );
    let (pa, pb) = (
        read_params(&a.join("gpu_params.safetensors"), "net."),
        read_params(&b.join("checkpoint.safetensors"), "net."),
    );
    // Device and host f32 arithmetic differ by rounding, the adaptive solves by the tolerance.
    assert!(
        max_rel(&la, &lb) <= 1e-4 && norm_rel(&pa, &pb) <= 1e-4,
        "{la:?} vs {lb:?}"
    );
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
