//! IRDM's stored trajectory for the backward pass: segments `[τ_0, τ_1], [τ_1, τ_2], …`
//! covering `[t0, t1]` in forward-time order, each with its own Chebyshev grid and node values
//! (rows of one stacked backend vector). At time `t`,
//!
//! ```text
//!     z(t) = Σ_j ℓ_j^{(s)}(t) · z(τ_j^{(s)})      on the segment s that holds t,
//! ```
//!
//! with `ℓ^{(s)}` the barycentric coefficients of segment `s`'s grid (or, for the ablation,
//! piecewise-linear weights between neighbouring nodes). At a shared end point either segment
//! may be used: both interpolate the same stored state there. A single grid (the paper's) is one
//! segment.

use crate::vjp::Real;
use cheb::Grid;

/// How IRDM reads `z(t)` from a segment's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeRule {
    /// The barycentric formula of the grid.
    Barycentric,
    /// Linear between neighbouring nodes.
    Linear,
}

/// The weights of piecewise-linear interpolation over the grid's nodes at `t`: two neighbouring
/// nodes `τ_i, τ_{i+1}` around `t` get `1 − w` and `w`, `w = (t − τ_i)/(τ_{i+1} − τ_i)`; all
/// others zero. Nodes may run in either direction.
pub(crate) fn linear_coefficients<T: Real>(
    grid: &Grid<T>,
    t: T,
    out: &mut [T],
) -> std::result::Result<(), cheb::ChebError> {
    let t = grid.check_point(t)?;
    let nodes = grid.nodes();
    let last = nodes.len() - 1;
    let ascending = nodes[last] >= nodes[0];
    let i = nodes[1..]
        .partition_point(|&x| if ascending { x < t } else { x > t })
        .min(last - 1);
    let (x0, x1) = (nodes[i], nodes[i + 1]);
    let w = if x1 == x0 {
        T::zero()
    } else {
        (t - x0) / (x1 - x0)
    };
    out.fill(T::zero());
    out[i] = T::one() - w;
    out[i + 1] = w;
    Ok(())
}

/// The interpolation coefficients of `rule` on `grid` at `t` (`out.len() == grid.len()`).
pub(crate) fn rule_coefficients<T: Real>(
    rule: NodeRule,
    grid: &Grid<T>,
    t: T,
    out: &mut [T],
) -> std::result::Result<(), cheb::ChebError> {
    match rule {
        NodeRule::Barycentric => grid.coefficients(t, out),
        NodeRule::Linear => linear_coefficients(grid, t, out),
    }
}

/// One segment: its grid (interval and nodes) and the node states stacked row by row.
pub(crate) struct Segment<T: Real, V> {
    /// The grid, oriented in forward time.
    pub grid: Grid<T>,
    /// `(N + 1) × state_len` node states, one row per node.
    pub values: V,
}

/// The segments of one forward pass and the rule that reads them.
pub(crate) struct PiecewiseNodes<T: Real, V> {
    /// Interpolation rule.
    pub rule: NodeRule,
    /// Segments in forward-time order, each ending where the next starts.
    pub segments: Vec<Segment<T, V>>,
}

impl<T: Real, V> PiecewiseNodes<T, V> {
    /// Most nodes of any segment (the size of a coefficient buffer that fits every segment).
    pub fn max_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| s.grid.len())
            .max()
            .unwrap_or(0)
    }

    /// The index of a segment holding `t`: `hint` when it does (the backward pass moves
    /// through the segments in order, so the last answer is usually right), else found by
    /// bisection on the segment ends. A `t` outside `[t0, t1]` gets the nearest end segment,
    /// whose grid then reports it.
    pub fn locate(&self, t: T, hint: usize) -> usize {
        let holds = |s: &Segment<T, V>| {
            let (a, b) = s.grid.interval();
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            lo <= t && t <= hi
        };
        if self.segments.get(hint).is_some_and(holds) {
            return hint;
        }
        let Some(first) = self.segments.first() else {
            return 0;
        };
        let (a, b) = first.grid.interval();
        let ascending = a <= b;
        self.segments
            .partition_point(|s| {
                let end = s.grid.interval().1;
                if ascending { end < t } else { end > t }
            })
            .min(self.segments.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cheb::Kind;

    fn pieces(bounds: &[f64]) -> PiecewiseNodes<f64, Vec<f64>> {
        PiecewiseNodes {
            rule: NodeRule::Barycentric,
            segments: bounds
                .windows(2)
                .map(|w| Segment {
                    grid: Grid::new(Kind::Lobatto, 4, w[0], w[1]).unwrap(),
                    values: vec![0.0; 5],
                })
                .collect(),
        }
    }

    #[test]
    fn locate_finds_the_segment_in_either_direction_with_any_hint() {
        for bounds in [[0.0, 1.0, 2.5, 3.0], [3.0, 2.5, 1.0, 0.0]] {
            let p = pieces(&bounds);
            let ascending = bounds[0] < bounds[3];
            for hint in 0..4 {
                for (t, want) in [(0.2, 0), (1.7, 1), (2.9, 2)] {
                    let want = if ascending { want } else { 2 - want };
                    assert_eq!(p.locate(t, hint), want, "t {t} hint {hint} {bounds:?}");
                }
                // A shared end point belongs to either neighbour; outside points to an end.
                let at = p.locate(1.0, hint);
                let (a, b) = p.segments[at].grid.interval();
                assert!(a.min(b) <= 1.0 && 1.0 <= a.max(b));
                let below = p.locate(-1.0, hint);
                assert_eq!(below, if ascending { 0 } else { 2 });
            }
        }
    }
}
