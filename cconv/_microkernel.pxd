# The GEMM micro-kernels, shared by the implicit-GEMM engine (_igemm.pyx) and the fused
# separable kernel (_separable.pyx). Inline, so each module compiles its own copy.
#
# C[MR x NR] += A[MR x kc] * B[kc x NR]: A row i is at a0 + i * lda, its k-th element at
# offset aoff[k] (weights are read in place, in whatever layout they have); B row k is
# at b + k * ldb, NR contiguous values; C is MR x NR row-major.

cdef enum:
    MR = 8          # output channels per micro-tile
    NR_F32 = 32     # positions per micro-tile, float32 (2 x 16 lanes)
    NR_F64 = 32     # positions per micro-tile, float64 (4 x 8 lanes)
    # k rows per GEMM K-block. One constant for every caller: the blocks fix the order in
    # which an output's sum is accumulated, and the fused and two-pass separable paths
    # (chosen by thread count) must give the same bits. 512 against 256: fewer passes
    # of the C blocks through memory, 1-4% faster on ASPP, 1-2% on 3x3 and 1x1 layers
    # of both dtypes, none slower beyond the noise (128 was 2-3% slower than 256).
    KC = 512


# AVX2 register tiles (16 ymm registers: machines without AVX-512, e.g. Zen 3). The
# portable kernels below keep an 8 x 32 float32 tile, 32 ymm vectors: gcc spills them
# and ran at 35-40% of the FMA peak there. Here a tile is computed as sub-tiles of at
# most 12 accumulators (6 rows x 2 vectors and 2 rows x 4, float32; 4 rows x 3 vectors
# of doubles), each over a chunk of KCH k: per chunk and sub-tile the partial sums are
# loaded from a local tile buffer, run through KCH FMAs each, and stored back. A
# partial sum is a float in a register or in memory alike, so every output still gets
# one FMA per k in k order from zero, then c += acc: the portable kernels' bits. The
# chunk's B rows (KCH x 128 bytes) stay in L1 for the sub-tiles after the first (a
# whole K-block's, 64 KiB, did not: its sub-tiles then streamed B from L2 each).
cdef extern from *:
    """
    #if defined(__AVX2__) && defined(__FMA__)
    /* AVX2 and FMA intrinsics (AVX-512 builds have them too): the register tiles of
       _pointwise.pyx use them on every such build, so that each product is fused into
       its sum as in the GEMM engine (their plain loops were not: on an AVX-512 build
       gcc's SLP vectoriser left one row of a 5-row tile as vmulss + vaddps, 1 ulp away
       from the GEMM engine's bits). */
    #include <immintrin.h>
    #define CCONV_FMA_INTRINSICS 1
    #define CCONV_UNROLL _Pragma("GCC unroll 16")
    /* The k loop unrolled by four: its per-k overhead (the B row's offset, the loop
       test) made a 6 x 2 sub-tile run at 68% of the peak with its data in L1, 82% so. */
    #define CCONV_UNROLL_K _Pragma("GCC unroll 4")
    /* Keeps a loaded vector in its register: gcc otherwise folds the load into every
       FMA that reads it as a memory operand (the channel-tiled tiles loaded each weight
       vector three times per k and were bound on the load ports at 57% of the peak). */
    #if defined(__GNUC__)
    #define CCONV_IN_REGISTER(v) __asm__("" : "+x"(v))
    #else
    #define CCONV_IN_REGISTER(v) ((void)0)
    #endif
    #else
    #define CCONV_FMA_INTRINSICS 0
    #endif

    #if CCONV_FMA_INTRINSICS && !defined(__AVX512F__)
    #define CCONV_GEMM_AVX2 1
    #define CCONV_KCH 64

    /* One sub-tile: acc[i][v] (R x V vectors of L lanes; partial sums at t + i * 32 +
       v * L) += broadcast(*(XS)) * (YV)[v * L ..] for k in [k0, k1), XS an expression
       in k and i, YV one in k. `first`: the partial sums start at zero. */
    #define CCONV_SUBTILE(NAME, T, VT, L, LOADU, LOADA, STOREA, ZERO, BCAST, FMADD,      \\
                          R, V, XS, YV, ...)                                             \\
    static inline __attribute__((always_inline)) void NAME(                             \\
            Py_ssize_t k0, Py_ssize_t k1, int first, T* restrict t, __VA_ARGS__) {      \\
        VT acc[R][V];                                                                   \\
        CCONV_UNROLL for (Py_ssize_t i = 0; i < R; i++)                                 \\
            CCONV_UNROLL for (Py_ssize_t v = 0; v < V; v++)                             \\
                acc[i][v] = first ? ZERO() : LOADA(t + i * 32 + v * L);                 \\
        CCONV_UNROLL_K for (Py_ssize_t k = k0; k < k1; k++) {                           \\
            const T* yk = (YV);                                                         \\
            VT yv[V];                                                                   \\
            CCONV_UNROLL for (Py_ssize_t v = 0; v < V; v++) {                           \\
                yv[v] = LOADU(yk + v * L);                                              \\
                CCONV_IN_REGISTER(yv[v]);                                               \\
            }                                                                           \\
            CCONV_UNROLL for (Py_ssize_t i = 0; i < R; i++) {                           \\
                VT xi = BCAST(XS);                                                      \\
                CCONV_UNROLL for (Py_ssize_t v = 0; v < V; v++)                         \\
                    acc[i][v] = FMADD(xi, yv[v], acc[i][v]);                            \\
            }                                                                           \\
        }                                                                               \\
        CCONV_UNROLL for (Py_ssize_t i = 0; i < R; i++)                                 \\
            CCONV_UNROLL for (Py_ssize_t v = 0; v < V; v++) STOREA(t + i * 32 + v * L, acc[i][v]); \\
    }
    #define CCONV_SUBTILE_F32(NAME, R, V, XS, YV, ...)                                  \\
        CCONV_SUBTILE(NAME, float, __m256, 8, _mm256_loadu_ps, _mm256_load_ps,          \\
                      _mm256_store_ps, _mm256_setzero_ps, _mm256_broadcast_ss,          \\
                      _mm256_fmadd_ps, R, V, XS, YV, __VA_ARGS__)
    #define CCONV_SUBTILE_F64(NAME, R, V, XS, YV, ...)                                  \\
        CCONV_SUBTILE(NAME, double, __m256d, 4, _mm256_loadu_pd, _mm256_load_pd,        \\
                      _mm256_store_pd, _mm256_setzero_pd, _mm256_broadcast_sd,          \\
                      _mm256_fmadd_pd, R, V, XS, YV, __VA_ARGS__)

    /* The GEMM tiles' three ways to reach A(k, i) and B row k: packed A ([k][MR]) with
       B rows ldb apart (a panel) or at b + boff[k] (in place), and A in place (row
       pointers ar[i], offset aoff[k]) with a B panel. */
    #define CCONV_GEMM_SUBTILES(SFX, SUB, RA, VA, RB, VB)                               \\
    SUB(cconv_sub_packed_a_##SFX, RA, VA, a + k * 8 + i, b + k * ldb,                   \\
        const SCALAR_##SFX* restrict a, const SCALAR_##SFX* restrict b, Py_ssize_t ldb) \\
    SUB(cconv_sub_packed_b_##SFX, RB, VB, a + k * 8 + i, b + k * ldb,                   \\
        const SCALAR_##SFX* restrict a, const SCALAR_##SFX* restrict b, Py_ssize_t ldb) \\
    SUB(cconv_sub_direct_a_##SFX, RA, VA, a + k * 8 + i, b + boff[k],                   \\
        const SCALAR_##SFX* restrict a, const SCALAR_##SFX* restrict b,                 \\
        const Py_ssize_t* restrict boff)                                                \\
    SUB(cconv_sub_direct_b_##SFX, RB, VB, a + k * 8 + i, b + boff[k],                   \\
        const SCALAR_##SFX* restrict a, const SCALAR_##SFX* restrict b,                 \\
        const Py_ssize_t* restrict boff)                                                \\
    SUB(cconv_sub_inplace_a_##SFX, RA, VA, ar[i] + aoff[k], b + k * ldb,                \\
        const SCALAR_##SFX* const* ar, const Py_ssize_t* restrict aoff,                 \\
        const SCALAR_##SFX* restrict b, Py_ssize_t ldb)                                 \\
    SUB(cconv_sub_inplace_b_##SFX, RB, VB, ar[i] + aoff[k], b + k * ldb,                \\
        const SCALAR_##SFX* const* ar, const Py_ssize_t* restrict aoff,                 \\
        const SCALAR_##SFX* restrict b, Py_ssize_t ldb)
    #define SCALAR_f32 float
    #define SCALAR_f64 double
    /* float32 8 x 32: rows 0-5 x vectors 0-1 and 2-3 (sub-tile a), rows 6-7 x all four
       (sub-tile b). float64 4 x 32 (8 vectors of 4): rows 0-3 x vectors 0-2 and 3-5
       (a), x 6-7 (b). */
    CCONV_GEMM_SUBTILES(f32, CCONV_SUBTILE_F32, 6, 2, 2, 4)
    CCONV_GEMM_SUBTILES(f64, CCONV_SUBTILE_F64, 4, 3, 4, 2)

    /* The chunk loop of a tile and its end: c = (add ? c : 0) + t. */
    #define CCONV_TILE_CHUNKS(T, N, BODY, c, add)                                      \\
        T t[N] __attribute__((aligned(32)));                                            \\
        for (Py_ssize_t k0 = 0; k0 < kc; k0 += CCONV_KCH) {                             \\
            Py_ssize_t k1 = k0 + CCONV_KCH < kc ? k0 + CCONV_KCH : kc;                  \\
            int first = k0 == 0;                                                        \\
            BODY                                                                        \\
        }                                                                               \\
        if (kc <= 0)                                                                    \\
            for (Py_ssize_t j = 0; j < N; j++) t[j] = 0;                                \\
        if (add)                                                                        \\
            for (Py_ssize_t j = 0; j < N; j++) c[j] += t[j];                            \\
        else                                                                            \\
            for (Py_ssize_t j = 0; j < N; j++) c[j] = 0 + t[j];

    static inline void cconv_avx2_packed_8x32_f32(Py_ssize_t kc, const float* a,
            const float* b, Py_ssize_t ldb, float* c, int add) {
        CCONV_TILE_CHUNKS(float, 256,
            cconv_sub_packed_a_f32(k0, k1, first, t, a, b, ldb);
            cconv_sub_packed_a_f32(k0, k1, first, t + 16, a, b + 16, ldb);
            cconv_sub_packed_b_f32(k0, k1, first, t + 6 * 32, a + 6, b, ldb);, c, add)
    }
    static inline void cconv_avx2_direct_8x32_f32(Py_ssize_t kc, const float* a,
            const float* b, const Py_ssize_t* boff, float* c) {
        CCONV_TILE_CHUNKS(float, 256,
            cconv_sub_direct_a_f32(k0, k1, first, t, a, b, boff);
            cconv_sub_direct_a_f32(k0, k1, first, t + 16, a, b + 16, boff);
            cconv_sub_direct_b_f32(k0, k1, first, t + 6 * 32, a + 6, b, boff);, c, 1)
    }
    static inline void cconv_avx2_inplace_8x32_f32(Py_ssize_t kc, const float* const* ar,
            const Py_ssize_t* aoff, const float* b, Py_ssize_t ldb, float* c) {
        CCONV_TILE_CHUNKS(float, 256,
            cconv_sub_inplace_a_f32(k0, k1, first, t, ar, aoff, b, ldb);
            cconv_sub_inplace_a_f32(k0, k1, first, t + 16, ar, aoff, b + 16, ldb);
            cconv_sub_inplace_b_f32(k0, k1, first, t + 6 * 32, ar + 6, aoff, b, ldb);, c, 1)
    }
    static inline void cconv_avx2_packed_4x32_f64(Py_ssize_t kc, const double* a,
            const double* b, Py_ssize_t ldb, double* c, int add) {
        CCONV_TILE_CHUNKS(double, 128,
            cconv_sub_packed_a_f64(k0, k1, first, t, a, b, ldb);
            cconv_sub_packed_a_f64(k0, k1, first, t + 12, a, b + 12, ldb);
            cconv_sub_packed_b_f64(k0, k1, first, t + 24, a, b + 24, ldb);, c, add)
    }
    static inline void cconv_avx2_direct_4x32_f64(Py_ssize_t kc, const double* a,
            const double* b, const Py_ssize_t* boff, double* c) {
        CCONV_TILE_CHUNKS(double, 128,
            cconv_sub_direct_a_f64(k0, k1, first, t, a, b, boff);
            cconv_sub_direct_a_f64(k0, k1, first, t + 12, a, b + 12, boff);
            cconv_sub_direct_b_f64(k0, k1, first, t + 24, a, b + 24, boff);, c, 1)
    }
    static inline void cconv_avx2_inplace_4x32_f64(Py_ssize_t kc, const double* const* ar,
            const Py_ssize_t* aoff, const double* b, Py_ssize_t ldb, double* c) {
        CCONV_TILE_CHUNKS(double, 128,
            cconv_sub_inplace_a_f64(k0, k1, first, t, ar, aoff, b, ldb);
            cconv_sub_inplace_a_f64(k0, k1, first, t + 12, ar, aoff, b + 12, ldb);
            cconv_sub_inplace_b_f64(k0, k1, first, t + 24, ar, aoff, b + 24, ldb);, c, 1)
    }
    #else
    #define CCONV_GEMM_AVX2 0
    /* Never called (CCONV_GEMM_AVX2 is 0): only so that the modules compile. */
    #define cconv_avx2_packed_8x32_f32(...) ((void)0)
    #define cconv_avx2_direct_8x32_f32(...) ((void)0)
    #define cconv_avx2_inplace_8x32_f32(...) ((void)0)
    #define cconv_avx2_packed_4x32_f64(...) ((void)0)
    #define cconv_avx2_direct_4x32_f64(...) ((void)0)
    #define cconv_avx2_inplace_4x32_f64(...) ((void)0)
    #endif
    """
    const int CCONV_GEMM_AVX2
    void cconv_avx2_packed_8x32_f32(Py_ssize_t kc, const float* a, const float* b,
                                    Py_ssize_t ldb, float* c, int add) noexcept nogil
    void cconv_avx2_direct_8x32_f32(Py_ssize_t kc, const float* a, const float* b,
                                    const Py_ssize_t* boff, float* c) noexcept nogil
    void cconv_avx2_inplace_8x32_f32(Py_ssize_t kc, const float* const* ar,
                                     const Py_ssize_t* aoff, const float* b, Py_ssize_t ldb,
                                     float* c) noexcept nogil
    void cconv_avx2_packed_4x32_f64(Py_ssize_t kc, const double* a, const double* b,
                                    Py_ssize_t ldb, double* c, int add) noexcept nogil
    void cconv_avx2_direct_4x32_f64(Py_ssize_t kc, const double* a, const double* b,
                                    const Py_ssize_t* boff, double* c) noexcept nogil
    void cconv_avx2_inplace_4x32_f64(Py_ssize_t kc, const double* const* ar,
                                     const Py_ssize_t* aoff, const double* b, Py_ssize_t ldb,
                                     double* c) noexcept nogil


# Micro-kernels. Written so that gcc fully unrolls the MR loop and vectorises the NR
# loop: 8 broadcasts of A and 16 FMAs per k, accumulators never leave registers. They
# start from zero and add into C at the end (loading C into the accumulators made gcc
# route it through memcpy and the stack). Weight rows past the last output channel are
# clamped to it: their results are computed and discarded.

cdef inline void microkernel_8x32_f32(Py_ssize_t kc, const float* a0, Py_ssize_t lda,
                                      Py_ssize_t rows, const Py_ssize_t* aoff,
                                      const float* b, Py_ssize_t ldb, float* c) noexcept nogil:
    cdef float acc[8][32]
    cdef const float* ar[8]
    cdef Py_ssize_t i, j, k, o
    cdef float ai
    for i in range(8):
        ar[i] = a0 + (i if i < rows else rows - 1) * lda
    if CCONV_GEMM_AVX2:
        cconv_avx2_inplace_8x32_f32(kc, ar, aoff, b, ldb, c)
        return
    for i in range(8):
        for j in range(32):
            acc[i][j] = 0
    for k in range(kc):
        o = aoff[k]
        for i in range(8):
            ai = ar[i][o]
            for j in range(32):
                acc[i][j] += ai * b[k * ldb + j]
    for i in range(8):
        for j in range(32):
            c[i * 32 + j] += acc[i][j]


cdef inline void microkernel_4x32_f64(Py_ssize_t kc, const double* a0, Py_ssize_t lda,
                                      Py_ssize_t rows, const Py_ssize_t* aoff,
                                      const double* b, Py_ssize_t ldb, double* c) noexcept nogil:
    # Four rows by 32 doubles (16 zmm accumulators). An 8 x 16 float64 tile would be the
    # same register budget, but gcc then vectorises across the eight rows (one zmm of
    # doubles) with a gather per k and ran at 8% of peak; with four rows it vectorises
    # the columns, as for float32.
    cdef double acc[4][32]
    cdef const double* ar[4]
    cdef Py_ssize_t i, j, k, o
    cdef double ai
    for i in range(4):
        ar[i] = a0 + (i if i < rows else rows - 1) * lda
    if CCONV_GEMM_AVX2:
        cconv_avx2_inplace_4x32_f64(kc, ar, aoff, b, ldb, c)
        return
    for i in range(4):
        for j in range(32):
            acc[i][j] = 0
    for k in range(kc):
        o = aoff[k]
        for i in range(4):
            ai = ar[i][o]
            for j in range(32):
                acc[i][j] += ai * b[k * ldb + j]
    for i in range(4):
        for j in range(32):
            c[i * 32 + j] += acc[i][j]


cdef inline void microkernel_8x32_f64(Py_ssize_t kc, const double* a0, Py_ssize_t lda,
                                      Py_ssize_t rows, const Py_ssize_t* aoff,
                                      const double* b, Py_ssize_t ldb, double* c) noexcept nogil:
    """An MR = 8 block of float64 as two 4 x 32 halves (the second is skipped when the
    block has only four rows or fewer: its results would be discarded)."""
    microkernel_4x32_f64(kc, a0, lda, rows if rows < 4 else 4, aoff, b, ldb, c)
    if rows > 4:
        microkernel_4x32_f64(kc, a0 + 4 * lda, lda, rows - 4, aoff, b, ldb, c + 4 * 32)


# Packed-A micro-kernels: A element (i, k) at a[k * astep + i] (weights packed as
# [block of MR channels][k][MR]). One pointer walks all eight rows, so the loop needs a
# handful of general registers; the in-place form above keeps eight row pointers and an
# offset, more than x86-64 has free, and gcc then parks two of them in vector registers
# and extracts them every k (vpextrq: two more uops on the FMA ports per 16 FMAs, about
# 20% of the peak on a core with two 512-bit FMA units).

# `add` (a constant at every call site, so each inlined copy keeps one form): C += the
# product, or C = 0 + the product (the Winograd engine, whose C blocks start at zero:
# no zeroing pass and no read of C; the same bits as adding into zeros).

cdef inline void microkernel_packed_8x32_f32(Py_ssize_t kc, const float* a,
                                             const float* b, Py_ssize_t ldb,
                                             float* c, bint add) noexcept nogil:
    cdef float acc[8][32]
    cdef Py_ssize_t i, j, k
    cdef float ai
    if CCONV_GEMM_AVX2:
        cconv_avx2_packed_8x32_f32(kc, a, b, ldb, c, add)
        return
    for i in range(8):
        for j in range(32):
            acc[i][j] = 0
    for k in range(kc):
        for i in range(8):
            ai = a[k * 8 + i]
            for j in range(32):
                acc[i][j] += ai * b[k * ldb + j]
    for i in range(8):
        for j in range(32):
            c[i * 32 + j] = (c[i * 32 + j] if add else 0) + acc[i][j]


cdef inline void microkernel_packed_4x32_f64(Py_ssize_t kc, const double* a,
                                             const double* b, Py_ssize_t ldb,
                                             double* c, bint add) noexcept nogil:
    # Rows i < 4 of an MR = 8 packed block (a points at the first of the four).
    cdef double acc[4][32]
    cdef Py_ssize_t i, j, k
    cdef double ai
    if CCONV_GEMM_AVX2:
        cconv_avx2_packed_4x32_f64(kc, a, b, ldb, c, add)
        return
    for i in range(4):
        for j in range(32):
            acc[i][j] = 0
    for k in range(kc):
        for i in range(4):
            ai = a[k * 8 + i]
            for j in range(32):
                acc[i][j] += ai * b[k * ldb + j]
    for i in range(4):
        for j in range(32):
            c[i * 32 + j] = (c[i * 32 + j] if add else 0) + acc[i][j]



# Direct-B micro-kernels: packed A as above, and B row k read in place at b + boff[k]
# (NR contiguous values of a zero-bordered input plane), so a tile needs no B panel at
# all. Called out of line (see _igemm.pyx): inlined into a large caller, gcc ran out of
# registers around this loop and spilled accumulators to the stack.

cdef inline void microkernel_direct_8x32_f32(Py_ssize_t kc, const float* a,
                                             const float* b, const Py_ssize_t* boff,
                                             float* c) noexcept nogil:
    cdef float acc[8][32]
    cdef Py_ssize_t i, j, k
    cdef float ai
    cdef const float* bk
    if CCONV_GEMM_AVX2:
        cconv_avx2_direct_8x32_f32(kc, a, b, boff, c)
        return
    for i in range(8):
        for j in range(32):
            acc[i][j] = 0
    for k in range(kc):
        bk = b + boff[k]
        for i in range(8):
            ai = a[k * 8 + i]
            for j in range(32):
                acc[i][j] += ai * bk[j]
    for i in range(8):
        for j in range(32):
            c[i * 32 + j] += acc[i][j]


cdef inline void microkernel_direct_4x32_f64(Py_ssize_t kc, const double* a,
                                             const double* b, const Py_ssize_t* boff,
                                             double* c) noexcept nogil:
    # Rows i < 4 of an MR = 8 packed block (a points at the first of the four).
    cdef double acc[4][32]
    cdef Py_ssize_t i, j, k
    cdef double ai
    cdef const double* bk
    if CCONV_GEMM_AVX2:
        cconv_avx2_direct_4x32_f64(kc, a, b, boff, c)
        return
    for i in range(4):
        for j in range(32):
            acc[i][j] = 0
    for k in range(kc):
        bk = b + boff[k]
        for i in range(4):
            ai = a[k * 8 + i]
            for j in range(32):
                acc[i][j] += ai * bk[j]
    for i in range(4):
        for j in range(32):
            c[i * 32 + j] += acc[i][j]


from cython cimport floating


cdef inline void microkernel(Py_ssize_t kc, const floating* a0, Py_ssize_t lda,
                             Py_ssize_t rows, const Py_ssize_t* aoff, const floating* b,
                             Py_ssize_t ldb, floating* c) noexcept nogil:
    """The micro-kernel of the dtype: 8 x 32 for both float32 and float64."""
    if floating is float:
        microkernel_8x32_f32(kc, a0, lda, rows, aoff, b, ldb, c)
    else:
        microkernel_8x32_f64(kc, a0, lda, rows, aoff, b, ldb, c)


cdef inline void microkernel_packed(Py_ssize_t kc, const floating* a, Py_ssize_t rows,
                                    const floating* b, Py_ssize_t ldb,
                                    floating* c, bint add=True) noexcept nogil:
    """The packed-A micro-kernel of the dtype; `a` is the block's first k. Rows past
    `rows` are zero in the packed weights; float64 skips a wholly empty half (with
    add=False its C rows are then left as they were)."""
    if floating is float:
        microkernel_packed_8x32_f32(kc, a, b, ldb, c, add)
    else:
        microkernel_packed_4x32_f64(kc, a, b, ldb, c, add)
        if rows > 4:
            microkernel_packed_4x32_f64(kc, a + 4, b, ldb, c + 4 * 32, add)

