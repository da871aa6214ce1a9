//! One evaluation and one VJP of the toy CNF (2 → 64 → 64 → 2 concat-squash, tanh, exact
//! divergence) at batch 100 and 10 000, f32 and f64.
//!
//! Matrix-product floor per evaluation, with `R = 3B` stacked rows (primal + 2 tangents):
//! `2R(2·64 + 64·64 + 64·2) = 8704 R` flops; a VJP adds the forward again plus two products per
//! layer backward: `3 × 8704 R`. Throughput below is reported in those flops.

use adjoint::Vjp;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nn::{Activation, Float, Rng, toy_cnf};
use rk::Rhs;
use std::hint::black_box;

fn bench_type<T: Float>(c: &mut Criterion, label: &str) {
    let mut group = c.benchmark_group(format!("nn/toy_cnf_{label}"));
    group.sample_size(20);
    for batch in [100usize, 10_000] {
        let mut cnf = toy_cnf::<T>(batch, Activation::Tanh).expect("model");
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
        group.bench_with_input(BenchmarkId::new("eval", batch), &batch, |b, _| {
            b.iter(|| {
                cnf.eval(<T as rk::Scalar>::of(0.25), &state, &p, &mut out);
                black_box(out[0])
            })
        });
        group.throughput(Throughput::Elements(3 * flops));
        group.bench_with_input(BenchmarkId::new("vjp", batch), &batch, |b, _| {
            b.iter(|| {
                cnf.vjp(
                    <T as rk::Scalar>::of(0.25),
                    &state,
                    &p,
                    &a,
                    None,
                    &mut adj_z,
                    &mut adj_p,
                );
                black_box(adj_p[0])
            })
        });
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    bench_type::<f32>(c, "f32");
    bench_type::<f64>(c, "f64");
}

criterion_group!(benches, bench);
criterion_main!(benches);
