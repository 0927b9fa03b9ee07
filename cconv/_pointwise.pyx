# cython: language_level=3
"""Pointwise (1x1) convolution as a GEMM in register tiles (AVX2 6 x 16, AVX-512 12 x 32),
the input read in place.

Design note
-----------
* Problem: per image and group, ``out[m, p] = init[m] + sum_k w[m, k] * x[k, p]`` with M
  output channels, K input channels and P = H * W positions (a strided 1x1 conv first
  copies the positions it reads into a dense input; ``init`` is the bias or zero).
* Layout: NCHW in and out. B row k is input plane k, read where it lies: a tile's nr
  positions of row k (two vectors: AVX2 16 float32 / 8 float64, AVX-512 32 / 16) are at
  ``x + k * P + p``. A is the weight matrix as given, (M, K) per group, read in place:
  ROWS (6 or 12) row streams per tile, one broadcast from each per k. (Packing A as
  [tile][k][6] cost 90 us per call for 512 x 512 weights, 7% of that layer, and ran no
  faster.)
* Micro-kernel: 6 channels x 2 vectors, 12 accumulators (of AVX2's 16 registers: two B
  vectors and a broadcast take three more), over a whole K-block of up to KC = 512 k
  in registers, then written straight into the output rows: ``out = init + acc`` for
  the first K-block, ``out += acc`` after. No partial sums through memory, no C buffer,
  no transposes (the implicit-GEMM engine's tiles hold 32 or more accumulators and run
  on AVX2 as sub-tiles whose partial sums go through memory every 64 k; the channel
  tiles also transpose on the way out). The shape is BLIS's AVX2 sgemm kernel's.
  Measured here, float32, one thread, 1x1 256 -> 64 on 56x56: 96% of the FMA peak in
  a C test of this loop nest, against 78% for the engine's channel tiles.
  With AVX-512 (32 registers) the tile is 12 channels x 2 vectors of 16 lanes (24
  accumulators, BLIS's AVX-512 sgemm shape turned round): half the B loads per FMA of
  6 x 2. float32, one thread, on a Xeon with two 512-bit FMA units: 1x1 256 -> 256 on
  28x28 at 183 GFLOP/s against the 6 x 2 zmm tile's 181 and the GEMM engine's 125;
  1x1 256 -> 64 on 56x56 (the input from L3) at 141-158. In a C test with all its
  data in L1 this loop nest ran at 80-90% of that machine's FMA peak in two runs (8 x 3
  and 6 x 4 tiles and packed A the same within that noise); packing A for the 1x1
  layers measured +1-5% on one thread and -4% on two (a serial pass), so it is not done.
* Blocking: position tile by position tile, every channel tile in turn: the tile's B
  rows (a K-block x 64 or 128 bytes, 16-64 KiB) stay in L1 (or L2) while A (M x
  K-block) streams from L2; the next tile's rows are prefetched into L2 meanwhile.
  Splitting M into chunks that keep A in L2 measured no faster (512 -> 512 at 14x14,
  1024 -> 1024).
* Alignment and edges: where a plane is a whole number of cache lines, the tiles are
  placed (after a head tile of the first few positions) so that every B row they read
  starts a line: rows straddling two lines ran at 80% of the speed (numpy's arrays
  start 16 bytes into a line). Otherwise, and for the partial head and last tiles, a
  tile's rows are first copied into an aligned, zero-filled panel (nothing is read
  past the input); a partial tile runs one vector or two into a small tile whose valid
  columns are then written. The channels are split evenly over the channel tiles (the
  kernel's R-row copies for R < ROWS), not ROWS at a time with a short last tile.
* Parallel axis: work items (image and group, a run of position tiles, a range of
  channel tiles), statically scheduled; each output is written by one item. Each
  output is the same sum in the same order whatever the items or the thread count:
  init plus, per K-block in order, one FMA per k in k order from zero; the implicit-
  GEMM engine sums the same way, so the two give the same bits.
* The same tiles over the implicit-GEMM engine's source planes (``direct_forward``,
  ``Algorithm.DIRECT_TILES``: convs of few input channels, the first layer of an image
  network; non-overlapping up-convs; float64's GEMM-like layers; one call per output
  phase): B row k of grid point (i, j) lies at ``src + boff[k] + i * pitch + j``
  in the plan's zero-bordered (phase) planes; a position tile is up to nr columns of one
  output row (a phase's columns are stride_w apart in the output: written through the
  small tile); its K-block of rows is copied into an aligned panel first (each tap's
  rows sit at their own alignment), and the weights are reordered to the plan's
  tap-major k.
"""

import numpy as np
from cython cimport floating
from cython.parallel cimport prange, parallel

from cconv._common cimport (scratch_alloc, free, memcpy, effective_threads, cconv_prefetch_l2,
                            store_stride2)
from cconv._microkernel cimport KC


# Which intrinsics this build runs the kernels below with: "avx512" (16-lane vectors,
# 12-row tiles), "avx2" (AVX2 and FMA: 8 lanes, 6 rows), or None (plain loops: 1x1
# convs then stay on the GEMM engine, see select_algorithm, unless a test forces these).
TILE_ISA = {2: "avx512", 1: "avx2"}.get(CCONV_PW_ISA)


cdef extern from *:
    """
    /* C[R x V vectors] = (init ? init[i] : C) + A[R x kc] * B[kc x V vectors]: A rows
       lda apart (the weights as given), B rows ldb apart, C rows ldc apart. */
    #if CCONV_FMA_INTRINSICS
    /* One k: acc[i][v] += a[i * lda] * b[v * L ..], then a and b to the next k. */
    #define CCONV_PW_STEP(VT, L, LOADU, BCAST, FMADD, R, V)                                \\
        {                                                                                  \\
            VT bv[V];                                                                      \\
            CCONV_UNROLL for (Py_ssize_t v = 0; v < V; v++) {                              \\
                bv[v] = LOADU(b + v * L);                                                  \\
                CCONV_IN_REGISTER(bv[v]);                                                  \\
            }                                                                              \\
            CCONV_UNROLL for (Py_ssize_t i = 0; i < R; i++) {                              \\
                VT ai = BCAST(a + i * lda);                                                \\
                CCONV_UNROLL for (Py_ssize_t v = 0; v < V; v++)                            \\
                    acc[i][v] = FMADD(ai, bv[v], acc[i][v]);                               \\
            }                                                                              \\
            a += 1;                                                                        \\
            b += ldb;                                                                      \\
        }
    /* The first pfn k also prefetch a row each, in a loop of their own (with a test
       per k in one loop, 28x28 and 14x14 1x1 layers, which prefetch little per
       channel tile, measured 3-5% slower, within this machine's noise). */
    #define CCONV_PW_KERNEL(SFX, T, VT, L, LOADU, STOREU, ZERO, BCAST, FMADD, ADD, SET1,    \\
                            R, V)                                                          \\
    static void cconv_pw_##SFX##_##R##x##V(Py_ssize_t kc, const T* restrict a,             \\
            Py_ssize_t lda, const T* restrict b, Py_ssize_t ldb, T* restrict c,            \\
            Py_ssize_t ldc, const T* restrict init, const T* pf, Py_ssize_t pfld,          \\
            Py_ssize_t pfn) {                                                              \\
        VT acc[R][V];                                                                      \\
        CCONV_UNROLL for (Py_ssize_t i = 0; i < R; i++)                                    \\
            CCONV_UNROLL for (Py_ssize_t v = 0; v < V; v++) acc[i][v] = ZERO();            \\
        Py_ssize_t k = 0, kpf = pfn < kc ? pfn : kc;                                       \\
        CCONV_UNROLL_K for (; k < kpf; k++) {                                              \\
            cconv_prefetch_l2(pf + k * pfld);                                              \\
            cconv_prefetch_l2(pf + k * pfld + 2 * L - 1);                                  \\
            CCONV_PW_STEP(VT, L, LOADU, BCAST, FMADD, R, V)                                \\
        }                                                                                  \\
        CCONV_UNROLL_K for (; k < kc; k++)                                                 \\
            CCONV_PW_STEP(VT, L, LOADU, BCAST, FMADD, R, V)                                \\
        CCONV_UNROLL for (Py_ssize_t i = 0; i < R; i++)                                    \\
            CCONV_UNROLL for (Py_ssize_t v = 0; v < V; v++) {                              \\
                T* ci = c + i * ldc + v * L;                                               \\
                STOREU(ci, ADD(init ? SET1(init[i]) : LOADU(ci), acc[i][v]));              \\
            }                                                                              \\
    }
    #if defined(__AVX512F__)
    /* 16 float32 / 8 float64 lanes a vector: a tile is 32 / 16 positions. */
    #define CCONV_PW_NR_F32 32
    #define CCONV_PW_NR_F64 16
    #define CCONV_PW_ROWS 12
    #define CCONV_PW_ISA 2
    static inline __m512 cconv_bcast_ps512(const float* p) { return _mm512_set1_ps(*p); }
    static inline __m512d cconv_bcast_pd512(const double* p) { return _mm512_set1_pd(*p); }
    #define CCONV_PW_F32(R, V) CCONV_PW_KERNEL(f32, float, __m512, 16, _mm512_loadu_ps,    \\
        _mm512_storeu_ps, _mm512_setzero_ps, cconv_bcast_ps512, _mm512_fmadd_ps,           \\
        _mm512_add_ps, _mm512_set1_ps, R, V)
    #define CCONV_PW_F64(R, V) CCONV_PW_KERNEL(f64, double, __m512d, 8, _mm512_loadu_pd,   \\
        _mm512_storeu_pd, _mm512_setzero_pd, cconv_bcast_pd512, _mm512_fmadd_pd,           \\
        _mm512_add_pd, _mm512_set1_pd, R, V)
    #else
    #define CCONV_PW_NR_F32 16
    #define CCONV_PW_NR_F64 8
    #define CCONV_PW_ROWS 6
    #define CCONV_PW_ISA 1
    #define CCONV_PW_F32(R, V) CCONV_PW_KERNEL(f32, float, __m256, 8, _mm256_loadu_ps,     \\
        _mm256_storeu_ps, _mm256_setzero_ps, _mm256_broadcast_ss, _mm256_fmadd_ps,         \\
        _mm256_add_ps, _mm256_set1_ps, R, V)
    #define CCONV_PW_F64(R, V) CCONV_PW_KERNEL(f64, double, __m256d, 4, _mm256_loadu_pd,   \\
        _mm256_storeu_pd, _mm256_setzero_pd, _mm256_broadcast_sd, _mm256_fmadd_pd,         \\
        _mm256_add_pd, _mm256_set1_pd, R, V)
    #endif
    #else
    /* Plain loops (gcc vectorises the columns) where there is no FMA: mul + add, as
       in every plain loop of such a build: the same sums in the same order. */
    #define CCONV_PW_NR_F32 16
    #define CCONV_PW_NR_F64 8
    #define CCONV_PW_ROWS 6
    #define CCONV_PW_ISA 0
    #define CCONV_PW_PLAIN(SFX, T, L, R, V)                                                \\
    static void cconv_pw_##SFX##_##R##x##V(Py_ssize_t kc, const T* restrict a,             \\
            Py_ssize_t lda, const T* restrict b, Py_ssize_t ldb, T* restrict c,            \\
            Py_ssize_t ldc, const T* restrict init, const T* pf, Py_ssize_t pfld,          \\
            Py_ssize_t pfn) {                                                              \\
        T acc[R][V * L];                                                                   \\
        for (Py_ssize_t i = 0; i < R; i++)                                                 \\
            for (Py_ssize_t j = 0; j < V * L; j++) acc[i][j] = 0;                          \\
        for (Py_ssize_t k = 0; k < kc; k++)                                                \\
            for (Py_ssize_t i = 0; i < R; i++) {                                           \\
                T ai = a[i * lda + k];                                                     \\
                for (Py_ssize_t j = 0; j < V * L; j++) acc[i][j] += ai * b[k * ldb + j];   \\
            }                                                                              \\
        for (Py_ssize_t i = 0; i < R; i++)                                                 \\
            for (Py_ssize_t j = 0; j < V * L; j++)                                         \\
                c[i * ldc + j] = (init ? init[i] : c[i * ldc + j]) + acc[i][j];            \\
    }
    #define CCONV_PW_F32(R, V) CCONV_PW_PLAIN(f32, float, 8, R, V)
    #define CCONV_PW_F64(R, V) CCONV_PW_PLAIN(f64, double, 4, R, V)
    #endif
    #define CCONV_PW_ROWS6(DT, V) DT(1, V) DT(2, V) DT(3, V) DT(4, V) DT(5, V) DT(6, V)
    #define CCONV_PW_ROWS12(DT, V) CCONV_PW_ROWS6(DT, V) DT(7, V) DT(8, V) DT(9, V)     \\
                                   DT(10, V) DT(11, V) DT(12, V)
    #define CCONV_PW_NAME(SFX, R, V) cconv_pw_##SFX##_##R##x##V,
    #define CCONV_PW_NAME_F32(R, V) CCONV_PW_NAME(f32, R, V)
    #define CCONV_PW_NAME_F64(R, V) CCONV_PW_NAME(f64, R, V)
    #if CCONV_PW_ROWS == 12
    #define CCONV_PW_EACH_ROWS CCONV_PW_ROWS12
    #else
    #define CCONV_PW_EACH_ROWS CCONV_PW_ROWS6
    #endif
    CCONV_PW_EACH_ROWS(CCONV_PW_F32, 1) CCONV_PW_EACH_ROWS(CCONV_PW_F32, 2)
    CCONV_PW_EACH_ROWS(CCONV_PW_F64, 1) CCONV_PW_EACH_ROWS(CCONV_PW_F64, 2)
    #define CCONV_PW_TABLE(SFX, T, NAMES)                                                  \\
    typedef void (*cconv_pw_##SFX##_t)(Py_ssize_t, const T*, Py_ssize_t, const T*,         \\
                                       Py_ssize_t, T*, Py_ssize_t, const T*, const T*,     \\
                                       Py_ssize_t, Py_ssize_t);                            \\
    static const cconv_pw_##SFX##_t cconv_pw_##SFX##_table[2][CCONV_PW_ROWS + 1] = {      \\
        {0, CCONV_PW_EACH_ROWS(NAMES, 1)}, {0, CCONV_PW_EACH_ROWS(NAMES, 2)}};             \\
    /* rows 1 .. CCONV_PW_ROWS of a channel tile, vectors 1 or 2 of positions; the     \\
       first pfn k also prefetch into L2 the tile-wide row at pf + k * pfld */            \\
    static inline void cconv_pw_##SFX(Py_ssize_t rows, Py_ssize_t vectors,              \\
            Py_ssize_t kc, const T* a, Py_ssize_t lda, const T* b, Py_ssize_t ldb, T* c,   \\
            Py_ssize_t ldc, const T* init, const T* pf, Py_ssize_t pfld, Py_ssize_t pfn) { \\
        cconv_pw_##SFX##_table[vectors - 1][rows](kc, a, lda, b, ldb, c, ldc, init, pf,   \\
                                                  pfld, pfn);                              \\
    }
    CCONV_PW_TABLE(f32, float, CCONV_PW_NAME_F32)
    CCONV_PW_TABLE(f64, double, CCONV_PW_NAME_F64)
    """
    const Py_ssize_t CCONV_PW_NR_F32, CCONV_PW_NR_F64, CCONV_PW_ISA
    const Py_ssize_t ROWS "CCONV_PW_ROWS"   # output channels per register tile
    void cconv_pw_f32(Py_ssize_t rows, Py_ssize_t vectors, Py_ssize_t kc, const float* a,
                      Py_ssize_t lda, const float* b, Py_ssize_t ldb, float* c,
                      Py_ssize_t ldc, const float* init, const float* pf, Py_ssize_t pfld,
                      Py_ssize_t pfn) noexcept nogil
    void cconv_pw_f64(Py_ssize_t rows, Py_ssize_t vectors, Py_ssize_t kc, const double* a,
                      Py_ssize_t lda, const double* b, Py_ssize_t ldb, double* c,
                      Py_ssize_t ldc, const double* init, const double* pf,
                      Py_ssize_t pfld, Py_ssize_t pfn) noexcept nogil


cdef inline void tile_kernel(Py_ssize_t rows, Py_ssize_t vectors, Py_ssize_t kc,
                             const floating* a, Py_ssize_t lda, const floating* b,
                             Py_ssize_t ldb, floating* c, Py_ssize_t ldc,
                             const floating* init, const floating* pf, Py_ssize_t pfld,
                             Py_ssize_t pfn) noexcept nogil:
    if floating is float:
        cconv_pw_f32(rows, vectors, kc, a, lda, b, ldb, c, ldc, init, pf, pfld, pfn)
    else:
        cconv_pw_f64(rows, vectors, kc, a, lda, b, ldb, c, ldc, init, pf, pfld, pfn)


cdef inline void channel_tile(const floating* a, Py_ssize_t lda, Py_ssize_t kc,
                              const floating* b, Py_ssize_t ldb, floating* c, Py_ssize_t ldc,
                              Py_ssize_t dcs, Py_ssize_t n, Py_ssize_t rows,
                              const floating* init, floating* tile,
                              const floating* pf=NULL, Py_ssize_t pfld=0,
                              Py_ssize_t pfn=0) noexcept nogil:
    """One channel tile (rows <= ROWS rows of A from a, lda apart) times one position
    tile of n positions (B rows ldb apart, n <= nr values each) into C rows ldc apart,
    columns dcs apart: c = init + the product when init is given, else c += it. A tile
    of fewer positions, or of spread columns, goes through `tile`, so that only its n
    columns of C are read and written. With no k at all, c = init as it is (init + 0
    would turn a -0 bias into +0). The first pfn k also prefetch the rows at pf + k *
    pfld (the next position tile's) into L2."""
    cdef Py_ssize_t nr = CCONV_PW_NR_F32 if floating is float else CCONV_PW_NR_F64
    cdef Py_ssize_t vectors = 2 if n > nr // 2 else 1
    cdef Py_ssize_t i, q
    if kc == 0 and init != NULL:
        for i in range(rows):
            for q in range(n):
                c[i * ldc + q * dcs] = init[i]
        return
    if n == nr and dcs == 1:
        tile_kernel(rows, vectors, kc, a, lda, b, ldb, c, ldc, init, pf, pfld, pfn)
        return
    if init == NULL:
        for i in range(rows):
            for q in range(n):
                tile[i * nr + q] = c[i * ldc + q * dcs]
    tile_kernel(rows, vectors, kc, a, lda, b, ldb, tile, nr, init, pf, pfld, pfn)
    if dcs == 2:
        # A stride-2 transposed conv's phase: vectorised (AVX-512) against the copy
        # below, switched in one process, DCGAN's 128 -> 64 7-9% and U-Net's 2x2
        # up-conv 14-15% faster (measured with an equivalent permute form).
        for i in range(rows):
            store_stride2(c + i * ldc, tile + i * nr, n)
        return
    for i in range(rows):
        for q in range(n):
            c[i * ldc + q * dcs] = tile[i * nr + q]


cdef inline void panel_row(floating* row, const floating* src, Py_ssize_t n) noexcept nogil:
    """A panel row: n values from src, then zeros to the tile's width (nothing past
    src + n is read)."""
    cdef Py_ssize_t nr = CCONV_PW_NR_F32 if floating is float else CCONV_PW_NR_F64
    cdef Py_ssize_t q
    if n == nr:
        memcpy(row, src, nr * sizeof(floating))
        return
    for q in range(nr):
        row[q] = src[q] if q < n else 0


cdef inline Py_ssize_t tile_row(Py_ssize_t mt, Py_ssize_t M, Py_ssize_t mtiles) noexcept nogil:
    """First output channel of channel tile mt: the M channels split evenly over the
    mtiles = ceil(M / ROWS) tiles (64 channels as 11, 11, 11, 11, 10, 10 rows, not five
    of 12 and a 4-row tile whose 8 accumulators leave the FMA units waiting on their
    latency). Measured against ROWS-first tiles, interleaved, float32, AVX-512: DCGAN's
    512 -> 256 (16 channels as 8 + 8) 5-10% faster, the 1x1 layers 1-3%, the stem even."""
    return mt * M // mtiles


cdef inline Py_ssize_t tile_start(Py_ssize_t t, Py_ssize_t head, Py_ssize_t nr) noexcept nogil:
    """First position of tile t: tile 0 is [0, head) when head > 0, the rest nr wide."""
    if head == 0:
        return t * nr
    return 0 if t == 0 else head + (t - 1) * nr


cdef void pointwise_item(const floating* x, floating* out, const floating* w,
                         const floating* init, Py_ssize_t K, Py_ssize_t P, Py_ssize_t M,
                         Py_ssize_t head, bint in_place, Py_ssize_t t0, Py_ssize_t t1,
                         Py_ssize_t mt0, Py_ssize_t mt1, floating* panel,
                         floating* tile) noexcept nogil:
    """Position tiles [t0, t1) x channel tiles [mt0, mt1) of one image and group: x its
    K input planes (P values apart), out its M output planes, w its (M, K) weights,
    init its M rows' starting values (rounded up to whole channel tiles). Tiles start
    after a head of `head` positions (so that, with in_place, every whole tile's B rows
    are cache-line aligned and read where they lie); a partial tile, or every tile
    without in_place, is first copied into a zero-filled panel."""
    # positions per tile
    cdef Py_ssize_t nr = CCONV_PW_NR_F32 if floating is float else CCONV_PW_NR_F64
    cdef Py_ssize_t t, p0, n, k0, kc, mt, r, p_next, pf, pf_end, pf_step, m0
    cdef Py_ssize_t mtiles = (M + ROWS - 1) // ROWS
    cdef bint first, whole
    cdef const floating* b
    cdef Py_ssize_t ldb
    for t in range(t0, t1):
        p0 = tile_start(t, head, nr)
        n = tile_start(t + 1, head, nr) - p0
        if n > P - p0:
            n = P - p0
        whole = n == nr
        k0 = 0
        first = True
        while first or k0 < K:
            kc = K - k0 if K - k0 < KC else KC
            if whole and in_place:
                b = x + k0 * P + p0
                ldb = P
            else:
                # Rows straddling cache lines ran at 80% of the aligned speed (two lines
                # per row); a partial tile must not read past the input.
                for r in range(kc):
                    panel_row(panel + r * nr, x + (k0 + r) * P + p0, n)
                b = panel
                ldb = nr
            # The next tile's rows of this K-block into L2 while this one computes, a
            # share during each channel tile, one row per k (its first and last value)
            # inside the kernel's loop: a tile reads kc rows of different planes, more
            # streams than the hardware prefetchers follow (the batch-8 1x1 256 -> 64
            # on 56x56, 26 MB of input, ran no faster on two threads than on one), and
            # a burst of prefetches before each channel tile (up to 86 lines with
            # 12-row tiles) stalled on the line fill buffers.
            p_next = tile_start(t + 1, head, nr)
            pf = 0
            pf_end = kc if t + 1 < t1 else 0
            pf_step = (kc + (mt1 - mt0) - 1) // (mt1 - mt0)
            for mt in range(mt0, mt1):
                r = pf + pf_step if pf + pf_step < pf_end else pf_end
                m0 = tile_row(mt, M, mtiles)
                channel_tile(w + m0 * K + k0, K, kc, b, ldb, out + m0 * P + p0,
                             P, 1, n, tile_row(mt + 1, M, mtiles) - m0,
                             init + m0 if first else NULL,
                             tile, x + (k0 + pf) * P + p_next, P, r - pf if r > pf else 0)
                pf = r
            k0 += kc
            first = False


def _init_rows(bias, Py_ssize_t G, Py_ssize_t M, Py_ssize_t mtiles, dtype):
    """Each group's output channels' starting values (the bias, or zeros), rounded up
    to whole channel tiles."""
    init = np.zeros((G, mtiles * ROWS), dtype=dtype)
    if bias is not None:
        init[:, :M] = np.asarray(bias).reshape(G, M)
    return init.reshape(-1)


def _items(Py_ssize_t igs, Py_ssize_t ptiles, Py_ssize_t mtiles, int n_threads):
    """How a call's work is cut into items: (runs, position tiles per run, ranges,
    channel tiles per range) per image and group. Position tiles in runs, at least two
    runs per thread over the batch; where there are few position tiles, the channel
    tiles in ranges instead (each thread then reads every B tile, but the work is even:
    512 -> 512 on 14x14 is 13 tiles)."""
    cdef Py_ssize_t runs = min((2 * n_threads + igs - 1) // igs, ptiles)
    cdef Py_ssize_t splits = 1
    if igs * ptiles < 8 * n_threads:
        runs = 1
        splits = min(n_threads, mtiles)
    cdef Py_ssize_t per_run = (ptiles + runs - 1) // runs
    cdef Py_ssize_t per_split = (mtiles + splits - 1) // splits
    return ((ptiles + per_run - 1) // per_run, per_run, (mtiles + per_split - 1) // per_split,
            per_split)


cdef void direct_item(const floating* src, floating* out, const floating* w,
                      Py_ssize_t lda, const floating* init, const Py_ssize_t* boff,
                      Py_ssize_t K, Py_ssize_t M, Py_ssize_t wg, Py_ssize_t pitch,
                      Py_ssize_t drs, Py_ssize_t dcs, Py_ssize_t out_plane, Py_ssize_t t0,
                      Py_ssize_t t1, Py_ssize_t mt0, Py_ssize_t mt1, floating* panel,
                      floating* tile) noexcept nogil:
    """Position tiles [t0, t1) x channel tiles [mt0, mt1) of one image and group of a
    direct plan (w its M weight rows, lda apart): tile t is grid row t // per_row,
    columns from (t % per_row) * nr up to wg; B row k of grid point (i, j) at src +
    boff[k] + i * pitch + j;
    the output point at out + i * drs + j * dcs, output planes out_plane apart."""
    cdef Py_ssize_t nr = CCONV_PW_NR_F32 if floating is float else CCONV_PW_NR_F64
    cdef Py_ssize_t per_row = (wg + nr - 1) // nr
    cdef Py_ssize_t t, gi, j0, n, k0, kc, mt, r, m0
    cdef Py_ssize_t mtiles = (M + ROWS - 1) // ROWS
    cdef bint first
    for t in range(t0, t1):
        gi = t // per_row
        j0 = (t - gi * per_row) * nr
        n = wg - j0 if wg - j0 < nr else nr
        k0 = 0
        first = True
        while first or k0 < K:
            kc = K - k0 if K - k0 < KC else KC
            # The tile's B rows lie at a different alignment per tap: copied into an
            # aligned panel (rows straddling cache lines ran at 80% of the aligned speed).
            for r in range(kc):
                panel_row(panel + r * nr, src + boff[k0 + r] + gi * pitch + j0, n)
            for mt in range(mt0, mt1):
                m0 = tile_row(mt, M, mtiles)
                channel_tile(w + m0 * lda + k0, lda, kc, panel, nr,
                             out + m0 * out_plane + gi * drs + j0 * dcs, out_plane,
                             dcs, n, tile_row(mt + 1, M, mtiles) - m0,
                             init + m0 if first else NULL,
                             tile)
            k0 += kc
            first = False


cdef struct Tiles:
    # One call's work: what every item shares (arrays of the call's dtype, which
    # run_tiles reads them as).
    bint direct              # direct_item (one phase of a direct plan), else pointwise_item
    const void* x            # the input, or the plan's source planes
    void* out
    const void* w            # (G * M, lda): a group's M rows, K weights each
    const void* init         # G x mtiles * ROWS starting values
    const Py_ssize_t* boff   # direct: B row offsets
    Py_ssize_t G, M, K, lda, mtiles, ptiles, runs, per_run, splits, per_split
    Py_ssize_t x_image, x_group  # values from one image's / group's x to the next
    Py_ssize_t out_plane, dst0
    Py_ssize_t P, head       # pointwise: positions, head tile
    bint in_place
    Py_ssize_t wg, pitch, drs, dcs  # direct: the phase's grid and output steps


cdef int run_tiles(const Tiles* job, Py_ssize_t n_items, int n_threads,
                   floating dtype_tag) noexcept nogil:
    """Every item of a call (static schedule; per-thread panel and tile); 1 if scratch
    memory could not be had, else 0. (dtype_tag only picks the dtype.)"""
    cdef Py_ssize_t nr = CCONV_PW_NR_F32 if floating is float else CCONV_PW_NR_F64
    cdef const floating* x = <const floating*> job.x
    cdef floating* out = <floating*> job.out
    cdef const floating* w = <const floating*> job.w
    cdef const floating* init = <const floating*> job.init
    cdef Py_ssize_t item, ig, rest, run, split, t0, t1, mt0, mt1, n, g
    cdef floating* panel
    cdef floating* tile
    cdef floating* out_ig
    cdef int failed = 0
    cdef int* failed_flag = &failed
    with parallel(num_threads=n_threads):
        panel = <floating*> scratch_alloc(KC * nr * sizeof(floating))
        tile = <floating*> scratch_alloc(ROWS * nr * sizeof(floating))
        for item in prange(n_items, schedule="static"):
            if panel == NULL or tile == NULL:
                failed_flag[0] = 1
                continue
            split = item % job.splits
            rest = item // job.splits
            run = rest % job.runs
            ig = rest // job.runs
            n = ig // job.G
            g = ig - n * job.G
            t0 = run * job.per_run
            t1 = t0 + job.per_run if t0 + job.per_run < job.ptiles else job.ptiles
            mt0 = split * job.per_split
            mt1 = mt0 + job.per_split if mt0 + job.per_split < job.mtiles else job.mtiles
            out_ig = out + ig * job.M * job.out_plane + job.dst0
            if job.direct:
                direct_item(x + n * job.x_image + g * job.x_group, out_ig,
                            w + g * job.M * job.lda, job.lda,
                            init + g * job.mtiles * ROWS, job.boff,
                            job.K, job.M, job.wg, job.pitch, job.drs, job.dcs,
                            job.out_plane, t0, t1, mt0, mt1, panel, tile)
            else:
                pointwise_item(x + n * job.x_image + g * job.x_group, out_ig,
                               w + g * job.M * job.K, init + g * job.mtiles * ROWS, job.K,
                               job.P, job.M, job.head, job.in_place, t0, t1, mt0, mt1,
                               panel, tile)
        free(panel)
        free(tile)
    return failed


cdef object run_call(Tiles* job, Py_ssize_t N, const floating[::1] x, const floating[::1] w,
                     Py_ssize_t w_off, bias, floating[::1] out, int n_threads):
    """Fill in the pointers (the weights from w[w_off]), starting rows and work split
    of job, then run it."""
    cdef floating dtype_tag = 0
    # multiply-adds as the tiles compute them (whole tiles), for the thread cap
    cdef double macs = (<double> N * job.G * job.M * job.K * job.ptiles
                        * (CCONV_PW_NR_F32 if floating is float else CCONV_PW_NR_F64))
    job.x = &x[0] if x.shape[0] else NULL
    job.w = &w[w_off] if job.K else NULL
    job.out = &out[0]
    init_arr = _init_rows(bias, job.G, job.M, job.mtiles,
                          np.float32 if floating is float else np.float64)
    cdef const floating[::1] init = init_arr
    job.init = &init[0]
    n_threads = effective_threads(n_threads, N * job.G * job.ptiles * job.mtiles, macs)
    job.runs, job.per_run, job.splits, job.per_split = _items(N * job.G, job.ptiles,
                                                              job.mtiles, n_threads)
    cdef Py_ssize_t n_items = N * job.G * job.runs * job.splits
    cdef int failed
    with nogil:
        failed = run_tiles(job, n_items, n_threads, dtype_tag)
    if failed:
        raise MemoryError("cconv: could not allocate per-thread scratch memory")


def forward(const floating[::1] x, const floating[::1] w, bias, floating[::1] out,
            Py_ssize_t N, Py_ssize_t G, Py_ssize_t M, Py_ssize_t K, Py_ssize_t P,
            int n_threads):
    """out (N, G * M, P) = w (G * M, K) x x (N, G * K, P) + bias (or None), all flat
    C-contiguous arrays."""
    cdef Py_ssize_t nr = CCONV_PW_NR_F32 if floating is float else CCONV_PW_NR_F64
    cdef Tiles job
    if N * G * M * P == 0:
        return
    job.direct = False
    job.G, job.M, job.K, job.lda, job.P = G, M, K, K, P
    job.mtiles = (M + ROWS - 1) // ROWS
    job.x_image, job.x_group = G * K * P, K * P
    job.out_plane, job.dst0 = P, 0
    job.boff = NULL
    # Where every plane is a whole number of cache lines, the tiles are placed so that
    # their B rows are line-aligned (numpy's arrays start 16 bytes into a line) and read
    # in place; otherwise each tile is copied into an aligned panel first.
    cdef size_t address = <size_t> &x[0] if K else 0
    job.in_place = P % (64 // sizeof(floating)) == 0 and address % sizeof(floating) == 0
    job.head = ((64 - address % 64) % 64) // sizeof(floating) if job.in_place else 0
    job.ptiles = (1 if job.head else 0) + (P - job.head + nr - 1) // nr
    run_call(&job, N, x, w, 0, bias, out, n_threads)


def direct_forward(const floating[::1] src, const Py_ssize_t[::1] boff,
                   const floating[::1] w, Py_ssize_t w_off, Py_ssize_t lda, bias,
                   floating[::1] out, Py_ssize_t N,
                   Py_ssize_t G, Py_ssize_t M, Py_ssize_t src_image, Py_ssize_t src_group,
                   Py_ssize_t hg, Py_ssize_t wg, Py_ssize_t pitch, Py_ssize_t dst0,
                   Py_ssize_t drs, Py_ssize_t dcs, Py_ssize_t out_plane, int n_threads):
    """One phase of a direct implicit-GEMM plan on these tiles: out (N, G * M,
    out_plane) at dst0 + i * drs + j * dcs for grid point (i < hg, j < wg) = A (G * M,
    K) (k in the plan's order; row r at w[w_off + r * lda]: the phase's columns of
    tap_major_weights) x B + bias, B row k of grid point (i, j) at src + n *
    src_image + g * src_group + boff[k] + i * pitch + j (the plan's zero-bordered
    source planes)."""
    cdef Py_ssize_t nr = CCONV_PW_NR_F32 if floating is float else CCONV_PW_NR_F64
    cdef Tiles job
    job.ptiles = hg * ((wg + nr - 1) // nr)
    if N * G * M * job.ptiles == 0:
        return
    job.direct = True
    job.G, job.M, job.K, job.lda = G, M, boff.shape[0], lda
    job.mtiles = (M + ROWS - 1) // ROWS
    job.x_image, job.x_group = src_image, src_group
    job.out_plane, job.dst0 = out_plane, dst0
    job.boff = &boff[0] if job.K else NULL
    job.wg, job.pitch, job.drs, job.dcs = wg, pitch, drs, dcs
    run_call(&job, N, src, w, w_off, bias, out, n_threads)


def tap_major_weights(const floating[::1] w, const Py_ssize_t[::1] tap_off,
                      Py_ssize_t chan_stride, Py_ssize_t src_lda, Py_ssize_t src_group,
                      Py_ssize_t G, Py_ssize_t M, Py_ssize_t Cg, int n_threads):
    """A direct plan's weights for these tiles, A (G * M, T * Cg) with k = t * Cg + c
    (tap-major, the plan's order; each phase's taps a run of columns): A[g * M + m,
    t * Cg + c] = w[g * src_group + m * src_lda + c * chan_stride + tap_off[t]], w the
    weights as given (the plan's pack_spec strides). Row by row, channel by channel: a
    channel's taps share a cache line or two of w, and the row's T runs of Cg values
    stay in L1. (numpy's copy of the transposed view took 0.20 ms for DCGAN's 128 -> 64
    4x4 transposed weights, a cache line per value: 10% of that layer.)"""
    cdef Py_ssize_t T = tap_off.shape[0], K = T * Cg, row, g, m, c, t
    A = np.empty(G * M * K, dtype=np.float32 if floating is float else np.float64)
    cdef floating[::1] a_view = A
    if G * M * K == 0:
        return A
    cdef floating* a = &a_view[0]
    cdef const floating* src = &w[0]
    cdef const Py_ssize_t* toff = &tap_off[0]
    cdef const floating* s
    cdef floating* d
    n_threads = effective_threads(n_threads, G * M, <double> G * M * K)
    with nogil:
        for row in prange(G * M, schedule="static", num_threads=n_threads):
            g = row // M
            m = row - g * M
            s = src + g * src_group + m * src_lda
            d = a + row * K
            for c in range(Cg):
                for t in range(T):
                    d[t * Cg + c] = s[c * chan_stride + toff[t]]
    return A
