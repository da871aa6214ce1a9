//! Fitting a classic model, not a neural net: the Lotka–Volterra equations
//!
//! ```text
//!     x' = α x − β x y,     y' = δ x y − γ y,      θ = [α, β, δ, γ]
//! ```
//!
//! written on `nalgebra::DVector` (the solver works on nalgebra's vectors, no copies), fitted to
//! noisy observations of a true trajectory by Adam on `L(θ) = Σ_k ‖z(t_k; θ) − y_k‖²`, with the
//! gradient by IRDM (automatic grid). Before fitting, the gradients of Direct, RDM and IRDM are
//! checked against central differences.
//!
//! Run with `cargo run --release -p irdm-adjoint --example lotka_volterra_fit`; `tests/nalgebra_state.rs`
//! runs the same functions.

use adjoint::{BackwardNorm, Config, Method, Vjp, forward_on};
use nalgebra::DVector;
use rk::Rhs;

/// The Lotka–Volterra right-hand side.
pub struct LotkaVolterra;

fn lv(z: &[f64], p: &[f64], dz: &mut [f64]) {
    let (x, y) = (z[0], z[1]);
    dz[0] = p[0] * x - p[1] * x * y;
    dz[1] = p[2] * x * y - p[3] * y;
}

/// The solver's evaluations, on nalgebra's vectors.
impl Rhs<DVector<f64>> for LotkaVolterra {
    fn eval(&mut self, _t: f64, z: &DVector<f64>, p: &DVector<f64>, dz: &mut DVector<f64>) {
        let (x, y) = (z[0], z[1]);
        dz[0] = p[0] * x - p[1] * x * y;
        dz[1] = p[2] * x * y - p[3] * y;
    }
}

/// The same on `Vec` (the host drivers' type).
impl Rhs<Vec<f64>> for LotkaVolterra {
    fn eval(&mut self, _t: f64, z: &Vec<f64>, p: &Vec<f64>, dz: &mut Vec<f64>) {
        lv(z, p, dz);
    }
}

/// `aᵀ∂f/∂z` and `aᵀ∂f/∂θ`, on slices of whatever vector holds them.
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

/// The true parameters.
pub const THETA_TRUE: [f64; 4] = [1.1, 0.9, 0.8, 1.2];
/// The initial state.
pub const Z0: [f64; 2] = [1.0, 1.0];
/// Observation times.
pub fn times() -> Vec<f64> {
    (0..=20).map(|i| 0.5 * i as f64).collect()
}

/// Noisy observations of the true trajectory (Gaussian noise of standard deviation `sigma`,
/// from a fixed seed).
pub fn observations(sigma: f64) -> Vec<[f64; 2]> {
    let truth = solve(&THETA_TRUE, 1e-12);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut normal = move || {
        let (u, v) = (uniform().max(1e-300), uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    };
    truth
        .iter()
        .map(|z| [z[0] + sigma * normal(), z[1] + sigma * normal()])
        .collect()
}

/// The states at [`times`] for `theta`.
pub fn solve(theta: &[f64], tol: f64) -> Vec<[f64; 2]> {
    let fwd = forward_on(
        &mut LotkaVolterra,
        &DVector::from_column_slice(theta),
        &DVector::from_column_slice(&Z0),
        &times(),
        Method::Direct,
        &Config::new(tol, tol),
    )
    .expect("forward solve");
    fwd.outputs().iter().map(|z| [z[0], z[1]]).collect()
}

/// `(L, dL/dz0, dL/dθ)` for `L = Σ_k ‖z(t_k) − y_k‖²` by `method`.
pub fn loss_and_gradient(
    method: Method,
    theta: &[f64],
    z0: &[f64],
    obs: &[[f64; 2]],
    tol: f64,
) -> Result<(f64, Vec<f64>, Vec<f64>), adjoint::AdjointError> {
    let th = DVector::from_column_slice(theta);
    let fwd = forward_on(
        &mut LotkaVolterra,
        &th,
        &DVector::from_column_slice(z0),
        &times(),
        method,
        &Config::new(tol, tol),
    )?;
    let mut l = 0.0;
    let cot: Vec<DVector<f64>> = fwd
        .outputs()
        .iter()
        .zip(obs)
        .map(|(z, y)| {
            let d = [z[0] - y[0], z[1] - y[1]];
            l += d[0] * d[0] + d[1] * d[1];
            DVector::from_column_slice(&[2.0 * d[0], 2.0 * d[1]])
        })
        .collect();
    let g = fwd.backward(&mut LotkaVolterra, &th, &cot)?;
    Ok((l, g.dz0.as_slice().to_vec(), g.dtheta.as_slice().to_vec()))
}

/// The methods compared.
pub fn methods(tol: f64) -> [Method; 3] {
    [
        Method::Direct,
        Method::Rdm {
            norm: BackwardNorm::Full,
        },
        Method::irdm_auto(tol, tol, BackwardNorm::Full),
    ]
}

/// Largest relative difference, per method, between `[dL/dθ, dL/dz0]` and central differences
/// of `L` (step `1e-6`), at tolerance `tol`.
pub fn gradient_check(theta: &[f64], obs: &[[f64; 2]], tol: f64) -> Vec<(&'static str, f64)> {
    let loss = |th: &[f64], z: &[f64]| {
        loss_and_gradient(Method::Direct, th, z, obs, tol)
            .expect("loss")
            .0
    };
    let h = 1e-6;
    let mut fd = Vec::new();
    for k in 0..4 {
        let (mut up, mut down) = (theta.to_vec(), theta.to_vec());
        up[k] += h;
        down[k] -= h;
        fd.push((loss(&up, &Z0) - loss(&down, &Z0)) / (2.0 * h));
    }
    for i in 0..2 {
        let (mut up, mut down) = (Z0, Z0);
        up[i] += h;
        down[i] -= h;
        fd.push((loss(theta, &up) - loss(theta, &down)) / (2.0 * h));
    }
    methods(tol)
        .iter()
        .map(|&m| {
            let (_, dz0, dtheta) = loss_and_gradient(m, theta, &Z0, obs, tol).expect("gradient");
            let worst = dtheta
                .iter()
                .chain(&dz0)
                .zip(&fd)
                .map(|(g, f)| (g - f).abs() / f.abs().max(1.0))
                .fold(0.0, f64::max);
            (m.name(), worst)
        })
        .collect()
}

/// Adam on `L(θ)` from `theta` for `iters` steps (learning rate `lr`, IRDM gradients at
/// `tol`); returns the fitted `θ` and the loss at every step.
pub fn fit(
    theta: &[f64],
    obs: &[[f64; 2]],
    iters: usize,
    lr: f64,
    tol: f64,
) -> Result<(Vec<f64>, Vec<f64>), adjoint::AdjointError> {
    let (b1, b2, eps) = (0.9, 0.999, 1e-8);
    let mut th = theta.to_vec();
    let (mut m, mut v) = (vec![0.0; th.len()], vec![0.0; th.len()]);
    let method = Method::irdm_auto(tol, tol, BackwardNorm::Full);
    let mut losses = Vec::with_capacity(iters);
    for step in 1..=iters {
        let (l, _, g) = loss_and_gradient(method, &th, &Z0, obs, tol)?;
        losses.push(l);
        for k in 0..th.len() {
            m[k] = b1 * m[k] + (1.0 - b1) * g[k];
            v[k] = b2 * v[k] + (1.0 - b2) * g[k] * g[k];
            let mh = m[k] / (1.0 - b1.powi(step as i32));
            let vh = v[k] / (1.0 - b2.powi(step as i32));
            th[k] -= lr * mh / (vh.sqrt() + eps);
        }
    }
    Ok((th, losses))
}

/// The starting guess of the fit.
pub const THETA_START: [f64; 4] = [0.8, 0.6, 1.0, 1.5];

#[allow(dead_code)] // `tests/nalgebra_state.rs` includes this file for its functions.
fn main() -> Result<(), adjoint::AdjointError> {
    let obs = observations(0.05);
    println!("gradient check at the start (max relative difference to central differences):");
    for (name, err) in gradient_check(&THETA_START, &obs, 1e-12) {
        println!("  {name:>6}: {err:.1e}");
    }
    let (theta, losses) = fit(&THETA_START, &obs, 400, 0.02, 1e-8)?;
    println!(
        "Adam, 400 steps, IRDM gradients: loss {:.4} -> {:.4}",
        losses[0],
        losses[losses.len() - 1]
    );
    println!("fitted θ = {theta:.3?}, true θ = {THETA_TRUE:?}");
    Ok(())
}
