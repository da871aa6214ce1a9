//! torchdiffeq's `ode_demo` spiral, `dy/dt = (y³) A` on `t ∈ [0, 25]` with 1000 output times:
//! a long horizon with many oscillations, where one Chebyshev grid over the whole solve cannot
//! hold `z(t)`. IRDM's piecewise grids must match Direct's accuracy (against a tight-tolerance
//! float64 reference computed here) while storing fewer floats, and an under-resolved grid must
//! be an error, not a silent wrong gradient.

mod common;

use adjoint::toy::Spiral;
use adjoint::{
    AdjointError, BackwardNorm, Config, IrdmGrid, Method, OnUnderResolved, Segments, forward,
};
use common::rel_err;

const A: [f64; 4] = Spiral::A;
const Y0: [f64; 2] = Spiral::Y0;

fn times() -> Vec<f64> {
    (0..1000).map(|i| 25.0 * i as f64 / 999.0).collect()
}

/// `[dL/dy0, dL/dA]` for `L = Σ y(25)²`, the gradient's info, or the error.
fn gradient(
    method: Method,
    config: &Config<f64>,
) -> Result<(Vec<f64>, adjoint::Info), AdjointError> {
    let ts = times();
    let fwd = forward(&mut Spiral, &A, &Y0, &ts, method, config)?;
    let last = fwd.outputs().last().unwrap().clone();
    let mut cot = vec![vec![0.0; 2]; ts.len()];
    cot[ts.len() - 1] = last.iter().map(|y| 2.0 * y).collect();
    let g = fwd.backward(&mut Spiral, &A, &cot)?;
    let mut all = g.dz0.clone();
    all.extend_from_slice(&g.dtheta);
    Ok((all, g.info))
}

fn reference() -> Vec<f64> {
    gradient(Method::Direct, &Config::new(1e-12, 1e-12))
        .unwrap()
        .0
}

fn direct(tol: f64) -> (Vec<f64>, adjoint::Info) {
    gradient(Method::Direct, &Config::new(tol, tol)).unwrap()
}

#[test]
fn the_automatic_piecewise_grid_matches_direct_with_fewer_floats() {
    let reference = reference();
    for tol in [1e-6, 1e-9] {
        let (d, di) = direct(tol);
        let direct_err = rel_err(&d, &reference);
        let method = Method::irdm_auto(tol, tol, BackwardNorm::Full);
        let (g, gi) = gradient(method, &Config::new(tol, tol)).unwrap();
        let err = rel_err(&g, &reference);
        let grid = gi.grid.clone().unwrap();
        assert!(
            err <= 10.0 * direct_err,
            "tol {tol:e}: irdm {err:e} direct {direct_err:e}"
        );
        assert!(
            gi.stored_floats < di.stored_floats,
            "tol {tol:e}: irdm stores {} floats, direct {}",
            gi.stored_floats,
            di.stored_floats
        );
        // The segments tile [0, 25] in order, each resolved to its own tolerance.
        assert!(grid.segments.len() > 1 && !grid.under_resolved);
        assert_eq!(grid.segments[0].t_start, 0.0);
        assert_eq!(grid.segments.last().unwrap().t_end, 25.0);
        for w in grid.segments.windows(2) {
            assert_eq!(w[0].t_end, w[1].t_start);
        }
        for s in &grid.segments {
            assert!(s.error_estimate <= 2.0 * s.tolerance.unwrap(), "{s:?}");
            assert!(s.n <= adjoint::DEFAULT_AUTO_N_MAX && s.n.is_power_of_two());
        }
        assert_eq!(
            grid.nodes,
            grid.segments.iter().map(|s| s.n + 1).sum::<usize>()
        );
        assert_eq!(gi.stored_floats, 2 * grid.nodes);
        // It held at most twice the degree it kept, and a bounded window.
        assert!(grid.n_stored <= 2 * grid.n, "{grid:?}");
        let q = 4; // dopri5's dense output degree
        assert_eq!(
            grid.window_floats,
            2 * adjoint::DEFAULT_STEPS_PER_SEGMENT * (q + 1)
        );
        // No right-hand-side evaluations beyond the forward solve's.
        assert_eq!(gi.nfe_forward, di.nfe_forward);
        assert_eq!(gi.nfe_backward, 0);
    }
}

#[test]
fn sixteen_nodes_per_segment_match_direct_at_tol_1e9() {
    let reference = reference();
    let tol = 1e-9;
    let (d, di) = direct(tol);
    let direct_err = rel_err(&d, &reference);
    let (g, gi) = gradient(
        Method::irdm_lobatto(16, BackwardNorm::Full),
        &Config::new(tol, tol),
    )
    .unwrap();
    let err = rel_err(&g, &reference);
    assert!(
        err <= 10.0 * direct_err,
        "irdm {err:e} direct {direct_err:e}"
    );
    let grid = gi.grid.unwrap();
    // Segments of N/2 = 8 steps, 17 nodes each.
    assert!(grid.segments.iter().all(|s| s.n == 16 && s.steps <= 8));
    assert_eq!(
        grid.segments.iter().map(|s| s.steps).sum::<usize>(),
        di.accepted_forward
    );
    assert!(gi.stored_floats < di.stored_floats);
}

#[test]
fn the_single_grid_reports_its_under_resolution() {
    let reference = reference();
    let mut config = Config::new(1e-9, 1e-9);
    config.irdm.segments = Segments::Single;
    // The paper's one grid over [0, 25]: wrong, and its estimate says so.
    let (g, gi) = gradient(Method::irdm_lobatto(16, BackwardNorm::Full), &config).unwrap();
    let estimate = gi.grid.unwrap().error_estimate.unwrap();
    assert!(rel_err(&g, &reference) > 1e-2);
    assert!(estimate > 1e-2, "{estimate:e}");
    // Asked to meet a tolerance, the fixed grid refuses.
    config.irdm.fixed_tolerance = Some((1e-8, 1e-8));
    match gradient(Method::irdm_lobatto(16, BackwardNorm::Full), &config) {
        Err(AdjointError::UnderResolved {
            segment: 0,
            cap: "N",
            cap_value: 16,
            ..
        }) => {}
        other => panic!("expected an under-resolved error, got {other:?}"),
    }
    // The refusal is the backward pass's (the forward outputs are right; the grid check is
    // read with the backward pass's first norms): the forward pass succeeds and its record
    // shows the segment under-resolved, with the estimate and tolerance it missed.
    let ts = times();
    let m = Method::irdm_lobatto(16, BackwardNorm::Full);
    let fwd = forward(&mut Spiral, &A, &Y0, &ts, m, &config).unwrap();
    let grid = fwd.info().grid.clone().unwrap();
    assert!(grid.under_resolved);
    let seg = &grid.segments[0];
    assert_eq!(Some(seg.error_estimate), grid.error_estimate);
    assert!(seg.error_estimate > 2.0 * seg.tolerance.unwrap(), "{seg:?}");
    assert!((seg.error_estimate - estimate).abs() <= 1e-12 * estimate);
    let cot = vec![vec![1.0; 2]; ts.len()];
    assert!(matches!(
        fwd.backward(&mut Spiral, &A, &cot),
        Err(AdjointError::UnderResolved { segment: 0, .. })
    ));
}

/// Fixed piecewise grids: every segment's check is read together, after the forward pass,
/// and agrees with the coefficients of its node values formed on the host; an under-resolved
/// segment is named by the backward pass.
#[test]
fn fixed_segments_are_checked_together_after_the_forward_pass() {
    let ts = times();
    let mut config = Config::new(1e-9, 1e-9);
    config.irdm.segments = Segments::EveryKSteps(4);
    let m = Method::irdm_lobatto(8, BackwardNorm::Full);
    let fwd = forward(&mut Spiral, &A, &Y0, &ts, m, &config).unwrap();
    let grid = fwd.info().grid.clone().unwrap();
    assert!(grid.segments.len() > 2, "{grid:?}");
    // Every segment's node values from one tight Direct solve with an output at each node.
    let node_grids: Vec<cheb::Grid<f64>> = grid
        .segments
        .iter()
        .map(|seg| cheb::Grid::new(cheb::Kind::Lobatto, 8, seg.t_start, seg.t_end).unwrap())
        .collect();
    let mut at: Vec<f64> = node_grids.iter().flat_map(|g| g.nodes().to_vec()).collect();
    at.sort_by(f64::total_cmp);
    at.dedup();
    let tight = Config::new(1e-12, 1e-12);
    let exact = forward(&mut Spiral, &A, &Y0, &at, Method::Direct, &tight).unwrap();
    for (seg, g) in grid.segments.iter().zip(&node_grids) {
        let values: Vec<f64> = g
            .nodes()
            .iter()
            .flat_map(|t| {
                let k = at.binary_search_by(|x| x.total_cmp(t)).unwrap();
                exact.outputs()[k].clone()
            })
            .collect();
        let coeffs = g.chebyshev_coefficients(&values, 2).unwrap();
        let mags = cheb::coefficient_magnitudes(&coeffs, 2);
        let want = 2.0 * (mags[8] + mags[7]);
        assert!(
            (seg.error_estimate - want).abs() <= 0.05 * want + 1e-7,
            "{seg:?}: {want:e}"
        );
        assert_eq!(seg.tolerance, None);
    }
    let worst = grid
        .segments
        .iter()
        .map(|s| s.error_estimate)
        .fold(0.0, f64::max);
    assert_eq!(grid.error_estimate, Some(worst));
    assert!(!grid.under_resolved);
    // Asked for a tolerance some segment misses: the backward pass names the first such.
    config.irdm.fixed_tolerance = Some((1e-12, 1e-12));
    let fwd = forward(&mut Spiral, &A, &Y0, &ts, m, &config).unwrap();
    let grid = fwd.info().grid.clone().unwrap();
    let first_bad = grid
        .segments
        .iter()
        .position(|s| s.error_estimate > 2.0 * s.tolerance.unwrap())
        .expect("some segment misses 1e-12");
    assert!(grid.under_resolved);
    let cot = vec![vec![1.0; 2]; ts.len()];
    match fwd.backward(&mut Spiral, &A, &cot) {
        Err(AdjointError::UnderResolved {
            segment, cap: "N", ..
        }) => assert_eq!(segment, first_bad),
        other => panic!("{other:?}"),
    }
    // A node cap is the forward pass's error, with the refused segment's estimate read.
    config.irdm.fixed_tolerance = None;
    config.irdm.max_nodes = Some(20);
    match forward(&mut Spiral, &A, &Y0, &ts, m, &config).err() {
        Some(AdjointError::UnderResolved {
            segment: 2,
            cap: "max_nodes",
            cap_value: 20,
            estimate,
            ..
        }) => assert!(estimate.is_finite() && estimate > 0.0, "{estimate}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_cap_too_small_is_a_typed_error_naming_segment_estimate_and_cap() {
    let tol = 1e-9;
    let auto = |n_max| Method::Irdm {
        grid: IrdmGrid::Auto {
            n_max,
            rel_tol: 30.0 * tol,
            abs_tol: 30.0 * tol,
        },
        norm: BackwardNorm::Full,
    };
    // One grid over the whole solve, capped at 128: under-resolved.
    let mut single = Config::new(tol, tol);
    single.irdm.segments = Segments::Single;
    let err = gradient(auto(128), &single).unwrap_err();
    let AdjointError::UnderResolved {
        segment,
        estimate,
        tolerance,
        cap,
        cap_value,
        ..
    } = err.clone()
    else {
        panic!("{err:?}");
    };
    assert_eq!((segment, cap, cap_value), (0, "n_max", 128));
    assert!(estimate > tolerance, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("segment 0") && text.contains("n_max = 128"),
        "{text}"
    );
    // Opted in: the same grid comes back flagged.
    single.irdm.on_under_resolved = OnUnderResolved::Flag;
    let (_, info) = gradient(auto(128), &single).unwrap();
    assert!(info.grid.unwrap().under_resolved);
    // Piecewise, a per-segment degree of 4 cannot hold even one step of the quartic dense
    // output at this tolerance; the error names the first segment.
    let err = gradient(auto(4), &Config::new(tol, tol)).unwrap_err();
    assert!(
        matches!(
            err,
            AdjointError::UnderResolved {
                segment: 0,
                cap: "n_max",
                cap_value: 4,
                ..
            }
        ),
        "{err:?}"
    );
    // A memory cap below what the tolerance needs: the segment where it ran out.
    let mut capped = Config::new(tol, tol);
    capped.irdm.max_nodes = Some(100);
    match gradient(auto(64), &capped).unwrap_err() {
        AdjointError::UnderResolved {
            segment,
            cap: "max_nodes",
            cap_value: 100,
            t_start,
            ..
        } => assert!(segment > 0 && t_start > 0.0),
        other => panic!("{other:?}"),
    }
}
