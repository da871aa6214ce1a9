//! Reductions whose results ride with the next readback ([`rk::Vector::max_abs_groups_deferred`]).
//!
//! A deferred reduction is recorded like any other, and its per-workgroup partials are copied
//! into a buffer of their own (from the pool of vector buffers), so that later reductions may
//! reuse the shared partial-sum buffer. Every readback ([`GpuContext::read_many`]) copies the
//! partials of all deferred reductions recorded before it into its staging buffer too and hands
//! them to their slots: a check recorded before a solver's first norm costs no round trip of its
//! own. Asking a slot that no readback has filled yet reads back then.

use super::*;

/// Where a deferred reduction's partials arrive: `None` until a readback brings them (a
/// failed readback leaves NaN partials).
pub(crate) type DeferredSlot = Arc<Mutex<Option<Vec<Vec<f32>>>>>;

/// A deferred reduction waiting for the next readback.
pub(super) struct DeferredRead {
    /// Its partials, copied out of the shared partial-sum buffer (a pool buffer of `len`).
    buffer: wgpu::Buffer,
    /// Partials per job, in order; `len` is their sum.
    per_job: Vec<usize>,
    len: usize,
    slot: DeferredSlot,
}

impl GpuContext {
    /// Records the reductions `items` as [`GpuContext::reduce_jobs`] does, without reading them
    /// back: their partials (per job, in order) arrive in the returned slot with the next
    /// readback, or when [`GpuContext::resolve_deferred`] asks for them.
    pub(crate) fn reduce_jobs_deferred(&self, items: &[ReduceJob<'_>]) -> DeferredSlot {
        let (partials, cap, sources) = self.record_reductions(items);
        let per_job: Vec<usize> = sources.iter().map(|s| s.1).collect();
        let len: usize = per_job.iter().sum();
        let buffer = self.storage(len);
        self.copy_span((&partials, 0), (&buffer, 0), len);
        self.partials.put(partials, cap);
        let slot: DeferredSlot = Arc::new(Mutex::new(None));
        self.deferred
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(DeferredRead {
                buffer,
                per_job,
                len,
                slot: Arc::clone(&slot),
            });
        slot
    }

    /// The partials of a deferred reduction: those a readback since brought, or read back now
    /// (with every other deferred reduction still waiting).
    pub(crate) fn resolve_deferred(&self, slot: &DeferredSlot) -> Vec<Vec<f32>> {
        let waiting = || slot.lock().unwrap_or_else(|e| e.into_inner()).is_none();
        if waiting() {
            // An empty readback still carries the deferred reductions; a failure fills the
            // slots with NaN.
            let _ = self.read_many(&[]);
        }
        slot.lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default()
    }

    /// The deferred reductions recorded so far, taken for the readback about to be recorded.
    pub(super) fn take_deferred(&self) -> Vec<DeferredRead> {
        std::mem::take(&mut *self.deferred.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl DeferredRead {
    /// Floats this read adds to a readback.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The span of its partials, for the readback's copy.
    pub(super) fn source(&self) -> (&wgpu::Buffer, usize, usize) {
        (&self.buffer, 0, self.len)
    }

    /// Hands its partials (`data`: its span of the readback, or `None` after a failed one: NaN)
    /// to its slot and gives its buffer back to the pool.
    pub(super) fn deliver(self, ctx: &GpuContext, data: Option<&[f32]>) {
        let mut at = 0;
        let parts = self
            .per_job
            .iter()
            .map(|&n| {
                let part = match data {
                    Some(d) => d[at..at + n].to_vec(),
                    None => vec![f32::NAN; n],
                };
                at += n;
                part
            })
            .collect();
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(parts);
        ctx.recycle(self.buffer, self.len);
    }
}
