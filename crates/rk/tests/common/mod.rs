//! Test problems with known solutions.
#![allow(dead_code)]

use rk::{Rhs, Vector};

/// `y1' = y1 cos t`, `y2' = −y2²`: solution `y1 = c1·exp(sin t)`, `y2 = 1/(t + c2)`.
/// Non-autonomous (exercises `c`) and nonlinear (exercises `a`).
pub struct Test2;

impl Rhs<Vec<f64>> for Test2 {
    fn eval(&mut self, t: f64, y: &Vec<f64>, _p: &Vec<f64>, dy: &mut Vec<f64>) {
        dy[0] = y[0] * t.cos();
        dy[1] = -y[1] * y[1];
    }
}

/// Exact solution of [`Test2`] through `y(0) = (1, 1)`.
pub fn test2_exact(t: f64) -> Vec<f64> {
    vec![t.sin().exp(), 1.0 / (1.0 + t)]
}

/// torchdiffeq's `ode_demo` spiral, `dy/dt = (y³) A`, `A = [[-0.1, 2], [-2, -0.1]]`.
pub struct Spiral;

impl Rhs<Vec<f64>> for Spiral {
    fn eval(&mut self, _t: f64, y: &Vec<f64>, _p: &Vec<f64>, dy: &mut Vec<f64>) {
        let (a, b) = (y[0].powi(3), y[1].powi(3));
        dy[0] = -0.1 * a - 2.0 * b;
        dy[1] = 2.0 * a - 0.1 * b;
    }
}

/// Largest absolute componentwise difference.
pub fn max_diff<V: Vector<Scalar = f64>>(a: &V, b: &[f64]) -> f64 {
    let mut h = vec![0.0; a.len()];
    a.copy_to_host(&mut h);
    h.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Least-squares slope of `ys` against `xs`.
pub fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    sxy / sxx
}
