//! The stability suite (the paper's §4, "a dynamical system that collapses to zero"):
//! `dz/dt = A z` with strongly contracting `A`. RDM integrates `z` backward in time, where the
//! system expands, and pays in evaluations and accuracy; IRDM interpolates `z`.

use crate::results::Stability;
use adjoint::toy::Linear;
use adjoint::{BackwardNorm, Config, Method, forward};

const A: [f64; 9] = [-1.0, 0.5, 0.0, -0.5, -6.0, 0.5, 0.0, -0.5, -12.0];
const Z0: [f64; 3] = [1.0, 1.0, 1.0];
const T: f64 = 2.0;

fn gradient(method: Method, tol: f64) -> Result<adjoint::Gradient<f64>, adjoint::AdjointError> {
    // RDM's ruined gradients are flagged rather than refused, so that their error is tabled.
    let mut config = Config::new(tol, tol);
    config.rdm_check.on_exceed = adjoint::OnUnderResolved::Flag;
    let fwd = forward(&mut Linear { n: 3 }, &A, &Z0, &[0.0, T], method, &config)?;
    fwd.backward(&mut Linear { n: 3 }, &A, &[vec![0.0; 3], vec![1.0; 3]])
}

/// Runs the suite over tolerances 1e-3 … 1e-10.
pub fn run() -> Result<Vec<Stability>, adjoint::AdjointError> {
    let reference = gradient(Method::Direct, 1e-12)?.dtheta;
    let methods = [
        (
            "rdm",
            Method::Rdm {
                norm: BackwardNorm::Full,
            },
        ),
        (
            "rdm-semi",
            Method::Rdm {
                norm: BackwardNorm::Seminorm,
            },
        ),
        ("irdm32", Method::irdm_lobatto(31, BackwardNorm::Full)),
        (
            "irdm32-semi",
            Method::irdm_lobatto(31, BackwardNorm::Seminorm),
        ),
    ];
    let mut out = Vec::new();
    for e in 3..=10 {
        let tol = 10f64.powi(-e);
        for (label, m) in methods {
            let g = gradient(m, tol)?;
            let num: f64 = g
                .dtheta
                .iter()
                .zip(&reference)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                .sqrt();
            let den: f64 = reference.iter().map(|b| b * b).sum::<f64>().sqrt();
            out.push(Stability {
                label: label.into(),
                tol,
                rel_l2: num / den,
                bwd_evals: g.info.vjp_backward,
                flagged: g.info.rdm_flagged,
            });
        }
    }
    Ok(out)
}
