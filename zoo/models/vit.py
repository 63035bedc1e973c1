"""Vision Transformer (Dosovitskiy et al., 2020, "An Image is Worth 16x16 Words", arXiv:2010.11929).

    embed:  P×P patches → linear projection to D (a P×P, stride-P convolution), class token in front,
            learned position embedding added                                  (N, 1 + L, D), L = H·W / P²
    blocks: depth × pre-norm encoder block: x + MSA(LN(x)), x + MLP(LN(x)), MLP = D → D_mlp → D with GELU
    norm:   LayerNorm (ε = 1e-6)
    head:   the class token's output (pool_type="token") → dropout → linear

The layers are in zoo.layers.vit (:class:`~zoo.layers.vit.ViTEmbedding`, :class:`~zoo.layers.vit.ViTBlock`).
Variants (the paper's Table 1): B = 12 blocks of D = 768 with 12 heads and D_mlp = 3072, L = 24 × 1024 with 16
heads and 4096; "/16" is the patch side P. timm's Ti (DeiT's tiny) is 12 × 192 with 3 heads.

With C input channels, K classes, N = 1 + L tokens and B blocks, D_mlp = 4·D:
    embedding: params = P²·C·D + D (patches) + D (class token) + N·D (positions)     MACs = L·P²·C·D
    per block: params = 12·D² + 13·D  (attention 4·D² + 4·D, MLP 8·D² + 5·D, LNs 4·D)
               MACs   = 4·N·D² (Q, K, V, output projections) + 2·N²·D (scores, weighted sum) + 2·N·D·D_mlp (MLP)
    norm + head: params = 2·D + D·K + K                                             MACs = D·K
ViT-B/16 at 224 px (L = 196): 86,567,656 parameters, 17.56 G multiply-adds, of which the attention's two
matrix products 0.72 G (fvcore counts them only with a handle for ``aten::scaled_dot_product_attention``).

Other input sizes: the position embedding is learned for ``img_size``; an image of another size (a multiple of
P) gets it resampled bicubically to its grid on every forward (:func:`~zoo.layers.vit.resample_pos_embed`, as
timm's dynamic image size). Build with ``img_size=`` to learn or fine-tune at a size; reference weights of another
size are resampled while loading (``convert_reference_state_dict``).

``features_only``: one map per block (reduction P, D channels), the block's tokens without the class token
reshaped to (N, D, H/P, W/P), what a detector's neck expects (timm's ``forward_intermediates`` does the same).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import nn

from zoo.layers.classifier import ClassifierHead
from zoo.layers.vit import ViTBlock, ViTEmbedding, resample_pos_embed
from zoo.models.base import FeatureInfo, ImageClassifier, check_classifier_args
from zoo.registry import TORCHVISION_DOCS, Published, register_model

__all__ = ["VIT_CONFIGS", "ViTConfig", "VisionTransformer"]

VIT_PAPER = "Dosovitskiy et al. 2020, An Image is Worth 16x16 Words, arXiv:2010.11929"


class ViTConfig(NamedTuple):
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_dim: int


VIT_CONFIGS = {
    "B/16": ViTConfig(16, 768, 12, 12, 3072),  # the paper's ViT-Base
    "B/32": ViTConfig(32, 768, 12, 12, 3072),
    "L/16": ViTConfig(16, 1024, 24, 16, 4096),  # the paper's ViT-Large
    "Ti/16": ViTConfig(16, 192, 12, 3, 768),  # DeiT-Ti (Touvron et al. 2020), timm's vit_tiny
    "mini/4": ViTConfig(4, 192, 6, 3, 768),  # half of Ti's depth on 4×4 patches: 64 tokens at 32 px
}

# Reference key → zoo key. torchvision: conv_proj, class_token, encoder.{pos_embedding, layers.encoder_layer_i, ln},
# its blocks named as ours; timm: patch_embed.proj, cls_token, pos_embed, blocks.i.{norm1, attn.qkv, attn.proj,
# norm2, mlp.fc1, mlp.fc2}, norm. timm's qkv Linear (3·D, D) is packed as MultiheadAttention's in_proj (q, k, v).
VIT_REFERENCE_RENAMES = [
    (r"^conv_proj\.", "embed.patch_embed.proj."),
    (r"^class_token$", "embed.cls_token"),
    (r"^encoder\.pos_embedding$", "embed.pos_embed"),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.", r"blocks.\1."),
    (r"^encoder\.ln\.", "norm."),
    (r"^patch_embed\.proj\.", "embed.patch_embed.proj."),
    (r"^cls_token$", "embed.cls_token"),
    (r"^pos_embed$", "embed.pos_embed"),
    (r"^blocks\.(\d+)\.norm1\.", r"blocks.\1.ln_1."),
    (r"^blocks\.(\d+)\.norm2\.", r"blocks.\1.ln_2."),
    (r"^blocks\.(\d+)\.attn\.qkv\.(weight|bias)$", r"blocks.\1.self_attention.in_proj_\2"),
    (r"^blocks\.(\d+)\.attn\.proj\.", r"blocks.\1.self_attention.out_proj."),
    (r"^blocks\.(\d+)\.mlp\.fc1\.", r"blocks.\1.mlp.0."),
    (r"^blocks\.(\d+)\.mlp\.fc2\.", r"blocks.\1.mlp.3."),
]
# The position embedding under the names of the references and ours, for resampling at load time.
POS_EMBED_KEYS = ("encoder.pos_embedding", "pos_embed", "embed.pos_embed")


class VisionTransformer(ImageClassifier):
    """ViT classifier; see the module docstring for the layout, the formulas and other input sizes.

    ``forward_features`` returns the (N, 1 + L, D) tokens after the final LayerNorm; the head reads the class
    token. ``feature_info``: one entry per block (``blocks.i``, D channels, reduction P).
    ``attention_maps(x)`` returns each block's attention weights, (N, heads, 1 + L, 1 + L) per block;
    ``fused_attn`` switches every block between ``F.scaled_dot_product_attention`` and the hand-written one.
    ``dropout`` is torchvision's (after the position embedding, the attention and each MLP layer),
    ``attention_dropout`` the attention weights', ``drop_rate`` the head's.
    """

    reference_renames = VIT_REFERENCE_RENAMES
    reference_head = {"heads.head": "fc", "head": "fc"}  # torchvision's, timm's
    # For features_only: the blocks give token sequences, the class token first.
    feature_format = "NLC"
    num_prefix_tokens = ViTEmbedding.num_prefix_tokens

    def __init__(
        self,
        *,
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_dim: int,
        img_size: int | tuple[int, int] = 224,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        norm_eps: float = 1e-6,
        fused_attn: bool = True,
    ) -> None:
        super().__init__()
        check_classifier_args(num_classes, in_chans)
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive int, got {depth!r}")
        height, width = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if not all(isinstance(s, int) and s > 0 for s in (height, width)) or height % patch_size or width % patch_size:
            raise ValueError(
                f"img_size must be a positive multiple of the patch size {patch_size} (an int or an (H, W) pair), "
                f"got {img_size!r}"
            )
        self.num_classes, self.in_chans, self.patch_size = num_classes, in_chans, patch_size
        self.img_size = (height, width)

        self.embed = ViTEmbedding(in_chans, embed_dim, patch_size, (height // patch_size, width // patch_size), dropout)
        block = dict(dropout=dropout, attention_dropout=attention_dropout, norm_eps=norm_eps, fused_attn=fused_attn)
        self.blocks = nn.Sequential(*(ViTBlock(embed_dim, num_heads, mlp_dim, **block) for _ in range(depth)))
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)

        self.feature_info = FeatureInfo(
            {"num_chs": embed_dim, "reduction": patch_size, "module": f"blocks.{i}"} for i in range(depth)
        )
        self.num_features = embed_dim
        self.head = ClassifierHead(embed_dim, num_classes, pool_type="token", drop_rate=drop_rate)
        self._init_weights()

    def _init_weights(self) -> None:
        """timm's ViT initialisation: truncated-normal (σ = 0.02) linear weights and position embedding, zero
        biases, a near-zero class token; the patch projection LeCun-normal, as torchvision's."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            nn.init.trunc_normal_(block.self_attention.in_proj_weight, std=0.02)
            nn.init.zeros_(block.self_attention.in_proj_bias)
        proj = self.embed.patch_embed.proj
        nn.init.trunc_normal_(proj.weight, std=(1.0 / proj.weight[0].numel()) ** 0.5)
        nn.init.zeros_(proj.bias)
        nn.init.trunc_normal_(self.embed.pos_embed, std=0.02)
        nn.init.normal_(self.embed.cls_token, std=1e-6)

    @property
    def fused_attn(self) -> bool:
        return all(block.fused_attn for block in self.blocks)

    @fused_attn.setter
    def fused_attn(self, value: bool) -> None:
        for block in self.blocks:
            block.fused_attn = value

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(self.embed(x)))

    def attention_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each block's attention weights for the batch ``x``: (N, heads, 1 + L, 1 + L), rows the queries."""
        self.check_input(x)
        x = self.embed(x)
        maps = []
        for block in self.blocks:
            x, weights = block(x, return_attention=True)
            maps.append(weights)
        return maps

    def convert_reference_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A torchvision/timm (or zoo) state_dict with its (square) position embedding resampled to this model's
        grid where it was learned at another image size."""
        converted = dict(state_dict)
        for key in POS_EMBED_KEYS:
            pos_embed = converted.get(key)
            if pos_embed is not None and pos_embed.shape[1] != self.embed.pos_embed.shape[1]:
                converted[key] = resample_pos_embed(
                    pos_embed, self.embed.grid, num_prefix_tokens=self.num_prefix_tokens
                )
        return converted


def _vit(config: str, **kwargs) -> VisionTransformer:
    return VisionTransformer(**VIT_CONFIGS[config]._asdict(), **kwargs)


# --- torchvision's ViT-B/16, B/32, L/16 -------------------------------------------------------------------------
# The parametrised tests run at 64 px: torchvision's ViT only takes the image size it is built for, so both
# sides are built at 64 (a 4×4 or 2×2 patch grid).
_SMALL_TORCHVISION = dict(
    test_input_size=64, reference_kwargs={"image_size": 64}, reference_build_kwargs={"img_size": 64}
)  # fmt: skip


@register_model(
    min_input_size=16,
    reference="torchvision",
    paper=VIT_PAPER,
    published=Published(86_567_656, 17.564, TORCHVISION_DOCS, 0.01),
    **_SMALL_TORCHVISION,
)
def vit_b_16(**kwargs) -> VisionTransformer:
    return _vit("B/16", **kwargs)


@register_model(
    min_input_size=32,
    reference="torchvision",
    paper=VIT_PAPER,
    published=Published(88_224_232, 4.409, TORCHVISION_DOCS, 0.01),
    **_SMALL_TORCHVISION,
)
def vit_b_32(**kwargs) -> VisionTransformer:
    return _vit("B/32", **kwargs)


@register_model(
    min_input_size=16,
    reference="torchvision",
    paper=VIT_PAPER,
    published=Published(304_326_632, 61.555, TORCHVISION_DOCS, 0.01),
    **_SMALL_TORCHVISION,
)
def vit_l_16(**kwargs) -> VisionTransformer:
    return _vit("L/16", **kwargs)


# --- timm's ViT-Ti/16 (DeiT-Ti's architecture) ------------------------------------------------------------------
@register_model(
    min_input_size=16,
    test_input_size=64,
    reference="timm",
    reference_kwargs={"img_size": 64},
    reference_build_kwargs={"img_size": 64},
    paper=VIT_PAPER,
)
def vit_tiny_patch16_224(**kwargs) -> VisionTransformer:
    return _vit("Ti/16", **kwargs)


# --- a small ViT for the built-in 32 px data -------------------------------------------------------------------
@register_model(input_size=32, min_input_size=4, test_input_size=32, paper=VIT_PAPER)
def vit_mini_patch4_32(**kwargs) -> VisionTransformer:
    return _vit("mini/4", **{"img_size": 32, **kwargs})
