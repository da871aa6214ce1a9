//! [`GpuCnf`]: the continuous normalizing flow of FFJORD's experiments with every number on
//! the GPU: `dz/dt = f(t, z)`, `dΔlogp/dt = −tr ∂f/∂z` with the trace computed exactly from `D`
//! forward-mode tangents, or estimated as `εᵀ (∂f/∂z) ε` from one tangent seeded with fixed
//! noise `ε` (Hutchinson; unbiased for noise of zero mean and unit covariance), see
//! `concat_squash` for the kernels, as a right-hand side on
//! [`GpuVec`](crate::GpuVec) with its adjoint system ([`adjoint::VectorVjp`]), so that
//! `adjoint::forward_on` runs every gradient method on it unchanged.

use crate::concat_squash::{ConcatSquashNet, DivergenceKind, GpuActivation, concat_squash_model};
use crate::context::GpuContext;
use crate::error::GpuError;
use std::sync::Arc;

/// FFJORD's CNF on the GPU for batches of a fixed size: the state is `[z (B × D), Δlogp (B)]`,
/// the parameters those of `nn::Cnf` (same layout), the divergence exact ([`GpuCnf::new`]) or
/// Hutchinson's estimate ([`GpuCnf::hutchinson`]).
///
/// ```
/// use gpu::{GpuActivation, GpuCnf, GpuContext, GpuKernels, GpuVec};
/// use rk::{Rhs, Vector};
///
/// # fn main() -> Result<(), gpu::GpuError> {
/// let Ok(ctx) = GpuContext::new() else { return Ok(()) }; // no adapter here
/// let mut cnf = GpuCnf::toy(&ctx, 256, GpuActivation::Tanh)?;
/// let theta = GpuVec::try_from_host(&ctx, &vec![0.05; cnf.param_len()])?;
/// // Once per batch size: keep the products that are fastest on this adapter.
/// let kernels = cnf.tune_kernels(&theta, 5)?;
/// assert_ne!(kernels, GpuKernels::Auto);
/// // dz/dt and dΔlogp/dt of 256 points at t = 0.1.
/// let z = GpuVec::try_from_host(&ctx, &vec![0.3; cnf.state_len()])?;
/// let mut dz = GpuVec::try_zeros(&ctx, cnf.state_len())?;
/// cnf.eval(0.1, &z, &theta, &mut dz);
/// assert!(dz.all_finite());
/// # Ok(())
/// # }
/// ```
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
        ConcatSquashNet::new(ctx, dims, act, batch, DivergenceKind::Exact, "GPU CNF").map(Self)
    }

    /// A CNF with Hutchinson's divergence estimate `εᵀ (∂f/∂z) ε`, one tangent per point, so
    /// any state width `D` (the exact divergence stops at 7). The noise starts as a fixed
    /// Rademacher draw; draw a fresh one with [`GpuCnf::set_noise`] before each solve, and keep
    /// it through the solve and its backward pass (FFJORD's practice).
    ///
    /// Errors: as [`GpuCnf::new`] but for the width limit.
    pub fn hutchinson(
        ctx: &Arc<GpuContext>,
        dims: &[usize],
        act: GpuActivation,
        batch: usize,
    ) -> Result<Self, GpuError> {
        ConcatSquashNet::new(
            ctx,
            dims,
            act,
            batch,
            DivergenceKind::Hutchinson,
            "GPU CNF (Hutchinson)",
        )
        .map(Self)
    }

    /// Sets Hutchinson's noise `ε` (`B × D`, row-major; Rademacher or standard normal entries
    /// make the estimate unbiased).
    ///
    /// Errors: a CNF with the exact divergence, a wrong length, or a non-finite entry.
    pub fn set_noise(&mut self, noise: &[f32]) -> Result<(), GpuError> {
        self.0.set_noise(noise)
    }

    /// FFJORD's toy model: `2 → 64 → 64 → 2`.
    pub fn toy(ctx: &Arc<GpuContext>, batch: usize, act: GpuActivation) -> Result<Self, GpuError> {
        Self::new(ctx, &[2, 64, 64, 2], act, batch)
    }
}

concat_squash_model!(GpuCnf);
