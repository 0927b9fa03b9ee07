"""Layer objects for repeated inference: arguments and weights fixed once, then called.

Like a oneDNN primitive or an XNNPACK operator: the weights are converted to one
C-contiguous array at construction (the kernels then read them in place, with no
per-call copy), and the GEMM plan (tap tables, phases, work split) is kept per input
shape, so a repeated call only validates the input and runs the kernel. Every object
computes exactly what the matching function in ``cconv`` computes.

    >>> layer = cconv.Conv2d(weight, bias, stride=2, padding="same")
    >>> y = layer(x)                      # same as cconv.conv2d(x, weight, bias, ...)
"""

from __future__ import annotations

import numpy as np

from cconv._functional import _convolution
from cconv._params import _float_array, _same_dtype


def _frozen(arr: np.ndarray | None) -> np.ndarray | None:
    if arr is None:
        return None
    arr = np.array(arr, order="C", copy=True)  # our own copy: later edits by the caller
    arr.flags.writeable = False                 # cannot change a layer behind its back
    return arr


class _Layer:
    _op = ""

    def __init__(self, arrays, **kwargs):
        first = None
        self._arrays = {}
        for name, value in arrays.items():
            arr = _float_array(value, name, allow_none=name.endswith("bias"))
            if first is None:
                first = arr
            else:
                _same_dtype(first, arr, name)
            self._arrays[name] = _frozen(arr)
        self._kwargs = kwargs
        self._plans: dict = {}

    @property
    def dtype(self) -> np.dtype:
        return next(iter(self._arrays.values())).dtype

    def __getattr__(self, name):
        arrays = self.__dict__.get("_arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(name)

    def _call(self, input, out, n_threads, *args, **extra):
        return _convolution(self._op, input, *args, plan_cache=self._plans, out=out,
                            n_threads=n_threads, **self._kwargs, **extra)

    def __repr__(self):
        shapes = ", ".join(f"{k}={list(v.shape)}" for k, v in self._arrays.items()
                           if v is not None)
        opts = ", ".join(f"{k}={v!r}" for k, v in self._kwargs.items())
        return f"{type(self).__name__}({shapes}, {opts}, dtype={self.dtype})"


class Conv2d(_Layer):
    """``cconv.conv2d`` with fixed weight, bias and arguments."""

    _op = "conv2d"

    def __init__(self, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
                 padding_mode="zeros"):
        super().__init__({"weight": weight, "bias": bias}, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, padding_mode=padding_mode)

    def __call__(self, input, *, out=None, n_threads=None):
        return self._call(input, out, n_threads, self.weight, self.bias)


class ConvTranspose2d(_Layer):
    """``cconv.conv_transpose2d`` with fixed weight, bias and arguments."""

    _op = "conv_transpose2d"

    def __init__(self, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                 dilation=1):
        super().__init__({"weight": weight, "bias": bias}, stride=stride, padding=padding,
                         output_padding=output_padding, groups=groups, dilation=dilation)

    def __call__(self, input, *, out=None, n_threads=None):
        return self._call(input, out, n_threads, self.weight, self.bias)


class DepthwiseConv2d(_Layer):
    """``cconv.depthwise_conv2d`` with fixed weight, bias and arguments."""

    _op = "depthwise_conv2d"

    def __init__(self, weight, bias=None, stride=1, padding=0, dilation=1, *,
                 padding_mode="zeros"):
        super().__init__({"weight": weight, "bias": bias}, stride=stride, padding=padding,
                         dilation=dilation, padding_mode=padding_mode)

    def __call__(self, input, *, out=None, n_threads=None):
        return self._call(input, out, n_threads, self.weight, self.bias)


class PointwiseConv2d(_Layer):
    """``cconv.pointwise_conv2d`` with fixed weight, bias and stride."""

    _op = "pointwise_conv2d"

    def __init__(self, weight, bias=None, stride=1):
        super().__init__({"weight": weight, "bias": bias}, stride=stride)

    def __call__(self, input, *, out=None, n_threads=None):
        return self._call(input, out, n_threads, self.weight, self.bias)


class SeparableConv2d(_Layer):
    """``cconv.separable_conv2d`` with fixed weights, biases and arguments."""

    _op = "separable_conv2d"

    def __init__(self, depthwise_weight, pointwise_weight, depthwise_bias=None,
                 pointwise_bias=None, stride=1, padding=0, dilation=1, *,
                 padding_mode="zeros"):
        super().__init__({"depthwise_weight": depthwise_weight,
                          "pointwise_weight": pointwise_weight,
                          "depthwise_bias": depthwise_bias,
                          "pointwise_bias": pointwise_bias},
                         stride=stride, padding=padding, dilation=dilation,
                         padding_mode=padding_mode)

    def __call__(self, input, *, out=None, n_threads=None):
        return self._call(input, out, n_threads, self.depthwise_weight, self.depthwise_bias,
                          pointwise_weight=self.pointwise_weight,
                          pointwise_bias=self.pointwise_bias)
