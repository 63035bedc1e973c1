"""Hand-written backward passes, each a ``torch.autograd.Function`` with a functional wrapper that is a drop-in
for the ``torch.nn.functional`` op of the same name (``softmax_cross_entropy`` for ``cross_entropy``)."""

from zoo.fundamentals.autograd.batch_norm import BatchNormFunction, batch_norm
from zoo.fundamentals.autograd.conv import Conv2dFunction, conv2d
from zoo.fundamentals.autograd.cross_entropy import SoftmaxCrossEntropyFunction, softmax_cross_entropy
from zoo.fundamentals.autograd.dropout import DropoutFunction, dropout
from zoo.fundamentals.autograd.pooling import AvgPool2dFunction, MaxPool2dFunction, avg_pool2d, max_pool2d

__all__ = [
    "AvgPool2dFunction",
    "BatchNormFunction",
    "Conv2dFunction",
    "DropoutFunction",
    "MaxPool2dFunction",
    "SoftmaxCrossEntropyFunction",
    "avg_pool2d",
    "batch_norm",
    "conv2d",
    "dropout",
    "max_pool2d",
    "softmax_cross_entropy",
]
