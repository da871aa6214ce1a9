//! A conformance suite for [`Vector`](crate::Vector) backends.
//!
//! `rk::vector_conformance_tests!(name, make)` expands to a test module `name` that checks every
//! operation of a backend against a plain host computation. `make` is any expression callable as
//! `make(&[f64]) -> V` that builds a vector of the backend from host data (values are rounded to
//! the backend's scalar). The host backend instantiates it in `tests/vector_conformance.rs`; the
//! GPU backend reuses it with a third argument, `available = EXPR`: when `EXPR` is false at run
//! time each test prints why it is skipped and returns.

/// Expands to a `#[cfg(test)]`-style module of `#[test]`s checking a [`Vector`](crate::Vector)
/// backend: `vector_conformance_tests!(module_name, |x: &[f64]| -> V { … })`.
#[macro_export]
macro_rules! vector_conformance_tests {
    ($name:ident, $make:expr) => {
        $crate::vector_conformance_tests!($name, $make, available = true);
    };
    ($name:ident, $make:expr, available = $available:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::{Atol, Float, Scalar, Vector, Zero};

            fn host<V: Vector>(v: &V) -> Vec<f64> {
                let mut out = vec![V::Scalar::zero(); Vector::len(v)];
                Vector::copy_to_host(v, &mut out);
                out.into_iter().map(|x| x.as_f64()).collect()
            }

            fn data(n: usize, seed: u64) -> Vec<f64> {
                // A small deterministic generator: values in [-2, 2] with varied magnitudes.
                let mut s = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (0..n)
                    .map(|_| {
                        s = s
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((s >> 11) as f64 / (1u64 << 53) as f64) * 4.0 - 2.0
                    })
                    .collect()
            }

            fn close(got: &[f64], want: &[f64], eps: f64) {
                assert_eq!(got.len(), want.len());
                for (i, (g, w)) in got.iter().zip(want).enumerate() {
                    assert!(
                        (g - w).abs() <= eps * (1.0 + w.abs()),
                        "component {i}: {g} vs {w}"
                    );
                }
            }

            fn eps<V: Vector>(_: &V) -> f64 {
                64.0 * V::Scalar::epsilon().as_f64()
            }

            const SIZES: [usize; 4] = [1, 3, 17, 1000];

            #[test]
            fn length_zeros_fill_and_host_round_trip() {
                if !($available) {
                    eprintln!("skipped: backend not available");
                    return;
                }
                for n in SIZES {
                    let x = data(n, 1);
                    let v = ($make)(&x);
                    assert_eq!(Vector::len(&v), n);
                    assert!(!Vector::is_empty(&v));
                    close(&host(&v), &x, eps(&v));
                    let mut z = Vector::zeros_like(&v);
                    assert_eq!(host(&z), vec![0.0; n]);
                    Vector::fill(&mut z, <_ as Scalar>::of(1.5));
                    assert_eq!(host(&z), vec![1.5; n]);
                    let mut buf = vec![<_ as Scalar>::of(0.0); n];
                    Vector::copy_to_host(&v, &mut buf);
                    Vector::copy_from_host(&mut z, &buf);
                    assert_eq!(host(&z), host(&v));
                    for m in [1, n + 3, 2 * n + 7] {
                        let w = Vector::zeros_with_len(&v, m);
                        assert_eq!(Vector::len(&w), m);
                        assert_eq!(host(&w), vec![0.0; m]);
                    }
                }
            }

            #[test]
            fn copy_scale_axpby() {
                if !($available) {
                    eprintln!("skipped: backend not available");
                    return;
                }
                for n in SIZES {
                    let (x, y) = (data(n, 2), data(n, 3));
                    let vx = ($make)(&x);
                    let mut vy = ($make)(&y);
                    let e = eps(&vx);
                    Vector::axpby(
                        &mut vy,
                        <_ as Scalar>::of(0.5),
                        &vx,
                        <_ as Scalar>::of(-2.0),
                    );
                    let want: Vec<f64> = x.iter().zip(&y).map(|(a, b)| 0.5 * a - 2.0 * b).collect();
                    close(&host(&vy), &want, e);
                    Vector::scale(&mut vy, <_ as Scalar>::of(3.0));
                    let want: Vec<f64> = want.iter().map(|w| 3.0 * w).collect();
                    close(&host(&vy), &want, e);
                    Vector::copy_from(&mut vy, &vx);
                    assert_eq!(host(&vy), host(&vx));
                }
            }

            #[test]
            fn linear_combinations_of_one_to_nine_vectors() {
                if !($available) {
                    eprintln!("skipped: backend not available");
                    return;
                }
                for n in SIZES {
                    let xs: Vec<Vec<f64>> = (0..9).map(|i| data(n, 10 + i)).collect();
                    let vs: Vec<_> = xs.iter().map(|x| ($make)(x)).collect();
                    let base = data(n, 99);
                    let vbase = ($make)(&base);
                    let e = eps(&vbase);
                    for m in 0..=9 {
                        let cs: Vec<f64> = (0..m).map(|i| 0.25 * i as f64 - 0.9).collect();
                        let cs_t: Vec<_> = cs.iter().map(|&c| <_ as Scalar>::of(c)).collect();
                        let mut out = Vector::zeros_like(&vbase);
                        Vector::linear_combination(&mut out, &cs_t, &vs);
                        let want: Vec<f64> = (0..n)
                            .map(|j| (0..m).map(|i| cs[i] * xs[i][j]).sum())
                            .collect();
                        close(&host(&out), &want, 8.0 * e);
                        Vector::offset_linear_combination(&mut out, &vbase, &cs_t, &vs);
                        let want: Vec<f64> = want.iter().zip(&base).map(|(w, b)| w + b).collect();
                        close(&host(&out), &want, 8.0 * e);
                    }
                }
            }

            #[test]
            fn dot_and_finiteness() {
                if !($available) {
                    eprintln!("skipped: backend not available");
                    return;
                }
                for n in SIZES {
                    let (x, y) = (data(n, 4), data(n, 5));
                    let (vx, vy) = (($make)(&x), ($make)(&y));
                    let want: f64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
                    let got = Vector::dot(&vx, &vy).as_f64();
                    assert!(
                        (got - want).abs() <= eps(&vx) * n as f64 * 4.0,
                        "{got} vs {want}"
                    );
                    assert!(Vector::all_finite(&vx));
                    let mut bad = x.clone();
                    bad[n / 2] = f64::NAN;
                    assert!(!($make)(&bad).all_finite());
                    bad[n / 2] = f64::INFINITY;
                    assert!(!($make)(&bad).all_finite());
                }
            }

            #[test]
            fn copy_range_moves_a_part_and_leaves_the_rest() {
                if !($available) {
                    eprintln!("skipped: backend not available");
                    return;
                }
                for (n_src, n_dst, from, at) in [
                    (1usize, 1usize, 0..1, 0usize),
                    (17, 5, 3..8, 0),
                    (17, 30, 0..17, 13),
                    (1000, 1003, 1..1000, 3),
                    (9, 9, 4..4, 2),
                ] {
                    let src = data(n_src, 31);
                    let before = data(n_dst, 32);
                    let vs = ($make)(&src);
                    let mut vd = ($make)(&before);
                    let mut want = host(&vd);
                    Vector::copy_range(&mut vd, at, &vs, from.clone());
                    let src_r = host(&vs);
                    want[at..at + from.len()].copy_from_slice(&src_r[from.clone()]);
                    // A copy, not arithmetic: bit-exact.
                    assert_eq!(host(&vd), want, "{n_src} -> {n_dst}, {from:?} at {at}");
                }
            }

            #[test]
            fn rows_of_a_stacked_vector() {
                if !($available) {
                    eprintln!("skipped: backend not available");
                    return;
                }
                for m in [1usize, 7, 300] {
                    let rows_n = 5;
                    let parts: Vec<Vec<f64>> =
                        (0..rows_n).map(|k| data(m, 20 + k as u64)).collect();
                    let template = ($make)(&parts[0]);
                    let mut stacked = Vector::zeros_with_len(&template, rows_n * m + 3);
                    for (k, part) in parts.iter().enumerate() {
                        Vector::set_row(&mut stacked, k, &($make)(part));
                    }
                    let flat = host(&stacked);
                    for (k, part) in parts.iter().enumerate() {
                        close(&flat[k * m..(k + 1) * m], part, eps(&template));
                    }
                    // The padding beyond the rows is untouched.
                    assert_eq!(flat[rows_n * m..].iter().filter(|v| **v != 0.0).count(), 0);
                    let coeffs = [0.5, -1.25, 0.0, 2.0];
                    let c: Vec<_> = coeffs.iter().map(|&x| <_ as Scalar>::of(x)).collect();
                    let mut out = Vector::zeros_like(&template);
                    Vector::fill(&mut out, <_ as Scalar>::of(9.0));
                    Vector::combine_rows(&mut out, &c, &stacked);
                    let want: Vec<f64> = (0..m)
                        .map(|i| {
                            coeffs
                                .iter()
                                .enumerate()
                                .map(|(k, c)| c * parts[k][i])
                                .sum()
                        })
                        .collect();
                    close(&host(&out), &want, 4.0 * eps(&template));
                    // No coefficients: zero.
                    Vector::combine_rows(&mut out, &[], &stacked);
                    assert!(host(&out).iter().all(|v| *v == 0.0));
                    // Every second row from row 1: rows 1 and 3.
                    Vector::fill(&mut out, <_ as Scalar>::of(9.0));
                    Vector::combine_strided_rows(&mut out, &c[..2], &stacked, 1, 2);
                    let want: Vec<f64> = (0..m)
                        .map(|i| coeffs[0] * parts[1][i] + coeffs[1] * parts[3][i])
                        .collect();
                    close(&host(&out), &want, 4.0 * eps(&template));
                    // One row: a copy.
                    Vector::combine_strided_rows(&mut out, &c[3..], &stacked, 4, 3);
                    let want: Vec<f64> = parts[4].iter().map(|v| coeffs[3] * v).collect();
                    close(&host(&out), &want, 4.0 * eps(&template));
                }
            }

            #[test]
            fn max_abs_over_groups() {
                if !($available) {
                    eprintln!("skipped: backend not available");
                    return;
                }
                let n = 1000;
                let x = data(n, 31);
                let v = ($make)(&x);
                let groups = [0..n, 0..1, 10..300, 300..300, 999..1000, 256..513];
                let got = Vector::max_abs_groups(&v, &groups);
                assert_eq!(got.len(), groups.len());
                for (g, value) in groups.iter().zip(&got) {
                    let want = x[g.clone()].iter().fold(0.0f64, |a, v| a.max(v.abs()));
                    let value = <_ as Scalar>::as_f64(*value);
                    assert!(
                        (value - want).abs() <= 4.0 * eps(&v) * want.max(1.0),
                        "{g:?}"
                    );
                }
                let mut y = x.clone();
                y[500] = f64::NAN;
                let got = ($make)(&y).max_abs_groups(&[0..10, 400..600]);
                assert!(<_ as Scalar>::as_f64(got[0]).is_finite());
                assert_eq!(<_ as Scalar>::as_f64(got[1]), f64::INFINITY);
            }

            #[test]
            fn deferred_maxima_are_those_of_the_vector_when_asked() {
                if !($available) {
                    eprintln!("skipped: backend not available");
                    return;
                }
                let n = 700;
                let (x, mut y) = (data(n, 41), data(n, 42));
                y[650] = f64::INFINITY;
                let (mut u, v) = (($make)(&x), ($make)(&y));
                let groups = [0..n, 3..4, 256..600, 10..10, 600..n];
                let want_u = Vector::max_abs_groups(&u, &groups);
                let want_v = Vector::max_abs_groups(&v, &groups);
                // Two pending at once, the vector changed after asking, another readback
                // (a norm) in between, and the later one fetched first.
                let first = Vector::max_abs_groups_deferred(&u, &groups);
                Vector::scale(&mut u, <_ as Scalar>::of(3.0));
                let second = Vector::max_abs_groups_deferred(&v, &groups);
                let norm = Vector::error_norm(
                    &u,
                    &v,
                    &v,
                    <_ as Scalar>::of(1e-3),
                    &Atol::Scalar(<_ as Scalar>::of(1.0)),
                    &[0..n],
                );
                assert!(<_ as Scalar>::as_f64(norm).is_finite());
                assert_eq!(second.get(), want_v);
                assert_eq!(first.get(), want_u);
                let third = Vector::max_abs_groups_deferred(&u, &groups);
                let tripled: Vec<f64> = want_u
                    .iter()
                    .map(|m| 3.0 * <_ as Scalar>::as_f64(*m))
                    .collect();
                for (got, want) in third.get().iter().zip(&tripled) {
                    let got = <_ as Scalar>::as_f64(*got);
                    assert!((got - want).abs() <= 4.0 * eps(&u) * want.max(1.0));
                }
            }

            #[test]
            fn error_norm_full_range_groups_and_per_component_atol() {
                if !($available) {
                    eprintln!("skipped: backend not available");
                    return;
                }
                let n = 40;
                let (e, y0, y1) = (data(n, 6), data(n, 7), data(n, 8));
                let at: Vec<f64> = (0..n).map(|i| 1e-3 * (1.0 + i as f64)).collect();
                let (ve, vy0, vy1) = (($make)(&e), ($make)(&y0), ($make)(&y1));
                let tol = eps(&ve) * 4.0;
                let rms = |range: std::ops::Range<usize>, atol: &dyn Fn(usize) -> f64| {
                    let len = range.len() as f64;
                    (range
                        .map(|i| {
                            let w = atol(i) + 1e-2 * y0[i].abs().max(y1[i].abs());
                            (e[i] / w).powi(2)
                        })
                        .sum::<f64>()
                        / len)
                        .sqrt()
                };
                let rtol = <_ as Scalar>::of(1e-2);
                let scalar = Atol::Scalar(<_ as Scalar>::of(1e-3));
                let per = Atol::PerComponent(($make)(&at));
                let check = |got: f64, want: f64| {
                    assert!((got - want).abs() <= tol * want.abs(), "{got} vs {want}")
                };
                check(
                    Vector::error_norm(&ve, &vy0, &vy1, rtol, &scalar, &[0..n]).as_f64(),
                    rms(0..n, &|_| 1e-3),
                );
                check(
                    Vector::error_norm(&ve, &vy0, &vy1, rtol, &scalar, &[5..12]).as_f64(),
                    rms(5..12, &|_| 1e-3),
                );
                let groups = [0..10, 10..38];
                check(
                    Vector::error_norm(&ve, &vy0, &vy1, rtol, &scalar, &groups).as_f64(),
                    rms(0..10, &|_| 1e-3).max(rms(10..38, &|_| 1e-3)),
                );
                check(
                    Vector::error_norm(&ve, &vy0, &vy1, rtol, &per, &[0..n]).as_f64(),
                    rms(0..n, &|i| at[i]),
                );
                // Two norms at once: each as alone.
                let (a, b) = Vector::error_norm_pair(&ve, &vy1, &vy0, &vy1, rtol, &per, &groups);
                check(
                    a.as_f64(),
                    rms(0..10, &|i| at[i]).max(rms(10..38, &|i| at[i])),
                );
                let y1_rms = |range: std::ops::Range<usize>| {
                    let len = range.len() as f64;
                    (range
                        .map(|i| {
                            let w = at[i] + 1e-2 * y0[i].abs().max(y1[i].abs());
                            (y1[i] / w).powi(2)
                        })
                        .sum::<f64>()
                        / len)
                        .sqrt()
                };
                check(b.as_f64(), y1_rms(0..10).max(y1_rms(10..38)));
                let mut bad = e.clone();
                bad[3] = f64::NAN;
                let vbad = ($make)(&bad);
                assert!(Vector::error_norm(&vbad, &vy0, &vy1, rtol, &scalar, &[0..n]).is_nan());
                // A NaN outside the measured range does not count: that is what a seminorm is.
                assert!(Vector::error_norm(&vbad, &vy0, &vy1, rtol, &scalar, &[5..n]).is_finite());
                // The pair with finiteness: the same norms, and each vector's `all_finite`
                // whatever the groups measure.
                let c = Vector::error_norm_pair_checked(&ve, &vy1, &vy0, &vy1, rtol, &per, &groups);
                assert_eq!(c.norms, (a, b));
                assert_eq!(c.finite, (true, true));
                let c =
                    Vector::error_norm_pair_checked(&ve, &vbad, &vy0, &vy1, rtol, &scalar, &[5..n]);
                assert!(c.norms.0.is_finite() && c.norms.1.is_finite());
                assert_eq!(c.finite, (true, false));
                let c =
                    Vector::error_norm_pair_checked(&vbad, &ve, &vy0, &vy1, rtol, &scalar, &[0..n]);
                assert!(c.norms.0.is_nan());
                assert_eq!(c.finite, (false, true));
            }
        }
    };
}
