"""Softmax and cross-entropy fused, with a hand-written backward pass; drop-in for ``F.cross_entropy`` with class
index targets.

For logits ``z`` (classes along dim 1) and target class ``t``, computed with the maximum subtracted first so that
``exp`` never overflows (logits of 1e4 are fine):

    m = max_k z_k,   log Σ_k exp(z_k) = m + log Σ_k exp(z_k - m),   loss = log Σ_k exp(z_k) - z_t

The fused gradient is the softmax minus the one-hot target, ``∂loss/∂z = softmax(z) - onehot(t)``, times the
incoming gradient (divided by the number of counted targets for ``reduction="mean"``). Targets equal to
``ignore_index`` contribute neither loss nor gradient and are not counted in the mean (all ignored: NaN, as in
PyTorch).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from zoo.fundamentals._common import check_tensor

__all__ = ["REDUCTIONS", "SoftmaxCrossEntropyFunction", "softmax_cross_entropy"]

REDUCTIONS = ("mean", "sum", "none")
_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


class SoftmaxCrossEntropyFunction(torch.autograd.Function):
    """``logits [N, C, *]``, ``target [N, *]`` (int64, already checked), ``ignore_index``, ``reduction``."""

    @staticmethod
    def forward(ctx: FunctionCtx, logits, target, ignore_index, reduction):
        shifted = logits - logits.amax(dim=1, keepdim=True)
        log_probs = shifted - shifted.exp().sum(dim=1, keepdim=True).log()
        counted = target != ignore_index
        safe_target = torch.where(counted, target, 0).unsqueeze(1)
        losses = torch.where(counted, -log_probs.gather(1, safe_target).squeeze(1), 0.0)
        ctx.save_for_backward(log_probs, safe_target, counted)
        ctx.reduction = reduction
        if reduction == "none":
            return losses
        if reduction == "sum":
            return losses.sum()
        return losses.sum() / counted.sum()

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_output: Tensor):
        log_probs, safe_target, counted = ctx.saved_tensors
        grad = log_probs.exp()
        grad.scatter_add_(1, safe_target, -torch.ones_like(safe_target, dtype=grad.dtype))
        scale = grad_output / counted.sum() if ctx.reduction == "mean" else grad_output
        # ``scale`` is a scalar, or per target for reduction="none"; ignored targets get no gradient.
        return grad * (counted * scale).unsqueeze(1), None, None, None


def softmax_cross_entropy(logits: Tensor, target: Tensor, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Drop-in for ``F.cross_entropy(logits, target, ignore_index=..., reduction=...)`` with class-index targets:
    ``logits`` ``[N, C]`` or ``[N, C, d_1, ...]``, ``target`` integer ``[N]`` or ``[N, d_1, ...]``."""
    check_tensor(logits, "logits", range(2, 8))
    if not isinstance(target, Tensor) or target.dtype not in _INTEGER_DTYPES:
        raise TypeError(f"target: expected an integer tensor of class indices, got {getattr(target, 'dtype', target)}")
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"target: expected shape {list(expected)} for logits {list(logits.shape)}, got {list(target.shape)}"
        )
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")
    num_classes = logits.shape[1]
    bad = (target != ignore_index) & ((target < 0) | (target >= num_classes))
    if bad.any():
        raise ValueError(
            f"target: expected class indices in [0, {num_classes}) or ignore_index={ignore_index}, "
            f"got {target[bad][0].item()}"
        )
    return SoftmaxCrossEntropyFunction.apply(logits, target.long(), ignore_index, reduction)
