"""Swin Transformer (Liu et al., 2021, arXiv:2103.14030), as torchvision defines it: ``swin_t``, ``swin_s``, ``swin_b``.

    patch_embed: 4×4/4 conv to C channels → LayerNorm                                     (stride 4)
    stage1:      d₁ Swin blocks at C channels                                              (stride 4)
    stage2..4:   patch merging (2×2 tokens → 2× the channels) → dᵢ Swin blocks            (strides 8, 16, 32)
    head:        LayerNorm → global average pool → linear

A Swin block is a pre-norm transformer block whose self-attention is restricted to non-overlapping 7×7 windows
(W-MSA), with a learned relative position bias per head; every second block shifts the windows by 3 tokens
(SW-MSA), a cyclic roll of the map plus an attention mask that keeps the tokens which wrapped around from
attending to tokens that were not their neighbours (see :mod:`zoo.layers.swin`). Shifting lets information cross
the window borders of the previous block at no extra cost.

Why the cost is linear in the image: on an h×w map of C channels, global multi-head self-attention costs
    Ω(MSA)   = 4·hw·C² + 2·(hw)²·C           (the paper's eq. 1: projections, then scores and weighted sum)
multiply-adds, quadratic in the number of tokens hw, while attention within M×M windows costs
    Ω(W-MSA) = 4·hw·C² + 2·M²·hw·C           (eq. 2: each query meets M² keys instead of hw)
linear in hw for a fixed M. At stage 1 of Swin-T at 224 px (hw = 56² = 3136, C = 96, M = 7) the attention
term is 2·49·3136·96 ≈ 29.5 M MACs per block against 2·3136²·96 ≈ 1.89 G for global attention, 64× less.

Parameters and MACs per piece, with C the stage's width, h its heads, P its tokens, r = 4 the MLP ratio, K
classes (see the blocks' docstrings): patch embedding 48·C + 3·C params; a Swin block 12·C² + 13·C + 169·h
params and 12·P·C² + 2·49·P·C MACs (P padded up to multiples of 7 for the attention half); patch merging
8·C² + 8·C params and 2·P·C² MACs (P its input tokens); head 2·C₄ + C₄·K + K params.
Swin-T (C = 96, depths 2-2-6-2, heads 3-6-12-24) has 28,288,354 parameters at 1000 classes.

The stages take and return (N, C, H, W) maps stored channels-last: ``features_only=True`` gives the four stage
maps at strides 4, 8, 16, 32 in the layout every zoo neck expects, and the permutes are views.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from zoo.layers.classifier import ClassifierHead
from zoo.layers.swin import PatchEmbed, SwinStage
from zoo.models.base import FeatureInfo, ImageClassifier, check_classifier_args
from zoo.registry import TORCHVISION_DOCS, Published, register_model

__all__ = ["SWIN_REFERENCE_RENAMES", "SwinTransformer"]

SWIN_PAPER = "Liu et al. 2021, Swin Transformer, arXiv:2103.14030"

# torchvision keeps everything before the head in one Sequential `features`: 0 the patch embedding
# (conv, permute, norm), odd indices the stages' blocks, even indices from 2 on their patch merging.
SWIN_REFERENCE_RENAMES = [
    (r"^features\.0\.0\.", "patch_embed.proj."),
    (r"^features\.0\.2\.", "patch_embed.norm."),
    (r"^features\.1\.", "stage1.blocks."),
    (r"^features\.2\.", "stage2.downsample."),
    (r"^features\.3\.", "stage2.blocks."),
    (r"^features\.4\.", "stage3.downsample."),
    (r"^features\.5\.", "stage3.blocks."),
    (r"^features\.6\.", "stage4.downsample."),
    (r"^features\.7\.", "stage4.blocks."),
]


class SwinTransformer(ImageClassifier):
    """Swin Transformer classifier; see the module docstring for the layout.

    ``depths`` and ``num_heads`` give each of the four stages' blocks and heads; stage i has
    ``embed_dim · 2^(i−1)`` channels. ``drop_path_rate`` is the stochastic-depth rate of the last block, rising
    linearly from 0 at the first; ``proj_drop_rate`` and ``attn_drop_rate`` are torchvision's ``dropout`` and
    ``attention_dropout``; ``drop_rate`` the dropout before the classifier. ``fused_attn=False`` runs the
    hand-written attention instead of PyTorch's fused kernel.
    """

    reference_renames = SWIN_REFERENCE_RENAMES
    reference_head = {"head": "fc"}

    def __init__(
        self,
        embed_dim: int,
        depths: Sequence[int],
        num_heads: Sequence[int],
        *,
        window_size: int = 7,
        patch_size: int = 4,
        mlp_ratio: float = 4.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        fused_attn: bool = True,
    ) -> None:
        super().__init__()
        check_classifier_args(num_classes, in_chans)
        if len(depths) != 4 or len(num_heads) != 4:
            raise ValueError(f"depths and num_heads must give 4 stages each, got {list(depths)} and {list(num_heads)}")
        if not isinstance(drop_path_rate, (int, float)) or not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be a number in [0, 1), got {drop_path_rate!r}")
        self.num_classes = num_classes
        self.in_chans = in_chans

        self.patch_embed = PatchEmbed(in_chans, embed_dim, patch_size, norm_layer)
        total_blocks = sum(depths)
        rates = [drop_path_rate * i / max(total_blocks - 1, 1) for i in range(total_blocks)]
        widths = [embed_dim * 2**i for i in range(4)]
        first = 0
        for index, (depth, heads, width) in enumerate(zip(depths, num_heads, widths, strict=True)):
            stage = SwinStage(
                width,
                heads,
                rates[first : first + depth],
                window_size=window_size,
                downsample=index > 0,
                norm_layer=norm_layer,
                mlp_ratio=mlp_ratio,
                proj_drop_rate=proj_drop_rate,
                attn_drop_rate=attn_drop_rate,
                fused_attn=fused_attn,
            )
            self.add_module(f"stage{index + 1}", stage)
            first += depth
        self.norm = norm_layer(widths[-1])

        self.feature_info = FeatureInfo(
            {"num_chs": width, "reduction": patch_size * 2**i, "module": f"stage{i + 1}"}
            for i, width in enumerate(widths)
        )
        self.num_features = widths[-1]
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate=drop_rate)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's: every linear layer truncated-normal (σ = 0.02) with zero bias.
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage4(self.stage3(self.stage2(self.stage1(self.patch_embed(x)))))
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


# (depth, heads) per stage, as torchvision builds them; widths C, 2C, 4C, 8C.
#       stage1  stage2  stage3   stage4
# swin_t: (2, 3), (2, 6), (6, 12),  (2, 24)   C = 96
# swin_s: (2, 3), (2, 6), (18, 12), (2, 24)   C = 96
# swin_b: (2, 4), (2, 8), (18, 16), (2, 32)   C = 128
@register_model(
    reference="torchvision",
    paper=SWIN_PAPER,
    published=Published(28_288_354, 4.491, TORCHVISION_DOCS, 0.01),
)
def swin_t(**kwargs) -> SwinTransformer:
    return SwinTransformer(96, (2, 2, 6, 2), (3, 6, 12, 24), **{"drop_path_rate": 0.2, **kwargs})


@register_model(
    reference="torchvision",
    paper=SWIN_PAPER,
    published=Published(49_606_258, 8.741, TORCHVISION_DOCS, 0.01),
)
def swin_s(**kwargs) -> SwinTransformer:
    return SwinTransformer(96, (2, 2, 18, 2), (3, 6, 12, 24), **{"drop_path_rate": 0.3, **kwargs})


@register_model(
    reference="torchvision",
    paper=SWIN_PAPER,
    published=Published(87_768_224, 15.431, TORCHVISION_DOCS, 0.01),
)
def swin_b(**kwargs) -> SwinTransformer:
    return SwinTransformer(128, (2, 2, 18, 2), (4, 8, 16, 32), **{"drop_path_rate": 0.5, **kwargs})
