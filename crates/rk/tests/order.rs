//! Tableau consistency and convergence orders: the global error at fixed step, the dense output
//! inside a step, and the embedded error estimate each fall with the slope of their order.

mod common;

use common::{Test2, max_diff, slope, test2_exact};
use rk::{Method, Options, Solver, solve};

#[test]
fn tableaux_are_consistent() {
    for m in Method::ALL {
        let t = m.tableau();
        let s = t.stages();
        assert_eq!(t.a.len(), s, "{}", t.name);
        assert_eq!(t.b.len(), s, "{}", t.name);
        assert!(
            (t.b.iter().sum::<f64>() - 1.0).abs() < 1e-14,
            "{}: Σb",
            t.name
        );
        for (i, row) in t.a.iter().enumerate() {
            assert_eq!(row.len(), i, "{}: row {i}", t.name);
            assert!(
                (row.iter().sum::<f64>() - t.c[i]).abs() < 1e-13,
                "{}: row sum {i}",
                t.name
            );
        }
        if let Some(e) = t.e {
            assert!(e.iter().sum::<f64>().abs() < 1e-14, "{}: Σe", t.name);
        }
        if t.fsal {
            assert_eq!(t.a[s - 1], &t.b[..s - 1], "{}: FSAL row equals b", t.name);
            assert_eq!(t.b[s - 1], 0.0);
        }
        let mut d = vec![0.0; s];
        (t.dense)(1.0, &mut d);
        for (i, (di, bi)) in d.iter().zip(t.b).enumerate() {
            assert!(
                (di - bi).abs() < 1e-12,
                "{}: b_{i}(1) = {di} vs {bi}",
                t.name
            );
        }
        (t.dense)(0.0, &mut d);
        assert!(d.iter().all(|x| x.abs() < 1e-15), "{}: b(0) = 0", t.name);
    }
}

/// Global error at `T = 2` with `n` fixed steps.
fn global_error(method: Method, n: usize) -> f64 {
    let h = 2.0 / n as f64;
    let sol = solve(
        &mut Test2,
        &vec![],
        method,
        &Options::fixed(h),
        &[0.0, 2.0],
        &vec![1.0, 1.0],
    )
    .unwrap();
    assert_eq!(sol.stats.accepted, n, "{method:?}: exactly n steps");
    max_diff(&sol.ys[1], &test2_exact(2.0))
}

#[test]
fn global_error_has_the_order_of_each_tableau() {
    for m in Method::ALL {
        let p = f64::from(m.tableau().order);
        // Step counts where the error stays well above rounding.
        let ns: &[usize] = match m.tableau().order {
            5 => &[64, 96, 128, 192],
            4 => &[16, 32, 64, 128],
            _ => &[40, 80, 160, 320, 640],
        };
        let xs: Vec<f64> = ns.iter().map(|&n| (2.0 / n as f64).ln()).collect();
        let ys: Vec<f64> = ns.iter().map(|&n| global_error(m, n).ln()).collect();
        let fitted = slope(&xs, &ys);
        assert!(
            (fitted - p).abs() <= 0.3,
            "{m:?}: fitted order {fitted}, expected {p}"
        );
    }
}

/// One step of size `h` from the exact state at `t0`, as a solver positioned after that step.
fn one_step(method: Method, h: f64, adaptive_loose: bool) -> Solver<Vec<f64>> {
    let t0 = 0.3;
    let y0 = test2_exact(t0);
    let options = if adaptive_loose {
        // Accept any step: tolerances so loose that the error ratio stays below one.
        Options::new(1e6, 1e6).with_first_step(h)
    } else {
        Options::fixed(h)
    };
    let mut s = Solver::new(method, options, &y0).unwrap();
    s.init(&mut Test2, &vec![], t0, t0 + h, &y0).unwrap();
    s.step(&mut Test2, &vec![]).unwrap();
    assert!(s.is_finished());
    s
}

#[test]
fn dense_output_has_its_stated_order_inside_a_step() {
    for m in Method::ALL {
        let q = f64::from(m.tableau().dense_order);
        let hs = [0.4, 0.2, 0.1, 0.05];
        let errs: Vec<f64> = hs
            .iter()
            .map(|&h| {
                let mut s = one_step(m, h, false);
                let mut out = vec![0.0; 2];
                (1..10)
                    .map(|i| {
                        let t = 0.3 + h * i as f64 / 10.0;
                        s.interpolate(t, &mut out).unwrap();
                        max_diff(&out, &test2_exact(t))
                    })
                    .fold(0.0, f64::max)
            })
            .collect();
        let xs: Vec<f64> = hs.iter().map(|h| h.ln()).collect();
        let ys: Vec<f64> = errs.iter().map(|e| e.ln()).collect();
        let fitted = slope(&xs, &ys);
        // Local error of an order-q interpolant is O(h^{q+1}).
        assert!(
            (fitted - (q + 1.0)).abs() <= 0.3,
            "{m:?}: dense local order {fitted}, expected {} (errors {errs:?})",
            q + 1.0
        );
    }
}

#[test]
fn embedded_error_estimate_has_the_embedded_order() {
    for m in Method::ALL.into_iter().filter(|m| m.is_adaptive()) {
        let p_hat = f64::from(m.tableau().embedded_order.unwrap());
        let hs = [0.4, 0.2, 0.1, 0.05];
        let errs: Vec<f64> = hs
            .iter()
            .map(|&h| {
                let s = one_step(m, h, true);
                s.local_error().iter().fold(0.0f64, |a, e| a.max(e.abs()))
            })
            .collect();
        let xs: Vec<f64> = hs.iter().map(|h| h.ln()).collect();
        let ys: Vec<f64> = errs.iter().map(|e| e.ln()).collect();
        let fitted = slope(&xs, &ys);
        assert!(
            (fitted - (p_hat + 1.0)).abs() <= 0.3,
            "{m:?}: estimator local order {fitted}, expected {} ({errs:?})",
            p_hat + 1.0
        );
    }
}
