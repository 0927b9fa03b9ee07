"""Naive reference convolutions, written from the definitions, for testing the kernels.

Independent of ``cconv`` on purpose: nothing here imports the package (not even
``cconv.shapes``); output sizes, "same" padding and padding modes are derived again
from their definitions, so a shared mistake cannot hide in both.

Every function accumulates in float64 and returns a float64 array, whatever the input
dtype; the tests cast or compare.  The loops run in Python over kernel taps and groups
only, and each tap is one vectorised numpy operation over batch, channels and output
positions, so hundreds of small configurations run in a few seconds.

Algorithms (deliberately not the kernels' algorithms):

* ``conv2d``: pad explicitly with ``np.pad`` (torch mode names mapped to numpy's), then
  for each tap add ``weight[:, :, i, j]`` times a strided slice of the padded input.
* ``conv_transpose2d``: the scatter definition.  Every input pixel ``(iy, ix)`` adds
  ``x * w[..., a, b]`` into the uncropped output at ``(iy*s + a*d, ix*s + b*d)``; the
  result is then cropped by ``padding`` on each side (``output_padding`` extends the
  bottom/right).  The kernels gather instead.
* ``depthwise_conv2d``: each output channel ``c*m + j`` is the tap sum over input channel
  ``c`` only (channel repeat, elementwise products; no grouped matmul).
* ``pointwise_conv2d``: subsample by the stride, then one channel contraction.
* ``separable_conv2d``: the reference depthwise followed by the reference pointwise.

``bound`` variants: every function also serves as its own error-bound oracle: calling it
on ``|input|``, ``|weight|`` and ``|bias|`` gives, per output element, the sum of the
absolute values of the terms added, which scales a rounding-error bound that stays
sound under cancellation (see ``tests/_checks.py``).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "pair",
    "resolve_padding",
    "conv2d",
    "conv_transpose2d",
    "depthwise_conv2d",
    "pointwise_conv2d",
    "separable_conv2d",
]

# torch.nn.Conv2d padding_mode -> numpy.pad mode.
_NUMPY_PAD_MODE = {
    "zeros": "constant",
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
}


def pair(value):
    """An int or a 2-sequence as a tuple of two ints."""
    if isinstance(value, (int, np.integer)):
        return (int(value), int(value))
    a, b = value
    return (int(a), int(b))


def _span(kernel, dilation):
    # A dilated kernel of k taps touches positions 0, d, ..., d*(k-1).
    return dilation * (kernel - 1) + 1


def _same_axis(size, kernel, stride, dilation):
    # Output ceil(size / stride); the padding needed so the last window fits,
    # split TensorFlow's way (the odd pixel after), which is torch's split at stride 1.
    out = -(-size // stride)
    total = max((out - 1) * stride + _span(kernel, dilation) - size, 0)
    return (total // 2, total - total // 2)


def resolve_padding(padding, in_hw, kernel_hw, stride, dilation):
    """``((top, bottom), (left, right))`` for any accepted ``padding`` spelling."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0), (0, 0))
        if padding == "same":
            return tuple(_same_axis(in_hw[a], kernel_hw[a], stride[a], dilation[a])
                         for a in (0, 1))
        raise ValueError(f"unknown padding {padding!r}")
    if isinstance(padding, (int, np.integer)):
        p = int(padding)
        return ((p, p), (p, p))
    first, second = padding
    if isinstance(first, (int, np.integer)):
        return ((int(first), int(first)), (int(second), int(second)))
    return (pair(first), pair(second))


def _as_batched(x):
    """float64 copy with a batch axis, and whether one was added."""
    x = np.array(x, dtype=np.float64)
    if x.ndim == 3:
        return x[None], True
    if x.ndim != 4:
        raise ValueError(f"reference expects 3-D or 4-D input, got shape {x.shape}")
    return x, False


def _pad(x, pads, padding_mode):
    (top, bottom), (left, right) = pads
    if top == bottom == left == right == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)),
                  mode=_NUMPY_PAD_MODE[padding_mode])


def _out_len(padded, kernel, stride, dilation):
    span = _span(kernel, dilation)
    if padded < span:
        raise ValueError(f"padded length {padded} is shorter than the kernel span {span}")
    return (padded - span) // stride + 1


def _tap_slice(start, count, stride):
    # Positions start, start + stride, ..., count of them.
    return slice(start, start + (count - 1) * stride + 1, stride)


def _finish(out, bias, unbatched):
    if bias is not None:
        out += np.asarray(bias, dtype=np.float64).reshape(1, -1, 1, 1)
    return out[0] if unbatched else out


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros"):
    """Cross-correlation as torch.nn.functional.conv2d defines it (plus padding modes)."""
    x, unbatched = _as_batched(x)
    w = np.asarray(weight, dtype=np.float64)
    stride, dilation = pair(stride), pair(dilation)
    c_out, c_in_g, kh, kw = w.shape
    n, c_in, h, wd = x.shape
    assert c_in == c_in_g * groups and c_out % groups == 0
    pads = resolve_padding(padding, (h, wd), (kh, kw), stride, dilation)
    xp = _pad(x, pads, padding_mode)
    ho = _out_len(xp.shape[2], kh, stride[0], dilation[0])
    wo = _out_len(xp.shape[3], kw, stride[1], dilation[1])
    out = np.zeros((n, c_out, ho, wo))
    c_out_g = c_out // groups
    for g in range(groups):
        xg = xp[:, g * c_in_g:(g + 1) * c_in_g]
        wg = w[g * c_out_g:(g + 1) * c_out_g]
        og = out[:, g * c_out_g:(g + 1) * c_out_g]
        for i in range(kh):
            rows = _tap_slice(i * dilation[0], ho, stride[0])
            for j in range(kw):
                cols = _tap_slice(j * dilation[1], wo, stride[1])
                # (N, c_in_g, ho, wo) x (c_out_g, c_in_g) -> (N, c_out_g, ho, wo)
                og += np.einsum("ncyx,oc->noyx", xg[:, :, rows, cols], wg[:, :, i, j])
    return _finish(out, bias, unbatched)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    """Transposed convolution by scattering every input pixel through the kernel."""
    x, unbatched = _as_batched(x)
    w = np.asarray(weight, dtype=np.float64)
    stride, dilation = pair(stride), pair(dilation)
    padding, output_padding = pair(padding), pair(output_padding)
    c_in, c_out_g, kh, kw = w.shape
    n, c_in_x, h, wd = x.shape
    assert c_in_x == c_in and c_in % groups == 0
    c_in_g = c_in // groups
    c_out = c_out_g * groups
    # Uncropped: the last input pixel's last tap lands at (h-1)*s + (k-1)*d.
    full_h = (h - 1) * stride[0] + _span(kh, dilation[0]) + output_padding[0]
    full_w = (wd - 1) * stride[1] + _span(kw, dilation[1]) + output_padding[1]
    full = np.zeros((n, c_out, full_h, full_w))
    for g in range(groups):
        xg = x[:, g * c_in_g:(g + 1) * c_in_g]
        wg = w[g * c_in_g:(g + 1) * c_in_g]
        fg = full[:, g * c_out_g:(g + 1) * c_out_g]
        for a in range(kh):
            rows = _tap_slice(a * dilation[0], h, stride[0])
            for b in range(kw):
                cols = _tap_slice(b * dilation[1], wd, stride[1])
                fg[:, :, rows, cols] += np.einsum("ncyx,co->noyx", xg, wg[:, :, a, b])
    out_h = full_h - 2 * padding[0]
    out_w = full_w - 2 * padding[1]
    if out_h < 1 or out_w < 1:
        raise ValueError("transposed output would be empty")
    out = full[:, :, padding[0]:padding[0] + out_h, padding[1]:padding[1] + out_w].copy()
    return _finish(out, bias, unbatched)


def depthwise_conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1,
                     padding_mode="zeros"):
    """Per-channel correlation; output channel ``c*m + j`` reads input channel ``c``."""
    x, unbatched = _as_batched(x)
    w = np.asarray(weight, dtype=np.float64)
    stride, dilation = pair(stride), pair(dilation)
    n, c, h, wd = x.shape
    cm, one, kh, kw = w.shape
    assert one == 1 and cm % c == 0
    m = cm // c
    pads = resolve_padding(padding, (h, wd), (kh, kw), stride, dilation)
    xp = _pad(x, pads, padding_mode)
    ho = _out_len(xp.shape[2], kh, stride[0], dilation[0])
    wo = _out_len(xp.shape[3], kw, stride[1], dilation[1])
    # Channel c*m + j of the repeated input is input channel c.
    xr = np.repeat(xp, m, axis=1)
    out = np.zeros((n, cm, ho, wo))
    for i in range(kh):
        rows = _tap_slice(i * dilation[0], ho, stride[0])
        for j in range(kw):
            cols = _tap_slice(j * dilation[1], wo, stride[1])
            out += xr[:, :, rows, cols] * w[None, :, 0, i, j, None, None]
    return _finish(out, bias, unbatched)


def pointwise_conv2d(x, weight, bias=None, stride=1):
    """1x1 convolution: subsample by the stride, then mix channels."""
    x, unbatched = _as_batched(x)
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim == 4:
        assert w.shape[2:] == (1, 1)
        w = w[:, :, 0, 0]
    sh, sw = pair(stride)
    xs = x[:, :, ::sh, ::sw]
    out = np.einsum("oc,ncyx->noyx", w, xs)
    return _finish(out, bias, unbatched)


def separable_conv2d(x, depthwise_weight, pointwise_weight, depthwise_bias=None,
                     pointwise_bias=None, stride=1, padding=0, dilation=1,
                     padding_mode="zeros"):
    """Depthwise (with its stride, padding, dilation, mode) then pointwise (stride 1)."""
    mid = depthwise_conv2d(x, depthwise_weight, depthwise_bias, stride, padding, dilation,
                           padding_mode)
    return pointwise_conv2d(mid, pointwise_weight, pointwise_bias, 1)
