//! IRDM's forward capture: the node states `z(τ_j)` of every segment, read from the solver's
//! dense output, with an interpolation-error estimate for each segment.
//!
//! * **Single grid** ([`Segments::Single`], and the ablation grids): the nodes are known before
//!   the solve and are read from the dense output as the steps pass them.
//! * **Piecewise** ([`Segments::EveryKSteps`]): while a segment is open, every accepted step's
//!   dense output — a polynomial of degree `q` in the step fraction `θ` (the tableau's
//!   `dense_order`) — is sampled at the `q + 1` Lobatto points of `θ ∈ [0, 1]`, which
//!   determines it exactly. When `k` steps are held (or the
//!   solve ends) the segment is closed: its grid's node values are evaluated from those samples
//!   by the degree-`q` barycentric formula of the step that holds each node, its Chebyshev
//!   coefficients `c_m` are formed (a DCT, as a linear map on the rows), and
//!   - a fixed grid keeps its `N + 1` nodes, with the estimate `2 (|c_{N−1}| + |c_N|)`;
//!   - an automatic grid tries degrees `L = 4, 8, …, n_max` and accepts the first whose
//!     coefficients pass the chop rule (`tail ≤ abs_tol + rel_tol · max|c_m|`) by degree `L/2`,
//!     keeping the smallest nested sub-grid `m` that covers the chopped degree, with the
//!     estimate `2 Σ_{m' > m} |c_{m'}|` (ATAP Theorem 4.2); if none does, the segment is split
//!     at its middle step and both halves are tried again. A single step that still fails is
//!     under-resolved.
//!
//!   Then the samples are dropped. So an automatic grid holds at most twice the degree it keeps,
//!   and no more than `k·(q + 1)` sample rows.
//!
//! The estimates, the checks against the tolerance and their errors are in `resolution.rs`.

use crate::error::{AdjointError, Result};
use crate::method::{
    GridInfo, IrdmGrid, IrdmOptions, MAX_AUTO_DEGREE, Method, SegmentInfo, Segments,
};
use crate::piecewise::{NodeRule, PiecewiseNodes, Segment};
use crate::vjp::Real;
use cheb::{ChopRule, Grid, Kind};
use rk::{Solver, Vector};
use std::ops::Range;

mod resolution;

pub(crate) use resolution::GridCheck;
use resolution::{
    PendingSegment, as_f64, fixed_check, magnitudes, magnitudes_deferred, midpoint_distance,
    under_resolved, under_resolved_or_flag,
};

/// Node values of IRDM, gathered during the forward pass.
pub(crate) enum Capture<T: Real, V: Vector<Scalar = T>> {
    /// One grid over the whole solve.
    Single(SingleGrid<T, V>),
    /// Segments of `k` steps each.
    Windowed(Window<T, V>),
}

/// How a segment's degree is chosen.
#[derive(Debug, Clone, Copy)]
enum Choice<T> {
    Fixed { kind: Kind, n: usize },
    Auto { n_max: usize, rule: ChopRule<T> },
}

fn grid_err(method: &Method) -> impl Fn(cheb::ChebError) -> AdjointError + '_ {
    |source| AdjointError::Grid {
        method: method.name(),
        source,
    }
}

fn solve_err(method: &Method) -> impl Fn(rk::RkError) -> AdjointError + '_ {
    |source| AdjointError::Solve {
        method: method.name(),
        pass: "forward",
        source,
    }
}

fn bad(name: &'static str, value: f64, reason: &'static str) -> AdjointError {
    AdjointError::BadSetting {
        name,
        value,
        reason,
    }
}

impl<T: Real, V: Vector<Scalar = T>> Capture<T, V> {
    /// The capture for `method` (IRDM) on `[t0, t1]`, or `None` for other methods. Validates
    /// the grid settings.
    pub fn new(
        method: &Method,
        options: &IrdmOptions,
        t0: T,
        t1: T,
        z0: &V,
        dense_degree: usize,
    ) -> Result<Option<Self>> {
        let Method::Irdm { grid, .. } = *method else {
            return Ok(None);
        };
        let (deg, kinds, rule) = match grid {
            IrdmGrid::Fixed { kind, n } => (n, (kind, kind), NodeRule::Barycentric),
            IrdmGrid::Mismatched { n } => (n, (Kind::Lobatto, Kind::First), NodeRule::Barycentric),
            IrdmGrid::PiecewiseLinear { n } => {
                (n, (Kind::Lobatto, Kind::Lobatto), NodeRule::Linear)
            }
            IrdmGrid::Auto {
                n_max,
                rel_tol,
                abs_tol,
            } => {
                if !n_max.is_power_of_two() {
                    return Err(bad("IRDM n_max", n_max as f64, "must be a power of two"));
                }
                if n_max > MAX_AUTO_DEGREE {
                    return Err(bad(
                        "IRDM n_max",
                        n_max as f64,
                        "must be at most 1024 (MAX_AUTO_DEGREE; shorter segments resolve more instead)",
                    ));
                }
                for tol in [rel_tol, abs_tol] {
                    if !(tol.is_finite() && tol >= 0.0) {
                        return Err(bad("IRDM chop tolerance", tol, "must be finite and >= 0"));
                    }
                }
                if rel_tol == 0.0 && abs_tol == 0.0 {
                    return Err(bad(
                        "IRDM chop tolerance",
                        0.0,
                        "rel_tol and abs_tol cannot both be zero (rounding never passes)",
                    ));
                }
                (n_max, (Kind::Lobatto, Kind::Lobatto), NodeRule::Barycentric)
            }
        };
        if deg < 1 {
            return Err(bad("IRDM N", deg as f64, "needs N >= 1"));
        }
        if let Some((r, a)) = options.fixed_tolerance {
            for tol in [r, a] {
                if !(tol.is_finite() && tol >= 0.0) {
                    return Err(bad("IRDM fixed_tolerance", tol, "must be finite and >= 0"));
                }
            }
        }
        if options.max_nodes == Some(0) {
            return Err(bad("IRDM max_nodes", 0.0, "must be >= 1"));
        }
        let n = z0.len();
        let fixed_degree = match grid {
            IrdmGrid::Auto { .. } => None,
            _ => Some(deg),
        };
        if options.segments == Segments::EveryKSteps(0) {
            return Err(bad(
                "IRDM segments",
                0.0,
                "needs at least 1 step per segment",
            ));
        }
        let piecewise = match (options.segments.steps_per_segment(fixed_degree), grid) {
            (None, _) | (_, IrdmGrid::Mismatched { .. } | IrdmGrid::PiecewiseLinear { .. }) => None,
            (Some(k), IrdmGrid::Fixed { kind, n }) => Some((k, Choice::Fixed { kind, n })),
            (
                Some(k),
                IrdmGrid::Auto {
                    n_max,
                    rel_tol,
                    abs_tol,
                },
            ) => Some((
                k,
                Choice::Auto {
                    n_max,
                    rule: ChopRule {
                        rel_tol: <T as cheb::Real>::of(rel_tol),
                        abs_tol: <T as cheb::Real>::of(abs_tol),
                    },
                },
            )),
        };
        if let Some((k, choice)) = piecewise {
            let q = dense_degree.max(1);
            let theta =
                Grid::new(Kind::Lobatto, q, T::zero(), T::one()).map_err(grid_err(method))?;
            return Ok(Some(Capture::Windowed(Window {
                method: *method,
                options: *options,
                choice,
                k,
                q,
                theta_coeffs: vec![T::zero(); q + 1],
                theta,
                samples: None,
                times: Vec::with_capacity(k + 1),
                row: z0.zeros_like(),
                n,
                segments: Vec::new(),
                infos: Vec::new(),
                nodes: 0,
                n_stored: 0,
                under_resolved: false,
                transforms: Vec::new(),
                pending: Vec::new(),
            })));
        }
        let grid =
            Grid::with_weight_kind(kinds.0, kinds.1, deg, t0, t1).map_err(grid_err(method))?;
        let mut values = z0.zeros_with_len(grid.len() * n);
        let mut next = 0;
        if grid.nodes().first() == Some(&t0) {
            values.set_row(0, z0);
            next = 1;
        }
        Ok(Some(Capture::Single(SingleGrid {
            method: *method,
            options: *options,
            grid,
            rule,
            values,
            next,
            row: z0.zeros_like(),
        })))
    }

    /// Reads what the last accepted step of `solver` holds (its dense output).
    pub fn after_step(&mut self, solver: &mut Solver<V>) -> Result<()> {
        match self {
            Capture::Single(s) => s.after_step(solver),
            Capture::Windowed(w) => w.after_step(solver),
        }
    }

    /// The segments' nodes, the grid record with the fixed grids' checks still to be read
    /// ([`GridCheck`]), and the floats held for the backward pass at the peak of the forward
    /// pass.
    pub fn finish(self) -> Result<(PiecewiseNodes<T, V>, GridCheck<T>, usize)> {
        match self {
            Capture::Single(s) => s.finish(),
            Capture::Windowed(w) => w.finish(),
        }
    }
}

/// The paper's single grid over `[t0, t1]`.
pub(crate) struct SingleGrid<T: Real, V> {
    method: Method,
    options: IrdmOptions,
    grid: Grid<T>,
    rule: NodeRule,
    values: V,
    next: usize,
    row: V,
}

impl<T: Real, V: Vector<Scalar = T>> SingleGrid<T, V> {
    fn after_step(&mut self, solver: &mut Solver<V>) -> Result<()> {
        let (_, now) = solver.last_step();
        let nodes = self.grid.nodes();
        let (a, b) = self.grid.interval();
        let forward = b > a;
        while self.next < nodes.len()
            && (if forward {
                nodes[self.next] <= now
            } else {
                nodes[self.next] >= now
            })
        {
            solver
                .interpolate(nodes[self.next], &mut self.row)
                .map_err(solve_err(&self.method))?;
            self.values.set_row(self.next, &self.row);
            self.next += 1;
        }
        Ok(())
    }

    fn finish(self) -> Result<(PiecewiseNodes<T, V>, GridCheck<T>, usize)> {
        let n = self.row.len();
        let method = self.method;
        let stored = self.grid.len() * n;
        if let Method::Irdm {
            grid: IrdmGrid::Auto {
                rel_tol, abs_tol, ..
            },
            ..
        } = method
        {
            let (sub, values, info) =
                crate::auto_grid::choose(&self.grid, &self.values, n, rel_tol, abs_tol, &method)?;
            if info.under_resolved {
                under_resolved_or_flag(
                    &method,
                    &self.options,
                    0,
                    &info.segments[0],
                    "n_max",
                    self.grid.degree(),
                )?;
            }
            let nodes = PiecewiseNodes {
                rule: self.rule,
                segments: vec![Segment { grid: sub, values }],
            };
            return Ok((nodes, GridCheck::read(method, self.options, info), stored));
        }
        // Fixed grid (or ablation): estimate from the Lobatto / first-kind coefficients of the
        // node values (read later, see `GridCheck`), plus, for the ablations, the distance to
        // the matched interpolant (read now).
        let kind = self.grid.kind();
        let matched = Grid::new(
            kind,
            self.grid.degree(),
            self.grid.interval().0,
            self.grid.interval().1,
        )
        .map_err(grid_err(&method))?;
        let mags = magnitudes_deferred(&matched, &self.values, n, &mut Vec::new());
        let ablation = !self.grid.is_matched() || self.rule == NodeRule::Linear;
        let extra = if ablation {
            midpoint_distance(&self.grid, self.rule, &matched, &self.values, n, &method)?
        } else {
            0.0
        };
        let (a, b) = self.grid.interval();
        let seg = SegmentInfo {
            t_start: <T as cheb::Real>::as_f64(a),
            t_end: <T as cheb::Real>::as_f64(b),
            steps: 0,
            n: self.grid.degree(),
            error_estimate: f64::NAN,
            tolerance: None,
        };
        let info = GridInfo {
            kind: match self.rule {
                NodeRule::Linear => "linear",
                NodeRule::Barycentric if self.grid.is_matched() => kind.name(),
                NodeRule::Barycentric => "mismatched",
            },
            n: self.grid.degree(),
            n_stored: self.grid.degree(),
            error_estimate: None,
            nodes: self.grid.len(),
            window_floats: 0,
            under_resolved: false,
            segments: vec![seg],
        };
        let mut check = GridCheck::read(method, self.options, info);
        check.pending.push(PendingSegment {
            index: 0,
            degree: self.grid.degree(),
            magnitudes: mags,
            extra,
        });
        let nodes = PiecewiseNodes {
            rule: self.rule,
            segments: vec![Segment {
                grid: self.grid,
                values: self.values,
            }],
        };
        Ok((nodes, check, stored))
    }
}

/// The sampled dense output of the open segment's steps, and the segments closed so far.
pub(crate) struct Window<T: Real, V> {
    method: Method,
    options: IrdmOptions,
    choice: Choice<T>,
    /// Steps per segment.
    k: usize,
    /// Degree of the dense output in `θ`.
    q: usize,
    /// Lobatto points of degree `q` on `θ ∈ [0, 1]`.
    theta: Grid<T>,
    theta_coeffs: Vec<T>,
    /// Sample rows of the held steps: `k` blocks of `q + 1` rows, block `s` row `i` the dense
    /// output of step `s` at `θ_i`. One buffer, allocated at the first step and reused by every
    /// later segment, so that nothing is allocated per step (on a GPU: no buffer per step).
    samples: Option<V>,
    /// Step boundaries of the open segment (`steps + 1` times once a step is held).
    times: Vec<T>,
    row: V,
    n: usize,
    segments: Vec<Segment<T, V>>,
    infos: Vec<SegmentInfo>,
    nodes: usize,
    n_stored: usize,
    under_resolved: bool,
    /// Coefficient transforms by `(kind, degree)`: row `m` holds the weights of `c_m`.
    transforms: Vec<(Kind, usize, Vec<T>)>,
    /// Fixed segments whose checks are still to be read.
    pending: Vec<PendingSegment<T>>,
}

impl<T: Real, V: Vector<Scalar = T>> Window<T, V> {
    fn steps(&self) -> usize {
        self.times.len().saturating_sub(1)
    }

    fn after_step(&mut self, solver: &mut Solver<V>) -> Result<()> {
        let (t_prev, t_now) = solver.last_step();
        let method = self.method;
        let err = solve_err(&method);
        if self.times.is_empty() {
            self.times.push(t_prev);
        }
        let step = self.steps();
        let rows = self.q + 1;
        let samples = self
            .samples
            .get_or_insert_with(|| self.row.zeros_with_len(self.k * rows * self.n));
        solver.interpolate(t_prev, &mut self.row).map_err(&err)?;
        samples.set_row(step * rows, &self.row);
        let (lo, hi) = if t_prev < t_now {
            (t_prev, t_now)
        } else {
            (t_now, t_prev)
        };
        for i in 1..=self.q {
            let t = if i == self.q {
                t_now
            } else {
                (t_prev + self.theta.nodes()[i] * (t_now - t_prev))
                    .max(lo)
                    .min(hi)
            };
            solver.interpolate(t, &mut self.row).map_err(&err)?;
            samples.set_row(step * rows + i, &self.row);
        }
        self.times.push(t_now);
        if self.steps() == self.k {
            self.close()?;
        }
        Ok(())
    }

    /// Closes the open segment (all held steps) and starts an empty one.
    fn close(&mut self) -> Result<()> {
        let steps = self.steps();
        if steps > 0 {
            match self.choice {
                Choice::Fixed { kind, n } => self.close_fixed(kind, n)?,
                Choice::Auto { n_max, rule } => self.close_auto(0..steps, n_max, rule)?,
            }
        }
        self.times.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<(PiecewiseNodes<T, V>, GridCheck<T>, usize)> {
        self.close()?;
        let estimate = self
            .infos
            .iter()
            .fold(0.0f64, |m, s| m.max(s.error_estimate));
        let info = GridInfo {
            kind: match self.choice {
                Choice::Fixed { kind, .. } => kind.name(),
                Choice::Auto { .. } => "lobatto",
            },
            n: self.infos.iter().map(|s| s.n).max().unwrap_or(0),
            n_stored: self.n_stored,
            error_estimate: Some(estimate),
            nodes: self.nodes,
            window_floats: self.samples.as_ref().map_or(0, |s| s.len()),
            under_resolved: self.under_resolved,
            segments: self.infos,
        };
        let stored = self.nodes * self.n;
        let mut check = GridCheck::read(self.method, self.options, info);
        check.pending = self.pending;
        Ok((
            PiecewiseNodes {
                rule: NodeRule::Barycentric,
                segments: self.segments,
            },
            check,
            stored,
        ))
    }

    /// The node values of a grid of `kind` and degree `deg` over the held steps `range`.
    fn node_values(
        &mut self,
        kind: Kind,
        deg: usize,
        range: &Range<usize>,
    ) -> Result<(Grid<T>, V)> {
        let (a, b) = (self.times[range.start], self.times[range.end]);
        let grid = Grid::new(kind, deg, a, b).map_err(grid_err(&self.method))?;
        let mut values = self.row.zeros_with_len(grid.len() * self.n);
        let ascending = b >= a;
        let ends = &self.times[range.start + 1..range.end];
        for (j, &tau) in grid.nodes().iter().enumerate() {
            // The step that holds τ.
            let step =
                range.start + ends.partition_point(|&e| if ascending { e < tau } else { e > tau });
            let (s0, s1) = (self.times[step], self.times[step + 1]);
            let theta = (tau - s0) / (s1 - s0);
            self.theta
                .coefficients(theta, &mut self.theta_coeffs)
                .map_err(grid_err(&self.method))?;
            let samples = self.samples.as_ref().expect("a held step has its samples");
            self.row
                .combine_strided_rows(&self.theta_coeffs, samples, step * (self.q + 1), 1);
            values.set_row(j, &self.row);
        }
        Ok((grid, values))
    }

    fn magnitudes(&mut self, grid: &Grid<T>, values: &V) -> Result<Vec<f64>> {
        magnitudes(grid, values, self.n, &mut self.transforms, &self.method)
    }

    fn push(&mut self, grid: Grid<T>, values: V, info: SegmentInfo) -> Result<()> {
        self.nodes += grid.len();
        if let Some(cap) = self.options.max_nodes
            && self.nodes > cap
        {
            return Err(under_resolved(
                &self.method,
                self.segments.len(),
                &info,
                "max_nodes",
                cap,
            ));
        }
        self.segments.push(Segment { grid, values });
        self.infos.push(info);
        Ok(())
    }

    fn segment_info(
        &self,
        range: &Range<usize>,
        n: usize,
        estimate: f64,
        tol: Option<f64>,
    ) -> SegmentInfo {
        SegmentInfo {
            t_start: <T as cheb::Real>::as_f64(self.times[range.start]),
            t_end: <T as cheb::Real>::as_f64(self.times[range.end]),
            steps: range.len(),
            n,
            error_estimate: estimate,
            tolerance: tol,
        }
    }

    fn close_fixed(&mut self, kind: Kind, deg: usize) -> Result<()> {
        let range = 0..self.steps();
        let (grid, values) = self.node_values(kind, deg, &range)?;
        let magnitudes = magnitudes_deferred(&grid, &values, self.n, &mut self.transforms);
        self.n_stored = self.n_stored.max(deg);
        let mut info = self.segment_info(&range, deg, f64::NAN, None);
        if self
            .options
            .max_nodes
            .is_some_and(|cap| self.nodes + grid.len() > cap)
        {
            // `push` refuses it: the error's estimate is read now.
            let mags = as_f64(magnitudes.get());
            (info.error_estimate, info.tolerance) = fixed_check(&mags, &self.options);
            return self.push(grid, values, info);
        }
        // Estimate and tolerance filled in by `GridCheck::resolve`.
        self.pending.push(PendingSegment {
            index: self.segments.len(),
            degree: deg,
            magnitudes,
            extra: 0.0,
        });
        self.push(grid, values, info)
    }

    fn close_auto(&mut self, range: Range<usize>, n_max: usize, rule: ChopRule<T>) -> Result<()> {
        let rule64 = ChopRule {
            rel_tol: <T as cheb::Real>::as_f64(rule.rel_tol),
            abs_tol: <T as cheb::Real>::as_f64(rule.abs_tol),
        };
        let mut level = 4.min(n_max);
        loop {
            let (grid, values) = self.node_values(Kind::Lobatto, level, &range)?;
            let mags = self.magnitudes(&grid, &values)?;
            let chopped = cheb::chop(&mags, rule64).map_err(grid_err(&self.method))?;
            let scale = mags.iter().fold(0.0f64, |m, &c| m.max(c));
            let tol = rule64.abs_tol + rule64.rel_tol * scale;
            self.n_stored = self.n_stored.max(level);
            if chopped.degree <= level / 2 && level >= 2 {
                let m = grid.smallest_nested_degree(chopped.degree).unwrap_or(level);
                let estimate = 2.0 * cheb::tail(&mags, m);
                let (sub, kept) = if m < level {
                    let stride = level / m;
                    let mut kept = self.row.zeros_with_len((m + 1) * self.n);
                    for j in 0..=m {
                        self.row
                            .combine_strided_rows(&[T::one()], &values, j * stride, 1);
                        kept.set_row(j, &self.row);
                    }
                    (grid.restrict(m).map_err(grid_err(&self.method))?, kept)
                } else {
                    (grid, values)
                };
                let info = self.segment_info(&range, m, estimate, Some(tol));
                return self.push(sub, kept, info);
            }
            if level < n_max {
                level *= 2;
                continue;
            }
            if range.len() > 1 {
                let mid = range.start + range.len() / 2;
                self.close_auto(range.start..mid, n_max, rule)?;
                return self.close_auto(mid..range.end, n_max, rule);
            }
            let info = self.segment_info(&range, level, chopped.error_estimate, Some(tol));
            under_resolved_or_flag(
                &self.method,
                &self.options,
                self.segments.len(),
                &info,
                "n_max",
                n_max,
            )?;
            self.under_resolved = true;
            return self.push(grid, values, info);
        }
    }
}
