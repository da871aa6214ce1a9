//! The GPU context: adapter, device, queue and every compute pipeline, built once and shared.

use crate::error::GpuError;
use crate::kernel::{Kernel, MAX_BINDINGS, PARAMS_BINDING, compile};
use crate::profile::{KernelTime, Profiler};
use crate::readback::map_and_copy;

mod bind_groups;
mod deferred;
mod pools;
#[cfg(test)]
mod tests;
mod transfer;

use bind_groups::BindGroups;
use deferred::DeferredRead;
use pools::{BufferCache, Pool};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
#[cfg(test)]
pub(crate) use tests::test_context;
use wgpu::util::DeviceExt;

/// Environment variable selecting an adapter by (case-insensitive) substring of its name.
pub const ADAPTER_ENV: &str = "IRDM_GPU_ADAPTER";

/// Threads per workgroup of every kernel.
pub(crate) const WORKGROUP: u32 = 256;

/// The kernels of `kernels.wgsl`.
pub(crate) struct Pipelines {
    pub fill: Kernel,
    pub scale: Kernel,
    pub axpby: Kernel,
    pub lincomb4: Kernel,
    /// Eight inputs per dispatch, where the device binds nine storage buffers per kernel.
    pub lincomb8: Option<Kernel>,
    pub err_sq: Kernel,
    pub dot: Kernel,
    pub nonfinite: Kernel,
    pub max_abs: Kernel,
    pub combine_rows: Kernel,
}

/// Choices made when a [`GpuContext`] is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuOptions {
    /// Use subgroup operations where the adapter has them (default `true`); `false` keeps
    /// every kernel on workgroup memory and barriers alone (to compare the two, or to avoid a
    /// driver's subgroup bug).
    pub subgroups: bool,
}

impl Default for GpuOptions {
    fn default() -> Self {
        Self { subgroups: true }
    }
}

/// Device, queue and pipelines. Build once with [`GpuContext::new`] and share the `Arc`.
pub struct GpuContext {
    /// The adapter in use.
    pub adapter_info: wgpu::AdapterInfo,
    /// Whether the reductions use subgroup operations (see [`GpuContext::uses_subgroups`]).
    with_subgroups: bool,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) pipelines: Pipelines,
    /// Commands recorded since the last readback and their kernel parameters; submitted
    /// together when a value is read.
    pending: Mutex<Pending>,
    /// Kernel parameters of the pending commands: one slot per dispatch, uploaded once per
    /// submission (see [`Pending`]).
    uniforms: wgpu::Buffer,
    /// Bytes per slot of `uniforms` (the device's uniform offset alignment, at least 64).
    slot: usize,
    /// Small per-dispatch arrays (IRDM's interpolation coefficients), staged like the kernel
    /// parameters and uploaded with the submission (see [`Pending`]).
    data_ring: wgpu::Buffer,
    /// Floats between two staged arrays (the device's storage offset alignment).
    data_align: usize,
    /// Per-workgroup partial sums of the reductions, reused from one readback to the next.
    partials: BufferCache,
    /// Mappable staging buffer of the readbacks, reused likewise.
    readback: BufferCache,
    submissions: AtomicUsize,
    /// Readbacks (submissions waited for) so far.
    readbacks: AtomicUsize,
    /// Dispatches recorded so far.
    dispatches: AtomicUsize,
    /// Buffers created through this context (see [`GpuContext::buffers_created`]).
    created: AtomicUsize,
    /// Bind groups created (see [`GpuContext::bind_groups_created`]).
    groups_created: AtomicUsize,
    /// Changes to the set of buffers kernels may bind (a creation, a release): kept bind groups
    /// are dropped when it moves (see [`BindGroups`]).
    buffer_set: AtomicUsize,
    /// Storage buffers of dropped vectors, by length, for the next vector of that length.
    pool: Mutex<Pool>,
    /// Reductions recorded to come back with the next readback (see `deferred`).
    deferred: Mutex<Vec<DeferredRead>>,
}

/// Slots of the uniform ring: dispatches recorded between two submissions before the ring
/// forces a submission of its own.
const UNIFORM_SLOTS: usize = 2048;

/// Bytes of the largest kernel parameter block (the concat-squash kernels' `Dims`, 24 words,
/// padded to 16-byte uniform layout), with room to grow.
const MAX_PARAM_BYTES: usize = 128;

/// Dispatches recorded before they are submitted without waiting, so that the device runs
/// them while the host records the next ones (measured on an H200: recording took 3.8 µs
/// and recording plus running 11.6 µs per dispatch when everything waited for the readback).
const SUBMIT_EVERY: usize = 32;

/// Floats of the data ring: staged arrays recorded between two submissions before the ring
/// forces a submission of its own.
const DATA_RING_FLOATS: usize = 1 << 16;

/// Longest array [`GpuContext::dispatch_with_data`] takes (callers split longer ones).
pub(crate) const MAX_DISPATCH_DATA: usize = 4096;

/// The pending command encoder and the parameter blocks of its dispatches.
///
/// Every dispatch's parameters go into the next slot of one host-side staging area instead of a
/// uniform buffer of their own; the slots are uploaded with one `write_buffer` right before the
/// encoder is submitted (a queue write lands before the command buffers of that submission), and
/// each dispatch binds its slot by offset. A full ring submits what is recorded and starts over
/// (the queue orders that upload after the earlier submission's reads). Small arrays a dispatch
/// reads (`data`) travel the same way through a storage ring.
struct Pending {
    encoder: Option<wgpu::CommandEncoder>,
    /// The open compute pass of `encoder`: consecutive dispatches share it (wgpu orders their
    /// storage accesses); a copy or the submission ends it.
    pass: Option<wgpu::ComputePass<'static>>,
    staging: Vec<u8>,
    used: usize,
    data: Vec<f32>,
    data_used: usize,
    /// Kernel timing, while on ([`GpuContext::start_profiling`]).
    profiler: Option<Profiler>,
    /// Bind groups kept between dispatches (see [`BindGroups`]).
    bind_groups: BindGroups,
}

/// Most floats the pool of dropped vectors' buffers holds (256 MiB).
pub const POOL_FLOATS: usize = 1 << 26;

/// Buffers bound to a dispatch: `(binding, buffer)`.
pub(crate) type Bound<'a> = [(u32, &'a wgpu::Buffer)];

/// One range of a reduction and the buffers its dispatch binds.
pub(crate) type ReduceItem<'a> = (Range<usize>, &'a Bound<'a>);

/// One reduction of [`GpuContext::reduce_jobs`]: its kernel, range (its length sets the
/// invocations), inputs, parameters and, for kernels that read one, the data-ring array.
pub(crate) type ReduceJob<'a> = (
    &'a Kernel,
    Range<usize>,
    &'a Bound<'a>,
    Params,
    Option<&'a [f32]>,
);

/// Kernel parameters, laid out as `Params` in `kernels.wgsl` (64 bytes).
#[derive(Clone, Copy, Default)]
pub(crate) struct Params {
    pub n: u32,
    pub mode: u32,
    pub start: u32,
    /// Reductions: index of the first partial sum in the output.
    pub out_at: u32,
    pub a: f32,
    pub b: f32,
    /// `combine_rows`: 1 = accumulate.
    pub flags: u32,
    /// `combine_rows`: rows between two combined rows.
    pub stride: u32,
    pub c: [f32; 4],
    /// `lincomb8`: coefficients 4 to 7.
    pub c2: [f32; 4],
}

impl Params {
    fn bytes(&self) -> [u32; 16] {
        [
            self.n,
            self.mode,
            self.start,
            self.out_at,
            self.a.to_bits(),
            self.b.to_bits(),
            self.flags,
            self.stride,
            self.c[0].to_bits(),
            self.c[1].to_bits(),
            self.c[2].to_bits(),
            self.c[3].to_bits(),
            self.c2[0].to_bits(),
            self.c2[1].to_bits(),
            self.c2[2].to_bits(),
            self.c2[3].to_bits(),
        ]
    }
}

fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

impl GpuContext {
    /// Picks an adapter (by `IRDM_GPU_ADAPTER` if set, else discrete > integrated > virtual >
    /// CPU such as Mesa's lavapipe), creates the device and compiles every pipeline, with
    /// subgroup operations where the adapter has them. Logs the adapter to stderr.
    pub fn new() -> Result<Arc<Self>, GpuError> {
        Self::with_options(GpuOptions::default())
    }

    /// [`GpuContext::new`] with `options`.
    pub fn with_options(options: GpuOptions) -> Result<Arc<Self>, GpuError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        let filter = std::env::var(ADAPTER_ENV).ok().filter(|s| !s.is_empty());
        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        let mut candidates: Vec<wgpu::Adapter> = adapters
            .into_iter()
            .filter(|a| {
                filter
                    .as_ref()
                    .is_none_or(|f| a.get_info().name.to_lowercase().contains(&f.to_lowercase()))
            })
            .collect();
        candidates.sort_by_key(|a| rank(a.get_info().device_type));
        let Some(adapter) = candidates.into_iter().next() else {
            return Err(GpuError::NoAdapter {
                filter,
                reason: if names.is_empty() {
                    "none found (on Debian: apt-get install mesa-vulkan-drivers libvulkan1 for lavapipe)".into()
                } else {
                    format!("found {names:?}")
                },
            });
        };
        let info = adapter.get_info();
        let subgroups = if options.subgroups {
            wgpu::Features::SUBGROUP
        } else {
            wgpu::Features::empty()
        };
        // The adapter's own limits rather than wgpu's portable defaults: a GPU binds buffers of
        // gigabytes where the defaults stop at 128 MiB (batch sizes beyond 10⁵ need them).
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("irdm"),
            required_limits: adapter.limits(),
            // Timestamps where the adapter has them, for `start_profiling`; subgroup
            // operations where it has them and the options allow.
            required_features: adapter.features() & (wgpu::Features::TIMESTAMP_QUERY | subgroups),
            ..Default::default()
        }))
        .map_err(|source| GpuError::Device {
            adapter: info.name.clone(),
            source,
        })?;
        let mut entries = vec![
            "fill",
            "scale",
            "axpby",
            "lincomb4",
            "err_sq",
            "dot",
            "nonfinite",
            "max_abs",
            "combine_rows",
        ];
        // lincomb8 binds nine storage buffers: only where the device allows that many.
        let eight_inputs = device.limits().max_storage_buffers_per_shader_stage >= 9;
        if eight_inputs {
            entries.push("lincomb8");
        }
        // The reductions' last step by subgroup operations where the device has them.
        let with_subgroups = device.features().contains(wgpu::Features::SUBGROUP);
        let source = if with_subgroups {
            concat!(
                include_str!("kernels.wgsl"),
                include_str!("reduce_subgroup.wgsl")
            )
        } else {
            concat!(
                include_str!("kernels.wgsl"),
                include_str!("reduce_shared.wgsl")
            )
        };
        let compiled = compile(&device, "irdm kernels", source, &entries, &[]);
        let mut next = compiled.into_iter();
        let mut make = || next.next().expect("one pipeline per entry");
        let pipelines = Pipelines {
            fill: make(),
            scale: make(),
            axpby: make(),
            lincomb4: make(),
            err_sq: make(),
            dot: make(),
            nonfinite: make(),
            max_abs: make(),
            combine_rows: make(),
            lincomb8: eight_inputs.then(&mut make),
        };
        eprintln!(
            "gpu: using adapter {:?} ({:?}, {:?})",
            info.name, info.device_type, info.backend
        );
        // A slot holds the largest parameter block (`MAX_PARAM_BYTES`), aligned for dynamic
        // offsets.
        let align = device.limits().min_uniform_buffer_offset_alignment as usize;
        let slot = MAX_PARAM_BYTES.next_multiple_of(align.max(1));
        let data_align = (device.limits().min_storage_buffer_offset_alignment as usize / 4).max(1);
        // A staged array is bound as MAX_DISPATCH_DATA floats from its offset, so the ring
        // extends that far past its last usable offset.
        let data_ring = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("data ring"),
            size: (4 * (DATA_RING_FLOATS + MAX_DISPATCH_DATA)) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let uniforms = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("uniform ring"),
            size: (slot * UNIFORM_SLOTS) as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Arc::new(Self {
            adapter_info: info,
            with_subgroups,
            device,
            queue,
            pipelines,
            pending: Mutex::new(Pending {
                encoder: None,
                pass: None,
                staging: vec![0; slot * UNIFORM_SLOTS],
                used: 0,
                data: vec![0.0; DATA_RING_FLOATS],
                data_used: 0,
                profiler: None,
                bind_groups: BindGroups::default(),
            }),
            uniforms,
            slot,
            data_ring,
            data_align,
            partials: BufferCache::new(
                "partial sums",
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            ),
            readback: BufferCache::new(
                "readback",
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
            submissions: AtomicUsize::new(0),
            readbacks: AtomicUsize::new(0),
            dispatches: AtomicUsize::new(0),
            created: AtomicUsize::new(0),
            groups_created: AtomicUsize::new(0),
            buffer_set: AtomicUsize::new(0),
            pool: Mutex::new(Pool::default()),
            deferred: Mutex::new(Vec::new()),
        }))
    }

    /// Whether the reductions (norms, dot products, maxima, non-finite counts) finish each
    /// workgroup by subgroup operations (`wgpu::Features::SUBGROUP`: where the adapter has
    /// them and [`GpuOptions::subgroups`] allowed them) rather than a tree through workgroup
    /// memory. The two sum in different orders, so results differ in the last bits.
    pub fn uses_subgroups(&self) -> bool {
        self.with_subgroups
    }

    /// Most floats one storage buffer may hold and bind on this device.
    pub fn max_buffer_floats(&self) -> usize {
        let limits = self.device.limits();
        let bytes = limits
            .max_buffer_size
            .min(limits.max_storage_buffer_binding_size);
        usize::try_from(bytes / 4).unwrap_or(usize::MAX)
    }

    /// An error unless a storage buffer of `floats` floats fits this device.
    pub(crate) fn check_buffer(&self, what: &str, floats: usize) -> Result<(), GpuError> {
        let max = self.max_buffer_floats();
        if floats > max {
            return Err(GpuError::Invalid {
                what: what.into(),
                reason: format!(
                    "needs a buffer of {floats} floats; {} binds at most {max}",
                    self.adapter_info.name
                ),
            });
        }
        Ok(())
    }

    /// A zeroed storage buffer of `len` floats: a dropped vector's of that length from the pool
    /// (cleared by a recorded command), or a new one (zero-initialized by wgpu).
    pub(crate) fn storage(&self, len: usize) -> wgpu::Buffer {
        let pooled = self
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(len.max(1));
        if let Some(buffer) = pooled {
            self.record(|e| e.clear_buffer(&buffer, 0, None));
            return buffer;
        }
        self.created.fetch_add(1, Ordering::Relaxed);
        self.buffer_set.fetch_add(1, Ordering::Relaxed);
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: (4 * len.max(1)) as u64,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Takes back the storage buffer of a dropped vector of `len` floats: kept for the next
    /// vector of that length while the pool holds under [`POOL_FLOATS`] floats, else released.
    pub(crate) fn recycle(&self, buffer: wgpu::Buffer, len: usize) {
        let kept = self
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(buffer, len.max(1));
        if !kept {
            self.buffer_set.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Notes that buffers kernels may have bound were released (a model's, on a new batch size
    /// or when dropped), so that kept bind groups let go of them.
    pub(crate) fn buffers_released(&self) {
        self.buffer_set.fetch_add(1, Ordering::Relaxed);
    }

    /// Releases the pooled buffers of dropped vectors and the kept bind groups (both are
    /// otherwise held for reuse; the pool holds at most [`POOL_FLOATS`] floats).
    pub fn release_cached(&self) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.by_len.clear();
        pool.floats = 0;
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.bind_groups = BindGroups::default();
        self.buffer_set.fetch_add(1, Ordering::Relaxed);
    }

    /// Floats held in the pool of dropped vectors' buffers.
    pub fn pooled_floats(&self) -> usize {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).floats
    }

    /// Workgroup grid covering `n` elements (2-D when one dimension would exceed the limit).
    pub(crate) fn grid(n: u32) -> (u32, u32) {
        let groups = n.div_ceil(WORKGROUP).max(1);
        let x = groups.min(65_535);
        (x, groups.div_ceil(x))
    }

    /// Records one dispatch of `kernel` over `n` elements with `buffers` bound at bindings
    /// 0, 1, … (binding 5 is the parameters). Submitted with the next readback.
    pub(crate) fn dispatch(
        &self,
        kernel: &Kernel,
        n: u32,
        params: Params,
        buffers: &[(u32, &wgpu::Buffer)],
    ) {
        self.dispatch_words(kernel, n, &params.bytes(), buffers);
    }

    /// Records one dispatch over `n` elements with a uniform block of `words` (32-bit words) at
    /// binding 5 and `buffers` at their bindings (those the kernel does not use are left out:
    /// a caller may pass what several kernels of one step need). Submitted with the next
    /// readback.
    pub(crate) fn dispatch_words(
        &self,
        kernel: &Kernel,
        n: u32,
        words: &[u32],
        buffers: &[(u32, &wgpu::Buffer)],
    ) {
        self.dispatch_staged(kernel, n, words, buffers, None);
    }

    /// [`GpuContext::dispatch`] with a small array `data` (1 to [`MAX_DISPATCH_DATA`] floats)
    /// bound at the kernel's `ring_*` binding: staged with the kernel parameters and uploaded
    /// with the submission, so no buffer is created per call.
    pub(crate) fn dispatch_with_data(
        &self,
        kernel: &Kernel,
        n: u32,
        params: Params,
        buffers: &[(u32, &wgpu::Buffer)],
        data: &[f32],
    ) {
        self.dispatch_words_with_data(kernel, n, &params.bytes(), buffers, data);
    }

    /// [`GpuContext::dispatch_with_data`] with a uniform block of `words`.
    pub(crate) fn dispatch_words_with_data(
        &self,
        kernel: &Kernel,
        n: u32,
        words: &[u32],
        buffers: &[(u32, &wgpu::Buffer)],
        data: &[f32],
    ) {
        assert!(
            (1..=MAX_DISPATCH_DATA).contains(&data.len()),
            "dispatch data of {} floats (callers split it)",
            data.len()
        );
        assert!(
            kernel.ring.is_some(),
            "{} reads no ring_ array",
            kernel.name
        );
        self.dispatch_staged(kernel, n, words, buffers, Some(data));
    }

    fn dispatch_staged(
        &self,
        kernel: &Kernel,
        n: u32,
        words: &[u32],
        buffers: &[(u32, &wgpu::Buffer)],
        data: Option<&[f32]>,
    ) {
        let bytes: &[u8] = bytemuck::cast_slice(words);
        debug_assert!(bytes.len() <= self.slot);
        let data_len = data.map_or(0, |d| d.len().div_ceil(self.data_align) * self.data_align);
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.used == UNIFORM_SLOTS
            || pending.data_used + data_len > DATA_RING_FLOATS
            || pending.profiler.as_ref().is_some_and(Profiler::is_full)
        {
            self.submit_locked(&mut pending);
        }
        self.dispatches.fetch_add(1, Ordering::Relaxed);
        let slot = pending.used;
        pending.used += 1;
        pending.staging[slot * self.slot..slot * self.slot + bytes.len()].copy_from_slice(bytes);
        // Dynamic offsets, in binding order: the parameters' slot and the ring array's place.
        let mut dynamic = [(0u32, 0u32); 2];
        let mut count = 0;
        if kernel.params {
            dynamic[count] = (PARAMS_BINDING, (slot * self.slot) as u32);
            count += 1;
        }
        if let Some(d) = data {
            let at = pending.data_used;
            pending.data[at..at + d.len()].copy_from_slice(d);
            pending.data_used += data_len;
            let ring = kernel.ring.expect("checked by dispatch_with_data");
            dynamic[count] = (ring, (4 * at) as u32);
            count += 1;
        }
        dynamic[..count].sort_unstable_by_key(|&(binding, _)| binding);
        let offsets = dynamic.map(|(_, offset)| offset);
        let group = self.bind_group(&mut pending, kernel, buffers);
        if pending.profiler.is_some() {
            self.begin_timed_pass(&mut pending, kernel.name);
        }
        let pass = self.pass(&mut pending);
        pass.set_pipeline(&kernel.pipeline);
        pass.set_bind_group(0, &group, &offsets[..count]);
        let (x, y) = Self::grid(n);
        pass.dispatch_workgroups(x, y, 1);
        if pending.profiler.is_some() {
            // The timed pass holds this dispatch alone.
            pending.pass = None;
        }
        if pending.used.is_multiple_of(SUBMIT_EVERY) {
            // Let the device start on what is recorded while the host records the rest.
            self.submit_locked(&mut pending);
        }
    }

    /// Ends the open pass and begins one whose start and end the profiler stamps, for one
    /// dispatch of kernel `name`.
    fn begin_timed_pass(&self, pending: &mut Pending, name: &'static str) {
        pending.pass = None;
        self.encoder(pending);
        let Pending {
            encoder,
            pass,
            profiler,
            ..
        } = pending;
        let (Some(encoder), Some(profiler)) = (encoder.as_mut(), profiler.as_mut()) else {
            return;
        };
        let timed = encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(name),
                timestamp_writes: Some(profiler.next_pass(name)),
            })
            .forget_lifetime();
        *pass = Some(timed);
    }

    /// Compiles every entry point of a WGSL module with its overridable `constants` set (see
    /// [`crate::kernel`]).
    pub(crate) fn pipelines(
        &self,
        label: &str,
        source: &str,
        entries: &[&'static str],
        constants: &[(&str, f64)],
    ) -> Vec<Kernel> {
        compile(&self.device, label, source, entries, constants)
    }

    /// Starts timing every dispatch on the device (see [`KernelTime`]): from now until
    /// [`GpuContext::stop_profiling`] each dispatch runs in a compute pass of its own with
    /// timestamps at its start and end, and each submission waits for its stamps. An error if
    /// the adapter has no timestamp queries. Restarting discards the sums so far.
    ///
    /// ```
    /// use gpu::{GpuActivation, GpuCnf, GpuContext, GpuVec};
    /// use rk::{Rhs, Vector};
    ///
    /// # fn main() -> Result<(), gpu::GpuError> {
    /// let Ok(ctx) = GpuContext::new() else { return Ok(()) }; // no adapter here
    /// let mut cnf = GpuCnf::toy(&ctx, 100, GpuActivation::Tanh)?;
    /// let theta = GpuVec::from_host(&ctx, &vec![0.01; cnf.param_len()]);
    /// let z = GpuVec::from_host(&ctx, &vec![0.5; cnf.state_len()]);
    /// let mut dz = GpuVec::zeros(&ctx, cnf.state_len());
    /// if ctx.start_profiling().is_ok() {
    ///     cnf.eval(0.0, &z, &theta, &mut dz);
    ///     let profile = ctx.stop_profiling()?;
    ///     // The toy CNF's `f`: its three layers in one dispatch.
    ///     assert_eq!(profile.iter().map(|k| k.calls).sum::<usize>(), 1);
    ///     assert_eq!(profile[0].kernel, "net_forward");
    /// }
    /// assert!(dz.all_finite());
    /// # Ok(())
    /// # }
    /// ```
    pub fn start_profiling(&self) -> Result<(), GpuError> {
        if !self
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
        {
            return Err(GpuError::Invalid {
                what: "profiling".into(),
                reason: format!("{} has no timestamp queries", self.adapter_info.name),
            });
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        self.submit_locked(&mut pending);
        self.created.fetch_add(2, Ordering::Relaxed);
        pending.profiler = Some(Profiler::new(&self.device, &self.queue));
        Ok(())
    }

    /// Submits what is recorded, stops timing and returns the device time of every kernel
    /// dispatched since [`GpuContext::start_profiling`], slowest first (empty if profiling was
    /// off).
    pub fn stop_profiling(&self) -> Result<Vec<KernelTime>, GpuError> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        self.submit_locked(&mut pending);
        pending
            .profiler
            .take()
            .map_or(Ok(Vec::new()), Profiler::finish)
    }

    /// Dispatches recorded so far (by every user of this context).
    pub fn dispatches(&self) -> usize {
        self.dispatches.load(Ordering::Relaxed)
    }

    /// The pending encoder (created on first use).
    fn encoder<'a>(&self, pending: &'a mut Pending) -> &'a mut wgpu::CommandEncoder {
        pending.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("pending"),
                })
        })
    }

    /// The open compute pass of the pending encoder (begun on first use).
    fn pass<'a>(&self, pending: &'a mut Pending) -> &'a mut wgpu::ComputePass<'static> {
        if pending.pass.is_none() {
            let pass = self
                .encoder(pending)
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: None,
                })
                .forget_lifetime();
            pending.pass = Some(pass);
        }
        pending.pass.as_mut().expect("set above")
    }

    /// Appends commands to the pending encoder (ending the open compute pass first).
    fn record(&self, f: impl FnOnce(&mut wgpu::CommandEncoder)) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.pass = None;
        f(self.encoder(&mut pending));
    }

    /// Uploads the used parameter slots and submits the pending encoder, with the lock held.
    fn submit_locked(&self, pending: &mut Pending) {
        if pending.used > 0 {
            self.queue.write_buffer(
                &self.uniforms,
                0,
                &pending.staging[..pending.used * self.slot],
            );
            pending.used = 0;
        }
        if pending.data_used > 0 {
            self.queue.write_buffer(
                &self.data_ring,
                0,
                bytemuck::cast_slice(&pending.data[..pending.data_used]),
            );
            pending.data_used = 0;
        }
        pending.pass = None;
        if let Some(mut encoder) = pending.encoder.take() {
            let timed = pending
                .profiler
                .as_ref()
                .is_some_and(|p| p.record_resolve(&mut encoder));
            self.queue.submit([encoder.finish()]);
            self.submissions.fetch_add(1, Ordering::Relaxed);
            if let (true, Some(profiler)) = (timed, pending.profiler.as_mut()) {
                profiler.collect(&self.device);
            }
        }
    }

    /// Submits everything recorded so far as one command buffer. The lock is held through the
    /// submission so that command buffers reach the queue in the order they were recorded,
    /// whichever thread flushes.
    fn flush(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        self.submit_locked(&mut pending);
    }

    /// Command buffers submitted so far: each readback submits everything recorded before it.
    pub fn submissions(&self) -> usize {
        self.submissions.load(Ordering::Relaxed)
    }

    /// Readbacks so far: submissions the host waited for to read values (the rest were
    /// submitted without waiting, so that the device starts while the host records).
    pub fn readbacks(&self) -> usize {
        self.readbacks.load(Ordering::Relaxed)
    }

    /// Buffers created so far: vectors, uploads from the host, and the first (or a larger)
    /// reduction or readback buffer. A solver step creates none once its vectors exist: kernel
    /// parameters and small arrays ride in rings, and reduction and readback buffers are kept.
    pub fn buffers_created(&self) -> usize {
        self.created.load(Ordering::Relaxed)
    }

    /// Lowers the pool's limit (tests of what happens beyond it).
    #[cfg(test)]
    fn set_pool_limit(&self, floats: usize) {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).limit = floats;
    }
}
