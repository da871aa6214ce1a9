//! Trains the toy CNF (pinwheel, batch 100, the paper's settings) with one gradient method and
//! prints the median time per iteration with its evaluation counts, so that a profiler
//! (`perf record`) sees one method alone.
//!
//! `cargo run --release -p benches --example profile_toy -- METHOD ITERS [BATCH] [THREADS]
//! [WEIGHTS]`, with `METHOD` one of `direct`, `rdm`, `rdm-semi`, `irdmN-semi` (N stored nodes)
//! or `irdm-auto-semi`, `BATCH` the batch (default 100), `THREADS` the shards of the batch
//! (default 1) and `WEIGHTS` an optional safetensors file to start from (PyTorch names, prefix
//! `net.`, e.g. `../shared/anchors/toy_cnf_pinwheel_trained.safetensors`).

use adjoint::{BackwardNorm, Method, Segments};
use nn::train::{TrainConfig, Trainer};

fn method(label: &str) -> Result<Method, String> {
    let semi = BackwardNorm::Seminorm;
    Ok(match label {
        "direct" => Method::Direct,
        "rdm" => Method::Rdm {
            norm: BackwardNorm::Full,
        },
        "rdm-semi" => Method::Rdm { norm: semi },
        "irdm-auto-semi" => Method::irdm_auto(1e-5, 1e-5, semi),
        other => {
            let nodes: usize = other
                .strip_prefix("irdm")
                .and_then(|s| s.strip_suffix("-semi"))
                .and_then(|s| s.parse().ok())
                .filter(|&n| n >= 2)
                .ok_or_else(|| format!("unknown method `{other}`"))?;
            Method::irdm_lobatto(nodes - 1, semi)
        }
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let label = args.first().map_or("irdm16-semi", String::as_str);
    let iters: usize = args.get(1).map_or(Ok(300), |s| s.parse())?;
    let mut config = TrainConfig::default();
    if let Some(b) = args.get(2) {
        config.batch = b.parse()?;
    }
    if let Some(t) = args.get(3) {
        config.threads = t.parse()?;
    }
    if label.starts_with("irdm") && label != "irdm-auto-semi" {
        config.irdm.segments = Segments::Single;
    }
    let init = match args.get(4) {
        Some(path) => {
            let w = nn::Weights::read(path)?;
            let layout = nn::toy_cnf::<f32>(1, config.activation)?
                .net
                .layout()
                .clone();
            Some(w.params::<f32>(&layout, "net")?)
        }
        None => None,
    };
    let mut trainer = Trainer::<f32>::new(config, method(label)?, init)?;
    let mut seconds = Vec::with_capacity(iters);
    let (mut fwd, mut bwd, mut vjp) = (0usize, 0usize, 0usize);
    for _ in 0..iters {
        let r = trainer.step()?;
        seconds.push(r.seconds);
        fwd += r.nfe_forward;
        bwd += r.nfe_backward;
        vjp += r.vjp_backward;
    }
    seconds.sort_by(f64::total_cmp);
    let n = iters.max(1) as f64;
    println!(
        "{label}: median {:.3} ms/iter over {iters}; per iteration NFE fwd {:.1}, bwd {:.1}, VJP {:.1}; test NLL {:.4}",
        1e3 * seconds[seconds.len() / 2],
        fwd as f64 / n,
        bwd as f64 / n,
        vjp as f64 / n,
        trainer.test_nll()?
    );
    Ok(())
}
