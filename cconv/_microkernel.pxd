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

