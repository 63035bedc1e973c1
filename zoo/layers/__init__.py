"""The vocabulary of blocks the zoo's models are composed from; each is importable on its own."""

from zoo.layers.conv_norm_act import ConvNormAct
from zoo.layers.helpers import get_act_layer, make_divisible
from zoo.layers.residual import BasicBlock, Bottleneck
from zoo.layers.squeeze_excite import SqueezeExcite

__all__ = ["BasicBlock", "Bottleneck", "ConvNormAct", "SqueezeExcite", "get_act_layer", "make_divisible"]
