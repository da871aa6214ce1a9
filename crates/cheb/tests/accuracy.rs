//! Accuracy laws of barycentric interpolation at Chebyshev points, by property testing:
//! exactness on polynomials, the Bernstein-ellipse bound, the geometric rate, the Lebesgue bound,
//! and the loss of the spectral rate when nodes and weights are mismatched.

mod common;

use cheb::{Grid, Kind, clenshaw};
use common::{KINDS, max_error, max_on_ellipse, slope};
use proptest::prelude::*;

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Lobatto), Just(Kind::First)]
}

/// An interval `[a, b]`, possibly reversed, with `|b − a| ≥ 0.1`.
fn interval() -> impl Strategy<Value = (f64, f64)> {
    (-10.0f64..10.0, 0.1f64..20.0, any::<bool>())
        .prop_map(|(a, len, rev)| if rev { (a + len, a) } else { (a, a + len) })
}

/// Maps `t ∈ [a, b]` to the reference variable `x ∈ [−1, 1]`.
fn to_ref(t: f64, a: f64, b: f64) -> f64 {
    (2.0 * t - a - b) / (b - a)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Every polynomial of degree ≤ N is reproduced to rounding, on any interval, both kinds.
    #[test]
    fn exact_on_polynomials(
        kind in kind(),
        n in 1usize..=96,
        frac in 0.0f64..=1.0,
        (a, b) in interval(),
        seed_coeffs in prop::collection::vec(-1.0f64..1.0, 97),
        ts in prop::collection::vec(0.0f64..=1.0, 10),
    ) {
        let degree = ((n as f64) * frac).round() as usize;
        let c = &seed_coeffs[..=degree];
        let grid = Grid::new(kind, n, a, b).unwrap();
        let values: Vec<f64> = grid.nodes().iter().map(|&t| clenshaw(c, to_ref(t, a, b))).collect();
        let scale: f64 = c.iter().map(|x| x.abs()).sum::<f64>().max(1e-300);
        for s in ts {
            let t = a + (b - a) * s;
            let p = grid.interpolate(&values, t).unwrap();
            let exact = clenshaw(c, to_ref(t, a, b));
            prop_assert!((p - exact).abs() <= 1e-12 * scale * (n as f64).sqrt(),
                "kind {kind:?} N={n} deg={degree} t={t}: {p} vs {exact}");
        }
        // The DCT recovers the coefficients (degree ≤ N) and zeros above.
        let recovered = grid.chebyshev_coefficients(&values, 1).unwrap();
        for (m, r) in recovered.iter().enumerate() {
            let want = c.get(m).copied().unwrap_or(0.0);
            prop_assert!((r - want).abs() <= 1e-13 * scale * n as f64, "m={m}: {r} vs {want}");
        }
    }

    /// The same law in f32, at f32 precision.
    #[test]
    fn exact_on_polynomials_f32(
        kind in kind(),
        n in 1usize..=32,
        coeffs in prop::collection::vec(-1.0f32..1.0, 33),
        s in 0.0f32..=1.0,
    ) {
        let c = &coeffs[..=n];
        let grid = Grid::<f32>::new(kind, n, -2.0, 3.0).unwrap();
        let values: Vec<f32> = grid.nodes().iter().map(|&t| clenshaw(c, (2.0 * t - 1.0) / 5.0)).collect();
        let t = -2.0 + 5.0 * s;
        let p = grid.interpolate(&values, t).unwrap();
        let exact = clenshaw(c, (2.0 * t - 1.0) / 5.0);
        let scale: f32 = c.iter().map(|x| x.abs()).sum::<f32>().max(1e-30);
        prop_assert!((p - exact).abs() <= 2e-5 * scale, "{p} vs {exact}");
    }

    /// `max|f − p_N| ≤ 4Mρ^{-N}/(ρ−1)` for `f(x) = 1/(1 + (x/c)²)`, poles at `±ic`, analytic
    /// inside the ellipse through them, `ρ* = c + √(c² + 1)`; tested on a smaller ellipse
    /// `ρ ∈ (1, ρ*)` where `M` is finite.
    #[test]
    fn bernstein_bound_runge(kind in kind(), c in 0.1f64..2.0, n in 2usize..=80, u in 0.2f64..0.95) {
        let rho_star = c + (c * c + 1.0).sqrt();
        let rho = 1.0 + u * (rho_star - 1.0);
        // |f(z)| = c² / |z² + c²|
        let m = max_on_ellipse(rho, &|x, y| {
            let (re, im) = (x * x - y * y + c * c, 2.0 * x * y);
            c * c / (re * re + im * im).sqrt()
        });
        let bound = 4.0 * m * rho.powi(-(n as i32)) / (rho - 1.0);
        let grid = Grid::new(kind, n, -1.0, 1.0).unwrap();
        let err = max_error(&grid, &|x| 1.0 / (1.0 + (x / c) * (x / c)), 1501);
        prop_assert!(err <= bound + 1e-13, "N={n} c={c} rho={rho}: err {err:e} > bound {bound:e}");
    }

    /// The same bound for `f(x) = 1/(x − x0)` with a real pole `|x0| > 1`: the ellipse through
    /// `x0` has `ρ* = |x0| + √(x0² − 1)`, and on `E_ρ` (`ρ < ρ*`) `|f| ≤ 1/(|x0| − (ρ + 1/ρ)/2)`
    /// exactly (the nearest point of the ellipse to `x0` is the end of its major axis).
    #[test]
    fn bernstein_bound_pole(
        kind in kind(), x0 in 1.02f64..4.0, left in any::<bool>(), n in 2usize..=80, u in 0.2f64..0.95,
        (a, b) in interval(),
    ) {
        let x0 = if left { -x0 } else { x0 };
        let rho_star = x0.abs() + (x0 * x0 - 1.0).sqrt();
        let rho = 1.0 + u * (rho_star - 1.0);
        let m = 1.0 / (x0.abs() - 0.5 * (rho + 1.0 / rho));
        let bound = 4.0 * m * rho.powi(-(n as i32)) / (rho - 1.0);
        // The pole is placed relative to [a, b]: the ellipse maps with the interval.
        let grid = Grid::new(kind, n, a, b).unwrap();
        let err = max_error(&grid, &|t| 1.0 / (to_ref(t, a, b) - x0), 1501);
        let scale = 1.0 / (x0.abs() - 1.0);
        prop_assert!(err <= bound + 1e-12 * scale, "N={n} x0={x0}: err {err:e} > bound {bound:e}");
    }

    /// Lebesgue constants: `0.52125 + (2/π) log(N+1) ≤ Λ_N ≤ 1 + (2/π) log(N+1)` at Chebyshev
    /// points of both kinds (the lower bound holds for every grid, so it also checks that the
    /// computed maximum is not an underestimate).
    #[test]
    fn lebesgue_bounds(kind in kind(), n in 1usize..=200, (a, b) in interval()) {
        let grid = Grid::new(kind, n, a, b).unwrap();
        let lam = grid.lebesgue_constant();
        let log_term = 2.0 / std::f64::consts::PI * ((n + 1) as f64).ln();
        prop_assert!(lam <= 1.0 + log_term + 1e-12, "N={n}: Λ={lam} above bound {}", 1.0 + log_term);
        prop_assert!(lam >= 0.52125 + log_term - 1e-9, "N={n}: Λ={lam} below lower bound");
    }

    /// Mismatched nodes and weights (Lobatto nodes, first-kind weights) on an entire function:
    /// the matched grid is at rounding level by N = 32, the mismatched one is not even at N = 64.
    #[test]
    fn mismatched_weights_lose_spectral_accuracy(k in 1.0f64..3.0, shift in -1.0f64..1.0) {
        let f = |x: f64| (k * x + shift).exp();
        let scale = (k + shift).exp(); // max |f| on [-1, 1]
        let matched = Grid::new(Kind::Lobatto, 32, -1.0, 1.0).unwrap();
        prop_assert!(max_error(&matched, &f, 801) < 1e-13 * scale);
        let mismatched = Grid::with_weight_kind(Kind::Lobatto, Kind::First, 64, -1.0, 1.0).unwrap();
        prop_assert!(!mismatched.is_matched());
        prop_assert!(max_error(&mismatched, &f, 801) > 1e-9 * scale);
    }
}

/// The observed error decays geometrically at the predicted rate `ρ*^{-N}` for the Runge-type
/// function `1/(1 + (x/c)²)`: the least-squares slope of `log err` against `N` is `−log ρ*`
/// within 10 %, on both kinds, for several `c`.
#[test]
fn geometric_rate_matches_ellipse() {
    for kind in KINDS {
        for c in [0.2, 0.35, 0.6] {
            let rho: f64 = c + (c * c + 1.0f64).sqrt();
            // Stay above rounding: up to where ρ^{-N} ≈ 1e-10.
            let n_hi = (10.0 * std::f64::consts::LN_10 / rho.ln()) as usize;
            let ns: Vec<usize> = (8..=n_hi).step_by(4).collect();
            let logs: Vec<f64> = ns
                .iter()
                .map(|&n| {
                    let grid = Grid::new(kind, n, -1.0, 1.0).unwrap();
                    max_error(&grid, &|x| 1.0 / (1.0 + (x / c) * (x / c)), 2001).ln()
                })
                .collect();
            let xs: Vec<f64> = ns.iter().map(|&n| n as f64).collect();
            let fitted = -slope(&xs, &logs);
            let predicted = rho.ln();
            assert!(
                (fitted / predicted - 1.0).abs() < 0.1,
                "{kind:?} c={c}: fitted rate {fitted}, predicted {predicted}"
            );
        }
    }
}

/// Mismatched nodes and weights converge only algebraically: on `exp(x)` the log-log slope of the
/// error between N = 16 and N = 128 is a small negative number (about −4), not the ever-steepening
/// decline of the matched grids, which hit rounding level by N = 16.
#[test]
fn mismatched_weights_converge_algebraically() {
    let ns = [16usize, 32, 64, 128];
    let errs: Vec<f64> = ns
        .iter()
        .map(|&n| {
            let g = Grid::with_weight_kind(Kind::Lobatto, Kind::First, n, -1.0, 1.0).unwrap();
            max_error(&g, &f64::exp, 2001)
        })
        .collect();
    let xs: Vec<f64> = ns.iter().map(|&n| (n as f64).ln()).collect();
    let ys: Vec<f64> = errs.iter().map(|e| e.ln()).collect();
    let p = -slope(&xs, &ys);
    assert!(
        (2.0..6.0).contains(&p),
        "algebraic order {p}, errors {errs:?}"
    );
    for kind in KINDS {
        let g = Grid::new(kind, 16, -1.0, 1.0).unwrap();
        assert!(max_error(&g, &f64::exp, 2001) < 1e-14);
    }
}
