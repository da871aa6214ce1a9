#!/usr/bin/env python3
"""Reference data for crates/nn/tests/classifier.rs: torchdiffeq's `odenet_mnist` model, built as
in torchdiffeq's examples/odenet_mnist.py (width 4 here), with PyTorch's default initialization,
two random 28x28 images, and the loss and gradient through `odeint` (no adjoint) with fixed-step
Euler, step 0.25 on [0, 1], in float64.

Run from the repository root (needs torch, torchdiffeq, safetensors):
    python3 crates/nn/tests/reference/odenet_mnist_reference.py
Writes crates/nn/tests/data/odenet_mnist_reference.safetensors: every parameter under its
state_dict name, `images` [2, 1, 28, 28], `labels` [2], `loss` [1], and `grad.<name>` for
every parameter.
"""
import torch
import torch.nn as nn
from safetensors.torch import save_file
from torchdiffeq import odeint

torch.manual_seed(20261128)
torch.set_default_dtype(torch.float64)
WIDTH = 4


def norm(dim):
    return nn.GroupNorm(min(32, dim), dim)


class ConcatConv2d(nn.Module):
    def __init__(self, dim_in, dim_out, ksize=3, stride=1, padding=0):
        super().__init__()
        self._layer = nn.Conv2d(dim_in + 1, dim_out, kernel_size=ksize, stride=stride, padding=padding)

    def forward(self, t, x):
        tt = torch.ones_like(x[:, :1, :, :]) * t
        return self._layer(torch.cat([tt, x], 1))


class ODEfunc(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm1 = norm(dim)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = ConcatConv2d(dim, dim, 3, 1, 1)
        self.norm2 = norm(dim)
        self.conv2 = ConcatConv2d(dim, dim, 3, 1, 1)
        self.norm3 = norm(dim)

    def forward(self, t, x):
        out = self.norm1(x)
        out = self.relu(out)
        out = self.conv1(t, out)
        out = self.norm2(out)
        out = self.relu(out)
        out = self.conv2(t, out)
        return self.norm3(out)


class ODEBlock(nn.Module):
    def __init__(self, odefunc):
        super().__init__()
        self.odefunc = odefunc

    def forward(self, x):
        t = torch.tensor([0.0, 1.0])
        return odeint(self.odefunc, x, t, method="euler", options=dict(step_size=0.25))[1]


model = nn.Sequential(
    nn.Conv2d(1, WIDTH, 3, 1), norm(WIDTH), nn.ReLU(inplace=True),
    nn.Conv2d(WIDTH, WIDTH, 4, 2, 1), norm(WIDTH), nn.ReLU(inplace=True),
    nn.Conv2d(WIDTH, WIDTH, 4, 2, 1),
    ODEBlock(ODEfunc(WIDTH)),
    norm(WIDTH), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
    nn.Linear(WIDTH, 10),
)
# Group norms with non-trivial affine parameters, so that their gradients are exercised.
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, nn.GroupNorm):
            m.weight.add_(0.3 * torch.randn_like(m.weight))
            m.bias.add_(0.3 * torch.randn_like(m.bias))
images = torch.rand(2, 1, 28, 28)
labels = torch.tensor([3, 7])
loss = nn.functional.cross_entropy(model(images), labels)
loss.backward()
out = {name: p.detach().clone() for name, p in model.state_dict().items()}
out.update({f"grad.{name}": p.grad.detach().clone() for name, p in model.named_parameters()})
out["images"] = images
out["labels"] = labels.to(torch.float64)
out["loss"] = loss.detach().reshape(1)
save_file({k: v.contiguous() for k, v in out.items()}, "crates/nn/tests/data/odenet_mnist_reference.safetensors")
print(f"loss {loss.item():.12f}, {sum(p.numel() for p in model.parameters())} parameters")
