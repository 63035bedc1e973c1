"""The vocabulary of blocks the zoo's models are composed from; each is importable on its own."""

from zoo.layers.conv_norm_act import ConvNormAct
from zoo.layers.helpers import get_act_layer, make_divisible
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
from zoo.layers.residual import BasicBlock, Bottleneck
from zoo.layers.shuffle import ShuffleV2Block, channel_shuffle
from zoo.layers.squeeze_excite import SqueezeExcite
from zoo.layers.xception import SeparableConv2d, XceptionBlock

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ConvNormAct",
    "DepthwiseSeparableConv",
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
    "SeparableConv2d",
    "ShuffleV2Block",
    "XceptionBlock",
    "channel_shuffle",
    "SqueezeExcite",
    "get_act_layer",
    "make_divisible",
]
