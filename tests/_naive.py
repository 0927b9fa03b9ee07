"""A small float64 reference for the hardening tests: the definitions, loop over taps.

Deliberately independent of cconv's padding/shape code paths: padding modes through
``numpy.pad``, a convolution as a sum over kernel taps of strided slices, a transposed
convolution as a *scatter* of every input pixel through every tap (the definition),
then cropped. Padding is always ``((top, bottom), (left, right))``.
"""

import numpy as np

NUMPY_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
                  "circular": "wrap"}


def conv2d(x, w, b=None, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1),
           groups=1, padding_mode="zeros"):
    """x (N, C, H, W), w (C_out, C/groups, kh, kw) -> (N, C_out, H_out, W_out), float64."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    x = np.pad(x, ((0, 0), (0, 0)) + tuple(padding), mode=NUMPY_PAD_MODE[padding_mode])
    N, C, Hp, Wp = x.shape
    C_out, Cg, KH, KW = w.shape
    M = C_out // groups
    Ho = (Hp - dilation[0] * (KH - 1) - 1) // stride[0] + 1
    Wo = (Wp - dilation[1] * (KW - 1) - 1) // stride[1] + 1
    out = np.zeros((N, C_out, Ho, Wo))
    for g in range(groups):
        xg = x[:, g * Cg:(g + 1) * Cg]
        wg = w[g * M:(g + 1) * M]
        for i in range(KH):
            for j in range(KW):
                y0, x0 = i * dilation[0], j * dilation[1]
                patch = xg[:, :, y0:y0 + (Ho - 1) * stride[0] + 1:stride[0],
                           x0:x0 + (Wo - 1) * stride[1] + 1:stride[1]]
                out[:, g * M:(g + 1) * M] += np.einsum("nchw,mc->nmhw", patch, wg[:, :, i, j])
    if b is not None:
        out += np.asarray(b, np.float64)[None, :, None, None]
    return out


def conv_transpose2d(x, w, b=None, stride=(1, 1), padding=((0, 0), (0, 0)),
                     output_padding=(0, 0), groups=1, dilation=(1, 1)):
    """x (N, C, H, W), w (C, C_out/groups, kh, kw): every input pixel scattered through
    every tap into a full-size canvas, then ``padding`` cropped off each side."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    N, C, H, W = x.shape
    _, M, KH, KW = w.shape
    Cg = C // groups
    full_h = (H - 1) * stride[0] + dilation[0] * (KH - 1) + 1 + output_padding[0]
    full_w = (W - 1) * stride[1] + dilation[1] * (KW - 1) + 1 + output_padding[1]
    full = np.zeros((N, groups * M, full_h, full_w))
    for g in range(groups):
        xg = x[:, g * Cg:(g + 1) * Cg]
        wg = w[g * Cg:(g + 1) * Cg]
        for i in range(KH):
            for j in range(KW):
                y0, x0 = i * dilation[0], j * dilation[1]
                full[:, g * M:(g + 1) * M, y0:y0 + (H - 1) * stride[0] + 1:stride[0],
                     x0:x0 + (W - 1) * stride[1] + 1:stride[1]] += np.einsum(
                         "nchw,cm->nmhw", xg, wg[:, :, i, j])
    (pt, pb), (pl, pr) = padding
    out = full[:, :, pt:full_h - pb, pl:full_w - pr]
    if b is not None:
        out = out + np.asarray(b, np.float64)[None, :, None, None]
    return out


def separable_conv2d(x, dw, pw, dw_b=None, pw_b=None, stride=(1, 1),
                     padding=((0, 0), (0, 0)), dilation=(1, 1), padding_mode="zeros"):
    """Depthwise (groups=C) then a 1x1 conv; pw is (C_out, C*m) or (C_out, C*m, 1, 1)."""
    C = np.shape(x)[1]
    mid = conv2d(x, dw, dw_b, stride, padding, dilation, C, padding_mode)
    pw = np.asarray(pw, np.float64)
    return conv2d(mid, pw.reshape(pw.shape[0], pw.shape[1], 1, 1), pw_b)
