//! One evaluation and one VJP of the toy CNF (2 → 64 → 64 → 2 concat-squash, tanh, exact
//! divergence) at batch 100, 1000 and 10 000, f32 and f64, sequential (`threads/1`) and with the batch
//! sharded over every logical CPU (`threads/all`); and one whole f32 gradient of the toy
//! solve (`t ∈ [0, 0.5]`, rtol = atol = 1e-5) per method at batch 100 and 1000, on 1 and all
//! threads.
//!
//! Matrix-product floor per evaluation, with `R = 3B` stacked rows (primal + 2 tangents):
//! `2R(2·64 + 64·64 + 64·2) = 8704 R` flops; a VJP adds the forward again plus two products per
//! layer backward: `3 × 8704 R`. Throughput below is reported in those flops.

use adjoint::{BackwardNorm, Config, Method, Vjp, forward};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nn::{Activation, Float, Rng, toy_cnf};
use rk::Rhs;
use std::hint::black_box;
use std::time::Instant;

/// A pool of `threads` workers (none for one): the threaded cases run inside it, as
/// `nn::train::Trainer` runs its iterations, so that the calling thread is one of its workers.
fn pool(threads: usize) -> Option<rayon::ThreadPool> {
    (threads > 1).then(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool")
    })
}

/// Runs `f` on `pool`, or here.
fn on<R: Send>(pool: &Option<rayon::ThreadPool>, f: impl FnOnce() -> R + Send) -> R {
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

fn bench_type<T: Float>(c: &mut Criterion, label: &str) {
    let mut group = c.benchmark_group(format!("nn/toy_cnf_{label}"));
    group.sample_size(20);
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (batch, threads) in [
        (100usize, 1usize),
        (100, all),
        (1000, 1),
        (1000, all),
        (10_000, 1),
        (10_000, all),
    ] {
        let threads_label = if threads == 1 { "1" } else { "all" };
        let id = |what: &str| BenchmarkId::new(format!("{what}/threads-{threads_label}"), batch);
        let mut cnf = toy_cnf::<T>(batch, Activation::Tanh).expect("model");
        cnf.set_threads(threads);
        let pool = pool(threads);
        let mut rng = Rng::new(1);
        let p = cnf.net.init_params(&mut rng);
        let state: Vec<T> = (0..cnf.state_len())
            .map(|_| <T as rk::Scalar>::of(rng.normal()))
            .collect();
        let a = state.clone();
        let mut out = vec![T::zero(); state.len()];
        let (mut adj_z, mut adj_p) = (vec![T::zero(); state.len()], vec![T::zero(); p.len()]);
        let flops = 8704 * 3 * batch as u64;
        group.throughput(Throughput::Elements(flops));
        group.bench_with_input(id("eval"), &batch, |b, _| {
            b.iter_custom(|iters| {
                on(&pool, || {
                    let start = Instant::now();
                    for _ in 0..iters {
                        cnf.eval(<T as rk::Scalar>::of(0.25), &state, &p, &mut out);
                        black_box(out[0]);
                    }
                    start.elapsed()
                })
            })
        });
        group.throughput(Throughput::Elements(3 * flops));
        group.bench_with_input(id("vjp"), &batch, |b, _| {
            b.iter_custom(|iters| {
                on(&pool, || {
                    let start = Instant::now();
                    for _ in 0..iters {
                        cnf.vjp(
                            <T as rk::Scalar>::of(0.25),
                            &state,
                            &p,
                            &a,
                            None,
                            &mut adj_z,
                            &mut adj_p,
                        );
                        black_box(adj_p[0]);
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

/// One forward and backward pass of the toy CNF at batch 100 and 1000, per method and thread
/// count.
fn bench_gradient(c: &mut Criterion) {
    for batch in [100, 1000] {
        bench_gradient_at(c, batch);
    }
}

fn bench_gradient_at(c: &mut Criterion, batch: usize) {
    let mut group = c.benchmark_group(format!("nn/toy_cnf_gradient_f32/batch-{batch}"));
    group.sample_size(20);
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let methods = [
        ("direct", Method::Direct),
        (
            "rdm-semi",
            Method::Rdm {
                norm: BackwardNorm::Seminorm,
            },
        ),
        (
            "irdm16-semi",
            Method::irdm_lobatto(15, BackwardNorm::Seminorm),
        ),
        (
            "irdm-auto-semi",
            Method::irdm_auto(1e-5, 1e-5, BackwardNorm::Seminorm),
        ),
    ];
    let mut rng = Rng::new(2);
    let mut cnf = toy_cnf::<f32>(batch, Activation::Tanh).expect("model");
    let p = cnf.net.init_params(&mut rng);
    let mut y0: Vec<f32> = nn::data::Toy::Pinwheel
        .sample(&mut rng, batch)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    y0.extend(std::iter::repeat_n(0.0, batch));
    let mut config = Config::new(1e-5f32, 1e-5);
    config.forward = config
        .forward
        .with_norm(rk::ErrorNorm::Groups(cnf.state_groups()));
    for threads in [1, all] {
        cnf.set_threads(threads);
        let pool = pool(threads);
        let threads_label = if threads == 1 { "1" } else { "all" };
        for (label, method) in methods {
            group.bench_function(format!("{label}/threads-{threads_label}"), |b| {
                b.iter_custom(|iters| {
                    on(&pool, || {
                        let start = Instant::now();
                        for _ in 0..iters {
                            let fwd = forward(&mut cnf, &p, &y0, &[0.0, 0.5], method, &config)
                                .expect("forward");
                            let (_, cot) = nn::nll_loss(&fwd.outputs()[1], batch, 2).expect("loss");
                            let zeros = vec![0.0; y0.len()];
                            let g = fwd.backward(&mut cnf, &p, &[zeros, cot]).expect("backward");
                            black_box(g.dtheta[0]);
                        }
                        start.elapsed()
                    })
                })
            });
        }
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    bench_type::<f32>(c, "f32");
    bench_type::<f64>(c, "f64");
    bench_gradient(c);
}

criterion_group!(benches, bench);
criterion_main!(benches);
