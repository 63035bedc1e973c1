"""Reference models with random weights (nothing is downloaded), shared by the tests."""

from __future__ import annotations

import torch
from torch import nn


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and BN statistic a random, well-scaled value so that a mis-mapped
    weight cannot hide behind an initialisation constant (γ = 1, β = 0, μ = 0, σ² = 1)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=generator)
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            elif name.endswith("running_mean"):
                tensor.copy_(0.1 * noise)
            elif tensor.ndim == 1 and name.endswith("weight"):  # norm γ
                tensor.copy_(0.5 + 0.5 * torch.rand(tensor.shape, generator=generator))
            else:
                tensor.add_(0.02 * noise)
    return model


def reference_model(name: str, **kwargs) -> nn.Module:
    """The torchvision or timm counterpart of zoo model ``name``, randomly initialised."""
    from zoo.reference import build_reference

    return build_reference(name, **kwargs)
