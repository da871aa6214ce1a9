//! The GPU adapter's f32 peak, the figure the kernel table's GFLOP/s are a share of: a
//! vendor's published number where the adapter's name matches one (or `--peak-gflops`), and
//! the rate measured on the adapter by `gpu::measure_f32_peak` (checked multiply-add chains).

use crate::results::{GpuPeak, MeasuredPeak};
use gpu::GpuContext;
use std::sync::Arc;

/// Where [`known_f32_peak_gflops`]'s figures come from.
pub const KNOWN_PEAK_SOURCE: &str = "NVIDIA H100/H200 data sheet, FP32 without tensor cores";

/// The f32 peak of known cards (vendor data sheets, non-tensor-core FP32), GFLOP/s: H100 SXM
/// and H200 66 900, H100 PCIe 51 200; `None` for any other adapter.
pub fn known_f32_peak_gflops(adapter: &str) -> Option<f64> {
    let a = adapter.to_uppercase();
    if a.contains("H100") && a.contains("PCIE") {
        Some(51_200.0)
    } else if a.contains("H100") || a.contains("H200") {
        Some(66_900.0)
    } else {
        None
    }
}

/// The adapter's f32 peak: `given` (`--peak-gflops`) or its data sheet's, and, unless
/// `seconds` is 0, measured over about `seconds` (`gpu::measure_f32_peak`; a failed
/// measurement is recorded and logged, not fatal to the bench).
pub fn f32_peak(ctx: &Arc<GpuContext>, given: Option<f64>, seconds: f64) -> GpuPeak {
    let (published_gflops, published_source) = match given {
        Some(p) => (Some(p), Some("--peak-gflops".to_string())),
        None => match known_f32_peak_gflops(&ctx.adapter_info.name) {
            Some(p) => (Some(p), Some(KNOWN_PEAK_SOURCE.to_string())),
            None => (None, None),
        },
    };
    let (measured, measured_error) = if seconds > 0.0 {
        let settings = gpu::PeakSettings {
            seconds,
            ..gpu::PeakSettings::default()
        };
        match gpu::measure_f32_peak(ctx, settings) {
            Ok(p) => {
                eprintln!(
                    "gpu: measured f32 peak {:.1} GFLOP/s ({} invocations × {} trips, {:.3} s per run)",
                    p.gflops, p.invocations, p.trips, p.seconds
                );
                (Some(MeasuredPeak::from(p)), None)
            }
            Err(e) => {
                eprintln!("gpu: the f32 peak measurement failed: {e}");
                (None, Some(e.to_string()))
            }
        }
    } else {
        (None, None)
    };
    GpuPeak {
        published_gflops,
        published_source,
        measured,
        measured_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_card_peaks() {
        let peak = known_f32_peak_gflops;
        assert_eq!(peak("NVIDIA H100 80GB HBM3"), Some(66_900.0));
        assert_eq!(peak("NVIDIA H100 PCIe"), Some(51_200.0));
        assert_eq!(peak("NVIDIA H200"), Some(66_900.0));
        assert_eq!(peak("llvmpipe (LLVM 15.0.6, 256 bits)"), None);
    }
}
