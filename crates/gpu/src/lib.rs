//! The GPU backend through wgpu: a context built once ([`GpuContext`]) and an `f32` vector in a
//! storage buffer ([`GpuVec`]) implementing [`rk::Vector`], so that the `rk` solvers run with
//! their state on the GPU without a second copy of the stepping logic.
//!
//! Works on any Vulkan/Metal/DX12 adapter, including Mesa's software Vulkan (lavapipe), which the
//! tests use when no GPU is present. Set `IRDM_GPU_ADAPTER` to a substring of an adapter name to
//! choose one.
//!
//! * [`GpuVec`]: fill, scale, axpby, fused linear combinations (four inputs per dispatch), the
//!   weighted RMS error norm and the dot product reduced on the device.
//! * [`GpuNetRhs`]: a neural ODE `dz/dt = net(t, z)` with concat-squash layers (tanh or
//!   softplus) and its adjoint right-hand side, implementing [`adjoint::VectorVjp`].
//! * [`GpuCnf`]: FFJORD's continuous normalizing flow (concat-squash layers, tanh or
//!   softplus, exact divergence up to `D = 7` or Hutchinson's estimate at any `D`) with its
//!   adjoint right-hand side, implementing
//!   [`adjoint::VectorVjp`]: `adjoint::forward_on` runs Direct, ANODE, RDM and IRDM with the
//!   state, the stored stages, checkpoints or Chebyshev nodes, and the backward state all on
//!   the device.
//! * [`GpuContext`]: every dispatch between two readbacks is recorded into one command encoder
//!   and its parameters (and small arrays such as IRDM's interpolation coefficients) into rings
//!   uploaded with the submission, so an adaptive step costs one submission and one readback
//!   (all norm groups together) and creates no buffer (the reduction and readback buffers are
//!   kept; [`GpuContext::buffers_created`] counts). Bind groups are kept too (parameters and
//!   ring arrays bound with dynamic offsets), so a solver's later steps create none
//!   ([`GpuContext::bind_groups_created`]), and a dropped vector's buffer serves the next vector
//!   of its length ([`GpuContext::release_cached`] frees them).
//! * [`GpuContext::start_profiling`]: the device time of every kernel ([`KernelTime`]) from
//!   timestamp queries, to find where an iteration's device time goes.
//! * [`measure_f32_peak`]: the adapter's f32 multiply-add throughput, measured with a kernel
//!   whose every result is checked, for a kernel's share of the peak where no published figure
//!   names the adapter.

mod cnf;
mod concat_squash;
mod context;
mod error;
mod kernel;
mod net_rhs;
mod peak;
mod profile;
mod readback;
mod vector;

pub use cnf::GpuCnf;
pub use concat_squash::{AUTO_TILED_ROWS, GpuActivation, GpuKernels, TRANSPOSED_WEIGHT_ROWS};
pub use context::{ADAPTER_ENV, GpuContext, GpuOptions, POOL_FLOATS};
pub use error::GpuError;
pub use net_rhs::GpuNetRhs;
pub use peak::{F32Peak, FLOPS_PER_TRIP, MAX_PEAK_SECONDS, PeakSettings, measure_f32_peak};
pub use profile::KernelTime;
pub use vector::GpuVec;

/// The README's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
