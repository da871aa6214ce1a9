//! The adapter's f32 arithmetic throughput, measured: the peak a kernel table's GFLOP/s are a
//! share of where no published figure names the adapter (lavapipe, a laptop GPU, an unknown
//! card), and a check of the published one where there is.
//!
//! The kernel (`peak.wgsl`, `fma_chains`) gives each of `n` invocations 16 independent chains
//! `x ← a x + b` of `4 s` multiply-adds (`s` trips through a body unrolled four times) and
//! nothing else to do but write one float: `128 s n` floating-point operations (a
//! multiply-add counts as two, as vendors count their peaks). Every result is checked against
//! the closed form
//!
//! ```text
//! x_m = c* + a^m (x_0 − c*),   c* = b / (1 − a),   m = 4 s,
//! ```
//!
//! summed over the invocation's chains, so that a rate is never one of skipped or wrong work.
//! With `a = 15/16` and `b = 1/2` (`c* = 8`, starts in `[0, 4)`) the chains contract: each
//! rounding (at most `2⁻²⁴ |x| ≤ 2⁻²⁴ · 8`, twice where the driver does not fuse) is damped by
//! `a` per step, so a chain's error stays below `2 · 2⁻²⁴ · 8 / (1 − a) ≈ 1.5 · 10⁻⁵`, and the
//! sum's (16 chains, 15 additions of values up to 128) below `4 · 10⁻⁴`; the tolerance is
//! `10⁻³`.
//!
//! The time of a run is the host's wall time from recording the dispatch to having the first
//! results back, so the rate is a lower bound: the run is lengthened until it lasts a third of
//! the requested time, against which one submission and readback (tens of µs) is small.

use crate::context::GpuContext;
use crate::error::GpuError;
use crate::kernel::Kernel;
use crate::vector::GpuVec;
use std::sync::Arc;
use std::time::Instant;

/// The kernel.
const SOURCE: &str = include_str!("peak.wgsl");

/// Multiply-add factor and offset of every chain (`c* = 8`).
const A: f32 = 0.9375;
const B: f32 = 0.5;

/// Floating-point operations per invocation and trip through the loop body.
pub const FLOPS_PER_TRIP: u64 = 128;

/// Results checked after each run (the first invocations').
const CHECKED: usize = 256;

/// Largest trip count a run may take.
const MAX_TRIPS: u32 = 1 << 22;

/// Largest [`PeakSettings::seconds`] that [`measure_f32_peak`] accepts.
pub const MAX_PEAK_SECONDS: f64 = 60.0;

/// What [`measure_f32_peak`] does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeakSettings {
    /// Invocations per dispatch (at least 256; default `2²²`: enough waves that the last,
    /// partly filled one costs a card of 10⁵ resident invocations about 3 %).
    pub invocations: u32,
    /// Roughly how long the three timed runs take together, seconds (default 0.3).
    pub seconds: f64,
}

impl Default for PeakSettings {
    fn default() -> Self {
        Self {
            invocations: 1 << 22,
            seconds: 0.3,
        }
    }
}

/// A measured f32 peak.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct F32Peak {
    /// Floating-point operations per second, in units of 10⁹ (median of the timed runs).
    pub gflops: f64,
    /// Median wall seconds of one timed run.
    pub seconds: f64,
    /// Floating-point operations of one run (`128 · trips · invocations`).
    pub flops: f64,
    /// Trips through the kernel's loop body per invocation.
    pub trips: u32,
    /// Invocations per run.
    pub invocations: u32,
    /// Timed runs (after the calibration runs).
    pub runs: usize,
}

/// Measures this adapter's f32 multiply-add throughput (see the module docs): grows the work
/// per invocation (up to 16× per run) until one run lasts a third of `settings.seconds`, then
/// times three runs.
///
/// Errors: settings out of range (fewer than 256 invocations, more than a buffer holds, a time
/// not in `(0, 60]` s), a failed readback, or results that miss their closed form.
///
/// ```
/// use gpu::{GpuContext, PeakSettings, measure_f32_peak};
///
/// # fn main() -> Result<(), gpu::GpuError> {
/// let Ok(ctx) = GpuContext::new() else { return Ok(()) }; // no adapter here
/// let settings = PeakSettings { invocations: 1 << 14, seconds: 0.02 };
/// let peak = measure_f32_peak(&ctx, settings)?;
/// assert!(peak.gflops > 0.0);
/// assert_eq!(peak.flops, 128.0 * f64::from(peak.trips) * f64::from(1u32 << 14));
/// # Ok(())
/// # }
/// ```
pub fn measure_f32_peak(
    ctx: &Arc<GpuContext>,
    settings: PeakSettings,
) -> Result<F32Peak, GpuError> {
    let PeakSettings {
        invocations,
        seconds,
    } = settings;
    if !(seconds > 0.0 && seconds <= MAX_PEAK_SECONDS) {
        return Err(invalid(format!(
            "seconds = {seconds}: the time must lie in (0, {MAX_PEAK_SECONDS}]"
        )));
    }
    if invocations < 256 {
        return Err(invalid(format!(
            "{invocations} invocations: at least one workgroup of 256 is needed"
        )));
    }
    let chains = FmaChains::new(ctx, invocations as usize)?;
    let target = seconds / 3.0;
    // The first run builds the pipeline's state on the device; it is not timed.
    chains.run(invocations, 1)?;
    let mut trips = 1u32;
    loop {
        let t = chains.timed_run(invocations, trips)?;
        if t >= target || trips == MAX_TRIPS {
            break;
        }
        // Grow towards the target (a little past it), by at most 16× per calibration run.
        let grow = if t > 0.0 { 1.1 * target / t } else { 16.0 };
        let next = (f64::from(trips) * grow.clamp(1.1, 16.0)).ceil();
        trips = next.min(f64::from(MAX_TRIPS)) as u32;
    }
    let mut times = Vec::with_capacity(3);
    for _ in 0..3 {
        times.push(chains.timed_run(invocations, trips)?);
    }
    times.sort_by(f64::total_cmp);
    let median = times[1];
    let flops = (FLOPS_PER_TRIP * u64::from(trips) * u64::from(invocations)) as f64;
    Ok(F32Peak {
        gflops: flops / median / 1e9,
        seconds: median,
        flops,
        trips,
        invocations,
        runs: times.len(),
    })
}

/// The `fma_chains` kernel and the buffer its invocations write.
struct FmaChains {
    kernel: Kernel,
    out: GpuVec,
}

impl FmaChains {
    /// The kernel, and room for the results of `len` invocations.
    fn new(ctx: &Arc<GpuContext>, len: usize) -> Result<Self, GpuError> {
        let out = GpuVec::try_zeros(ctx, len)?;
        let kernel = ctx
            .pipelines("f32 peak", SOURCE, &["fma_chains"], &[])
            .pop()
            .expect("one entry point");
        Ok(Self { kernel, out })
    }

    /// Runs `n` invocations of `trips` trips each and returns the first results (up to 256),
    /// each checked against its closed form.
    fn run(&self, n: u32, trips: u32) -> Result<Vec<f32>, GpuError> {
        self.run_and_read(n, trips, CHECKED.min(n as usize))
    }

    /// [`FmaChains::run`], timed: wall seconds from recording to the checked results.
    fn timed_run(&self, n: u32, trips: u32) -> Result<f64, GpuError> {
        let start = Instant::now();
        self.run(n, trips)?;
        Ok(start.elapsed().as_secs_f64())
    }

    /// Runs `n` invocations and reads back the first `read` floats of the buffer, checking
    /// those of invocations (the rest must be untouched zeros).
    fn run_and_read(&self, n: u32, trips: u32, read: usize) -> Result<Vec<f32>, GpuError> {
        let ctx = self.out.context();
        let words = [n, trips, A.to_bits(), B.to_bits()];
        ctx.dispatch_words(&self.kernel, n, &words, &[(0, self.out.buffer())]);
        let got = ctx.read(self.out.buffer(), read)?;
        for (i, &v) in got.iter().enumerate() {
            let want = if i < n as usize {
                expected_sum(i as u32, trips)
            } else {
                0.0
            };
            // A NaN is never close.
            let close = (f64::from(v) - want).abs() <= TOLERANCE;
            if !close {
                return Err(GpuError::Invalid {
                    what: "f32 peak kernel".into(),
                    reason: format!(
                        "invocation {i} of {n} after {trips} trips gave {v}, its closed form {want}: the adapter's arithmetic is wrong, so no rate is reported"
                    ),
                });
            }
        }
        Ok(got)
    }
}

/// Largest distance of a result from its closed form (see the module docs).
const TOLERANCE: f64 = 1e-3;

/// The closed form of invocation `i`'s result after `trips` trips: the sum over its 16 chains
/// of `c* + a^(4 trips) (x_0 − c*)`, `x_0 = c / 4 + (i mod 64) / 64` for chain `c`.
fn expected_sum(i: u32, trips: u32) -> f64 {
    let (a, b) = (f64::from(A), f64::from(B));
    let fixed = b / (1.0 - a);
    let decay = a.powf(4.0 * f64::from(trips));
    let s = f64::from(i % 64) / 64.0;
    (0..16)
        .map(|c| fixed + decay * (f64::from(c) / 4.0 + s - fixed))
        .sum()
}

fn invalid(reason: String) -> GpuError {
    GpuError::Invalid {
        what: "f32 peak measurement".into(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::test_context;

    /// Every invocation's result is its closed form after exactly the trips asked for, at a size
    /// that is not a multiple of the workgroup, and invocations past `n` write nothing.
    #[test]
    fn fma_chains_give_their_closed_form_for_every_trip_count() {
        let Some(ctx) = test_context() else { return };
        let chains = FmaChains::new(&ctx, 1280).expect("buffer");
        for trips in [0, 1, 2, 5, 17] {
            let got = chains.run_and_read(1000, trips, 1280).expect("checked");
            assert_eq!(got.len(), 1280);
            assert!(got[1000..].iter().all(|&v| v == 0.0));
            // The check tells these counts from one trip more.
            let next = expected_sum(7, trips + 1);
            assert!((f64::from(got[7]) - next).abs() > 10.0 * TOLERANCE);
        }
        // The closed form itself, by direct iteration in f64 for one invocation.
        let direct: f64 = (0..16)
            .map(|c| {
                let mut x = f64::from(c) / 4.0 + 5.0 / 64.0;
                for _ in 0..4 * 5 {
                    x = f64::from(A) * x + f64::from(B);
                }
                x
            })
            .sum();
        assert!((direct - expected_sum(5, 5)).abs() < 1e-12);
    }

    /// A measurement counts exactly the work it checked, and reports a positive finite rate.
    #[test]
    fn the_measured_peak_is_a_rate_of_counted_work() {
        let Some(ctx) = test_context() else { return };
        let settings = PeakSettings {
            invocations: 4096,
            seconds: 0.03,
        };
        let peak = measure_f32_peak(&ctx, settings).expect("measured");
        assert_eq!(peak.invocations, 4096);
        assert_eq!(peak.runs, 3);
        assert_eq!(
            peak.flops,
            (FLOPS_PER_TRIP * u64::from(peak.trips) * 4096) as f64
        );
        assert!(peak.gflops.is_finite() && peak.gflops > 0.0);
        assert!((peak.gflops - peak.flops / peak.seconds / 1e9).abs() <= 1e-9 * peak.gflops);
    }

    /// Settings out of range are errors, not runs.
    #[test]
    fn bad_peak_settings_are_errors() {
        let Some(ctx) = test_context() else { return };
        for (invocations, seconds) in [(4096, 0.0), (4096, f64::NAN), (4096, 61.0), (255, 0.1)] {
            let e = measure_f32_peak(
                &ctx,
                PeakSettings {
                    invocations,
                    seconds,
                },
            )
            .expect_err("refused");
            assert!(matches!(e, GpuError::Invalid { .. }), "{e}");
        }
    }
}
