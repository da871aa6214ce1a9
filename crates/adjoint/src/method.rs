//! The choice of gradient method, solver settings, and the info record a gradient returns.

use serde::{Deserialize, Serialize};

/// Which components the backward solve's error norm controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum BackwardNorm {
    /// Every component of the backward state (torchdiffeq's mixed norm: max over the state's
    /// groups, the adjoint's groups and each parameter group).
    #[default]
    Full,
    /// The state and the adjoint only; the parameter integral `g` is a quadrature and is not
    /// error-controlled (Kidger, Chen & Lyons 2021).
    Seminorm,
}

/// How ANODE places its checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Checkpoints {
    /// A checkpoint at `t0` and after every `k`-th accepted step.
    EveryKSteps(usize),
    /// At most `c ≥ 2` checkpoints, evenly spaced in steps: the forward pass starts with one per
    /// step and, whenever `c` are held, drops every other one and doubles the spacing.
    Count(usize),
}

/// Where IRDM's Chebyshev grid comes from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum IrdmGrid {
    /// A grid of `N + 1` nodes of the given kind, with matched weights.
    Fixed {
        /// Node kind.
        #[serde(serialize_with = "kind_name")]
        kind: cheb::Kind,
        /// Degree `N ≥ 1`.
        n: usize,
    },
    /// Lobatto nodes with first-kind weights: the pairing in the IRDM authors' code, which still
    /// interpolates the nodes but converges only algebraically. Offered to measure that loss
    /// (the gradient-error benchmark), not for training.
    Mismatched {
        /// Degree `N ≥ 1`.
        n: usize,
    },
    /// Lobatto nodes (`N + 1`) with `z(t)` interpolated piecewise-linearly between neighbouring
    /// nodes instead of by the barycentric formula: second-order accurate (error
    /// `≤ h²/8 · max|z''|` for node spacing `h`). The paper's Figure 6b ablation; offered to
    /// measure what barycentric interpolation buys, not for training.
    PiecewiseLinear {
        /// Degree `N ≥ 1`.
        n: usize,
    },
    /// The smallest nested Lobatto grid whose Chebyshev coefficient tail is at most
    /// `abs_tol + rel_tol · max|c_m|` (per component, maximum over components), chosen per
    /// segment ([`IrdmOptions::segments`]).
    ///
    /// Piecewise (the default): each segment's node values are read from the dense output of its
    /// steps, held until the segment closes, at degrees 4, 8, … up to `n_max`; the first degree
    /// `L` whose coefficients pass the rule by degree `L/2` is accepted and only its nested
    /// half-grid is kept. A segment that no degree up to `n_max` resolves is split in two (at a
    /// step boundary); a single step that still fails is under-resolved
    /// ([`IrdmOptions::on_under_resolved`]). With [`Segments::Single`]: one nested grid of degree
    /// `n_max` over the whole solve, stored, and its smallest passing sub-grid kept.
    Auto {
        /// Largest degree per segment (a power of two).
        n_max: usize,
        /// Relative tolerance of the chop rule.
        rel_tol: f64,
        /// Absolute tolerance of the chop rule.
        abs_tol: f64,
    },
}

/// Largest `n_max` an automatic grid accepts ([`crate::AdjointError::BadSetting`] above it).
/// Each candidate degree `L` costs `O(L² · dim)` (its coefficients) and its transform `O(L²)`
/// memory, once per forward pass; a segment that needs more is split into shorter segments.
pub const MAX_AUTO_DEGREE: usize = 1024;

/// Largest per-segment degree of [`IrdmGrid::for_tolerances`].
pub const DEFAULT_AUTO_N_MAX: usize = 64;

impl IrdmGrid {
    /// The automatic grid for a forward solve at `(rtol, atol)`: per-segment cap
    /// [`DEFAULT_AUTO_N_MAX`], chop tolerances thirty times the solver's. The node values carry
    /// the dense output's own error (4th order for dopri5, so above the step's tolerance, with
    /// kinks at step boundaries); a tail rule at the tolerance itself chases that noise with
    /// high degrees, while thirty times it keeps the gradient at Direct's accuracy (measured on
    /// the long-horizon spiral test: within 2.5× Direct's error at `tol = 1e-6` and `1e-9`,
    /// the same as rules at 10× and 100×; on the smooth MLP test below Direct's, with 17
    /// nodes where 10× keeps 50).
    pub fn for_tolerances(rtol: f64, atol: f64) -> Self {
        IrdmGrid::Auto {
            n_max: DEFAULT_AUTO_N_MAX,
            rel_tol: 30.0 * rtol,
            abs_tol: 30.0 * atol,
        }
    }
}

fn kind_name<S: serde::Serializer>(kind: &cheb::Kind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.name())
}

/// A gradient method: chosen by one value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Method {
    /// Discretize-then-optimize: the exact gradient of the discrete solution, by reverse
    /// accumulation through every stage of every accepted step (step sizes held fixed).
    Direct,
    /// The reverse dynamic method (torchdiffeq's `odeint_adjoint`): solve `[z, a, g]` backward
    /// from `z(t1)`.
    Rdm {
        /// Error norm of the backward solve.
        norm: BackwardNorm,
    },
    /// Checkpointing (ANODE): checkpoints on the forward pass, recomputation of each interval's
    /// steps and their exact discrete adjoint.
    Anode {
        /// Checkpoint placement.
        checkpoints: Checkpoints,
    },
    /// The interpolated reverse dynamic method: `z` at Chebyshev nodes from the forward dense
    /// output; backward solve of `[a, g]` only, with `z(t)` interpolated.
    Irdm {
        /// The grid.
        grid: IrdmGrid,
        /// Error norm of the backward solve.
        norm: BackwardNorm,
    },
}

impl Method {
    /// Short name for reports (`"direct"`, `"rdm"`, `"anode"`, `"irdm"`).
    pub fn name(&self) -> &'static str {
        match self {
            Method::Direct => "direct",
            Method::Rdm { .. } => "rdm",
            Method::Anode { .. } => "anode",
            Method::Irdm { .. } => "irdm",
        }
    }

    /// IRDM with the automatic piecewise grid for a solve at `(rtol, atol)`:
    /// [`IrdmGrid::for_tolerances`].
    pub fn irdm_auto(rtol: f64, atol: f64, norm: BackwardNorm) -> Self {
        Method::Irdm {
            grid: IrdmGrid::for_tolerances(rtol, atol),
            norm,
        }
    }

    /// IRDM with `n + 1` Lobatto nodes (per segment) and the given norm.
    pub fn irdm_lobatto(n: usize, norm: BackwardNorm) -> Self {
        Method::Irdm {
            grid: IrdmGrid::Fixed {
                kind: cheb::Kind::Lobatto,
                n,
            },
            norm,
        }
    }
}

/// Solver settings of the forward and backward passes.
#[derive(Debug, Clone, PartialEq)]
pub struct Config<T> {
    /// Forward tableau.
    pub tableau: rk::Method,
    /// Forward options (tolerances, steps, norm of the forward solve).
    pub forward: rk::Options<T>,
    /// Backward tableau (default: the forward one).
    pub backward_tableau: Option<rk::Method>,
    /// Backward tolerances (default: the forward `rtol` and scalar `atol`; per-component forward
    /// tolerances fall back to their largest value).
    pub backward: Option<(T, T)>,
    /// How IRDM captures `z(t)`: segments, memory cap, what an under-resolved grid does.
    pub irdm: IrdmOptions,
    /// RDM's check of the `z` it re-solves backward against the stored forward outputs.
    pub rdm_check: RdmCheck,
}

/// RDM re-solves `z` backward from `z(t1)`; in reverse time a contracting system expands, so
/// that solve can drift far from the forward solution and take the gradient with it. At every
/// output time before `t1`, and at `t0`, the backward pass compares the reconstructed `z̃` with
/// the stored forward `z`, relative to the state's size,
/// `d = max_i |z̃_i − z_i| / (max_i |z_i| + atol)`, reports the largest
/// ([`Info::rdm_discrepancy`]), and refuses a gradient whose discrepancy exceeds the limit.
///
/// The limit is relative, not in tolerance units: on a contracting system the reverse solve
/// amplifies its own local errors by `exp(λ T)`, so a healthy discrepancy can be 10⁶ tolerances
/// while the gradient is accurate (measured in `tests/contracting.rs`: the gradient's relative
/// error stays within about 0.1× the discrepancy, from 10⁻⁷ at tol 1e-12 to 10⁶ at tol 1e-3).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RdmCheck {
    /// Largest discrepancy accepted (default 1e-2: the reconstructed `z` within 1 % of the
    /// state's size); `f64::INFINITY` turns the check off (no discrepancy is computed).
    pub max_discrepancy: f64,
    /// What exceeding it does: [`OnUnderResolved::Error`] (default) returns
    /// [`crate::AdjointError::Reconstruction`]; [`OnUnderResolved::Flag`] returns the gradient with
    /// [`Info::rdm_flagged`] set.
    pub on_exceed: OnUnderResolved,
}

impl Default for RdmCheck {
    fn default() -> Self {
        Self {
            max_discrepancy: 1e-2,
            on_exceed: OnUnderResolved::Error,
        }
    }
}

/// How IRDM cuts `[t0, t1]` into segments, each with its own Chebyshev grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Segments {
    /// [`Segments::EveryKSteps`] with `k` from [`Segments::steps_per_segment`]: `max(1, N/2)`
    /// for a fixed grid of degree `N`, [`DEFAULT_STEPS_PER_SEGMENT`] for an automatic one.
    #[default]
    Default,
    /// One grid over the whole solve: the paper's construction. Its nodes are known before the
    /// solve and read from the dense output as the steps pass them (nothing else is held).
    Single,
    /// A segment per `k ≥ 1` accepted forward steps (the last may hold fewer). While a segment
    /// is open, the dense output of its steps is held, sampled at `q + 1` points per step (`q`
    /// the dense output's polynomial degree, exact), so that its grid can be chosen, checked
    /// and refined before those samples are dropped; at most `1 + k·q` state rows at a time
    /// ([`GridInfo::window_floats`]).
    EveryKSteps(usize),
}

/// Accepted forward steps per segment of an automatic grid by default
/// ([`Segments::Default`]).
pub const DEFAULT_STEPS_PER_SEGMENT: usize = 32;

impl Segments {
    /// Steps per segment for a grid of degree `n` (`None`: one grid). [`Segments::Default`]:
    /// `max(1, n/2)` steps for a fixed grid — a degree-`q ≤ 4` dense output per step is then
    /// covered by at least two degrees per step, which on the long-horizon spiral test keeps the
    /// interpolation below the solver's error — and [`DEFAULT_STEPS_PER_SEGMENT`] for an
    /// automatic one, which refines and splits by itself.
    pub fn steps_per_segment(self, fixed_degree: Option<usize>) -> Option<usize> {
        match self {
            Segments::Single => None,
            Segments::EveryKSteps(k) => Some(k),
            Segments::Default => Some(match fixed_degree {
                Some(n) => (n / 2).max(1),
                None => DEFAULT_STEPS_PER_SEGMENT,
            }),
        }
    }
}

/// What IRDM does when its grid cannot meet the requested accuracy within the caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OnUnderResolved {
    /// [`crate::AdjointError::UnderResolved`], naming the segment, the estimate and the cap:
    /// from the forward pass for an automatic grid (chosen there) or `max_nodes`, from the
    /// backward pass for a fixed grid missing `fixed_tolerance` (its check is read with the
    /// backward pass's first norms; the forward outputs are right either way, and no gradient
    /// is returned from the grid).
    #[default]
    Error,
    /// The result is returned with [`GridInfo::under_resolved`] set (the user opted in).
    Flag,
}

/// IRDM's capture settings ([`Config::irdm`]). The accuracy an automatic grid must reach is
/// its chop rule ([`IrdmGrid::Auto`]); a fixed grid's degree is the user's choice, so its
/// estimate is reported ([`GridInfo::error_estimate`]) and it is checked only against
/// `fixed_tolerance` when that is set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IrdmOptions {
    /// Segments (default: [`Segments::Default`]). The ablation grids
    /// ([`IrdmGrid::Mismatched`], [`IrdmGrid::PiecewiseLinear`]) always use a single grid.
    pub segments: Segments,
    /// Most nodes the grid may store over all segments (`None`: no cap). Exceeding it is
    /// under-resolution.
    pub max_nodes: Option<usize>,
    /// What an under-resolved grid does.
    pub on_under_resolved: OnUnderResolved,
    /// `(rel_tol, abs_tol)` that fixed grids must meet (`estimate ≤ 2 (abs_tol + rel_tol ·
    /// scale)`, `scale` the segment's largest Chebyshev coefficient, as the automatic grid's
    /// chop rule); `None`: the estimate is reported only.
    pub fixed_tolerance: Option<(f64, f64)>,
}

impl Default for IrdmOptions {
    fn default() -> Self {
        Self {
            segments: Segments::default(),
            max_nodes: None,
            on_under_resolved: OnUnderResolved::Error,
            fixed_tolerance: None,
        }
    }
}

impl<T: rk::Scalar> Config<T> {
    /// dopri5 with the same `rtol`, `atol` both ways.
    pub fn new(rtol: T, atol: T) -> Self {
        Self {
            tableau: rk::Method::Dopri5,
            forward: rk::Options::new(rtol, atol),
            backward_tableau: None,
            backward: None,
            irdm: IrdmOptions::default(),
            rdm_check: RdmCheck::default(),
        }
    }
}

/// Where the Chebyshev grid of an IRDM gradient came from and how good it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GridInfo {
    /// `"lobatto"`, `"first"`, `"mismatched"` or `"linear"` (Lobatto nodes, piecewise-linear
    /// interpolation).
    pub kind: &'static str,
    /// Largest degree used in the backward pass over the segments (`N`; `N + 1` nodes).
    pub n: usize,
    /// Largest degree whose node values the forward pass held at once (`n_max` for a single
    /// automatic grid; twice the kept degree, at most, for a piecewise automatic one; else `n`).
    pub n_stored: usize,
    /// A-posteriori interpolation-error estimate, in the units of `z`: the largest over the
    /// segments ([`SegmentInfo::error_estimate`]). Always present.
    pub error_estimate: Option<f64>,
    /// Nodes stored for the backward pass, over all segments.
    pub nodes: usize,
    /// Peak floats of the forward capture's window of dense-output samples
    /// ([`Segments::EveryKSteps`]); dropped before the backward pass, zero for a single grid.
    pub window_floats: usize,
    /// Whether some segment missed the requested accuracy (only with
    /// [`OnUnderResolved::Flag`]; otherwise that is an error).
    pub under_resolved: bool,
    /// The segments, in forward-time order.
    pub segments: Vec<SegmentInfo>,
}

/// One segment of IRDM's piecewise grid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentInfo {
    /// Start of the segment (forward time).
    pub t_start: f64,
    /// End of the segment.
    pub t_end: f64,
    /// Accepted forward steps it covers (`0` for a single grid, which is not cut at steps).
    pub steps: usize,
    /// Degree of its grid.
    pub n: usize,
    /// Interpolation-error estimate (max over components): `2 Σ_{m>N} |c_m|` from the
    /// coefficients of the finer nested grid where one was formed (automatic grids), else
    /// `2 (|c_{N−1}| + |c_N|)` from the grid's own coefficients; for the ablation grids the
    /// largest difference from the matched Chebyshev interpolant at the midpoints between
    /// nodes, plus that estimate.
    pub error_estimate: f64,
    /// The chop threshold `abs_tol + rel_tol · max|c_m|` its coefficient tail had to meet, if
    /// any: the segment is resolved when `error_estimate ≤ 2 · tolerance`.
    pub tolerance: Option<f64>,
}

/// Counts and memory of one gradient computation. Serializable.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Info {
    /// Gradient method name.
    pub method: &'static str,
    /// Right-hand-side evaluations of the forward pass.
    pub nfe_forward: usize,
    /// Right-hand-side evaluations of the backward pass (RDM's reverse `z`, ANODE's
    /// recomputation; IRDM and Direct need none).
    pub nfe_backward: usize,
    /// Vector-Jacobian products of the backward pass.
    pub vjp_backward: usize,
    /// Accepted forward steps.
    pub accepted_forward: usize,
    /// Rejected forward steps.
    pub rejected_forward: usize,
    /// Accepted backward steps (continuous methods) or reversed steps (discrete ones).
    pub accepted_backward: usize,
    /// Rejected backward steps.
    pub rejected_backward: usize,
    /// Peak number of floats the method holds for the backward pass (tape, checkpoints, node
    /// values, stored outputs), not counting the solver's own work vectors.
    pub stored_floats: usize,
    /// IRDM's grid.
    pub grid: Option<GridInfo>,
    /// RDM: the largest discrepancy between the reverse-time `z` and the forward outputs,
    /// relative to the state's size, over the output times before `t1` and `z0`
    /// ([`RdmCheck`]); `None` for the other methods or with the check off.
    pub rdm_discrepancy: Option<f64>,
    /// RDM: the discrepancy exceeded [`RdmCheck::max_discrepancy`] and the caller opted in to a
    /// flagged result.
    pub rdm_flagged: bool,
}
