# cython: language_level=3
"""Winograd F(2x2, 3x3) engine: ungrouped 3x3 convs at stride 1, any dilation.

Design note
-----------
A 3x3 conv computes 9 multiply-adds per output and input channel. Winograd's minimal
filtering algorithm F(2x2, 3x3) computes a 2x2 block of outputs from a 4x4 input patch
``d`` as ``Y = A^T [(G g G^T) (.) (B^T d B)] A`` with 16 multiplies instead of 36, so
summed over input channels a layer becomes 16 independent matrix products (one per
transform position ``p`` of the 4x4 tile) with 2.25x fewer multiply-adds than the
direct conv (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks",
2016; the transforms use the points 0, 1, -1, so every coefficient is 0, +-1 or +-1/2).

* Layout: NCHW in and out. Tiles are 2x2 output blocks in row-major order over the
  image (``ceil(H_out / 2) x ceil(W_out / 2)``), numbered flat, so a block of tiles
  spans tile rows and a 14x14 map is one block of 49 tiles. Transformed weights ``U``
  are packed ``[p][block of MR channels][C_in][MR]`` (the GEMM engine's packed-A
  layout, rows past C_out zero), once per call, or once per layer object.
* Work item: (image, block of up to NT tiles, chunk of output channels). An item
  transforms its tiles' input patches for every input channel into ``V[p][C_in][NT]``
  (tiles in the columns), then, per group of MG m-blocks, runs the 16 products
  ``M[p] = U[p] V[p]`` with the packed 8 x 32 micro-kernel (K = all of C_in in one
  pass) and transforms each 2x2 output block back, adding the bias. A group's ``M`` is
  16 x MG x 8 channels x NT tiles (128 KB for float32), so it stays in L2 while ``V[p]``
  is reused by its MG m-blocks.
* Padding strategy: an input patch row is copied into a small zero-filled buffer
  (rows and columns outside the input read zeros), then transformed; no padded copy of
  the input is made.
* Parallel axis: the flat list of items, statically scheduled. Where the threads do
  not divide the (image, block) count, a block or two more; channels are split into
  chunks only when there are fewer (image, block) items than threads, and then all
  threads first transform the blocks' input, in slices of channels, into one shared V
  per block that the chunks read.
* Determinism: every output is computed in one item by the same sequence of
  operations (the micro-kernel's k order is the input channel order), whatever the
  thread count or the chunking.
* Wide mode (``run_all_wide``, for more input channels than an item holds: ASPP's
  2048): every tile of an image at once and the input channels in chunks of CK. Per
  chunk its weights are transformed (U of the chunk only: the whole U of 2048 -> 256
  channels is 34 MB, more than it costs to transform per call), its input is copied
  into a zero-bordered channels-last buffer and transformed 16 channels per vector
  (any dilation is then only a patch stride: no phase planes, no short tile rows), and
  the products of every (position, chunk of m-blocks) add into one M for all tiles. U
  is read once per call and V once per chunk, where the blocked items each stream all
  of U (33 MB per block of 64 tiles for ASPP) and their whole V from memory.
* Dilation: dilation_h x dilation_w undilated convs, one per pair of row and column
  phases (``phase_table``), of the input split into phase planes first; the tiles of
  all phases share the flat tile order, so a block may hold several phases' tiles.
* Accuracy: the transforms add and subtract a handful of values before and after the
  products; the measured rounding errors are of the size of the direct sum's (see
  tests/README), within the same bound. Non-finite values do not follow the direct conv (Inf - Inf is NaN
  where the direct sum gives Inf), so ``run`` reports whether any output is
  non-finite and the caller then recomputes the layer directly.
"""

import numpy as np
from cython cimport floating
from cython.parallel cimport prange, parallel

from cconv._common cimport (scratch_alloc, free, memset, memcpy, effective_threads,
                            cconv_prefetch_l2, cconv_transpose16_copy)
from cconv._microkernel cimport MR, microkernel_packed
from cconv.shapes import dilation_phases


cdef enum:
    NT = 64   # tiles per work item at most (two micro-kernel tiles of 32 columns)
    NRW = 32  # columns of one micro-kernel tile (NR_F32 = NR_F64 = 32)
    MG = 4    # m-blocks per group sharing one pass over V (M buffer 16 x MG x 8 x NT)
    CK = 256  # input channels per chunk of a wide call (run_wide), a multiple of WL
    WL = 16   # channels per vector of the wide input transform
    WIDE_TILES = 16  # tiles per transform item of a wide call


cdef enum:
    # Columns of the phase table (one row per output phase; one phase when undilated):
    # the phase's input plane (offset, row pitch, rows, columns; its columns are
    # contiguous, a dilated conv's input being split into phase planes first), its
    # padding, its output view (offset, row pitch, column step, rows, columns), its
    # tiles per row and its first tile in the flat order.
    PX_OFF = 0
    PX_RS = 1
    PX_H = 2
    PX_W = 3
    PX_PT = 4
    PX_PL = 5
    PO_OFF = 6
    PO_RS = 7
    PO_CS = 8
    PO_H = 9
    PO_W = 10
    P_TILES_X = 11
    P_TILE0 = 12
    P_COLS = 13


cdef inline Py_ssize_t next_segment(const Py_ssize_t* ph, Py_ssize_t n_ph, Py_ssize_t t,
                                    Py_ssize_t limit, const Py_ssize_t** row,
                                    Py_ssize_t* ty, Py_ssize_t* tx0) noexcept nogil:
    """The run of tiles from flat tile t along one tile row of one phase (at most
    ``limit``): its phase's table row, tile row and first column; returns its length."""
    cdef Py_ssize_t lo = 0, hi = n_ph - 1, mid, local, n
    while lo < hi:                       # the last phase whose first tile is <= t
        mid = (lo + hi + 1) // 2
        if ph[mid * P_COLS + P_TILE0] <= t:
            lo = mid
        else:
            hi = mid - 1
    row[0] = ph + lo * P_COLS
    local = t - row[0][P_TILE0]
    ty[0] = local // row[0][P_TILES_X]
    tx0[0] = local % row[0][P_TILES_X]
    n = row[0][P_TILES_X] - tx0[0]
    return n if n < limit else limit


cdef void transform_input(const floating* x_img, Py_ssize_t C_in, Py_ssize_t plane,
                          const Py_ssize_t* ph, Py_ssize_t n_ph, Py_ssize_t t0,
                          Py_ssize_t nt, floating* V, Py_ssize_t ci0, Py_ssize_t ci1,
                          floating* rows) noexcept nogil:
    """V[p][ci][j] = (B^T d B)[p] for the patch d of flat tile t0 + j in channel ci, for
    ci0 <= ci < ci1 and j < nt (zero for the columns nt .. NT). ``rows`` is scratch for
    4 patch rows of 2 * NT + 2 values."""
    cdef Py_ssize_t ci, j, ty, tx0, n, r, iy, ix0, L, c, lo, hi, base, Hs
    cdef Py_ssize_t span = 2 * NT + 2
    cdef const Py_ssize_t* P
    cdef const floating* xr
    cdef floating* e0 = rows
    cdef floating* e1 = rows + span
    cdef floating* e2 = rows + 2 * span
    cdef floating* e3 = rows + 3 * span
    cdef floating* vj
    cdef floating a, b, cc, d
    cdef Py_ssize_t ldv = C_in * NT
    for ci in range(ci0, ci1):
        if nt < NT:
            for r in range(16):
                memset(V + r * ldv + ci * NT + nt, 0, (NT - nt) * sizeof(floating))
        j = 0
        while j < nt:
            n = next_segment(ph, n_ph, t0 + j, nt - j, &P, &ty, &tx0)
            iy = 2 * ty - P[PX_PT]
            ix0 = 2 * tx0 - P[PX_PL]
            Hs = P[PX_H]
            L = 2 * n + 2
            # Columns [lo, hi) of the patch rows lie inside the input.
            lo = -ix0 if ix0 < 0 else 0
            hi = P[PX_W] - ix0 if P[PX_W] - ix0 < L else L
            if hi < lo:
                hi = lo
            for r in range(4):
                vj = rows + r * span
                if iy + r < 0 or iy + r >= Hs:
                    for c in range(L):
                        vj[c] = 0
                    continue
                xr = x_img + ci * plane + P[PX_OFF] + (iy + r) * P[PX_RS] + ix0
                if ci + 1 < ci1:
                    # The next channel's row: from memory on large maps, where a
                    # load that waits for it was 30% of this function's time.
                    c = lo
                    while c < hi:
                        cconv_prefetch_l2(xr + plane + c)
                        c += 16
                    cconv_prefetch_l2(xr + plane + hi - 1)
                for c in range(lo):
                    vj[c] = 0
                # (gcc kept this loop scalar: 10% of the engine's time at 64 channels)
                memcpy(vj + lo, xr + lo, (hi - lo) * sizeof(floating))
                for c in range(hi, L):
                    vj[c] = 0
            # B^T over the rows, in place: (d0 - d2, d1 + d2, d2 - d1, d1 - d3).
            for c in range(L):
                a = e0[c]
                b = e1[c]
                cc = e2[c]
                d = e3[c]
                e0[c] = a - cc
                e1[c] = b + cc
                e2[c] = cc - b
                e3[c] = b - d
            # B over the columns of each tile: (c0 - c2, c1 + c2, c2 - c1, c1 - c3).
            for r in range(4):
                vj = rows + r * span
                base = (4 * r) * ldv + ci * NT + j
                for c in range(n):
                    V[base + c] = vj[2 * c] - vj[2 * c + 2]
                for c in range(n):
                    V[base + ldv + c] = vj[2 * c + 1] + vj[2 * c + 2]
                for c in range(n):
                    V[base + 2 * ldv + c] = vj[2 * c + 2] - vj[2 * c + 1]
                for c in range(n):
                    V[base + 3 * ldv + c] = vj[2 * c + 1] - vj[2 * c + 3]
            j += n


cdef bint transform_output(const floating* Mg, Py_ssize_t rows, floating* out_c,
                           Py_ssize_t plane, const Py_ssize_t* ph, Py_ssize_t n_ph,
                           Py_ssize_t t0, Py_ssize_t nt, const floating* bias_c,
                           floating* ybuf) noexcept nogil:
    """Y = A^T M A (+ bias) for ``rows`` channels of one m-block: M[p] of channel i,
    flat tile j at Mg[p * stride_p + (j // 32) * MR * 32 + i * 32 + j % 32]. Returns
    whether any output is non-finite."""
    cdef Py_ssize_t stride_p = (NT // NRW) * MR * NRW
    cdef Py_ssize_t i, j, q, c, jt, ty, tx0, n, oy, ox, cs
    cdef const Py_ssize_t* P
    cdef const floating* m
    cdef floating* y00 = ybuf
    cdef floating* y01 = ybuf + NT
    cdef floating* y10 = ybuf + 2 * NT
    cdef floating* y11 = ybuf + 3 * NT
    cdef floating s00, s01, s02, s03, s10, s11, s12, s13, bv
    cdef floating yl[4][NRW]  # y00, y01, y10, y11 of one 32-tile column block
    cdef floating fin[NRW]   # per lane: sum of (y - y) over the outputs, 0 if all finite
    cdef floating* orow
    cdef bint nonfinite = False
    for i in range(rows):
        bv = bias_c[i] if bias_c != NULL else 0
        for c in range(NRW):
            fin[c] = 0
        for jt in range((nt + NRW - 1) // NRW):
            m = Mg + jt * MR * NRW + i * NRW
            for c in range(NRW):
                # A^T over the rows: (m0 + m1 + m2, m1 - m2 - m3) per column q.
                s00 = m[c] + m[4 * stride_p + c] + m[8 * stride_p + c]
                s10 = m[4 * stride_p + c] - m[8 * stride_p + c] - m[12 * stride_p + c]
                s01 = m[stride_p + c] + m[5 * stride_p + c] + m[9 * stride_p + c]
                s11 = m[5 * stride_p + c] - m[9 * stride_p + c] - m[13 * stride_p + c]
                s02 = m[2 * stride_p + c] + m[6 * stride_p + c] + m[10 * stride_p + c]
                s12 = m[6 * stride_p + c] - m[10 * stride_p + c] - m[14 * stride_p + c]
                s03 = m[3 * stride_p + c] + m[7 * stride_p + c] + m[11 * stride_p + c]
                s13 = m[7 * stride_p + c] - m[11 * stride_p + c] - m[15 * stride_p + c]
                yl[0][c] = bv + (s00 + s01 + s02)
                yl[1][c] = bv + (s01 - s02 - s03)
                yl[2][c] = bv + (s10 + s11 + s12)
                yl[3][c] = bv + (s11 - s12 - s13)
                # x - x is 0 for finite x and NaN for Inf and NaN. Columns past nt
                # see only zero input columns: finite unless an output of the same
                # channel is not (the weights or the bias are then non-finite).
                fin[c] += ((yl[0][c] - yl[0][c]) + (yl[1][c] - yl[1][c])
                           + (yl[2][c] - yl[2][c]) + (yl[3][c] - yl[3][c]))
            # Through a local block: called from both modes, this function is not
            # inlined, and gcc, unable to tell ybuf from M apart, left the loop above
            # scalar (17% of a 64-channel layer's time).
            for c in range(NRW):
                y00[jt * NRW + c] = yl[0][c]
                y01[jt * NRW + c] = yl[1][c]
                y10[jt * NRW + c] = yl[2][c]
                y11[jt * NRW + c] = yl[3][c]
        for c in range(NRW):
            nonfinite |= fin[c] != fin[c]
        j = 0
        while j < nt:
            n = next_segment(ph, n_ph, t0 + j, nt - j, &P, &ty, &tx0)
            oy = 2 * ty
            ox = 2 * tx0
            cs = P[PO_CS]
            orow = out_c + i * plane + P[PO_OFF] + oy * P[PO_RS] + ox * cs
            # Whole tiles: the last tile of a row of odd width has one column.
            q = n if ox + 2 * n <= P[PO_W] else n - 1
            if cs == 1:
                for c in range(q):
                    orow[2 * c] = y00[j + c]
                    orow[2 * c + 1] = y01[j + c]
            else:                           # a dilated conv's output phase
                for c in range(q):
                    orow[2 * c * cs] = y00[j + c]
                    orow[(2 * c + 1) * cs] = y01[j + c]
            if q < n:
                orow[2 * q * cs] = y00[j + q]
            if oy + 1 < P[PO_H]:
                orow = orow + P[PO_RS]
                if cs == 1:
                    for c in range(q):
                        orow[2 * c] = y10[j + c]
                        orow[2 * c + 1] = y11[j + c]
                else:
                    for c in range(q):
                        orow[2 * c * cs] = y10[j + c]
                        orow[(2 * c + 1) * cs] = y11[j + c]
                if q < n:
                    orow[2 * q * cs] = y10[j + q]
            j += n
    return nonfinite


cdef bint run_item(const floating* x_img, const floating* U, const floating* bias,
                   floating* out_img, Py_ssize_t C_in, Py_ssize_t C_out, Py_ssize_t plane_in,
                   Py_ssize_t plane_out, const Py_ssize_t* ph, Py_ssize_t n_ph,
                   Py_ssize_t t0, Py_ssize_t nt, Py_ssize_t mb0, Py_ssize_t mb1,
                   floating* V, Py_ssize_t c0, Py_ssize_t c1, bint products,
                   floating* Mbuf, floating* rows) noexcept nogil:
    """One work item: its tiles' V for input channels [c0, c1) (none if c0 == c1: V
    transformed by all threads first), then, if ``products``, its m-blocks' products
    and output transforms. (One function for both phases of a chunked call: with a
    second call of transform_input gcc stopped inlining it, 7% slower.)"""
    cdef Py_ssize_t n_mb = (C_out + MR - 1) // MR
    cdef Py_ssize_t ldv = C_in * NT
    cdef Py_ssize_t stride_p = (NT // NRW) * MR * NRW
    cdef Py_ssize_t n_jt = (nt + NRW - 1) // NRW
    cdef Py_ssize_t g0, g1, p, mb, jt, m_rows
    cdef floating* c
    cdef bint nonfinite = False
    if c0 < c1:
        transform_input(x_img, C_in, plane_in, ph, n_ph, t0, nt, V, c0, c1, rows)
    if not products:
        return False
    g0 = mb0
    while g0 < mb1:
        g1 = g0 + MG if g0 + MG < mb1 else mb1
        for p in range(16):
            for mb in range(g0, g1):
                m_rows = C_out - mb * MR if C_out - mb * MR < MR else MR
                for jt in range(n_jt):
                    c = Mbuf + (mb - g0) * 16 * stride_p + p * stride_p + jt * MR * NRW
                    microkernel_packed(C_in, U + (p * n_mb + mb) * C_in * MR, m_rows,
                                       V + p * ldv + jt * NRW, NT, c, False)
        for mb in range(g0, g1):
            m_rows = C_out - mb * MR if C_out - mb * MR < MR else MR
            nonfinite |= transform_output(
                Mbuf + (mb - g0) * 16 * stride_p, m_rows, out_img + mb * MR * plane_out,
                plane_out, ph, n_ph, t0, nt, (bias + mb * MR) if bias != NULL else NULL,
                rows)
        g0 = g1
    return nonfinite


cdef Py_ssize_t run_all(const floating* x, const floating* U, const floating* bias,
                        floating* out, Py_ssize_t N, Py_ssize_t C_in, Py_ssize_t C_out,
                        Py_ssize_t plane_in, Py_ssize_t plane_out, const Py_ssize_t* ph,
                        Py_ssize_t n_ph, Py_ssize_t n_tiles, Py_ssize_t n_blocks,
                        Py_ssize_t mb_per_chunk, int n_threads) noexcept nogil:
    """Every item; returns 1 if an output is non-finite, -1 if scratch memory failed."""
    cdef Py_ssize_t n_mb = (C_out + MR - 1) // MR
    cdef Py_ssize_t n_chunks = (n_mb + mb_per_chunk - 1) // mb_per_chunk
    cdef Py_ssize_t n_items = N * n_blocks * n_chunks
    cdef Py_ssize_t item, n, blk, chunk, t0, nt, mb0, mb1
    cdef Py_ssize_t per_block = (n_tiles + n_blocks - 1) // n_blocks
    cdef floating* V
    cdef floating* Mbuf
    cdef floating* rows
    cdef floating* shared_v = NULL
    cdef Py_ssize_t ldv = C_in * NT, c0, c1, per_slice, stage
    cdef bint failed = False, any_nonfinite = False
    cdef bint* failed_out = &failed
    cdef bint* nonfinite_out = &any_nonfinite
    # Channel chunks (too few blocks for the threads): every chunk would transform its
    # block's whole input again, so all threads first transform the blocks' input
    # channels in slices into one shared V per block, then run the chunks on it
    # (ResNet's 14x14 256-channel layer at 2 threads: each transformed all 256).
    if n_chunks > 1:
        shared_v = <floating*> scratch_alloc(N * n_blocks * 16 * ldv * sizeof(floating))
        if shared_v == NULL:
            return -1
    per_slice = (C_in + n_chunks - 1) // n_chunks
    with parallel(num_threads=n_threads):
        V = <floating*> scratch_alloc((16 * C_in * NT if shared_v == NULL else 1)
                                      * sizeof(floating))
        Mbuf = <floating*> scratch_alloc(MG * 16 * NT * MR * sizeof(floating))
        rows = <floating*> scratch_alloc(4 * (2 * NT + 2) * sizeof(floating))
        # Pass 0 (chunked calls only): every item transforms a slice of its block's
        # input channels into the shared V. Pass 1: the items' products. One call of
        # run_item for both (with two, gcc stopped inlining the input transform: 7%
        # slower on a dilation-2 layer).
        for stage in range(0 if shared_v != NULL else 1, 2):
            for item in prange(n_items, schedule="static"):
                if V == NULL or Mbuf == NULL or rows == NULL:
                    failed_out[0] = True
                    continue
                chunk = item % n_chunks
                blk = (item // n_chunks) % n_blocks
                n = item // (n_chunks * n_blocks)
                t0 = blk * per_block
                nt = n_tiles - t0 if n_tiles - t0 < per_block else per_block
                if nt <= 0:
                    continue
                if stage == 0:                    # chunk = a slice of input channels
                    c0 = chunk * per_slice
                    c1 = c0 + per_slice if c0 + per_slice < C_in else C_in
                    mb0 = mb1 = 0
                else:
                    c0 = 0
                    c1 = C_in if shared_v == NULL else 0
                    mb0 = chunk * mb_per_chunk
                    mb1 = mb0 + mb_per_chunk if mb0 + mb_per_chunk < n_mb else n_mb
                if run_item(x + n * C_in * plane_in, U, bias, out + n * C_out * plane_out,
                            C_in, C_out, plane_in, plane_out, ph, n_ph, t0, nt, mb0, mb1,
                            V if shared_v == NULL
                            else shared_v + (n * n_blocks + blk) * 16 * ldv,
                            c0, c1, stage == 1, Mbuf, rows):
                    nonfinite_out[0] = True
        free(V)
        free(Mbuf)
        free(rows)
    free(shared_v)
    if failed:
        return -1
    return 1 if any_nonfinite else 0


cdef void wide_fill(const floating* x_img, Py_ssize_t plane, Py_ssize_t W, Py_ssize_t kc,
                    Py_ssize_t y0, Py_ssize_t y1, Py_ssize_t Wb, floating* buf) noexcept nogil:
    """Input rows [y0, y1) of kc channels (x_img at the first) into the zero-bordered,
    channels-last chunk buffer: buf[((y * Wb + x) * CK + ci] (buf at row and column 0 of
    the input). The source lines of the kc channels (one row segment each) stay in L1
    while each position's channels are written contiguously."""
    cdef Py_ssize_t y, xx, ci, x16 = 0, c16 = 0
    cdef const floating* src
    cdef floating* dst
    if floating is float:
        # 16 positions x 16 channels per register transpose (a scalar copy: 5% of
        # ASPP's layer); the rest of the row and of the channels below.
        x16 = W - W % 16
        c16 = kc - kc % 16
    for y in range(y0, y1):
        if floating is float:
            for xx in range(0, x16, 16):
                for ci in range(0, c16, 16):
                    cconv_transpose16_copy(x_img + ci * plane + y * W + xx, plane,
                                           buf + (y * Wb + xx) * CK + ci, CK)
        for xx in range(W):
            src = x_img + y * W + xx
            dst = buf + (y * Wb + xx) * CK
            for ci in range(c16 if xx < x16 else 0, kc):
                dst[ci] = src[ci * plane]


cdef void wide_transform(const floating* buf, const Py_ssize_t* org, Py_ssize_t t0,
                         Py_ssize_t t1, Py_ssize_t kc, Py_ssize_t rs, Py_ssize_t cs,
                         floating* V, Py_ssize_t ldp) noexcept nogil:
    """V of tiles [t0, t1) for the chunk's kc channels, WL channels per pass (the
    transforms' adds vectorised over channels, so a phase of a few tiles costs no more
    per tile than the tiles of a wide map): tile t's 4x4 patch at buf + org[t] * CK,
    rows rs apart, columns cs apart (the dilation); V[p * ldp + (t // 32) * CK * 32 +
    ci * 32 + t % 32] (each 32-tile column block a contiguous kc x 32 panel of the
    micro-kernel). The same B^T d B, in the same order, as transform_input."""
    cdef floating d[16][WL]
    cdef floating e[16][WL]
    cdef floating R[16][WL][WL]   # [p][tile of the group][channel]
    cdef Py_ssize_t g, t, tt, cv, r, c, l, p
    cdef const floating* bp
    cdef floating* vt
    # Groups of WL tiles (t0 a multiple of WL): each position's WL x WL block of the
    # group is transposed into V's rows (tiles contiguous), where lane-by-lane stores
    # of each vector were two thirds of this function's time.
    for g in range(t0, t1, 16):    # WL = 16
        for cv in range(0, kc, 16):
            for tt in range(WL):
                t = g + tt
                if t >= t1:
                    for p in range(16):
                        for l in range(WL):
                            R[p][tt][l] = 0
                    continue
                bp = buf + org[t] * CK + cv
                for r in range(4):
                    for c in range(4):
                        for l in range(WL):
                            d[4 * r + c][l] = bp[r * rs + c * cs + l]
                for c in range(4):
                    for l in range(WL):
                        e[c][l] = d[c][l] - d[8 + c][l]
                        e[4 + c][l] = d[4 + c][l] + d[8 + c][l]
                        e[8 + c][l] = d[8 + c][l] - d[4 + c][l]
                        e[12 + c][l] = d[4 + c][l] - d[12 + c][l]
                for r in range(4):
                    for l in range(WL):
                        R[4 * r][tt][l] = e[4 * r][l] - e[4 * r + 2][l]
                        R[4 * r + 1][tt][l] = e[4 * r + 1][l] + e[4 * r + 2][l]
                        R[4 * r + 2][tt][l] = e[4 * r + 2][l] - e[4 * r + 1][l]
                        R[4 * r + 3][tt][l] = e[4 * r + 1][l] - e[4 * r + 3][l]
            vt = V + (g // NRW) * CK * NRW + cv * NRW + g % NRW
            for p in range(16):
                if floating is float:
                    cconv_transpose16_copy(&R[p][0][0], WL, vt + p * ldp, NRW)
                else:
                    for l in range(WL):
                        for tt in range(WL):
                            vt[p * ldp + l * NRW + tt] = R[p][tt][l]


cdef Py_ssize_t run_all_wide(const floating* x, const floating* w, const floating* U,
                             const floating* bias,
                         floating* out, Py_ssize_t N, Py_ssize_t C_in, Py_ssize_t C_out,
                         Py_ssize_t H, Py_ssize_t W, Py_ssize_t plane_out,
                         const Py_ssize_t* ph, Py_ssize_t n_ph, Py_ssize_t n_tiles,
                         const Py_ssize_t* org, Py_ssize_t Hb, Py_ssize_t Wb,
                         Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw,
                         int n_threads) noexcept nogil:
    """Every tile of an image at once, input channels in chunks of CK (wide calls: many
    input channels). Returns 1 if an output is non-finite, -1 if scratch memory failed.

    Per chunk, all threads copy its channels into a zero-bordered channels-last buffer,
    transform every tile (V of the chunk: 16 x CK x all tiles), then run the products
    of every (position, chunk of m-blocks) item, adding into M, which holds every
    tile's products for the whole call. So U is read once per call and V once per
    chunk, where the blocked items of run_all each stream all of U and their whole V
    from memory (ASPP's 2048 channels at 33x33: 33 MB of U per block of 64 tiles).
    Each M tile sums its chunks in chunk order, whatever the thread count; then every
    (block of NT tiles, m-block) is transformed back."""
    cdef Py_ssize_t n_mb = (C_out + MR - 1) // MR
    cdef Py_ssize_t n_blocks = (n_tiles + NT - 1) // NT
    cdef Py_ssize_t n_jt = (n_tiles + NRW - 1) // NRW
    cdef Py_ssize_t stride_p = (NT // NRW) * MR * NRW
    cdef Py_ssize_t ldp = n_jt * CK * NRW
    cdef Py_ssize_t n_mchunks = n_threads if n_threads < n_mb else n_mb
    cdef Py_ssize_t per_mchunk = (n_mb + n_mchunks - 1) // n_mchunks
    cdef Py_ssize_t n_titems = (n_tiles + WIDE_TILES - 1) // WIDE_TILES
    cdef Py_ssize_t rs = dh * Wb * CK, cs = dw * CK, plane_in = H * W
    cdef Py_ssize_t n, c0, kc, item, blk, t0, t1, nt, p, mb, mb0, mb1, jt, m_rows, ci
    cdef floating* V = <floating*> scratch_alloc(16 * ldp * sizeof(floating))
    # Weights: U from pack_weights (a layer object's, transformed once) read in place,
    # or each chunk's transformed into Uc as it is reached.
    cdef floating* Uc = (<floating*> scratch_alloc(16 * n_mb * CK * MR * sizeof(floating))
                         if U == NULL else NULL)
    cdef Py_ssize_t ldu = CK if U == NULL else C_in   # channels per (position, m-block)
    cdef floating* buf = <floating*> scratch_alloc(Hb * Wb * CK * sizeof(floating))
    cdef floating* Macc = <floating*> scratch_alloc(n_blocks * n_mb * 16 * stride_p
                                                    * sizeof(floating))
    cdef floating* ybuf
    cdef floating* c
    cdef bint failed = V == NULL or (U == NULL and Uc == NULL) or buf == NULL or Macc == NULL
    cdef bint any_nonfinite = False
    cdef bint* failed_out = &failed
    cdef bint* nonfinite_out = &any_nonfinite
    if not failed:
        # The border of buf stays zero (only the input's positions are rewritten per
        # chunk); the columns past the last tile stay zero (the GEMM reads them).
        memset(buf, 0, Hb * Wb * CK * sizeof(floating))
        memset(V, 0, 16 * ldp * sizeof(floating))
    for n in range(N if not failed else 0):
        c0 = 0
        while c0 < C_in:
            kc = C_in - c0 if C_in - c0 < CK else CK
            for item in prange(n_mb if U == NULL else 0, nogil=True, num_threads=n_threads,
                               schedule="static"):
                transform_weight_block(w, C_out, C_in, Uc, item, c0, c0 + kc, CK)
            for item in prange(H, nogil=True, num_threads=n_threads, schedule="static"):
                wide_fill(x + (n * C_in + c0) * plane_in, plane_in, W, kc, item, item + 1,
                          Wb, buf + (pt * Wb + pl) * CK)
            for item in prange(n_titems, nogil=True, num_threads=n_threads,
                               schedule="static"):
                t0 = item * WIDE_TILES
                t1 = t0 + WIDE_TILES if t0 + WIDE_TILES < n_tiles else n_tiles
                wide_transform(buf, org, t0, t1, kc, rs, cs, V, ldp)
            for item in prange(16 * n_mchunks, nogil=True, num_threads=n_threads,
                               schedule="static"):
                p = item // n_mchunks
                mb0 = (item % n_mchunks) * per_mchunk
                mb1 = mb0 + per_mchunk if mb0 + per_mchunk < n_mb else n_mb
                for jt in range(n_jt):
                    for mb in range(mb0, mb1):
                        m_rows = C_out - mb * MR if C_out - mb * MR < MR else MR
                        c = (Macc + ((jt // 2) * n_mb + mb) * 16 * stride_p + p * stride_p
                             + (jt % 2) * MR * NRW)
                        # The next C tile (1 KiB, in memory: M is every tile's): read
                        # at the end of the call, its latency was not hidden.
                        for ci in range(MR * NRW * sizeof(floating) // 64):
                            cconv_prefetch_l2(c + 16 * stride_p + ci * (64 // sizeof(floating)))
                        microkernel_packed(kc, (Uc + (p * n_mb + mb) * CK * MR if U == NULL
                                                else U + ((p * n_mb + mb) * C_in + c0) * MR),
                                           m_rows, V + p * ldp + jt * CK * NRW, NRW, c,
                                           c0 > 0)
            c0 += kc
        with parallel(num_threads=n_threads):
            ybuf = <floating*> scratch_alloc(4 * NT * sizeof(floating))
            for item in prange(n_blocks * n_mb, schedule="static"):
                if ybuf == NULL:
                    failed_out[0] = True
                    continue
                blk = item // n_mb
                mb = item % n_mb
                t0 = blk * NT
                nt = n_tiles - t0 if n_tiles - t0 < NT else NT
                m_rows = C_out - mb * MR if C_out - mb * MR < MR else MR
                if transform_output(Macc + (blk * n_mb + mb) * 16 * stride_p, m_rows,
                                    out + (n * C_out + mb * MR) * plane_out, plane_out, ph,
                                    n_ph, t0, nt, (bias + mb * MR) if bias != NULL else NULL,
                                    ybuf):
                    nonfinite_out[0] = True
            free(ybuf)
    free(V)
    free(Uc)
    free(buf)
    free(Macc)
    if failed:
        return -1
    return 1 if any_nonfinite else 0


# The 3x3 weights of 8 output channels (rows of 72 values: 8 input channels x 9 taps,
# row_stride apart) as 72 vectors over the 8 channels, gT[j * 8 + i] = w[i][j]: nine
# 8 x 8 register transposes. Loading them value by value into the lanes (a scalar load
# and store each, then a vector load that cannot be forwarded from the stores) was most
# of the weight transform's time. With AVX (float32); plain loads where absent.
cdef extern from *:
    """
    #if defined(__AVX__)
    #include <immintrin.h>
    static inline void cconv_wino_weights8_f32(const float* w, Py_ssize_t row_stride,
                                               float* gT) {
        for (Py_ssize_t k = 0; k < 9; k++) {
            const float* src = w + 8 * k;
            __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + row_stride);
            __m256 r2 = _mm256_loadu_ps(src + 2 * row_stride);
            __m256 r3 = _mm256_loadu_ps(src + 3 * row_stride);
            __m256 r4 = _mm256_loadu_ps(src + 4 * row_stride);
            __m256 r5 = _mm256_loadu_ps(src + 5 * row_stride);
            __m256 r6 = _mm256_loadu_ps(src + 6 * row_stride);
            __m256 r7 = _mm256_loadu_ps(src + 7 * row_stride);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float* dst = gT + 64 * k;
            _mm256_storeu_ps(dst, _mm256_permute2f128_ps(s0, s4, 0x20));
            _mm256_storeu_ps(dst + 8, _mm256_permute2f128_ps(s1, s5, 0x20));
            _mm256_storeu_ps(dst + 16, _mm256_permute2f128_ps(s2, s6, 0x20));
            _mm256_storeu_ps(dst + 24, _mm256_permute2f128_ps(s3, s7, 0x20));
            _mm256_storeu_ps(dst + 32, _mm256_permute2f128_ps(s0, s4, 0x31));
            _mm256_storeu_ps(dst + 40, _mm256_permute2f128_ps(s1, s5, 0x31));
            _mm256_storeu_ps(dst + 48, _mm256_permute2f128_ps(s2, s6, 0x31));
            _mm256_storeu_ps(dst + 56, _mm256_permute2f128_ps(s3, s7, 0x31));
        }
    }
    #else
    static inline void cconv_wino_weights8_f32(const float* w, Py_ssize_t row_stride,
                                               float* gT) {
        for (Py_ssize_t i = 0; i < 8; i++)
            for (Py_ssize_t j = 0; j < 72; j++) gT[j * 8 + i] = w[i * row_stride + j];
    }
    #endif
    """
    void cconv_wino_weights8_f32(const float* w, Py_ssize_t row_stride, float* gT) noexcept nogil


cdef enum:
    WCI = 16  # input channels per weight-transform step (a 16 x WCI x MR local block)


cdef inline void g_rows(floating a, floating b, floating c, floating* u,
                        Py_ssize_t step) noexcept nogil:
    """G (a, b, c): a, (a + b + c) / 2, (a - b + c) / 2, c at u[0], u[step], ...."""
    cdef floating half = 0.5
    u[0] = a
    u[step] = half * (a + b + c)
    u[2 * step] = half * (a - b + c)
    u[3 * step] = c


cdef void transform_weight_block(const floating* w, Py_ssize_t C_out, Py_ssize_t C_in,
                                 floating* U, Py_ssize_t mb, Py_ssize_t c_begin,
                                 Py_ssize_t c_end, Py_ssize_t u_ch) noexcept nogil:
    """U[p][mb][ci - c_begin][i] = (G g G^T)[p] of g = w[mb * MR + i, ci] (3x3) for
    c_begin <= ci < c_end, zero past C_out; U holds u_ch channels per (p, m-block) (all
    C_in, or a wide call's chunk). WCI channels at a time into a local block, then
    copied out as 16 runs of WCI * MR values: storing each value straight into its p
    plane (16 planes a power of two apart) thrashed L1 (2.9 ms for 256 x 256)."""
    cdef Py_ssize_t n_mb = (C_out + MR - 1) // MR
    cdef Py_ssize_t ci0, nci, ci, i, p, r
    cdef Py_ssize_t rows = C_out - mb * MR if C_out - mb * MR < MR else MR
    cdef floating g[9][MR]     # the 3x3 weights of the block's MR channels, lanes = i
    cdef floating x0, x1, x2, y0, y1, y2, z0, z1, z2, v0, v1, v2
    cdef floating blk[16 * WCI * MR]
    cdef float gT[WCI * 9 * MR]  # float32: WCI channels' taps as vectors over the block
    cdef floating* u
    cdef Py_ssize_t ldp = n_mb * u_ch * MR
    cdef floating half = 0.5
    for r in range(9):
        for i in range(MR):
            g[r][i] = 0            # rows past C_out stay zero
    ci0 = c_begin
    while ci0 < c_end:
        nci = c_end - ci0 if c_end - ci0 < WCI else WCI
        if floating is float:
            if rows == MR:
                # 8 input channels at a time, transposed in registers into gT.
                for ci in range(0, nci - 7, 8):
                    cconv_wino_weights8_f32(w + (mb * MR * C_in + ci0 + ci) * 9, C_in * 9,
                                            gT + ci * 9 * MR)
        for ci in range(nci):
            if floating is float and rows == MR and ci < nci // 8 * 8:
                for r in range(9):
                    for i in range(MR):
                        g[r][i] = gT[(ci * 9 + r) * MR + i]
            else:
                for i in range(rows):
                    for r in range(9):
                        g[r][i] = w[((mb * MR + i) * C_in + ci0 + ci) * 9 + r]
            # The arithmetic over the MR lanes (one vector, all in registers): G g, rows
            # (g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2) per column, then the same
            # combination of the columns.
            u = blk + ci * MR   # value p of lane i at u[p * WCI * MR + i]
            for i in range(MR):
                x0 = g[0][i]
                x1 = g[1][i]
                x2 = g[2][i]
                y0 = half * (g[0][i] + g[3][i] + g[6][i])
                y1 = half * (g[1][i] + g[4][i] + g[7][i])
                y2 = half * (g[2][i] + g[5][i] + g[8][i])
                z0 = half * (g[0][i] - g[3][i] + g[6][i])
                z1 = half * (g[1][i] - g[4][i] + g[7][i])
                z2 = half * (g[2][i] - g[5][i] + g[8][i])
                v0 = g[6][i]
                v1 = g[7][i]
                v2 = g[8][i]
                g_rows(x0, x1, x2, u + i, WCI * MR)
                g_rows(y0, y1, y2, u + 4 * WCI * MR + i, WCI * MR)
                g_rows(z0, z1, z2, u + 8 * WCI * MR + i, WCI * MR)
                g_rows(v0, v1, v2, u + 12 * WCI * MR + i, WCI * MR)
        for p in range(16):
            for r in range(nci * MR):
                U[p * ldp + (mb * u_ch + ci0 - c_begin) * MR + r] = blk[p * WCI * MR + r]
        ci0 += WCI


# ---------------------------------------------------------------------------------
# Python-facing entry points (arguments arrive validated by cconv._params).

def pack_weights(const floating[:, :, :, ::1] w, int n_threads):
    """The transformed, packed weights U of a (C_out, C_in, 3, 3) C-contiguous array."""
    cdef Py_ssize_t C_out = w.shape[0], C_in = w.shape[1]
    cdef Py_ssize_t n_mb = (C_out + MR - 1) // MR
    dtype = np.float32 if floating is float else np.float64
    U = np.empty(16 * n_mb * C_in * MR, dtype=dtype)
    cdef floating[::1] Uv = U
    cdef const floating* wp = &w[0, 0, 0, 0]
    cdef floating* up = &Uv[0]
    cdef Py_ssize_t mb
    for mb in prange(n_mb, nogil=True, num_threads=n_threads, schedule="static"):
        transform_weight_block(wp, C_out, C_in, up, mb, 0, C_in, C_in)
    return U


def phase_table(H, W, H_out, W_out, padding, dilation):
    """``(table, tiles, plane, sources)``: the phase table of a conv (see the P_*
    columns), its tiles per image, the values per channel of the input as ``run`` reads
    it, and (dilated) the phases' places in the input. One phase per pair of row and
    column phases of the dilation (cconv.shapes.dilation_phases), each an undilated
    3x3 conv of one input phase into a strided view of the output, tiled in 2x2 output
    blocks. A dilated conv's input is first split into its phases, each a contiguous
    plane (``split_phases``, rows ``sources``: plane offset, rows, columns, first input
    value): read in place, every patch row was a strided gather, 36% of a dilation-2
    layer's time."""
    (pt, _), (pl, _) = padding
    dh, dw = dilation
    rows, sources = [], []
    tile0 = 0
    x_off = 0
    for ry, hq, sy, hs, pty in dilation_phases(H, H_out, pt, dh):
        for rx, wq, sx, ws, ptx in dilation_phases(W, W_out, pl, dw):
            tiles_x = (wq + 1) // 2
            if dilation == (1, 1):
                rows.append((0, W, H, W, pty, ptx, 0, W_out, 1, hq, wq, tiles_x, tile0))
            else:
                rows.append((x_off, ws, hs, ws, pty, ptx, ry * W_out + rx, dh * W_out, dw,
                             hq, wq, tiles_x, tile0))
                sources.append((x_off, hs, ws, sy * W + sx))
                x_off += hs * ws
            tile0 += ((hq + 1) // 2) * tiles_x
    table = np.array(rows, dtype=np.intp).reshape(-1, P_COLS)
    plane = H * W if dilation == (1, 1) else x_off
    return table, tile0, plane, np.array(sources, dtype=np.intp).reshape(-1, 4)


def split_phases(const floating[::1] x, Py_ssize_t planes, Py_ssize_t plane_in,
                 Py_ssize_t W, const Py_ssize_t[:, ::1] sources, Py_ssize_t plane,
                 Py_ssize_t dh, Py_ssize_t dw, int n_threads):
    """The input of a dilated conv as its phases: per image and channel (``planes`` of
    ``plane_in`` values, rows of W), the plane of every phase in ``sources`` (rows
    s_y, s_y + d_h, ..., columns likewise), one after the other (``plane`` values)."""
    dtype = np.float32 if floating is float else np.float64
    out = np.empty(max(1, planes * plane), dtype=dtype)
    cdef floating[::1] o = out
    cdef Py_ssize_t n_src = sources.shape[0], q, k, i, j, hs, ws
    cdef const floating* src
    cdef floating* dst
    for q in prange(planes, nogil=True, num_threads=n_threads, schedule="static"):
        for k in range(n_src):
            hs = sources[k, 1]
            ws = sources[k, 2]
            for i in range(hs):
                src = &x[0] + q * plane_in + sources[k, 3] + i * dh * W
                dst = &o[0] + q * plane + sources[k, 0] + i * ws
                for j in range(ws):
                    dst[j] = src[j * dw]
    return out


def work_split(Py_ssize_t N, Py_ssize_t C_out, Py_ssize_t n_tiles, int n_threads):
    """(tile blocks per image, m-blocks per chunk). Blocks of at most NT tiles, evened
    out, and where the threads do not divide the (image, block) count, a block or two
    more (smaller blocks, the same GEMM columns per block where the last one had a
    partial tile; 13 blocks of 784 tiles at 2 threads ran 7 against 6). Channels are
    split only until every thread has an item (each chunk streams its own share of U,
    over a V that all threads transform first: run_all); 8 chunks of a 14x14
    256-channel layer at 2 threads were slower than one thread. Neither changes any
    result: each output's sums are the same."""
    cdef Py_ssize_t n_blocks = max(1, (n_tiles + NT - 1) // NT)
    cdef Py_ssize_t n_mb = (C_out + MR - 1) // MR
    cdef Py_ssize_t per_chunk = n_mb, half, extra
    if n_threads > 1 and N * n_blocks >= n_threads and (N * n_blocks) % n_threads:
        for extra in range(1, n_threads):
            if (N * (n_blocks + extra)) % n_threads == 0 and n_blocks + extra <= n_tiles:
                n_blocks += extra
                break
    while N * n_blocks * ((n_mb + per_chunk - 1) // per_chunk) < n_threads and per_chunk > 1:
        per_chunk = (per_chunk + 1) // 2
    # A static schedule: an item count the threads divide keeps them evenly loaded.
    if n_threads > 1 and per_chunk > 1 and (N * n_blocks * ((n_mb + per_chunk - 1) // per_chunk)) % n_threads:
        half = (per_chunk + 1) // 2
        if (N * n_blocks * ((n_mb + half - 1) // half)) % n_threads == 0:
            per_chunk = half
    return n_blocks, per_chunk


def run(x, U, bias, out, padding, dilation, int n_threads):
    """Run the conv: x (N, C_in, H, W), U from pack_weights, out (N, C_out, H_out,
    W_out), all C-contiguous of one dtype. Returns False if any output is non-finite
    (the caller recomputes the layer directly), True otherwise."""
    N, C_in, H, W = x.shape
    _, C_out, H_out, W_out = out.shape
    ph, n_tiles, plane_in, sources = phase_table(H, W, H_out, W_out, padding, dilation)
    n_blocks, per_chunk = work_split(N, C_out, n_tiles, n_threads)
    x = x.reshape(-1)
    if dilation != (1, 1):
        x = split_phases(x, N * C_in, H * W, W, sources, plane_in, dilation[0],
                         dilation[1], n_threads)
    n_items = N * n_blocks * (((C_out + MR - 1) // MR + per_chunk - 1) // per_chunk)
    macs = 64.0 * N * C_out * C_in * n_tiles
    threads = effective_threads(n_threads, n_items, macs)
    status = _run(x, U, bias, out.reshape(-1), N, C_in, C_out, plane_in, H_out * W_out,
                  ph.reshape(-1), len(ph), n_tiles, n_blocks, per_chunk, threads)
    if status < 0:
        raise MemoryError("cconv: could not allocate the Winograd kernel's scratch memory")
    return status == 0


def run_wide(x, w, bias, out, padding, dilation, int n_threads, U=None):
    """The same conv in wide form (run_all_wide): every tile of an image at once, the
    input channels in chunks whose weights are transformed as they are reached (the
    whole U of 2048 -> 256 channels is 34 MB, more than it costs to transform per
    call), or read from U (pack_weights; a layer object's, kept). w is the (C_out,
    C_in, 3, 3) weight array; otherwise as ``run``."""
    N, C_in, H, W = x.shape
    _, C_out, H_out, W_out = out.shape
    ph, n_tiles, _, _ = phase_table(H, W, H_out, W_out, padding, dilation)
    org, Hb, Wb = wide_origins(ph, W_out, dilation)
    macs = 64.0 * N * C_out * C_in * n_tiles
    status = _run_wide(x.reshape(-1), w.reshape(-1), U, bias, out.reshape(-1), N, C_in, C_out,
                       H, W, H_out * W_out, ph.reshape(-1), len(ph), n_tiles, org,
                       max(Hb, H + padding[0][0]), max(Wb, W + padding[1][0]),
                       padding[0][0], padding[1][0], dilation[0], dilation[1],
                       effective_threads(n_threads, 16 * n_threads, macs))
    if status < 0:
        raise MemoryError("cconv: could not allocate the Winograd kernel's scratch memory")
    return status == 0


def wide_origins(ph, Py_ssize_t W_out, dilation):
    """``(org, Hb, Wb)`` of a wide call: each flat tile's first output (its patch's
    first value in the zero-bordered buffer, whose row and column 0 are the padded
    input's) as ``oy * Wb + ox``, and the buffer's rows and columns (through the last
    patch value of every tile)."""
    dh, dw = dilation
    oy_all, ox_all = [], []
    for row in ph:
        oy0, ox0 = divmod(int(row[PO_OFF]), W_out)
        ty = np.arange((row[PO_H] + 1) // 2, dtype=np.intp)
        tx = np.arange(row[P_TILES_X], dtype=np.intp)
        oy_all.append(np.repeat(oy0 + 2 * dh * ty, len(tx)))
        ox_all.append(np.tile(ox0 + 2 * dw * tx, len(ty)))
    oy = np.concatenate(oy_all) if oy_all else np.zeros(0, dtype=np.intp)
    ox = np.concatenate(ox_all) if ox_all else np.zeros(0, dtype=np.intp)
    Hb = int(oy.max()) + 3 * dh + 1 if len(oy) else 1
    Wb = int(ox.max()) + 3 * dw + 1 if len(ox) else 1
    return np.ascontiguousarray(oy * Wb + ox, dtype=np.intp), Hb, Wb


def _run(const floating[::1] x, const floating[::1] U, bias, floating[::1] out,
         Py_ssize_t N, Py_ssize_t C_in, Py_ssize_t C_out, Py_ssize_t plane_in,
         Py_ssize_t plane_out, const Py_ssize_t[::1] ph, Py_ssize_t n_ph,
         Py_ssize_t n_tiles, Py_ssize_t n_blocks, Py_ssize_t per_chunk, int n_threads):
    cdef const floating[::1] b
    cdef const floating* bp = NULL
    cdef Py_ssize_t status
    if bias is not None:
        b = bias
        bp = &b[0]
    with nogil:
        status = run_all(&x[0], &U[0], bp, &out[0], N, C_in, C_out, plane_in, plane_out,
                         &ph[0], n_ph, n_tiles, n_blocks, per_chunk, n_threads)
    return status


def _run_wide(const floating[::1] x, const floating[::1] w, U, bias, floating[::1] out,
              Py_ssize_t N, Py_ssize_t C_in, Py_ssize_t C_out, Py_ssize_t H, Py_ssize_t W,
              Py_ssize_t plane_out, const Py_ssize_t[::1] ph, Py_ssize_t n_ph,
              Py_ssize_t n_tiles, const Py_ssize_t[::1] org, Py_ssize_t Hb, Py_ssize_t Wb,
              Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw, int n_threads):
    cdef const floating[::1] b
    cdef const floating* bp = NULL
    cdef const floating[::1] u
    cdef const floating* up = NULL
    cdef Py_ssize_t status
    if bias is not None:
        b = bias
        bp = &b[0]
    if U is not None:
        u = U
        up = &u[0]
    with nogil:
        status = run_all_wide(&x[0], &w[0], up, bp, &out[0], N, C_in, C_out, H, W, plane_out,
                          &ph[0], n_ph, n_tiles, &org[0], Hb, Wb, pt, pl, dh, dw,
                          n_threads)
    return status
