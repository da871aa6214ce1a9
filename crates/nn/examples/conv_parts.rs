//! Times the parts of one `ConcatConv2d` of the MNIST ODE block (width 64, 6 × 6, batch 128):
//! the whole forward, its matrix product alone, and the VJP.
use nn::gemm::{gemm, n as nop};
use nn::{Conv2d, ConvWork};
use std::time::Instant;

fn main() {
    let c = Conv2d {
        in_channels: 64,
        out_channels: 64,
        kernel: 3,
        stride: 1,
        padding: 1,
        height: 6,
        width: 6,
        time_channel: true,
    };
    let b = 128;
    let x: Vec<f32> = (0..b * c.in_len()).map(|i| (i % 17) as f32 * 0.1).collect();
    let w: Vec<f32> = (0..c.weight_len())
        .map(|i| (i % 13) as f32 * 0.01)
        .collect();
    let bias = vec![0.1f32; 64];
    let mut y = vec![0.0f32; b * c.out_len()];
    let mut work = ConvWork::default();
    let reps = 50;
    let time = |f: &mut dyn FnMut()| {
        f();
        let s = Instant::now();
        for _ in 0..reps {
            f();
        }
        s.elapsed().as_secs_f64() / reps as f64 * 1e3
    };
    let fwd = time(&mut || c.forward(0.5, &x, &w, &bias, b, &mut work, &mut y));
    let (kk, bp) = (c.patch_len(), b * c.out_pixels());
    let cols = vec![0.5f32; kk * bp];
    let mut prod = vec![0.0f32; 64 * bp];
    let mm = time(&mut || gemm(&mut prod, 64, bp, kk, nop(&w), nop(&cols), 1.0, false));
    let ybar = y.clone();
    let (mut xbar, mut wbar, mut bbar) = (
        vec![0.0f32; x.len()],
        vec![0.0f32; w.len()],
        vec![0.0f32; 64],
    );
    let vjp = time(&mut || c.vjp(&ybar, &w, &mut work, Some(&mut xbar), &mut wbar, &mut bbar));
    println!("forward {fwd:.3} ms (product alone {mm:.3} ms), vjp {vjp:.3} ms");
}
