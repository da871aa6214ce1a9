//! A continuous normalizing flow conditioned on a per-point context (FFJORD's VAE posterior
//! flow, with the encoder's output as the condition): for a batch of `B` points with `D`
//! latent dimensions and `C` context values each, the state is
//! `[z (B × D), c (B × C), Δlogp (B)]`, all row-major, and
//!
//! ```text
//!     dz/dt = f(t, [z, c]),     dc/dt = 0,     dΔlogp/dt = −tr(∂f/∂z),
//! ```
//!
//! with `f` an [`OdeNet`] of widths `D + C → … → D`. The context rides in the state with zero
//! dynamics, so every gradient method returns `dL/dc` as part of `dL/dstate(0)`: the adjoint
//! of `c` integrates `−a_zᵀ ∂f/∂c`. The trace is exact: `D` forward-mode tangents seeded with
//! the unit vectors of the `z` part, `tr = Σ_k (J e_k)_k`. The VJP for a cotangent
//! `(a_z, a_c, a_l)` reverses the stacked primal-and-tangent pass with output cotangents `a_z`
//! on the primal rows and `−a_l e_k` on the tangent rows (as [`crate::Cnf`] does); `a_c` does
//! not enter, since nothing depends on `c`'s (zero) derivative.
//!
//! **Threads.** With [`ConditionedCnf::set_threads`] the batch is cut into contiguous shards
//! ([`crate::shards`]); each shard gathers its points' `z`, `c` and `Δlogp` into a state of its
//! own, is evaluated by its own copy of the flow (the last on the calling thread, the others on
//! rayon's pool), and its outputs are scattered back; `aᵀ∂f/∂θ` is the shards' sum.

use crate::error::{NnError, Result};
use crate::net::OdeNet;
use crate::shards::{ranges, run_all, shard_count, sum_into};
use crate::{Float, LayerKind};
use adjoint::Vjp;
use rk::Rhs;
use std::ops::Range;

/// The conditioned CNF right-hand side on `[z (B × D), c (B × C), Δlogp (B)]`.
#[derive(Debug, Clone)]
pub struct ConditionedCnf<T> {
    /// The network `f` (`D + C → … → D`).
    pub net: OdeNet<T>,
    batch: usize,
    dim: usize,
    context: usize,
    /// Net input rows `[z_b, c_b]` (`B × (D + C)`).
    input: Vec<T>,
    /// Tangent seeds `e_k` on the `z` part (`D × B × (D + C)`).
    seeds: Vec<T>,
    out_bar: Vec<T>,
    xbar: Vec<T>,
    threads: usize,
    shards: Vec<Shard<T>>,
}

/// One shard: its points, its own flow and its gathered vectors.
#[derive(Debug, Clone)]
struct Shard<T> {
    points: Range<usize>,
    flow: ConditionedCnf<T>,
    state: Vec<T>,
    a: Vec<T>,
    out: Vec<T>,
    adj: Vec<T>,
    adj_p: Vec<T>,
}

/// Where the points `points` of a batch of `b` lie in the state `[z (b × d), c (b × k), Δ (b)]`:
/// the three runs, each `(start in the batch's state, length)`, in the shard's order.
fn runs(b: usize, d: usize, k: usize, points: &Range<usize>) -> [(usize, usize); 3] {
    let n = points.len();
    [
        (points.start * d, n * d),
        (b * d + points.start * k, n * k),
        (b * (d + k) + points.start, n),
    ]
}

/// Copies the points' runs of `whole` (a batch of `b`) into `part`, packed.
fn gather<T: Copy>(
    b: usize,
    d: usize,
    k: usize,
    points: &Range<usize>,
    whole: &[T],
    part: &mut [T],
) {
    let mut at = 0;
    for (start, len) in runs(b, d, k, points) {
        part[at..at + len].copy_from_slice(&whole[start..start + len]);
        at += len;
    }
}

/// The inverse of [`gather`].
fn scatter<T: Copy>(
    b: usize,
    d: usize,
    k: usize,
    points: &Range<usize>,
    part: &[T],
    whole: &mut [T],
) {
    let mut at = 0;
    for (start, len) in runs(b, d, k, points) {
        whole[start..start + len].copy_from_slice(&part[at..at + len]);
        at += len;
    }
}

impl<T: Float> ConditionedCnf<T> {
    /// A flow on `dim` latent dimensions conditioned on `context` values per point, with hidden
    /// widths `hidden` (concat-squash layers, activation `act`), for batches of `batch` points.
    pub fn new(
        dim: usize,
        context: usize,
        hidden: &[usize],
        act: crate::Activation,
        batch: usize,
    ) -> Result<Self> {
        if dim == 0 || batch == 0 {
            return Err(NnError::Invalid {
                name: "conditioned CNF".into(),
                reason: format!("needs dim >= 1 and batch >= 1, got dim {dim}, batch {batch}"),
            });
        }
        let mut dims = vec![dim + context];
        dims.extend_from_slice(hidden);
        dims.push(dim);
        let net = OdeNet::new(&dims, LayerKind::ConcatSquash, act)?;
        let mut flow = Self {
            net,
            batch,
            dim,
            context,
            input: Vec::new(),
            seeds: Vec::new(),
            out_bar: Vec::new(),
            xbar: Vec::new(),
            threads: 1,
            shards: Vec::new(),
        };
        flow.size_buffers();
        Ok(flow)
    }

    /// Evaluates on up to `threads` shards of the batch at once on rayon's pool (`0`: the
    /// pool's size; `1`, the default: sequential). Shards hold at least
    /// [`crate::shards::MIN_POINTS_PER_SHARD`] points. Call the solver from inside the pool
    /// (`rayon::ThreadPool::install`), as [`crate::train::Trainer`] does.
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads;
        self.shards.clear();
        let parts = shard_count(self.batch, threads);
        if parts <= 1 {
            return;
        }
        let w = self.dim + self.context + 1;
        let p = self.net.param_len();
        let mut template = self.clone();
        template.threads = 1;
        for points in ranges(self.batch, parts) {
            let mut flow = template.clone();
            flow.batch = points.len();
            flow.size_buffers();
            let len = points.len() * w;
            self.shards.push(Shard {
                points,
                flow,
                state: vec![T::zero(); len],
                a: vec![T::zero(); len],
                out: vec![T::zero(); len],
                adj: vec![T::zero(); len],
                adj_p: vec![T::zero(); p],
            });
        }
    }

    /// Shards the batch is evaluated in (1: sequential).
    pub fn shards(&self) -> usize {
        self.shards.len().max(1)
    }

    fn size_buffers(&mut self) {
        let (b, d, w) = (self.batch, self.dim, self.dim + self.context);
        self.input = vec![T::zero(); b * w];
        self.seeds = vec![T::zero(); d * b * w];
        for k in 0..d {
            for bb in 0..b {
                self.seeds[(k * b + bb) * w + k] = T::one();
            }
        }
        self.out_bar = vec![T::zero(); (1 + d) * b * d];
        self.xbar = vec![T::zero(); (1 + d) * b * w];
    }

    /// Latent dimension `D`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Context values per point `C`.
    pub fn context(&self) -> usize {
        self.context
    }

    /// Batch size `B`.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Resizes the work space for batches of `batch` points.
    pub fn set_batch(&mut self, batch: usize) -> Result<()> {
        if batch == 0 {
            return Err(NnError::Invalid {
                name: "conditioned CNF batch".into(),
                reason: "must be at least 1".into(),
            });
        }
        self.batch = batch;
        self.size_buffers();
        self.set_threads(self.threads);
        Ok(())
    }

    /// The state for latent points `z` (`B × D`) and contexts `c` (`B × C`), `Δlogp = 0`.
    pub fn initial_state(&self, z: &[T], c: &[T]) -> Result<Vec<T>> {
        let (b, d, k) = (self.batch, self.dim, self.context);
        if z.len() != b * d || c.len() != b * k {
            return Err(crate::error::shape_err(
                "conditioned CNF (z, c)",
                format!("({}, {})", b * d, b * k),
                format!("({}, {})", z.len(), c.len()),
            ));
        }
        let mut s = Vec::with_capacity(b * (d + k + 1));
        s.extend_from_slice(z);
        s.extend_from_slice(c);
        s.extend(std::iter::repeat_n(T::zero(), b));
        Ok(s)
    }

    /// Runs the net on the state's `[z, c]` rows with the trace tangents.
    fn run_net(&mut self, t: T, state: &[T], params: &[T]) {
        let (b, d, k) = (self.batch, self.dim, self.context);
        let w = d + k;
        let (z, rest) = state.split_at(b * d);
        let c = &rest[..b * k];
        for (i, row) in self.input.chunks_exact_mut(w).enumerate() {
            row[..d].copy_from_slice(&z[i * d..(i + 1) * d]);
            row[d..].copy_from_slice(&c[i * k..(i + 1) * k]);
        }
        self.net.forward(t, params, &self.input, &self.seeds, b);
    }

    /// Writes `[f, 0, −tr]` of the last [`Self::run_net`] into `dstate`.
    fn write_value(&self, dstate: &mut [T]) {
        let (b, d, k) = (self.batch, self.dim, self.context);
        let out = self.net.output();
        dstate[..b * d].copy_from_slice(&out[..b * d]);
        dstate[b * d..b * (d + k)].fill(T::zero());
        let dl = &mut dstate[b * (d + k)..];
        dl.fill(T::zero());
        for kk in 0..d {
            for (bb, v) in dl.iter_mut().enumerate() {
                *v -= out[((1 + kk) * b + bb) * d + kk];
            }
        }
    }
}

impl<T: Float> Rhs<Vec<T>> for ConditionedCnf<T> {
    fn eval(&mut self, t: T, state: &Vec<T>, params: &Vec<T>, dstate: &mut Vec<T>) {
        if self.shards.is_empty() {
            self.run_net(t, state, params);
            self.write_value(dstate);
            return;
        }
        let (b, d, k) = (self.batch, self.dim, self.context);
        let jobs: Vec<_> = self
            .shards
            .iter_mut()
            .map(|sh| {
                gather(b, d, k, &sh.points, state, &mut sh.state);
                move || sh.flow.eval(t, &sh.state, params, &mut sh.out)
            })
            .collect();
        run_all(jobs);
        for sh in &self.shards {
            scatter(b, d, k, &sh.points, &sh.out, dstate);
        }
    }
}

impl<T: Float> Vjp<T> for ConditionedCnf<T> {
    fn state_len(&self) -> usize {
        self.batch * (self.dim + self.context + 1)
    }
    fn param_len(&self) -> usize {
        self.net.param_len()
    }
    fn vjp(
        &mut self,
        t: T,
        state: &[T],
        params: &[T],
        a: &[T],
        value: Option<&mut [T]>,
        adj_z: &mut [T],
        adj_p: &mut [T],
    ) {
        let (b, d, k) = (self.batch, self.dim, self.context);
        if !self.shards.is_empty() {
            let want_value = value.is_some();
            let jobs: Vec<_> = self
                .shards
                .iter_mut()
                .map(|sh| {
                    gather(b, d, k, &sh.points, state, &mut sh.state);
                    gather(b, d, k, &sh.points, a, &mut sh.a);
                    move || {
                        let value = want_value.then_some(&mut sh.out[..]);
                        sh.flow.vjp(
                            t,
                            &sh.state,
                            params,
                            &sh.a,
                            value,
                            &mut sh.adj,
                            &mut sh.adj_p,
                        );
                    }
                })
                .collect();
            run_all(jobs);
            let mut value = value;
            for sh in &self.shards {
                scatter(b, d, k, &sh.points, &sh.adj, adj_z);
                if let Some(v) = value.as_deref_mut() {
                    scatter(b, d, k, &sh.points, &sh.out, v);
                }
            }
            sum_into(adj_p, self.shards.iter().map(|sh| sh.adj_p.as_slice()));
            return;
        }
        let w = d + k;
        self.run_net(t, state, params);
        if let Some(v) = value {
            self.write_value(v);
        }
        let (a_z, rest) = a.split_at(b * d);
        let a_l = &rest[b * k..];
        self.out_bar[..b * d].copy_from_slice(a_z);
        self.out_bar[b * d..].fill(T::zero());
        for kk in 0..d {
            for (bb, &al) in a_l.iter().enumerate() {
                self.out_bar[((1 + kk) * b + bb) * d + kk] = -al;
            }
        }
        self.net
            .backward(t, params, &self.out_bar, adj_p, &mut self.xbar);
        let (adj_zz, rest) = adj_z.split_at_mut(b * d);
        let (adj_c, adj_l) = rest.split_at_mut(b * k);
        for (i, row) in self.xbar[..b * w].chunks_exact(w).enumerate() {
            adj_zz[i * d..(i + 1) * d].copy_from_slice(&row[..d]);
            adj_c[i * k..(i + 1) * k].copy_from_slice(&row[d..]);
        }
        adj_l.fill(T::zero());
    }
    fn state_groups(&self) -> Vec<Range<usize>> {
        let (b, d, k) = (self.batch, self.dim, self.context);
        let groups = [0..b * d, b * d..b * (d + k), b * (d + k)..b * (d + k + 1)];
        groups.into_iter().filter(|r| !r.is_empty()).collect()
    }
    fn param_groups(&self) -> Vec<Range<usize>> {
        self.net.layout().groups()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Activation, Rng};

    fn flow() -> (ConditionedCnf<f64>, Vec<f64>, Vec<f64>) {
        let f = ConditionedCnf::<f64>::new(2, 3, &[5], Activation::Tanh, 4).unwrap();
        let mut rng = Rng::new(3);
        let p = f.net.init_params(&mut rng);
        let s: Vec<f64> = (0..f.state_len()).map(|_| rng.normal()).collect();
        (f, p, s)
    }

    /// The trace term equals minus the trace of a central-difference Jacobian of `f` in `z`,
    /// and the context's derivative is zero.
    #[test]
    fn divergence_matches_a_finite_difference_trace() {
        let (mut f, p, s) = flow();
        let (b, d, k) = (4, 2, 3);
        let mut ds = vec![0.0; s.len()];
        f.eval(0.3, &s, &p, &mut ds);
        assert!(ds[b * d..b * (d + k)].iter().all(|&v| v == 0.0));
        let h = 1e-6;
        for bb in 0..b {
            let mut tr = 0.0;
            for j in 0..d {
                let (mut sp, mut sm) = (s.clone(), s.clone());
                sp[bb * d + j] += h;
                sm[bb * d + j] -= h;
                let (mut fp, mut fm) = (vec![0.0; s.len()], vec![0.0; s.len()]);
                f.eval(0.3, &sp, &p, &mut fp);
                f.eval(0.3, &sm, &p, &mut fm);
                tr += (fp[bb * d + j] - fm[bb * d + j]) / (2.0 * h);
            }
            let got = ds[b * (d + k) + bb];
            assert!((got + tr).abs() < 1e-7, "point {bb}: {got} vs {}", -tr);
        }
    }

    /// `aᵀ ∂(dstate)/∂(state, θ)` against central differences of `aᵀ dstate`.
    #[test]
    fn vjp_matches_finite_differences() {
        let (mut f, p, s) = flow();
        let mut rng = Rng::new(9);
        let a: Vec<f64> = (0..s.len()).map(|_| rng.normal()).collect();
        let (mut az, mut ap) = (vec![0.0; s.len()], vec![0.0; p.len()]);
        let mut value = vec![0.0; s.len()];
        f.vjp(0.7, &s, &p, &a, Some(&mut value), &mut az, &mut ap);
        let mut direct = vec![0.0; s.len()];
        f.eval(0.7, &s, &p, &mut direct);
        assert_eq!(value, direct);
        let dot = |f: &mut ConditionedCnf<f64>, s: &Vec<f64>, p: &Vec<f64>| {
            let mut o = vec![0.0; s.len()];
            f.eval(0.7, s, p, &mut o);
            o.iter().zip(&a).map(|(x, y)| x * y).sum::<f64>()
        };
        let h = 1e-6;
        for i in 0..s.len() {
            let (mut sp, mut sm) = (s.clone(), s.clone());
            sp[i] += h;
            sm[i] -= h;
            let fd = (dot(&mut f, &sp, &p) - dot(&mut f, &sm, &p)) / (2.0 * h);
            assert!((fd - az[i]).abs() < 1e-6, "state {i}: {} vs {fd}", az[i]);
        }
        for i in 0..p.len() {
            let (mut pp, mut pm) = (p.clone(), p.clone());
            pp[i] += h;
            pm[i] -= h;
            let fd = (dot(&mut f, &s, &pp) - dot(&mut f, &s, &pm)) / (2.0 * h);
            assert!((fd - ap[i]).abs() < 1e-6, "param {i}: {} vs {fd}", ap[i]);
        }
    }

    /// Two and three shards give the sequential values, VJPs and parameter cotangents.
    #[test]
    fn shards_match_the_sequential_flow() {
        let mut whole = ConditionedCnf::<f64>::new(2, 3, &[6], Activation::Tanh, 37).unwrap();
        let mut rng = Rng::new(11);
        let p = whole.net.init_params(&mut rng);
        let s: Vec<f64> = (0..whole.state_len()).map(|_| rng.normal()).collect();
        let a: Vec<f64> = (0..whole.state_len()).map(|_| rng.normal()).collect();
        let run = |f: &mut ConditionedCnf<f64>| {
            let mut ds = vec![0.0; s.len()];
            f.eval(0.4, &s, &p, &mut ds);
            let (mut v, mut az, mut ap) =
                (vec![0.0; s.len()], vec![0.0; s.len()], vec![0.0; p.len()]);
            f.vjp(0.4, &s, &p, &a, Some(&mut v), &mut az, &mut ap);
            assert_eq!(v, ds);
            (ds, az, ap)
        };
        let reference = run(&mut whole);
        for threads in [2, 3] {
            let mut sharded = whole.clone();
            sharded.set_threads(threads);
            sharded.set_batch(37).unwrap();
            assert!(sharded.shards() > 1, "37 points on {threads} threads");
            let got = run(&mut sharded);
            let close = |x: &[f64], y: &[f64]| x.iter().zip(y).all(|(u, v)| (u - v).abs() < 1e-12);
            assert!(close(&got.0, &reference.0) && close(&got.1, &reference.1));
            assert!(close(&got.2, &reference.2), "threads {threads}");
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(ConditionedCnf::<f64>::new(0, 1, &[4], Activation::Tanh, 2).is_err());
        assert!(ConditionedCnf::<f64>::new(2, 1, &[4], Activation::Tanh, 0).is_err());
        let f = ConditionedCnf::<f64>::new(2, 1, &[4], Activation::Tanh, 3).unwrap();
        assert!(f.initial_state(&[0.0; 5], &[0.0; 3]).is_err());
        assert_eq!(f.initial_state(&[0.0; 6], &[0.0; 3]).unwrap().len(), 12);
    }
}
