"""Operations people are asked to write by hand, each checked against PyTorch's own op.

- :mod:`~zoo.fundamentals.conv`: im2col / col2im and convolution as im2col + matmul (``F.unfold``, ``F.fold``,
  ``F.conv2d``);
- :mod:`~zoo.fundamentals.resize`: bilinear resizing (``F.interpolate(mode="bilinear")``);
- :mod:`~zoo.fundamentals.filters`: Gaussian blur (torchvision's ``gaussian_blur``) and a median filter
  (``scipy.ndimage.median_filter``);
- :mod:`~zoo.fundamentals.autograd`: convolution, max/average pooling, batch norm, fused softmax cross-entropy and
  dropout with hand-written backward passes.
"""

from zoo.fundamentals.autograd import (
    AvgPool2dFunction,
    BatchNormFunction,
    Conv2dFunction,
    DropoutFunction,
    MaxPool2dFunction,
    SoftmaxCrossEntropyFunction,
    avg_pool2d,
    batch_norm,
    conv2d,
    dropout,
    max_pool2d,
    softmax_cross_entropy,
)
from zoo.fundamentals.conv import col2im, conv2d_im2col, im2col, sliding_windows
from zoo.fundamentals.filters import PADDING_MODES, gaussian_blur, gaussian_kernel1d, median_filter, pad2d
from zoo.fundamentals.resize import resize_bilinear

__all__ = [
    "PADDING_MODES",
    "AvgPool2dFunction",
    "BatchNormFunction",
    "Conv2dFunction",
    "DropoutFunction",
    "MaxPool2dFunction",
    "SoftmaxCrossEntropyFunction",
    "avg_pool2d",
    "batch_norm",
    "col2im",
    "conv2d",
    "conv2d_im2col",
    "dropout",
    "gaussian_blur",
    "gaussian_kernel1d",
    "im2col",
    "max_pool2d",
    "median_filter",
    "pad2d",
    "resize_bilinear",
    "sliding_windows",
    "softmax_cross_entropy",
]
