//! A right-hand side written on `nalgebra::DVector` (Lotka–Volterra, `θ = [α, β, δ, γ]`,
//! `x' = αx − βxy`, `y' = δxy − γy`) runs every gradient method through `forward_on` on its own
//! vector type, and the gradients of `L = Σ_k ‖z(t_k) − y_k‖²` match central differences
//! (≤ 1e-6 relative, f64) and each other.

use adjoint::{BackwardNorm, Config, Method, Vjp, forward_on};
use nalgebra::DVector;
use rk::Rhs;

struct LotkaVolterra;

fn lv(z: &[f64], p: &[f64], dz: &mut [f64]) {
    let (x, y) = (z[0], z[1]);
    dz[0] = p[0] * x - p[1] * x * y;
    dz[1] = p[2] * x * y - p[3] * y;
}

/// The solver's evaluations: on nalgebra's own vectors.
impl Rhs<DVector<f64>> for LotkaVolterra {
    fn eval(&mut self, _t: f64, z: &DVector<f64>, p: &DVector<f64>, dz: &mut DVector<f64>) {
        let (x, y) = (z[0], z[1]);
        dz[0] = p[0] * x - p[1] * x * y;
        dz[1] = p[2] * x * y - p[3] * y;
    }
}

impl Rhs<Vec<f64>> for LotkaVolterra {
    fn eval(&mut self, _t: f64, z: &Vec<f64>, p: &Vec<f64>, dz: &mut Vec<f64>) {
        lv(z, p, dz);
    }
}

/// `aᵀ∂f/∂z` and `aᵀ∂f/∂θ` on slices of whatever vector holds them.
impl Vjp<f64> for LotkaVolterra {
    fn state_len(&self) -> usize {
        2
    }
    fn param_len(&self) -> usize {
        4
    }
    fn vjp(
        &mut self,
        _t: f64,
        z: &[f64],
        p: &[f64],
        a: &[f64],
        value: Option<&mut [f64]>,
        adj_z: &mut [f64],
        adj_p: &mut [f64],
    ) {
        if let Some(v) = value {
            lv(z, p, v);
        }
        let (x, y) = (z[0], z[1]);
        adj_z[0] = a[0] * (p[0] - p[1] * y) + a[1] * p[2] * y;
        adj_z[1] = -a[0] * p[1] * x + a[1] * (p[2] * x - p[3]);
        adj_p[0] = a[0] * x;
        adj_p[1] = -a[0] * x * y;
        adj_p[2] = a[1] * x * y;
        adj_p[3] = -a[1] * y;
    }
}

const TS: [f64; 6] = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
const OBS: [[f64; 2]; 6] = [
    [1.0, 1.0],
    [1.3, 0.8],
    [1.9, 0.7],
    [2.4, 1.1],
    [1.6, 1.9],
    [0.9, 1.7],
];

fn loss_and_cotangents(outputs: &[DVector<f64>]) -> (f64, Vec<DVector<f64>>) {
    let mut l = 0.0;
    let cot = outputs
        .iter()
        .zip(OBS)
        .map(|(z, y)| {
            let d = [z[0] - y[0], z[1] - y[1]];
            l += d[0] * d[0] + d[1] * d[1];
            DVector::from_column_slice(&[2.0 * d[0], 2.0 * d[1]])
        })
        .collect();
    (l, cot)
}

fn gradient(method: Method, theta: &[f64], z0: &[f64], tol: f64) -> (f64, Vec<f64>, Vec<f64>) {
    let (th, z0) = (
        DVector::from_column_slice(theta),
        DVector::from_column_slice(z0),
    );
    let fwd = forward_on(
        &mut LotkaVolterra,
        &th,
        &z0,
        &TS,
        method,
        &Config::new(tol, tol),
    )
    .unwrap();
    let (l, cot) = loss_and_cotangents(fwd.outputs());
    let g = fwd.backward(&mut LotkaVolterra, &th, &cot).unwrap();
    (l, g.dz0.as_slice().to_vec(), g.dtheta.as_slice().to_vec())
}

#[test]
fn every_method_on_dvector_matches_central_differences() {
    let theta = [1.1, 0.9, 0.8, 1.2];
    let z0 = [1.0, 1.0];
    let tol = 1e-12;
    // Central differences of the loss (Direct's forward solve at the same tolerance).
    let loss = |th: &[f64], z: &[f64]| gradient(Method::Direct, th, z, tol).0;
    let h = 1e-6;
    let mut fd = Vec::new();
    for k in 0..4 {
        let (mut up, mut down) = (theta, theta);
        up[k] += h;
        down[k] -= h;
        fd.push((loss(&up, &z0) - loss(&down, &z0)) / (2.0 * h));
    }
    for i in 0..2 {
        let (mut up, mut down) = (z0, z0);
        up[i] += h;
        down[i] -= h;
        fd.push((loss(&theta, &up) - loss(&theta, &down)) / (2.0 * h));
    }
    for method in [
        Method::Direct,
        Method::Rdm {
            norm: BackwardNorm::Full,
        },
        Method::irdm_auto(tol, tol, BackwardNorm::Full),
    ] {
        let (_, dz0, dtheta) = gradient(method, &theta, &z0, tol);
        let got: Vec<f64> = dtheta.iter().chain(&dz0).copied().collect();
        for (k, (g, f)) in got.iter().zip(&fd).enumerate() {
            assert!(
                (g - f).abs() <= 1e-6 * f.abs().max(1.0),
                "{}: component {k}: {g} vs finite difference {f}",
                method.name()
            );
        }
    }
}
