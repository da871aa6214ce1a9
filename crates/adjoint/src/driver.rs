//! The entry points: [`forward`] solves and keeps what the chosen method needs;
//! [`Forward::backward`] turns output cotangents into `dL/dz0` and `dL/dθ`.
//!
//! Continuous methods (RDM, IRDM) integrate the adjoint system backward one output interval at
//! a time, from `s_K` to `s_0`, adding `∂L/∂z(s_k)` to `a` at each output time:
//!
//! ```text
//!     da/dt = −aᵀ ∂f/∂z(z(t), t, θ),     dg/dt = −aᵀ ∂f/∂θ,     g(t1) = 0,
//!     dL/dz0 = a(t0),                     dL/dθ = g(t0),
//! ```
//!
//! RDM carries `z` in the backward state (`dz/dt = f`, started from the stored `z(s_k)` on each
//! interval, as torchdiffeq does); IRDM evaluates `z(t)` by barycentric interpolation over the
//! Chebyshev nodes stored in the forward pass, read from the solver's dense output at no extra
//! right-hand-side evaluations (or piecewise-linearly, for the ablation). The continuous
//! backward pass itself is [`crate::on_vector`]'s, run here on host vectors, so that every
//! backend runs the same code. Discrete methods (Direct, ANODE) reverse the recorded (or
//! recomputed) steps exactly (the formulas are in the private module `discrete`).

use crate::discrete::{OutputPos, Recorder, StepRecord, Stepper};
use crate::error::{AdjointError, Result};
use crate::method::{Checkpoints, Config, GridInfo, Info, IrdmGrid, Method};
use crate::on_vector::{Continuous, NodeRule};
use crate::vjp::{Real, Vjp};
use cheb::{ChopRule, Grid, Kind};
use rk::{Solver, check_times};

/// What the forward pass kept for the backward pass.
enum Tape<T: Real> {
    Direct {
        steps: Vec<StepRecord<T>>,
        positions: Vec<OutputPos>,
    },
    Anode {
        /// `(t, h, t_new)` of every accepted step.
        steps: Vec<(T, T, T)>,
        /// `(index of the first step after the checkpoint, state)`.
        checkpoints: Vec<(usize, Vec<T>)>,
        positions: Vec<OutputPos>,
    },
    Rdm,
    Irdm {
        /// Grid, interpolation rule, node values (row-major, one row per node).
        nodes: (Grid<T>, NodeRule, Vec<T>),
    },
}

/// The result of [`forward`]: outputs at the requested times, and what the backward pass needs.
pub struct Forward<T: Real> {
    method: Method,
    config: Config<T>,
    ts: Vec<T>,
    outputs: Vec<Vec<T>>,
    tape: Tape<T>,
    info: Info,
    n: usize,
    p: usize,
}

/// The gradient of a loss through the solve.
#[derive(Debug, Clone)]
pub struct Gradient<T> {
    /// `dL/dz0`.
    pub dz0: Vec<T>,
    /// `dL/dθ`.
    pub dtheta: Vec<T>,
    /// Counts and memory of the forward and backward passes.
    pub info: Info,
}

fn solve_err(method: &Method, pass: &'static str) -> impl FnOnce(rk::RkError) -> AdjointError {
    let name = method.name();
    move |source| AdjointError::Solve {
        method: name,
        pass,
        source,
    }
}

fn grid_err(method: &Method) -> impl FnOnce(cheb::ChebError) -> AdjointError {
    let name = method.name();
    move |source| AdjointError::Grid {
        method: name,
        source,
    }
}

fn bad(name: &'static str, value: usize, reason: &'static str) -> AdjointError {
    AdjointError::BadSetting {
        name,
        value: value as f64,
        reason,
    }
}

fn check_len(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected != got {
        return Err(AdjointError::LengthMismatch {
            what,
            expected,
            got,
        });
    }
    Ok(())
}

/// Solves `dz/dt = f(t, z; θ)` from `z(ts[0]) = z0` and returns the states at `ts` together with
/// what `method` needs for the backward pass.
///
/// Errors: wrong state or parameter length, invalid method settings, and any solver failure
/// (tagged with the method and pass).
pub fn forward<T: Real, F: Vjp<T>>(
    f: &mut F,
    params: &[T],
    z0: &[T],
    ts: &[T],
    method: Method,
    config: &Config<T>,
) -> Result<Forward<T>> {
    let n = f.state_len();
    let p = f.param_len();
    check_len("initial state z0", n, z0.len())?;
    check_len("parameters θ", p, params.len())?;
    check_times(ts).map_err(solve_err(&method, "forward"))?;
    let params_v = params.to_vec();
    let z0_v = z0.to_vec();
    let tableau = config.tableau.tableau();
    let mut info = Info {
        method: method.name(),
        ..Info::default()
    };
    let t0 = ts[0];
    let t1 = ts[ts.len() - 1];
    let err = solve_err(&method, "forward");

    // Nodes to record (IRDM), in the direction of integration.
    let grid = match method {
        Method::Irdm {
            grid: IrdmGrid::Fixed { kind, n: deg },
            ..
        } => {
            if deg < 1 {
                return Err(bad("IRDM N", deg, "needs N >= 1"));
            }
            Some(Grid::new(kind, deg, t0, t1).map_err(grid_err(&method))?)
        }
        Method::Irdm {
            grid: IrdmGrid::PiecewiseLinear { n: deg },
            ..
        } => {
            if deg < 1 {
                return Err(bad("IRDM N", deg, "needs N >= 1"));
            }
            Some(Grid::new(Kind::Lobatto, deg, t0, t1).map_err(grid_err(&method))?)
        }
        Method::Irdm {
            grid: IrdmGrid::Mismatched { n: deg },
            ..
        } => {
            if deg < 1 {
                return Err(bad("IRDM N", deg, "needs N >= 1"));
            }
            Some(
                Grid::with_weight_kind(Kind::Lobatto, Kind::First, deg, t0, t1)
                    .map_err(grid_err(&method))?,
            )
        }
        Method::Irdm {
            grid:
                IrdmGrid::Auto {
                    n_max,
                    rel_tol,
                    abs_tol,
                },
            ..
        } => {
            if !n_max.is_power_of_two() {
                return Err(bad("IRDM n_max", n_max, "must be a power of two"));
            }
            if !(rel_tol.is_finite() && rel_tol >= 0.0 && abs_tol.is_finite() && abs_tol >= 0.0) {
                return Err(AdjointError::BadSetting {
                    name: "IRDM chop tolerance",
                    value: if rel_tol.is_finite() && rel_tol >= 0.0 {
                        abs_tol
                    } else {
                        rel_tol
                    },
                    reason: "must be finite and >= 0",
                });
            }
            Some(Grid::new(Kind::Lobatto, n_max, t0, t1).map_err(grid_err(&method))?)
        }
        _ => None,
    };
    match method {
        Method::Anode {
            checkpoints: Checkpoints::EveryKSteps(0),
        } => return Err(bad("ANODE k", 0, "checkpoint spacing must be >= 1")),
        Method::Anode {
            checkpoints: Checkpoints::Count(c),
        } if c < 2 => return Err(bad("ANODE checkpoints", c, "needs at least 2 checkpoints")),
        _ => {}
    }

    let mut solver = Solver::new(config.tableau, config.forward.clone(), &z0_v)
        .map_err(solve_err(&method, "forward"))?;
    let mut outputs: Vec<Vec<T>> = vec![z0_v.clone()];
    let mut positions = vec![OutputPos {
        step: usize::MAX,
        theta: None,
    }];
    let mut node_values: Vec<T> = Vec::new();
    let nodes: Vec<T> = grid
        .as_ref()
        .map(|g| g.nodes().to_vec())
        .unwrap_or_default();
    let mut next_node = 0;
    if let Some(g) = &grid
        && g.nodes()[0] == t0
    {
        node_values.extend_from_slice(&z0_v);
        next_node = 1;
    }
    let forward_dir = t1 > t0;
    let reached = |target: T, t_now: T| {
        if forward_dir {
            target <= t_now
        } else {
            target >= t_now
        }
    };
    let mut next_out = 1;
    let mut buf = z0_v.clone();
    let mut direct_steps = Vec::new();
    let mut anode_steps = Vec::new();
    let mut checkpoints: Vec<(usize, Vec<T>)> = Vec::new();
    let mut spacing = match method {
        Method::Anode {
            checkpoints: Checkpoints::EveryKSteps(k),
        } => k,
        _ => 1,
    };
    let mut y_prev = z0_v.clone();
    {
        let s = tableau.stages();
        let mut recorder = Recorder::new(f, s, n);
        let is_direct = matches!(method, Method::Direct);
        if is_direct {
            solver
                .init(&mut recorder, &params_v, t0, t1, &z0_v)
                .map_err(err)?;
        } else {
            solver
                .init(recorder.f, &params_v, t0, t1, &z0_v)
                .map_err(solve_err(&method, "forward"))?;
        }
        if let Method::Anode { .. } = method {
            checkpoints.push((0, z0_v.clone()));
        }
        while !solver.is_finished() {
            let t_prev = solver.t();
            let t_now = if is_direct {
                solver.step(&mut recorder, &params_v)
            } else {
                solver.step(recorder.f, &params_v)
            }
            .map_err(solve_err(&method, "forward"))?;
            let h = solver.last_step_size();
            let step_index = solver.stats().accepted - 1;
            while next_out < ts.len() && reached(ts[next_out], t_now) {
                solver
                    .interpolate(ts[next_out], &mut buf)
                    .map_err(solve_err(&method, "forward"))?;
                outputs.push(buf.clone());
                let theta = if ts[next_out] == t_now {
                    None
                } else {
                    Some(<T as rk::Scalar>::as_f64((ts[next_out] - t_prev) / h))
                };
                positions.push(OutputPos {
                    step: step_index,
                    theta,
                });
                next_out += 1;
            }
            while next_node < nodes.len() && reached(nodes[next_node], t_now) {
                solver
                    .interpolate(nodes[next_node], &mut buf)
                    .map_err(solve_err(&method, "forward"))?;
                node_values.extend_from_slice(&buf);
                next_node += 1;
            }
            match method {
                Method::Direct => {
                    direct_steps.push(recorder.take_step(tableau, &y_prev, t_prev, h, t_now));
                    y_prev.copy_from_slice(solver.state());
                }
                Method::Anode { checkpoints: rule } => {
                    anode_steps.push((t_prev, h, t_now));
                    let done = step_index + 1;
                    if done % spacing == 0 && !solver.is_finished() {
                        checkpoints.push((done, solver.state().clone()));
                        if let Checkpoints::Count(c) = rule
                            && checkpoints.len() >= c
                        {
                            // Thin out: keep every other checkpoint, double the spacing.
                            spacing *= 2;
                            checkpoints.retain(|(i, _)| i % spacing == 0);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let stats = solver.stats();
    info.nfe_forward = stats.nfe;
    info.accepted_forward = stats.accepted;
    info.rejected_forward = stats.rejected;

    let tape = match method {
        Method::Direct => {
            info.stored_floats = direct_steps.iter().map(|r| r.stages.len() + 3).sum();
            Tape::Direct {
                steps: direct_steps,
                positions,
            }
        }
        Method::Anode { .. } => {
            info.stored_floats = checkpoints.len() * n + 3 * anode_steps.len();
            Tape::Anode {
                steps: anode_steps,
                checkpoints,
                positions,
            }
        }
        Method::Rdm { .. } => {
            info.stored_floats = (ts.len() - 1) * n;
            Tape::Rdm
        }
        Method::Irdm { grid: spec, .. } => {
            let grid = grid.expect("every IRDM grid variant builds its grid above");
            let n_stored = grid.degree();
            info.stored_floats = node_values.len();
            let (grid, values, grid_info) = match spec {
                IrdmGrid::Fixed { .. }
                | IrdmGrid::Mismatched { .. }
                | IrdmGrid::PiecewiseLinear { .. } => {
                    let gi = GridInfo {
                        kind: if matches!(spec, IrdmGrid::PiecewiseLinear { .. }) {
                            "linear"
                        } else if grid.is_matched() {
                            grid.kind().name()
                        } else {
                            "mismatched"
                        },
                        n: n_stored,
                        n_stored,
                        error_estimate: None,
                    };
                    (grid, node_values, gi)
                }
                IrdmGrid::Auto {
                    rel_tol, abs_tol, ..
                } => {
                    // Coarse to fine over the nested sub-grids (degrees 4, 8, …): accept the
                    // first level whose coefficients have decayed below the rule over at least
                    // the upper half of its degrees. Costs O(Σ L² · dim) up to the accepted
                    // level L instead of O(N_max² · dim).
                    let rule = ChopRule {
                        rel_tol: <T as cheb::Real>::of(rel_tol),
                        abs_tol: <T as cheb::Real>::of(abs_tol),
                    };
                    let mut level = 4.min(n_stored);
                    let (sub, values, m, estimate) = loop {
                        let sub = grid.restrict(level).map_err(grid_err(&method))?;
                        let vals = grid
                            .restrict_values(&node_values, n, level)
                            .map_err(grid_err(&method))?;
                        let coeffs = sub
                            .chebyshev_coefficients(&vals, n)
                            .map_err(grid_err(&method))?;
                        let mags = cheb::coefficient_magnitudes(&coeffs, n);
                        let chopped = cheb::chop(&mags, rule).map_err(grid_err(&method))?;
                        if chopped.degree <= level / 2 || level == n_stored {
                            let m = sub.smallest_nested_degree(chopped.degree).unwrap_or(level);
                            let estimate = if m < level {
                                <T as cheb::Real>::of(2.0) * cheb::tail(&mags, m)
                            } else {
                                chopped.error_estimate
                            };
                            let values = sub
                                .restrict_values(&vals, n, m)
                                .map_err(grid_err(&method))?;
                            break (
                                sub.restrict(m).map_err(grid_err(&method))?,
                                values,
                                m,
                                estimate,
                            );
                        }
                        level *= 2;
                    };
                    let gi = GridInfo {
                        kind: "lobatto",
                        n: m,
                        n_stored,
                        error_estimate: Some(<T as cheb::Real>::as_f64(estimate)),
                    };
                    (sub, values, gi)
                }
            };
            info.grid = Some(grid_info);
            let rule = if matches!(spec, IrdmGrid::PiecewiseLinear { .. }) {
                NodeRule::Linear
            } else {
                NodeRule::Barycentric
            };
            if values.len() != grid.len() * n {
                return Err(AdjointError::LengthMismatch {
                    what: "IRDM node values",
                    expected: grid.len() * n,
                    got: values.len(),
                });
            }
            Tape::Irdm {
                nodes: (grid, rule, values),
            }
        }
    };
    Ok(Forward {
        method,
        config: config.clone(),
        ts: ts.to_vec(),
        outputs,
        tape,
        info,
        n,
        p,
    })
}

impl<T: Real> Forward<T> {
    /// The states at the output times (`outputs()[0]` is `z0`).
    pub fn outputs(&self) -> &[Vec<T>] {
        &self.outputs
    }

    /// The output times.
    pub fn times(&self) -> &[T] {
        &self.ts
    }

    /// Forward counts and memory so far.
    pub fn info(&self) -> &Info {
        &self.info
    }

    /// The gradient for the output cotangents `cotangents[k] = ∂L/∂z(s_k)` (one per output time,
    /// including `s_0`). `f` and `params` must be those of the forward pass.
    pub fn backward<F: Vjp<T>>(
        &self,
        f: &mut F,
        params: &[T],
        cotangents: &[Vec<T>],
    ) -> Result<Gradient<T>> {
        check_len("parameters θ", self.p, params.len())?;
        check_len("state length of f", self.n, f.state_len())?;
        check_len(
            "cotangents (one per output time)",
            self.ts.len(),
            cotangents.len(),
        )?;
        for (k, c) in cotangents.iter().enumerate() {
            check_len("cotangent", self.n, c.len())?;
            if c.iter().any(|v| !v.is_finite()) {
                return Err(AdjointError::NonFiniteCotangent {
                    index: k,
                    t: <T as rk::Scalar>::as_f64(self.ts[k]),
                });
            }
        }
        let mut info = self.info.clone();
        let (dz0, dtheta) = match &self.tape {
            Tape::Direct { steps, positions } => {
                let mut stepper = Stepper::new(self.config.tableau.tableau(), self.n, self.p);
                let mut ybar = vec![T::zero(); self.n];
                let mut pbar = vec![T::zero(); self.p];
                reverse_steps(
                    &mut stepper,
                    f,
                    params,
                    steps,
                    0,
                    positions,
                    cotangents,
                    &mut ybar,
                    &mut pbar,
                );
                add_initial_cotangents(positions, cotangents, &mut ybar);
                info.vjp_backward = stepper.vjps;
                info.accepted_backward = steps.len();
                (ybar, pbar)
            }
            Tape::Anode {
                steps,
                checkpoints,
                positions,
            } => self.backward_anode(
                f,
                params,
                steps,
                checkpoints,
                positions,
                cotangents,
                &mut info,
            )?,
            Tape::Rdm | Tape::Irdm { .. } => {
                // The same continuous backward pass as every other backend, on host vectors.
                let nodes = match &self.tape {
                    Tape::Irdm { nodes } => Some(nodes),
                    _ => None,
                };
                let problem = Continuous {
                    method: &self.method,
                    config: &self.config,
                    ts: &self.ts,
                    outputs: &self.outputs,
                    nodes,
                    n: self.n,
                    p: self.p,
                };
                problem.backward(f, &params.to_vec(), cotangents, &mut info)?
            }
        };
        Ok(Gradient { dz0, dtheta, info })
    }

    #[allow(clippy::too_many_arguments)]
    fn backward_anode<F: Vjp<T>>(
        &self,
        f: &mut F,
        params: &[T],
        steps: &[(T, T, T)],
        checkpoints: &[(usize, Vec<T>)],
        positions: &[OutputPos],
        cotangents: &[Vec<T>],
        info: &mut Info,
    ) -> Result<(Vec<T>, Vec<T>)> {
        let mut stepper = Stepper::new(self.config.tableau.tableau(), self.n, self.p);
        let params_v = params.to_vec();
        let mut ybar = vec![T::zero(); self.n];
        let mut pbar = vec![T::zero(); self.p];
        let mut peak_interval = 0;
        // Outputs at the end of the last step are added by the last interval's reverse; those at
        // s_0 at the very end.
        for (ci, (start, state)) in checkpoints.iter().enumerate().rev() {
            let end = checkpoints.get(ci + 1).map_or(steps.len(), |c| c.0);
            let mut y = state.clone();
            stepper.restart();
            let records: Vec<StepRecord<T>> = steps[*start..end]
                .iter()
                .map(|&(t, h, t_new)| stepper.replay(f, &params_v, t, h, t_new, &mut y))
                .collect();
            peak_interval =
                peak_interval.max(records.iter().map(|r| r.stages.len()).sum::<usize>());
            reverse_steps(
                &mut stepper,
                f,
                params,
                &records,
                *start,
                positions,
                cotangents,
                &mut ybar,
                &mut pbar,
            );
        }
        add_initial_cotangents(positions, cotangents, &mut ybar);
        info.nfe_backward = stepper.nfe;
        info.vjp_backward = stepper.vjps;
        info.accepted_backward = steps.len();
        info.stored_floats += peak_interval;
        Ok((ybar, pbar))
    }
}

fn add<T: Real>(dst: &mut [T], src: &[T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = *d + s;
    }
}

/// Adds the cotangents of outputs at the initial time (position `step = usize::MAX`).
fn add_initial_cotangents<T: Real>(positions: &[OutputPos], cotangents: &[Vec<T>], ybar: &mut [T]) {
    for (k, pos) in positions.iter().enumerate() {
        if pos.step == usize::MAX {
            add(ybar, &cotangents[k]);
        }
    }
}

/// Reverses `steps` (global indices `first ..`), adding output cotangents where they fall.
#[allow(clippy::too_many_arguments)]
fn reverse_steps<T: Real, F: Vjp<T>>(
    stepper: &mut Stepper<T>,
    f: &mut F,
    params: &[T],
    steps: &[StepRecord<T>],
    first: usize,
    positions: &[OutputPos],
    cotangents: &[Vec<T>],
    ybar: &mut [T],
    pbar: &mut [T],
) {
    // Dense outputs inside the current step; one buffer reused for every step.
    let mut inside: Vec<(f64, &[T])> = Vec::new();
    for (offset, rec) in steps.iter().enumerate().rev() {
        let index = first + offset;
        inside.clear();
        for (k, pos) in positions.iter().enumerate() {
            if pos.step != index {
                continue;
            }
            match pos.theta {
                None => add(ybar, &cotangents[k]),
                Some(theta) => inside.push((theta, &cotangents[k])),
            }
        }
        stepper.reverse(f, params, rec, &inside, ybar, pbar);
    }
}
