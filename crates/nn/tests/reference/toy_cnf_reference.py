#!/usr/bin/env python3
"""Reference numbers for crates/nn/tests/weights.rs, computed with PyTorch from the shared
anchor model (../shared/anchors/toy_cnf.py) and weights (toy_cnf_pinwheel_trained.safetensors).

Run from the repository root (needs torch, torchdiffeq, safetensors, scikit-learn):
    python3 crates/nn/tests/reference/toy_cnf_reference.py ../shared/anchors
Prints JSON: f and div at t = 0.25 for the first 4 points of `batch` (float64), and the loss and
forward NFE of a dopri5 solve over [0, 0.5] at rtol = atol = 1e-5 in float32 and float64.
"""
import json
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, sys.argv[1])
import toy_cnf  # noqa: E402
from torchdiffeq import odeint  # noqa: E402

weights = load_file(f"{sys.argv[1]}/toy_cnf_pinwheel_trained.safetensors")
batch = weights.pop("batch")
out = {}
for dtype, name in [(torch.float64, "f64"), (torch.float32, "f32")]:
    func = toy_cnf.build(0).to(dtype)
    func.load_state_dict({k: v.to(dtype) for k, v in weights.items()})
    x = batch.to(dtype)
    if name == "f64":
        t = torch.tensor(0.25, dtype=dtype)
        with torch.enable_grad():
            dz, mdiv = func(t, (x[:4], torch.zeros(4, 1, dtype=dtype)))
        out["f_t025_first4"] = dz.detach().tolist()
        out["div_t025_first4"] = (-mdiv).detach().flatten().tolist()
    func.nfe = 0
    with torch.no_grad():
        zero = torch.zeros(x.shape[0], 1, dtype=dtype)
        zt, dlogp = odeint(func, (x, zero), torch.tensor([0.0, 0.5], dtype=dtype), rtol=1e-5, atol=1e-5, method="dopri5")
        z, d = zt[-1], dlogp[-1]
        logpx = toy_cnf.standard_normal_logprob(z).sum(1, keepdim=True) - d
        out[f"loss_{name}"] = float(-logpx.mean())
        out[f"nfe_{name}"] = func.nfe
print(json.dumps(out))
