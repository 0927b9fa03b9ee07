# Depthwise row kernels, shared by the depthwise kernel (_depthwise.pyx) and the fused
# separable kernel (_separable.pyx). Inline, so each module compiles its own copy.
#
# All read a zero-padded plane (row pitch Wp) and write one output row, or one span of
# a flattened plane; none has a bounds check or a branch in its inner loop.

from cython cimport floating


cdef enum:
    BLOCK_F32 = 64   # output columns per register block, float32 (4 zmm)
    BLOCK_F64 = 32   # float64 (4 zmm)


cdef inline void taps_block_s1(floating* dst, const floating* src, const floating* w,
                               const Py_ssize_t* off, Py_ssize_t T, floating b) noexcept nogil:
    """dst[j] = b + sum_t w[t] * src[off[t] + j] for one register block of columns.

    The accumulator is a 4 x (one zmm) local array that gcc keeps in registers (a 1-D
    array of the same size is not promoted): per tap one broadcast and four FMAs with
    memory operands, and no store until every tap is summed.
    """
    cdef Py_ssize_t t, i, j
    cdef floating wv
    cdef const floating* s
    cdef float acc32[4][16]
    cdef double acc64[4][8]
    if floating is float:
        for i in range(4):
            for j in range(16):
                acc32[i][j] = b
        for t in range(T):
            wv = w[t]
            s = src + off[t]
            for i in range(4):
                for j in range(16):
                    acc32[i][j] += wv * s[i * 16 + j]
        for i in range(4):
            for j in range(16):
                dst[i * 16 + j] = acc32[i][j]
    else:
        for i in range(4):
            for j in range(8):
                acc64[i][j] = b
        for t in range(T):
            wv = w[t]
            s = src + off[t]
            for i in range(4):
                for j in range(8):
                    acc64[i][j] += wv * s[i * 8 + j]
        for i in range(4):
            for j in range(8):
                dst[i * 8 + j] = acc64[i][j]


cdef inline void row_3x3_s1(floating* o, const floating* r0, const floating* r1,
                            const floating* r2, const floating* w, Py_ssize_t dw,
                            Py_ssize_t n, floating b) noexcept nogil:
    """One output row (or flattened span) of a 3x3 stride-1 kernel, weights hoisted."""
    cdef floating w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5]
    cdef floating w6 = w[6], w7 = w[7], w8 = w[8]
    cdef Py_ssize_t j
    for j in range(n):
        o[j] = (b + w0 * r0[j] + w1 * r0[j + dw] + w2 * r0[j + 2 * dw]
                + w3 * r1[j] + w4 * r1[j + dw] + w5 * r1[j + 2 * dw]
                + w6 * r2[j] + w7 * r2[j + dw] + w8 * r2[j + 2 * dw])


cdef inline void row_3x3_s2(floating* o, const floating* r0, const floating* r1,
                            const floating* r2, const floating* w, Py_ssize_t dw,
                            Py_ssize_t n, floating b) noexcept nogil:
    """One output row of a 3x3 stride-2 kernel: even/odd reads straight from the row."""
    cdef floating w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5]
    cdef floating w6 = w[6], w7 = w[7], w8 = w[8]
    cdef Py_ssize_t j
    for j in range(n):
        o[j] = (b + w0 * r0[2 * j] + w1 * r0[2 * j + dw] + w2 * r0[2 * j + 2 * dw]
                + w3 * r1[2 * j] + w4 * r1[2 * j + dw] + w5 * r1[2 * j + 2 * dw]
                + w6 * r2[2 * j] + w7 * r2[2 * j + dw] + w8 * r2[2 * j + 2 * dw])


cdef inline void taps_block_any(floating* dst, const floating* src, const floating* w,
                                const Py_ssize_t* off, Py_ssize_t T, Py_ssize_t sw,
                                Py_ssize_t n, floating b) noexcept nogil:
    """Generic column stride: n columns, tap by tap (no register blocking)."""
    cdef Py_ssize_t t, j
    cdef floating wv
    cdef const floating* s
    for j in range(n):
        dst[j] = b
    for t in range(T):
        wv = w[t]
        s = src + off[t]
        for j in range(n):
            dst[j] += wv * s[j * sw]


cdef inline void taps_span(floating* dst, const floating* src, const floating* w,
                           const Py_ssize_t* off, Py_ssize_t T, Py_ssize_t n, floating b,
                           floating* tmp) noexcept nogil:
    """dst[j] = b + sum_t w[t] src[off[t] + j] for j < n (stride 1), in register blocks.

    A partial last block is computed into tmp and copied; src must be readable a full
    block past the span (the padded plane carries that margin).
    """
    cdef Py_ssize_t bw, j0, j
    if floating is float:
        bw = BLOCK_F32
    else:
        bw = BLOCK_F64
    j0 = 0
    while j0 + bw <= n:
        taps_block_s1(dst + j0, src + j0, w, off, T, b)
        j0 += bw
    if j0 < n:
        taps_block_s1(tmp, src + j0, w, off, T, b)
        for j in range(n - j0):
            dst[j0 + j] = tmp[j]


cdef inline void dw_output_row(floating* orow, const floating* p, const floating* w,
                               const Py_ssize_t* off, Py_ssize_t T, bint k3x3,
                               Py_ssize_t Wp, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw,
                               Py_ssize_t Wo, floating b, floating* tmp) noexcept nogil:
    """One depthwise output row from padded rows starting at p (row pitch Wp)."""
    if k3x3 and sw == 1:
        row_3x3_s1(orow, p, p + dh * Wp, p + 2 * dh * Wp, w, dw, Wo, b)
    elif k3x3 and sw == 2:
        row_3x3_s2(orow, p, p + dh * Wp, p + 2 * dh * Wp, w, dw, Wo, b)
    elif sw == 1:
        taps_span(orow, p, w, off, T, Wo, b, tmp)
    else:
        taps_block_any(orow, p, w, off, T, sw, Wo, b)

