//! A right-hand side written on `nalgebra::DVector` runs every gradient method through
//! `forward_on` on its own vector type: the Lotka–Volterra fit of
//! `examples/lotka_volterra_fit.rs`, whose Direct, RDM and IRDM gradients match central
//! differences (≤ 1e-6 relative, f64), and whose Adam fit on IRDM gradients recovers the
//! parameters from noisy observations.

#[path = "../examples/lotka_volterra_fit.rs"]
mod example;

use example::{THETA_START, THETA_TRUE, fit, gradient_check, observations};

#[test]
fn every_method_on_dvector_matches_central_differences() {
    let obs = observations(0.05);
    let checks = gradient_check(&THETA_START, &obs, 1e-12);
    assert_eq!(checks.len(), 3);
    for (name, err) in checks {
        assert!(err <= 1e-6, "{name}: {err:e} from central differences");
    }
}

#[test]
fn adam_on_irdm_gradients_recovers_the_parameters() {
    let obs = observations(0.05);
    let (theta, losses) = fit(&THETA_START, &obs, 300, 0.02, 1e-8).unwrap();
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    assert!(last < 0.1 * first, "loss {first} -> {last}");
    for (k, (got, want)) in theta.iter().zip(THETA_TRUE).enumerate() {
        assert!(
            (got - want).abs() <= 0.15 * want,
            "θ[{k}] = {got}, true {want}"
        );
    }
}
