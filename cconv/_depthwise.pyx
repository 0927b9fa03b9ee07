# cython: language_level=3
"""Depthwise convolution (groups == C_in) with channel multiplier, stride and dilation.

Design note
-----------
* Layout: NCHW; weight (C * mult, 1, kh, kw); output channel ``c * mult + j`` reads
  input channel ``c`` (torch's groups=C convention).
* Parallel axis: (image, input channel) planes, one contiguous range per thread (one
  thread runs them without an OpenMP region: a microsecond of a tiny layer's call).
  Each plane's item computes all ``mult`` output planes of its input channel, so the
  padded copy of the input plane (plain kernels) is made once and reused.
* Padding strategy: the band kernels (below) copy nothing: they read the input plane
  itself, under lane masks that zero the columns outside it, with zero vectors for the
  rows outside it (copying each plane into a zero-bordered one first was a third of
  MobileNet's 112x112 3x3 layer and, split by column parity, 58% of its stride-2
  layer). For the plain kernels each thread owns a zero-bordered plane of size
  ``(H + top + bottom) x (W + left + right)``; the border is zeroed once when the
  buffer is allocated and only the interior is rewritten per item, so their inner
  loops have no bounds checks and no branches.
* 3x3 stride 1 and 2, and 5x5 stride 1 (float32), on builds with AVX-512 or AVX2
  (``_dwrows.pxd``): a band kernel runs down each plane in column blocks of up to four
  vectors, loading every input row once and feeding the output rows that use it
  through rotating accumulators (masked loads and partial stores for the column tail;
  dilated rows as interleaved chains). For stride 2 each input row is split
  into even and odd columns in registers (two-source permutes). Same FMA order as the
  plain kernels, so the same bits.
* Inner loop otherwise (row kernels shared with the separable kernel): a 3x3
  kernel computes each output row in one pass with its nine weights hoisted into
  scalars (stride 2 reads ``a[2j]``, ``a[2j+1]`` directly); other kernels sum their taps
  into a 4 x 16-lane register block before storing it. Planes narrower than a block run
  as one flattened span over the padded plane (rows of pitch W + left + right), whose
  valid columns are then copied out.
* Determinism: each output element is bias + taps in (kh, kw) order, whatever the
  thread count.
"""

from cython cimport floating
from cython.parallel cimport prange, parallel

from cconv._common cimport scratch_alloc, free, memset, effective_threads
from cconv._dwrows cimport (BLOCK_F32, BLOCK_F64, CCONV_DW_SIMD, taps_span, row_3x3_s1,
                            dw_band_s1, dw3x3s2_band, dw_output_row, copy_row)

# The SIMD band kernels (AVX-512 or AVX2) where the build has them (see _dwrows.pxd).
# Tests turn them off to compare them bit for bit with the plain kernels.
cdef bint simd_band = CCONV_DW_SIMD

cdef enum Band:
    NO_BAND = 0     # the plain row kernels
    BAND_S1 = 1     # 3x3 or 5x5 stride 1, any dilation
    BAND_S2 = 2     # 3x3 stride 2, dilation 1: read straight from the input plane


def simd_band_available():
    """Whether this build has the SIMD (AVX-512 or AVX2) band kernels."""
    return bool(CCONV_DW_SIMD)


def _set_simd_band(bint enabled):
    """Use the SIMD band kernels (if built) where they apply (3x3 stride 1 and 2, 5x5
    stride 1 float32); returns the old setting. For tests: both paths give the same bits."""
    global simd_band
    old = simd_band
    simd_band = enabled and CCONV_DW_SIMD
    return old


cdef inline void copy_input_plane(const floating* xplane, floating* padded, Py_ssize_t H,
                                  Py_ssize_t W, Py_ssize_t pt, Py_ssize_t pl,
                                  Py_ssize_t Wp) noexcept nogil:
    """The H x W input plane into the interior of the padded plane (rows of Wp)."""
    cdef Py_ssize_t i
    for i in range(H):
        copy_row(padded + (i + pt) * Wp + pl, xplane + i * W, W)


cdef void depthwise_plane(const floating* xplane, floating* padded, floating* full,
                          floating* out_c, const floating* w_c, const floating* bias_c,
                          const Py_ssize_t* off, Py_ssize_t mult, Py_ssize_t H,
                          Py_ssize_t W, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t Wp,
                          Py_ssize_t T, Py_ssize_t KW, Py_ssize_t sh, Py_ssize_t sw,
                          Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Ho, Py_ssize_t Wo,
                          bint flat, Band band) noexcept nogil:
    cdef Py_ssize_t q, j, oh
    cdef floating b
    cdef floating* out_j
    cdef const floating* w_j
    cdef floating* tmp = full + Ho * Wp + 64
    if band != NO_BAND:
        # No padded copy: the band kernels read the plane itself.
        for j in range(mult):
            b = bias_c[j] if bias_c != NULL else 0
            if band == BAND_S2:
                dw3x3s2_band(out_c + j * Ho * Wo, xplane, H, W, pt, pl, w_c + j * T, Ho, Wo,
                             b)
            else:
                dw_band_s1(KW, out_c + j * Ho * Wo, xplane, H, W, pt, pl, dh, dw,
                           w_c + j * T, Ho, Wo, b)
        return
    copy_input_plane(xplane, padded, H, W, pt, pl, Wp)
    cdef bint k3x3 = T == 9 and KW == 3
    cdef Py_ssize_t span
    cdef const floating* p
    for j in range(mult):
        out_j = out_c + j * Ho * Wo
        w_j = w_c + j * T
        b = bias_c[j] if bias_c != NULL else 0
        if flat:
            # Small planes: one span over the flattened padded plane (rows of Wp), then
            # keep the valid Wo columns of each row.
            span = (Ho - 1) * Wp + Wo
            if k3x3:
                row_3x3_s1(full, padded, padded + dh * Wp, padded + 2 * dh * Wp, w_j, dw,
                           span, b)
            else:
                taps_span(full, padded, w_j, off, T, span, b, tmp)
            for oh in range(Ho):
                for q in range(Wo):
                    out_j[oh * Wo + q] = full[oh * Wp + q]
            continue
        for oh in range(Ho):
            dw_output_row(out_j + oh * Wo, padded + oh * sh * Wp, w_j, off, T, k3x3, Wp, sw,
                          dh, dw, Wo, b, tmp)


cdef struct Planes:
    # One call's planes: the arguments every plane's work shares (arrays of the
    # call's dtype, as run_planes reads them).
    const void* x
    const void* w
    void* out
    const void* bias
    const Py_ssize_t* off
    Py_ssize_t C, mult, H, W, pt, pl, Wp, T, KW, sh, sw, dh, dw, Ho, Wo
    bint flat
    Band band
    Py_ssize_t plane_alloc, full_alloc   # per-thread scratch, in values


cdef int run_planes(const Planes* job, Py_ssize_t first, Py_ssize_t last,
                    floating dtype_tag) noexcept nogil:
    """Input planes [first, last) (image-major) with this thread's scratch planes; 1 if
    the scratch could not be allocated, else 0. (dtype_tag only picks the dtype.)"""
    cdef const floating* x = <const floating*> job.x
    cdef const floating* w = <const floating*> job.w
    cdef floating* out = <floating*> job.out
    cdef const floating* bias = <const floating*> job.bias
    cdef floating* padded = <floating*> scratch_alloc(job.plane_alloc * sizeof(floating))
    cdef floating* full = <floating*> scratch_alloc(job.full_alloc * sizeof(floating))
    cdef Py_ssize_t item, n, c
    cdef Py_ssize_t C_out = job.C * job.mult
    cdef int failed = padded == NULL or full == NULL
    if not failed:
        memset(padded, 0, job.plane_alloc * sizeof(floating))
        for item in range(first, last):
            n = item // job.C
            c = item - n * job.C
            depthwise_plane(x + item * job.H * job.W, padded, full,
                            out + (n * C_out + c * job.mult) * job.Ho * job.Wo,
                            w + c * job.mult * job.T,
                            (bias + c * job.mult) if bias != NULL else NULL,
                            job.off, job.mult, job.H, job.W, job.pt, job.pl, job.Wp, job.T,
                            job.KW, job.sh, job.sw, job.dh, job.dw, job.Ho, job.Wo, job.flat,
                            job.band)
    free(padded)
    free(full)
    return failed


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
    cdef Py_ssize_t bw = 64 if floating is float else 32
    cdef Py_ssize_t T = KH * KW, kh, kw
    # Small rows waste most of a register block: run them as one flattened span.
    cdef bint flat = sh == 1 and sw == 1 and Wo < bw
    cdef Band band = NO_BAND
    # 5x5 only for float32: there the plain kernel sums with FMAs in the same order, so
    # the bits agree; gcc vectorises the float64 plain 5x5 with gathers and separate
    # multiplies and adds, and the fused separable kernel (plain rows) must agree with
    # depthwise + pointwise bit for bit.
    if (simd_band and sh == 1 and sw == 1 and KH == KW
            and (KH == 3 or (KH == 5 and floating is float))):
        band = BAND_S1
    elif (simd_band and KH == 3 and KW == 3 and sh == 2 and sw == 2 and dh == 1
            and dw == 1):
        band = BAND_S2
    # Reads may run one block (at stride 2, two) past the last row used.
    cdef Py_ssize_t plane_alloc = Hp * Wp + 2 * bw * sw + Wp + 64
    # Tap offsets into the padded plane, (kh, kw) order: the weights' own order.
    cdef Py_ssize_t* off = <Py_ssize_t*> scratch_alloc(T * sizeof(Py_ssize_t))
    if off == NULL:
        raise MemoryError("cconv: could not allocate the depthwise tap table")
    for kh in range(KH):
        for kw in range(KW):
            off[kh * KW + kw] = kh * dh * Wp + kw * dw
    cdef Py_ssize_t full_alloc = Ho * Wp + 64 + bw + 64
    if band != NO_BAND:
        # The band kernels read the input itself: no plane to allocate and zero.
        plane_alloc = 64
        full_alloc = 64
    cdef const floating[::1] bias_view
    cdef const floating* bias_ptr = NULL
    if bias is not None:
        bias_view = bias
        bias_ptr = &bias_view[0]
    cdef Py_ssize_t n_items = N * C, t
    cdef int failed = 0
    if n_items == 0:
        free(off)
        return out
    n_threads = effective_threads(n_threads, n_items, <double> N * C_out * Ho * Wo * T)
    cdef Planes job
    cdef floating dtype_tag = 0
    job.x = &x[0, 0, 0, 0]
    job.w = &w[0, 0, 0, 0]
    job.out = &out[0, 0, 0, 0]
    job.bias = bias_ptr
    job.off = off
    job.C, job.mult, job.H, job.W, job.pt, job.pl = C, mult, H, W, pt, pl
    job.Wp, job.T, job.KW, job.sh, job.sw, job.dh, job.dw = Wp, T, KW, sh, sw, dh, dw
    job.Ho, job.Wo, job.flat, job.band = Ho, Wo, flat, band
    job.plane_alloc, job.full_alloc = plane_alloc, full_alloc
    if n_threads == 1:
        # No OpenMP region for one thread: about a microsecond of a tiny layer's call.
        with nogil:
            failed = run_planes(&job, 0, n_items, dtype_tag)
    else:
        with nogil:
            for t in prange(n_threads, schedule="static", num_threads=n_threads):
                failed += run_planes(&job, n_items * t // n_threads,
                                     n_items * (t + 1) // n_threads, dtype_tag)
    free(off)
    if failed:
        raise MemoryError("cconv: could not allocate per-thread scratch memory")
    return out
