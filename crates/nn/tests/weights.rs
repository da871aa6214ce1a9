//! The shared trained toy-CNF weights load into our model and reproduce PyTorch's numbers.
//!
//! Reference values from `tests/reference/toy_cnf_reference.py` (PyTorch 2.15, torchdiffeq
//! 0.2.5, CPU), run on `tests/data/toy_cnf_pinwheel_trained.safetensors` (a copy of
//! `../shared/anchors/toy_cnf_pinwheel_trained.safetensors`).

use adjoint::Vjp;
use nn::{Activation, NnError, Weights, io, nll_loss, toy_cnf};
use rk::{Method, Options, solve};

const FILE: &str = "tests/data/toy_cnf_pinwheel_trained.safetensors";
const F_REF: [[f64; 2]; 4] = [
    [-0.5867856965383124, 0.3461024455240842],
    [-1.1453915393420113, -0.9365334221947921],
    [-0.9913685090382043, 0.24742355792590348],
    [0.4872967854096749, 2.1136746054168922],
];
const DIV_REF: [f64; 4] = [
    1.2732573880435663,
    1.4272357928200596,
    -1.3590464642022833,
    0.5651613631833416,
];
const LOSS_F64: f64 = 2.7744862153181207;
const LOSS_F32: f64 = 2.774486780166626;
const NFE_TORCHDIFFEQ: usize = 38;

#[test]
fn f_and_divergence_match_pytorch() {
    let w = Weights::read(FILE).unwrap();
    let mut cnf = toy_cnf::<f64>(4, Activation::Tanh).unwrap();
    let p = w.params::<f64>(cnf.net.layout(), "net").unwrap();
    let (shape, batch) = w.tensor::<f64>("batch").unwrap();
    assert_eq!(shape, vec![100, 2]);
    let (mut dz, mut div) = (vec![0.0; 8], vec![0.0; 4]);
    cnf.eval_with_divergence(0.25, &batch[..8], &p, &mut dz, &mut div)
        .unwrap();
    for b in 0..4 {
        for j in 0..2 {
            assert!(
                (dz[2 * b + j] - F_REF[b][j]).abs() < 1e-12,
                "f[{b}][{j}] = {}",
                dz[2 * b + j]
            );
        }
        assert!((div[b] - DIV_REF[b]).abs() < 1e-12, "div[{b}] = {}", div[b]);
    }
}

fn loss_of<T: nn::Float>(rtol: f64) -> (f64, usize) {
    let w = Weights::read(FILE).unwrap();
    let mut cnf = toy_cnf::<T>(100, Activation::Tanh).unwrap();
    let p = w.params::<T>(cnf.net.layout(), "net").unwrap();
    let (_, batch) = w.tensor::<T>("batch").unwrap();
    let mut y0 = batch.clone();
    y0.extend(std::iter::repeat_n(T::zero(), 100));
    assert_eq!(y0.len(), cnf.state_len());
    let of = <T as rk::Scalar>::of;
    let options =
        Options::new(of(rtol), of(rtol)).with_norm(rk::ErrorNorm::Groups(cnf.state_groups()));
    let sol = solve(
        &mut cnf,
        &p,
        Method::Dopri5,
        &options,
        &[T::zero(), of(0.5)],
        &y0,
    )
    .unwrap();
    let (loss, _) = nll_loss(&sol.ys[1], 100, 2).unwrap();
    (<T as rk::Scalar>::as_f64(loss), sol.stats.nfe)
}

#[test]
fn loss_and_nfe_match_torchdiffeq() {
    let (l64, nfe64) = loss_of::<f64>(1e-5);
    assert!((l64 - LOSS_F64).abs() < 1e-4, "f64 loss {l64}");
    let (l32, nfe32) = loss_of::<f32>(1e-5);
    assert!((l32 - LOSS_F32).abs() < 1e-4, "f32 loss {l32}");
    // Same tableau, controller, initial step and mixed norm: the same number of evaluations.
    assert_eq!((nfe64, nfe32), (NFE_TORCHDIFFEQ, NFE_TORCHDIFFEQ));
}

#[test]
fn a_model_saved_here_loads_back_with_pytorch_names() {
    let w = Weights::read(FILE).unwrap();
    let cnf = toy_cnf::<f32>(1, Activation::Tanh).unwrap();
    let p = w.params::<f32>(cnf.net.layout(), "net").unwrap();
    let dir = std::env::temp_dir().join(format!("nn-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    io::save(&path, &io::param_tensors(cnf.net.layout(), "net", &p), None).unwrap();
    let back = Weights::read(&path).unwrap();
    let mut names = back.names();
    names.sort();
    let mut want = w.names();
    want.retain(|n| n != "batch");
    want.sort();
    assert_eq!(names, want);
    assert_eq!(back.params::<f32>(cnf.net.layout(), "net").unwrap(), p);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_weights_are_refused_with_a_reason() {
    let w = Weights::read(FILE).unwrap();
    let cnf = toy_cnf::<f64>(1, Activation::Tanh).unwrap();
    let p = w.params::<f64>(cnf.net.layout(), "net").unwrap();
    let layout = cnf.net.layout();
    // Missing tensor.
    let mut tensors = io::param_tensors(layout, "net", &p);
    tensors.retain(|t| t.0 != "net.layers.1._layer.bias");
    let missing = Weights::from_bytes(io::to_safetensors(&tensors, None).unwrap(), "mem").unwrap();
    match missing.params::<f64>(layout, "net") {
        Err(NnError::MissingTensor { name, .. }) => assert_eq!(name, "net.layers.1._layer.bias"),
        other => panic!("{other:?}"),
    }
    // Wrong shape.
    let mut tensors = io::param_tensors(layout, "net", &p);
    tensors[0].1 = vec![2, 64];
    let wrong = Weights::from_bytes(io::to_safetensors(&tensors, None).unwrap(), "mem").unwrap();
    assert!(matches!(
        wrong.params::<f64>(layout, "net"),
        Err(NnError::Shape { .. })
    ));
    // NaN parameter.
    let mut bad = p.clone();
    bad[5] = f64::NAN;
    let nan = Weights::from_bytes(
        io::to_safetensors(&io::param_tensors(layout, "net", &bad), None).unwrap(),
        "mem",
    )
    .unwrap();
    assert!(matches!(
        nan.params::<f64>(layout, "net"),
        Err(NnError::NonFinite { .. })
    ));
    // Not a safetensors buffer.
    assert!(Weights::from_bytes(vec![1, 2, 3], "junk").is_err());
    assert!(matches!(
        Weights::read("no/such/file.safetensors"),
        Err(NnError::Io { .. })
    ));
    // A batch of the wrong width.
    let mut cnf = toy_cnf::<f64>(4, Activation::Tanh).unwrap();
    let (mut dz, mut div) = (vec![0.0; 8], vec![0.0; 4]);
    let r = cnf.eval_with_divergence(0.0, &[0.0; 12], &p, &mut dz, &mut div);
    assert!(matches!(r, Err(NnError::Shape { .. })));
    assert!(nll_loss(&[0.0; 5], 2, 2).is_err());
}
