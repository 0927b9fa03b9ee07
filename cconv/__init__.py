"""cconv: fast CPU convolutions for NumPy arrays (Cython + OpenMP).

Every variant of the convolution lecture-note canon, with torch.nn.functional's
semantics: standard (stride, padding, dilation, groups), depthwise (with channel
multiplier), pointwise 1x1, depthwise-separable, transposed and dilated; float32 and
float64, NCHW.

The compiled kernels load on first use of a function that needs them, so the pure
shape arithmetic (``cconv.shapes``), which ``analysis`` plans with, never requires a
built extension.
"""

import importlib

from cconv import shapes

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "conv2d": "cconv._functional",
    "conv_transpose2d": "cconv._functional",
    "depthwise_conv2d": "cconv._functional",
    "pointwise_conv2d": "cconv._functional",
    "separable_conv2d": "cconv._functional",
    "Conv2d": "cconv.layers",
    "ConvTranspose2d": "cconv.layers",
    "DepthwiseConv2d": "cconv.layers",
    "PointwiseConv2d": "cconv.layers",
    "SeparableConv2d": "cconv.layers",
    "set_num_threads": "cconv._threads",
    "get_num_threads": "cconv._threads",
    "num_threads": "cconv._threads",
    "show_config": "cconv._config",
    "build_config": "cconv._config",
    "Algorithm": "cconv._dispatch",
    "select_algorithm": "cconv._dispatch",
}

__all__ = ["shapes", "__version__", *_LAZY]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cconv' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
