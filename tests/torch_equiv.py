"""Each cconv public function expressed with torch.nn.functional, in float64.

Used to validate ``tests/reference.py`` and, in ``test_against_torch.py``, the kernels.
Where torch has no direct spelling, the mapping is explicit:

* non-"zeros" padding modes and asymmetric padding: ``F.pad`` first (torch.nn.Conv2d's
  own rule for padding modes), then an unpadded ``F.conv2d``;
* ``"same"`` at stride > 1 (torch refuses it): the TensorFlow padding, computed here
  from its definition, as an explicit ``F.pad``;
* depthwise: ``F.conv2d(groups=C)``; pointwise: a (C_out, C_in, 1, 1) weight;
  separable: two ``F.conv2d`` calls.

Callers must import torch first (``pytest.importorskip("torch")``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from reference import pair

_TORCH_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
                   "circular": "circular"}


def _t(a):
    return None if a is None else torch.from_numpy(np.array(a, dtype=np.float64))


def _np(t):
    return t.numpy()


def _explicit_padding(padding, in_hw, kernel_hw, stride, dilation):
    """((top, bottom), (left, right)), or None when torch can take ``padding`` as is."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0), (0, 0))
        out = [-(-in_hw[a] // stride[a]) for a in (0, 1)]
        totals = [max((out[a] - 1) * stride[a] + dilation[a] * (kernel_hw[a] - 1) + 1
                      - in_hw[a], 0) for a in (0, 1)]
        return tuple((t // 2, t - t // 2) for t in totals)
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    first, second = padding
    if isinstance(first, int):
        return ((first, first), (second, second))
    return (tuple(first), tuple(second))


def _conv(x, w, b, stride, padding, dilation, groups, padding_mode):
    stride, dilation = pair(stride), pair(dilation)
    x, w, b = _t(x), _t(w), _t(b)
    unbatched = x.dim() == 3
    if unbatched:
        x = x[None]
    if padding == "same" and stride == (1, 1) and padding_mode == "zeros":
        out = F.conv2d(x, w, b, stride, "same", dilation, groups)  # torch's own "same"
    else:
        (t, bo), (le, r) = _explicit_padding(padding, tuple(x.shape[2:]),
                                              tuple(w.shape[2:]), stride, dilation)
        if (t, bo, le, r) != (0, 0, 0, 0):
            x = F.pad(x, (le, r, t, bo), mode=_TORCH_PAD_MODE[padding_mode])
        out = F.conv2d(x, w, b, stride, 0, dilation, groups)
    return _np(out[0] if unbatched else out)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros"):
    return _conv(x, weight, bias, stride, padding, dilation, groups, padding_mode)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    return _np(F.conv_transpose2d(_t(x), _t(weight), _t(bias), pair(stride), pair(padding),
                                  pair(output_padding), groups, pair(dilation)))


def depthwise_conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1,
                     padding_mode="zeros"):
    c = np.shape(x)[-3]
    return _conv(x, weight, bias, stride, padding, dilation, c, padding_mode)


def pointwise_conv2d(x, weight, bias=None, stride=1):
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim == 2:
        w = w[:, :, None, None]
    return _conv(x, w, bias, stride, 0, 1, 1, "zeros")


def separable_conv2d(x, depthwise_weight, pointwise_weight, depthwise_bias=None,
                     pointwise_bias=None, stride=1, padding=0, dilation=1,
                     padding_mode="zeros"):
    mid = depthwise_conv2d(x, depthwise_weight, depthwise_bias, stride, padding, dilation,
                           padding_mode)
    return pointwise_conv2d(mid, pointwise_weight, pointwise_bias, 1)
