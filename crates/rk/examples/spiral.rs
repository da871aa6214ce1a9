//! The spiral problem of torchdiffeq's `ode_demo`: `dy/dt = (y³) A` with
//! `A = [[-0.1, 2.0], [-2.0, -0.1]]`, `y0 = [2, 0]`, `t ∈ [0, 25]`, dopri5, `rtol = 1e-7`,
//! `atol = 1e-9`, f64. torchdiffeq 0.2.5 takes 2450 evaluations and ends near
//! `[-0.443623487, 0.279440642]`.
//!
//! Prints one JSON line `{"nfe": …, "accepted": …, "rejected": …, "y": [y1, y2]}`.
//! Run with `cargo run --release -p irdm-rk --example spiral`.

use rk::{FnRhs, Method, Options, RkError, solve};

fn main() -> Result<(), RkError> {
    // Row vector times matrix: (y³ A)_j = Σ_i y_i³ A_ij.
    let mut rhs = FnRhs(|_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| {
        let (a, b) = (y[0].powi(3), y[1].powi(3));
        dy[0] = -0.1 * a - 2.0 * b;
        dy[1] = 2.0 * a - 0.1 * b;
    });
    // torchdiffeq's ode_demo asks for 1000 output times; outputs cost no evaluations.
    let ts: Vec<f64> = (0..1000).map(|i| 25.0 * i as f64 / 999.0).collect();
    let sol = solve(
        &mut rhs,
        &vec![],
        Method::Dopri5,
        &Options::new(
            std::env::var("RTOL")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(1e-7),
            1e-9 * std::env::var("RTOL")
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .map_or(1.0, |r| r / 1e-7),
        ),
        &ts,
        &vec![2.0, 0.0],
    )?;
    let y = &sol.ys[sol.ys.len() - 1];
    println!(
        r#"{{"nfe": {}, "accepted": {}, "rejected": {}, "y": [{:.9}, {:.9}]}}"#,
        sol.stats.nfe, sol.stats.accepted, sol.stats.rejected, y[0], y[1]
    );
    Ok(())
}
