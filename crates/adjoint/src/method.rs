//! The choice of gradient method, solver settings, and the info record a gradient returns.

use serde::Serialize;

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
    /// Store a nested Lobatto grid of degree `n_max` (a power of two), then keep the smallest
    /// sub-grid whose Chebyshev coefficient tail is at most `abs_tol + rel_tol · max|c_m|`
    /// (per component, maximum over components).
    Auto {
        /// Degree of the stored grid (power of two).
        n_max: usize,
        /// Relative tolerance of the chop rule.
        rel_tol: f64,
        /// Absolute tolerance of the chop rule.
        abs_tol: f64,
    },
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

    /// IRDM with `n + 1` Lobatto nodes and the given norm.
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
}

impl<T: rk::Scalar> Config<T> {
    /// dopri5 with the same `rtol`, `atol` both ways.
    pub fn new(rtol: T, atol: T) -> Self {
        Self {
            tableau: rk::Method::Dopri5,
            forward: rk::Options::new(rtol, atol),
            backward_tableau: None,
            backward: None,
        }
    }
}

/// Where the Chebyshev grid of an IRDM gradient came from and how good it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GridInfo {
    /// `"lobatto"`, `"first"`, `"mismatched"` or `"linear"` (Lobatto nodes, piecewise-linear
    /// interpolation).
    pub kind: &'static str,
    /// Degree used in the backward pass (`N`; `N + 1` nodes).
    pub n: usize,
    /// Degree stored in the forward pass (`n_max` in auto mode, else `n`).
    pub n_stored: usize,
    /// A-posteriori interpolation-error estimate from the Chebyshev tail (max over components);
    /// `None` for fixed first-kind grids of degree < 2.
    pub error_estimate: Option<f64>,
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
}
