"""NumPy reference convolutions by im2col / col2im, a contender in ``scripts/bench.py``.

Written for clarity over speed: each kernel tap is one strided slice copy, and all the
arithmetic is a single batched ``np.matmul`` (so its speed is numpy's BLAS, an
"obvious implementation" baseline). Arguments follow ``torch.nn.functional``: NCHW
arrays, symmetric ``(pad_h, pad_w)`` padding, ``(h, w)`` pairs everywhere.
"""

from __future__ import annotations

import numpy as np

__all__ = ["conv2d", "conv_transpose2d", "separable_conv2d", "im2col_bytes"]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def im2col_bytes(n: int, c: int, kh: int, kw: int, ho: int, wo: int, itemsize: int) -> int:
    """Size of the column buffer :func:`conv2d` builds."""
    return n * c * kh * kw * ho * wo * itemsize


def conv2d(x: np.ndarray, w: np.ndarray, stride=1, padding=0, dilation=1,
           groups: int = 1) -> np.ndarray:
    """Cross-correlation like ``F.conv2d``: x (N, C, H, W), w (C_out, C/groups, kh, kw)."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    n, c, h, wd = x.shape
    co, cg, kh, kw = w.shape
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    cols = np.empty((n, c, kh, kw, ho, wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dh, j * dw
            cols[:, :, i, j] = xp[:, :, r0:r0 + sh * (ho - 1) + 1:sh, c0:c0 + sw * (wo - 1) + 1:sw]
    cols = cols.reshape(n, groups, cg * kh * kw, ho * wo)
    wm = w.reshape(groups, co // groups, cg * kh * kw)
    return np.matmul(wm, cols).reshape(n, co, ho, wo)


def conv_transpose2d(x: np.ndarray, w: np.ndarray, stride=1, padding=0, output_padding=0,
                     groups: int = 1, dilation=1) -> np.ndarray:
    """Like ``F.conv_transpose2d``: x (N, C_in, H, W), w (C_in, C_out/groups, kh, kw).

    col2im: one matmul gives every input pixel's (C_out, kh, kw) contribution, then each
    tap is scatter-added into a strided slice of the uncropped output, which is cropped
    by ``padding`` at the end.
    """
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    oph, opw = _pair(output_padding)
    n, ci, h, wd = x.shape
    _, cog, kh, kw = w.shape
    co = cog * groups
    ho = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    wo = (wd - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    full_h = max((h - 1) * sh + dh * (kh - 1) + 1, ph + ho)
    full_w = max((wd - 1) * sw + dw * (kw - 1) + 1, pw + wo)
    xm = x.reshape(n, groups, ci // groups, h * wd)
    wm = w.reshape(groups, ci // groups, cog * kh * kw).transpose(0, 2, 1)
    cols = np.matmul(wm, xm).reshape(n, co, kh, kw, h, wd)
    full = np.zeros((n, co, full_h, full_w), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dh, j * dw
            full[:, :, r0:r0 + sh * (h - 1) + 1:sh, c0:c0 + sw * (wd - 1) + 1:sw] += cols[:, :, i, j]
    return np.ascontiguousarray(full[:, :, ph:ph + ho, pw:pw + wo])


def separable_conv2d(x: np.ndarray, dw_w: np.ndarray, pw_w: np.ndarray, stride=1, padding=0,
                     dilation=1) -> np.ndarray:
    """Depthwise (groups = C_in, multiplier 1) then 1x1 pointwise, both without bias."""
    y = conv2d(x, dw_w, stride, padding, dilation, groups=x.shape[1])
    return conv2d(y, pw_w)
