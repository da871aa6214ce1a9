//! The step-by-step solver: one accepted step per call, dense output inside the last step.
//!
//! [`Solver`] owns its stage vectors (allocated once, in [`Solver::new`]) and never allocates
//! while stepping. Every step is clipped so that no stage is evaluated outside `[t0, t1]`: the
//! last step ends exactly at `t1`, and stages with `c_i = 1` are evaluated at the step's end time
//! itself rather than at `t + h` (which may differ by rounding).
//!
//! The initial step, when not given, is Hairer's heuristic (Hairer, Nørsett & Wanner, *Solving
//! ODEs I*, §II.4), as torchdiffeq computes it: with `d0 = ‖y0‖`, `d1 = ‖f0‖` in the error norm,
//! `h0 = 0.01·d0/d1` (or `1e−6` when either is below `1e−5`), one Euler step to `y0 + h0 f0`,
//! `d2 = ‖f1 − f0‖/h0`, `h1 = (0.01/max(d1, d2))^{1/(p+1)}` and `h = min(100·h0, h1)`. One extra
//! evaluation; `h0` is also capped at `|t1 − t0|` so that it stays inside the interval.

use crate::error::{Result, RkError};
use crate::options::{Controller, Options, Tolerance};
use crate::rhs::Rhs;
use crate::scalar::Scalar;
use crate::tableau::{Method, Tableau};
use crate::vector::{Atol, Vector};
use num_traits::{Float, One, Zero};
use std::ops::Range;

/// Counters of a solve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Right-hand-side evaluations (NFE).
    pub nfe: usize,
    /// Accepted steps.
    pub accepted: usize,
    /// Rejected steps.
    pub rejected: usize,
    /// Floats the solver holds: stage vectors, state copies, error vector, per-component `atol`.
    pub stored_floats: usize,
}

/// Maximum number of stages of any tableau.
const MAX_STAGES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Running,
    Finished,
}

/// An explicit Runge–Kutta integrator over vectors `V`.
///
/// ```
/// use rk::{FnRhs, Method, Options, Solver};
/// let mut rhs = FnRhs(|_t: f64, z: &[f64], _p: &[f64], dz: &mut [f64]| { dz[0] = z[1]; dz[1] = -z[0]; });
/// let y0 = vec![0.0, 1.0];
/// let mut solver = Solver::new(Method::Dopri5, Options::new(1e-8, 1e-10), &y0)?;
/// solver.init(&mut rhs, &vec![], 0.0, 3.0, &y0)?;
/// let mut mid = vec![0.0; 2];
/// while !solver.is_finished() {
///     solver.step(&mut rhs, &vec![])?;
///     let (a, b) = solver.last_step();
///     if a <= 1.5 && 1.5 <= b {
///         solver.interpolate(1.5, &mut mid)?; // dense output, no extra evaluation
///     }
/// }
/// assert!((solver.state()[0] - 3.0f64.sin()).abs() < 1e-7);
/// assert!((mid[0] - 1.5f64.sin()).abs() < 1e-7);
/// # Ok::<(), rk::RkError>(())
/// ```
pub struct Solver<V: Vector> {
    tableau: &'static Tableau,
    options: Options<V::Scalar>,
    adaptive: bool,
    atol: Atol<V>,
    groups: Vec<Range<usize>>,
    // Coefficients converted to the scalar type.
    c: Vec<V::Scalar>,
    a: Vec<Vec<V::Scalar>>,
    b: Vec<V::Scalar>,
    e: Vec<V::Scalar>,
    // Work vectors.
    k: Vec<V>,
    y: V,
    y_prev: V,
    ytmp: V,
    err: V,
    coeffs: [V::Scalar; MAX_STAGES],
    dense_f64: [f64; MAX_STAGES],
    // Stepping state.
    phase: Phase,
    k0_valid: bool,
    /// Whether an init with a given first step reads back the finiteness of `y0` and `f0`.
    check_start: bool,
    fsal_pending: bool,
    t: V::Scalar,
    t_prev: V::Scalar,
    t_end: V::Scalar,
    direction: V::Scalar,
    h_next: V::Scalar,
    h_last: V::Scalar,
    last_ratio: V::Scalar,
    prev_accepted_ratio: V::Scalar,
    stats: Stats,
}

impl<V: Vector> Solver<V> {
    /// A solver for states shaped like `template` (only its length and backend are used).
    ///
    /// Errors: invalid tolerances or step options, per-component `atol` of the wrong length, an
    /// error-norm range outside the state, a fixed-step method without a step size.
    pub fn new(method: Method, options: Options<V::Scalar>, template: &V) -> Result<Self> {
        let tableau = method.tableau();
        let adaptive = options.adaptive && tableau.e.is_some();
        options.validate(adaptive)?;
        if template.is_empty() {
            return Err(RkError::EmptyState);
        }
        if !adaptive && options.first_step.is_none() {
            return Err(RkError::MissingStepSize {
                method: tableau.name,
            });
        }
        let n = template.len();
        let atol = match &options.atol {
            Tolerance::Scalar(a) => Atol::Scalar(*a),
            Tolerance::PerComponent(v) => {
                if v.len() != n {
                    return Err(RkError::LengthMismatch {
                        what: "per-component atol",
                        expected: n,
                        got: v.len(),
                    });
                }
                let mut x = template.zeros_like();
                x.copy_from_host(v);
                Atol::PerComponent(x)
            }
        };
        let groups = options.norm.groups(n)?;
        let of = |xs: &[f64]| xs.iter().map(|&x| V::Scalar::of(x)).collect::<Vec<_>>();
        let s = tableau.stages();
        let k: Vec<V> = (0..s).map(|_| template.zeros_like()).collect();
        let atol_floats = match &atol {
            Atol::Scalar(_) => 0,
            Atol::PerComponent(_) => n,
        };
        let zero = V::Scalar::zero();
        Ok(Self {
            tableau,
            adaptive,
            atol,
            groups,
            c: of(tableau.c),
            a: tableau.a.iter().map(|row| of(row)).collect(),
            b: of(tableau.b),
            e: tableau.e.map(of).unwrap_or_default(),
            k,
            y: template.zeros_like(),
            y_prev: template.zeros_like(),
            ytmp: template.zeros_like(),
            err: template.zeros_like(),
            coeffs: [zero; MAX_STAGES],
            dense_f64: [0.0; MAX_STAGES],
            phase: Phase::Idle,
            k0_valid: false,
            check_start: true,
            fsal_pending: false,
            t: zero,
            t_prev: zero,
            t_end: zero,
            direction: V::Scalar::one(),
            h_next: zero,
            h_last: zero,
            last_ratio: zero,
            prev_accepted_ratio: V::Scalar::of(1e-4),
            stats: Stats {
                stored_floats: (s + 4) * n + atol_floats,
                ..Stats::default()
            },
            options,
        })
    }

    /// Starts (or restarts) a solve from `(t0, y0)` towards `t1` (either direction). Evaluates
    /// `f(t0, y0)` and, for adaptive solves without `first_step`, picks the initial step (one
    /// more evaluation). Counters are reset.
    pub fn init<R: Rhs<V>>(
        &mut self,
        rhs: &mut R,
        params: &V,
        t0: V::Scalar,
        t1: V::Scalar,
        y0: &V,
    ) -> Result<()> {
        if !t0.is_finite() || !t1.is_finite() || t0 == t1 {
            return Err(RkError::BadInterval {
                t0: t0.as_f64(),
                t1: t1.as_f64(),
            });
        }
        if y0.len() != self.y.len() {
            return Err(RkError::LengthMismatch {
                what: "initial state",
                expected: self.y.len(),
                got: y0.len(),
            });
        }
        // From here on the state is overwritten: until init succeeds there is no solve to step.
        self.phase = Phase::Idle;
        // Without a given first step, the initial step selection checks y0 and f(t0, y0) for
        // non-finite entries together with its norms (one device round trip instead of three).
        let select_step = self.options.first_step.is_none();
        let check_start = !select_step && self.check_start;
        if check_start && !y0.all_finite() {
            return Err(non_finite_start(true, t0));
        }
        self.stats = Stats {
            stored_floats: self.stats.stored_floats,
            ..Stats::default()
        };
        self.t = t0;
        self.t_prev = t0;
        self.t_end = t1;
        self.direction = if t1 > t0 {
            V::Scalar::one()
        } else {
            -V::Scalar::one()
        };
        self.y.copy_from(y0);
        self.y_prev.copy_from(y0);
        self.eval(rhs, t0, params, Stage::K0);
        if check_start && !self.k[0].all_finite() {
            return Err(non_finite_start(false, t0));
        }
        self.k0_valid = true;
        self.fsal_pending = false;
        self.prev_accepted_ratio = V::Scalar::of(1e-4);
        self.h_last = V::Scalar::zero();
        let span = (t1 - t0).abs();
        let h = match self.options.first_step {
            Some(h) => h,
            None => self.initial_step(rhs, params, span)?,
        };
        self.h_next = self.clamp_step(h);
        self.phase = Phase::Running;
        Ok(())
    }

    fn initial_step<R: Rhs<V>>(
        &mut self,
        rhs: &mut R,
        params: &V,
        span: V::Scalar,
    ) -> Result<V::Scalar> {
        let of = V::Scalar::of;
        let rtol = self.options.rtol;
        let checked = self.y.error_norm_pair_checked(
            &self.k[0],
            &self.y,
            &self.y,
            rtol,
            &self.atol,
            &self.groups,
        );
        if !checked.finite.0 || !checked.finite.1 {
            return Err(non_finite_start(!checked.finite.0, self.t));
        }
        let (d0, d1) = checked.norms;
        let mut h0 = if d0 < of(1e-5) || d1 < of(1e-5) {
            of(1e-6)
        } else {
            of(0.01) * d0 / d1
        };
        h0 = h0.min(span);
        // Euler step y0 + h0 f0 into ytmp, f1 into err (free at this point).
        self.ytmp.copy_from(&self.y);
        self.ytmp
            .axpby(self.direction * h0, &self.k[0], V::Scalar::one());
        let t1 = self.t + self.direction * h0;
        self.eval(rhs, t1, params, Stage::Err);
        self.err
            .axpby(-V::Scalar::one(), &self.k[0], V::Scalar::one());
        let d2 = self
            .err
            .error_norm(&self.y, &self.y, rtol, &self.atol, &self.groups)
            / h0;
        if !d2.is_finite() {
            return Err(RkError::NonFinite {
                what: "derivative during initial step selection",
                t: t1.as_f64(),
                h: h0.as_f64(),
            });
        }
        let p = V::Scalar::of(f64::from(self.tableau.order));
        let h1 = if d1 <= of(1e-15) && d2 <= of(1e-15) {
            of(1e-6).max(h0 * of(1e-3))
        } else {
            (of(0.01) / d1.max(d2)).powf(V::Scalar::one() / (p + V::Scalar::one()))
        };
        Ok((of(100.0) * h0).min(h1))
    }

    fn clamp_step(&self, h: V::Scalar) -> V::Scalar {
        h.max(self.options.min_step).min(self.options.max_step)
    }

    /// Takes one accepted step (retrying rejected attempts internally) and returns the new time.
    /// The step is clipped to end exactly at `t1`.
    pub fn step<R: Rhs<V>>(&mut self, rhs: &mut R, params: &V) -> Result<V::Scalar> {
        match self.phase {
            Phase::Idle => return Err(RkError::NotRunning("call init before step")),
            Phase::Finished => {
                return Err(RkError::NotRunning("the end of the interval was reached"));
            }
            Phase::Running => {}
        }
        let one = V::Scalar::one();
        let s = self.tableau.stages();
        if self.fsal_pending {
            self.k.swap(0, s - 1);
            self.fsal_pending = false;
            self.k0_valid = true;
        }
        if !self.k0_valid {
            let t = self.t;
            self.eval(rhs, t, params, Stage::K0);
            self.k0_valid = true;
        }
        loop {
            let attempts = self.stats.accepted + self.stats.rejected;
            if attempts >= self.options.max_steps {
                return Err(RkError::MaxStepsExceeded {
                    max_steps: self.options.max_steps,
                    t: self.t.as_f64(),
                    h: (self.direction * self.h_next).as_f64(),
                });
            }
            // Clip to the end of the interval; a step that would leave a remainder below a
            // relative 1e-8 of itself (rounding in accumulated times) is stretched to the end
            // instead, so that n fixed steps of (t1 − t0)/n take exactly n steps.
            let remaining = (self.t_end - self.t) * self.direction;
            let (mag, t_new) =
                if self.h_next * (V::Scalar::one() + V::Scalar::of(1e-8)) >= remaining {
                    (remaining, self.t_end)
                } else {
                    (self.h_next, self.t + self.direction * self.h_next)
                };
            let h = self.direction * mag;
            if t_new == self.t || mag <= V::Scalar::zero() {
                return Err(RkError::StepSizeUnderflow {
                    t: self.t.as_f64(),
                    h: h.as_f64(),
                    error_ratio: self.last_ratio.as_f64(),
                });
            }
            self.attempt(rhs, params, h, t_new);
            if !self.adaptive {
                if !self.ytmp.all_finite() {
                    return Err(self.non_finite(h));
                }
                self.accept(h, t_new);
                return Ok(self.t);
            }
            // err = h Σ e_i k_i
            for (c, &e) in self.coeffs.iter_mut().zip(&self.e) {
                *c = h * e;
            }
            self.err.linear_combination(&self.coeffs[..s], &self.k);
            let ratio = self.err.error_norm(
                &self.y,
                &self.ytmp,
                self.options.rtol,
                &self.atol,
                &self.groups,
            );
            if !ratio.is_finite() {
                return Err(self.non_finite(h));
            }
            self.last_ratio = ratio;
            let accepted = ratio <= one;
            let factor = self.step_factor(ratio, accepted);
            if accepted {
                self.accept(h, t_new);
                self.prev_accepted_ratio = ratio.max(V::Scalar::of(1e-4));
                self.h_next = self.clamp_step(mag * factor);
                return Ok(self.t);
            }
            self.stats.rejected += 1;
            if mag <= self.options.min_step {
                return Err(RkError::StepSizeUnderflow {
                    t: self.t.as_f64(),
                    h: h.as_f64(),
                    error_ratio: ratio.as_f64(),
                });
            }
            self.h_next = self.clamp_step(mag * factor);
        }
    }

    /// Evaluates the stages of a step of size `h` ending at `t_new`; the new state goes to `ytmp`.
    fn attempt<R: Rhs<V>>(&mut self, rhs: &mut R, params: &V, h: V::Scalar, t_new: V::Scalar) {
        let s = self.tableau.stages();
        let one = V::Scalar::one();
        for i in 1..s {
            if self.tableau.fsal && i == s - 1 {
                break;
            }
            for (c, &a) in self.coeffs.iter_mut().zip(&self.a[i]) {
                *c = h * a;
            }
            self.ytmp
                .offset_linear_combination(&self.y, &self.coeffs[..i], &self.k);
            let ti = if self.c[i] == one {
                t_new
            } else {
                self.t + self.c[i] * h
            };
            self.eval(rhs, ti, params, Stage::K(i));
        }
        for (c, &b) in self.coeffs.iter_mut().zip(&self.b) {
            *c = h * b;
        }
        // An FSAL tableau's last weight is zero (its last stage is f(t + h, y1), evaluated
        // next): leaving it out also keeps a stale stage of a failed attempt (NaN · 0 = NaN)
        // out of the new state.
        let terms = s - usize::from(self.tableau.fsal);
        self.ytmp
            .offset_linear_combination(&self.y, &self.coeffs[..terms], &self.k);
        if self.tableau.fsal {
            self.eval(rhs, t_new, params, Stage::K(s - 1));
        }
    }

    fn accept(&mut self, h: V::Scalar, t_new: V::Scalar) {
        std::mem::swap(&mut self.y_prev, &mut self.y);
        std::mem::swap(&mut self.y, &mut self.ytmp);
        self.t_prev = self.t;
        self.t = t_new;
        self.h_last = h;
        self.stats.accepted += 1;
        if self.tableau.fsal {
            self.fsal_pending = true;
        } else {
            self.k0_valid = false;
        }
        if self.t == self.t_end {
            self.phase = Phase::Finished;
        }
    }

    fn step_factor(&self, ratio: V::Scalar, accepted: bool) -> V::Scalar {
        let of = V::Scalar::of;
        let one = V::Scalar::one();
        let p = of(f64::from(self.tableau.order));
        match self.options.controller {
            Controller::Integral {
                safety,
                ifactor,
                dfactor,
            } => {
                if ratio == V::Scalar::zero() {
                    return of(ifactor);
                }
                let d = if ratio < one { one } else { of(dfactor) };
                of(ifactor).min((of(safety) * ratio.powf(-one / p)).max(d))
            }
            Controller::Pi {
                safety,
                ifactor,
                dfactor,
                beta,
            } => {
                let r = ratio.max(of(1e-10));
                if accepted {
                    let alpha = one / p - of(0.75 * beta);
                    let f = of(safety) * r.powf(-alpha) * self.prev_accepted_ratio.powf(of(beta));
                    f.max(of(dfactor)).min(of(ifactor))
                } else {
                    (of(safety) * r.powf(-one / p)).max(of(dfactor)).min(one)
                }
            }
        }
    }

    fn non_finite(&self, h: V::Scalar) -> RkError {
        let what = if !self.ytmp.all_finite() {
            "state"
        } else if self.k.iter().any(|k| !k.all_finite()) {
            "derivative"
        } else {
            "error estimate"
        };
        RkError::NonFinite {
            what,
            t: self.t.as_f64(),
            h: h.as_f64(),
        }
    }

    fn eval<R: Rhs<V>>(&mut self, rhs: &mut R, t: V::Scalar, params: &V, stage: Stage) {
        self.stats.nfe += 1;
        match stage {
            Stage::K0 => rhs.eval(t, &self.y, params, &mut self.k[0]),
            Stage::K(i) => rhs.eval(t, &self.ytmp, params, &mut self.k[i]),
            Stage::Err => rhs.eval(t, &self.ytmp, params, &mut self.err),
        }
    }

    /// Dense output at `t` inside the last accepted step `[t_prev, t_now]` (either order),
    /// written into `out`. No right-hand-side evaluations. At the step's ends the stored states
    /// are returned exactly.
    pub fn interpolate(&mut self, t: V::Scalar, out: &mut V) -> Result<()> {
        if self.stats.accepted == 0 {
            return Err(RkError::NotRunning("no step has been taken yet"));
        }
        if out.len() != self.y.len() {
            return Err(RkError::LengthMismatch {
                what: "dense-output vector",
                expected: self.y.len(),
                got: out.len(),
            });
        }
        let (lo, hi) = if self.t_prev < self.t {
            (self.t_prev, self.t)
        } else {
            (self.t, self.t_prev)
        };
        if !t.is_finite() || t < lo || t > hi {
            return Err(RkError::OutsideInterval {
                t: t.as_f64(),
                from: self.t_prev.as_f64(),
                to: self.t.as_f64(),
            });
        }
        if t == self.t {
            out.copy_from(&self.y);
            return Ok(());
        }
        if t == self.t_prev {
            out.copy_from(&self.y_prev);
            return Ok(());
        }
        let theta = ((t - self.t_prev) / self.h_last).as_f64();
        let s = self.tableau.stages();
        (self.tableau.dense)(theta, &mut self.dense_f64[..s]);
        for (c, &d) in self.coeffs.iter_mut().zip(&self.dense_f64[..s]) {
            *c = self.h_last * V::Scalar::of(d);
        }
        // k[s−1] holds f(t_now, y_now) until the next step swaps it in (FSAL).
        out.offset_linear_combination(&self.y_prev, &self.coeffs[..s], &self.k);
        Ok(())
    }

    /// Current time (end of the last accepted step).
    pub fn t(&self) -> V::Scalar {
        self.t
    }

    /// The last accepted step as `(t_prev, t_now)`.
    pub fn last_step(&self) -> (V::Scalar, V::Scalar) {
        (self.t_prev, self.t)
    }

    /// Signed size `t_now − t_prev` of the last accepted step, as used by its stages and its
    /// dense output.
    pub fn last_step_size(&self) -> V::Scalar {
        self.h_last
    }

    /// Magnitude of the step the controller proposes next (after the last accepted step: its
    /// error-based growth or shrink, before clipping to the interval). A later solve of a related
    /// problem can start from it ([`Solver::set_first_step`]) instead of picking a step afresh.
    pub fn proposed_step(&self) -> V::Scalar {
        self.h_next.abs()
    }

    /// Sets (or, with `None`, clears) the first step of the next [`Solver::init`]: `Some(h)`
    /// skips the initial step selection and its evaluation. `h` must be finite and > 0.
    pub fn set_first_step(&mut self, h: Option<V::Scalar>) -> Result<()> {
        if let Some(h) = h {
            crate::options::check_first_step(h)?;
        }
        self.options.first_step = h;
        Ok(())
    }

    /// Whether [`Solver::init`] with a given first step ([`Solver::set_first_step`]) checks `y0`
    /// and `f(t0, y0)` for non-finite entries before the first step (default `true`; two
    /// readbacks on a GPU). A caller whose start is finite by construction — a continuation
    /// from this solver's own state, as the adjoint drivers' restarts at output times — may
    /// turn it off: a non-finite start then still stops the solve, with
    /// [`RkError::NonFinite`] from the first step's error norm (or, for a fixed-step method,
    /// its new state), one step later. The initial step selection always checks both in the
    /// readback of its norms.
    pub fn set_start_checked(&mut self, checked: bool) {
        self.check_start = checked;
    }

    /// State at [`Solver::t`].
    pub fn state(&self) -> &V {
        &self.y
    }

    /// The local error estimate `h Σ e_i k_i` of the last attempted step (adaptive solves).
    pub fn local_error(&self) -> &V {
        &self.err
    }

    /// Proposed magnitude of the next step.
    pub fn next_step_size(&self) -> V::Scalar {
        self.h_next
    }

    /// Whether the end of the interval has been reached.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The tableau in use.
    pub fn tableau(&self) -> &'static Tableau {
        self.tableau
    }
}

#[derive(Clone, Copy)]
enum Stage {
    K0,
    K(usize),
    Err,
}

/// The error for a non-finite initial state (`state`) or derivative `f(t0, y0)` (otherwise).
fn non_finite_start(state: bool, t0: impl Scalar) -> RkError {
    RkError::NonFinite {
        what: if state {
            "initial state"
        } else {
            "derivative f(t0, y0)"
        },
        t: t0.as_f64(),
        h: 0.0,
    }
}
