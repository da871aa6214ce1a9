//! Cost of one recorded dispatch on this adapter: many small vector operations, one readback.
//!
//! ```text
//! cargo run --release -p gpu --example dispatch_cost
//! ```

use gpu::{GpuContext, GpuVec};
use rk::Vector;
use std::time::Instant;

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
    Ok(())
}
