"""The vocabulary of blocks the zoo's models are composed from; each is importable on its own."""

from zoo.layers.aspp import ASPP, ASPPPooling
from zoo.layers.attention import MultiheadAttention, attention, scaled_dot_product_attention
from zoo.layers.cbam import CBAM, ChannelAttention, SpatialAttention
from zoo.layers.classifier import ClassifierHead, GlobalPool
from zoo.layers.conv_norm_act import ConvNormAct
from zoo.layers.fpn import ExtraFPNBlock, FeaturePyramidNetwork, LastLevelMaxPool, LastLevelP6P7
from zoo.layers.frozen_batch_norm import FrozenBatchNorm2d
from zoo.layers.helpers import drop_path, get_act_layer, make_divisible
from zoo.layers.inception import (
    Inception,
    InceptionA,
    InceptionAux,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE,
    InceptionV3Aux,
    InceptionV4A,
    InceptionV4B,
    InceptionV4C,
    InceptionV4ReductionA,
    InceptionV4ReductionB,
)
from zoo.layers.inverted_residual import DepthwiseSeparableConv, InvertedResidual
from zoo.layers.positional import LearnedPositionEmbedding, SinePositionEmbedding2d, SinusoidalPositionalEncoding
from zoo.layers.pyramid_pooling import PyramidPooling
from zoo.layers.residual import BasicBlock, Bottleneck
from zoo.layers.shuffle import ShuffleV2Block, channel_shuffle
from zoo.layers.squeeze_excite import SqueezeExcite
from zoo.layers.swin import (
    PatchEmbed,
    PatchMerging,
    ShiftedWindowAttention,
    SwinBlock,
    SwinStage,
    shifted_window_mask,
    window_partition,
    window_reverse,
)
from zoo.layers.transformer import (
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)
from zoo.layers.unet import DoubleConv, Down, OutConv, UnetDecoderBlock, Up
from zoo.layers.vit import ViTBlock, ViTEmbedding, ViTPatchEmbed, resample_pos_embed
from zoo.layers.xception import SeparableConv2d, XceptionBlock

# The name the papers and the README use for the pyramid.
FPN = FeaturePyramidNetwork

__all__ = [
    "ASPP",
    "ASPPPooling",
    "BasicBlock",
    "Bottleneck",
    "ClassifierHead",
    "ConvNormAct",
    "DepthwiseSeparableConv",
    "DoubleConv",
    "Down",
    "ExtraFPNBlock",
    "FPN",
    "FeaturePyramidNetwork",
    "FrozenBatchNorm2d",
    "GlobalPool",
    "Inception",
    "InceptionA",
    "InceptionAux",
    "InceptionB",
    "InceptionC",
    "InceptionD",
    "InceptionE",
    "InceptionV3Aux",
    "InceptionV4A",
    "InceptionV4B",
    "InceptionV4C",
    "InceptionV4ReductionA",
    "InceptionV4ReductionB",
    "InvertedResidual",
    "LastLevelMaxPool",
    "LastLevelP6P7",
    "LearnedPositionEmbedding",
    "OutConv",
    "PyramidPooling",
    "SeparableConv2d",
    "SinePositionEmbedding2d",
    "SinusoidalPositionalEncoding",
    "ShuffleV2Block",
    "UnetDecoderBlock",
    "Up",
    "XceptionBlock",
    "channel_shuffle",
    "SqueezeExcite",
    "PatchEmbed",
    "PatchMerging",
    "ShiftedWindowAttention",
    "SwinBlock",
    "SwinStage",
    "shifted_window_mask",
    "window_partition",
    "window_reverse",
    "drop_path",
    "get_act_layer",
    "make_divisible",
    "MultiheadAttention",
    "attention",
    "scaled_dot_product_attention",
    "CBAM",
    "ChannelAttention",
    "SpatialAttention",
    "Transformer",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "ViTBlock",
    "ViTEmbedding",
    "ViTPatchEmbed",
    "resample_pos_embed",
]
