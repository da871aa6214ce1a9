//! Per-operation costs on this adapter: a recorded dispatch (many small vector operations, one
//! readback), an error norm over four groups (its own submission and readback, as once per
//! adaptive step), recording IRDM's interpolation `combine_rows` (coefficients uploaded
//! with each call), and the host's recording alone (no submission inside the timing) of vector
//! operations and of the toy CNF's `f` and adjoint right-hand side. Medians of repeated runs.
//!
//! ```text
//! cargo run --release -p irdm-gpu --example dispatch_cost
//! ```

use adjoint::VectorVjp;
use gpu::{GpuActivation, GpuCnf, GpuContext, GpuVec};
use rk::{Atol, Rhs, Vector};
use std::time::Instant;

/// Median of `reps` timings of `f`, in µs per `per` operations.
fn median_us(reps: usize, per: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            1e6 * start.elapsed().as_secs_f64() / per as f64
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ctx = GpuContext::new()?;
    let mut v = GpuVec::zeros(&ctx, 1024);
    let x = GpuVec::zeros(&ctx, 1024);
    for &n in &[10usize, 100, 1000] {
        let start = Instant::now();
        for _ in 0..n {
            v.axpby(0.5, &x, 0.5);
        }
        let recorded = start.elapsed().as_secs_f64();
        let _ = v.dot(&v);
        let total = start.elapsed().as_secs_f64();
        println!(
            "{n:5} dispatches: record {:.1} µs each, record + run {:.1} µs each",
            1e6 * recorded / n as f64,
            1e6 * total / n as f64
        );
    }
    // The same on 300 000 floats (the toy CNF's state at batch 10⁵): where size starts to count.
    let mut big = GpuVec::zeros(&ctx, 300_000);
    let big_x = GpuVec::zeros(&ctx, 300_000);
    let per = median_us(5, 1000, || {
        for _ in 0..1000 {
            big.axpby(0.5, &big_x, 0.5);
        }
        let _ = big.dot(&big);
    });
    println!(" 1000 dispatches on 300 000 floats: record + run {per:.1} µs each");
    let y = GpuVec::from_host(&ctx, &vec![1.0; 1024]);
    let groups = [0..256, 256..512, 512..768, 768..1024];
    let atol = Atol::Scalar(1e-6);
    let norm = median_us(51, 1, || {
        let _ = x.error_norm(&y, &y, 1e-5, &atol, &groups);
    });
    println!("error norm, 4 groups of 256: {norm:.1} µs (one submission and readback)");
    let rows = GpuVec::zeros(&ctx, 17 * 1024);
    let coeffs = [0.1f32; 17];
    let mut recorded = Vec::new();
    let total = median_us(21, 100, || {
        let start = Instant::now();
        for _ in 0..100 {
            v.combine_rows(&coeffs, &rows);
        }
        recorded.push(1e6 * start.elapsed().as_secs_f64() / 100.0);
        let _ = v.all_finite();
    });
    recorded.sort_by(f64::total_cmp);
    println!(
        "combine_rows of 17 rows: record {:.1} µs each, record + run {total:.1} µs each",
        recorded[recorded.len() / 2]
    );
    // The host's recording alone: 16 dispatches (fewer than the context records before it
    // submits on its own), timed without the readback that follows.
    let record_only = |mut op: Box<dyn FnMut() + '_>, per: usize| {
        let mut t: Vec<f64> = (0..201)
            .map(|_| {
                let start = Instant::now();
                op();
                let us = 1e6 * start.elapsed().as_secs_f64() / per as f64;
                let _ = x.all_finite();
                us
            })
            .collect();
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    let axpby = record_only(
        Box::new(|| {
            for _ in 0..16 {
                v.axpby(0.5, &x, 0.5);
            }
        }),
        16,
    );
    println!("record only: axpby {axpby:.2} µs per dispatch");
    let batch = 100;
    let mut cnf = GpuCnf::toy(&ctx, batch, GpuActivation::Tanh)?;
    let theta = GpuVec::zeros(&ctx, cnf.param_len());
    let z = GpuVec::from_host(&ctx, &vec![0.1; cnf.state_len()]);
    let mut dz = GpuVec::zeros(&ctx, cnf.state_len());
    let d0 = ctx.dispatches();
    cnf.eval(0.1, &z, &theta, &mut dz);
    let f_dispatches = ctx.dispatches() - d0;
    let f = record_only(Box::new(|| cnf.eval(0.1, &z, &theta, &mut dz)), 1);
    let ax = GpuVec::zeros(&ctx, cnf.state_len() + cnf.param_len());
    let mut dax = GpuVec::zeros(&ctx, cnf.state_len() + cnf.param_len());
    let d0 = ctx.dispatches();
    cnf.adjoint_rhs(0.1, &z, 0, &theta, &ax, 0, &mut dax, None, 0);
    let vjp_dispatches = ctx.dispatches() - d0;
    let vjp = record_only(
        Box::new(|| cnf.adjoint_rhs(0.1, &z, 0, &theta, &ax, 0, &mut dax, None, 0)),
        1,
    );
    println!(
        "record only, toy CNF at batch {batch}: f {f:.1} µs ({f_dispatches} dispatches), adjoint RHS {vjp:.1} µs ({vjp_dispatches} dispatches)"
    );
    Ok(())
}
