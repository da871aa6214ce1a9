//! This adapter's measured f32 multiply-add throughput ([`gpu::measure_f32_peak`]): three
//! runs of checked multiply-add chains, the median's rate, for a kernel's share of the peak.
//!
//! ```text
//! cargo run --release -p irdm-gpu --example f32_peak            # 0.3 s of timed runs
//! cargo run --release -p irdm-gpu --example f32_peak -- 2.0     # 2 s
//! ```

use gpu::{GpuContext, PeakSettings, measure_f32_peak};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds = match std::env::args().nth(1) {
        Some(s) => s
            .parse::<f64>()
            .map_err(|e| format!("seconds {s:?}: {e}"))?,
        None => PeakSettings::default().seconds,
    };
    let ctx = GpuContext::new()?;
    let settings = PeakSettings {
        seconds,
        ..PeakSettings::default()
    };
    let peak = measure_f32_peak(&ctx, settings)?;
    println!(
        "{}: {:.1} GFLOP/s f32 ({} invocations × {} trips × {} FLOP in {:.4} s, median of {})",
        ctx.adapter_info.name,
        peak.gflops,
        peak.invocations,
        peak.trips,
        gpu::FLOPS_PER_TRIP,
        peak.seconds,
        peak.runs
    );
    Ok(())
}
