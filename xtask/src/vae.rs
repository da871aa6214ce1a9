//! The VAE suite (paper §4.2, Fig. 5): a VAE whose posterior is refined by a conditioned CNF
//! (`nn::vae`, FFJORD's construction) trained on binarized Fashion-MNIST (28 × 28, the shape of
//! caltech silhouettes) by RDM and by IRDM with 8 and 16 Lobatto nodes, interleaved iteration by
//! iteration with the same initial weights, batches and base noise. Reported: test negative
//! ELBO against time and iteration, NFE per iteration, and an importance-weighted test NLL.

use crate::interleaved::{BatchOrder, learners};
use crate::results::{VaePoint, VaeRun, describe};
use adjoint::{BackwardNorm, IrdmOptions, Method, Segments};
use indicatif::ProgressBar;
use nn::vae::{CnfVae, VaeSpec, binarize};
use nn::{Activation, Rng};
use std::path::PathBuf;

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Pixels above this gray level are 1 (a fixed binarization).
pub const BINARIZE_AT: f32 = 0.5;

/// Settings of the suite.
#[derive(Debug, Clone)]
pub struct VaeSettings {
    /// Fashion-MNIST folder.
    pub fashion_mnist: PathBuf,
    /// Training images (the first ones of the training set).
    pub train_images: usize,
    /// Test images evaluated (the first ones of the test set).
    pub test_images: usize,
    /// Latent dimension.
    pub latent: usize,
    /// Context values from the encoder to the flow.
    pub context: usize,
    /// Hidden width of the encoder and the decoder.
    pub hidden: usize,
    /// Hidden widths of the flow's net.
    pub flow_hidden: Vec<usize>,
    /// Batch.
    pub batch: usize,
    /// Iterations.
    pub iters: usize,
    /// Test negative ELBO every this many iterations (and at the end).
    pub eval_every: usize,
    /// Importance samples of the final test NLL.
    pub iw_samples: usize,
    /// Solver `rtol`.
    pub rtol: f64,
    /// Solver `atol`.
    pub atol: f64,
    /// Adam learning rate.
    pub lr: f64,
    /// Seed of weights, batches and noise.
    pub seed: u64,
    /// Threads the flow's batch is sharded over (the whole run executes in a pool of them).
    pub threads: usize,
}

/// RDM and IRDM with 8 and 16 nodes (one grid over the flow's solve).
pub fn methods() -> Vec<(String, Method)> {
    let mut v = vec![(
        "rdm".to_string(),
        Method::Rdm {
            norm: BackwardNorm::Full,
        },
    )];
    for n in [8, 16] {
        v.push((
            format!("irdm{n}"),
            Method::irdm_lobatto(n - 1, BackwardNorm::Full),
        ));
    }
    v
}

/// One method's learner of the suite.
type Learner = crate::interleaved::Learner<CnfVae<f32>, f32, VaePoint>;

/// The first `n` images of `set`, binarized, row-major.
fn images(set: &nn::ImageSet, n: usize) -> Vec<f32> {
    let n = n.min(set.len());
    binarize(&set.pixels[..n * set.rows * set.cols], BINARIZE_AT)
}

/// Test images in batches of the evaluator's size: mean negative ELBO with the fixed noise
/// stream `seed`, or with `iw` the importance-weighted NLL from that many samples.
fn evaluate(
    model: &mut CnfVae<f32>,
    params: &[f32],
    test: &[f32],
    s: &VaeSettings,
    iw: Option<usize>,
) -> AnyResult<f64> {
    let (b, p, d) = (model.batch(), model.spec().pixels, model.spec().latent);
    let batches = test.len() / (b * p);
    let mut rng = Rng::new(s.seed ^ 0xe1b0);
    let mut sum = 0.0;
    for k in 0..batches {
        let x = &test[k * b * p..(k + 1) * b * p];
        match iw {
            Some(samples) => {
                let nll =
                    model.importance_weighted_nll(params, x, samples, &mut rng, s.rtol, s.atol)?;
                sum += nll.iter().sum::<f64>();
            }
            None => {
                let eps: Vec<f32> = (0..b * d).map(|_| rng.normal() as f32).collect();
                let terms = model.negative_elbo(params, x, &eps, s.rtol, s.atol)?;
                sum += terms.iter().map(|t| t.0).sum::<f64>();
            }
        }
    }
    Ok(sum / (batches * b).max(1) as f64)
}

/// Trains every method; one [`VaeRun`] each, inside a pool of `s.threads` workers.
pub fn run(s: &VaeSettings, progress: &ProgressBar) -> AnyResult<Vec<VaeRun>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(s.threads.max(1))
        .build()
        .map_err(|e| format!("vae: cannot start {} threads: {e}", s.threads))?;
    pool.install(|| run_here(s, progress).map_err(|e| e.to_string()))
        .map_err(Into::into)
}

fn run_here(s: &VaeSettings, progress: &ProgressBar) -> AnyResult<Vec<VaeRun>> {
    if s.batch == 0 || s.iters == 0 || s.iw_samples == 0 {
        return Err("vae: batch, iterations and importance samples must be >= 1".into());
    }
    let data = nn::FashionMnist::load(&s.fashion_mnist)?;
    let pixels = data.train.rows * data.train.cols;
    let train = images(&data.train, s.train_images);
    let train_n = train.len() / pixels;
    let test_batch = s.batch.min(s.test_images).max(1);
    let test_n = s.test_images.min(data.test.len()) / test_batch * test_batch;
    let test = images(&data.test, test_n);
    if train_n < s.batch || test_n == 0 {
        return Err(format!(
            "vae: {train_n} training and {test_n} test images, need at least one batch of {} and one test batch",
            s.batch
        )
        .into());
    }
    let spec = VaeSpec {
        pixels,
        latent: s.latent,
        context: s.context,
        hidden: s.hidden,
        flow_hidden: s.flow_hidden.clone(),
        activation: Activation::Softplus,
        t1: 0.5,
    };
    let mut template = CnfVae::<f32>::new(spec, s.batch)?;
    template.set_threads(s.threads);
    let init = template.init_params(&mut Rng::new(s.seed));
    let entries = methods();
    let mut learners: Vec<Learner> = learners(entries.len(), &template, &init, s.lr)?;
    let irdm = IrdmOptions {
        segments: Segments::Single,
        ..IrdmOptions::default()
    };
    let mut evaluator = template.clone();
    evaluator.set_batch(test_batch)?;
    let mut record = |l: &mut Learner, iter: usize| -> AnyResult<()> {
        let v = evaluate(&mut evaluator, &l.params, &test, s, None)?;
        l.curve.push(VaePoint {
            iter,
            train_time_s: l.clock,
            test_neg_elbo: v,
        });
        Ok(())
    };
    for l in &mut learners {
        record(l, 0)?;
    }
    progress.set_length(s.iters as u64);
    let mut batches = BatchOrder::new(train_n, s.seed ^ 0x7ab);
    let mut noise_rng = Rng::new(s.seed ^ 0x401e);
    let mut x = vec![0.0f32; s.batch * pixels];
    for iter in 1..=s.iters {
        for (j, &r) in batches.next_batch(s.batch).iter().enumerate() {
            x[j * pixels..(j + 1) * pixels].copy_from_slice(&train[r * pixels..(r + 1) * pixels]);
        }
        // One base-noise draw per iteration, the same for every method.
        let eps: Vec<f32> = (0..s.batch * s.latent)
            .map(|_| noise_rng.normal() as f32)
            .collect();
        for (l, (label, method)) in learners.iter_mut().zip(&entries) {
            l.step(|model, params| {
                let g = model
                    .loss_and_gradient(params, &x, &eps, *method, s.rtol, s.atol, irdm)
                    .map_err(|e| format!("vae {label}: iteration {iter}: {e}"))?;
                Ok((g.dtheta, g.info, g.loss))
            })?;
        }
        if iter % s.eval_every.max(1) == 0 || iter == s.iters {
            for l in &mut learners {
                record(l, iter)?;
            }
        }
        progress.inc(1);
    }
    let mut runs = Vec::with_capacity(learners.len());
    for (l, (label, method)) in learners.into_iter().zip(&entries) {
        let iw = evaluate(&mut evaluator, &l.params, &test, s, Some(s.iw_samples))?;
        let sum = l.summary();
        let (kind, n_nodes, _, _) = describe(method);
        runs.push(VaeRun {
            data: format!("fashion-mnist, binarized at {BINARIZE_AT}"),
            train_images: train_n,
            test_images: test_n,
            latent: s.latent,
            context: s.context,
            hidden: s.hidden,
            flow_hidden: s.flow_hidden.clone(),
            batch: s.batch,
            rtol: s.rtol,
            atol: s.atol,
            method: kind.into(),
            label: label.clone(),
            n_nodes,
            summary: sum,
            final_test_neg_elbo: l.curve.last().map_or(f64::NAN, |c| c.test_neg_elbo),
            iw_samples: s.iw_samples,
            final_test_iw_nll: iw,
            test_curve: l.curve,
        });
    }
    Ok(runs)
}
