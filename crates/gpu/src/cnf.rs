//! [`GpuCnf`]: the continuous normalizing flow of FFJORD's toy experiments with every number on
//! the GPU: `dz/dt = f(t, z)`, `dΔlogp/dt = −tr ∂f/∂z` with the trace computed exactly from `D`
//! forward-mode tangents (see `concat_squash` for the kernels), as a right-hand side on
//! [`GpuVec`](crate::GpuVec) with its adjoint system ([`adjoint::VectorVjp`]), so that
//! `adjoint::forward_on` runs every gradient method on it unchanged.

use crate::concat_squash::{ConcatSquashNet, GpuActivation, concat_squash_model};
use crate::context::GpuContext;
use crate::error::GpuError;
use std::sync::Arc;

/// FFJORD's toy CNF on the GPU for batches of a fixed size: the state is `[z (B × D), Δlogp
/// (B)]`, the parameters those of `nn::Cnf` with exact divergence (same layout).
#[derive(Debug)]
pub struct GpuCnf(ConcatSquashNet);

impl GpuCnf {
    /// A CNF with layer widths `dims` (`D → … → D`, at least two, `D ≤ 7`) for batches of
    /// `batch` points.
    ///
    /// Errors: fewer than two widths, a zero width or batch, `dims[0] ≠ dims[last]`, `D > 7`
    /// (the kernels keep the `1 + D` rows of a point in registers), or sizes beyond 32-bit
    /// indexing.
    pub fn new(
        ctx: &Arc<GpuContext>,
        dims: &[usize],
        act: GpuActivation,
        batch: usize,
    ) -> Result<Self, GpuError> {
        ConcatSquashNet::new(ctx, dims, act, batch, true, "GPU CNF").map(Self)
    }

    /// FFJORD's toy model: `2 → 64 → 64 → 2`.
    pub fn toy(ctx: &Arc<GpuContext>, batch: usize, act: GpuActivation) -> Result<Self, GpuError> {
        Self::new(ctx, &[2, 64, 64, 2], act, batch)
    }
}

concat_squash_model!(GpuCnf);
