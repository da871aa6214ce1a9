//! The Lebesgue constant `Λ = max_{t ∈ [a,b]} Σ_k |ℓ_k(t)|` of a grid.
//!
//! `Λ` bounds how much interpolation can amplify errors in the data: `‖p − p̃‖_∞ ≤ Λ ‖f − f̃‖_∞`,
//! and `‖f − p‖_∞ ≤ (1 + Λ) ‖f − p*‖_∞` with `p*` the best approximation. At Lobatto points
//! `Λ_N ≤ 1 + (2/π) log(N + 1)`, and every grid has `Λ_N ≥ 0.52125 + (2/π) log(N + 1)`
//! (Trefethen, ATAP, Theorem 15.2).
//!
//! The Lebesgue function `λ(t) = Σ_k |ℓ_k(t)|` equals 1 at the nodes and has one local maximum
//! between neighbouring nodes (and possibly beyond the outer nodes of a first-kind grid). We
//! sample every gap, then refine the best sample of each gap by golden-section search.

use crate::barycentric::coefficients_unchecked;
use crate::grid::Grid;
use crate::real::Real;

impl<T: Real> Grid<T> {
    /// The Lebesgue function `Σ_k |ℓ_k(t)|` at a point of the interval (clamped into it).
    pub fn lebesgue_function(&self, t: T) -> T {
        let (a, b) = self.interval();
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        let mut l = vec![T::zero(); self.len()];
        coefficients_unchecked(self.nodes(), self.weights(), t.max(lo).min(hi), &mut l);
        l.iter().fold(T::zero(), |acc, &c| acc + c.abs())
    }

    /// The Lebesgue constant of the grid on its interval, to about the precision of `T`.
    pub fn lebesgue_constant(&self) -> T {
        let (a, b) = self.interval();
        // Break points: the interval ends and every node, in order from a to b.
        let mut points = Vec::with_capacity(self.len() + 2);
        points.push(a);
        points.extend_from_slice(self.nodes());
        points.push(b);
        let mut l = vec![T::zero(); self.len()];
        let mut lambda = |t: T| {
            coefficients_unchecked(self.nodes(), self.weights(), t, &mut l);
            l.iter().fold(T::zero(), |acc, &c| acc + c.abs())
        };
        let samples = 16;
        let mut best = T::one();
        for gap in points.windows(2) {
            let (left, right) = (gap[0], gap[1]);
            if left == right {
                continue;
            }
            let h = (right - left) / T::of(samples as f64);
            let mut arg: usize = 0;
            let mut top = T::neg_infinity();
            for i in 0..=samples {
                let v = lambda(left + h * T::of(i as f64));
                if v > top {
                    top = v;
                    arg = i;
                }
            }
            // Golden-section search on the bracket around the best sample.
            let mut lo = left + h * T::of(arg.saturating_sub(1) as f64);
            let mut hi = left + h * T::of((arg + 1).min(samples) as f64);
            let g = T::of(0.618_033_988_749_894_8);
            for _ in 0..60 {
                let x1 = hi - g * (hi - lo);
                let x2 = lo + g * (hi - lo);
                if lambda(x1) < lambda(x2) {
                    lo = x1;
                } else {
                    hi = x2;
                }
            }
            top = top.max(lambda(T::of(0.5) * (lo + hi)));
            best = best.max(top);
        }
        best
    }
}
