//! The GPU vector against the `rk` conformance suite and the host backend, on whatever adapter
//! is present (Mesa's lavapipe in CI). Without an adapter each test says so and is skipped,
//! unless `IRDM_REQUIRE_GPU=1` (set by CI), where a missing adapter fails.

mod common;

use common::context;
use gpu::{GpuContext, GpuOptions, GpuVec};
use rk::{FnRhs, Method, Options, Rhs, Solver, Vector, solve};

fn make(x: &[f64]) -> GpuVec {
    let ctx = context().expect("checked by `available`");
    GpuVec::from_host(&ctx, &x.iter().map(|&v| v as f32).collect::<Vec<f32>>())
}

rk::vector_conformance_tests!(gpu_f32, make, available = context().is_some());

/// Several vectors read in one round trip equal their separate downloads; mixing contexts is
/// an error, not a wrong answer.
#[test]
fn read_together_is_one_readback_of_every_vector() {
    if context().is_none() {
        eprintln!("skipped: no GPU adapter");
        return;
    }
    let ctx = GpuContext::new().expect("an adapter was found above");
    let a = GpuVec::from_host(&ctx, &[1.0, -2.0, 3.5]);
    let b = GpuVec::from_host(&ctx, &(0..1000).map(|i| i as f32).collect::<Vec<_>>());
    let empty = GpuVec::zeros(&ctx, 0);
    let before = ctx.readbacks();
    let got = GpuVec::read_together(&[&a, &empty, &b]).expect("one readback");
    assert_eq!(ctx.readbacks() - before, 1);
    assert_eq!(got, vec![a.to_host(), Vec::new(), b.to_host()]);
    assert!(
        GpuVec::read_together(&[])
            .expect("nothing to read")
            .is_empty()
    );
    let other = GpuContext::new().expect("a second context");
    let c = GpuVec::from_host(&other, &[0.0]);
    let err = GpuVec::read_together(&[&a, &c]).unwrap_err();
    assert!(err.to_string().contains("different GPU contexts"), "{err}");
}

/// Deferred maxima come back with the next readback, however many are waiting: a norm read
/// after two of them is still one round trip, and fetching them after it costs none. Asked for
/// with no readback since, they cost one. Once the first round has made its buffers, later
/// rounds create none.
#[test]
fn deferred_maxima_ride_with_the_next_readback() {
    if context().is_none() {
        eprintln!("skipped: no GPU adapter");
        return;
    }
    let ctx = GpuContext::new().expect("an adapter was found above");
    let n = 3000;
    let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 4.0).collect();
    let mut y = x.clone();
    y[2999] = f32::INFINITY;
    let (u, v) = (GpuVec::from_host(&ctx, &x), GpuVec::from_host(&ctx, &y));
    let groups = [0..n, 100..200, 5..5, 2000..n];
    let (want_u, want_v) = (u.max_abs_groups(&groups), v.max_abs_groups(&groups));
    assert_eq!(want_v[3], f32::INFINITY);
    let mut created = None;
    for round in 0..3 {
        let r0 = ctx.readbacks();
        let first = u.max_abs_groups_deferred(&groups);
        let second = v.max_abs_groups_deferred(&groups);
        assert_eq!(ctx.readbacks(), r0, "round {round}: recorded, not read");
        let whole = [0..n, 0..n];
        let norm = u.error_norm(&u, &v, 1e-3, &rk::Atol::Scalar(1.0), &whole);
        assert!(norm.is_finite());
        assert_eq!(
            ctx.readbacks() - r0,
            1,
            "round {round}: one readback for all three"
        );
        assert_eq!(second.get(), want_v);
        assert_eq!(first.get(), want_u);
        assert_eq!(
            ctx.readbacks() - r0,
            1,
            "round {round}: nothing more to read"
        );
        let alone = u.max_abs_groups_deferred(&groups);
        assert_eq!(alone.get(), want_u);
        assert_eq!(
            ctx.readbacks() - r0,
            2,
            "round {round}: asked before any readback"
        );
        match created {
            None => created = Some(ctx.buffers_created()),
            Some(c) => assert_eq!(ctx.buffers_created(), c, "round {round}"),
        }
    }
}

/// The largest magnitude of each of many groups (more than one dispatch's table holds, of mixed
/// sizes, empty ones and a non-finite entry among them) equals the host's, from one dispatch
/// per table and one readback.
#[test]
fn max_abs_of_many_groups_is_one_dispatch_per_table() {
    if context().is_none() {
        eprintln!("skipped: no GPU adapter");
        return;
    }
    let ctx = GpuContext::new().expect("an adapter was found above");
    let n = 40_000;
    let mut x: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 * 0.01 - 5.0)
        .collect();
    x[12_345] = f32::NAN;
    let v = GpuVec::from_host(&ctx, &x);
    // 2 000 groups: lengths 0 to 37 (every 13th empty), then one group of 300 (several
    // workgroups).
    let mut groups = Vec::new();
    let mut at = 0;
    for k in 0..2000 {
        let len = if k % 13 == 0 { 0 } else { k % 38 };
        groups.push(at..at + len);
        at += len;
    }
    groups.push(at..at + 300);
    assert!(at + 300 <= n);
    let (d0, r0) = (ctx.dispatches(), ctx.readbacks());
    let got = v.max_abs_groups(&groups);
    assert_eq!(ctx.readbacks() - r0, 1);
    // 1 799 non-empty groups: two tables of at most 1 365 groups.
    assert_eq!(ctx.dispatches() - d0, 2);
    for (g, m) in groups.iter().zip(&got) {
        let want = x[g.clone()].iter().fold(0.0f32, |a, &b| {
            if b.is_finite() {
                a.max(b.abs())
            } else {
                f32::INFINITY
            }
        });
        assert_eq!(*m, want, "group {g:?}");
    }
    assert!(
        got.iter().any(|m| m.is_infinite()),
        "the NaN's group is +inf"
    );
}

/// `dz/dt = −z` computed on the device with vector operations only.
struct Decay;

impl Rhs<GpuVec> for Decay {
    fn eval(&mut self, _t: f32, z: &GpuVec, _p: &GpuVec, dz: &mut GpuVec) {
        dz.copy_from(z);
        dz.scale(-1.0);
    }
}

/// The solver runs unchanged on the GPU: the same steps and evaluations as on the host, the
/// same values to f32 precision, across several reductions' worth of components.
#[test]
fn dopri5_on_the_gpu_matches_the_host() {
    if context().is_none() {
        eprintln!("skipped: no GPU adapter");
        return;
    }
    // A context of its own, so that the submission count is this test's alone.
    let ctx = GpuContext::new().expect("an adapter was found above");
    let n = 70_000;
    let y0: Vec<f32> = (0..n).map(|i| 1.0 + (i % 13) as f32 * 0.1).collect();
    // Several norm groups (a mixed norm as the adjoint's backward solve uses): still one
    // readback, hence one submission, per step attempt (a step of this right-hand side records
    // fewer than the 32 dispatches after which the context also submits without waiting).
    let groups: Vec<std::ops::Range<usize>> = vec![0..10, 10..30_000, 30_000..30_001, 30_001..n];
    let options = Options::new(1e-5f32, 1e-6).with_norm(rk::ErrorNorm::Groups(groups));
    let gpu_y0 = GpuVec::from_host(&ctx, &y0);
    let empty = GpuVec::zeros(&ctx, 0);
    let mut solver = Solver::new(Method::Dopri5, options.clone(), &gpu_y0).unwrap();
    solver.init(&mut Decay, &empty, 0.0, 2.0, &gpu_y0).unwrap();
    let mut buffers_after_first_step = None;
    while !solver.is_finished() {
        let before = ctx.submissions();
        let attempts = solver.stats().accepted + solver.stats().rejected;
        solver.step(&mut Decay, &empty).unwrap();
        let tried = solver.stats().accepted + solver.stats().rejected - attempts;
        // One submission (with one readback, the error norm over all groups) per step attempt.
        assert_eq!(ctx.submissions() - before, tried);
        buffers_after_first_step.get_or_insert(ctx.buffers_created());
    }
    // No buffer is created per step: the first step brought the reduction and readback buffers.
    assert!(solver.stats().accepted > 5);
    assert_eq!(Some(ctx.buffers_created()), buffers_after_first_step);

    let mut host_rhs = FnRhs(|_t: f32, z: &[f32], _p: &[f32], dz: &mut [f32]| {
        for (d, &v) in dz.iter_mut().zip(z) {
            *d = -v;
        }
    });
    let host = solve(
        &mut host_rhs,
        &vec![],
        Method::Dopri5,
        &options,
        &[0.0, 2.0],
        &y0,
    )
    .unwrap();
    let (g, h) = (solver.stats(), host.stats);
    assert_eq!(
        (g.nfe, g.accepted, g.rejected),
        (h.nfe, h.accepted, h.rejected)
    );
    let on_gpu = solver.state().to_host();
    for (a, b) in on_gpu.iter().zip(&host.ys[1]) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
    }
    let exact = (-2.0f32).exp();
    assert!((on_gpu[0] - exact).abs() < 1e-4);
}

/// More dispatches between two readbacks than the uniform ring has slots: the ring submits
/// what it holds and starts over, and every operation keeps its own parameters.
#[test]
fn many_dispatches_between_readbacks_keep_their_parameters() {
    let Some(ctx) = context() else {
        eprintln!("skipped: no GPU adapter");
        return;
    };
    let n = 1000;
    let x_host: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.01).collect();
    let x = GpuVec::from_host(&ctx, &x_host);
    let mut v = GpuVec::zeros(&ctx, n);
    let mut want = vec![0.0f32; n];
    let before = ctx.submissions();
    for k in 0..5000 {
        // A different a, b per operation: a slot mix-up would change the result.
        let a = 1.0 / (k as f32 + 1.0);
        let b = 1.0 - 0.5 / (k as f32 + 2.0);
        v.axpby(a, &x, b);
        for (w, &xv) in want.iter_mut().zip(&x_host) {
            *w = a * xv + b * *w;
        }
    }
    let got = v.to_host();
    // 5000 dispatches and a readback: at least two ring-forced submissions plus the readback's.
    assert!(
        ctx.submissions() - before >= 3,
        "{}",
        ctx.submissions() - before
    );
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
    }
}

/// `combine_rows` reuses one coefficient buffer per vector: calls recorded back to back, with no
/// readback between them, each see their own coefficients.
#[test]
fn combine_rows_back_to_back_keep_their_coefficients() {
    let Some(ctx) = context() else {
        eprintln!("skipped: no GPU adapter");
        return;
    };
    let m = 300;
    let rows: Vec<f32> = (0..3 * m).map(|i| (i % 11) as f32 - 5.0).collect();
    let stacked = GpuVec::from_host(&ctx, &rows);
    let mut out = GpuVec::zeros(&ctx, m);
    let mut first = GpuVec::zeros(&ctx, m);
    out.combine_rows(&[1.0, 2.0], &stacked);
    first.copy_from(&out);
    out.combine_rows(&[0.5, -1.0, 3.0], &stacked);
    let (a, b) = (first.to_host(), out.to_host());
    for i in 0..m {
        let (r0, r1, r2) = (rows[i], rows[m + i], rows[2 * m + i]);
        assert_eq!(a[i], r0 + 2.0 * r1);
        assert!((b[i] - (0.5 * r0 - r1 + 3.0 * r2)).abs() < 1e-5);
    }
}

/// IRDM's interpolation coefficients ride in the data ring: more of them between two readbacks
/// than the ring holds forces submissions, and more rows than one dispatch takes are added
/// chunk by chunk; every call keeps its own coefficients either way.
#[test]
fn combine_rows_beyond_the_data_ring_keep_their_coefficients() {
    let Some(ctx) = context() else {
        eprintln!("skipped: no GPU adapter");
        return;
    };
    let (k, m) = (400, 7);
    let rows: Vec<f32> = (0..k * m)
        .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
        .collect();
    let stacked = GpuVec::from_host(&ctx, &rows);
    let mut out = GpuVec::zeros(&ctx, m);
    let mut sum = GpuVec::zeros(&ctx, m);
    let mut want = vec![0.0f64; m];
    let before = ctx.submissions();
    // 300 × 400 coefficients: about twice what the ring holds.
    for call in 0..300 {
        let coeffs: Vec<f32> = (0..k)
            .map(|j| ((call * 7 + j * 3) % 17) as f32 / 17.0 - 0.5)
            .collect();
        out.combine_rows(&coeffs, &stacked);
        sum.axpby(1.0, &out, 1.0);
        for (i, w) in want.iter_mut().enumerate() {
            *w += (0..k)
                .map(|j| f64::from(coeffs[j]) * f64::from(rows[j * m + i]))
                .sum::<f64>();
        }
    }
    let got = sum.to_host();
    assert!(
        ctx.submissions() - before >= 2,
        "the ring forced a submission"
    );
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (f64::from(*g) - w).abs() <= 1e-3 * (1.0 + w.abs()),
            "{g} vs {w}"
        );
    }
    // One row per coefficient, in three chunks (4096 per dispatch).
    let k = 10_000;
    let rows: Vec<f32> = (0..k).map(|i| (i % 5) as f32).collect();
    let coeffs: Vec<f32> = (0..k)
        .map(|i| if i % 2 == 0 { 1e-3 } else { -1e-3 })
        .collect();
    let want: f64 = rows
        .iter()
        .zip(&coeffs)
        .map(|(r, c)| f64::from(*r) * f64::from(*c))
        .sum();
    let mut one = GpuVec::zeros(&ctx, 1);
    one.combine_rows(&coeffs, &GpuVec::from_host(&ctx, &rows));
    let got = f64::from(one.to_host()[0]);
    assert!((got - want).abs() < 1e-3, "{got} vs {want}");
}

/// Reductions of different sizes and group counts back to back share one kept buffer of
/// partial sums (grown when a larger one comes): each still reads its own sums.
#[test]
fn reductions_of_changing_sizes_share_the_kept_buffers() {
    let Some(ctx) = context() else {
        eprintln!("skipped: no GPU adapter");
        return;
    };
    for &n in &[10usize, 100_000, 3, 70_001, 257] {
        let host: Vec<f32> = (0..n).map(|i| ((i % 9) as f32 - 4.0) * 0.25).collect();
        let v = GpuVec::from_host(&ctx, &host);
        let want: f64 = host.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        let got = f64::from(v.dot(&v));
        assert!(
            (got - want).abs() <= 1e-5 * want.max(1.0),
            "n = {n}: {got} vs {want}"
        );
        // Three groups with error e = v, y0 = y1 = 0, atol 1: RMS of each group.
        let groups = [0..n / 3, n / 3..n / 2, n / 2..n];
        let zero = GpuVec::zeros(&ctx, n);
        let norm = v.error_norm(&zero, &zero, 0.0, &rk::Atol::Scalar(1.0), &groups);
        let worst = groups
            .iter()
            .filter(|g| !g.is_empty())
            .map(|g| {
                let s: f64 = host[g.clone()].iter().map(|&x| f64::from(x).powi(2)).sum();
                (s / g.len() as f64).sqrt()
            })
            .fold(0.0, f64::max);
        assert!(
            (f64::from(norm) - worst).abs() < 1e-5,
            "n = {n}: {norm} vs {worst}"
        );
    }
}

/// The reductions finish each workgroup by subgroup operations where the adapter has them
/// (lavapipe does, so CI runs that path) or by a tree through workgroup memory: both give the
/// host's dot product, norm, maxima and non-finite count at sizes that leave a partial
/// workgroup and a partial subgroup, and a NaN still shows as an infinite maximum.
#[test]
fn reductions_with_and_without_subgroups_match_the_host() {
    let Some(ctx) = context() else {
        eprintln!("skipped: no GPU adapter");
        return;
    };
    if ctx.adapter_info.driver == "llvmpipe" {
        assert!(ctx.uses_subgroups(), "lavapipe has subgroup operations");
    }
    let tree = GpuContext::with_options(GpuOptions { subgroups: false }).unwrap();
    assert!(!tree.uses_subgroups());
    for ctx in [&ctx, &tree] {
        for &n in &[1usize, 13, 256, 1_000, 65_537] {
            let mut host: Vec<f32> = (0..n).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.3).collect();
            let v = GpuVec::from_host(ctx, &host);
            let want: f64 = host.iter().map(|&x| f64::from(x).powi(2)).sum();
            let got = f64::from(v.dot(&v));
            assert!(
                (got - want).abs() <= 1e-5 * want.max(1.0),
                "{n}: {got} vs {want}"
            );
            let zero = GpuVec::zeros(ctx, n);
            let groups = [0..n / 2, n / 2..n];
            let norm = f64::from(v.error_norm(&zero, &zero, 0.0, &rk::Atol::Scalar(1.0), &groups));
            let rms = |g: &std::ops::Range<usize>| {
                let s: f64 = host[g.clone()].iter().map(|&x| f64::from(x).powi(2)).sum();
                (s / g.len().max(1) as f64).sqrt()
            };
            let worst = rms(&groups[0]).max(rms(&groups[1]));
            assert!((norm - worst).abs() < 1e-5, "{n}: {norm} vs {worst}");
            let maxima = v.max_abs_groups(&groups);
            for (g, m) in groups.iter().zip(&maxima) {
                let want = host[g.clone()].iter().fold(0.0f32, |a, x| a.max(x.abs()));
                assert_eq!(*m, want, "{n}: {g:?}");
            }
            assert!(v.all_finite());
            host[n - 1] = f32::NAN;
            let v = GpuVec::from_host(ctx, &host);
            assert!(!v.all_finite(), "{n}");
            let whole = std::iter::once(0..n).collect::<Vec<_>>();
            assert_eq!(v.max_abs_groups(&whole)[0], f32::INFINITY, "{n}");
        }
    }
}

/// A norm's groups are one `err_sq` dispatch (up to 1 365 groups each, the data ring's table):
/// 1 500 two-component groups take two, groups over several workgroups and of one component
/// mixed; each against the host's norm, the worst group decisive; two err_sq dispatches and one
/// readback for the 1 500, profiled.
#[test]
fn norms_over_many_groups_match_the_host() {
    let Some(ctx) = context() else {
        eprintln!("skipped: no GPU adapter");
        return;
    };
    let n = 3000;
    let e: Vec<f32> = (0..n).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.1).collect();
    let y: Vec<f32> = (0..n).map(|i| (i % 5) as f32).collect();
    let host = |groups: &[std::ops::Range<usize>]| -> f32 {
        let he: Vec<f32> = e.clone();
        he.error_norm(&y, &y, 1e-2, &rk::Atol::Scalar(1e-3), groups)
    };
    let (ge, gy) = (GpuVec::from_host(&ctx, &e), GpuVec::from_host(&ctx, &y));
    let many: Vec<std::ops::Range<usize>> = (0..1500).map(|i| 2 * i..2 * i + 2).collect();
    let mixed = vec![0..700, 700..701, 701..701, 1000..3000, 701..1000];
    for groups in [&many, &mixed] {
        let got = ge.error_norm(&gy, &gy, 1e-2, &rk::Atol::Scalar(1e-3), groups);
        let want = host(groups);
        assert!(
            (got - want).abs() <= 1e-4 * want,
            "{} groups: {got} vs {want}",
            groups.len()
        );
    }
    // The worst of the 1 500 is the one group made large.
    let mut big = e.clone();
    big[2 * 1234] = 50.0;
    let gbig = GpuVec::from_host(&ctx, &big);
    let got = gbig.error_norm(&gy, &gy, 1e-2, &rk::Atol::Scalar(1e-3), &many);
    let want = big.error_norm(&y, &y, 1e-2, &rk::Atol::Scalar(1e-3), &many);
    assert!((got - want).abs() <= 1e-4 * want, "{got} vs {want}");
    let ctx = GpuContext::new().expect("an adapter was found above");
    if ctx.start_profiling().is_ok() {
        let (ge, gy) = (GpuVec::from_host(&ctx, &e), GpuVec::from_host(&ctx, &y));
        let _ = ctx.stop_profiling();
        ctx.start_profiling().unwrap();
        let readbacks = ctx.readbacks();
        let _ = ge.error_norm(&gy, &gy, 1e-2, &rk::Atol::Scalar(1e-3), &many);
        assert_eq!(ctx.readbacks(), readbacks + 1);
        let profile = ctx.stop_profiling().unwrap();
        let calls: Vec<(String, usize)> =
            profile.into_iter().map(|k| (k.kernel, k.calls)).collect();
        assert_eq!(calls, vec![("err_sq".to_string(), 2)]);
    }
}

/// Profiling times every dispatch by kernel (timestamp queries), across more dispatches than one
/// query set holds, without changing any result; off again, nothing is timed.
#[test]
fn profiling_counts_every_dispatch_by_kernel() {
    if context().is_none() {
        eprintln!("skipped: no GPU adapter");
        return;
    }
    // A context of its own: other tests dispatch on the shared one concurrently.
    let ctx = GpuContext::new().expect("an adapter was found above");
    assert!(ctx.stop_profiling().unwrap().is_empty());
    if let Err(e) = ctx.start_profiling() {
        eprintln!("skipped: {e}");
        return;
    }
    let n = 5000;
    let x = GpuVec::from_host(&ctx, &vec![2.0; n]);
    let mut v = GpuVec::zeros(&ctx, n);
    let before = ctx.dispatches();
    v.fill(1.0);
    for _ in 0..3000 {
        v.axpby(1e-3, &x, 1.0);
    }
    v.scale(0.5);
    let dot = v.dot(&x);
    let dispatched = ctx.dispatches() - before;
    let profile = ctx.stop_profiling().unwrap();
    // (1 + 3000 · 2e-3) / 2 = 3.5 per component, times 2 from x.
    assert!(
        (dot - 7.0 * n as f32).abs() < 1e-3 * 7.0 * n as f32,
        "{dot}"
    );
    let calls = |k: &str| {
        profile
            .iter()
            .find(|t| t.kernel == k)
            .map_or(0, |t| t.calls)
    };
    assert_eq!(
        [calls("fill"), calls("axpby"), calls("scale"), calls("dot")],
        [1, 3000, 1, 1],
        "{profile:?}"
    );
    assert_eq!(profile.iter().map(|t| t.calls).sum::<usize>(), dispatched);
    for t in &profile {
        assert!(t.seconds.is_finite() && t.seconds >= 0.0, "{t:?}");
    }
    // 3000 axpby over 5000 floats take time on any device (lavapipe: milliseconds).
    assert!(
        profile
            .iter()
            .find(|t| t.kernel == "axpby")
            .unwrap()
            .seconds
            > 0.0
    );
    v.axpby(1.0, &x, 1.0);
    let _ = v.dot(&x);
    assert!(ctx.stop_profiling().unwrap().is_empty());
}

/// Bind groups are kept: once the solver's rotations of its vectors (the FSAL stage swap, period
/// 2, and the state's three-way rotation, period 3) have come round, a step creates none.
#[test]
fn solver_steps_reuse_their_bind_groups() {
    if context().is_none() {
        eprintln!("skipped: no GPU adapter");
        return;
    }
    let ctx = GpuContext::new().expect("an adapter was found above");
    let y0 = GpuVec::from_host(&ctx, &[1.0; 300]);
    let empty = GpuVec::zeros(&ctx, 0);
    let options = Options::new(1e-9f32, 1e-9);
    let mut solver = Solver::new(Method::Dopri5, options, &y0).unwrap();
    solver.init(&mut Decay, &empty, 0.0, 2.0, &y0).unwrap();
    let mut groups = Vec::new();
    let mut dispatches = Vec::new();
    while !solver.is_finished() {
        solver.step(&mut Decay, &empty).unwrap();
        groups.push(ctx.bind_groups_created());
        dispatches.push(ctx.dispatches());
    }
    let steps = groups.len();
    assert!(steps > 20, "{steps} steps");
    assert_eq!(groups[8], groups[steps - 1], "{groups:?}");
    // Without kept groups every dispatch would make one.
    assert!(dispatches[steps - 1] - dispatches[8] > 10 * (steps - 9));
}

/// Kept bind groups never bind a dropped vector's buffer to a new vector: vectors created,
/// used and dropped in turn (a new allocation may take a dropped one's place) each get their own
/// results.
#[test]
fn kept_bind_groups_follow_new_vectors() {
    let Some(ctx) = context() else {
        eprintln!("skipped: no GPU adapter");
        return;
    };
    let x = GpuVec::from_host(&ctx, &[1.0; 64]);
    for k in 0..40 {
        let mut v = GpuVec::zeros(&ctx, 64);
        v.fill(k as f32);
        v.axpby(2.0, &x, 1.0);
        let got = v.to_host();
        assert!(
            got.iter().all(|&g| g == k as f32 + 2.0),
            "vector {k}: {got:?}"
        );
    }
}
