//! nalgebra and faer vectors as solver state (features `nalgebra`, `faer`): each passes the
//! vector conformance suite in f64 and f32, and a solve on it takes the same steps and ends at
//! the same state as on `Vec`.
#![cfg(any(feature = "nalgebra", feature = "faer"))]

use rk::{Method, Options, Rhs, Vector, solve};

/// `y' = A y` on any host vector, with `A` a fixed rotation-with-decay.
struct Rotation;

impl<V: Vector<Scalar = f64>> Rhs<V> for Rotation {
    fn eval(&mut self, _t: f64, y: &V, _p: &V, dy: &mut V) {
        let mut h = [0.0; 2];
        y.copy_to_host(&mut h);
        dy.copy_from_host(&[-0.1 * h[0] + 2.0 * h[1], -2.0 * h[0] - 0.1 * h[1]]);
    }
}

fn solve_on<V: Vector<Scalar = f64>>(make: impl Fn(&[f64]) -> V) -> (Vec<f64>, usize) {
    let sol = solve(
        &mut Rotation,
        &make(&[]),
        Method::Dopri5,
        &Options::new(1e-9, 1e-9),
        &[0.0, 1.0, 5.0],
        &make(&[2.0, 0.0]),
    )
    .unwrap();
    let mut end = vec![0.0; 2];
    sol.ys[2].copy_to_host(&mut end);
    (end, sol.stats.nfe)
}

#[cfg(feature = "nalgebra")]
mod nalgebra_vectors {
    use nalgebra::DVector;
    rk::vector_conformance_tests!(dvector_f64, |x: &[f64]| DVector::from_column_slice(x));
    rk::vector_conformance_tests!(dvector_f32, |x: &[f64]| DVector::from_iterator(
        x.len(),
        x.iter().map(|&v| v as f32)
    ));

    #[test]
    fn a_solve_on_dvector_is_the_solve_on_vec() {
        let on_vec = super::solve_on(|x: &[f64]| x.to_vec());
        let on_dvector = super::solve_on(DVector::from_column_slice);
        assert_eq!(on_vec, on_dvector);
    }
}

#[cfg(feature = "faer")]
mod faer_vectors {
    use faer::Col;
    rk::vector_conformance_tests!(col_f64, |x: &[f64]| Col::from_fn(x.len(), |i| x[i]));
    rk::vector_conformance_tests!(col_f32, |x: &[f64]| Col::from_fn(x.len(), |i| x[i] as f32));

    #[test]
    fn a_solve_on_faer_col_is_the_solve_on_vec() {
        let on_vec = super::solve_on(|x: &[f64]| x.to_vec());
        let on_col = super::solve_on(|x: &[f64]| Col::from_fn(x.len(), |i| x[i]));
        assert_eq!(on_vec, on_col);
    }
}
