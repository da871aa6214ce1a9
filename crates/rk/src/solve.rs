//! One-call solve with outputs at a list of times, taken from the dense output.

use crate::error::{Result, RkError};
use crate::options::Options;
use crate::rhs::Rhs;
use crate::scalar::Scalar;
use crate::solver::{Solver, Stats};
use crate::tableau::Method;
use crate::vector::Vector;

/// The outputs of [`solve`].
#[derive(Debug, Clone)]
pub struct Solution<V: Vector> {
    /// The output times, as given.
    pub ts: Vec<V::Scalar>,
    /// The state at each output time (`ys[0]` is the initial state).
    pub ys: Vec<V>,
    /// Counters.
    pub stats: Stats,
}

/// Checks that `ts` has at least two finite times, strictly monotone in one direction.
pub fn check_times<T: Scalar>(ts: &[T]) -> Result<()> {
    let (Some(&t0), Some(&t1)) = (ts.first(), ts.last()) else {
        return Err(RkError::BadInterval {
            t0: f64::NAN,
            t1: f64::NAN,
        });
    };
    if ts.len() < 2 || !t0.is_finite() || t0 == t1 {
        return Err(RkError::BadInterval {
            t0: t0.as_f64(),
            t1: t1.as_f64(),
        });
    }
    let forward = t1 > t0;
    for i in 1..ts.len() {
        let ok = ts[i].is_finite()
            && if forward {
                ts[i] > ts[i - 1]
            } else {
                ts[i] < ts[i - 1]
            };
        if !ok {
            return Err(RkError::TimesNotMonotone {
                prev_index: i - 1,
                prev: ts[i - 1].as_f64(),
                index: i,
                next: ts[i].as_f64(),
            });
        }
    }
    Ok(())
}

/// Solves `dz/dt = f(t, z; θ)` from `z(ts[0]) = y0` over `[ts[0], ts[last]]` (increasing or
/// decreasing times) and returns the state at every time in `ts`, read from the dense output.
///
/// The number of right-hand-side evaluations does not depend on how many output times are asked.
pub fn solve<V: Vector, R: Rhs<V>>(
    rhs: &mut R,
    params: &V,
    method: Method,
    options: &Options<V::Scalar>,
    ts: &[V::Scalar],
    y0: &V,
) -> Result<Solution<V>> {
    check_times(ts)?;
    let mut solver = Solver::new(method, options.clone(), y0)?;
    let t0 = ts[0];
    let t1 = ts[ts.len() - 1];
    solver.init(rhs, params, t0, t1, y0)?;
    let mut ys = Vec::with_capacity(ts.len());
    let mut first = y0.zeros_like();
    first.copy_from(y0);
    ys.push(first);
    let mut next = 1;
    while next < ts.len() {
        let t_now = solver.step(rhs, params)?;
        let forward = t1 > t0;
        while next < ts.len()
            && (if forward {
                ts[next] <= t_now
            } else {
                ts[next] >= t_now
            })
        {
            let mut out = y0.zeros_like();
            solver.interpolate(ts[next], &mut out)?;
            ys.push(out);
            next += 1;
        }
    }
    Ok(Solution {
        ts: ts.to_vec(),
        ys,
        stats: solver.stats(),
    })
}
