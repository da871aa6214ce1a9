//! [`GpuNetRhs`]: a neural ODE `dz/dt = net(t, z)` with a concat-squash network on the GPU (the
//! counterpart of `nn::NetRhs`; see `concat_squash` for the kernels), as a right-hand side on
//! [`GpuVec`](crate::GpuVec) with its adjoint system ([`adjoint::VectorVjp`]): `−aᵀ∂f/∂z` and
//! `−aᵀ∂f/∂θ` from one reverse sweep, so that `adjoint::forward_on` runs every gradient method
//! with the state on the device.

use crate::concat_squash::{ConcatSquashNet, DivergenceKind, GpuActivation, concat_squash_model};
use crate::context::GpuContext;
use crate::error::GpuError;
use std::sync::Arc;

/// `dz/dt = net(t, z)` on a batch of `B` states of width `D` (`B × D`, row-major, on the
/// device); the parameters are those of `nn::OdeNet` with concat-squash layers (same layout).
///
/// ```no_run
/// use adjoint::{Config, Method, forward_on};
/// use gpu::{GpuActivation, GpuContext, GpuNetRhs, GpuVec};
///
/// let ctx = GpuContext::new()?;
/// let mut f = GpuNetRhs::new(&ctx, &[3, 32, 3], GpuActivation::Tanh, 10)?;
/// let theta = GpuVec::from_host(&ctx, &vec![0.01; f.param_len()]);
/// let z0 = GpuVec::from_host(&ctx, &vec![1.0; f.state_len()]);
/// let method = Method::irdm_lobatto(16, adjoint::BackwardNorm::Seminorm);
/// let fwd = forward_on(&mut f, &theta, &z0, &[0.0, 1.0], method, &Config::new(1e-5, 1e-5))?;
/// // dL/dz(1) for L = Σ z(1): ones at the end time, zeros at the start.
/// let cot = [GpuVec::zeros(&ctx, 30), GpuVec::from_host(&ctx, &[1.0; 30])];
/// let grad = fwd.backward(&mut f, &theta, &cot)?;
/// assert_eq!(grad.dtheta.to_host().len(), f.param_len());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct GpuNetRhs(ConcatSquashNet);

impl GpuNetRhs {
    /// A net with layer widths `dims` (`D → … → D`, at least two) for batches of `batch`
    /// states.
    ///
    /// Errors: fewer than two widths, a zero width or batch, `dims[0] ≠ dims[last]`, or sizes
    /// beyond 32-bit indexing.
    pub fn new(
        ctx: &Arc<GpuContext>,
        dims: &[usize],
        act: GpuActivation,
        batch: usize,
    ) -> Result<Self, GpuError> {
        ConcatSquashNet::new(ctx, dims, act, batch, DivergenceKind::None, "GPU ODE net").map(Self)
    }
}

concat_squash_model!(GpuNetRhs);
