//! Every gradient method on any [`rk::Vector`] backend (host `Vec<T>`, a GPU vector …);
//! [`crate::forward`] is this driver on host vectors. IRDM's automatic grid chooses its sub-grid
//! where the node values live, reading back only coefficient magnitudes (the private module
//! `auto_grid` states the rule).
//!
//! The same continuous adjoint as [`crate::driver`] (its module docs state the equations), with
//! every state-sized number kept on the backend:
//!
//! * the forward pass keeps the outputs `z(s_k)` and, for IRDM, the node values `z(τ_j)` read
//!   from the solver's dense output, each as one backend vector; Direct keeps every stage input,
//!   ANODE its checkpoints;
//! * the continuous backward pass integrates one stacked vector — IRDM `[a, g]`, RDM `[z, a, g]`
//!   — so that the solver's fused kernels cover the whole backward state, and IRDM's
//!   `z(t) = Σ_j ℓ_j(t) z(τ_j)` is one fused combination of the node values, stored as the rows
//!   of one stacked vector, handed to the right-hand side with the coefficients
//!   ([`VectorVjp::adjoint_rhs_interpolated`]:
//!   by default one [`rk::Vector::combine_rows`] and then the adjoint right-hand side; a GPU
//!   model reads the nodes in its own forward kernel). The `N + 1` coefficients `ℓ_j(t)` are
//!   computed on the host; piecewise-linear interpolation has two non-zero ones;
//! * Direct and ANODE reverse the steps exactly (`on_vector_discrete`), carrying `[ȳ, θ̄]` as
//!   one stacked vector;
//! * numbers cross to the host only at output times (to add `∂L/∂z(s_k)`) and at the end.

use crate::capture::Capture;
use crate::error::{AdjointError, Result};
use crate::method::{BackwardNorm, Checkpoints, Config, Info, Method};
use crate::on_vector_discrete::{OutputPos, VecRecorder, VecStep, VecStepper};
use crate::piecewise::{PiecewiseNodes, rule_coefficients};
use crate::vector_vjp::VectorVjp;
use crate::vjp::Real;
use rk::{ErrorNorm, Options, Rhs, Solver, Tolerance, Vector, check_times};
use std::ops::Range;

/// What the forward pass kept for the backward pass.
enum Tape<T: Real, V> {
    /// RDM (`nodes` = `None`) or IRDM (its segments' grids and node values).
    Continuous { nodes: Option<PiecewiseNodes<T, V>> },
    Direct {
        steps: Vec<VecStep<T, V>>,
        positions: Vec<OutputPos>,
    },
    Anode {
        /// `(t, h, t_new)` of every accepted step.
        steps: Vec<(T, T, T)>,
        /// `(index of the first step after the checkpoint, state)`.
        checkpoints: Vec<(usize, V)>,
        positions: Vec<OutputPos>,
    },
}

/// The result of [`forward_on`]: outputs and what the backward pass needs, on the backend.
pub struct VectorForward<T: Real, V: Vector<Scalar = T>> {
    method: Method,
    config: Config<T>,
    ts: Vec<T>,
    outputs: Vec<V>,
    tape: Tape<T, V>,
    info: Info,
    n: usize,
    p: usize,
}

/// The gradient on the backend.
pub struct VectorGradient<V> {
    /// `dL/dz0`.
    pub dz0: V,
    /// `dL/dθ`.
    pub dtheta: V,
    /// Counts and memory.
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

fn check_len(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(AdjointError::LengthMismatch {
            what,
            expected,
            got,
        })
    }
}

fn copy<V: Vector>(v: &V) -> V {
    let mut c = v.zeros_like();
    c.copy_from(v);
    c
}

/// Solves `dz/dt = f(t, z; θ)` from `z(ts[0]) = z0` on the backend of `z0` and keeps what the
/// method needs: Direct, RDM, ANODE, or IRDM with a fixed Lobatto or first-kind grid, the
/// mismatched pairing, piecewise-linear interpolation, or the automatic grid.
///
/// Errors: wrong lengths, bad settings, and solver failures.
pub fn forward_on<T, V, F>(
    f: &mut F,
    params: &V,
    z0: &V,
    ts: &[T],
    method: Method,
    config: &Config<T>,
) -> Result<VectorForward<T, V>>
where
    T: Real,
    V: Vector<Scalar = T>,
    F: VectorVjp<V>,
{
    let n = f.state_len();
    let p = f.param_len();
    check_len("initial state z0", n, z0.len())?;
    check_len("parameters θ", p, params.len())?;
    check_times(ts).map_err(solve_err(&method, "forward"))?;
    let (t0, t1) = (ts[0], ts[ts.len() - 1]);
    match method {
        Method::Anode {
            checkpoints: Checkpoints::EveryKSteps(0),
        } => {
            return Err(AdjointError::BadSetting {
                name: "ANODE k",
                value: 0.0,
                reason: "checkpoint spacing must be >= 1",
            });
        }
        Method::Anode {
            checkpoints: Checkpoints::Count(c),
        } if c < 2 => {
            return Err(AdjointError::BadSetting {
                name: "ANODE checkpoints",
                value: c as f64,
                reason: "needs at least 2 checkpoints",
            });
        }
        _ => {}
    }
    let limit = config.rdm_check.max_discrepancy;
    if limit.is_nan() || limit <= 0.0 {
        return Err(AdjointError::BadSetting {
            name: "rdm_check.max_discrepancy",
            value: limit,
            reason: "must be > 0 (infinity turns the check off)",
        });
    }
    let dense_degree = config.tableau.tableau().dense_order as usize;
    let mut capture = Capture::new(&method, &config.irdm, t0, t1, z0, dense_degree)?;
    let mut info = Info {
        method: method.name(),
        ..Info::default()
    };
    let err = solve_err(&method, "forward");
    let tableau = config.tableau.tableau();
    let mut solver = Solver::new(config.tableau, config.forward.clone(), z0).map_err(err)?;
    let is_direct = matches!(method, Method::Direct);
    let mut recorder = VecRecorder::new(f, tableau.stages(), z0);
    if is_direct {
        solver.init(&mut recorder, params, t0, t1, z0)
    } else {
        solver.init(recorder.f, params, t0, t1, z0)
    }
    .map_err(solve_err(&method, "forward"))?;
    let mut outputs = vec![copy(z0)];
    let mut positions = vec![OutputPos {
        step: usize::MAX,
        theta: None,
    }];
    let mut direct_steps: Vec<VecStep<T, V>> = Vec::new();
    let mut anode_steps: Vec<(T, T, T)> = Vec::new();
    let mut checkpoints: Vec<(usize, V)> = Vec::new();
    let mut spacing = match method {
        Method::Anode {
            checkpoints: Checkpoints::EveryKSteps(k),
        } => k,
        _ => 1,
    };
    if let Method::Anode { .. } = method {
        checkpoints.push((0, copy(z0)));
    }
    let mut y_prev = copy(z0);
    let forward_dir = t1 > t0;
    let reached = |target: T, now: T| {
        if forward_dir {
            target <= now
        } else {
            target >= now
        }
    };
    let mut next_out = 1;
    while !solver.is_finished() {
        let t_prev = solver.t();
        let now = if is_direct {
            solver.step(&mut recorder, params)
        } else {
            solver.step(recorder.f, params)
        }
        .map_err(solve_err(&method, "forward"))?;
        let h = solver.last_step_size();
        let step_index = solver.stats().accepted - 1;
        while next_out < ts.len() && reached(ts[next_out], now) {
            let mut v = z0.zeros_like();
            solver
                .interpolate(ts[next_out], &mut v)
                .map_err(solve_err(&method, "forward"))?;
            outputs.push(v);
            positions.push(OutputPos {
                step: step_index,
                theta: (ts[next_out] != now)
                    .then(|| <T as rk::Scalar>::as_f64((ts[next_out] - t_prev) / h)),
            });
            next_out += 1;
        }
        match method {
            Method::Direct => {
                direct_steps.push(recorder.take_step(tableau, &y_prev, t_prev, h, now));
                y_prev.copy_from(solver.state());
            }
            Method::Anode { checkpoints: rule } => {
                anode_steps.push((t_prev, h, now));
                let done = step_index + 1;
                if done % spacing == 0 && !solver.is_finished() {
                    checkpoints.push((done, copy(solver.state())));
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
        if let Some(c) = capture.as_mut() {
            c.after_step(&mut solver)?;
        }
    }
    let st = solver.stats();
    info.nfe_forward = st.nfe;
    info.accepted_forward = st.accepted;
    info.rejected_forward = st.rejected;
    let nodes = match capture {
        None => None,
        Some(c) => {
            let (nodes, grid_info, stored) = c.finish()?;
            info.stored_floats = stored;
            info.grid = Some(grid_info);
            Some(nodes)
        }
    };
    let tape = match method {
        Method::Direct => {
            // Stage inputs plus (t, h, t_new) per step, as the host driver counts.
            info.stored_floats = direct_steps
                .iter()
                .map(|st| st.stages.len() * n + 3)
                .sum::<usize>();
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
        _ => {
            if nodes.is_none() {
                info.stored_floats = (ts.len() - 1) * n;
            }
            Tape::Continuous { nodes }
        }
    };
    Ok(VectorForward {
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

impl<T: Real, V: Vector<Scalar = T>> VectorForward<T, V> {
    /// The states at the output times, on the backend.
    pub fn outputs(&self) -> &[V] {
        &self.outputs
    }

    /// The output times.
    pub fn times(&self) -> &[T] {
        &self.ts
    }

    /// Forward counts and memory.
    pub fn info(&self) -> &Info {
        &self.info
    }

    /// The gradient for output cotangents `cotangents[k] = ∂L/∂z(s_k)` (one per output time).
    /// `f` and `params` must be those of the forward pass.
    pub fn backward<F: VectorVjp<V>>(
        &self,
        f: &mut F,
        params: &V,
        cotangents: &[V],
    ) -> Result<VectorGradient<V>> {
        let (n, p) = (self.n, self.p);
        check_len("parameters θ", p, params.len())?;
        check_len("state length of f", n, f.state_len())?;
        check_len(
            "cotangents (one per output time)",
            self.ts.len(),
            cotangents.len(),
        )?;
        let mut cot_host: Vec<Vec<T>> = Vec::with_capacity(cotangents.len());
        for (k, c) in cotangents.iter().enumerate() {
            check_len("cotangent", n, c.len())?;
            let mut h = vec![T::zero(); n];
            c.copy_to_host(&mut h);
            if h.iter().any(|v| !v.is_finite()) {
                return Err(AdjointError::NonFiniteCotangent {
                    index: k,
                    t: <T as rk::Scalar>::as_f64(self.ts[k]),
                });
            }
            cot_host.push(h);
        }
        let mut info = self.info.clone();
        let nodes = match &self.tape {
            Tape::Continuous { nodes } => nodes.as_ref(),
            Tape::Direct { steps, positions } => {
                return self.backward_discrete(f, params, &cot_host, steps, None, positions, info);
            }
            Tape::Anode {
                steps,
                checkpoints,
                positions,
            } => {
                let replay = AnodeReplay { steps, checkpoints };
                return self.backward_discrete(
                    f,
                    params,
                    &cot_host,
                    &[],
                    Some(replay),
                    positions,
                    info,
                );
            }
        };
        let problem = Continuous {
            method: &self.method,
            config: &self.config,
            ts: &self.ts,
            outputs: &self.outputs,
            nodes,
            n,
            p,
        };
        let (dz0_h, dtheta_h) = problem.backward(f, params, &cot_host, &mut info)?;
        let mut dz0 = self.outputs[0].zeros_like();
        dz0.copy_from_host(&dz0_h);
        let mut dtheta = params.zeros_like();
        dtheta.copy_from_host(&dtheta_h);
        Ok(VectorGradient { dz0, dtheta, info })
    }
}

/// The continuous backward pass (RDM, IRDM) over any backend: what the forward pass kept. Also
/// used by the host driver, so that both run the same code.
pub(crate) struct Continuous<'a, T: Real, V> {
    pub method: &'a Method,
    pub config: &'a Config<T>,
    pub ts: &'a [T],
    pub outputs: &'a [V],
    /// IRDM: the segments' grids and node values.
    pub nodes: Option<&'a PiecewiseNodes<T, V>>,
    pub n: usize,
    pub p: usize,
}

impl<T: Real, V: Vector<Scalar = T>> Continuous<'_, T, V> {
    /// Integrates the adjoint system from `ts[K]` to `ts[0]`, adding the host cotangents at
    /// every output time; returns `(dL/dz0, dL/dθ)` on the host and fills the backward counts.
    pub fn backward<F: VectorVjp<V>>(
        &self,
        f: &mut F,
        params: &V,
        cot_host: &[Vec<T>],
        info: &mut Info,
    ) -> Result<(Vec<T>, Vec<T>)> {
        let (n, p, nodes) = (self.n, self.p, self.nodes);
        let is_irdm = nodes.is_some();
        let norm = match *self.method {
            Method::Rdm { norm } | Method::Irdm { norm, .. } => norm,
            _ => BackwardNorm::Full,
        };
        let a_off = if is_irdm { 0 } else { n };
        let len = a_off + n + p;
        let shift = |rs: Vec<Range<usize>>, by: usize| {
            rs.into_iter().map(move |r| r.start + by..r.end + by)
        };
        let mut groups: Vec<Range<usize>> = Vec::new();
        if !is_irdm {
            groups.extend(shift(f.state_groups(), 0));
        }
        groups.extend(shift(f.state_groups(), a_off));
        if norm == BackwardNorm::Full {
            groups.extend(shift(f.param_groups(), a_off + n));
        }
        let (rtol, atol) = self
            .config
            .backward
            .unwrap_or((self.config.forward.rtol, self.config.forward.atol.largest()));
        let mut options = Options::new(rtol, atol).with_norm(ErrorNorm::Groups(groups));
        options.max_steps = self.config.forward.max_steps;
        options.controller = self.config.forward.controller;
        let tableau = self.config.backward_tableau.unwrap_or(self.config.tableau);
        let template = &self.outputs[0];
        let mut host = vec![T::zero(); len];
        let mut zbuf = vec![T::zero(); n];
        let k_last = self.ts.len() - 1;
        // RDM: the largest reconstruction discrepancy and where.
        let mut worst: Option<(f64, T)> = None;
        if !is_irdm {
            self.outputs[k_last].copy_to_host(&mut host[..n]);
        }
        add(&mut host[a_off..a_off + n], &cot_host[k_last]);
        let mut x = template.zeros_with_len(len);
        x.copy_from_host(&host);
        let mut solver =
            Solver::new(tableau, options, &x).map_err(solve_err(self.method, "backward"))?;
        let empty = template.zeros_with_len(0);
        let mut rhs = BackwardRhs {
            f,
            params,
            nodes,
            coeffs: vec![T::zero(); nodes.map_or(0, |p| p.max_len())],
            segment: 0,
            z: template.zeros_like(),
            a_off,
            vjps: 0,
            failure: None,
        };
        // The first interval's first step is picked by the solver; each later output interval
        // starts from the step the controller proposed at the end of the one before, instead of
        // a fresh pick (measured on the 1000-output spiral at tol 1e-9: 9 502 backward VJPs
        // instead of 15 324, same gradient). Starting the first interval from the forward
        // pass's last step was tried and costs more (toy CNF: 16.3 VJPs instead of 14.3, a
        // rejection where the pick costs one evaluation).
        let mut first_step: Option<T> = None;
        for k in (1..=k_last).rev() {
            solver
                .set_first_step(first_step)
                .map_err(solve_err(self.method, "backward"))?;
            solver
                .init(&mut rhs, &empty, self.ts[k], self.ts[k - 1], &x)
                .map_err(solve_err(self.method, "backward"))?;
            while !solver.is_finished() {
                solver
                    .step(&mut rhs, &empty)
                    .map_err(solve_err(self.method, "backward"))?;
            }
            if let Some(e) = rhs.failure.take() {
                return Err(AdjointError::Grid {
                    method: self.method.name(),
                    source: e,
                });
            }
            let proposed = solver.proposed_step();
            first_step = Some(proposed).filter(|h| h.is_finite() && *h > T::zero());
            let st = solver.stats();
            info.accepted_backward += st.accepted;
            info.rejected_backward += st.rejected;
            if !is_irdm {
                info.nfe_backward += st.nfe;
            }
            solver.state().copy_to_host(&mut host);
            add(&mut host[a_off..a_off + n], &cot_host[k - 1]);
            if !is_irdm {
                self.outputs[k - 1].copy_to_host(&mut zbuf);
                if self.config.rdm_check.max_discrepancy.is_finite() {
                    let d = discrepancy(&host[..n], &zbuf, &self.config.forward.atol);
                    worst = match worst {
                        Some((w, _)) if w >= d => worst,
                        _ => Some((d, self.ts[k - 1])),
                    };
                }
                host[..n].copy_from_slice(&zbuf);
            }
            x.copy_from_host(&host);
        }
        if let Some((d, t)) = worst {
            info.rdm_discrepancy = Some(d);
            let check = self.config.rdm_check;
            if d.is_nan() || d > check.max_discrepancy {
                match check.on_exceed {
                    crate::OnUnderResolved::Error => {
                        return Err(AdjointError::Reconstruction {
                            method: self.method.name(),
                            t: <T as cheb::Real>::as_f64(t),
                            discrepancy: d,
                            limit: check.max_discrepancy,
                        });
                    }
                    crate::OnUnderResolved::Flag => info.rdm_flagged = true,
                }
            }
        }
        info.vjp_backward = rhs.vjps;
        Ok((host[a_off..a_off + n].to_vec(), host[a_off + n..].to_vec()))
    }
}

/// `max_i |z̃_i − z_i| / (max_i |z_i| + atol)`: the distance of RDM's reconstructed state from
/// the stored one relative to the state's size (NaN when the reconstruction is).
fn discrepancy<T: Real>(rec: &[T], stored: &[T], atol: &Tolerance<T>) -> f64 {
    let f = |x: T| <T as cheb::Real>::as_f64(x);
    let atol = f(atol.largest());
    let size = stored.iter().fold(0.0, |m: f64, &z| m.max(f(z.abs())));
    let mut worst = 0.0f64;
    for (&r, &z) in rec.iter().zip(stored) {
        let diff = f((r - z).abs());
        if diff.is_nan() {
            return f64::NAN;
        }
        worst = worst.max(diff);
    }
    if worst == 0.0 {
        0.0
    } else {
        worst / (size + atol)
    }
}

/// ANODE's record: the steps and the checkpoints to replay them from.
struct AnodeReplay<'a, T, V> {
    steps: &'a [(T, T, T)],
    checkpoints: &'a [(usize, V)],
}

impl<T: Real, V: Vector<Scalar = T>> VectorForward<T, V> {
    /// Direct (recorded `steps`) or ANODE (`anode`: replayed per checkpoint interval, last
    /// interval first): the discrete adjoint on stacked `[ȳ, θ̄]`.
    #[allow(clippy::too_many_arguments)]
    fn backward_discrete<F: VectorVjp<V>>(
        &self,
        f: &mut F,
        params: &V,
        cot_host: &[Vec<T>],
        steps: &[VecStep<T, V>],
        anode: Option<AnodeReplay<'_, T, V>>,
        positions: &[OutputPos],
        mut info: Info,
    ) -> Result<VectorGradient<V>> {
        let (n, p) = (self.n, self.p);
        let template = &self.outputs[0];
        // Output cotangents as stacked vectors [z̄, 0] on the backend.
        let mut host = vec![T::zero(); n + p];
        let stacked: Vec<V> = cot_host
            .iter()
            .map(|c| {
                host[..n].copy_from_slice(c);
                let mut v = template.zeros_with_len(n + p);
                v.copy_from_host(&host);
                v
            })
            .collect();
        let mut acc = template.zeros_with_len(n + p);
        let mut stepper = VecStepper::new(self.config.tableau.tableau(), template, &acc);
        let reverse = |stepper: &mut VecStepper<T, V>,
                       f: &mut F,
                       steps: &[VecStep<T, V>],
                       first: usize,
                       acc: &mut V| {
            for (offset, step) in steps.iter().enumerate().rev() {
                let index = first + offset;
                let mut inside: Vec<(f64, &V)> = Vec::new();
                for (k, pos) in positions.iter().enumerate() {
                    if pos.step != index {
                        continue;
                    }
                    match pos.theta {
                        None => acc.axpby(T::one(), &stacked[k], T::one()),
                        Some(theta) => inside.push((theta, &stacked[k])),
                    }
                }
                stepper.reverse(f, params, step, &inside, acc);
            }
        };
        match anode {
            None => {
                reverse(&mut stepper, f, steps, 0, &mut acc);
                info.accepted_backward = steps.len();
            }
            Some(AnodeReplay {
                steps: all,
                checkpoints,
            }) => {
                let mut peak = 0;
                for (ci, (start, state)) in checkpoints.iter().enumerate().rev() {
                    let end = checkpoints.get(ci + 1).map_or(all.len(), |c| c.0);
                    let mut y = state.zeros_like();
                    y.copy_from(state);
                    stepper.restart();
                    let records: Vec<VecStep<T, V>> = all[*start..end]
                        .iter()
                        .map(|&(t, h, t_new)| stepper.replay(f, params, t, h, t_new, &mut y))
                        .collect();
                    peak = peak.max(records.iter().map(|r| r.stages.len()).sum::<usize>() * n);
                    reverse(&mut stepper, f, &records, *start, &mut acc);
                }
                info.accepted_backward = all.len();
                info.nfe_backward = stepper.nfe;
                info.stored_floats += peak;
            }
        }
        for (k, pos) in positions.iter().enumerate() {
            if pos.step == usize::MAX {
                acc.axpby(T::one(), &stacked[k], T::one());
            }
        }
        info.vjp_backward = stepper.vjps;
        acc.copy_to_host(&mut host);
        let mut dz0 = template.zeros_like();
        dz0.copy_from_host(&host[..n]);
        let mut dtheta = params.zeros_like();
        dtheta.copy_from_host(&host[n..]);
        Ok(VectorGradient { dz0, dtheta, info })
    }
}

fn add<T: Real>(dst: &mut [T], src: &[T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = *d + s;
    }
}

/// The backward right-hand side on stacked vectors.
struct BackwardRhs<'a, T: Real, V: Vector<Scalar = T>, F> {
    f: &'a mut F,
    params: &'a V,
    nodes: Option<&'a PiecewiseNodes<T, V>>,
    coeffs: Vec<T>,
    /// The segment of the last evaluation (where the next one most likely falls).
    segment: usize,
    z: V,
    a_off: usize,
    vjps: usize,
    failure: Option<cheb::ChebError>,
}

impl<T, V, F> Rhs<V> for BackwardRhs<'_, T, V, F>
where
    T: Real,
    V: Vector<Scalar = T>,
    F: VectorVjp<V>,
{
    fn eval(&mut self, t: T, x: &V, _unused: &V, dx: &mut V) {
        self.vjps += 1;
        match self.nodes {
            Some(pieces) => {
                self.segment = pieces.locate(t, self.segment);
                let seg = &pieces.segments[self.segment];
                let coeffs = &mut self.coeffs[..seg.grid.len()];
                if let Err(e) = rule_coefficients(pieces.rule, &seg.grid, t, coeffs) {
                    self.failure = Some(e);
                    dx.fill(T::nan());
                    return;
                }
                self.f.adjoint_rhs_interpolated(
                    t,
                    coeffs,
                    &seg.values,
                    &mut self.z,
                    self.params,
                    x,
                    dx,
                );
            }
            None => {
                let n = self.a_off;
                self.f
                    .adjoint_rhs(t, x, 0, self.params, x, n, dx, Some(0), n);
            }
        }
    }
}
