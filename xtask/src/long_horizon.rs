//! The long-horizon part of the gradient-error suite: torchdiffeq's `ode_demo` spiral
//! `dy/dt = (y³) A` ([`adjoint::toy::Spiral`]) on `t ∈ [0, 25]` with 1000 output times and
//! `L = Σ y(25)²`, whose many oscillations one Chebyshev grid over the whole solve cannot hold.
//! For each solver tolerance and method: the relative ℓ2 error of `[dL/dy0, dL/dA]` against Direct
//! at 1e-12, the floats held for the backward pass, and IRDM's own error estimate, segments and
//! under-resolution flag. The paper's single grid is shown beside the piecewise grids; an
//! under-resolved grid must say so (here: flagged, so that its wrong gradient can be tabled).

use crate::gradient_error::rel;
use crate::results::LongHorizon;
use adjoint::toy::Spiral;
use adjoint::{
    BackwardNorm, Checkpoints, Config, IrdmOptions, Method, OnUnderResolved, Segments, forward,
};
use indicatif::ProgressBar;

/// Tolerances (rtol = atol).
pub const TOLS: [f64; 5] = [1e-5, 1e-6, 1e-7, 1e-8, 1e-9];
const T_END: f64 = 25.0;
const N_OUT: usize = 1000;
const REFERENCE_TOL: f64 = 1e-12;

/// The compared methods: label, method at a tolerance, IRDM capture settings.
type Row = (&'static str, fn(f64) -> Method, IrdmOptions);

fn rows() -> Vec<Row> {
    let single = IrdmOptions {
        segments: Segments::Single,
        on_under_resolved: OnUnderResolved::Flag,
        ..IrdmOptions::default()
    };
    let flagged = IrdmOptions {
        on_under_resolved: OnUnderResolved::Flag,
        ..IrdmOptions::default()
    };
    vec![
        ("direct", |_| Method::Direct, flagged),
        (
            "rdm",
            |_| Method::Rdm {
                norm: BackwardNorm::Full,
            },
            flagged,
        ),
        (
            "anode-k4",
            |_| Method::Anode {
                checkpoints: Checkpoints::EveryKSteps(4),
            },
            flagged,
        ),
        (
            "irdm16-single",
            |_| Method::irdm_lobatto(16, BackwardNorm::Full),
            single,
        ),
        (
            "irdm64-single",
            |_| Method::irdm_lobatto(64, BackwardNorm::Full),
            single,
        ),
        (
            "irdm-auto-single",
            |tol| Method::irdm_auto(tol, tol, BackwardNorm::Full),
            single,
        ),
        (
            "irdm16",
            |_| Method::irdm_lobatto(16, BackwardNorm::Full),
            flagged,
        ),
        (
            "irdm-auto",
            |tol| Method::irdm_auto(tol, tol, BackwardNorm::Full),
            flagged,
        ),
    ]
}

fn times() -> Vec<f64> {
    (0..N_OUT)
        .map(|i| T_END * i as f64 / (N_OUT - 1) as f64)
        .collect()
}

/// `[dL/dy0, dL/dA]` and the gradient's info.
fn gradient(
    method: Method,
    config: &Config<f64>,
) -> Result<(Vec<f64>, adjoint::Info), adjoint::AdjointError> {
    let ts = times();
    let fwd = forward(&mut Spiral, &Spiral::A, &Spiral::Y0, &ts, method, config)?;
    let mut cot = vec![vec![0.0; 2]; ts.len()];
    if let Some(last) = fwd.outputs().last() {
        cot[ts.len() - 1] = last.iter().map(|y| 2.0 * y).collect();
    }
    let g = fwd.backward(&mut Spiral, &Spiral::A, &cot)?;
    let mut all = g.dz0;
    all.extend_from_slice(&g.dtheta);
    Ok((all, g.info))
}

/// Runs the suite. A method that fails at a tolerance is recorded with its error.
pub fn run(progress: &ProgressBar) -> Result<Vec<LongHorizon>, Box<dyn std::error::Error>> {
    let reference = gradient(Method::Direct, &Config::new(REFERENCE_TOL, REFERENCE_TOL))?.0;
    let rows = rows();
    progress.set_length((rows.len() * TOLS.len()) as u64);
    let mut out = Vec::new();
    for (label, method, irdm) in rows {
        for tol in TOLS {
            let mut config = Config::new(tol, tol);
            config.irdm = irdm;
            let m = method(tol);
            let mut cell = LongHorizon {
                label: label.into(),
                tol,
                ..LongHorizon::default()
            };
            match gradient(m, &config) {
                Ok((g, info)) => {
                    cell.rel_l2 = Some(rel(&g, &reference, 2));
                    cell.stored_floats = info.stored_floats;
                    cell.nfe_fwd = info.nfe_forward;
                    cell.nfe_bwd = info.nfe_backward;
                    cell.vjp_bwd = info.vjp_backward;
                    if let Some(grid) = info.grid {
                        cell.error_estimate = grid.error_estimate;
                        cell.segments = grid.segments.len();
                        cell.nodes = grid.nodes;
                        cell.under_resolved = grid.under_resolved;
                    }
                }
                Err(e) => cell.error = Some(e.to_string()),
            }
            out.push(cell);
            progress.inc(1);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The suite's claims in small: at tol 1e-9 the piecewise grids are as accurate as Direct
    /// with fewer floats, and the single grid is flagged wrong, never silently.
    #[test]
    fn piecewise_grids_match_direct_and_the_single_grid_is_flagged() {
        let cells = run(&ProgressBar::hidden()).unwrap();
        let at = |label: &str, tol: f64| {
            cells
                .iter()
                .find(|c| c.label == label && c.tol == tol)
                .unwrap()
        };
        let direct = at("direct", 1e-9);
        let direct_err = direct.rel_l2.unwrap();
        for label in ["irdm16", "irdm-auto"] {
            let c = at(label, 1e-9);
            assert!(
                c.rel_l2.unwrap() <= 10.0 * direct_err,
                "{c:?} vs {direct:?}"
            );
            assert!(c.stored_floats < direct.stored_floats, "{c:?}");
            assert!(c.segments > 1 && !c.under_resolved, "{c:?}");
        }
        let single = at("irdm16-single", 1e-9);
        assert!(single.rel_l2.unwrap() > 1e-2, "{single:?}");
        assert!(single.error_estimate.unwrap() > 1e-2, "{single:?}");
        let auto_single = at("irdm-auto-single", 1e-9);
        assert!(auto_single.under_resolved, "{auto_single:?}");
        assert!(cells.iter().all(|c| c.error.is_none()), "{cells:?}");
        assert!(
            cells
                .iter()
                .all(|c| c.label.starts_with("irdm") == c.error_estimate.is_some())
        );
    }
}
