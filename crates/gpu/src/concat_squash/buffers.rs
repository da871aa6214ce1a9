//! The device buffers of one batch size of a concat-squash net: the stacked activations every
//! layer's kernels write and read, the backward pass's row cotangents (two layers side by side),
//! the partial sums of the parameter cotangents, and Hutchinson's noise. Sizes are checked
//! against 32-bit indexing and the device's buffer limit before anything is allocated.

use super::Layer;
use super::plan::ReducePlan;
use crate::context::GpuContext;
use crate::error::GpuError;

/// The buffers of one batch size.
pub(super) struct Buffers {
    /// Hutchinson's noise `ε` (`B × D`); a one-float placeholder otherwise (the kernels that
    /// read it bind it in every mode).
    pub(super) noise: wgpu::Buffer,
    /// Every layer's input `X_l` (R × d_l), affine `U_l` and pre-activation `Y_l`
    /// (R × d_{l+1}), each kind stacked layer after layer in one buffer (so that one kernel
    /// can write every layer's), layer `l`'s from `x_at[l]` and `uy_at[l]` on.
    pub(super) xs: wgpu::Buffer,
    pub(super) us: wgpu::Buffer,
    pub(super) ys: wgpu::Buffer,
    pub(super) x_at: Vec<usize>,
    pub(super) uy_at: Vec<usize>,
    /// One float, bound where a kernel's value output goes unwritten.
    pub(super) placeholder: wgpu::Buffer,
    /// Backward scratch (R × max width): Ȳ and Ū (two sides each, `side` floats apart, in one
    /// buffer: one layer's are read while the next layer down's are written, by the input
    /// cotangent of the layer above); partial sums of the weight cotangents and of the
    /// per-unit sums.
    pub(super) ybar: wgpu::Buffer,
    pub(super) ubar: wgpu::Buffer,
    pub(super) side: usize,
    pub(super) partials: wgpu::Buffer,
    pub(super) unit_partials: wgpu::Buffer,
    /// Where the partial sums go and how they are finished.
    pub(super) plan: ReducePlan,
}

impl Buffers {
    /// Checks that a batch of `batch` points with `tangents` tangent rows fits 32-bit indexing
    /// and the device's buffer limit, and allocates its buffers (Hutchinson's noise as a fixed
    /// Rademacher draw).
    pub(super) fn new(
        ctx: &GpuContext,
        what: &str,
        layers: &[Layer],
        batch: usize,
        tangents: usize,
        hutchinson: bool,
    ) -> Result<Self, GpuError> {
        if batch == 0 {
            return Err(GpuError::Invalid {
                what: what.into(),
                reason: "batch must be >= 1".into(),
            });
        }
        let rows = (1 + tangents) * batch;
        let dim = layers[0].din;
        let max_width = layers.iter().map(|l| l.din.max(l.dout)).max().unwrap_or(1);
        // The stacked activations of every layer, per row.
        let x_floats: usize = layers.iter().map(|l| l.din).sum();
        let uy_floats: usize = layers.iter().map(|l| l.dout).sum();
        let per_row = (max_width * max_width.max(2)).max(x_floats.max(uy_floats));
        if rows
            .checked_mul(per_row)
            .is_none_or(|v| v > u32::MAX as usize)
        {
            return Err(GpuError::Invalid {
                what: what.into(),
                reason: format!(
                    "batch {batch} with layers up to {max_width} wide exceeds 32-bit indexing"
                ),
            });
        }
        // The largest buffers: the two sides of Ȳ and of Ū (2R × widest layer) and the partial
        // sums of every layer's weight cotangents, side by side (see `ReducePlan`).
        let wide = rows * max_width;
        let plan = ReducePlan::new(layers, rows);
        let (partials, unit_partials) = (plan.weight_floats, plan.unit_floats);
        if partials.max(unit_partials) > u32::MAX as usize {
            return Err(GpuError::Invalid {
                what: what.into(),
                reason: format!("batch {batch}: the partial sums exceed 32-bit indexing"),
            });
        }
        ctx.check_buffer(what, 2 * wide)?;
        ctx.check_buffer(what, rows * x_floats.max(uy_floats))?;
        ctx.check_buffer(what, partials)?;
        ctx.check_buffer(what, unit_partials)?;
        Ok(Self {
            noise: if hutchinson {
                let v = ctx.storage(batch * dim);
                ctx.write(&v, &rademacher(batch * dim));
                v
            } else {
                ctx.storage(1)
            },
            xs: ctx.storage(rows * x_floats),
            us: ctx.storage(rows * uy_floats),
            ys: ctx.storage(rows * uy_floats),
            x_at: offsets(layers.iter().map(|l| l.din), rows),
            uy_at: offsets(layers.iter().map(|l| l.dout), rows),
            placeholder: ctx.storage(1),
            ybar: ctx.storage(2 * wide),
            ubar: ctx.storage(2 * wide),
            side: wide,
            partials: ctx.storage(partials),
            unit_partials: ctx.storage(unit_partials),
            plan,
        })
    }
}

/// Where each layer's part of a stacked buffer starts: `rows` times the widths before it.
fn offsets(widths: impl Iterator<Item = usize>, rows: usize) -> Vec<usize> {
    widths
        .scan(0, |at, w| {
            let this = *at;
            *at += rows * w;
            Some(this)
        })
        .collect()
}

/// A fixed Rademacher draw of `n` signs (SplitMix64 bits), the initial Hutchinson noise.
fn rademacher(n: usize) -> Vec<f32> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            if z >> 63 == 0 { 1.0 } else { -1.0 }
        })
        .collect()
}
