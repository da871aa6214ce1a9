//! A sequential ODE network of (concat-squash) linear layers with activations between them,
//! evaluated on a batch together with `K` forward-mode tangents, and reversed through both.
//!
//! Layer `l` maps `x (B × d_in)` to
//!
//! ```text
//!     u = x Wᵀ + b1,      y = u ⊙ g + t b3,   g = σ(t c + b2)      (concat-squash; FFJORD)
//!     y = u                                                         (plain linear)
//!     x' = φ(y)                                                     (all but the last layer)
//! ```
//!
//! and a tangent `ẋ` to `ẏ = (ẋ Wᵀ) ⊙ g`, `ẋ' = φ′(y) ⊙ ẏ`. Primal rows and the `K·B` tangent
//! rows are stacked into one `(1 + K)B × d` matrix, so each layer is one matrix product. Seeding
//! the tangents with the unit vectors gives the Jacobian columns `J e_k` (exact divergence
//! `Σ_k (J e_k)_k`); seeding with noise gives `J ε` (Hutchinson).
//!
//! The reverse pass takes cotangents of the stacked output and returns those of the stacked
//! input and of the parameters. For the activation, with `ẏ` the tangent and `ȳ`, `ẏ̄` the
//! cotangents (`φ″` enters because `ẋ'` depends on `y`):
//!
//! ```text
//!     ȳ = x̄' φ′(y) + Σ_k ẋ̄'_k ⊙ ẏ_k ⊙ φ″(y),      ẏ̄_k = ẋ̄'_k ⊙ φ′(y)
//! ```
//!
//! and for the gate `ḡ = Σ_rows ȳ ⊙ u`, `c̄ = t ḡ ⊙ g(1−g)`, `b̄2 = ḡ ⊙ g(1−g)`,
//! `b̄3 = t Σ_primal ȳ`, `ū = ȳ ⊙ g`; then `W̄ = ūᵀ x` (all rows), `b̄1 = Σ_primal ū`,
//! `x̄ = ū W`. With `K = 0` this is ordinary backpropagation.

use crate::Float;
use crate::activation::{Activation, sigmoid};
use crate::gemm::{gemm, n as nop, t as top};
use crate::params::ParamLayout;
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// The kind of every layer of a net.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LayerKind {
    /// FFJORD's `ConcatSquashLinear`: `(W x + b1) ⊙ σ(t c + b2) + t b3`.
    ConcatSquash,
    /// `nn.Linear`: `W x + b` (no time dependence).
    Linear,
}

#[derive(Debug, Clone, Copy)]
struct Offsets {
    w: usize,
    b1: usize,
    /// `(c, b2, b3)` for concat-squash layers.
    gate: Option<(usize, usize, usize)>,
}

/// Per-call storage, sized for a batch and a tangent count.
#[derive(Debug, Clone, Default)]
struct Workspace<T> {
    batch: usize,
    tangents: usize,
    /// Layer inputs; `xs[L]` is the output. Each `(1 + K)B × d_l`.
    xs: Vec<Vec<T>>,
    /// Affine parts `u` (`(1 + K)B × d_{l+1}`).
    aff: Vec<Vec<T>>,
    /// Pre-activations `y`.
    pre: Vec<Vec<T>>,
    /// Gates `g` (`d_{l+1}`).
    gates: Vec<Vec<T>>,
    /// `φ′(y)` and `φ″(y)` at the primal pre-activations (`B × d_{l+1}`).
    d1: Vec<Vec<T>>,
    d2: Vec<Vec<T>>,
    /// Cotangent buffers.
    bar: [Vec<T>; 2],
    /// Column sums.
    colsum: Vec<T>,
}

/// A sequential network `d_0 → d_1 → … → d_L` with one activation between layers.
#[derive(Debug, Clone)]
pub struct OdeNet<T> {
    dims: Vec<usize>,
    kind: LayerKind,
    act: Activation,
    layout: ParamLayout,
    offsets: Vec<Offsets>,
    ws: Workspace<T>,
}

impl<T: Float> OdeNet<T> {
    /// A net with layer widths `dims` (at least two), all layers of `kind`, activation `act`
    /// between them. Parameter names follow FFJORD's `ODEnet`: `layers.{i}._layer.weight`,
    /// `layers.{i}._layer.bias`, `layers.{i}._hyper_gate.weight`, `layers.{i}._hyper_gate.bias`,
    /// `layers.{i}._hyper_bias.weight` (plain linear layers: `layers.{i}.weight`, `.bias`).
    pub fn new(dims: &[usize], kind: LayerKind, act: Activation) -> crate::Result<Self> {
        if dims.len() < 2 || dims.contains(&0) {
            return Err(crate::NnError::Invalid {
                name: "layer widths".into(),
                reason: format!("need at least two positive widths, got {dims:?}"),
            });
        }
        let mut layout = ParamLayout::default();
        let mut offsets = Vec::new();
        for (i, w) in dims.windows(2).enumerate() {
            let (din, dout) = (w[0], w[1]);
            offsets.push(match kind {
                LayerKind::ConcatSquash => {
                    let w = layout.push(format!("layers.{i}._layer.weight"), &[dout, din]);
                    let b1 = layout.push(format!("layers.{i}._layer.bias"), &[dout]);
                    let c = layout.push(format!("layers.{i}._hyper_gate.weight"), &[dout, 1]);
                    let b2 = layout.push(format!("layers.{i}._hyper_gate.bias"), &[dout]);
                    let b3 = layout.push(format!("layers.{i}._hyper_bias.weight"), &[dout, 1]);
                    Offsets {
                        w,
                        b1,
                        gate: Some((c, b2, b3)),
                    }
                }
                LayerKind::Linear => {
                    let w = layout.push(format!("layers.{i}.weight"), &[dout, din]);
                    let b1 = layout.push(format!("layers.{i}.bias"), &[dout]);
                    Offsets { w, b1, gate: None }
                }
            });
        }
        Ok(Self {
            dims: dims.to_vec(),
            kind,
            act,
            layout,
            offsets,
            ws: Workspace::default(),
        })
    }

    /// Input width.
    pub fn input_dim(&self) -> usize {
        self.dims[0]
    }

    /// Output width.
    pub fn output_dim(&self) -> usize {
        self.dims[self.dims.len() - 1]
    }

    /// Layer widths.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Layer kind.
    pub fn kind(&self) -> LayerKind {
        self.kind
    }

    /// Activation between layers.
    pub fn activation(&self) -> Activation {
        self.act
    }

    /// The parameter layout.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// Number of parameters.
    pub fn param_len(&self) -> usize {
        self.layout.len()
    }

    /// PyTorch's default `nn.Linear` initialization: every weight and bias of a layer with fan-in
    /// `m` uniform in `[−1/√m, 1/√m]` (the hyper-network layers have fan-in 1).
    pub fn init_params(&self, rng: &mut Rng) -> Vec<T> {
        let mut p = vec![T::zero(); self.param_len()];
        for e in self.layout.entries() {
            let fan_in = if e.name.contains("_hyper_") {
                1
            } else {
                self.fan_in_of(&e.name)
            };
            let bound = 1.0 / (fan_in as f64).sqrt();
            for v in &mut p[e.range()] {
                *v = <T as rk::Scalar>::of(rng.uniform_in(-bound, bound));
            }
        }
        p
    }

    fn fan_in_of(&self, name: &str) -> usize {
        let layer: usize = name
            .split('.')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        self.dims[layer]
    }

    fn ensure(&mut self, batch: usize, tangents: usize) {
        if self.ws.batch == batch && self.ws.tangents == tangents && !self.ws.xs.is_empty() {
            return;
        }
        let rows = (1 + tangents) * batch;
        let z = T::zero();
        let max_dim = *self.dims.iter().max().unwrap_or(&1);
        self.ws = Workspace {
            batch,
            tangents,
            xs: self.dims.iter().map(|&d| vec![z; rows * d]).collect(),
            aff: self.dims[1..].iter().map(|&d| vec![z; rows * d]).collect(),
            pre: self.dims[1..].iter().map(|&d| vec![z; rows * d]).collect(),
            gates: self.dims[1..].iter().map(|&d| vec![z; d]).collect(),
            d1: self.dims[1..].iter().map(|&d| vec![z; batch * d]).collect(),
            d2: self.dims[1..].iter().map(|&d| vec![z; batch * d]).collect(),
            bar: [vec![z; rows * max_dim], vec![z; rows * max_dim]],
            colsum: vec![z; max_dim],
        };
    }

    /// Forward pass on `x` (`B × d_0`) with `K` tangents `seeds` (`K × B × d_0`, may be empty).
    /// The stacked output is [`OdeNet::output`]. Shapes are the caller's responsibility (checked
    /// by `debug_assert!`); the public right-hand sides check them.
    pub fn forward(&mut self, t: T, params: &[T], x: &[T], seeds: &[T], batch: usize) {
        let d0 = self.dims[0];
        debug_assert_eq!(x.len(), batch * d0);
        debug_assert_eq!(seeds.len() % (batch * d0).max(1), 0);
        let k = seeds.len() / (batch * d0).max(1);
        self.ensure(batch, k);
        let rows = (1 + k) * batch;
        let nl = self.dims.len() - 1;
        self.ws.xs[0][..batch * d0].copy_from_slice(x);
        self.ws.xs[0][batch * d0..].copy_from_slice(seeds);
        for l in 0..nl {
            let (din, dout) = (self.dims[l], self.dims[l + 1]);
            let off = self.offsets[l];
            let w = &params[off.w..off.w + dout * din];
            let b1 = &params[off.b1..off.b1 + dout];
            let prim = batch * dout;
            let ws = &mut self.ws;
            gemm(
                &mut ws.aff[l],
                rows,
                dout,
                din,
                nop(&ws.xs[l]),
                top(w),
                T::one(),
                false,
            );
            for row in ws.aff[l][..prim].chunks_exact_mut(dout) {
                for (u, &b) in row.iter_mut().zip(b1) {
                    *u += b;
                }
            }
            let pre = &mut ws.pre[l];
            match off.gate {
                Some((c, b2, b3)) => {
                    let gate = &mut ws.gates[l];
                    for ((g, &cj), &bj) in gate
                        .iter_mut()
                        .zip(&params[c..c + dout])
                        .zip(&params[b2..b2 + dout])
                    {
                        *g = sigmoid(t * cj + bj);
                    }
                    for (prow, arow) in pre.chunks_exact_mut(dout).zip(ws.aff[l].chunks_exact(dout))
                    {
                        for ((p, &a), &g) in prow.iter_mut().zip(arow).zip(gate.iter()) {
                            *p = a * g;
                        }
                    }
                    let b3 = &params[b3..b3 + dout];
                    for prow in pre[..prim].chunks_exact_mut(dout) {
                        for (p, &b) in prow.iter_mut().zip(b3) {
                            *p += t * b;
                        }
                    }
                }
                None => pre.copy_from_slice(&ws.aff[l]),
            }
            let (_, tail) = ws.xs.split_at_mut(l + 1);
            let out = &mut tail[0];
            if l + 1 < nl {
                let (d1, d2) = (&mut ws.d1[l], &mut ws.d2[l]);
                self.act.apply(&pre[..prim], &mut out[..prim], d1, d2);
                for (otan, ptan) in out[prim..]
                    .chunks_exact_mut(prim)
                    .zip(pre[prim..].chunks_exact(prim))
                {
                    for ((o, &p), &d) in otan.iter_mut().zip(ptan).zip(d1.iter()) {
                        *o = d * p;
                    }
                }
            } else {
                out.copy_from_slice(pre);
            }
        }
    }

    /// The stacked output of the last [`OdeNet::forward`]: `B` primal rows, then `K·B` tangent
    /// rows, each of width `d_L`.
    pub fn output(&self) -> &[T] {
        &self.ws.xs[self.dims.len() - 1]
    }

    /// Reverse pass of the last forward call. `out_bar` holds the cotangents of the stacked
    /// output (`(1 + K)B × d_L`). Overwrites `pbar` with the parameter cotangent and `xbar` with
    /// the cotangent of the stacked input (`(1 + K)B × d_0`).
    pub fn backward(&mut self, t: T, params: &[T], out_bar: &[T], pbar: &mut [T], xbar: &mut [T]) {
        let batch = self.ws.batch;
        let k = self.ws.tangents;
        let rows = (1 + k) * batch;
        let nl = self.dims.len() - 1;
        pbar.fill(T::zero());
        let [g, next] = &mut self.ws.bar;
        g[..out_bar.len()].copy_from_slice(out_bar);
        for l in (0..nl).rev() {
            let (din, dout) = (self.dims[l], self.dims[l + 1]);
            let off = self.offsets[l];
            let g_l = &mut g[..rows * dout];
            let pre = &self.ws.pre[l];
            if l + 1 < nl {
                let prim = batch * dout;
                let (d1, d2) = (&self.ws.d1[l], &self.ws.d2[l]);
                let (gp, gt) = g_l.split_at_mut(prim);
                for (g, &d) in gp.iter_mut().zip(d1) {
                    *g *= d;
                }
                for (gtan, ptan) in gt
                    .chunks_exact_mut(prim)
                    .zip(pre[prim..].chunks_exact(prim))
                {
                    for ((((g0, g), &p), &a), &b) in
                        gp.iter_mut().zip(gtan.iter_mut()).zip(ptan).zip(d1).zip(d2)
                    {
                        *g0 += *g * p * b;
                        *g *= a;
                    }
                }
            }
            if let Some((c, b2, b3)) = off.gate {
                let gate = &self.ws.gates[l];
                let aff = &self.ws.aff[l];
                let colsum = &mut self.ws.colsum[..dout];
                // ḡ = Σ_rows ȳ ⊙ u
                colsum.fill(T::zero());
                for (grow, arow) in g_l.chunks_exact(dout).zip(aff.chunks_exact(dout)) {
                    for ((s, &g), &a) in colsum.iter_mut().zip(grow).zip(arow) {
                        *s += g * a;
                    }
                }
                for j in 0..dout {
                    let s = colsum[j] * gate[j] * (T::one() - gate[j]);
                    pbar[c + j] = t * s;
                    pbar[b2 + j] = s;
                }
                // b̄3 = t Σ_primal ȳ
                let b3bar = &mut pbar[b3..b3 + dout];
                for grow in g_l[..batch * dout].chunks_exact(dout) {
                    for (s, &g) in b3bar.iter_mut().zip(grow) {
                        *s += t * g;
                    }
                }
                for grow in g_l.chunks_exact_mut(dout) {
                    for (g, &gt) in grow.iter_mut().zip(gate) {
                        *g *= gt;
                    }
                }
            }
            let b1bar = &mut pbar[off.b1..off.b1 + dout];
            for grow in g_l[..batch * dout].chunks_exact(dout) {
                for (s, &g) in b1bar.iter_mut().zip(grow) {
                    *s += g;
                }
            }
            // W̄ = ūᵀ x over all rows.
            gemm(
                &mut pbar[off.w..off.w + dout * din],
                dout,
                din,
                rows,
                top(g_l),
                nop(&self.ws.xs[l]),
                T::one(),
                false,
            );
            let w = &params[off.w..off.w + dout * din];
            gemm(
                &mut next[..rows * din],
                rows,
                din,
                dout,
                nop(g_l),
                nop(w),
                T::one(),
                false,
            );
            std::mem::swap(g, next);
        }
        let d0 = self.dims[0];
        xbar.copy_from_slice(&g[..rows * d0]);
    }
}
