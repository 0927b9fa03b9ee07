# cython: language_level=3
"""Implicit-GEMM engine: standard, grouped, strided, dilated, pointwise and transposed conv.

Design note
-----------
Every one of these convolutions is, per image and group, a matrix product
``out[m, p] = sum_k A[m, k] * B[k, p]`` where ``m`` is an output channel, ``p`` an
output position and ``k`` a (kernel tap, input channel) pair. ``B`` is never built
whole (no im2col buffer): positions are processed in tiles of ``NR`` (32 float32 /
16 float64 = two zmm registers) and ``B`` is packed one ``KC x NR`` panel at a time,
straight from the unpadded input.

* Layout: NCHW input and output; ``A`` is packed once per call as
  ``[group][m-block of MR=8][k][MR]`` with ``k = tap * C_in_per_group + c``
  (tap-major, so every tap is a contiguous run of k).
* Micro-kernel: an ``MR x NR`` accumulator tile held in 16 zmm registers, ``A`` read
  k-major, the packed ``B`` row read in place, innermost loop over the NR columns.
* Positions live on a grid ``(Hg, Wg)``; tap ``t`` of grid point ``(i, j)`` reads input
  ``(i * sy + dy[t], j * sx + dx[t])`` and the result goes to output offset
  ``dst0 + i * drs + j * dcs``. A standard conv is one grid (the output) with
  ``dy = kh * dilation - pad``. A transposed conv is split into ``stride_h * stride_w``
  phases (sub-pixel decomposition): output pixels of one phase see a fixed subset of
  taps at unit stride, so the transposed conv is a *gather* per output pixel, with no
  zero-inserted input and no racing scatter.
* Padding strategy: none materialised. For each (tile, tap) the packer computes the
  row segments that fall inside the input and writes zeros elsewhere; a K-block whose
  taps all lie wholly in the padding for the whole tile is skipped (large dilations).
* Parallel axis: one flat list of work items ``(image, group, m-chunk, tile)``,
  distributed statically, fine-grained; each item writes a disjoint set of outputs.
  The summation order of every output element is fixed by the k order alone, so the
  bits do not depend on the thread count.
"""

import numpy as np
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange, parallel

from cconv._common cimport scratch_alloc, free, floor_div, ceil_div, effective_threads

cnp.import_array()

cdef enum:
    MR = 8          # output channels per micro-tile
    NR_F32 = 32     # positions per micro-tile, float32 (2 x 16 lanes)
    NR_F64 = 16     # positions per micro-tile, float64 (2 x 8 lanes)
    KC = 128        # k rows per packed B panel (16 KiB: stays in L1 beside A)
    MAX_CHUNK_ROWS = 256  # output channels per work item at most (C tile <= 32 KiB)


# ---------------------------------------------------------------------------------
# Micro-kernels. Written so that gcc fully unrolls the MR loop and vectorises the NR
# loop: 8 broadcasts of A and 16 FMAs per k, accumulators never leave registers.

cdef inline void microkernel_8x32_f32(Py_ssize_t kc, const float* a, const float* b,
                                      float* c) noexcept nogil:
    cdef float acc[8][32]
    cdef Py_ssize_t i, j, k
    cdef float ai
    for i in range(8):
        for j in range(32):
            acc[i][j] = c[i * 32 + j]
    for k in range(kc):
        for i in range(8):
            ai = a[k * 8 + i]
            for j in range(32):
                acc[i][j] += ai * b[k * 32 + j]
    for i in range(8):
        for j in range(32):
            c[i * 32 + j] = acc[i][j]


cdef inline void microkernel_8x16_f64(Py_ssize_t kc, const double* a, const double* b,
                                      double* c) noexcept nogil:
    cdef double acc[8][16]
    cdef Py_ssize_t i, j, k
    cdef double ai
    for i in range(8):
        for j in range(16):
            acc[i][j] = c[i * 16 + j]
    for k in range(kc):
        for i in range(8):
            ai = a[k * 8 + i]
            for j in range(16):
                acc[i][j] += ai * b[k * 16 + j]
    for i in range(8):
        for j in range(16):
            c[i * 16 + j] = acc[i][j]


# ---------------------------------------------------------------------------------
# Problem description shared by all work items of one call (read-only in the kernel).

cdef struct Problem:
    Py_ssize_t C_in_img      # input channels per image (all groups)
    Py_ssize_t H, W          # input plane
    Py_ssize_t Cg            # input channels per group
    Py_ssize_t M             # output channels per group
    Py_ssize_t C_out_img     # output channels per image
    Py_ssize_t out_plane     # H_out * W_out
    Py_ssize_t n_mblocks     # ceil(M / MR)
    Py_ssize_t K             # total packed k per group (all phases' taps x Cg)
    Py_ssize_t sy, sx        # grid-to-input strides
    const Py_ssize_t* tap_dy
    const Py_ssize_t* tap_dx
    const Py_ssize_t* ph_hg
    const Py_ssize_t* ph_wg
    const Py_ssize_t* ph_dst0
    const Py_ssize_t* ph_drs
    const Py_ssize_t* ph_dcs
    const Py_ssize_t* ph_tap0
    const Py_ssize_t* ph_tap1


cdef inline Py_ssize_t build_segments(const Problem* P, Py_ssize_t wg, Py_ssize_t p0,
                                      Py_ssize_t npos, Py_ssize_t nr, Py_ssize_t dy,
                                      Py_ssize_t dx, Py_ssize_t* seg,
                                      int* any_valid) noexcept nogil:
    """Split tile columns [0, nr) into (dst, length, src) runs; src < 0 marks zeros."""
    cdef Py_ssize_t nseg = 0, j = 0, gi, gj, run, iy, lo, hi
    cdef Py_ssize_t gj_min = ceil_div(-dx, P.sx)
    cdef Py_ssize_t gj_end = floor_div(P.W - 1 - dx, P.sx) + 1
    any_valid[0] = 0
    while j < npos:
        gi = (p0 + j) // wg
        gj = (p0 + j) - gi * wg
        run = npos - j
        if run > wg - gj:
            run = wg - gj
        iy = gi * P.sy + dy
        lo = gj if gj > gj_min else gj_min
        hi = gj + run if gj + run < gj_end else gj_end
        if iy < 0 or iy >= P.H or hi <= lo:
            seg[3 * nseg] = j; seg[3 * nseg + 1] = run; seg[3 * nseg + 2] = -1
            nseg += 1
        else:
            if lo > gj:
                seg[3 * nseg] = j; seg[3 * nseg + 1] = lo - gj; seg[3 * nseg + 2] = -1
                nseg += 1
            seg[3 * nseg] = j + lo - gj
            seg[3 * nseg + 1] = hi - lo
            seg[3 * nseg + 2] = iy * P.W + lo * P.sx + dx
            nseg += 1
            any_valid[0] = 1
            if hi < gj + run:
                seg[3 * nseg] = j + hi - gj; seg[3 * nseg + 1] = gj + run - hi
                seg[3 * nseg + 2] = -1
                nseg += 1
        j += run
    if npos < nr:
        seg[3 * nseg] = npos; seg[3 * nseg + 1] = nr - npos; seg[3 * nseg + 2] = -1
        nseg += 1
    return nseg


cdef inline void pack_rows(const floating* x_chan, Py_ssize_t plane, Py_ssize_t rows,
                           Py_ssize_t sx, const Py_ssize_t* seg, Py_ssize_t nseg,
                           floating* bp, Py_ssize_t nr) noexcept nogil:
    """Copy `rows` consecutive input channels through the segment map into B rows."""
    cdef Py_ssize_t r, s, q, d, length, src
    cdef const floating* xc
    cdef floating* row
    for r in range(rows):
        xc = x_chan + r * plane
        row = bp + r * nr
        for s in range(nseg):
            d = seg[3 * s]
            length = seg[3 * s + 1]
            src = seg[3 * s + 2]
            if src < 0:
                for q in range(length):
                    row[d + q] = 0
            elif sx == 1:
                for q in range(length):
                    row[d + q] = xc[src + q]
            else:
                for q in range(length):
                    row[d + q] = xc[src + q * sx]


cdef void run_tile(const Problem* P, const floating* x_img, floating* out_img,
                   const floating* a_group, const floating* bias_group, Py_ssize_t g,
                   Py_ssize_t phase, Py_ssize_t p0, Py_ssize_t mb0, Py_ssize_t mb1,
                   floating* bpanel, floating* cbuf, Py_ssize_t* seg) noexcept nogil:
    cdef Py_ssize_t nr
    if floating is float:
        nr = NR_F32
    else:
        nr = NR_F64
    cdef Py_ssize_t hg = P.ph_hg[phase], wg = P.ph_wg[phase]
    cdef Py_ssize_t npos = hg * wg - p0
    if npos > nr:
        npos = nr
    cdef Py_ssize_t plane = P.H * P.W
    cdef Py_ssize_t rows = (mb1 - mb0) * MR
    cdef Py_ssize_t r, j, m, k, k_end, kb_end, t, ci, cnt, nseg, mb, kc
    cdef floating v
    cdef int valid, any_valid
    cdef const floating* x_group = x_img + g * P.Cg * plane

    # The C tile starts at the bias, so no separate pass adds it.
    for r in range(rows):
        m = mb0 * MR + r
        v = 0
        if bias_group != NULL and m < P.M:
            v = bias_group[m]
        for j in range(nr):
            cbuf[r * nr + j] = v

    k = P.ph_tap0[phase] * P.Cg
    k_end = P.ph_tap1[phase] * P.Cg
    while k < k_end:
        kb_end = k + KC
        if kb_end > k_end:
            kb_end = k_end
        kc = kb_end - k
        any_valid = 0
        j = k
        while j < kb_end:
            t = j // P.Cg
            ci = j - t * P.Cg
            cnt = P.Cg - ci
            if cnt > kb_end - j:
                cnt = kb_end - j
            nseg = build_segments(P, wg, p0, npos, nr, P.tap_dy[t], P.tap_dx[t], seg, &valid)
            if valid:
                any_valid = 1
            # An all-padding tap still needs zero rows when it shares the panel.
            pack_rows(x_group + ci * plane, plane, cnt, P.sx, seg, nseg,
                      bpanel + (j - k) * nr, nr)
            j += cnt
        if any_valid:
            for mb in range(mb0, mb1):
                if floating is float:
                    microkernel_8x32_f32(kc, a_group + (mb * P.K + k) * MR, bpanel,
                                         cbuf + (mb - mb0) * MR * nr)
                else:
                    microkernel_8x16_f64(kc, a_group + (mb * P.K + k) * MR, bpanel,
                                         cbuf + (mb - mb0) * MR * nr)
        k = kb_end

    # Scatter the tile to its output positions.
    cdef Py_ssize_t dst0 = P.ph_dst0[phase], drs = P.ph_drs[phase], dcs = P.ph_dcs[phase]
    cdef floating* orow
    cdef Py_ssize_t gi, gj, base
    cdef bint contiguous = (dcs == 1 and drs == wg)
    for r in range(rows):
        m = mb0 * MR + r
        if m >= P.M:
            break
        orow = out_img + (g * P.M + m) * P.out_plane
        if contiguous:
            base = dst0 + p0
            for j in range(npos):
                orow[base + j] = cbuf[r * nr + j]
        else:
            for j in range(npos):
                gi = (p0 + j) // wg
                gj = (p0 + j) - gi * wg
                orow[dst0 + gi * drs + gj * dcs] = cbuf[r * nr + j]


cdef int run_problem(const Problem* P, const floating* x, floating* out,
                     const floating* apack, const floating* bias, Py_ssize_t N,
                     Py_ssize_t G, Py_ssize_t mb_per_chunk, const Py_ssize_t* work,
                     Py_ssize_t n_rows, int n_threads) noexcept nogil:
    """Run every work item; returns 0, or -1 when a thread could not get scratch memory."""
    cdef Py_ssize_t nr
    if floating is float:
        nr = NR_F32
    else:
        nr = NR_F64
    cdef Py_ssize_t n_chunks = (P.n_mblocks + mb_per_chunk - 1) // mb_per_chunk
    cdef Py_ssize_t n_items = N * G * n_chunks * n_rows
    cdef Py_ssize_t item, row, rest, chunk, g, n, mb0, mb1
    cdef floating* bpanel
    cdef floating* cbuf
    cdef Py_ssize_t* seg
    cdef int failed = 0
    cdef int* failed_flag = &failed
    if n_items == 0:
        return 0
    with parallel(num_threads=n_threads):
        bpanel = <floating*> scratch_alloc(KC * nr * sizeof(floating))
        cbuf = <floating*> scratch_alloc(mb_per_chunk * MR * nr * sizeof(floating))
        seg = <Py_ssize_t*> scratch_alloc(3 * (3 * nr + 4) * sizeof(Py_ssize_t))
        for item in prange(n_items, schedule="static"):
            if bpanel == NULL or cbuf == NULL or seg == NULL:
                failed_flag[0] = 1
                continue
            row = item % n_rows
            rest = item // n_rows
            chunk = rest % n_chunks
            rest = rest // n_chunks
            g = rest % G
            n = rest // G
            mb0 = chunk * mb_per_chunk
            mb1 = mb0 + mb_per_chunk
            if mb1 > P.n_mblocks:
                mb1 = P.n_mblocks
            run_tile(P, x + n * P.C_in_img * P.H * P.W, out + n * P.C_out_img * P.out_plane,
                     apack + g * P.n_mblocks * P.K * MR,
                     (bias + g * P.M) if bias != NULL else NULL,
                     g, work[2 * row], work[2 * row + 1], mb0, mb1, bpanel, cbuf, seg)
        free(bpanel)
        free(cbuf)
        free(seg)
    return -1 if failed else 0


# ---------------------------------------------------------------------------------
# Python-facing entry points. Arguments arrive validated and normalised (cconv._params);
# these only build the plan (taps, phases, work list, packed weights) and run it.

def positions_per_tile(dtype):
    """NR for a dtype: the tile width of output positions."""
    return NR_F32 if np.dtype(dtype) == np.float32 else NR_F64


def pack_weights(const floating[:, :, :, ::1] w, Py_ssize_t G, Py_ssize_t M, Py_ssize_t Cg,
                 const Py_ssize_t[::1] tap_kh, const Py_ssize_t[::1] tap_kw, bint transposed):
    """Pack weights as A[group][m-block][tap * Cg + c][MR], zero rows past M.

    conv weight is (G*M, Cg, kh, kw); transposed weight is (G*Cg, M, kh, kw).
    """
    cdef Py_ssize_t T = tap_kh.shape[0]
    cdef Py_ssize_t nmb = (M + MR - 1) // MR
    cdef Py_ssize_t K = T * Cg
    dtype = np.float32 if floating is float else np.float64
    apack_arr = np.zeros(G * nmb * K * MR, dtype=dtype)
    cdef floating[::1] apack = apack_arr
    cdef Py_ssize_t g, mb, t, c, i, m, base
    with nogil:
        for g in range(G):
            for mb in range(nmb):
                base = (g * nmb + mb) * K * MR
                for t in range(T):
                    for c in range(Cg):
                        for i in range(MR):
                            m = mb * MR + i
                            if m >= M:
                                break
                            if transposed:
                                apack[base + (t * Cg + c) * MR + i] = \
                                    w[g * Cg + c, m, tap_kh[t], tap_kw[t]]
                            else:
                                apack[base + (t * Cg + c) * MR + i] = \
                                    w[g * M + m, c, tap_kh[t], tap_kw[t]]
    return apack_arr


def _work_table(hg, wg, nr):
    """(phase, first position) of every tile of every phase."""
    rows = []
    for phase, (h, w) in enumerate(zip(hg, wg)):
        n_pos = int(h) * int(w)
        starts = np.arange(0, n_pos, nr, dtype=np.intp)
        rows.append(np.stack([np.full_like(starts, phase), starts], axis=1))
    if not rows:
        return np.zeros((0, 2), dtype=np.intp)
    return np.ascontiguousarray(np.concatenate(rows, axis=0), dtype=np.intp)


def _m_blocks_per_chunk(n_mblocks, n_rows_total, n_threads):
    """m-blocks per work item: as many as fit, split further only to feed every thread."""
    per_chunk = max(1, min(n_mblocks, MAX_CHUNK_ROWS // MR))
    while per_chunk > 1 and n_rows_total * (-(-n_mblocks // per_chunk)) < 4 * n_threads:
        per_chunk = (per_chunk + 1) // 2
    return per_chunk


def _run(const floating[::1] x, floating[::1] out, const floating[::1] apack, bias,
         Py_ssize_t N, Py_ssize_t C_in, Py_ssize_t H, Py_ssize_t W, Py_ssize_t G,
         Py_ssize_t M, Py_ssize_t out_plane, Py_ssize_t sy, Py_ssize_t sx,
         Py_ssize_t[::1] tap_dy, Py_ssize_t[::1] tap_dx, Py_ssize_t[:, ::1] phases,
         int n_threads):
    cdef Problem P
    cdef Py_ssize_t nr = NR_F32 if floating is float else NR_F64
    P.C_in_img = C_in
    P.H = H
    P.W = W
    P.Cg = C_in // G
    P.M = M
    P.C_out_img = G * M
    P.out_plane = out_plane
    P.n_mblocks = (M + MR - 1) // MR
    P.K = tap_dy.shape[0] * P.Cg
    P.sy = sy
    P.sx = sx
    P.tap_dy = &tap_dy[0] if tap_dy.shape[0] else NULL
    P.tap_dx = &tap_dx[0] if tap_dx.shape[0] else NULL
    # phases columns: hg, wg, dst0, drs, dcs, tap0, tap1
    cols = np.ascontiguousarray(np.asarray(phases).T)
    cdef Py_ssize_t[:, ::1] pc = cols
    P.ph_hg = &pc[0, 0]
    P.ph_wg = &pc[1, 0]
    P.ph_dst0 = &pc[2, 0]
    P.ph_drs = &pc[3, 0]
    P.ph_dcs = &pc[4, 0]
    P.ph_tap0 = &pc[5, 0]
    P.ph_tap1 = &pc[6, 0]
    work_arr = _work_table(pc[0], pc[1], nr)
    cdef Py_ssize_t[:, ::1] work = work_arr
    cdef Py_ssize_t n_rows = work.shape[0]
    cdef Py_ssize_t per_chunk = _m_blocks_per_chunk(P.n_mblocks, N * G * n_rows, n_threads)
    cdef const floating[::1] bias_view
    cdef const floating* bias_ptr = NULL
    if bias is not None:
        bias_view = bias
        bias_ptr = &bias_view[0]
    cdef const floating* x_ptr = &x[0] if x.shape[0] else NULL
    cdef int status = 0
    if n_rows == 0 or N == 0:
        return
    n_threads = effective_threads(n_threads, N * G * n_rows, <double> N * G * M * out_plane
                                  * (P.K if P.K > 0 else 1))
    with nogil:
        status = run_problem(&P, x_ptr, &out[0], &apack[0], bias_ptr, N, G, per_chunk,
                             &work[0, 0], n_rows, n_threads)
    if status != 0:
        raise MemoryError("cconv: could not allocate per-thread scratch memory")


def conv2d_forward(x, w, bias, out, stride, padding, dilation, int groups, int n_threads):
    """Standard/grouped/strided/dilated/pointwise conv. x (N,C,H,W) and out C-contiguous.

    padding is ((top, bottom), (left, right)); the bottom/right amounts only shape the
    output, which the caller allocated.
    """
    N, C_in, H, W = x.shape
    C_out, Cg, KH, KW = w.shape
    _, _, H_out, W_out = out.shape
    M = C_out // groups
    kh, kw = np.meshgrid(np.arange(KH, dtype=np.intp), np.arange(KW, dtype=np.intp),
                         indexing="ij")
    tap_kh = np.ascontiguousarray(kh.ravel())
    tap_kw = np.ascontiguousarray(kw.ravel())
    tap_dy = np.ascontiguousarray(tap_kh * dilation[0] - padding[0][0])
    tap_dx = np.ascontiguousarray(tap_kw * dilation[1] - padding[1][0])
    phases = np.array([[H_out, W_out, 0, W_out, 1, 0, KH * KW]], dtype=np.intp)
    apack = pack_weights(w, groups, M, Cg, tap_kh, tap_kw, False)
    _run(x.reshape(-1), out.reshape(-1), apack, bias, N, C_in, H, W, groups, M,
         H_out * W_out, stride[0], stride[1], tap_dy, tap_dx, phases, n_threads)
    return out


def _transpose_phases(size_in, size_out, K, stride, pad_before, dilation):
    """Per output residue r: (grid length, [(k, input offset)]) along one axis.

    Output o = r + stride * i receives x[i + (r + pad - k * dilation) / stride] * w[k]
    for every tap k whose numerator is divisible by stride.
    """
    result = []
    for r in range(stride):
        length = max(0, -(-(size_out - r) // stride))
        taps = [(k, (r + pad_before - k * dilation) // stride) for k in range(K)
                if (r + pad_before - k * dilation) % stride == 0]
        result.append((length, taps))
    return result


def conv_transpose2d_forward(x, w, bias, out, stride, padding, dilation, int groups,
                             int n_threads):
    """Transposed conv as a gather over output phases. w is (C_in, C_out/groups, kh, kw)."""
    N, C_in, H, W = x.shape
    _, M, KH, KW = w.shape
    _, C_out, H_out, W_out = out.shape
    Cg = C_in // groups
    rows_y = _transpose_phases(H, H_out, KH, stride[0], padding[0][0], dilation[0])
    rows_x = _transpose_phases(W, W_out, KW, stride[1], padding[1][0], dilation[1])
    tap_kh, tap_kw, tap_dy, tap_dx, phases = [], [], [], [], []
    for ry, (hg, taps_y) in enumerate(rows_y):
        for rx, (wg, taps_x) in enumerate(rows_x):
            if hg == 0 or wg == 0:
                continue
            tap0 = len(tap_kh)
            for ky, oy in taps_y:
                for kx, ox in taps_x:
                    tap_kh.append(ky)
                    tap_kw.append(kx)
                    tap_dy.append(oy)
                    tap_dx.append(ox)
            phases.append([hg, wg, ry * W_out + rx, stride[0] * W_out, stride[1],
                           tap0, len(tap_kh)])
    as_index = lambda v: np.ascontiguousarray(np.asarray(v, dtype=np.intp))
    tap_kh, tap_kw, tap_dy, tap_dx = map(as_index, (tap_kh, tap_kw, tap_dy, tap_dx))
    phases = as_index(phases).reshape(-1, 7)
    apack = pack_weights(w, groups, M, Cg, tap_kh, tap_kw, True)
    if apack.size == 0:
        # No tap reaches any output (every phase empty): the output is the bias alone.
        apack = np.zeros(1, dtype=x.dtype)
    _run(x.reshape(-1), out.reshape(-1), apack, bias, N, C_in, H, W, groups, M,
         H_out * W_out, 1, 1, tap_dy, tap_dx, phases, n_threads)
    return out
