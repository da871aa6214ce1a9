//! Criterion benchmarks for the workspace; run them with `cargo bench -p benches`.
//!
//! Each file in `benches/` measures one crate. This library target is empty on purpose.
