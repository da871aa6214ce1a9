//! Bind groups kept between dispatches, keyed by kernel and bound buffers, so that a solver's
//! steps after the first create none.

use super::*;

/// Bind groups kept for reuse, keyed by kernel and bound buffers: the parameter uniform and the
/// data ring are bound with dynamic offsets, so a dispatch with the same kernel and buffers as an
/// earlier one (every step of a solve after the first, and with pooled vectors every training
/// iteration after the first) reuses its bind group.
///
/// A kept bind group holds its buffers alive, so the groups are dropped whenever the set of
/// buffers kernels may bind changes (`epoch`): a storage buffer created, or one released rather
/// than pooled (every buffer a kernel binds is created through the context, and released either
/// into the pool or with a note). The kept groups thus only ever hold buffers that are alive or
/// pooled, never memory the user has let go of.
#[derive(Default)]
pub(super) struct BindGroups {
    /// Groups by a hash of (kernel, buffers); each bucket compared exactly.
    kept: HashMap<u64, Vec<KeptGroup>>,
    /// `buffer_set` when the groups were last dropped.
    epoch: usize,
    /// Groups kept (at most [`MAX_KEPT_GROUPS`]).
    count: usize,
}

/// Most bind groups kept: beyond, all are dropped and made anew as needed. Vectors from the pool
/// take whichever buffer of their length was dropped last, so each training iteration meets some
/// new (kernel, buffers) combinations; the bound keeps them from piling up.
pub(super) const MAX_KEPT_GROUPS: usize = 1024;

/// One kept bind group and what it binds.
struct KeptGroup {
    kernel: usize,
    buffers: Vec<(u32, wgpu::Buffer)>,
    group: wgpu::BindGroup,
}

impl GpuContext {
    /// The bind group of `kernel` with `buffers`: a kept one, or a new one kept from now on
    /// (see [`BindGroups`]).
    pub(super) fn bind_group(
        &self,
        pending: &mut Pending,
        kernel: &Kernel,
        buffers: &[(u32, &wgpu::Buffer)],
    ) -> wgpu::BindGroup {
        let buffer_set = self.buffer_set.load(Ordering::Relaxed);
        let kept = &mut pending.bind_groups;
        if kept.epoch != buffer_set || kept.count >= MAX_KEPT_GROUPS {
            kept.kept.clear();
            kept.count = 0;
            kept.epoch = buffer_set;
        }
        // The buffers at the bindings the kernel uses.
        let used = || buffers.iter().filter(|(binding, _)| kernel.uses(*binding));
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        kernel.id.hash(&mut hasher);
        for (binding, buffer) in used() {
            binding.hash(&mut hasher);
            buffer.hash(&mut hasher);
        }
        let bucket = kept.kept.entry(hasher.finish()).or_default();
        let same = |k: &KeptGroup| {
            k.kernel == kernel.id
                && k.buffers
                    .iter()
                    .map(|(b, x)| (*b, x))
                    .eq(used().map(|(b, x)| (*b, *x)))
        };
        if let Some(k) = bucket.iter().find(|k| same(k)) {
            return k.group.clone();
        }
        let mut entries: Vec<wgpu::BindGroupEntry<'_>> = used()
            .map(|(binding, b)| {
                debug_assert!((*binding as usize) < MAX_BINDINGS);
                wgpu::BindGroupEntry {
                    binding: *binding,
                    resource: b.as_entire_binding(),
                }
            })
            .collect();
        if let Some(ring) = kernel.ring {
            entries.push(wgpu::BindGroupEntry {
                binding: ring,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &self.data_ring,
                    offset: 0,
                    size: std::num::NonZeroU64::new((4 * MAX_DISPATCH_DATA) as u64),
                }),
            });
        }
        if kernel.params {
            entries.push(wgpu::BindGroupEntry {
                binding: PARAMS_BINDING,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &self.uniforms,
                    offset: 0,
                    size: std::num::NonZeroU64::new(self.slot as u64),
                }),
            });
        }
        self.groups_created.fetch_add(1, Ordering::Relaxed);
        let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.name),
            layout: &kernel.layout,
            entries: &entries,
        });
        kept.count += 1;
        bucket.push(KeptGroup {
            kernel: kernel.id,
            buffers: used().map(|(i, b)| (*i, (*b).clone())).collect(),
            group: group.clone(),
        });
        group
    }

    /// Bind groups created so far: one per kernel and set of buffers, kept and reused until a
    /// buffer kernels may bind is created or released, so a solver's steps after the first
    /// create none.
    pub fn bind_groups_created(&self) -> usize {
        self.groups_created.load(Ordering::Relaxed)
    }

    /// Bind groups kept now.
    #[cfg(test)]
    pub(super) fn kept_bind_groups(&self) -> usize {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.bind_groups.kept.values().map(Vec::len).sum()
    }
}
