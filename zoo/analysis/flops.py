"""Parameter and multiply-add counts, measured by fvcore on the model in eval mode.

Convention: fvcore counts one fused multiply-add as one "flop"; we call that a MAC. Readers used
to counting multiplies and adds separately should double it (2·MACs).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

__all__ = ["count_macs", "count_parameters"]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_size: Sequence[int] = (3, 224, 224)) -> int:
    """Multiply-adds of one forward pass on a single (C, H, W) input, counted by fvcore."""
    if len(input_size) != 3:
        raise ValueError(f"input_size must be (C, H, W), got {tuple(input_size)}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        inputs = torch.zeros(1, *input_size, device=device)
        analysis = FlopCountAnalysis(model, inputs)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        logging.getLogger("fvcore").setLevel(logging.ERROR)
        return int(analysis.total())
    finally:
        model.train(was_training)
