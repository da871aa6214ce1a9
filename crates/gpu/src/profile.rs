//! Kernel timing with GPU timestamp queries ([`crate::GpuContext::start_profiling`]).
//!
//! While profiling is on, every dispatch runs in a compute pass of its own whose beginning and
//! end the device stamps (`TIMESTAMP_QUERY`); at each submission the stamps are resolved, read
//! back and the differences, times the queue's timestamp period, summed per kernel entry point.
//! The time of a kernel is thus what the device spent from the start to the end of its pass:
//! its execution plus the pass's own begin and end, without the host's recording, the barriers
//! between passes or the submissions. Profiling waits for every submission, so it is for finding
//! where device time goes, not for timing whole iterations.

use crate::error::GpuError;
use crate::readback::map_and_copy;
use std::collections::BTreeMap;

/// Dispatches timed between two resolves (two queries each; wgpu allows 4096 per set).
pub(crate) const MAX_TIMED: usize = 2048;

/// Device time of one kernel over a profiled stretch.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// The kernel's entry point in its WGSL module.
    pub kernel: String,
    /// Dispatches of it.
    pub calls: usize,
    /// Device seconds, summed over the calls.
    pub seconds: f64,
}

/// The query set, its resolve and readback buffers, and the sums so far.
pub(crate) struct Profiler {
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// Kernel of each timed pass recorded since the last resolve (pass `i` wrote queries `2i`
    /// and `2i + 1`).
    timed: Vec<&'static str>,
    /// Calls and nanoseconds per kernel.
    totals: BTreeMap<&'static str, (usize, f64)>,
    /// Nanoseconds per timestamp tick.
    period_ns: f64,
    /// The first readback failure, reported by [`Profiler::finish`].
    failure: Option<String>,
}

impl Profiler {
    pub(crate) fn new(device: &wgpu::Device, queue: &wgpu::Queue) -> Self {
        let count = (2 * MAX_TIMED) as u32;
        let bytes = 8 * u64::from(count);
        Self {
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("kernel timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count,
            }),
            resolve: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("resolved timestamps"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            readback: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            timed: Vec::new(),
            totals: BTreeMap::new(),
            period_ns: f64::from(queue.get_timestamp_period()),
            failure: None,
        }
    }

    /// Whether the query set is full (the caller submits, which resolves it).
    pub(crate) fn is_full(&self) -> bool {
        self.timed.len() == MAX_TIMED
    }

    /// Timestamp writes for the pass of the next dispatch, of kernel `name`.
    pub(crate) fn next_pass(&mut self, name: &'static str) -> wgpu::ComputePassTimestampWrites<'_> {
        debug_assert!(!self.is_full());
        let i = (2 * self.timed.len()) as u32;
        self.timed.push(name);
        wgpu::ComputePassTimestampWrites {
            query_set: &self.queries,
            beginning_of_pass_write_index: Some(i),
            end_of_pass_write_index: Some(i + 1),
        }
    }

    /// Records the resolve of this submission's stamps and their copy to the readback buffer
    /// (after the last pass has ended); [`Profiler::collect`] reads them once submitted.
    pub(crate) fn record_resolve(&self, encoder: &mut wgpu::CommandEncoder) -> bool {
        if self.timed.is_empty() {
            return false;
        }
        let n = (2 * self.timed.len()) as u32;
        encoder.resolve_query_set(&self.queries, 0..n, &self.resolve, 0);
        encoder.copy_buffer_to_buffer(&self.resolve, 0, &self.readback, 0, 8 * u64::from(n));
        true
    }

    /// Waits for the submission that resolved the stamps and adds them to the sums.
    pub(crate) fn collect(&mut self, device: &wgpu::Device) {
        let timed = std::mem::take(&mut self.timed);
        match self.read(device, 2 * timed.len()) {
            Ok(ticks) => {
                for (k, name) in timed.iter().enumerate() {
                    let dt = ticks[2 * k + 1].saturating_sub(ticks[2 * k]);
                    let e = self.totals.entry(name).or_insert((0, 0.0));
                    e.0 += 1;
                    e.1 += dt as f64 * self.period_ns;
                }
            }
            Err(e) => {
                self.failure.get_or_insert(e);
            }
        }
    }

    fn read(&self, device: &wgpu::Device, n: usize) -> Result<Vec<u64>, String> {
        let ticks = map_and_copy(device, &self.readback, 8 * n)?;
        self.readback.unmap();
        Ok(ticks)
    }

    /// The sums, slowest kernel first, or the first readback failure.
    pub(crate) fn finish(self) -> Result<Vec<KernelTime>, GpuError> {
        if let Some(e) = self.failure {
            return Err(GpuError::Readback(format!("kernel timestamps: {e}")));
        }
        let mut out: Vec<KernelTime> = self
            .totals
            .into_iter()
            .map(|(name, (calls, ns))| KernelTime {
                kernel: name.to_string(),
                calls,
                seconds: 1e-9 * ns,
            })
            .collect();
        out.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        Ok(out)
    }
}
