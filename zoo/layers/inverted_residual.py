"""Depthwise-separable convolution (MobileNetV1, Howard et al., 2017, arXiv:1704.04861) and the inverted
residual (MobileNetV2, Sandler et al., 2018, arXiv:1801.04381), which MobileNetV3 (Howard et al., 2019,
arXiv:1905.02244) and EfficientNet's MBConv (Tan & Le, 2019, arXiv:1905.11946) extend with squeeze-excite,
other activations and stochastic depth.

A k×k convolution from C_in to C_out channels on P output positions costs P·k²·C_in·C_out MACs; split into
a k×k depthwise conv (one filter per channel) and a 1×1 pointwise conv it costs P·(k²·C_in + C_in·C_out):

    depthwise-separable / standard = 1/C_out + 1/k²          (≈ 1/8 to 1/9 for k = 3)

The inverted residual widens C_in to E channels (1×1 "expand"), filters them depthwise, and narrows them
back linearly (1×1 "project", no activation), adding the input when the shapes match:

    y = x + project(se(depthwise(expand(x))))     (stride 1 and C_in = C_out; else without the "x +")
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
from torch import nn

from zoo.layers.conv_norm_act import ConvNormAct
from zoo.layers.helpers import drop_path

__all__ = ["DepthwiseSeparableConv", "InvertedResidual"]


def _check_channels(**channels: int) -> None:
    for name, value in channels.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_kernel_and_stride(kernel_size: int, stride: int) -> None:
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd positive int (for 'same' padding), got {kernel_size!r}")
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride!r}")


class DepthwiseSeparableConv(nn.Module):
    """k×k depthwise conv-BN-act → (squeeze-excite) → 1×1 pointwise conv-BN-act: a MobileNetV1 layer.

    With C_in → C_out, P = H_out·W_out output positions and BN after each conv:
        params = k²·C_in + C_in·C_out + 2·(C_in + C_out)       MACs = P·(k²·C_in + C_in·C_out)
    that is ``1/C_out + 1/k²`` of a standard k×k conv's MACs and weights (P·k²·C_in·C_out and k²·C_in·C_out).
    ``se_layer(C_in)`` after the depthwise conv adds 2·C_in·R + R + C_in params and 2·C_in·R MACs.
    There is no residual: MobileNetV1 has none (timm's ``dsa`` block, ``noskip=True``).
    """

    # timm key → zoo key: timm names the four layers conv_dw, bn1, conv_pw, bn2 and the SE's convs
    # conv_reduce and conv_expand.
    reference_renames = [
        (r"(^|\.)conv_dw\.", r"\1depthwise.conv."),
        (r"(^|\.)bn1\.", r"\1depthwise.bn."),
        (r"(^|\.)conv_pw\.", r"\1pointwise.conv."),
        (r"(^|\.)bn2\.", r"\1pointwise.bn."),
        (r"(^|\.)se\.conv_reduce\.", r"\1se.fc1."),
        (r"(^|\.)se\.conv_expand\.", r"\1se.fc2."),
    ]

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        *,
        kernel_size: int = 3,
        dilation: int = 1,
        se_layer: Callable[[int], nn.Module] | None = None,
        act_layer: str | Callable[..., nn.Module] = nn.ReLU,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        _check_channels(in_channels=in_channels, out_channels=out_channels)
        _check_kernel_and_stride(kernel_size, stride)
        self.depthwise = ConvNormAct(
            in_channels, in_channels, kernel_size, stride=stride, dilation=dilation, groups=in_channels,
            norm_layer=norm_layer, act_layer=act_layer,
        )  # fmt: skip
        self.se = se_layer(in_channels) if se_layer is not None else None
        self.pointwise = ConvNormAct(in_channels, out_channels, 1, norm_layer=norm_layer, act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.depthwise(x)
        if self.se is not None:
            x = self.se(x)
        return self.pointwise(x)


class InvertedResidual(nn.Module):
    """1×1 expand (C_in → E) → k×k depthwise (stride, dilation) → (squeeze-excite on E) → 1×1 linear
    project (E → C_out), plus the input when ``stride == 1`` and C_in = C_out.

    One block serves three families: MobileNetV2 (ReLU6, E = round(6·C_in)), MobileNetV3 (ReLU or
    hard-swish, E from the table, SE with hard-sigmoid gate) and EfficientNet's MBConv (SiLU, SE squeezing
    to C_in/4, stochastic depth). The expansion is left out when E = C_in, as all three do.

    With P_in input and P output positions (P = P_in/stride²), BN after each conv and an expansion:
        params = C_in·E + k²·E + E·C_out + 2·(2·E + C_out)
        MACs   = P_in·C_in·E + P·(k²·E + E·C_out)
    without the expansion drop C_in·E + 2·E params and P_in·C_in·E MACs; ``se_layer(E)`` squeezing to R
    adds 2·E·R + R + E params and 2·E·R MACs.

    ``drop_path_rate`` drops the residual branch of a whole sample with that probability in training
    (EfficientNet's stochastic depth); it is the identity in eval and on blocks without a residual.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        *,
        expanded_channels: int,
        kernel_size: int = 3,
        dilation: int = 1,
        se_layer: Callable[[int], nn.Module] | None = None,
        act_layer: str | Callable[..., nn.Module] = nn.ReLU6,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        _check_channels(in_channels=in_channels, out_channels=out_channels, expanded_channels=expanded_channels)
        _check_kernel_and_stride(kernel_size, stride)
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate!r}")
        self.use_residual = stride == 1 and in_channels == out_channels
        self.drop_path_rate = drop_path_rate
        self.expand = None
        if expanded_channels != in_channels:
            self.expand = ConvNormAct(in_channels, expanded_channels, 1, norm_layer=norm_layer, act_layer=act_layer)
        self.depthwise = ConvNormAct(
            expanded_channels, expanded_channels, kernel_size, stride=stride, dilation=dilation,
            groups=expanded_channels, norm_layer=norm_layer, act_layer=act_layer,
        )  # fmt: skip
        self.se = se_layer(expanded_channels) if se_layer is not None else None
        self.project = ConvNormAct(expanded_channels, out_channels, 1, norm_layer=norm_layer, act_layer=None)
        self.reference_renames = self.torchvision_renames()

    def torchvision_renames(self, reference_prefix: str = "", prefix: str = "") -> list[tuple[str, str]]:
        """Rules (see :func:`zoo.load_reference_weights`) taking the keys of torchvision's block stored
        under ``reference_prefix`` to this block's keys under ``prefix``.

        torchvision numbers only the layers a block has, so the rules depend on this block's layers:
        MobileNetV3 and EfficientNet hold them as ``block.i`` (each conv-norm-act a Sequential of conv,
        norm, act), MobileNetV2 as ``conv.i`` with the projection's conv and norm at two indices.
        """
        reference_prefix = f"{reference_prefix}." if reference_prefix else ""
        prefix = f"{prefix}." if prefix else ""
        layers = [name for name in ("expand", "depthwise", "se", "project") if getattr(self, name) is not None]
        pairs = []
        for index, name in enumerate(layers):  # MobileNetV3, EfficientNet
            if name == "se":
                pairs.append((f"block.{index}.", "se."))
            else:
                pairs += [(f"block.{index}.0.", f"{name}.conv."), (f"block.{index}.1.", f"{name}.bn.")]
        if self.se is None:  # MobileNetV2
            for index, name in enumerate(layers[:-1]):
                pairs += [(f"conv.{index}.0.", f"{name}.conv."), (f"conv.{index}.1.", f"{name}.bn.")]
            last = len(layers) - 1
            pairs += [(f"conv.{last}.", "project.conv."), (f"conv.{last + 1}.", "project.bn.")]
        return [("^" + re.escape(reference_prefix + theirs), prefix + ours) for theirs, ours in pairs]

    def forward_expanded(self, expanded: torch.Tensor) -> torch.Tensor:
        """The block after its expansion, without the residual: depthwise → SE → project. SSDlite reads the
        expanded map of the first stride-32 block (which has no residual) and carries on from it."""
        out = self.depthwise(expanded)
        if self.se is not None:
            out = self.se(out)
        return self.project(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.forward_expanded(x if self.expand is None else self.expand(x))
        if self.use_residual:
            out = x + drop_path(out, self.drop_path_rate, self.training)
        return out
