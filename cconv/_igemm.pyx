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

* Layout: NCHW input and output. ``A`` is the weight tensor itself, read in place
  (no per-call weight preparation): element ``(m, k)`` of a group is at
  ``w_group + m * lda + aoff[k]``, with ``k = tap * C_in_per_group + c`` (tap-major, so
  every tap is a contiguous run of k) and ``aoff`` a small table. The one exception is
  a transposed conv with a kernel larger than 2x2, whose (C_in, C_out, kh, kw) layout
  puts consecutive output channels a cache line apart: its weights are first gathered
  into rows of contiguous k.
* Micro-kernel: an ``MR x NR`` accumulator tile held in 16 zmm registers; per k, eight
  broadcasts from eight weight rows and two loads of the packed ``B`` row; innermost
  loop over the NR columns.
* Blocking: a work item covers up to ``NC`` positions (several NR tiles) and a chunk
  of output channels. For each K-block of ``KC`` rows the item packs ``B`` for all its
  tiles, then every MR block of weights runs over all tiles while it is hot in L1, so
  the weights stream from memory once per ``NC`` positions rather than once per tile.
* Positions live on a grid ``(Hg, Wg)``; tap ``t`` of grid point ``(i, j)`` reads input
  ``(i * sy + dy[t], j * sx + dx[t])`` and the result goes to output offset
  ``dst0 + i * drs + j * dcs``. A standard conv is one grid (the output) with
  ``dy = kh * dilation - pad``. A strided conv first splits its input into phase
  planes (``x[c, a::sh, b::sw]``) and becomes a unit-stride conv over them, so the
  packer only copies contiguous runs. A transposed conv is split into ``stride_h * stride_w``
  phases (sub-pixel decomposition): output pixels of one phase see a fixed subset of
  taps at unit stride, so the transposed conv is a *gather* per output pixel, with no
  zero-inserted input and no racing scatter.
* Padding strategy: none materialised. For each (tile, tap) the packer computes the
  row segments that fall inside the input and writes zeros elsewhere; a K-block whose
  taps all lie wholly in the padding for the whole tile is skipped (large dilations).
* Parallel axis: one flat list of work items ``(image, group, m-chunk, positions)``,
  distributed statically, fine-grained; each item writes a disjoint set of outputs.
  The summation order of every output element is fixed by the k order alone, so the
  bits do not depend on the thread count.
"""

import numpy as np
from cython cimport floating
from cython.parallel cimport prange, parallel

from cconv._common cimport scratch_alloc, free, floor_div, ceil_div, effective_threads
from cconv._microkernel cimport MR, NR_F32, NR_F64, KC, microkernel, microkernel_packed


cdef enum:
    NC = 256        # positions per work item at most (several tiles share each A block)
    SEG_STRIDE = 3 * (3 * 32 + 4)  # one tile's segment table (up to 3 runs per grid row)
    MAX_CHUNK_ROWS = 256  # output channels per work item at most


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
    Py_ssize_t lda           # weight stride between output channels of a block
    Py_ssize_t mb_stride     # weight stride between blocks of MR output channels
    Py_ssize_t w_group       # weight stride between groups
    bint a_packed            # weights packed as [group][m-block][k][MR] (aoff[k] = k * MR)
    Py_ssize_t sy, sx        # grid-to-input strides
    const Py_ssize_t* aoff   # weight offset of every k (all phases' taps x Cg)
    const Py_ssize_t* tap_dy
    const Py_ssize_t* tap_dx
    const Py_ssize_t* tap_base   # offset of the plane block a tap reads (polyphase input)
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
    cdef Py_ssize_t nseg = 0, j = 0, gi, gj, run, iy, lo, hi, src
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
            src = iy * P.W + lo * P.sx + dx
            if (nseg > 0 and seg[3 * nseg - 1] >= 0
                    and seg[3 * nseg - 1] + seg[3 * nseg - 2] * P.sx == src
                    and seg[3 * nseg - 3] + seg[3 * nseg - 2] == j + lo - gj):
                # Continues the previous run in the input too (no padding columns, the
                # grid as wide as the input, as in a 1x1 conv): one longer run, so the
                # packer takes its single-run fast path.
                seg[3 * nseg - 2] += hi - lo
            else:
                seg[3 * nseg] = j + lo - gj
                seg[3 * nseg + 1] = hi - lo
                seg[3 * nseg + 2] = src
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
    if nseg == 1 and seg[2] >= 0 and sx == 1:
        # The common interior case: the whole tile is one contiguous input run.
        # A constant trip count compiles to two vector moves; a variable one to a
        # memmove call per row.
        src = seg[2]
        for r in range(rows):
            xc = x_chan + r * plane + src
            row = bp + r * nr
            if floating is float:
                for q in range(NR_F32):
                    row[q] = xc[q]
            else:
                for q in range(NR_F64):
                    row[q] = xc[q]
        return
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


cdef inline int block_has_nonfinite(const floating* a0, Py_ssize_t lda, Py_ssize_t rows,
                                    const Py_ssize_t* aoff, Py_ssize_t kc) noexcept nogil:
    """1 if any weight of this (rows x kc) block is NaN or Inf."""
    cdef Py_ssize_t i, k
    cdef floating v
    for i in range(rows):
        for k in range(kc):
            v = a0[i * lda + aoff[k]]
            if v - v != 0 or v != v:
                return 1
    return 0


cdef void run_item(const Problem* P, const floating* x_img, floating* out_img,
                   const floating* w_group, const floating* bias_group, Py_ssize_t g,
                   Py_ssize_t phase, Py_ssize_t p0, Py_ssize_t npos_item, Py_ssize_t mb0,
                   Py_ssize_t mb1, floating* bpanel, floating* cbuf, Py_ssize_t* seg,
                   int* tile_valid) noexcept nogil:
    # seg holds one segment table per tile (SEG_STRIDE each), then each tile's count.
    """All output channels [mb0*MR, mb1*MR) x positions [p0, p0+npos_item) of one phase."""
    cdef Py_ssize_t nr
    if floating is float:
        nr = NR_F32
    else:
        nr = NR_F64
    cdef Py_ssize_t wg = P.ph_wg[phase]
    cdef Py_ssize_t ntiles = (npos_item + nr - 1) // nr
    cdef Py_ssize_t plane = P.H * P.W
    cdef Py_ssize_t tile_block = MR * nr       # one (m-block, tile) accumulator block
    cdef Py_ssize_t r, j, m, k, k_end, kb_end, t, ci, cnt, nseg, mb, kc, tile, tp0, tnpos
    cdef Py_ssize_t rows
    cdef floating v
    cdef int valid
    cdef signed char nonfinite[MAX_CHUNK_ROWS]  # per m-block (at most this many)
    cdef Py_ssize_t n_mb, outer, inner
    cdef const floating* x_group = x_img + g * P.Cg * plane
    cdef Py_ssize_t* tile_nseg = seg + (NC // nr) * SEG_STRIDE
    cdef floating* cb
    cdef floating* bp

    # The C blocks start at the bias, so no separate pass adds it.
    for mb in range(mb0, mb1):
        for tile in range(ntiles):
            cb = cbuf + ((mb - mb0) * ntiles + tile) * tile_block
            for r in range(MR):
                m = mb * MR + r
                v = 0
                if bias_group != NULL and m < P.M:
                    v = bias_group[m]
                for j in range(nr):
                    cb[r * nr + j] = v

    k = P.ph_tap0[phase] * P.Cg
    k_end = P.ph_tap1[phase] * P.Cg
    while k < k_end:
        kb_end = k + KC
        if kb_end > k_end:
            kb_end = k_end
        kc = kb_end - k
        for tile in range(ntiles):
            tile_valid[tile] = 0
        j = k
        while j < kb_end:
            t = j // P.Cg
            ci = j - t * P.Cg
            cnt = P.Cg - ci
            if cnt > kb_end - j:
                cnt = kb_end - j
            for tile in range(ntiles):
                tp0 = p0 + tile * nr
                tnpos = npos_item - tile * nr
                if tnpos > nr:
                    tnpos = nr
                tile_nseg[tile] = build_segments(P, wg, tp0, tnpos, nr, P.tap_dy[t],
                                                 P.tap_dx[t], seg + tile * SEG_STRIDE, &valid)
                if valid:
                    tile_valid[tile] = 1
            # Channel by channel, every tile's run of that input row in turn: the item's
            # positions of one row are read consecutively (prefetch-friendly), not once
            # per tile in separate passes over all channels. An all-padding tap still
            # needs zero rows when it shares the panel.
            for r in range(cnt):
                for tile in range(ntiles):
                    pack_rows(x_group + P.tap_base[t] + (ci + r) * plane, plane, 1, P.sx,
                              seg + tile * SEG_STRIDE, tile_nseg[tile],
                              bpanel + tile * KC * nr + (j - k + r) * nr, nr)
            j += cnt
        # Packed weights: each tile's B panel (KC x NR, 32 KiB) stays in L1 while the
        # m-blocks' contiguous weight runs stream past it from L2. In-place weights are
        # read at a stride, so there each m-block's rows stay hot over all the tiles.
        for mb in range(mb1 - mb0):
            nonfinite[mb] = -1  # unknown until a tile wants to skip this block
        n_mb = mb1 - mb0
        for outer in range(ntiles if P.a_packed else n_mb):
            for inner in range(n_mb if P.a_packed else ntiles):
                if P.a_packed:
                    tile = outer
                    mb = mb0 + inner
                else:
                    tile = inner
                    mb = mb0 + outer
                rows = P.M - mb * MR
                if rows > MR:
                    rows = MR
                if not tile_valid[tile]:
                    # Every tap of this K-block reads only padding for this tile: the
                    # products are 0 * w, which is 0 unless w is NaN or Inf (IEEE).
                    if nonfinite[mb - mb0] < 0:
                        nonfinite[mb - mb0] = block_has_nonfinite(
                            w_group + mb * P.mb_stride, P.lda, rows, P.aoff + k, kc)
                    if not nonfinite[mb - mb0]:
                        continue
                if P.a_packed:
                    microkernel_packed(kc, w_group + mb * P.mb_stride + k * MR, rows,
                                       bpanel + tile * KC * nr, nr,
                                       cbuf + ((mb - mb0) * ntiles + tile) * tile_block)
                else:
                    microkernel(kc, w_group + mb * P.mb_stride, P.lda, rows, P.aoff + k,
                                bpanel + tile * KC * nr, nr,
                                cbuf + ((mb - mb0) * ntiles + tile) * tile_block)
        k = kb_end

    # Scatter the item's tiles to their output positions.
    cdef Py_ssize_t dst0 = P.ph_dst0[phase], drs = P.ph_drs[phase], dcs = P.ph_dcs[phase]
    cdef floating* orow
    cdef Py_ssize_t gi, gj, base, run, q
    cdef bint contiguous = (dcs == 1 and drs == wg)
    for mb in range(mb0, mb1):
        for r in range(MR):
            m = mb * MR + r
            if m >= P.M:
                break
            orow = out_img + (g * P.M + m) * P.out_plane
            for tile in range(ntiles):
                cb = cbuf + ((mb - mb0) * ntiles + tile) * tile_block + r * nr
                tp0 = p0 + tile * nr
                tnpos = npos_item - tile * nr
                if tnpos > nr:
                    tnpos = nr
                if contiguous:
                    base = dst0 + tp0
                    for j in range(tnpos):
                        orow[base + j] = cb[j]
                    continue
                # Strided phases (transposed conv): one run per grid row, no division
                # per element.
                j = 0
                gi = tp0 // wg
                gj = tp0 - gi * wg
                while j < tnpos:
                    run = wg - gj
                    if run > tnpos - j:
                        run = tnpos - j
                    base = dst0 + gi * drs + gj * dcs
                    for q in range(run):
                        orow[base + q * dcs] = cb[j + q]
                    j += run
                    gi += 1
                    gj = 0


cdef int run_problem(const Problem* P, const floating* x, floating* out,
                     const floating* w, const floating* bias, Py_ssize_t N,
                     Py_ssize_t G, Py_ssize_t mb_per_chunk, const Py_ssize_t* work,
                     Py_ssize_t n_rows, int n_threads) noexcept nogil:
    """Run every work item; returns 0, or -1 when a thread could not get scratch memory."""
    cdef Py_ssize_t nr
    if floating is float:
        nr = NR_F32
    else:
        nr = NR_F64
    cdef Py_ssize_t max_tiles = (NC + nr - 1) // nr
    cdef Py_ssize_t n_chunks = (P.n_mblocks + mb_per_chunk - 1) // mb_per_chunk
    cdef Py_ssize_t n_items = N * G * n_chunks * n_rows
    cdef Py_ssize_t item, row, rest, chunk, g, n, mb0, mb1
    cdef floating* bpanel
    cdef floating* cbuf
    cdef Py_ssize_t* seg
    cdef int* tile_valid
    cdef int failed = 0
    cdef int* failed_flag = &failed
    if n_items == 0:
        return 0
    with parallel(num_threads=n_threads):
        bpanel = <floating*> scratch_alloc(max_tiles * KC * nr * sizeof(floating))
        cbuf = <floating*> scratch_alloc(mb_per_chunk * max_tiles * MR * nr * sizeof(floating))
        seg = <Py_ssize_t*> scratch_alloc(max_tiles * (SEG_STRIDE + 1) * sizeof(Py_ssize_t))
        tile_valid = <int*> scratch_alloc(max_tiles * sizeof(int))
        for item in prange(n_items, schedule="static"):
            if bpanel == NULL or cbuf == NULL or seg == NULL or tile_valid == NULL:
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
            run_item(P, x + n * P.C_in_img * P.H * P.W, out + n * P.C_out_img * P.out_plane,
                     w + g * P.w_group, (bias + g * P.M) if bias != NULL else NULL,
                     g, work[3 * row], work[3 * row + 1], work[3 * row + 2], mb0, mb1,
                     bpanel, cbuf, seg, tile_valid)
        free(bpanel)
        free(cbuf)
        free(seg)
        free(tile_valid)
    return -1 if failed else 0


# ---------------------------------------------------------------------------------
# Python-facing entry points. Arguments arrive validated and normalised (cconv._params);
# these only build the plan (taps, phases, work list, weight offsets) and run it.

def plan_work(phase_positions, Py_ssize_t n_mblocks, Py_ssize_t n_images, Py_ssize_t nr,
              int n_threads, double weight_bytes=0):
    """Split the positions of every phase into work items and pick the m-chunk size.

    Returns (work, mb_per_chunk): work rows are (phase, first position, positions).
    Items hold up to NC positions and MAX_CHUNK_ROWS output channels. With several
    threads both shrink (positions to one tile, channels to two blocks) until every
    thread has about four items, since coarse items lost 20% to imbalance at 2 threads.
    Which shrinks first depends on the weights: every item streams its chunk of them,
    so large weights split channels (more B packing) before positions (more weight
    traffic). Neither choice changes any result: each output's sum runs over k in the
    same order.
    """
    per_chunk = max(1, min(n_mblocks, MAX_CHUNK_ROWS // MR))
    tiles_per_item = NC // nr
    target = 1 if n_threads <= 1 else 4 * n_threads
    channels_first = weight_bytes > 512 * 1024

    def count(tiles, chunk):
        items_per_image = sum(-(-p // (tiles * nr)) for p in phase_positions)
        return n_images * items_per_image * (-(-n_mblocks // chunk))

    while count(tiles_per_item, per_chunk) < target and (tiles_per_item > 1 or per_chunk > 2):
        if per_chunk > 2 and (channels_first or tiles_per_item == 1):
            per_chunk = (per_chunk + 1) // 2
        else:
            tiles_per_item //= 2
    step = tiles_per_item * nr
    rows = []
    for phase, n_pos in enumerate(phase_positions):
        # Even items, in whole tiles: 1089 positions as 9 x 128 left a last item half
        # empty; as 9 x 128 tiles of 32 -> 8 x 128 + 65 ... -> balanced 9 x 4 tiles.
        n_items = -(-n_pos // step)
        even = -(-(-(-n_pos // n_items)) // nr) * nr
        for p0 in range(0, n_pos, even):
            rows.append((phase, p0, min(even, n_pos - p0)))
    return np.asarray(rows, dtype=np.intp).reshape(-1, 3), per_chunk


class Plan:
    """Everything about one call that does not depend on the data: built once per input
    shape (layer objects keep it), then executed on any number of inputs."""

    __slots__ = ("N", "C_in", "H", "W", "G", "M", "out_plane", "sy", "sx", "tap_dy",
                 "tap_dx", "phase_cols", "positions", "_work", "tap_base", "polyphase", "Cg",
                 "inplace", "packed_layout", "pack_spec", "prefer_packed", "packed", "K")

    def __init__(self, N, C_in, H, W, G, M, out_plane, sy, sx, lda, w_group, aoff, tap_dy,
                 tap_dx, phases, pack_spec, prefer_packed=False, tap_base=None,
                 polyphase=None, Cg=None):
        # C_in counts the channels of one image as stored (phase planes included);
        # Cg the input channels one group's taps run over.
        self.N, self.C_in, self.H, self.W, self.G, self.M = N, C_in, H, W, G, M
        self.Cg = C_in // G if Cg is None else Cg
        self.out_plane, self.sy, self.sx = out_plane, sy, sx
        aoff = np.ascontiguousarray(aoff, dtype=np.intp)
        self.K = K = len(aoff)
        n_mblocks = (M + MR - 1) // MR
        # Two ways to read the weights, each (aoff, lda, m-block stride, group stride):
        # in place, or packed as [group][block of MR channels][k][MR], one contiguous
        # stream per block (the plan builders say which pays).
        self.inplace = (aoff, lda, MR * lda, w_group)
        self.packed_layout = (np.arange(K, dtype=np.intp) * MR, 1, K * MR, n_mblocks * K * MR)
        # (weight offset of each tap, stride between input channels, between output
        # channels, between groups) of the weights as given, for packing them.
        tap_off, chan_stride = pack_spec
        self.pack_spec = (np.ascontiguousarray(tap_off, dtype=np.intp), chan_stride, lda,
                          w_group)
        self.prefer_packed = prefer_packed
        self.packed = None
        self.tap_dy = np.ascontiguousarray(tap_dy, dtype=np.intp)
        self.tap_dx = np.ascontiguousarray(tap_dx, dtype=np.intp)
        self.tap_base = np.ascontiguousarray(
            np.zeros(len(self.tap_dy)) if tap_base is None else tap_base, dtype=np.intp)
        # (stride_h, stride_w, [(row phase, column phase), ...]) when the input is first
        # split into the phase planes the taps read (see conv2d_plan).
        self.polyphase = polyphase
        # columns: hg, wg, dst0, drs, dcs, tap0, tap1
        self.phase_cols = np.ascontiguousarray(np.asarray(phases, dtype=np.intp).reshape(-1, 7).T)
        self.positions = (self.phase_cols[0] * self.phase_cols[1]).tolist()
        self._work = {}

    def work(self, int n_threads, Py_ssize_t nr):
        """(work rows, m-blocks per chunk, threads actually used) for a thread count."""
        key = (n_threads, nr)
        cached = self._work.get(key)
        if cached is None:
            n_mblocks = (self.M + MR - 1) // MR
            macs = float(self.N) * self.G * self.M * self.out_plane * max(self.K, 1)
            threads = effective_threads(n_threads, self.N * self.G * sum(self.positions) // nr + 1,
                                        macs)
            work, per_chunk = plan_work(self.positions, n_mblocks, self.N * self.G, nr, threads,
                                        float(self.G) * self.M * self.K * 4)
            cached = self._work[key] = (work, per_chunk, threads)
        return cached


def execute(plan, work_plan, layout, const floating[::1] x, floating[::1] out,
            const floating[::1] w, bias):
    """Run a plan: x, out, w flattened C-contiguous arrays of one dtype."""
    cdef Problem P
    cdef Py_ssize_t nr = NR_F32 if floating is float else NR_F64
    if plan.N == 0:
        return
    cdef Py_ssize_t per_chunk
    cdef int n_threads
    work_arr, per_chunk, n_threads = work_plan
    cdef Py_ssize_t[::1] aoff = layout[0]
    cdef Py_ssize_t[::1] tap_dy = plan.tap_dy
    cdef Py_ssize_t[::1] tap_dx = plan.tap_dx
    cdef Py_ssize_t[::1] tap_base = plan.tap_base
    cdef Py_ssize_t[:, ::1] pc = plan.phase_cols
    cdef Py_ssize_t[:, ::1] work = work_arr
    P.C_in_img = plan.C_in
    P.H = plan.H
    P.W = plan.W
    P.Cg = plan.Cg
    P.M = plan.M
    P.C_out_img = plan.G * plan.M
    P.out_plane = plan.out_plane
    P.n_mblocks = (P.M + MR - 1) // MR
    P.lda = layout[1]
    P.mb_stride = layout[2]
    P.w_group = layout[3]
    P.a_packed = layout is plan.packed_layout
    P.sy = plan.sy
    P.sx = plan.sx
    P.aoff = &aoff[0] if aoff.shape[0] else NULL
    P.tap_dy = &tap_dy[0] if tap_dy.shape[0] else NULL
    P.tap_dx = &tap_dx[0] if tap_dx.shape[0] else NULL
    P.tap_base = &tap_base[0] if tap_base.shape[0] else NULL
    P.ph_hg = &pc[0, 0]
    P.ph_wg = &pc[1, 0]
    P.ph_dst0 = &pc[2, 0]
    P.ph_drs = &pc[3, 0]
    P.ph_dcs = &pc[4, 0]
    P.ph_tap0 = &pc[5, 0]
    P.ph_tap1 = &pc[6, 0]
    cdef Py_ssize_t n_rows = work.shape[0]
    cdef Py_ssize_t N = plan.N, G = plan.G
    cdef const floating[::1] bias_view
    cdef const floating* bias_ptr = NULL
    if bias is not None:
        bias_view = bias
        bias_ptr = &bias_view[0]
    cdef const floating* x_ptr = &x[0] if x.shape[0] else NULL
    cdef int status = 0
    if n_rows == 0:
        return
    with nogil:
        status = run_problem(&P, x_ptr, &out[0], &w[0], bias_ptr, N, G, per_chunk,
                             &work[0, 0], n_rows, n_threads)
    if status != 0:
        raise MemoryError("cconv: could not allocate per-thread scratch memory")


def _pack_blocks(const floating[::1] w, const Py_ssize_t[::1] tap_off, Py_ssize_t chan_stride,
                 Py_ssize_t src_lda, Py_ssize_t src_group, Py_ssize_t G, Py_ssize_t M,
                 Py_ssize_t Cg, int n_threads):
    """packed[((g*nmb + mb)*K + t*Cg + c)*MR + i] = w[g*src_group + (mb*MR + i)*src_lda
    + c*chan_stride + tap_off[t]], zero for channels past M.

    Parallel over blocks of MR output channels. Within a block, input channels go in
    groups of 16: their source values (MR channels x 16 inputs x T taps, a few KiB)
    stay in L1 while every tap's destination run (16 x MR values) is written in order.
    (Writing tap by tap per input channel instead put T writes 16 KiB apart: one L1 set,
    thrashing.)
    """
    cdef Py_ssize_t T = tap_off.shape[0], K = T * Cg
    cdef Py_ssize_t n_blocks = (M + MR - 1) // MR, blk, g, mb, m, i, c, c0, c1, t, rows
    packed_arr = np.empty(G * n_blocks * K * MR,
                          dtype=np.float32 if floating is float else np.float64)
    cdef floating[::1] packed_view = packed_arr
    if K == 0 or G * M == 0:
        return packed_arr
    cdef floating* packed = &packed_view[0]
    cdef const floating* src = &w[0]
    cdef const Py_ssize_t* toff = &tap_off[0]
    cdef floating* dst
    cdef const floating* row
    n_threads = effective_threads(n_threads, G * n_blocks, <double> G * M * K / 8)
    with nogil:
        for blk in prange(G * n_blocks, schedule="static", num_threads=n_threads):
            g = blk // n_blocks
            mb = blk - g * n_blocks
            rows = M - mb * MR
            if rows > MR:
                rows = MR
            for c0 in range(0, Cg, 16):
                c1 = c0 + 16
                if c1 > Cg:
                    c1 = Cg
                for t in range(T):
                    dst = packed + (blk * K + t * Cg) * MR
                    for c in range(c0, c1):
                        for i in range(rows):
                            row = src + g * src_group + (mb * MR + i) * src_lda + c * chan_stride
                            dst[c * MR + i] = row[toff[t]]
                        for i in range(rows, MR):
                            dst[c * MR + i] = 0
    return packed_arr


def run(plan, x, w, bias, out, int n_threads, bint weights_frozen=False):
    """Execute ``plan`` on 4-D C-contiguous arrays with ``n_threads`` threads.

    ``weights_frozen`` (layer objects) lets a plan pack its weights once and keep
    them: packed weights then cost nothing per call, so they are always used.
    """
    is_float = x.dtype == np.float32
    nr = NR_F32 if is_float else NR_F64
    w_flat = w.reshape(-1)
    layout = plan.inplace
    if plan.prefer_packed or (weights_frozen and len(w_flat)):
        layout = plan.packed_layout
        if weights_frozen and plan.packed is not None and plan.packed[0] is w:
            w_flat = plan.packed[1]
        else:
            tap_off, chan_stride, src_lda, src_group = plan.pack_spec
            w_flat = _pack_blocks(w_flat, tap_off, chan_stride, src_lda, src_group, plan.G,
                                  plan.M, plan.Cg, n_threads)
            if weights_frozen:
                plan.packed = (w, w_flat)
    if len(w_flat) == 0:
        w_flat = np.zeros(1, dtype=x.dtype)  # no tap reaches any output: bias only
    if plan.polyphase is not None:
        x = _polyphase_planes(x, plan, n_threads)
    execute(plan, plan.work(n_threads, nr), layout, x.reshape(-1), out.reshape(-1), w_flat,
            bias)
    return out


def _packing_pays(uses_per_weight, contiguous_rows):
    """Whether to pack the weights per call ([m-block][k][MR], see Plan), given how many
    output positions use each weight.

    Packed weights run the packed micro-kernel, 15-45% faster than reading them in
    place: one pointer walks all eight rows, where in place eight row pointers and an
    offset table need more general registers than x86-64 has (gcc then extracts two
    from vector registers every k, on the FMA ports), and a weight row with several
    taps is read at a stride. Packing costs about 4 bytes / 10 GB/s per weight against
    2 * uses / 200 GFLOP/s of arithmetic, i.e. 40 / uses of the conv's time. Measured
    (1 thread): 3x3 256 -> 256 on 14x14 (196 uses) 82 -> 122 GFLOP/s packed per call;
    1x1 with contiguous rows breaks even at 512 -> 512 on 14x14 and loses a third at
    1024 -> 2048 on 7x7. Layer objects pack once whatever this says.
    """
    return uses_per_weight >= (512 if contiguous_rows else 64)


def _weight_offsets(Py_ssize_t[::1] tap_kh, Py_ssize_t[::1] tap_kw, Py_ssize_t Cg,
                    Py_ssize_t KW, Py_ssize_t channel_stride, Py_ssize_t tap_row_stride):
    """aoff[t * Cg + c] = c * channel_stride + kh_t * tap_row_stride + kw_t."""
    cdef Py_ssize_t T = tap_kh.shape[0], t, c
    out = np.empty(T * Cg, dtype=np.intp)
    cdef Py_ssize_t[::1] o = out
    for t in range(T):
        for c in range(Cg):
            o[t * Cg + c] = c * channel_stride + tap_kh[t] * tap_row_stride + tap_kw[t]
    return out


def _polyphase_planes(x, plan, int n_threads):
    """Split x into the phase planes a strided plan reads: plane (a, b) of channel c is
    x[c, a::sh, b::sw], zero-filled to the common (H_s, W_s). A strided conv over x is a
    unit-stride conv over these planes, so the packer only ever copies contiguous runs."""
    sh, sw, used = plan.polyphase
    N, C, H, W = x.shape
    planes = np.empty((N, len(used) * C, plan.H, plan.W), dtype=x.dtype)
    phase_rc = np.asarray(used, dtype=np.intp).reshape(-1, 2)
    _split_phases(x.reshape(N * C, H, W), planes.reshape(N, len(used), C, plan.H, plan.W),
                  phase_rc, sh, sw, n_threads)
    return planes


def _split_phases(const floating[:, :, ::1] x, floating[:, :, :, :, ::1] planes,
                  const Py_ssize_t[:, ::1] phase_rc, Py_ssize_t sh, Py_ssize_t sw,
                  int n_threads):
    """planes[n, p, c, i, j] = x[n*C + c, a + i*sh, b + j*sw] (0 outside), in parallel."""
    cdef Py_ssize_t N = planes.shape[0], P = planes.shape[1], C = planes.shape[2]
    cdef Py_ssize_t Hs = planes.shape[3], Ws = planes.shape[4]
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2]
    cdef Py_ssize_t item, n, p, c, rest, i, j, a, b, iy
    n_threads = effective_threads(n_threads, N * P * C, <double> N * P * C * Hs * Ws / 4)
    with nogil:
        for item in prange(N * P * C, schedule="static", num_threads=n_threads):
            c = item % C
            rest = item // C
            p = rest % P
            n = rest // P
            a = phase_rc[p, 0]
            b = phase_rc[p, 1]
            for i in range(Hs):
                iy = a + i * sh
                for j in range(Ws):
                    if iy < H and b + j * sw < W:
                        planes[n, p, c, i, j] = x[n * C + c, iy, b + j * sw]
                    else:
                        planes[n, p, c, i, j] = 0


def conv2d_plan(x_shape, w_shape, out_shape, stride, padding, dilation, int groups):
    """Plan a standard/grouped/strided/dilated/pointwise conv (NCHW, weight OIHW).

    padding is ((top, bottom), (left, right)); only top/left place the taps, the rest
    is already in the output shape. A strided conv is planned on the input's phase
    planes: tap row offset dy = kh*dilation - top = sh*q + a reads plane row a, at grid
    row i + q, with unit stride.
    """
    N, C_in, H, W = x_shape
    C_out, Cg, KH, KW = w_shape
    _, _, H_out, W_out = out_shape
    M = C_out // groups
    sh, sw = stride
    tap_kh = np.repeat(np.arange(KH, dtype=np.intp), KW)
    tap_kw = np.tile(np.arange(KW, dtype=np.intp), KH)
    tap_dy = tap_kh * dilation[0] - padding[0][0]
    tap_dx = tap_kw * dilation[1] - padding[1][0]
    phases = [[H_out, W_out, 0, W_out, 1, 0, KH * KW]]
    aoff = _weight_offsets(tap_kh, tap_kw, Cg, KW, KH * KW, KW)
    lda = Cg * KH * KW
    tap_base = polyphase = None
    C_img = C_in
    if (sh, sw) != (1, 1):
        row_phase, col_phase = tap_dy % sh, tap_dx % sw
        used = sorted(set(zip(row_phase.tolist(), col_phase.tolist())))
        index = {ab: p for p, ab in enumerate(used)}
        H, W = -(-H // sh), -(-W // sw)
        tap_base = np.array([index[ab] * C_in * H * W
                             for ab in zip(row_phase.tolist(), col_phase.tolist())],
                            dtype=np.intp)
        tap_dy, tap_dx = tap_dy // sh, tap_dx // sw
        polyphase = (sh, sw, used)
        C_img = len(used) * C_in
        sh = sw = 1
    prefer_packed = _packing_pays(N * H_out * W_out, KH * KW == 1)
    plan = Plan(N, C_img, H, W, groups, M, H_out * W_out, sh, sw, lda, M * lda, aoff, tap_dy,
                tap_dx, phases, (tap_kh * KW + tap_kw, KH * KW), prefer_packed,
                tap_base=tap_base, polyphase=polyphase, Cg=Cg)
    return plan


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


def conv_transpose2d_plan(x_shape, w_shape, out_shape, stride, padding, dilation,
                          int groups):
    """Plan a transposed conv as a gather over output phases; weight (C_in, C_out/g, kh, kw)."""
    N, C_in, H, W = x_shape
    _, M, KH, KW = w_shape
    _, C_out, H_out, W_out = out_shape
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
    tap_kh = np.asarray(tap_kh, dtype=np.intp)
    tap_kw = np.asarray(tap_kw, dtype=np.intp)
    # Weight element (m, tap, c) of group g: w[g*Cg + c, m, kh, kw].
    aoff = _weight_offsets(tap_kh, tap_kw, Cg, KW, M * KH * KW, KW)
    # Eight consecutive output channels of one tap lie KH*KW apart: up to 2x2 kernels
    # they share a cache line or two and read well in place; with larger kernels each k
    # touches eight lines, and every phase refetches them for its own taps (DCGAN's
    # 512 -> 256, 4x4 -> 8x8: 5.3 ms in place, 1.6 ms packed per call, 0.85 ms with the
    # weights packed once), so those are always packed.
    uses_per_weight = N * max(h * w for h, w, *_ in phases) if phases else 0
    prefer_packed = KH * KW > 4 or _packing_pays(uses_per_weight, False)
    return Plan(N, C_in, H, W, groups, M, H_out * W_out, 1, 1, KH * KW, Cg * M * KH * KW,
                aoff, tap_dy, tap_dx, phases, (tap_kh * KW + tap_kw, M * KH * KW),
                prefer_packed)
