//! The one error type of the crate.

use thiserror::Error;

/// What can go wrong setting up or using the GPU backend.
#[derive(Debug, Error)]
pub enum GpuError {
    /// No adapter, or none matching `IRDM_GPU_ADAPTER`.
    #[error("no GPU adapter{}: {reason}", filter.as_ref().map(|f| format!(" matching IRDM_GPU_ADAPTER={f:?}")).unwrap_or_default())]
    NoAdapter {
        /// The name filter from the environment, if any.
        filter: Option<String>,
        /// What the adapters were, or why none was found.
        reason: String,
    },
    /// The device could not be created.
    #[error("requesting a device from {adapter}: {source}")]
    Device {
        /// Adapter name.
        adapter: String,
        /// The wgpu error.
        source: wgpu::RequestDeviceError,
    },
    /// An invalid model or argument.
    #[error("{what}: {reason}")]
    Invalid {
        /// Which object.
        what: String,
        /// Why.
        reason: String,
    },
    /// Reading a buffer back failed.
    #[error("reading back from the GPU: {0}")]
    Readback(String),
}
