//! The shared GPU context of the tests: built once; without an adapter `None` (the tests say
//! "skipped"), unless `IRDM_REQUIRE_GPU=1` (CI), where a missing adapter fails.

use gpu::GpuContext;
use std::sync::{Arc, OnceLock};

pub fn context() -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Option<Arc<GpuContext>>> = OnceLock::new();
    CTX.get_or_init(|| match GpuContext::new() {
        Ok(c) => Some(c),
        Err(e) => {
            assert!(
                std::env::var("IRDM_REQUIRE_GPU").as_deref() != Ok("1"),
                "IRDM_REQUIRE_GPU=1 but {e}"
            );
            eprintln!("no GPU adapter, GPU tests skipped: {e}");
            None
        }
    })
    .clone()
}
