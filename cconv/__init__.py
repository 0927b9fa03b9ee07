"""cconv: fast CPU convolutions for NumPy arrays (Cython + OpenMP).

Every variant of the convolution lecture-note canon, with torch.nn.functional's
semantics: standard (stride, padding, dilation, groups), depthwise (with channel
multiplier), pointwise 1x1, depthwise-separable, transposed and dilated; float32 and
float64, NCHW.
"""

from cconv import shapes
from cconv._dispatch import Algorithm, select_algorithm
from cconv._functional import (conv2d, conv_transpose2d, depthwise_conv2d, pointwise_conv2d,
                               separable_conv2d)
from cconv.layers import (Conv2d, ConvTranspose2d, DepthwiseConv2d, PointwiseConv2d,
                          SeparableConv2d)
from cconv._threads import get_num_threads, num_threads, set_num_threads
from cconv._config import build_config, show_config

__version__ = "0.1.0"

__all__ = [
    "conv2d", "conv_transpose2d", "depthwise_conv2d", "pointwise_conv2d", "separable_conv2d",
    "set_num_threads", "get_num_threads", "num_threads", "show_config", "build_config",
    "shapes", "Algorithm", "select_algorithm", "__version__",
    "Conv2d", "ConvTranspose2d", "DepthwiseConv2d", "PointwiseConv2d", "SeparableConv2d",
]
