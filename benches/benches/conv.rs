//! torchdiffeq's MNIST ODE block (`nn::ConvOdeFunc`, width 64 on 6 × 6 maps, the shape inside
//! `odenet_mnist`) at batch 128, f32: one evaluation `f` and one VJP, in images per second.
//!
//! FLOP floor per image (the two `ConcatConv2d` products; norms and ReLUs are `O(C·H·W)`):
//! `2 × 2·C·9(C + 1)·H·W = 2 × 2·64·585·36 = 5.39 MFLOP`; a VJP is the forward again plus the
//! `W̄` and `x̄` products of the same size: 3 × that. Divide the reported images/s by the
//! machine's sustained single-core f32 matrix-product rate over these numbers to see how close
//! the kernels come (printed once at start).

use adjoint::Vjp;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nn::{ConvOdeFunc, Rng};
use rk::Rhs;
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let (batch, channels, side) = (128usize, 64usize, 6usize);
    let mut f = ConvOdeFunc::<f32>::new(batch, channels, side, side).expect("block");
    let mut rng = Rng::new(1);
    let p = f.init_params(&mut rng);
    let x: Vec<f32> = (0..f.state_len()).map(|_| rng.normal() as f32).collect();
    let a = x.clone();
    let mut out = vec![0.0f32; x.len()];
    let (mut adj_z, mut adj_p) = (vec![0.0f32; x.len()], vec![0.0f32; p.len()]);
    let flops = f.flops_per_image();
    println!(
        "conv block: {:.2} MFLOP per image per evaluation, {:.2} per VJP",
        flops as f64 / 1e6,
        3.0 * flops as f64 / 1e6
    );
    let mut group = c.benchmark_group("nn/conv_block_f32");
    group.sample_size(20);
    group.throughput(Throughput::Elements(batch as u64));
    group.bench_with_input(BenchmarkId::new("eval", batch), &batch, |b, _| {
        b.iter(|| {
            f.eval(0.5, &x, &p, &mut out);
            black_box(out[0])
        })
    });
    group.bench_with_input(BenchmarkId::new("vjp", batch), &batch, |b, _| {
        b.iter(|| {
            f.vjp(0.5, &x, &p, &a, None, &mut adj_z, &mut adj_p);
            black_box(adj_p[0])
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
