//! Buffers kept between uses: the staging/readback caches and the pool of dropped vectors' storage
//! buffers by length.

use super::POOL_FLOATS;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One buffer kept between uses: taken out for the duration of a reduction or readback (a
/// concurrent user finding it taken makes its own), put back if at least as large as the one
/// there. No buffer is created per step once the largest size has been seen.
pub(super) struct BufferCache {
    pub(super) usage: wgpu::BufferUsages,
    pub(super) label: &'static str,
    pub(super) kept: Mutex<Option<(wgpu::Buffer, usize)>>,
}

impl BufferCache {
    pub(super) fn new(label: &'static str, usage: wgpu::BufferUsages) -> Self {
        Self {
            usage,
            label,
            kept: Mutex::new(None),
        }
    }

    /// A buffer of at least `floats` floats, its capacity, and whether it is new (`created`
    /// counts a new one).
    pub(super) fn take(
        &self,
        device: &wgpu::Device,
        floats: usize,
        created: &AtomicUsize,
    ) -> (wgpu::Buffer, usize, bool) {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner()).take();
        match kept {
            Some((b, cap)) if cap >= floats => (b, cap, false),
            _ => {
                let cap = floats.max(1).next_power_of_two();
                created.fetch_add(1, Ordering::Relaxed);
                let b = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(self.label),
                    size: (4 * cap) as u64,
                    usage: self.usage,
                    mapped_at_creation: false,
                });
                (b, cap, true)
            }
        }
    }

    pub(super) fn put(&self, buffer: wgpu::Buffer, cap: usize) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.as_ref().is_none_or(|(_, c)| *c <= cap) {
            *kept = Some((buffer, cap));
        }
    }
}

/// Storage buffers of dropped vectors by length: a training loop drops and makes the same
/// vectors every iteration, and a buffer from the pool needs no allocation and keeps its bind
/// groups.
pub(super) struct Pool {
    pub(super) by_len: HashMap<usize, Vec<wgpu::Buffer>>,
    pub(super) floats: usize,
    /// Most floats held ([`POOL_FLOATS`]; smaller in tests).
    pub(super) limit: usize,
}

impl Default for Pool {
    fn default() -> Self {
        Self {
            by_len: HashMap::new(),
            floats: 0,
            limit: POOL_FLOATS,
        }
    }
}

impl Pool {
    pub(super) fn take(&mut self, len: usize) -> Option<wgpu::Buffer> {
        let buffer = self.by_len.get_mut(&len)?.pop()?;
        self.floats -= len;
        Some(buffer)
    }

    /// Keeps `buffer` unless the pool would pass its limit; whether it was kept.
    pub(super) fn put(&mut self, buffer: wgpu::Buffer, len: usize) -> bool {
        if self.floats + len > self.limit {
            return false;
        }
        self.floats += len;
        self.by_len.entry(len).or_default().push(buffer);
        true
    }
}
