//! Loads a toy CNF (FFJORD names, prefix `net.`) and its `batch` from a safetensors file like
//! `../shared/anchors/toy_cnf_pinwheel_trained.safetensors`, solves forward with dopri5 at
//! `rtol = atol = 1e-5` in f32 over `[0, 0.5]`, and prints `{"loss": …, "nfe": …}`.
//!
//! Run with `cargo run --release -p irdm-nn --example toy_cnf_loss -- FILE`.

use adjoint::Vjp;
use nn::{Activation, NnError, Weights, nll_loss, toy_cnf};
use rk::{ErrorNorm, Method, Options, solve};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: toy_cnf_loss FILE.safetensors")?;
    let w = Weights::read(&path)?;
    let (shape, batch) = w.tensor::<f32>("batch")?;
    if shape.len() != 2 || shape[1] != 2 {
        return Err(Box::new(NnError::Shape {
            what: "tensor batch".into(),
            expected: "[B, 2]".into(),
            got: format!("{shape:?}"),
        }));
    }
    let b = shape[0];
    let mut cnf = toy_cnf::<f32>(b, Activation::Tanh)?;
    let params = w.params::<f32>(cnf.net.layout(), "net")?;
    let mut y0 = batch;
    y0.extend(std::iter::repeat_n(0.0, b));
    let options = Options::new(1e-5f32, 1e-5).with_norm(ErrorNorm::Groups(cnf.state_groups()));
    let sol = solve(
        &mut cnf,
        &params,
        Method::Dopri5,
        &options,
        &[0.0, 0.5],
        &y0,
    )?;
    let (loss, _) = nll_loss(&sol.ys[1], b, 2)?;
    if !loss.is_finite() {
        // Not an answer, and not valid JSON either.
        return Err(format!(
            "{path}: the loss is {loss} (after {} evaluations): the weights or the batch hold \
             values too large for f32",
            sol.stats.nfe
        )
        .into());
    }
    println!(r#"{{"loss": {loss}, "nfe": {}}}"#, sol.stats.nfe);
    Ok(())
}
