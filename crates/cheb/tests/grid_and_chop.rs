//! Nodes, weights, nested restriction, vector data, chop, and every error case.

mod common;

use cheb::{ChebError, ChopRule, Grid, Interpolant, Kind, chop, clenshaw, coefficient_magnitudes};
use common::{KINDS, max_error};
use proptest::prelude::*;

#[test]
fn nodes_match_closed_forms_and_lobatto_has_exact_end_points() {
    let n = 7;
    let lob = Grid::<f64>::new(Kind::Lobatto, n, 0.0, 1.0).unwrap();
    let first = Grid::<f64>::new(Kind::First, n, 0.0, 1.0).unwrap();
    for k in 0..=n {
        let x_lob = -(k as f64 * std::f64::consts::PI / n as f64).cos();
        let x_first = -((2 * k + 1) as f64 * std::f64::consts::PI / (2 * n + 2) as f64).cos();
        assert!((lob.nodes()[k] - 0.5 * (x_lob + 1.0)).abs() < 1e-15);
        assert!((first.nodes()[k] - 0.5 * (x_first + 1.0)).abs() < 1e-15);
    }
    assert_eq!(lob.nodes()[0], 0.0);
    assert_eq!(lob.nodes()[n], 1.0);
    assert!(first.nodes()[0] > 0.0 && first.nodes()[n] < 1.0);
    assert_eq!(lob.weights()[0], 0.5);
    assert_eq!(lob.weights()[1], -1.0);
    assert_eq!(lob.weights()[n], -0.5);
}

#[test]
fn reversed_interval_gives_the_same_interpolant() {
    for kind in KINDS {
        let f = |t: f64| (3.0 * t).sin() + t * t;
        let fwd = Grid::new(kind, 12, -0.5, 2.0).unwrap();
        let rev = Grid::new(kind, 12, 2.0, -0.5).unwrap();
        if kind == Kind::Lobatto {
            assert_eq!((rev.nodes()[0], rev.nodes()[12]), (2.0, -0.5));
        }
        let vf: Vec<f64> = fwd.nodes().iter().map(|&t| f(t)).collect();
        let vr: Vec<f64> = rev.nodes().iter().map(|&t| f(t)).collect();
        for i in 0..50 {
            let t = -0.5 + 2.5 * i as f64 / 49.0;
            let p = fwd.interpolate(&vf, t).unwrap();
            let q = rev.interpolate(&vr, t).unwrap();
            assert!((p - q).abs() < 1e-13, "t={t}: {p} vs {q}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// At every node the coefficients are exactly the unit vector and the stored value comes back
    /// bit for bit; elsewhere they sum to one.
    #[test]
    fn exact_at_nodes_and_partition_of_unity(
        kind in prop_oneof![Just(Kind::Lobatto), Just(Kind::First)],
        n in 1usize..=128,
        s in 0.0f64..1.0,
    ) {
        let grid = Grid::new(kind, n, 3.0, -1.0).unwrap();
        let values: Vec<f64> = (0..=n).map(|k| (k as f64 * 0.37).sin() + 0.1).collect();
        let mut l = vec![0.0; n + 1];
        for (j, &tau) in grid.nodes().iter().enumerate() {
            grid.coefficients(tau, &mut l).unwrap();
            for (k, &c) in l.iter().enumerate() {
                prop_assert_eq!(c, if k == j { 1.0 } else { 0.0 });
            }
            prop_assert_eq!(grid.interpolate(&values, tau).unwrap(), values[j]);
        }
        grid.coefficients(3.0 - 4.0 * s, &mut l).unwrap();
        prop_assert!((l.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    /// Interpolating a state vector equals interpolating each component on its own, and the
    /// reusable `Interpolant` agrees with the one-shot call.
    #[test]
    fn vector_interpolation_is_componentwise(
        kind in prop_oneof![Just(Kind::Lobatto), Just(Kind::First)],
        n in 1usize..=40, dim in 1usize..=9, s in 0.0f64..=1.0,
        data in prop::collection::vec(-5.0f64..5.0, 41 * 9),
    ) {
        let grid = Grid::new(kind, n, 0.0, 2.0).unwrap();
        let values = data[..(n + 1) * dim].to_vec();
        let t = 2.0 * s;
        let mut out = vec![0.0; dim];
        grid.interpolate_into(&values, dim, t, &mut out).unwrap();
        let mut interp = Interpolant::new(grid.clone(), values.clone(), dim).unwrap();
        let mut out2 = vec![0.0; dim];
        interp.eval(t, &mut out2).unwrap();
        for j in 0..dim {
            let column: Vec<f64> = values.iter().skip(j).step_by(dim).copied().collect();
            let scalar = grid.interpolate(&column, t).unwrap();
            prop_assert!((out[j] - scalar).abs() <= 1e-13 * (1.0 + scalar.abs()));
            prop_assert_eq!(out[j], out2[j]);
        }
    }

    /// A nested Lobatto grid restricts without new samples: the sub-grid's nodes are exactly every
    /// (N/m)-th node, they agree with a freshly built grid of degree m, and so does the interpolant.
    #[test]
    fn nested_restriction(j in 1u32..=7, i in 0u32..=7, a in -3.0f64..3.0, len in 0.5f64..4.0) {
        let i = i.min(j);
        let (n, m) = (1usize << j, 1usize << i);
        let fine = Grid::new(Kind::Lobatto, n, a, a + len).unwrap();
        let sub = fine.restrict(m).unwrap();
        let fresh = Grid::new(Kind::Lobatto, m, a, a + len).unwrap();
        prop_assert_eq!(sub.degree(), m);
        prop_assert_eq!(sub.weights(), fresh.weights());
        for (k, (&x, &y)) in sub.nodes().iter().zip(fresh.nodes()).enumerate() {
            prop_assert_eq!(x, fine.nodes()[k * (n / m)]);
            prop_assert!((x - y).abs() <= 4.0 * f64::EPSILON * (a.abs() + len));
        }
        let f = |t: f64| (t - a).cos() * 2.0 + 0.5 * t;
        let values: Vec<f64> = fine.nodes().iter().flat_map(|&t| [f(t), -f(t)]).collect();
        let restricted = fine.restrict_values(&values, 2, m).unwrap();
        prop_assert_eq!(restricted.len(), (m + 1) * 2);
        let fresh_values: Vec<f64> = fresh.nodes().iter().flat_map(|&t| [f(t), -f(t)]).collect();
        let t = a + 0.3141 * len;
        let (mut p, mut q) = ([0.0; 2], [0.0; 2]);
        sub.interpolate_into(&restricted, 2, t, &mut p).unwrap();
        fresh.interpolate_into(&fresh_values, 2, t, &mut q).unwrap();
        prop_assert!((p[0] - q[0]).abs() < 1e-12 && (p[1] - q[1]).abs() < 1e-12);
        prop_assert_eq!(fine.smallest_nested_degree(m), Some(m));
        if m > 2 && m < n {
            prop_assert_eq!(fine.smallest_nested_degree(m - 1), Some(m));
            prop_assert_eq!(fine.smallest_nested_degree(m + 1), Some(2 * m));
        }
    }

    /// `chop` finds the degree of a polynomial sampled on a larger grid.
    #[test]
    fn chop_finds_polynomial_degree(
        kind in prop_oneof![Just(Kind::Lobatto), Just(Kind::First)],
        n in 4usize..=64, frac in 0.0f64..0.9,
        coeffs in prop::collection::vec(-1.0f64..1.0, 65), lead in 0.5f64..1.0,
    ) {
        let d = (frac * n as f64) as usize;
        let mut c = coeffs[..=d].to_vec();
        c[d] = lead;
        let grid = Grid::new(kind, n, -1.0, 1.0).unwrap();
        let values: Vec<f64> = grid.nodes().iter().map(|&x| clenshaw(&c, x)).collect();
        let mags = coefficient_magnitudes(&grid.chebyshev_coefficients(&values, 1).unwrap(), 1);
        let found = chop(&mags, ChopRule { rel_tol: 1e-10, abs_tol: 0.0 }).unwrap();
        prop_assert_eq!(found.degree, d);
        prop_assert!(found.resolved);
        prop_assert!(found.error_estimate < 1e-9);
    }
}

/// The a-posteriori estimate from the coefficient tail bounds the real error of the chopped grid
/// (to within a factor 2), and the tolerance controls it.
#[test]
fn chop_estimate_tracks_the_real_error() {
    let f = |x: f64| 1.0 / (1.0 + 4.0 * x * x) + (2.0 * x).sin();
    for kind in KINDS {
        let fine = Grid::new(kind, 128, -1.0, 1.0).unwrap();
        let values: Vec<f64> = fine.nodes().iter().map(|&x| f(x)).collect();
        let mags = coefficient_magnitudes(&fine.chebyshev_coefficients(&values, 1).unwrap(), 1);
        let mut last_degree = 0;
        for tol in [1e-3, 1e-6, 1e-9, 1e-12] {
            let found = chop(
                &mags,
                ChopRule {
                    rel_tol: tol,
                    abs_tol: 0.0,
                },
            )
            .unwrap();
            assert!(found.resolved);
            assert!(
                found.degree > last_degree,
                "degree grows as tolerance falls"
            );
            last_degree = found.degree;
            let coarse = Grid::new(kind, found.degree, -1.0, 1.0).unwrap();
            let real = max_error(&coarse, &f, 2001);
            assert!(
                real <= 2.0 * found.error_estimate + 1e-14,
                "{kind:?} tol={tol}: real {real:e} vs estimate {:e}",
                found.error_estimate
            );
            assert!(found.error_estimate <= 2.0 * tol * mags[0].max(mags[1]) * 2.0);
        }
    }
    // An unresolved grid says so.
    let coarse = Grid::new(Kind::Lobatto, 8, -1.0, 1.0).unwrap();
    let values: Vec<f64> = coarse
        .nodes()
        .iter()
        .map(|&x| 1.0 / (1.0 + 25.0 * x * x))
        .collect();
    let mags = coefficient_magnitudes(&coarse.chebyshev_coefficients(&values, 1).unwrap(), 1);
    let found = chop(
        &mags,
        ChopRule {
            rel_tol: 1e-8,
            abs_tol: 0.0,
        },
    )
    .unwrap();
    assert!(!found.resolved);
    assert_eq!(found.degree, 8);
    assert!(found.error_estimate > 1e-3);
}

#[test]
fn errors_are_reported_not_panicked() {
    use ChebError::*;
    assert_eq!(
        Grid::<f64>::new(Kind::Lobatto, 0, 0.0, 1.0),
        Err(ZeroDegree)
    );
    assert_eq!(
        Grid::<f64>::new(Kind::First, 3, 1.0, 1.0),
        Err(InvalidInterval { a: 1.0, b: 1.0 })
    );
    assert!(matches!(
        Grid::<f64>::new(Kind::First, 3, f64::NAN, 1.0),
        Err(InvalidInterval { .. })
    ));
    assert!(matches!(
        Grid::<f32>::new(Kind::First, 3, 0.0, f32::INFINITY),
        Err(InvalidInterval { b, .. }) if b.is_infinite()
    ));

    let grid = Grid::<f64>::new(Kind::Lobatto, 4, 0.0, 1.0).unwrap();
    let too_short = [0.0; 4];
    assert_eq!(
        grid.interpolate(&too_short, 0.5),
        Err(LengthMismatch {
            what: "node values ((N + 1) × dim)",
            expected: 5,
            got: 4
        })
    );
    let mut out = [0.0; 3];
    assert!(matches!(
        grid.interpolate_into(&[0.0; 10], 2, 0.5, &mut out),
        Err(LengthMismatch {
            expected: 2,
            got: 3,
            ..
        })
    ));
    assert!(matches!(
        grid.interpolate_into(&[], 0, 0.5, &mut []),
        Err(LengthMismatch { .. })
    ));
    let mut l = [0.0; 4];
    assert!(matches!(
        grid.coefficients(0.5, &mut l),
        Err(LengthMismatch {
            expected: 5,
            got: 4,
            ..
        })
    ));
    let mut l = [0.0; 5];
    assert_eq!(
        grid.coefficients(1.5, &mut l),
        Err(OutsideInterval {
            t: 1.5,
            a: 0.0,
            b: 1.0
        })
    );
    assert!(matches!(
        grid.coefficients(f64::NAN, &mut l),
        Err(NonFinite { .. })
    ));
    // Rounding-level overshoot of the end is clamped, not rejected.
    grid.coefficients(1.0 + f64::EPSILON, &mut l).unwrap();
    assert_eq!(l, [0.0, 0.0, 0.0, 0.0, 1.0]);

    let first = Grid::<f64>::new(Kind::First, 4, 0.0, 1.0).unwrap();
    assert!(matches!(
        first.restrict(2),
        Err(NotNested {
            kind: "first",
            n: 4,
            m: 2
        })
    ));
    assert!(matches!(
        grid.restrict(3),
        Err(NotNested { n: 4, m: 3, .. })
    ));
    assert!(matches!(grid.restrict(0), Err(NotNested { .. })));
    let mixed = Grid::<f64>::with_weight_kind(Kind::Lobatto, Kind::First, 4, 0.0, 1.0).unwrap();
    assert!(matches!(
        mixed.restrict(2),
        Err(NotNested {
            kind: "mismatched",
            ..
        })
    ));
    assert_eq!(first.smallest_nested_degree(1), None);

    assert!(matches!(
        chop(
            &[1.0, 0.5],
            ChopRule {
                rel_tol: -1.0,
                abs_tol: 0.0
            }
        ),
        Err(BadTolerance {
            name: "rel_tol",
            ..
        })
    ));
    assert!(matches!(
        chop(
            &[1.0, 0.5],
            ChopRule {
                rel_tol: 0.0,
                abs_tol: f64::NAN
            }
        ),
        Err(BadTolerance {
            name: "abs_tol",
            ..
        })
    ));
    assert!(matches!(
        chop(
            &[1.0],
            ChopRule {
                rel_tol: 0.1,
                abs_tol: 0.0
            }
        ),
        Err(LengthMismatch { .. })
    ));
    assert!(matches!(
        chop(
            &[1.0, f64::NAN],
            ChopRule {
                rel_tol: 0.1,
                abs_tol: 0.0
            }
        ),
        Err(NonFinite { .. })
    ));
    assert!(matches!(
        Interpolant::new(grid.clone(), vec![0.0, 1.0, f64::INFINITY, 0.0, 0.0], 1),
        Err(NonFinite {
            what: "node value",
            ..
        })
    ));
    // Messages name the values.
    let msg = Grid::<f64>::new(Kind::First, 3, 2.0, 2.0)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("[2, 2]"), "{msg}");
}
