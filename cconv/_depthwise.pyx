# cython: language_level=3
"""Depthwise convolution (groups == C_in) with channel multiplier, stride and dilation.

Design note
-----------
* Layout: NCHW; weight (C * mult, 1, kh, kw); output channel ``c * mult + j`` reads
  input channel ``c`` (torch's groups=C convention).
* Parallel axis: (image, input channel) planes, statically scheduled. Each item
  computes all ``mult`` output planes of its input channel, so the padded copy of the
  input plane is made once and reused.
* Padding strategy: each thread owns a zero-bordered plane of size
  ``(H + top + bottom) x (W + left + right)``; the border is zeroed once when the
  buffer is allocated and only the interior is rewritten per item. The inner loops
  therefore have no bounds checks and no branches.
* Inner loop: one output row at a time, accumulated in place (it stays in L1); for a
  given kernel row the ``kw`` taps are applied in one pass over the row with their
  weights hoisted, so the loop over output columns vectorises (unit stride reads for
  stride 1; strided reads otherwise).
* Determinism: each output element is bias + taps in (kh, kw) order, whatever the
  thread count.
"""

import numpy as np
from cython cimport floating
from cython.parallel cimport prange, parallel

from cconv._common cimport scratch_alloc, free, memset


cdef inline void row_taps(floating* orow, const floating* src, const floating* wrow,
                          Py_ssize_t KW, Py_ssize_t dw, Py_ssize_t sw,
                          Py_ssize_t Wo) noexcept nogil:
    """orow[ow] += sum_kw wrow[kw] * src[ow * sw + kw * dw]."""
    cdef Py_ssize_t ow, kw
    cdef floating w0, w1, w2
    if KW == 3 and sw == 1:
        w0 = wrow[0]; w1 = wrow[1]; w2 = wrow[2]
        for ow in range(Wo):
            orow[ow] = orow[ow] + w0 * src[ow] + w1 * src[ow + dw] + w2 * src[ow + 2 * dw]
    elif KW == 3:
        w0 = wrow[0]; w1 = wrow[1]; w2 = wrow[2]
        for ow in range(Wo):
            orow[ow] = (orow[ow] + w0 * src[ow * sw] + w1 * src[ow * sw + dw]
                        + w2 * src[ow * sw + 2 * dw])
    elif sw == 1:
        for kw in range(KW):
            w0 = wrow[kw]
            for ow in range(Wo):
                orow[ow] += w0 * src[ow + kw * dw]
    else:
        for kw in range(KW):
            w0 = wrow[kw]
            for ow in range(Wo):
                orow[ow] += w0 * src[ow * sw + kw * dw]


cdef void depthwise_plane(const floating* xplane, floating* padded, floating* out_c,
                          const floating* w_c, const floating* bias_c, Py_ssize_t mult,
                          Py_ssize_t H, Py_ssize_t W, Py_ssize_t pt, Py_ssize_t pl,
                          Py_ssize_t Wp, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t sh,
                          Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Ho,
                          Py_ssize_t Wo) noexcept nogil:
    cdef Py_ssize_t i, q, j, oh, ow, kh
    cdef floating b
    cdef floating* orow
    cdef floating* out_j
    cdef const floating* w_j
    for i in range(H):
        for q in range(W):
            padded[(i + pt) * Wp + pl + q] = xplane[i * W + q]
    for j in range(mult):
        out_j = out_c + j * Ho * Wo
        w_j = w_c + j * KH * KW
        b = bias_c[j] if bias_c != NULL else 0
        for oh in range(Ho):
            orow = out_j + oh * Wo
            for ow in range(Wo):
                orow[ow] = b
            for kh in range(KH):
                row_taps(orow, padded + (oh * sh + kh * dh) * Wp, w_j + kh * KW, KW, dw,
                         sw, Wo)


def depthwise_forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w, bias,
                      floating[:, :, :, ::1] out, stride, padding, dilation,
                      int n_threads):
    """x (N, C, H, W), w (C*mult, 1, kh, kw), out (N, C*mult, H_out, W_out), all C-contiguous.

    padding is ((top, bottom), (left, right)) of zeros; other padding modes arrive
    pre-padded with zero padding here.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t C_out = w.shape[0], KH = w.shape[2], KW = w.shape[3]
    cdef Py_ssize_t mult = C_out // C
    cdef Py_ssize_t Ho = out.shape[2], Wo = out.shape[3]
    cdef Py_ssize_t pt = padding[0][0], pb = padding[0][1]
    cdef Py_ssize_t pl = padding[1][0], pr = padding[1][1]
    cdef Py_ssize_t sh = stride[0], sw = stride[1], dh = dilation[0], dw = dilation[1]
    cdef Py_ssize_t Hp = H + pt + pb, Wp = W + pl + pr
    # Rows/columns the output can read: the padded plane may be larger than needed.
    cdef Py_ssize_t need_h = (Ho - 1) * sh + (KH - 1) * dh + 1
    cdef Py_ssize_t need_w = (Wo - 1) * sw + (KW - 1) * dw + 1
    if need_h > Hp:
        Hp = need_h
    if need_w > Wp:
        Wp = need_w
    cdef const floating[::1] bias_view
    cdef const floating* bias_ptr = NULL
    if bias is not None:
        bias_view = bias
        bias_ptr = &bias_view[0]
    cdef Py_ssize_t n_items = N * C, item, n, c
    cdef floating* padded
    cdef int failed = 0
    cdef int* failed_flag = &failed
    if n_items == 0:
        return out
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef const floating* wp = &w[0, 0, 0, 0]
    cdef floating* op = &out[0, 0, 0, 0]
    with nogil, parallel(num_threads=n_threads):
        padded = <floating*> scratch_alloc(Hp * Wp * sizeof(floating))
        if padded != NULL:
            memset(padded, 0, Hp * Wp * sizeof(floating))
        for item in prange(n_items, schedule="static"):
            if padded == NULL:
                failed_flag[0] = 1
                continue
            n = item // C
            c = item - n * C
            depthwise_plane(xp + item * H * W, padded, op + (n * C_out + c * mult) * Ho * Wo,
                            wp + c * mult * KH * KW,
                            (bias_ptr + c * mult) if bias_ptr != NULL else NULL,
                            mult, H, W, pt, pl, Wp, KH, KW, sh, sw, dh, dw, Ho, Wo)
        free(padded)
    if failed:
        raise MemoryError("cconv: could not allocate per-thread scratch memory")
    return out
