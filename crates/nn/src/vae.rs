//! A variational autoencoder whose approximate posterior is refined by a continuous normalizing
//! flow (FFJORD's VAE, the IRDM paper's §4.2), for binary images of `P` pixels:
//!
//! ```text
//!     encoder:  [μ, s, c] = E(x)               (MLP P → H → 2D + C; σ = exp s)
//!     base:     z₀ = μ + σ ⊙ ε,  ε ~ N(0, I),   log q₀(z₀|x) = Σ_j (−½ log 2π − s_j − ½ ε_j²)
//!     flow:     z_T, Δ_T from the conditioned CNF ([`ConditionedCnf`]) on [0, T], context c,
//!               log q(z_T|x) = log q₀(z₀|x) + Δ_T        (dΔ/dt = −tr ∂f/∂z)
//!     decoder:  ℓ = G(z_T)                      (MLP D → H → P, Bernoulli logits)
//!               −log p(x|z_T) = Σ_p softplus(ℓ_p) − x_p ℓ_p
//!     loss:     −ELBO = −log p(x|z_T) − log N(z_T; 0, I) + log q(z_T|x),   L = mean over the batch
//! ```
//!
//! The gradient is reverse mode through the three parts, with the flow's part by any
//! [`Method`]: the decoder's VJP gives `∂L/∂ℓ = (σ(ℓ) − x)/B` and `∂L/∂z_T`, the prior adds
//! `z_T/B`, `∂L/∂Δ_T = 1/B`; the flow's backward pass returns `∂L/∂z₀` and `∂L/∂c` (the context
//! is part of the flow's state) and the flow's parameter gradient; then
//! `∂L/∂μ = ∂L/∂z₀`, `∂L/∂s = ∂L/∂z₀ ⊙ σ ⊙ ε − 1/B`, and the encoder's VJP. The importance-
//! weighted bound `log p(x) ≥ log (1/K) Σ_k p(x, z_T^k)/q(z_T^k|x)` (Burda et al.) is the test
//! log-likelihood estimate.

use crate::conditioned_cnf::ConditionedCnf;
use crate::error::{NnError, Result, check_finite, shape_err};
use crate::net::{LayerKind, OdeNet};
use crate::rng::Rng;
use crate::{Activation, Float};
use adjoint::{Config, Info, IrdmOptions, Method, Vjp, forward};
use std::ops::Range;

/// Shape of a [`CnfVae`].
#[derive(Debug, Clone, PartialEq)]
pub struct VaeSpec {
    /// Pixels per image `P`.
    pub pixels: usize,
    /// Latent dimension `D`.
    pub latent: usize,
    /// Context values the encoder hands the flow `C`.
    pub context: usize,
    /// Hidden width `H` of the encoder and the decoder.
    pub hidden: usize,
    /// Hidden widths of the flow's net (`D + C → … → D`).
    pub flow_hidden: Vec<usize>,
    /// Activation of every net.
    pub activation: Activation,
    /// Flow integration time `T`.
    pub t1: f64,
}

/// The VAE's loss, its gradient and the flow's counts.
#[derive(Debug, Clone)]
pub struct VaeGradient<T> {
    /// Mean negative ELBO of the batch (nats per image).
    pub loss: f64,
    /// Mean reconstruction term `−log p(x|z_T)` (nats per image).
    pub reconstruction: f64,
    /// `dL/dθ`, `[encoder, flow, decoder]` ([`CnfVae::param_ranges`]).
    pub dtheta: Vec<T>,
    /// The flow's forward and backward counts.
    pub info: Info,
}

/// The model, sized for batches of `batch` images.
#[derive(Debug, Clone)]
pub struct CnfVae<T> {
    spec: VaeSpec,
    batch: usize,
    encoder: OdeNet<T>,
    flow: ConditionedCnf<T>,
    decoder: OdeNet<T>,
    ranges: [Range<usize>; 3],
}

/// What the forward pass keeps for the loss and the backward pass.
struct Encoded<T> {
    /// `σ = exp s` (`B × D`).
    sigma: Vec<T>,
    /// `z₀` (`B × D`).
    z0: Vec<T>,
    /// The context (`B × C`).
    c: Vec<T>,
    /// Per image `Σ_j s_j`.
    sum_s: Vec<f64>,
}

fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// `1` where a pixel exceeds `threshold`, else `0` (a fixed binarization of gray images).
pub fn binarize(pixels: &[f32], threshold: f32) -> Vec<f32> {
    pixels
        .iter()
        .map(|&p| if p > threshold { 1.0 } else { 0.0 })
        .collect()
}

impl<T: Float> CnfVae<T> {
    /// A model of shape `spec` for batches of `batch` images.
    pub fn new(spec: VaeSpec, batch: usize) -> Result<Self> {
        let bad = |reason: String| NnError::Invalid {
            name: "VAE".into(),
            reason,
        };
        if spec.pixels == 0 || spec.latent == 0 || spec.hidden == 0 || batch == 0 {
            return Err(bad(format!(
                "pixels, latent, hidden and batch must be >= 1, got {}, {}, {}, {batch}",
                spec.pixels, spec.latent, spec.hidden
            )));
        }
        if !(spec.t1.is_finite() && spec.t1 > 0.0) {
            return Err(bad(format!(
                "flow time must be finite and > 0, got {}",
                spec.t1
            )));
        }
        let (p, d, h) = (spec.pixels, spec.latent, spec.hidden);
        let encoder = OdeNet::new(
            &[p, h, 2 * d + spec.context],
            LayerKind::Linear,
            spec.activation,
        )?;
        let flow = ConditionedCnf::new(d, spec.context, &spec.flow_hidden, spec.activation, batch)?;
        let decoder = OdeNet::new(&[d, h, p], LayerKind::Linear, spec.activation)?;
        let (ne, nf, nd) = (encoder.param_len(), flow.param_len(), decoder.param_len());
        Ok(Self {
            spec,
            batch,
            encoder,
            flow,
            decoder,
            ranges: [0..ne, ne..ne + nf, ne + nf..ne + nf + nd],
        })
    }

    /// The shape.
    pub fn spec(&self) -> &VaeSpec {
        &self.spec
    }

    /// Batch size.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Resizes for batches of `batch` images.
    pub fn set_batch(&mut self, batch: usize) -> Result<()> {
        self.flow.set_batch(batch)?;
        self.batch = batch;
        Ok(())
    }

    /// Shards the flow's batch over up to `threads` threads ([`ConditionedCnf::set_threads`];
    /// the encoder and decoder stay sequential). Run the gradient inside a rayon pool.
    pub fn set_threads(&mut self, threads: usize) {
        self.flow.set_threads(threads);
    }

    /// Number of parameters.
    pub fn param_len(&self) -> usize {
        self.ranges[2].end
    }

    /// Where the encoder's, the flow's and the decoder's parameters lie in `θ`.
    pub fn param_ranges(&self) -> [Range<usize>; 3] {
        self.ranges.clone()
    }

    /// PyTorch-style initialization of the three nets. The encoder's `s` outputs start near
    /// zero (σ ≈ 1) like every other output.
    pub fn init_params(&self, rng: &mut Rng) -> Vec<T> {
        let mut p = self.encoder.init_params(rng);
        p.extend(self.flow.net.init_params(rng));
        p.extend(self.decoder.init_params(rng));
        p
    }

    fn check(&self, params: &[T], x: &[T], eps: &[T]) -> Result<()> {
        if params.len() != self.param_len() {
            return Err(shape_err("VAE parameters", self.param_len(), params.len()));
        }
        let (b, p, d) = (self.batch, self.spec.pixels, self.spec.latent);
        if x.len() != b * p {
            return Err(shape_err("VAE images", b * p, x.len()));
        }
        if eps.len() != b * d {
            return Err(shape_err("VAE base noise", b * d, eps.len()));
        }
        check_finite("VAE parameters", params)?;
        check_finite("VAE base noise", eps)?;
        if let Some(index) = x.iter().position(|&v| !(v >= T::zero() && v <= T::one())) {
            return Err(NnError::Invalid {
                name: "VAE images".into(),
                reason: format!("pixel {index} is not in [0, 1]"),
            });
        }
        Ok(())
    }

    fn config(&self, rtol: f64, atol: f64, irdm: IrdmOptions) -> Config<T> {
        let of = <T as rk::Scalar>::of;
        let mut c = Config::new(of(rtol), of(atol));
        c.forward = c
            .forward
            .with_norm(rk::ErrorNorm::Groups(self.flow.state_groups()));
        c.irdm = irdm;
        c
    }

    /// Runs the encoder and draws `z₀ = μ + σ ⊙ ε`.
    fn encode(&mut self, params: &[T], x: &[T], eps: &[T]) -> Encoded<T> {
        let (b, d, k) = (self.batch, self.spec.latent, self.spec.context);
        let w = 2 * d + k;
        let of = <T as rk::Scalar>::of;
        let as_f64 = <T as rk::Scalar>::as_f64;
        self.encoder
            .forward(T::zero(), &params[self.ranges[0].clone()], x, &[], b);
        let out = self.encoder.output();
        let mut e = Encoded {
            sigma: vec![T::zero(); b * d],
            z0: vec![T::zero(); b * d],
            c: vec![T::zero(); b * k],
            sum_s: vec![0.0; b],
        };
        for i in 0..b {
            let row = &out[i * w..(i + 1) * w];
            for j in 0..d {
                let s = as_f64(row[d + j]);
                let sigma = of(s.exp());
                e.sum_s[i] += s;
                e.sigma[i * d + j] = sigma;
                e.z0[i * d + j] = row[j] + sigma * eps[i * d + j];
            }
            e.c[i * k..(i + 1) * k].copy_from_slice(&row[2 * d..]);
        }
        e
    }

    /// Per image `(−ELBO, −log p(x|z_T))` from the flow's final state; with `grad` (the
    /// decoder's slice of `dL/dθ`, for `L` the batch mean) also the decoder's parameter
    /// gradient and the cotangent `∂L/∂state_T` for the flow's backward pass.
    fn decode_terms(
        &mut self,
        params: &[T],
        x: &[T],
        eps: &[T],
        enc: &Encoded<T>,
        state_t: &[T],
        grad: Option<&mut [T]>,
    ) -> (Vec<(f64, f64)>, Option<Vec<T>>) {
        let (b, p, d, k) = (
            self.batch,
            self.spec.pixels,
            self.spec.latent,
            self.spec.context,
        );
        let of = <T as rk::Scalar>::of;
        let as_f64 = <T as rk::Scalar>::as_f64;
        let z_t = &state_t[..b * d];
        let delta = &state_t[b * (d + k)..];
        let theta_d = &params[self.ranges[2].clone()];
        self.decoder.forward(T::zero(), theta_d, z_t, &[], b);
        let logits = self.decoder.output();
        let half_log_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        let mut terms = Vec::with_capacity(b);
        for i in 0..b {
            let rec: f64 = logits[i * p..(i + 1) * p]
                .iter()
                .zip(&x[i * p..(i + 1) * p])
                .map(|(&l, &xv)| {
                    let l = as_f64(l);
                    softplus(l) - as_f64(xv) * l
                })
                .sum();
            let (mut prior, mut base) = (0.0, 0.0);
            for j in 0..d {
                let z = as_f64(z_t[i * d + j]);
                let e = as_f64(eps[i * d + j]);
                prior += half_log_2pi + 0.5 * z * z;
                base += -half_log_2pi - 0.5 * e * e;
            }
            base -= enc.sum_s[i];
            terms.push((rec + prior + base + as_f64(delta[i]), rec));
        }
        let Some(dtheta_d) = grad else {
            return (terms, None);
        };
        let inv_b = 1.0 / b as f64;
        let lbar: Vec<T> = logits
            .iter()
            .zip(x)
            .map(|(&l, &xv)| of((crate::activation::sigmoid(as_f64(l)) - as_f64(xv)) * inv_b))
            .collect();
        let mut zbar = vec![T::zero(); b * d];
        self.decoder
            .backward(T::zero(), theta_d, &lbar, dtheta_d, &mut zbar);
        let mut cot = vec![T::zero(); state_t.len()];
        for (c, (&zb, &z)) in cot.iter_mut().zip(zbar.iter().zip(z_t)) {
            *c = zb + z * of(inv_b);
        }
        cot[b * (d + k)..].fill(of(inv_b));
        (terms, Some(cot))
    }

    /// The mean negative ELBO of the images `x` (`B × P`, pixels in `[0, 1]`) with base noise
    /// `eps` (`B × D`), and its gradient, the flow differentiated by `method` at `rtol`, `atol`.
    #[allow(clippy::too_many_arguments)]
    pub fn loss_and_gradient(
        &mut self,
        params: &[T],
        x: &[T],
        eps: &[T],
        method: Method,
        rtol: f64,
        atol: f64,
        irdm: IrdmOptions,
    ) -> Result<VaeGradient<T>> {
        self.check(params, x, eps)?;
        let (b, d, k) = (self.batch, self.spec.latent, self.spec.context);
        let w = 2 * d + k;
        let of = <T as rk::Scalar>::of;
        let enc = self.encode(params, x, eps);
        let state0 = self.flow.initial_state(&enc.z0, &enc.c)?;
        check_finite("VAE flow's initial state", &state0)?;
        let ts = [T::zero(), of(self.spec.t1)];
        let config = self.config(rtol, atol, irdm);
        let theta_f = params[self.ranges[1].clone()].to_vec();
        let fwd = forward(&mut self.flow, &theta_f, &state0, &ts, method, &config)?;
        let state_t = fwd.outputs()[1].clone();
        let mut dtheta = vec![T::zero(); self.param_len()];
        let dec_range = self.ranges[2].clone();
        let (terms, cot) =
            self.decode_terms(params, x, eps, &enc, &state_t, Some(&mut dtheta[dec_range]));
        let cot = cot.expect("asked for the cotangent");
        let zeros = vec![T::zero(); state0.len()];
        let g = fwd.backward(&mut self.flow, &theta_f, &[zeros, cot])?;
        dtheta[self.ranges[1].clone()].copy_from_slice(&g.dtheta);
        let inv_b = of(1.0 / b as f64);
        let mut enc_bar = vec![T::zero(); b * w];
        for i in 0..b {
            let row = &mut enc_bar[i * w..(i + 1) * w];
            for j in 0..d {
                let gz = g.dz0[i * d + j];
                row[j] = gz;
                row[d + j] = gz * enc.sigma[i * d + j] * eps[i * d + j] - inv_b;
            }
            row[2 * d..].copy_from_slice(&g.dz0[b * d + i * k..b * d + (i + 1) * k]);
        }
        let mut xbar = vec![T::zero(); x.len()];
        let enc_range = self.ranges[0].clone();
        let theta_e = &params[enc_range.clone()];
        self.encoder.backward(
            T::zero(),
            theta_e,
            &enc_bar,
            &mut dtheta[enc_range],
            &mut xbar,
        );
        let n = b as f64;
        let loss = terms.iter().map(|t| t.0).sum::<f64>() / n;
        let reconstruction = terms.iter().map(|t| t.1).sum::<f64>() / n;
        if !loss.is_finite() {
            return Err(NnError::NonFinite {
                what: "VAE loss".into(),
                index: 0,
            });
        }
        check_finite("VAE gradient", &dtheta)?;
        Ok(VaeGradient {
            loss,
            reconstruction,
            dtheta,
            info: g.info,
        })
    }

    /// Per image `(−ELBO, −log p(x|z_T))` with base noise `eps`, by forward solves only.
    pub fn negative_elbo(
        &mut self,
        params: &[T],
        x: &[T],
        eps: &[T],
        rtol: f64,
        atol: f64,
    ) -> Result<Vec<(f64, f64)>> {
        self.check(params, x, eps)?;
        let of = <T as rk::Scalar>::of;
        let enc = self.encode(params, x, eps);
        let state0 = self.flow.initial_state(&enc.z0, &enc.c)?;
        check_finite("VAE flow's initial state", &state0)?;
        let options = rk::Options::new(of(rtol), of(atol))
            .with_norm(rk::ErrorNorm::Groups(self.flow.state_groups()));
        let theta_f = params[self.ranges[1].clone()].to_vec();
        let sol = rk::solve(
            &mut self.flow,
            &theta_f,
            rk::Method::Dopri5,
            &options,
            &[T::zero(), of(self.spec.t1)],
            &state0,
        )
        .map_err(|source| adjoint::AdjointError::Solve {
            method: "VAE evaluation",
            pass: "forward",
            source,
        })?;
        let (terms, _) = self.decode_terms(params, x, eps, &enc, &sol.ys[1], None);
        Ok(terms)
    }

    /// Per image, the importance-weighted estimate of `−log p(x)` from `samples` draws of the
    /// base noise from `rng`: `−log (1/K) Σ_k exp(ELBO_k)`, a bound that tightens as `K` grows.
    pub fn importance_weighted_nll(
        &mut self,
        params: &[T],
        x: &[T],
        samples: usize,
        rng: &mut Rng,
        rtol: f64,
        atol: f64,
    ) -> Result<Vec<f64>> {
        if samples == 0 {
            return Err(NnError::Invalid {
                name: "importance samples".into(),
                reason: "must be at least 1".into(),
            });
        }
        let n = self.batch * self.spec.latent;
        let mut weights: Vec<Vec<f64>> = vec![Vec::with_capacity(samples); self.batch];
        for _ in 0..samples {
            let eps: Vec<T> = (0..n)
                .map(|_| <T as rk::Scalar>::of(rng.normal()))
                .collect();
            for (w, t) in weights
                .iter_mut()
                .zip(self.negative_elbo(params, x, &eps, rtol, atol)?)
            {
                w.push(-t.0);
            }
        }
        let ln_k = (samples as f64).ln();
        Ok(weights
            .iter()
            .map(|w| {
                let m = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                -(m + w.iter().map(|v| (v - m).exp()).sum::<f64>().ln() - ln_k)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adjoint::BackwardNorm;

    fn tiny() -> (CnfVae<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let spec = VaeSpec {
            pixels: 6,
            latent: 2,
            context: 2,
            hidden: 5,
            flow_hidden: vec![4],
            activation: Activation::Tanh,
            t1: 0.5,
        };
        let vae = CnfVae::<f64>::new(spec, 3).unwrap();
        let mut rng = Rng::new(5);
        let params = vae.init_params(&mut rng);
        let x: Vec<f64> = (0..18)
            .map(|i| ((i * 7 + 3) % 5 < 2) as u8 as f64)
            .collect();
        let eps: Vec<f64> = (0..6).map(|_| rng.normal()).collect();
        (vae, params, x, eps)
    }

    /// The gradient of the negative ELBO against central differences of the loss (tight
    /// tolerances, f64), for Direct, RDM and IRDM.
    #[test]
    fn elbo_gradient_matches_finite_differences() {
        let (mut vae, params, x, eps) = tiny();
        let (rtol, atol) = (1e-11, 1e-11);
        let irdm = IrdmOptions::default();
        let loss = |vae: &mut CnfVae<f64>, p: &[f64]| {
            let t = vae.negative_elbo(p, &x, &eps, rtol, atol).unwrap();
            t.iter().map(|t| t.0).sum::<f64>() / 3.0
        };
        let g = vae
            .loss_and_gradient(&params, &x, &eps, Method::Direct, rtol, atol, irdm)
            .unwrap();
        assert!((g.loss - loss(&mut vae, &params)).abs() < 1e-9);
        let h = 1e-5;
        let mut worst: f64 = 0.0;
        for i in 0..params.len() {
            let (mut pp, mut pm) = (params.clone(), params.clone());
            pp[i] += h;
            pm[i] -= h;
            let fd = (loss(&mut vae, &pp) - loss(&mut vae, &pm)) / (2.0 * h);
            worst = worst.max((fd - g.dtheta[i]).abs());
        }
        assert!(worst < 1e-6, "largest difference {worst}");
        for method in [
            Method::Rdm {
                norm: BackwardNorm::Full,
            },
            Method::irdm_lobatto(15, BackwardNorm::Seminorm),
        ] {
            let other = vae
                .loss_and_gradient(&params, &x, &eps, method, rtol, atol, irdm)
                .unwrap();
            let diff = other
                .dtheta
                .iter()
                .zip(&g.dtheta)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(
                diff < 1e-6,
                "{}: differs from Direct by {diff}",
                method.name()
            );
        }
    }

    /// With one sample the importance-weighted estimate is the negative ELBO, and it never
    /// exceeds the mean negative ELBO of its samples (Jensen).
    #[test]
    fn importance_weighted_bound_is_below_the_elbo() {
        let (mut vae, params, x, _) = tiny();
        let one = vae
            .importance_weighted_nll(&params, &x, 1, &mut Rng::new(1), 1e-8, 1e-8)
            .unwrap();
        let mut rng = Rng::new(1);
        let eps: Vec<f64> = (0..6).map(|_| rng.normal()).collect();
        let elbo = vae.negative_elbo(&params, &x, &eps, 1e-8, 1e-8).unwrap();
        for (a, b) in one.iter().zip(&elbo) {
            assert!((a - b.0).abs() < 1e-9);
        }
        let many = vae
            .importance_weighted_nll(&params, &x, 8, &mut Rng::new(2), 1e-8, 1e-8)
            .unwrap();
        let mut rng = Rng::new(2);
        let mut mean = [0.0; 3];
        for _ in 0..8 {
            let eps: Vec<f64> = (0..6).map(|_| rng.normal()).collect();
            for (m, t) in mean
                .iter_mut()
                .zip(vae.negative_elbo(&params, &x, &eps, 1e-8, 1e-8).unwrap())
            {
                *m += t.0 / 8.0;
            }
        }
        for (iw, m) in many.iter().zip(&mean) {
            assert!(iw <= &(m + 1e-12), "{iw} > {m}");
        }
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let (mut vae, params, x, eps) = tiny();
        let irdm = IrdmOptions::default();
        let m = Method::Direct;
        assert!(
            vae.loss_and_gradient(&params[1..], &x, &eps, m, 1e-6, 1e-6, irdm)
                .is_err()
        );
        assert!(
            vae.loss_and_gradient(&params, &x[1..], &eps, m, 1e-6, 1e-6, irdm)
                .is_err()
        );
        assert!(
            vae.loss_and_gradient(&params, &x, &eps[1..], m, 1e-6, 1e-6, irdm)
                .is_err()
        );
        let mut gray = x.clone();
        gray[4] = 1.5;
        let e = vae
            .loss_and_gradient(&params, &gray, &eps, m, 1e-6, 1e-6, irdm)
            .unwrap_err();
        assert!(e.to_string().contains("pixel 4"), "{e}");
        let mut nan = eps.clone();
        nan[0] = f64::NAN;
        assert!(
            vae.loss_and_gradient(&params, &x, &nan, m, 1e-6, 1e-6, irdm)
                .is_err()
        );
        assert!(
            vae.importance_weighted_nll(&params, &x, 0, &mut Rng::new(0), 1e-6, 1e-6)
                .is_err()
        );
        let spec = VaeSpec {
            t1: 0.0,
            ..vae.spec().clone()
        };
        assert!(CnfVae::<f64>::new(spec, 3).is_err());
        assert_eq!(binarize(&[0.2, 0.7, 0.5], 0.5), vec![0.0, 1.0, 0.0]);
    }
}
