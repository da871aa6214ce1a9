//! Trains the ODE-block classifier on a Fashion-MNIST subset and prints loss, accuracy, NFE and
//! time per step.
//!
//! ```text
//! cargo run --release -p irdm-nn --example fashion_mnist -- [width] [batch] [train images] [epochs] [lr]
//! ```
//! (defaults 16, 64, 4000, 1, 0.1; the data set from `apt-get install dataset-fashion-mnist`).

use adjoint::{BackwardNorm, Config, Method};
use nn::classifier::IMAGE_SIDE;
use nn::optim::{Sgd, SgdConfig};
use nn::{FashionMnist, OdeClassifier, Rng};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: f64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (width, b, n_train, epochs, lr) = (
        arg(0, 16.0) as usize,
        arg(1, 64.0) as usize,
        arg(2, 4000.0) as usize,
        arg(3, 1.0) as usize,
        arg(4, 0.1),
    );
    let data = FashionMnist::load(std::path::Path::new(nn::idx::DEFAULT_FASHION_MNIST_DIR))?;
    let train = data.train.truncated(n_train);
    let test = data.test.truncated(1000);
    let mut model = OdeClassifier::<f32>::new(width, b)?;
    let mut rng = Rng::new(0);
    let mut p = model.init_params(&mut rng);
    let mut g = vec![0.0; p.len()];
    let mut opt = Sgd::new(
        p.len(),
        SgdConfig {
            lr,
            momentum: 0.9,
            dampening: 0.0,
            weight_decay: 1e-5,
            nesterov: false,
        },
    )?;
    let config = Config::new(1e-3f32, 1e-3);
    let method = Method::irdm_lobatto(7, BackwardNorm::Seminorm);
    let per = IMAGE_SIDE * IMAGE_SIDE;
    let evaluate = |model: &mut OdeClassifier<f32>, p: &[f32]| -> Result<f64, nn::NnError> {
        let mut correct = 0;
        for k in 0..test.len() / b {
            let x = &test.pixels[k * b * per..(k + 1) * b * per];
            let y = &test.labels[k * b..(k + 1) * b];
            correct += model.evaluate(p, x, y, &config)?.correct;
        }
        Ok(correct as f64 / (test.len() / b * b) as f64)
    };
    for epoch in 0..epochs {
        for k in 0..train.len() / b {
            let x = &train.pixels[k * b * per..(k + 1) * b * per];
            let y = &train.labels[k * b..(k + 1) * b];
            let start = Instant::now();
            let s = model.train_step(&mut p, &mut g, &mut opt, x, y, method, &config)?;
            let dt = start.elapsed().as_secs_f64();
            if k % 10 == 0 {
                println!(
                    "epoch {epoch} step {k:4}: loss {:.4} batch acc {:.2} nfe {}/{} {:.3} s",
                    s.loss,
                    s.correct as f64 / b as f64,
                    s.info.nfe_forward,
                    s.info.vjp_backward,
                    dt
                );
            }
        }
        println!(
            "epoch {epoch}: test accuracy {:.3}",
            evaluate(&mut model, &p)?
        );
    }
    Ok(())
}
