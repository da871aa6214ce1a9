//! Compiled kernels with explicit bind-group layouts, read off the WGSL by reflection.
//!
//! Each entry point of a module becomes a [`Kernel`]: its compute pipeline and a bind-group
//! layout listing exactly the bindings the entry point uses (found with naga, which wgpu
//! itself uses to compile WGSL), with the kernel-parameter uniform and the data-ring array
//! (storage globals named `ring_*`) declared with dynamic offsets. Dynamic offsets let one bind
//! group serve every dispatch with the same buffers whatever ring slot its parameters occupy,
//! so the context can keep bind groups instead of building one per dispatch.

use std::sync::atomic::{AtomicUsize, Ordering};
use wgpu::naga;

/// Highest binding index a kernel may use (plus one).
pub(crate) const MAX_BINDINGS: usize = 13;

/// Binding of every kernel's parameter block (a uniform with a dynamic offset).
pub(crate) const PARAMS_BINDING: u32 = 5;

/// Prefix of the storage globals bound to the data ring (with a dynamic offset).
const RING_PREFIX: &str = "ring_";

/// One compute entry point, ready to dispatch.
pub(crate) struct Kernel {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
    /// The entry point's name (profiles name kernels by it).
    pub(crate) name: &'static str,
    /// Unique among every kernel compiled in this process (a key of kept bind groups).
    pub(crate) id: usize,
    /// Binding of the data-ring array, if the kernel reads one.
    pub(crate) ring: Option<u32>,
    /// Whether the kernel reads the parameter uniform at [`PARAMS_BINDING`].
    pub(crate) params: bool,
    /// The bindings the entry point uses, bit `b` for binding `b`.
    pub(crate) uses: u32,
}

impl Kernel {
    /// Whether the entry point uses binding `binding`.
    pub(crate) fn uses(&self, binding: u32) -> bool {
        binding < 32 && self.uses & (1 << binding) != 0
    }
}

/// One binding an entry point uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Binding {
    index: u32,
    ty: wgpu::BufferBindingType,
    dynamic: bool,
}

/// Storage buffers (the data ring included) each entry point of `source` binds, in the order
/// of `entries`: what the device's `max_storage_buffers_per_shader_stage` must allow.
#[cfg(test)]
pub(crate) fn storage_buffers(source: &str, entries: &[&str]) -> Vec<usize> {
    reflect(source, entries)
        .iter()
        .map(|bindings| {
            bindings
                .iter()
                .filter(|b| matches!(b.ty, wgpu::BufferBindingType::Storage { .. }))
                .count()
        })
        .collect()
}

/// The bindings of group 0 each entry point of `source` uses, in the order of `entries`.
///
/// # Panics
/// If the source does not parse or validate, or an entry point is missing: the kernels are
/// part of this crate, so either is a bug caught by any test.
fn reflect(source: &str, entries: &[&str]) -> Vec<Vec<Binding>> {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("WGSL does not parse: {}", e.emit_to_string(source)));
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("WGSL does not validate: {}", e.emit_to_string(source)));
    entries
        .iter()
        .map(|entry| {
            let index = module
                .entry_points
                .iter()
                .position(|ep| ep.name == *entry)
                .unwrap_or_else(|| panic!("no entry point {entry}"));
            let uses = info.get_entry_point(index);
            let mut bindings: Vec<Binding> = module
                .global_variables
                .iter()
                .filter(|(handle, _)| !uses[*handle].is_empty())
                .filter_map(|(_, var)| {
                    let binding = var.binding.as_ref()?;
                    assert_eq!(binding.group, 0, "{entry}: only bind group 0 is used");
                    let ring = var
                        .name
                        .as_deref()
                        .is_some_and(|n| n.starts_with(RING_PREFIX));
                    let (ty, dynamic) = match var.space {
                        naga::AddressSpace::Uniform => (wgpu::BufferBindingType::Uniform, true),
                        naga::AddressSpace::Storage { access } => (
                            wgpu::BufferBindingType::Storage {
                                read_only: !access.contains(naga::StorageAccess::STORE),
                            },
                            ring,
                        ),
                        _ => return None,
                    };
                    Some(Binding {
                        index: binding.binding,
                        ty,
                        dynamic,
                    })
                })
                .collect();
            bindings.sort_by_key(|b| b.index);
            bindings
        })
        .collect()
}

/// Compiles every entry point of a WGSL module, in order, with its pipeline-overridable
/// `constants` set and a layout of exactly the bindings it uses. Workgroup memory is not zeroed
/// first: every kernel writes its workgroup arrays before reading them.
pub(crate) fn compile(
    device: &wgpu::Device,
    label: &str,
    source: &str,
    entries: &[&'static str],
    constants: &[(&str, f64)],
) -> Vec<Kernel> {
    static NEXT_ID: AtomicUsize = AtomicUsize::new(0);
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    reflect(source, entries)
        .into_iter()
        .zip(entries)
        .map(|(bindings, &entry)| {
            for b in &bindings {
                assert!(
                    (b.index as usize) < MAX_BINDINGS,
                    "{entry}: binding {}",
                    b.index
                );
                let is_params = b.ty == wgpu::BufferBindingType::Uniform;
                assert_eq!(
                    is_params,
                    b.index == PARAMS_BINDING,
                    "{entry}: the parameters are the uniform at binding {PARAMS_BINDING}"
                );
            }
            let layout_entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
                .iter()
                .map(|b| wgpu::BindGroupLayoutEntry {
                    binding: b.index,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: b.ty,
                        has_dynamic_offset: b.dynamic,
                        min_binding_size: None,
                    },
                    count: None,
                })
                .collect();
            let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(entry),
                entries: &layout_entries,
            });
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(entry),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
            Kernel {
                pipeline,
                layout,
                name: entry,
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                ring: bindings
                    .iter()
                    .find(|b| b.dynamic && b.index != PARAMS_BINDING)
                    .map(|b| b.index),
                params: bindings.iter().any(|b| b.index == PARAMS_BINDING),
                uses: bindings.iter().fold(0, |m, b| m | (1 << b.index)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reflection finds each entry point's own bindings, their access and which are dynamic.
    #[test]
    fn reflection_lists_the_bindings_each_entry_point_uses() {
        let source = r"
            struct P { n: u32 }
            @group(0) @binding(0) var<storage, read_write> out: array<f32>;
            @group(0) @binding(1) var<storage, read> x: array<f32>;
            @group(0) @binding(5) var<uniform> p: P;
            @group(0) @binding(6) var<storage, read> ring_c: array<f32>;
            fn helper(i: u32) -> f32 { return x[i]; }
            @compute @workgroup_size(64)
            fn copy(@builtin(global_invocation_id) g: vec3<u32>) {
                if (g.x < p.n) { out[g.x] = helper(g.x); }
            }
            @compute @workgroup_size(64)
            fn scaled(@builtin(global_invocation_id) g: vec3<u32>) { out[g.x] = ring_c[0]; }
        ";
        let r = reflect(source, &["scaled", "copy"]);
        let storage = |read_only| wgpu::BufferBindingType::Storage { read_only };
        let b = |index, ty, dynamic| Binding { index, ty, dynamic };
        assert_eq!(
            r[0],
            vec![b(0, storage(false), false), b(6, storage(true), true)]
        );
        assert_eq!(
            r[1],
            vec![
                b(0, storage(false), false),
                b(1, storage(true), false),
                b(5, wgpu::BufferBindingType::Uniform, true)
            ]
        );
    }
}
