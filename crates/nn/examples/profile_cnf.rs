//! Times the pieces of one toy-CNF evaluation at batch 100 (a profiling aid).
//!
//! Run with `cargo run --release -p irdm-nn --example profile_cnf`.
use nn::gemm::{gemm, n, t};
use nn::{Activation, Rng, toy_cnf};
use rk::Rhs;
use std::time::Instant;

fn main() {
    let b = 100;
    let mut cnf = toy_cnf::<f32>(b, Activation::Tanh).expect("model");
    let mut rng = Rng::new(1);
    let p = cnf.net.init_params(&mut rng);
    let state: Vec<f32> = (0..3 * b).map(|_| rng.normal() as f32).collect();
    let mut out = vec![0.0f32; 3 * b];
    let reps = 2000;
    let s = Instant::now();
    for _ in 0..reps {
        cnf.eval(0.25, &state, &p, &mut out);
    }
    println!(
        "eval: {:.1} µs",
        s.elapsed().as_secs_f64() / reps as f64 * 1e6
    );
    let (rows, din, dout) = (300, 64, 64);
    let x: Vec<f32> = (0..rows * din).map(|i| (i % 7) as f32).collect();
    let w: Vec<f32> = (0..dout * din).map(|i| (i % 5) as f32).collect();
    let mut c = vec![0.0f32; rows * dout];
    let s = Instant::now();
    for _ in 0..reps {
        gemm(&mut c, rows, dout, din, n(&x), t(&w), 1.0, false);
    }
    println!(
        "gemm 300x64x64 (B transposed): {:.1} µs",
        s.elapsed().as_secs_f64() / reps as f64 * 1e6
    );
    let s = Instant::now();
    for _ in 0..reps {
        gemm(&mut c, rows, dout, din, n(&x), n(&w), 1.0, false);
    }
    println!(
        "gemm 300x64x64: {:.1} µs",
        s.elapsed().as_secs_f64() / reps as f64 * 1e6
    );
}
