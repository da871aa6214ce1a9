//! Barycentric coefficients for N = 4..128 and vector interpolation for 200 … 10⁶ floats.

use cheb::{Grid, Interpolant, Kind};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn coefficients(c: &mut Criterion) {
    let mut group = c.benchmark_group("cheb/coefficients");
    for kind in [Kind::Lobatto, Kind::First] {
        for n in [4usize, 8, 16, 32, 64, 128] {
            let grid = Grid::<f64>::new(kind, n, 0.0, 1.0).expect("valid grid");
            let mut l = vec![0.0; grid.len()];
            group.bench_with_input(BenchmarkId::new(kind.name(), n), &n, |b, _| {
                b.iter(|| grid.coefficients(black_box(0.377), &mut l).expect("inside"))
            });
        }
    }
    group.finish();
}

fn interpolate_vector(c: &mut Criterion) {
    let mut group = c.benchmark_group("cheb/interpolate_vector");
    group.sample_size(20);
    for n in [16usize, 64] {
        for dim in [200usize, 10_000, 1_000_000] {
            let grid = Grid::<f32>::new(Kind::Lobatto, n, 0.0, 1.0).expect("valid grid");
            let values: Vec<f32> = (0..(n + 1) * dim).map(|i| (i % 97) as f32 * 0.01).collect();
            let mut interp = Interpolant::new(grid, values, dim).expect("valid data");
            let mut out = vec![0.0f32; dim];
            group.throughput(Throughput::Bytes((4 * (n + 1) * dim) as u64));
            group.bench_with_input(BenchmarkId::new(format!("n{n}"), dim), &dim, |b, _| {
                b.iter(|| interp.eval(black_box(0.377), &mut out).expect("inside"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, coefficients, interpolate_vector);
criterion_main!(benches);
