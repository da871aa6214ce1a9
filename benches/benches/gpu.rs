//! The GPU backend's host costs: recording dispatches (without the submission and readback
//! that follow, which `iter_custom` leaves out of the timing), for vector operations and for
//! the toy CNF's `f` and adjoint right-hand side; and the same evaluations recorded, run and
//! read back. Skipped, with a note, where no adapter exists (set `IRDM_GPU_ADAPTER` to choose).

use adjoint::VectorVjp;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gpu::{GpuActivation, GpuCnf, GpuContext, GpuVec};
use rk::{Rhs, Vector};
use std::time::{Duration, Instant};

/// Times `record` alone over `iters` rounds; `settle` (a readback) runs after each, untimed.
fn recorded(iters: u64, mut record: impl FnMut(), mut settle: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        record();
        total += start.elapsed();
        settle();
    }
    total
}

fn gpu(c: &mut Criterion) {
    let ctx = match GpuContext::new() {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("gpu benches skipped: {e}");
            return;
        }
    };
    let mut group = c.benchmark_group("gpu/record");
    let x = GpuVec::from_host(&ctx, &vec![1.0; 1024]);
    let mut v = GpuVec::zeros(&ctx, 1024);
    group.bench_function("axpby-x16", |b| {
        b.iter_custom(|iters| {
            recorded(
                iters,
                || {
                    for _ in 0..16 {
                        v.axpby(0.5, &x, 0.5);
                    }
                },
                || {
                    let _ = x.all_finite();
                },
            )
        })
    });
    for batch in [100usize, 1000] {
        let mut cnf = GpuCnf::toy(&ctx, batch, GpuActivation::Tanh).expect("toy CNF");
        let theta = GpuVec::from_host(&ctx, &vec![0.01; cnf.param_len()]);
        let z = GpuVec::from_host(&ctx, &vec![0.1; cnf.state_len()]);
        let mut dz = GpuVec::zeros(&ctx, cnf.state_len());
        let n = cnf.state_len() + cnf.param_len();
        let a = GpuVec::from_host(&ctx, &vec![0.1; n]);
        let mut da = GpuVec::zeros(&ctx, n);
        group.bench_with_input(BenchmarkId::new("toy-cnf-f", batch), &batch, |b, _| {
            b.iter_custom(|iters| {
                recorded(
                    iters,
                    || cnf.eval(0.1, &z, &theta, &mut dz),
                    || {
                        let _ = x.all_finite();
                    },
                )
            })
        });
        group.bench_with_input(
            BenchmarkId::new("toy-cnf-adjoint-rhs", batch),
            &batch,
            |b, _| {
                b.iter_custom(|iters| {
                    recorded(
                        iters,
                        || cnf.adjoint_rhs(0.1, &z, 0, &theta, &a, 0, &mut da, None, 0),
                        || {
                            let _ = x.all_finite();
                        },
                    )
                })
            },
        );
    }
    group.finish();
    let mut group = c.benchmark_group("gpu/run");
    group.sample_size(20);
    for batch in [100usize, 1000] {
        let mut cnf = GpuCnf::toy(&ctx, batch, GpuActivation::Tanh).expect("toy CNF");
        let theta = GpuVec::from_host(&ctx, &vec![0.01; cnf.param_len()]);
        let z = GpuVec::from_host(&ctx, &vec![0.1; cnf.state_len()]);
        let mut dz = GpuVec::zeros(&ctx, cnf.state_len());
        group.bench_with_input(
            BenchmarkId::new("toy-cnf-f-x10-readback", batch),
            &batch,
            |b, _| {
                b.iter(|| {
                    for _ in 0..10 {
                        cnf.eval(0.1, &z, &theta, &mut dz);
                    }
                    dz.all_finite()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, gpu);
criterion_main!(benches);
