//! The host backend passes the vector conformance suite, in f64 and f32.

rk::vector_conformance_tests!(host_f64, |x: &[f64]| x.to_vec());
rk::vector_conformance_tests!(host_f32, |x: &[f64]| x
    .iter()
    .map(|&v| v as f32)
    .collect::<Vec<f32>>());
