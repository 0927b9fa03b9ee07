# cython: language_level=3
"""Fused depthwise-separable convolution: depthwise rows feed the pointwise GEMM in cache.

Design note
-----------
* Layout: NCHW input/output; depthwise weight (C*m, 1, kh, kw); pointwise weight
  (C_out, C*m), read in place as the GEMM's A.
* Parallel axis: work items (image, band of output rows, chunk of output channels),
  statically scheduled; bands and chunks shrink until each thread has several items.
* Per item: the depthwise output of every mid channel for the band's positions is
  computed into a per-thread buffer D, laid out as the GEMM's packed B panels
  ([tile of 32 positions][mid channel][32]: each tile's panel is contiguous and stays in
  L1, which reading D with a row stride did not), then the pointwise GEMM runs the shared
  micro-kernel over D with
  K = C*m and writes the band of every output channel in its chunk. D is sized to stay
  in L2, so the depthwise result never travels to memory and is never materialised.
* Padding strategy: each thread owns a zero-bordered strip (the band's input rows plus
  the kernel's reach, row pitch W + left + right); per channel only the interior is
  rewritten (rows outside the input are zeroed), then the shared row kernels run with
  no bounds checks.
* Determinism: every output is bias + sum over mid channels in fixed K-blocks, and
  every mid value bias + taps in (kh, kw) order, whatever the thread count.
"""

from cython cimport floating
from cython.parallel cimport prange, parallel

from cconv._common cimport scratch_alloc, free, memset, effective_threads, ceil_div
from cconv._dwrows cimport dw_output_row
from cconv._microkernel cimport MR, NR_F32, NR_F64, KC, microkernel_packed

cdef enum:
    D_BYTES = 262144  # per-thread depthwise buffer budget (a quarter of L2)


cdef struct Sep:
    Py_ssize_t C, mult, C_mid, C_out, H, W, Ho, Wo
    Py_ssize_t pt, pl, Wp, KH, KW, sh, sw, dh, dw, T
    Py_ssize_t band_rows, n_bands, mb_per_chunk, n_chunks, n_mblocks
    bint k3x3


cdef void separable_item(const Sep* S, const floating* x_img, floating* out_img,
                         const floating* dw_w, const floating* dw_b, const floating* pw_w,
                         const floating* pw_b, const Py_ssize_t* off,
                         Py_ssize_t band, Py_ssize_t chunk,
                         floating* strip, floating* D, floating* cbuf,
                         floating* tmp) noexcept nogil:
    cdef Py_ssize_t nr
    if floating is float:
        nr = NR_F32
    else:
        nr = NR_F64
    cdef Py_ssize_t oh0 = band * S.band_rows
    cdef Py_ssize_t oh1 = oh0 + S.band_rows
    if oh1 > S.Ho:
        oh1 = S.Ho
    cdef Py_ssize_t npos = (oh1 - oh0) * S.Wo
    cdef Py_ssize_t ntiles = (npos + nr - 1) // nr
    cdef Py_ssize_t ldd = ntiles * nr
    cdef Py_ssize_t r_start = oh0 * S.sh          # first padded row the band reads
    cdef Py_ssize_t strip_h = (oh1 - 1 - oh0) * S.sh + (S.KH - 1) * S.dh + 1
    cdef Py_ssize_t c, j, r, iy, q, mid, oh, mb, mb0, mb1, tile, kb, kc, rows, m
    cdef Py_ssize_t pos, lane, run, i
    cdef floating* drow
    cdef floating* rowbuf = tmp + 128   # one depthwise output row (see the allocation)
    cdef floating b, v
    cdef floating* srow
    cdef const floating* xrow
    cdef floating* cb
    cdef floating* orow

    # 1. Depthwise output of every mid channel over the band, into D.
    for c in range(S.C):
        for r in range(strip_h):
            iy = r_start + r - S.pt
            srow = strip + r * S.Wp + S.pl
            if iy < 0 or iy >= S.H:
                for q in range(S.W):
                    srow[q] = 0
            else:
                xrow = x_img + (c * S.H + iy) * S.W
                for q in range(S.W):
                    srow[q] = xrow[q]
        for j in range(S.mult):
            mid = c * S.mult + j
            b = dw_b[mid] if dw_b != NULL else 0
            for oh in range(oh0, oh1):
                dw_output_row(rowbuf, strip + (oh - oh0) * S.sh * S.Wp, dw_w + mid * S.T, off,
                              S.T, S.k3x3, S.Wp, S.sw, S.dh, S.dw, S.Wo, b, tmp)
                # Into D's tile-packed layout: a row may straddle two tiles.
                pos = (oh - oh0) * S.Wo
                q = 0
                while q < S.Wo:
                    tile = (pos + q) // nr
                    lane = pos + q - tile * nr
                    run = nr - lane
                    if run > S.Wo - q:
                        run = S.Wo - q
                    drow = D + (tile * S.C_mid + mid) * nr + lane
                    for i in range(run):
                        drow[i] = rowbuf[q + i]
                    q += run
    # Tail lanes of the last tile feed only discarded outputs, but must hold numbers.
    if ldd > npos:
        for mid in range(S.C_mid):
            drow = D + ((ntiles - 1) * S.C_mid + mid) * nr
            for q in range(npos - (ntiles - 1) * nr, nr):
                drow[q] = 0

    # 2. Pointwise GEMM over D for this chunk of output channels.
    mb0 = chunk * S.mb_per_chunk
    mb1 = mb0 + S.mb_per_chunk
    if mb1 > S.n_mblocks:
        mb1 = S.n_mblocks
    for mb in range(mb0, mb1):
        for tile in range(ntiles):
            cb = cbuf + ((mb - mb0) * ntiles + tile) * MR * nr
            for r in range(MR):
                m = mb * MR + r
                v = pw_b[m] if (pw_b != NULL and m < S.C_out) else 0
                for q in range(nr):
                    cb[r * nr + q] = v
    kb = 0
    while kb < S.C_mid:
        kc = S.C_mid - kb
        if kc > KC:
            kc = KC
        for mb in range(mb0, mb1):
            rows = S.C_out - mb * MR
            if rows > MR:
                rows = MR
            for tile in range(ntiles):
                cb = cbuf + ((mb - mb0) * ntiles + tile) * MR * nr
                microkernel_packed(kc, pw_w + (mb * S.C_mid + kb) * MR, rows,
                                   D + (tile * S.C_mid + kb) * nr, nr, cb)
        kb += kc

    # 3. The band is contiguous in every output plane.
    for mb in range(mb0, mb1):
        for r in range(MR):
            m = mb * MR + r
            if m >= S.C_out:
                break
            orow = out_img + m * S.Ho * S.Wo + oh0 * S.Wo
            for tile in range(ntiles):
                cb = cbuf + ((mb - mb0) * ntiles + tile) * MR * nr + r * nr
                run = npos - tile * nr
                if run > nr:
                    run = nr
                for q in range(run):  # no break inside: this loop vectorises
                    orow[tile * nr + q] = cb[q]


def _plan_bands(Py_ssize_t N, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t C_mid,
                Py_ssize_t n_mblocks, Py_ssize_t nr, Py_ssize_t itemsize, int n_threads):
    """(band rows, m-blocks per chunk): D fits its budget; with several threads, every
    thread gets about four items, by splitting output channels first (an item then
    recomputes its band's depthwise part, which is cheap) and bands only while a band
    still holds four tiles."""
    cdef Py_ssize_t max_pos = max(nr, D_BYTES // (itemsize * C_mid))
    # (C division truncates: ceilings go through ceil_div, never -(-a // b).)
    cdef Py_ssize_t band_rows = max(1, min(Ho, max_pos // Wo, ceil_div(256, Wo)))
    cdef Py_ssize_t per_chunk = n_mblocks
    target = 1 if n_threads <= 1 else 4 * n_threads
    while True:
        items = N * ceil_div(Ho, band_rows) * ceil_div(n_mblocks, per_chunk)
        if items >= target:
            break
        if per_chunk > 4:
            per_chunk = (per_chunk + 1) // 2
        elif band_rows > 1 and (band_rows // 2) * Wo >= 4 * nr:
            band_rows = (band_rows + 1) // 2
        elif per_chunk > 1:
            per_chunk = (per_chunk + 1) // 2
        elif band_rows > 1:
            band_rows = (band_rows + 1) // 2
        else:
            break
    # Among band heights up to the chosen one, take the one whose busiest thread has the
    # fewest tiles to compute (items go to threads in contiguous static blocks): 28 x 28
    # in bands of 7 rows padded every band of 196 positions to 224 (12.5% of the GEMM
    # wasted), bands of 9 rows left one thread idle at 2 threads.
    cdef Py_ssize_t best_rows = band_rows, best_cost = -1, rows, cost, oh, n_chunks, t
    cdef Py_ssize_t n_items, base, extra, start, stop, i, load
    n_chunks = ceil_div(n_mblocks, per_chunk)
    for rows in range(band_rows, max(1, band_rows // 2) - 1, -1):
        item_tiles = [ceil_div(min(rows, Ho - oh) * Wo, nr)
                      for _n in range(N) for oh in range(0, Ho, rows) for _c in range(n_chunks)]
        n_items = len(item_tiles)
        base, extra = n_items // n_threads, n_items % n_threads
        cost, start = 0, 0
        for t in range(n_threads):
            stop = start + base + (1 if t < extra else 0)
            load = sum(item_tiles[start:stop])
            cost = max(cost, load)
            start = stop
        if best_cost < 0 or cost < best_cost:
            best_rows, best_cost = rows, cost
    return best_rows, per_chunk


def separable_forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dw_w,
                      dw_bias, const floating[:, ::1] pw_w, pw_bias,
                      floating[:, :, :, ::1] out, stride, padding, dilation, int n_threads):
    """Depthwise (stride/padding/dilation) then pointwise, fused. Zero padding only."""
    cdef Sep S
    cdef Py_ssize_t N = x.shape[0]
    S.C = x.shape[1]
    S.H = x.shape[2]
    S.W = x.shape[3]
    S.C_mid = dw_w.shape[0]
    S.mult = S.C_mid // S.C
    S.KH = dw_w.shape[2]
    S.KW = dw_w.shape[3]
    S.T = S.KH * S.KW
    S.k3x3 = S.KH == 3 and S.KW == 3
    S.C_out = pw_w.shape[0]
    S.Ho = out.shape[2]
    S.Wo = out.shape[3]
    S.pt = padding[0][0]
    S.pl = padding[1][0]
    S.sh, S.sw = stride
    S.dh, S.dw = dilation
    S.Wp = max(S.W + padding[1][0] + padding[1][1], (S.Wo - 1) * S.sw + (S.KW - 1) * S.dw + 1)
    S.n_mblocks = (S.C_out + MR - 1) // MR
    cdef Py_ssize_t nr = NR_F32 if floating is float else NR_F64
    n_threads = effective_threads(n_threads, N * S.Ho,
                                  <double> N * S.Ho * S.Wo * S.C_mid * (S.T + S.C_out))
    S.band_rows, S.mb_per_chunk = _plan_bands(N, S.Ho, S.Wo, S.C_mid, S.n_mblocks, nr,
                                              sizeof(floating), n_threads)
    S.n_bands = (S.Ho + S.band_rows - 1) // S.band_rows
    S.n_chunks = (S.n_mblocks + S.mb_per_chunk - 1) // S.mb_per_chunk

    cdef Py_ssize_t kh, kw
    cdef Py_ssize_t* off = <Py_ssize_t*> scratch_alloc(S.T * sizeof(Py_ssize_t))
    # The pointwise weights are the GEMM's A, packed as [block of MR outputs][C_mid][MR]
    # (zero rows past C_out) for the packed micro-kernel: C_out x C_mid values against
    # C_out x C_mid x positions multiply-adds, and the kernel runs 15-45% faster packed
    # (see _igemm._packing_pays). The k order is unchanged, so are the bits.
    cdef floating* pw_packed = <floating*> scratch_alloc(
        S.n_mblocks * S.C_mid * MR * sizeof(floating))
    if off == NULL or pw_packed == NULL:
        free(off)
        free(pw_packed)
        raise MemoryError("cconv: could not allocate the separable tap table")
    for kh in range(S.KH):
        for kw in range(S.KW):
            off[kh * S.KW + kw] = kh * S.dh * S.Wp + kw * S.dw
    cdef Py_ssize_t mb, k, r
    with nogil:
        for mb in range(S.n_mblocks):
            for k in range(S.C_mid):
                for r in range(MR):
                    pw_packed[(mb * S.C_mid + k) * MR + r] = (
                        pw_w[mb * MR + r, k] if mb * MR + r < S.C_out else 0)

    cdef Py_ssize_t max_npos = S.band_rows * S.Wo
    cdef Py_ssize_t ldd_max = ((max_npos + nr - 1) // nr) * nr
    cdef Py_ssize_t strip_rows = (S.band_rows - 1) * S.sh + (S.KH - 1) * S.dh + 1
    # The row kernels may read two blocks past a row (see _dwrows.pxd).
    cdef Py_ssize_t strip_alloc = strip_rows * S.Wp + 4 * 64 * S.sw + S.Wp + 64
    cdef Py_ssize_t d_alloc = S.C_mid * ldd_max
    cdef Py_ssize_t c_alloc = S.mb_per_chunk * MR * ldd_max
    cdef const floating* dwb = NULL
    cdef const floating* pwb = NULL
    cdef const floating[::1] dwb_view
    cdef const floating[::1] pwb_view
    if dw_bias is not None:
        dwb_view = dw_bias
        dwb = &dwb_view[0]
    if pw_bias is not None:
        pwb_view = pw_bias
        pwb = &pwb_view[0]
    cdef Py_ssize_t n_items = N * S.n_bands * S.n_chunks, item, n, rest, band, chunk
    cdef floating* strip
    cdef floating* D
    cdef floating* cbuf
    cdef floating* tmp
    cdef int failed = 0
    cdef int* failed_flag = &failed
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef const floating* dwp = &dw_w[0, 0, 0, 0]
    cdef const floating* pwp = pw_packed
    cdef floating* op = &out[0, 0, 0, 0]
    if n_items > 0:
        with nogil, parallel(num_threads=n_threads):
            strip = <floating*> scratch_alloc(strip_alloc * sizeof(floating))
            D = <floating*> scratch_alloc(d_alloc * sizeof(floating))
            cbuf = <floating*> scratch_alloc(c_alloc * sizeof(floating))
            tmp = <floating*> scratch_alloc((256 + S.Wo + 128) * sizeof(floating))
            if strip != NULL:
                memset(strip, 0, strip_alloc * sizeof(floating))
            for item in prange(n_items, schedule="static"):
                if strip == NULL or D == NULL or cbuf == NULL or tmp == NULL:
                    failed_flag[0] = 1
                    continue
                chunk = item % S.n_chunks
                rest = item // S.n_chunks
                band = rest % S.n_bands
                n = rest // S.n_bands
                separable_item(&S, xp + n * S.C * S.H * S.W, op + n * S.C_out * S.Ho * S.Wo,
                               dwp, dwb, pwp, pwb, off, band, chunk, strip, D, cbuf,
                               tmp)
            free(strip)
            free(D)
            free(cbuf)
            free(tmp)
    free(off)
    free(pw_packed)
    if failed:
        raise MemoryError("cconv: could not allocate per-thread scratch memory")
    return out
