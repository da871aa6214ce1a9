//! The forward pass of every gradient method on any [`rk::Vector`] backend (host `Vec<T>`, a
//! GPU vector …), and the dispatch of the backward pass to the method's file; [`crate::forward`]
//! is this driver on host vectors.
//!
//! One adaptive solve from `ts[0]` to `ts[K]` gives the outputs `z(s_k)` (dense output at the
//! output times) and keeps what the chosen method needs, every state-sized number on the
//! backend:
//!
//! | method | kept by the forward pass | backward pass |
//! |---|---|---|
//! | Direct | every accepted step's stage inputs ([`crate::direct`]) | discrete adjoint of each step ([`crate::discrete`]) |
//! | RDM | the outputs | [`crate::continuous`] with `z` re-solved ([`crate::rdm`]) |
//! | ANODE | checkpoints and step sizes ([`crate::anode`]) | replay and discrete adjoint per interval |
//! | IRDM | node values on piecewise Chebyshev grids, read from the dense output (private `capture`) | [`crate::continuous`] with `z` interpolated ([`crate::irdm`]) |
//!
//! Numbers cross to the host only at output times (to add `∂L/∂z(s_k)`) and at the end.

use crate::anode::AnodeTape;
use crate::capture::{Capture, GridCheck};
use crate::continuous::Continuous;
use crate::direct::{DirectTape, StageRecorder};
use crate::discrete::{OutputPos, copy};
use crate::error::{AdjointError, Result};
use crate::method::{Config, Info, Method};
use crate::piecewise::PiecewiseNodes;
use crate::vector_vjp::VectorVjp;
use crate::vjp::Real;
use rk::{Deferred, Solver, Vector, check_times};
use std::sync::{Mutex, OnceLock};

/// What the forward pass kept for the backward pass.
enum Tape<T: Real, V> {
    /// RDM (`nodes` = `None`) or IRDM (its segments' grids and node values).
    Continuous {
        nodes: Option<PiecewiseNodes<T, V>>,
    },
    Direct(DirectTape<T, V>),
    Anode(AnodeTape<T, V>),
}

/// The result of [`forward_on`]: outputs and what the backward pass needs, on the backend.
pub struct VectorForward<T: Real, V: Vector<Scalar = T>> {
    method: Method,
    config: Config<T>,
    ts: Vec<T>,
    outputs: Vec<V>,
    tape: Tape<T, V>,
    /// Where each output time fell among the forward steps (for the discrete methods).
    positions: Vec<OutputPos>,
    /// The forward counts, without IRDM's grid record until `checked` has read it.
    info: Info,
    /// IRDM's grid record with its fixed-grid checks unread, taken by the first `checked`.
    grid_check: Mutex<Option<GridCheck<T>>>,
    /// The counts with the grid record complete, and the grid check's verdict.
    checked: OnceLock<(Info, Result<()>)>,
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
    let mut anode = match method {
        Method::Anode { checkpoints } => Some(AnodeTape::new(checkpoints, z0)?),
        _ => None,
    };
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
    let mut recorder = StageRecorder::new(f, tableau.stages(), z0);
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
    let mut direct = is_direct.then(|| DirectTape::new(z0));
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
        if let Some(d) = direct.as_mut() {
            d.after_step(&recorder, tableau, (t_prev, h, now), solver.state());
        }
        if let Some(a) = anode.as_mut() {
            a.after_step(
                (t_prev, h, now),
                step_index,
                solver.is_finished(),
                solver.state(),
            );
        }
        if let Some(c) = capture.as_mut() {
            c.after_step(&mut solver)?;
        }
    }
    let st = solver.stats();
    info.nfe_forward = st.nfe;
    info.accepted_forward = st.accepted;
    info.rejected_forward = st.rejected;
    let (nodes, grid_check) = match capture {
        None => (None, None),
        Some(c) => {
            let (nodes, check, stored) = c.finish()?;
            info.stored_floats = stored;
            (Some(nodes), Some(check))
        }
    };
    let tape = if let Some(d) = direct {
        info.stored_floats = d.stored_floats();
        Tape::Direct(d)
    } else if let Some(a) = anode {
        info.stored_floats = a.stored_floats();
        Tape::Anode(a)
    } else {
        if nodes.is_none() {
            info.stored_floats = (ts.len() - 1) * n;
        }
        Tape::Continuous { nodes }
    };
    Ok(VectorForward {
        method,
        config: config.clone(),
        ts: ts.to_vec(),
        outputs,
        tape,
        positions,
        info,
        grid_check: Mutex::new(grid_check),
        checked: OnceLock::new(),
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

    /// Forward counts and memory, with IRDM's grid record. A fixed grid's check (its error
    /// estimate, whether it is under-resolved) is read here or in [`VectorForward::backward`],
    /// whichever comes first, not at the end of the forward pass: on a GPU `backward` reads it
    /// with its first norms instead of in a round trip of its own (calling `info` first costs
    /// that round trip). An under-resolved fixed grid (with
    /// [`OnUnderResolved::Error`](crate::OnUnderResolved::Error)) is therefore an error of
    /// `backward`, which returns no gradient from it; here it shows as
    /// [`GridInfo::under_resolved`](crate::GridInfo::under_resolved).
    pub fn info(&self) -> &Info {
        &self.checked().0
    }

    /// The counts with the grid record complete and the grid check's verdict (read once).
    fn checked(&self) -> &(Info, Result<()>) {
        self.checked.get_or_init(|| {
            let mut info = self.info.clone();
            let check = self
                .grid_check
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            let verdict = match check {
                Some(check) => {
                    let (grid, verdict) = check.resolve();
                    info.grid = Some(grid);
                    verdict
                }
                None => Ok(()),
            };
            (info, verdict)
        })
    }

    /// The checks of what the backward pass was given and of the forward pass's grid, read
    /// together (on a GPU with the backward solver's first norms): an error names the first
    /// bad cotangent, else the grid's failure; otherwise the forward record to count on.
    fn start_checks(&self, cotangents: CotangentCheck<'_, T>) -> Result<Info> {
        cotangents.finish()?;
        let (info, verdict) = self.checked();
        verdict.clone()?;
        Ok(info.clone())
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
        for c in cotangents {
            check_len("cotangent", n, c.len())?;
        }
        let check = CotangentCheck::record(cotangents, &self.ts);
        let tableau = self.config.tableau.tableau();
        let nodes = match &self.tape {
            Tape::Continuous { nodes } => nodes.as_ref(),
            Tape::Direct(tape) => {
                let mut info = self.start_checks(check)?;
                let (dz0, dtheta) =
                    tape.backward(f, params, tableau, cotangents, &self.positions, &mut info);
                return Ok(VectorGradient { dz0, dtheta, info });
            }
            Tape::Anode(tape) => {
                let mut info = self.start_checks(check)?;
                let (dz0, dtheta) =
                    tape.backward(f, params, tableau, cotangents, &self.positions, &mut info);
                return Ok(VectorGradient { dz0, dtheta, info });
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
        let (dz0, dtheta, info) =
            problem.backward(f, params, cotangents, || self.start_checks(check))?;
        Ok(VectorGradient { dz0, dtheta, info })
    }
}

/// The output cotangents' check for non-finite entries, recorded at the start of the backward
/// pass and read with its first readback: stacked into one scratch vector of `K·n` components
/// whose per-cotangent maxima are deferred ([`Vector::max_abs_groups_deferred`]: on a GPU they
/// come back with the backward solver's first norms, not in a round trip of their own; a
/// non-finite entry gives `+∞`). [`CotangentCheck::finish`] names the first bad one with its
/// output time.
struct CotangentCheck<'a, T: Real> {
    maxima: Option<Deferred<T>>,
    ts: &'a [T],
}

impl<'a, T: Real> CotangentCheck<'a, T> {
    fn record<V: Vector<Scalar = T>>(cotangents: &[V], ts: &'a [T]) -> Self {
        let Some(first) = cotangents.first() else {
            return Self { maxima: None, ts };
        };
        let n = first.len();
        let mut stacked = first.zeros_with_len(n * cotangents.len());
        for (k, c) in cotangents.iter().enumerate() {
            stacked.copy_range(k * n, c, 0..n);
        }
        let groups: Vec<std::ops::Range<usize>> =
            (0..cotangents.len()).map(|k| k * n..(k + 1) * n).collect();
        Self {
            maxima: Some(stacked.max_abs_groups_deferred(&groups)),
            ts,
        }
    }

    /// An error naming the first non-finite cotangent, if any.
    fn finish(self) -> Result<()> {
        let maxima = self.maxima.map(Deferred::get).unwrap_or_default();
        match maxima.iter().position(|m| !m.is_finite()) {
            Some(index) => Err(AdjointError::NonFiniteCotangent {
                index,
                t: <T as rk::Scalar>::as_f64(self.ts[index]),
            }),
            None => Ok(()),
        }
    }
}
