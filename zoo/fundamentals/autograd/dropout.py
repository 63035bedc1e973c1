"""Inverted dropout (Srivastava et al., 2014) with a hand-written backward pass.

In training, each element is kept with probability ``1 - p`` and the kept ones are scaled up so that the expected
output equals the input:

    m ~ Bernoulli(1 - p),   y = x · m / (1 - p),   ∂L/∂x = ∂L/∂y · m / (1 - p)

The scaled mask is saved for backward, so the gradient flows exactly through the elements that were kept. At
evaluation time dropout is the identity. ``p`` must lie in ``[0, 1)`` (``p = 1`` would drop everything and divide
by zero; ``F.dropout`` returns zeros there).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from zoo.fundamentals._common import check_tensor

__all__ = ["DropoutFunction", "dropout"]


class DropoutFunction(torch.autograd.Function):
    """``input``, drop probability ``p`` and an optional ``torch.Generator`` for the mask."""

    @staticmethod
    def forward(ctx: FunctionCtx, input, p, generator):
        scaled_mask = torch.empty_like(input).bernoulli_(1 - p, generator=generator).div_(1 - p)
        ctx.save_for_backward(scaled_mask)
        return input * scaled_mask

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_output: Tensor):
        (scaled_mask,) = ctx.saved_tensors
        return grad_output * scaled_mask, None, None


def dropout(input: Tensor, p: float = 0.5, training: bool = True, generator: torch.Generator | None = None) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)`` (``F.dropout``'s
    semantics); ``training=False`` returns ``input`` unchanged. Pass a seeded ``generator`` for a reproducible
    mask."""
    check_tensor(input, "input", range(0, 64))
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ValueError(f"p: expected a drop probability in [0, 1), got {p!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    if not training:
        return input
    return DropoutFunction.apply(input, float(p), generator)
