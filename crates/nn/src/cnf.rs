//! Right-hand sides built on [`OdeNet`]: the plain ODE net `dz/dt = net(t, z)` on a batch, and
//! the continuous normalizing flow on `(z, Δlogp)`.
//!
//! **CNF** (Chen et al. 2018; Grathwohl et al., FFJORD, 2019). For a batch of `B` points in
//! `D` dimensions the state is `[z (B × D, row-major), Δlogp (B)]` and
//!
//! ```text
//!     dz/dt = f(t, z),         dΔlogp/dt = −tr(∂f/∂z)
//! ```
//!
//! The trace is computed either **exactly**, from `D` forward-mode tangents seeded with the unit
//! vectors (`tr J = Σ_k (J e_k)_k`; one stacked pass, not `D` reverse passes), or by
//! **Hutchinson's estimator** `εᵀ J ε` with one tangent seeded with noise `ε` (Gaussian or
//! Rademacher, `E[εεᵀ] = I`), held fixed for a solve. In both cases
//! `div = Σ_k Σ_j s_kj (J s_k)_j` for seeds `s_k`.
//!
//! The VJP of the augmented right-hand side for a cotangent `(a_z, a_l)` is
//! `a_zᵀ ∂f/∂(z, θ) − a_l ∂div/∂(z, θ)`: the reverse pass through the stacked primal-and-tangent
//! computation with output cotangents `a_z` on the primal rows and `−a_l s_k` on the tangent
//! rows. This carries the second-order terms of the divergence.
//!
//! **Threads.** Points are independent, so with [`Cnf::set_threads`] / [`NetRhs::set_threads`]
//! the batch is cut into contiguous shards ([`crate::shards`]) evaluated at once, the last on
//! the calling thread and the others on rayon's pool, each by its own copy of the net;
//! `aᵀ∂f/∂θ` is the shards' sum. Every gradient method
//! gets the threads, since they live in the right-hand side.

use crate::error::{Result, shape_err};
use crate::net::OdeNet;
use crate::rng::Rng;
use crate::shards::{ranges, shard_count};
use crate::{Float, NnError};
use adjoint::Vjp;
use rk::Rhs;
use std::ops::Range;

/// How the CNF computes `tr(∂f/∂z)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Divergence {
    /// `D` tangents, exact.
    Exact,
    /// One tangent of fixed noise, unbiased estimate.
    Hutchinson,
}

/// Noise for Hutchinson's estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noise {
    /// Standard normal entries.
    Gaussian,
    /// `±1` entries.
    Rademacher,
}

/// `dz/dt = net(t, z)` on a batch of `B` states of width `D` (`B × D`, row-major).
#[derive(Debug, Clone)]
pub struct NetRhs<T> {
    /// The network (`D → … → D`).
    pub net: OdeNet<T>,
    batch: usize,
    threads: usize,
    shards: Vec<Shard<NetRhs<T>, T>>,
}

/// One shard of a batch: its points, its own right-hand side, its parameter cotangent.
#[derive(Debug, Clone)]
struct Shard<R, T> {
    points: Range<usize>,
    rhs: R,
    adj_p: Vec<T>,
}

/// The shards of `batch` points on `threads` threads, each with the right-hand side
/// `make(points in the shard)`; none when the batch stays sequential.
fn build_shards<R, T: Float>(
    batch: usize,
    threads: usize,
    param_len: usize,
    make: impl Fn(usize) -> R,
) -> Vec<Shard<R, T>> {
    let parts = shard_count(batch, threads);
    if parts <= 1 {
        return Vec::new();
    }
    ranges(batch, parts)
        .into_iter()
        .map(|points| Shard {
            rhs: make(points.len()),
            adj_p: vec![T::zero(); param_len],
            points,
        })
        .collect()
}

impl<T: Float> NetRhs<T> {
    /// Wraps a square net for batches of `batch` states.
    pub fn new(net: OdeNet<T>, batch: usize) -> Result<Self> {
        if net.input_dim() != net.output_dim() || batch == 0 {
            return Err(NnError::Invalid {
                name: "ODE net".into(),
                reason: format!(
                    "needs input width = output width and batch >= 1, got {} -> {}, batch {batch}",
                    net.input_dim(),
                    net.output_dim()
                ),
            });
        }
        Ok(Self {
            net,
            batch,
            threads: 1,
            shards: Vec::new(),
        })
    }

    /// Batch size.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Evaluates on up to `threads` shards of the batch at once on rayon's pool (`0`: the
    /// pool's size; `1`, the default: sequential). Shards hold at least
    /// [`crate::shards::MIN_POINTS_PER_SHARD`] points.
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads;
        self.shards = build_shards(self.batch, threads, self.net.param_len(), |batch| NetRhs {
            net: self.net.clone(),
            batch,
            threads: 1,
            shards: Vec::new(),
        });
    }

    /// Shards the batch is evaluated in (1: sequential).
    pub fn shards(&self) -> usize {
        self.shards.len().max(1)
    }

    #[allow(clippy::too_many_arguments)]
    fn vjp_local(
        &mut self,
        t: T,
        z: &[T],
        params: &[T],
        a: &[T],
        value: Option<&mut [T]>,
        adj_z: &mut [T],
        adj_p: &mut [T],
    ) {
        self.net.forward(t, params, z, &[], self.batch);
        if let Some(v) = value {
            v.copy_from_slice(self.net.output());
        }
        self.net.backward(t, params, a, adj_p, adj_z);
    }
}

impl<T: Float> Rhs<Vec<T>> for NetRhs<T> {
    fn eval(&mut self, t: T, z: &Vec<T>, params: &Vec<T>, dz: &mut Vec<T>) {
        if self.shards.is_empty() {
            self.net.forward(t, params, z, &[], self.batch);
            dz.copy_from_slice(self.net.output());
            return;
        }
        let d = self.net.input_dim();
        let mut dz: &mut [T] = dz;
        let mut jobs = Vec::with_capacity(self.shards.len());
        for shard in &mut self.shards {
            let (dz_i, rest) = std::mem::take(&mut dz).split_at_mut(shard.points.len() * d);
            dz = rest;
            let z_i = &z[shard.points.start * d..shard.points.end * d];
            let job = move || {
                let net = &mut shard.rhs.net;
                net.forward(t, params, z_i, &[], shard.points.len());
                dz_i.copy_from_slice(net.output());
            };
            jobs.push(job);
        }
        crate::shards::run_all(jobs);
    }
}

impl<T: Float> Vjp<T> for NetRhs<T> {
    fn state_len(&self) -> usize {
        self.batch * self.net.input_dim()
    }
    fn param_len(&self) -> usize {
        self.net.param_len()
    }
    fn vjp(
        &mut self,
        t: T,
        z: &[T],
        params: &[T],
        a: &[T],
        value: Option<&mut [T]>,
        adj_z: &mut [T],
        adj_p: &mut [T],
    ) {
        if self.shards.is_empty() {
            self.vjp_local(t, z, params, a, value, adj_z, adj_p);
            return;
        }
        let d = self.net.input_dim();
        let (mut adj_z, mut value) = (adj_z, value);
        let mut jobs = Vec::with_capacity(self.shards.len());
        for shard in &mut self.shards {
            let len = shard.points.len() * d;
            let (adj_i, rest) = std::mem::take(&mut adj_z).split_at_mut(len);
            adj_z = rest;
            let value_i = value.take().map(|v| {
                let (head, rest) = v.split_at_mut(len);
                value = Some(rest);
                head
            });
            let span = shard.points.start * d..shard.points.end * d;
            let (z_i, a_i) = (&z[span.clone()], &a[span]);
            let job = move || {
                shard
                    .rhs
                    .vjp_local(t, z_i, params, a_i, value_i, adj_i, &mut shard.adj_p);
            };
            jobs.push(job);
        }
        crate::shards::run_all(jobs);
        crate::shards::sum_into(adj_p, self.shards.iter().map(|s| s.adj_p.as_slice()));
    }
    fn param_groups(&self) -> Vec<Range<usize>> {
        self.net.layout().groups()
    }
}

/// The continuous normalizing flow right-hand side on `[z (B × D), Δlogp (B)]`.
#[derive(Debug, Clone)]
pub struct Cnf<T> {
    /// The network `f` (`D → … → D`).
    pub net: OdeNet<T>,
    batch: usize,
    divergence: Divergence,
    seeds: Vec<T>,
    out_bar: Vec<T>,
    xbar: Vec<T>,
    threads: usize,
    shards: Vec<Shard<Cnf<T>, T>>,
}

impl<T: Float> Cnf<T> {
    /// A CNF for batches of `batch` points with the given divergence. Hutchinson's noise starts
    /// as Rademacher noise from seed 0; call [`Cnf::sample_noise`] before each solve.
    pub fn new(net: OdeNet<T>, batch: usize, divergence: Divergence) -> Result<Self> {
        let d = net.input_dim();
        if net.output_dim() != d || batch == 0 {
            return Err(NnError::Invalid {
                name: "CNF net".into(),
                reason: format!(
                    "needs input width = output width and batch >= 1, got {d} -> {}, batch {batch}",
                    net.output_dim()
                ),
            });
        }
        let mut cnf = Self {
            net,
            batch,
            divergence,
            seeds: Vec::new(),
            out_bar: Vec::new(),
            xbar: Vec::new(),
            threads: 1,
            shards: Vec::new(),
        };
        cnf.reset_seeds();
        if divergence == Divergence::Hutchinson {
            cnf.sample_noise(&mut Rng::new(0), Noise::Rademacher);
        }
        Ok(cnf)
    }

    fn reset_seeds(&mut self) {
        let (b, d) = (self.batch, self.dim());
        let k = match self.divergence {
            Divergence::Exact => d,
            Divergence::Hutchinson => 1,
        };
        self.seeds = vec![T::zero(); k * b * d];
        if self.divergence == Divergence::Exact {
            for kk in 0..d {
                for bb in 0..b {
                    self.seeds[(kk * b + bb) * d + kk] = T::one();
                }
            }
        }
        self.out_bar = vec![T::zero(); (1 + k) * b * d];
        self.xbar = vec![T::zero(); (1 + k) * b * d];
    }

    /// Data dimension `D`.
    pub fn dim(&self) -> usize {
        self.net.input_dim()
    }

    /// Batch size `B`.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Changes the batch size.
    pub fn set_batch(&mut self, batch: usize) -> Result<()> {
        if batch == 0 {
            return Err(NnError::Invalid {
                name: "batch".into(),
                reason: "must be >= 1".into(),
            });
        }
        self.batch = batch;
        self.reset_seeds();
        self.set_threads(self.threads);
        Ok(())
    }

    /// Evaluates on up to `threads` shards of the batch at once on rayon's pool (`0`: the
    /// pool's size; `1`, the default: sequential). Shards hold at least
    /// [`crate::shards::MIN_POINTS_PER_SHARD`] points; Hutchinson's noise is drawn for the
    /// whole batch, so the shards see the same noise as a sequential solve.
    ///
    /// Call the solver from inside the pool (`rayon::ThreadPool::install`, as
    /// [`crate::train::Trainer`] does): a caller outside it waits for the other shards on a
    /// blocking latch (measured on 2 cores, batch 100: 1.2× from outside, 1.8× from a worker).
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads;
        self.shards = build_shards(self.batch, threads, self.net.param_len(), |batch| {
            let mut cnf = Cnf {
                net: self.net.clone(),
                batch,
                divergence: self.divergence,
                seeds: Vec::new(),
                out_bar: Vec::new(),
                xbar: Vec::new(),
                threads: 1,
                shards: Vec::new(),
            };
            cnf.reset_seeds();
            cnf
        });
        self.copy_noise_to_shards();
    }

    /// Shards the batch is evaluated in (1: sequential).
    pub fn shards(&self) -> usize {
        self.shards.len().max(1)
    }

    /// Hutchinson's seeds (`[1][B][D]`) restricted to each shard's points.
    fn copy_noise_to_shards(&mut self) {
        if self.divergence == Divergence::Exact {
            return;
        }
        let d = self.dim();
        for shard in &mut self.shards {
            shard
                .rhs
                .seeds
                .copy_from_slice(&self.seeds[shard.points.start * d..shard.points.end * d]);
        }
    }

    /// The divergence mode.
    pub fn divergence(&self) -> Divergence {
        self.divergence
    }

    /// Draws Hutchinson noise `ε` (`B × D`) for the next solve (no effect in exact mode).
    pub fn sample_noise(&mut self, rng: &mut Rng, noise: Noise) {
        if self.divergence == Divergence::Exact {
            return;
        }
        for v in &mut self.seeds {
            *v = <T as rk::Scalar>::of(match noise {
                Noise::Gaussian => rng.normal(),
                Noise::Rademacher => rng.rademacher(),
            });
        }
        self.copy_noise_to_shards();
    }

    /// Evaluates `f(t, z)` into `dz` (`B × D`) and `div f` into `div` (`B`).
    pub fn eval_with_divergence(
        &mut self,
        t: T,
        z: &[T],
        params: &[T],
        dz: &mut [T],
        div: &mut [T],
    ) -> Result<()> {
        let (b, d) = (self.batch, self.dim());
        if z.len() != b * d || dz.len() != b * d || div.len() != b {
            return Err(shape_err(
                "CNF batch (z, dz, div)",
                format!("({}, {}, {b})", b * d, b * d),
                format!("({}, {}, {})", z.len(), dz.len(), div.len()),
            ));
        }
        if params.len() != self.net.param_len() {
            return Err(shape_err(
                "CNF parameters",
                self.net.param_len(),
                params.len(),
            ));
        }
        self.forward(t, z, params, dz, div);
        Ok(())
    }

    /// `dz = f(t, z)`, `div = tr ∂f/∂z`, on the shards when there are any.
    fn forward(&mut self, t: T, z: &[T], params: &[T], dz: &mut [T], div: &mut [T]) {
        if self.shards.is_empty() {
            self.forward_local(t, z, params, dz, div);
            return;
        }
        let d = self.dim();
        let (mut dz, mut div) = (dz, div);
        let mut jobs = Vec::with_capacity(self.shards.len());
        for shard in &mut self.shards {
            let n = shard.points.len();
            let (dz_i, rest) = std::mem::take(&mut dz).split_at_mut(n * d);
            dz = rest;
            let (div_i, rest) = std::mem::take(&mut div).split_at_mut(n);
            div = rest;
            let z_i = &z[shard.points.start * d..shard.points.end * d];
            let job = move || shard.rhs.forward_local(t, z_i, params, dz_i, div_i);
            jobs.push(job);
        }
        crate::shards::run_all(jobs);
    }

    fn forward_local(&mut self, t: T, z: &[T], params: &[T], dz: &mut [T], div: &mut [T]) {
        let (b, d) = (self.batch, self.dim());
        self.net.forward(t, params, z, &self.seeds, b);
        let out = self.net.output();
        dz.copy_from_slice(&out[..b * d]);
        div.fill(T::zero());
        // Tangent rows of the output and the seeds share the layout [k][b][d].
        for (i, (s, o)) in self
            .seeds
            .chunks_exact(d)
            .zip(out[b * d..].chunks_exact(d))
            .enumerate()
        {
            let acc = &mut div[i % b];
            *acc = s.iter().zip(o).fold(*acc, |acc, (&x, &y)| acc + x * y);
        }
    }

    /// Per-tensor parameter groups, for torchdiffeq's adjoint norm.
    pub fn groups(&self) -> Vec<Range<usize>> {
        self.net.layout().groups()
    }
}

impl<T: Float> Rhs<Vec<T>> for Cnf<T> {
    fn eval(&mut self, t: T, state: &Vec<T>, params: &Vec<T>, dstate: &mut Vec<T>) {
        let n = self.batch * self.dim();
        let (dz, dl) = dstate.split_at_mut(n);
        self.forward(t, &state[..n], params, dz, dl);
        for v in dl.iter_mut() {
            *v = -*v;
        }
    }
}

impl<T: Float> Vjp<T> for Cnf<T> {
    fn state_len(&self) -> usize {
        self.batch * (self.dim() + 1)
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
        let (b, d) = (self.batch, self.dim());
        let n = b * d;
        let (a_z, a_l) = a.split_at(n);
        let value = value.map(|v| v.split_at_mut(n));
        let (adj_zz, adj_zl) = adj_z.split_at_mut(n);
        adj_zl.fill(T::zero());
        if self.shards.is_empty() {
            self.vjp_local(t, &state[..n], params, a_z, a_l, value, adj_zz, adj_p);
            return;
        }
        let (mut adj_zz, mut value) = (adj_zz, value);
        let mut jobs = Vec::with_capacity(self.shards.len());
        for shard in &mut self.shards {
            let m = shard.points.len();
            let (adj_i, rest) = std::mem::take(&mut adj_zz).split_at_mut(m * d);
            adj_zz = rest;
            let value_i = value.take().map(|(dz, dl)| {
                let (dz_i, dz_rest) = dz.split_at_mut(m * d);
                let (dl_i, dl_rest) = dl.split_at_mut(m);
                value = Some((dz_rest, dl_rest));
                (dz_i, dl_i)
            });
            let (p0, p1) = (shard.points.start, shard.points.end);
            let (z_i, az_i, al_i) = (&state[p0 * d..p1 * d], &a_z[p0 * d..p1 * d], &a_l[p0..p1]);
            let job = move || {
                shard
                    .rhs
                    .vjp_local(t, z_i, params, az_i, al_i, value_i, adj_i, &mut shard.adj_p);
            };
            jobs.push(job);
        }
        crate::shards::run_all(jobs);
        crate::shards::sum_into(adj_p, self.shards.iter().map(|s| s.adj_p.as_slice()));
    }
    fn state_groups(&self) -> Vec<Range<usize>> {
        let n = self.batch * self.dim();
        vec![0..n, n..n + self.batch]
    }
    fn param_groups(&self) -> Vec<Range<usize>> {
        self.groups()
    }
}

impl<T: Float> Cnf<T> {
    /// The VJP on this CNF's own batch: `z`, `a = (a_z, a_l)` and `value = (f, −div)` split.
    #[allow(clippy::too_many_arguments)]
    fn vjp_local(
        &mut self,
        t: T,
        z: &[T],
        params: &[T],
        a_z: &[T],
        a_l: &[T],
        value: Option<(&mut [T], &mut [T])>,
        adj_z: &mut [T],
        adj_p: &mut [T],
    ) {
        let (b, d) = (self.batch, self.dim());
        let n = b * d;
        match value {
            Some((dz, dl)) => {
                self.forward_local(t, z, params, dz, dl);
                for x in dl.iter_mut() {
                    *x = -*x;
                }
            }
            None => self.net.forward(t, params, z, &self.seeds, b),
        }
        self.out_bar[..n].copy_from_slice(a_z);
        for (i, (ob, s)) in self.out_bar[n..]
            .chunks_exact_mut(d)
            .zip(self.seeds.chunks_exact(d))
            .enumerate()
        {
            let al = a_l[i % b];
            for (o, &sv) in ob.iter_mut().zip(s) {
                *o = -al * sv;
            }
        }
        self.net
            .backward(t, params, &self.out_bar, adj_p, &mut self.xbar);
        adj_z.copy_from_slice(&self.xbar[..n]);
    }
}

/// The toy CNF of the IRDM paper's appendix B.2 (FFJORD's toy model): three concat-squash layers
/// `2 → 64 → 64 → 2` with `act` between them, exact divergence.
pub fn toy_cnf<T: Float>(batch: usize, act: crate::Activation) -> Result<Cnf<T>> {
    let net = OdeNet::new(&[2, 64, 64, 2], crate::LayerKind::ConcatSquash, act)?;
    Cnf::new(net, batch, Divergence::Exact)
}

/// Negative log-likelihood of a CNF's final state `[z (B × D), Δlogp (B)]` under a standard
/// normal base: `L = −mean_b (log N(z_b; 0, I) − Δlogp_b)`, and its cotangent `∂L/∂state`
/// (`z_b / B` for `z`, `1/B` for `Δlogp`).
///
/// Errors: a state of the wrong length, or a non-finite state or loss (an overflow is not an
/// answer).
pub fn nll_loss<T: Float>(state: &[T], batch: usize, dim: usize) -> Result<(T, Vec<T>)> {
    if state.len() != batch * (dim + 1) || batch == 0 {
        return Err(shape_err("CNF state", batch * (dim + 1), state.len()));
    }
    crate::error::check_finite("CNF final state", state)?;
    let of = <T as rk::Scalar>::of;
    let half_log_2pi = of(0.5 * (2.0 * std::f64::consts::PI).ln());
    let inv_b = T::one() / of(batch as f64);
    let (z, dl) = state.split_at(batch * dim);
    let mut loss = T::zero();
    for b in 0..batch {
        let logn = z[b * dim..(b + 1) * dim]
            .iter()
            .fold(T::zero(), |acc, &x| acc - half_log_2pi - of(0.5) * x * x);
        loss -= logn - dl[b];
    }
    let loss = loss * inv_b;
    crate::error::check_finite("CNF negative log-likelihood", &[loss])?;
    let mut cot: Vec<T> = z.iter().map(|&x| x * inv_b).collect();
    cot.extend(std::iter::repeat_n(inv_b, batch));
    Ok((loss, cot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_finite_or_overflowing_nll_is_an_error() {
        assert!(nll_loss(&[0.5f32, -0.5, 0.1], 1, 2).is_ok());
        let err = nll_loss(&[f32::NAN, 0.0, 0.0], 1, 2).unwrap_err();
        assert!(err.to_string().contains("CNF final state"), "{err}");
        // Finite but huge: z² overflows f32.
        let err = nll_loss(&[3e38f32, 0.0, 0.0], 1, 2).unwrap_err();
        assert!(err.to_string().contains("negative log-likelihood"), "{err}");
    }
}
