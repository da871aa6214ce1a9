//! The gradient of a tanh-MLP ODE (state 3, hidden 32, outputs at four times, nonlinear loss)
//! by every method at `rtol = atol = 1e-8`, against Direct at `1e-12`.
//!
//! Prints one JSON line per method:
//! `{"method": …, "nfe_fwd": …, "nfe_bwd": …, "vjp_bwd": …, "stored_floats": …, "rel_err": …}`
//! where `rel_err` is the relative ℓ2 error of `dL/dθ`.
//!
//! Run with `cargo run --release -p irdm-adjoint --example methods`.

use adjoint::toy::Mlp;
use adjoint::{AdjointError, BackwardNorm, Checkpoints, Config, IrdmGrid, Method, forward};

const TS: [f64; 4] = [0.0, 0.5, 1.0, 2.0];

fn gradient(method: Method, tol: f64) -> Result<adjoint::Gradient<f64>, AdjointError> {
    let mut f = Mlp::new(3, 32);
    let theta = f.params(11, 0.5);
    let z0 = [0.6, -0.4, 0.9];
    let fwd = forward(&mut f, &theta, &z0, &TS, method, &Config::new(tol, tol))?;
    // L = Σ_k ½‖z(s_k)‖²: cotangents are the outputs themselves.
    let cot: Vec<Vec<f64>> = fwd.outputs().to_vec();
    fwd.backward(&mut f, &theta, &cot)
}

fn main() -> Result<(), AdjointError> {
    let reference = gradient(Method::Direct, 1e-12)?;
    let methods = [
        ("direct", Method::Direct),
        (
            "rdm",
            Method::Rdm {
                norm: BackwardNorm::Full,
            },
        ),
        (
            "rdm-seminorm",
            Method::Rdm {
                norm: BackwardNorm::Seminorm,
            },
        ),
        (
            "anode-k4",
            Method::Anode {
                checkpoints: Checkpoints::EveryKSteps(4),
            },
        ),
        (
            "irdm-lobatto16",
            Method::irdm_lobatto(16, BackwardNorm::Full),
        ),
        (
            "irdm-lobatto16-seminorm",
            Method::irdm_lobatto(16, BackwardNorm::Seminorm),
        ),
        (
            "irdm-first16",
            Method::Irdm {
                grid: IrdmGrid::Fixed {
                    kind: cheb::Kind::First,
                    n: 16,
                },
                norm: BackwardNorm::Full,
            },
        ),
        (
            "irdm-auto",
            Method::Irdm {
                grid: IrdmGrid::Auto {
                    n_max: 64,
                    rel_tol: 1e-7,
                    abs_tol: 1e-9,
                },
                norm: BackwardNorm::Seminorm,
            },
        ),
    ];
    for (label, method) in methods {
        let g = gradient(method, 1e-8)?;
        let num: f64 = g
            .dtheta
            .iter()
            .zip(&reference.dtheta)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        let den: f64 = reference.dtheta.iter().map(|b| b * b).sum::<f64>().sqrt();
        let grid = g
            .info
            .grid
            .as_ref()
            .map_or(String::new(), |gi| format!(r#", "grid_n": {}"#, gi.n));
        println!(
            r#"{{"method": "{label}", "nfe_fwd": {}, "nfe_bwd": {}, "vjp_bwd": {}, "stored_floats": {}, "rel_err": {:e}{grid}}}"#,
            g.info.nfe_forward,
            g.info.nfe_backward,
            g.info.vjp_backward,
            g.info.stored_floats,
            num / den
        );
    }
    Ok(())
}
