#!/usr/bin/env python3
"""torchdiffeq side of `cargo xtask compare-torch`.

Reads a safetensors file written by the Rust side (toy-CNF weights with FFJORD names under
`net.`), then serves training iterations on request so that the two implementations can be
interleaved in one run:

    stdin : "batch I B\n" followed by B * 2 little-endian f32 -> batch I (B samples of 2-D data)
            "step MODE I"   -> one Adam iteration of MODE on batch I (the last one sent), answered
                               with one JSON line (timed between CUDA synchronizations with
                               --device cuda)
            "quit"
    MODE  : direct | adjoint | adjoint_seminorm   (torchdiffeq odeint / odeint_adjoint)

Each MODE keeps its own model and optimizer, all starting from the file's weights. The model is
FFJORD's toy CNF as in the IRDM paper's appendix B.2: three concat-squash layers 2-64-64-2 with
tanh, state (z, delta log p), exact divergence, t in [0, 0.5], dopri5 at rtol = atol = 1e-5,
loss = -mean(log N(z(T); 0, I) - delta_logp(T)), Adam with lr 1e-3.

Install: pip install torch torchdiffeq safetensors
"""
import argparse
import json
import math
import sys
import time

import torch
from safetensors.torch import load_file
from torchdiffeq import odeint, odeint_adjoint


class SquashLayer(torch.nn.Module):
    """y = (W x + b1) * sigmoid(t c + b2) + t b3, with FFJORD's parameter names."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self._layer = torch.nn.Linear(n_in, n_out)
        self._hyper_gate = torch.nn.Linear(1, n_out)
        self._hyper_bias = torch.nn.Linear(1, n_out, bias=False)

    def forward(self, t, x):
        tt = t.reshape(1, 1)
        return self._layer(x) * torch.sigmoid(self._hyper_gate(tt)) + self._hyper_bias(tt)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList([SquashLayer(2, 64), SquashLayer(64, 64), SquashLayer(64, 2)])

    def forward(self, t, z):
        for k, layer in enumerate(self.layers):
            z = layer(t, z)
            if k + 1 < len(self.layers):
                z = torch.tanh(z)
        return z


class Flow(torch.nn.Module):
    """Right-hand side on (z, delta log p) with the exact trace of df/dz; counts its calls."""

    def __init__(self):
        super().__init__()
        self.net = Net()
        self.calls = 0

    def forward(self, t, state):
        self.calls += 1
        z = state[0]
        keep_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            if not z.requires_grad:
                z = z.detach().requires_grad_(True)
            dz = self.net(t, z)
            trace = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
            for i in range(z.shape[1]):
                col = torch.autograd.grad(dz[:, i].sum(), z, create_graph=True)[0]
                trace = trace + col[:, i]
        if not keep_graph:
            dz, trace = dz.detach(), trace.detach()
        return dz, -trace.reshape(-1, 1)


def nll(flow, x, mode):
    times = torch.tensor([0.0, 0.5], device=x.device)
    start = (x, torch.zeros(x.shape[0], 1, device=x.device))
    options = dict(rtol=1e-5, atol=1e-5, method="dopri5")
    if mode == "direct":
        zs, dlogps = odeint(flow, start, times, **options)
    elif mode == "adjoint":
        zs, dlogps = odeint_adjoint(flow, start, times, **options)
    elif mode == "adjoint_seminorm":
        zs, dlogps = odeint_adjoint(flow, start, times, adjoint_options=dict(norm="seminorm"), **options)
    else:
        raise ValueError(mode)
    z, dlogp = zs[-1], dlogps[-1]
    log_normal = (-0.5 * math.log(2 * math.pi) - 0.5 * z.pow(2)).sum(1, keepdim=True)
    return -(log_normal - dlogp).mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA device")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.set_num_threads(args.threads)
    tensors = load_file(args.data)
    weights = {k[len("net."):]: v.float() for k, v in tensors.items() if k.startswith("net.")}
    models = {}
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "device": str(device), "gpu": gpu}), flush=True)
    stdin = sys.stdin.buffer
    batch_index, x = None, None
    while True:
        words = stdin.readline().decode().split()
        if not words or words[0] == "quit":
            break
        if words[0] == "batch":
            batch_index, size = int(words[1]), int(words[2])
            data = stdin.read(size * 2 * 4)
            if len(data) != size * 2 * 4:
                sys.exit(f"batch {batch_index}: expected {size * 2 * 4} bytes, got {len(data)}")
            x = torch.frombuffer(bytearray(data), dtype=torch.float32).reshape(size, 2).to(device)
            continue
        mode, index = words[1], int(words[2])
        if index != batch_index:
            sys.exit(f"step on batch {index}, but the last batch sent is {batch_index}")
        if mode not in models:
            flow = Flow()
            flow.net.load_state_dict(weights)
            flow.to(device)
            models[mode] = (flow, torch.optim.Adam(flow.parameters(), lr=1e-3))
        flow, opt = models[mode]
        sync()
        begin = time.perf_counter()
        opt.zero_grad()
        flow.calls = 0
        loss = nll(flow, x, mode)
        forward_calls = flow.calls
        loss.backward()
        opt.step()
        sync()
        seconds = time.perf_counter() - begin
        print(json.dumps({"mode": mode, "seconds": seconds, "nfe_fwd": forward_calls,
                          "nfe_bwd": flow.calls - forward_calls, "loss": float(loss)}), flush=True)


if __name__ == "__main__":
    main()
