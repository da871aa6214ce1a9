//! One gradient (forward + backward) of the linear and MLP problems by each method.

use adjoint::toy::{Linear, Mlp};
use adjoint::{BackwardNorm, Checkpoints, Config, Method, Vjp, forward};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn methods() -> Vec<(&'static str, Method)> {
    vec![
        ("direct", Method::Direct),
        (
            "rdm",
            Method::Rdm {
                norm: BackwardNorm::Full,
            },
        ),
        (
            "rdm-seminorm",
            Method::Rdm {
                norm: BackwardNorm::Seminorm,
            },
        ),
        (
            "anode-k4",
            Method::Anode {
                checkpoints: Checkpoints::EveryKSteps(4),
            },
        ),
        ("irdm16", Method::irdm_lobatto(16, BackwardNorm::Full)),
        (
            "irdm16-seminorm",
            Method::irdm_lobatto(16, BackwardNorm::Seminorm),
        ),
    ]
}

fn one_gradient<F: Vjp<f64>>(
    f: &mut F,
    theta: &[f64],
    z0: &[f64],
    method: Method,
    tol: f64,
) -> f64 {
    let ts = [0.0, 1.0];
    let fwd = forward(f, theta, z0, &ts, method, &Config::new(tol, tol)).expect("forward");
    let cot = vec![vec![0.0; z0.len()], fwd.outputs()[1].clone()];
    fwd.backward(f, theta, &cot).expect("backward").dtheta[0]
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("adjoint/gradient");
    group.sample_size(20);
    let a = [-0.5, 1.2, 0.0, -1.0, -0.3, 0.4, 0.2, -0.6, -0.8];
    let mut mlp = Mlp::new(2, 64);
    let theta = mlp.params(5, 0.3);
    for (label, method) in methods() {
        group.bench_with_input(BenchmarkId::new("linear3", label), &method, |b, &m| {
            b.iter(|| {
                black_box(one_gradient(
                    &mut Linear { n: 3 },
                    &a,
                    &[1.0, -0.5, 2.0],
                    m,
                    1e-6,
                ))
            })
        });
        group.bench_with_input(BenchmarkId::new("mlp2x64", label), &method, |b, &m| {
            b.iter(|| black_box(one_gradient(&mut mlp, &theta, &[0.5, -0.3], m, 1e-6)))
        });
    }
    group.finish();
    bench_rdm_check(c);
}

/// RDM's reconstruction check against the same gradient with the check off, on the MLP with 20
/// output times (a comparison at each): its cost is one pass over the state per output time.
fn bench_rdm_check(c: &mut Criterion) {
    let mut group = c.benchmark_group("adjoint/rdm_check");
    group.sample_size(30);
    let mut mlp = Mlp::new(2, 64);
    let theta = mlp.params(5, 0.3);
    let ts: Vec<f64> = (0..=20).map(|i| i as f64 / 20.0).collect();
    let z0 = [0.5, -0.3];
    let method = Method::Rdm {
        norm: BackwardNorm::Full,
    };
    for (label, limit) in [("check-on", 1e-2), ("check-off", f64::INFINITY)] {
        let mut config = Config::new(1e-6, 1e-6);
        config.rdm_check.max_discrepancy = limit;
        let fwd = forward(&mut mlp, &theta, &z0, &ts, method, &config).expect("forward");
        let cot: Vec<Vec<f64>> = fwd.outputs().to_vec();
        group.bench_function(format!("mlp2x64-20-outputs/{label}"), |b| {
            b.iter(|| {
                let fwd = forward(&mut mlp, &theta, &z0, &ts, method, &config).expect("forward");
                black_box(
                    fwd.backward(&mut mlp, &theta, &cot)
                        .expect("backward")
                        .dtheta[0],
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
