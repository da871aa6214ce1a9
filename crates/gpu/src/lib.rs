//! The GPU backend through wgpu: a context built once ([`GpuContext`]) and an `f32` vector in a
//! storage buffer ([`GpuVec`]) implementing [`rk::Vector`], so that the `rk` solvers run with
//! their state on the GPU without a second copy of the stepping logic.
//!
//! Works on any Vulkan/Metal/DX12 adapter, including Mesa's software Vulkan (lavapipe), which the
//! tests use when no GPU is present. Set `IRDM_GPU_ADAPTER` to a substring of an adapter name to
//! choose one.
//!
//! Status: vector kernels (fill, scale, axpby, fused linear combinations, weighted RMS error
//! norm and dot product reduced on the device). GPU right-hand sides, gradient drivers on the
//! GPU and single-submission steps are still to come.

mod cnf;
mod context;
mod error;
mod vector;

pub use cnf::{GpuActivation, GpuCnf};
pub use context::{ADAPTER_ENV, GpuContext};
pub use error::GpuError;
pub use vector::GpuVec;
