"""Run layers with cconv on this CPU and time them (the ``--measure`` path).

This is the only module that touches the compiled kernels, and it imports ``cconv``
inside its functions, so planning never needs a build. Times are the best of
``repeat`` runs of :func:`time.perf_counter` after one warm-up run; inputs and
weights are made once, outside the timed region (output allocation is timed, as a
caller without ``out=`` would pay it).
"""

from __future__ import annotations

import time
from typing import Dict, Optional

from .errors import SpecError
from .layers import (Conv2d, ConvTranspose2d, DepthwiseConv2d, Layer, PointwiseConv2d,
                     SeparableConv2d, Shape, as_pair, resolve_padding)

MEASURABLE = ("conv", "depthwise", "pointwise", "separable", "conv_transpose")


def _backend():
    try:
        import cconv
        cconv.conv2d  # noqa: B018 -- the compiled API must be there, not just shapes.py
    except (ImportError, AttributeError) as exc:
        raise SpecError("", "measure", f"--measure needs the compiled cconv kernels "
                                       f"(pip install -e . builds them): {exc}") from None
    return cconv


def _padding_arg(layer: Conv2d, in_shape: Shape):
    k = as_pair(layer.kernel, layer.name, "kernel")
    s = as_pair(layer.stride, layer.name, "stride")
    d = as_pair(layer.dilation, layer.name, "dilation")
    (t, b), (l, r) = resolve_padding(layer.padding, in_shape[1:], k, s, d, layer.name)
    return (t, l) if (t == b and l == r) else ((t, b), (l, r))


def make_call(layer: Layer, in_shape: Shape, batch: int = 1, dtype: str = "float32",
              n_threads: Optional[int] = None, seed: int = 0):
    """A zero-argument function running ``layer`` with cconv on random data, or None for
    layers cconv does not implement (pooling, activations, ...).

    The function returns the output array, so tests can compare its shape.
    """
    if layer.op not in MEASURABLE:
        return None
    import numpy as np
    cconv = _backend()
    rng = np.random.default_rng(seed)
    c = in_shape[0]
    x = rng.standard_normal((batch,) + tuple(in_shape)).astype(dtype)
    k = as_pair(layer.kernel, layer.name, "kernel")
    rand = lambda *shape: rng.standard_normal(shape).astype(dtype)  # noqa: E731
    s = as_pair(layer.stride, layer.name, "stride")
    d = as_pair(layer.dilation, layer.name, "dilation")
    threads = {"n_threads": n_threads}
    if isinstance(layer, SeparableConv2d):
        m = c * layer.multiplier
        dw_b = rand(m) if layer.bias else None
        pw_b = rand(layer.out_channels) if layer.bias else None
        args = (x, rand(m, 1, *k), rand(layer.out_channels, m, 1, 1), dw_b, pw_b, s,
                _padding_arg(layer, in_shape), d)
        return lambda: cconv.separable_conv2d(*args, **threads)
    if isinstance(layer, DepthwiseConv2d):
        m = c * layer.multiplier
        args = (x, rand(m, 1, *k), rand(m) if layer.bias else None, s,
                _padding_arg(layer, in_shape), d)
        return lambda: cconv.depthwise_conv2d(*args, **threads)
    if isinstance(layer, PointwiseConv2d):
        args = (x, rand(layer.out_channels, c, 1, 1),
                rand(layer.out_channels) if layer.bias else None, s)
        return lambda: cconv.pointwise_conv2d(*args, **threads)
    bias = rand(layer.out_channels) if layer.bias else None
    if isinstance(layer, ConvTranspose2d):
        w = rand(c, layer.out_channels // layer.groups, *k)
        a = as_pair(layer.output_padding, layer.name, "output_padding")
        args = (x, w, bias, s, _padding_arg(layer, in_shape), a, layer.groups, d)
        return lambda: cconv.conv_transpose2d(*args, **threads)
    w = rand(layer.out_channels, c // layer.groups, *k)
    args = (x, w, bias, s, _padding_arg(layer, in_shape), d, layer.groups)
    return lambda: cconv.conv2d(*args, **threads)


def best_time(call, repeat: int = 3) -> float:
    """Best wall time of ``repeat`` calls after one warm-up call, in seconds."""
    call()
    best = float("inf")
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def time_layer(layer: Layer, in_shape: Shape, batch: int = 1, dtype: str = "float32",
               n_threads: Optional[int] = None, repeat: int = 3) -> Optional[float]:
    """Best time in seconds of ``layer`` with cconv, or None if cconv does not run it."""
    call = make_call(layer, in_shape, batch, dtype, n_threads)
    if call is None:
        return None
    try:
        return best_time(call, repeat)
    except (ValueError, TypeError, NotImplementedError, MemoryError) as exc:
        message = " ".join(str(exc).split())
        raise SpecError(layer.name, "measure", f"cconv cannot run this layer: "
                                               f"{type(exc).__name__}: {message}") from None


def time_rows(rows, batch: int = 1, dtype: str = "float32", n_threads: Optional[int] = None,
              repeat: int = 3) -> Dict[str, Optional[float]]:
    """``{row name: seconds or None}`` for analysed rows (see :mod:`analysis.network`)."""
    return {row.name: (time_layer(row.layer, row.input_shape, batch, dtype, n_threads, repeat)
                       if row.layer is not None else None)
            for row in rows}
