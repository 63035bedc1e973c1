"""Batch normalisation with fixed statistics and affine parameters, as detectors use it in their backbones.

    y = (x − μ) / √(σ² + ε) · γ + β  =  x · s + (β − μ · s),   s = γ / √(σ² + ε)

γ, β, μ and σ² are buffers, not parameters: nothing is learnt and nothing is updated in training mode.
Detection batches are small (a few images), too small for batch statistics, so Faster R-CNN and
RetinaNet keep the ImageNet statistics fixed (torchvision's ``FrozenBatchNorm2d``, ε = 1e-5).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FrozenBatchNorm2d"]


class FrozenBatchNorm2d(nn.Module):
    """A BatchNorm2d whose ``weight``, ``bias``, ``running_mean`` and ``running_var`` are fixed buffers.

    Its state_dict keys are torchvision's ``FrozenBatchNorm2d``'s; an ``nn.BatchNorm2d`` state_dict also
    loads with ``load_state_dict`` (its ``num_batches_tracked`` counter is ignored). 0 parameters, 4·C buffers;
    C·H·W multiply-adds.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors):
        # An ordinary BatchNorm2d's counter has no meaning here; dropping it lets pretrained BN weights load.
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, errors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise ValueError(
                f"FrozenBatchNorm2d({self.num_features}) expects a (N, {self.num_features}, H, W) tensor, "
                f"got shape {tuple(x.shape)}"
            )
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        return x * scale[:, None, None] + shift[:, None, None]

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"
