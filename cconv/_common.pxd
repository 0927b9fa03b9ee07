# Declarations shared by the kernel modules: aligned scratch memory and integer helpers.

from cython cimport floating

cdef extern from "stdlib.h" nogil:
    void* aligned_alloc(size_t alignment, size_t size)
    void free(void* ptr)

cdef extern from "string.h" nogil:
    void* memset(void* s, int c, size_t n)
    void* memcpy(void* dest, const void* src, size_t n)

# Scratch buffers are 64-byte aligned (one cache line, one zmm register).
cdef inline void* scratch_alloc(size_t nbytes) noexcept nogil:
    cdef size_t rounded = ((nbytes + 63) // 64) * 64
    if rounded == 0:
        rounded = 64
    return aligned_alloc(64, rounded)

# Floor and ceiling division that are correct for negative numerators (C truncates).
cdef inline Py_ssize_t floor_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    cdef Py_ssize_t q = a // b
    if (a % b != 0) and ((a < 0) != (b < 0)):
        q -= 1
    return q

cdef inline Py_ssize_t ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return -floor_div(-a, b)

# Below this much work (multiply-adds) per thread, waking another thread costs more than
# it saves (an OpenMP fork/join is about 2 us here). The cap never changes results.
cdef enum:
    MIN_MACS_PER_THREAD = 65536

cdef inline int effective_threads(int requested, Py_ssize_t n_items,
                                  double macs) noexcept nogil:
    cdef double by_work = macs / MIN_MACS_PER_THREAD
    cdef Py_ssize_t cap = n_items
    if by_work < cap:
        cap = <Py_ssize_t> by_work
    if cap < 1:
        cap = 1
    if requested < cap:
        return requested
    return <int> cap

# A hint to fetch the cache line holding p into L2 (gcc's builtin, read, locality 2; a
# no-op where unsupported).
cdef extern from *:
    """
    #if defined(__GNUC__)
    #define cconv_prefetch_l2(p) __builtin_prefetch((const void*)(p), 0, 2)
    #else
    #define cconv_prefetch_l2(p) ((void)0)
    #endif
    """
    void cconv_prefetch_l2(const void* p) noexcept nogil

# A 16 x 16 register transpose of float32 (AVX-512; four 8 x 8 ones with AVX2; plain
# loops elsewhere), shared by the GEMM engine's stores and weight packing and the
# Winograd engine's wide transform.
cdef extern from *:
    """
    #if defined(__AVX512F__)
    #include <immintrin.h>
    static inline void cconv_transpose16(__m512* r) {
        __m512 t[16];
        for (Py_ssize_t i = 0; i < 8; i++) {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        for (Py_ssize_t i = 0; i < 4; i++) {
            r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
            r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xEE);
            r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
            r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
        }
        for (Py_ssize_t i = 0; i < 4; i++) {
            t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
            t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
            t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
            t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
        }
        for (Py_ssize_t i = 0; i < 8; i++) {
            r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
            r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
        }
    }
    /* dst[j * ldd + i] = src[i * lda + j] for i, j < 16: one register transpose (the
       weight packing of 1x1 convs, whose rows are contiguous). */
    static void cconv_transpose16_copy(const float* src, Py_ssize_t lda, float* dst,
                                       Py_ssize_t ldd) {
        __m512 r[16];
        for (Py_ssize_t i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * lda);
        cconv_transpose16(r);
        for (Py_ssize_t j = 0; j < 16; j++) _mm512_storeu_ps(dst + j * ldd, r[j]);
    }
    #elif defined(__AVX2__)
    #include <immintrin.h>
    /* An 8 x 8 register transpose of float32 (AVX2): r[i] lane j becomes r[j] lane i. */
    static inline void cconv_transpose8(__m256* r) {
        __m256 t[8], u[8];
        for (Py_ssize_t i = 0; i < 4; i++) {
            t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        for (Py_ssize_t i = 0; i < 2; i++) {
            u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
            u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xEE);
            u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
            u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
        }
        for (Py_ssize_t i = 0; i < 4; i++) {
            r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
            r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
        }
    }
    /* src[i * lda + j] to lane i of the 16 values at dst + doff[j] (doff NULL: at
       dst + j * ldd), for i, j < 16: four 8 x 8 register transposes. */
    static void cconv_transpose16_avx2(const float* src, Py_ssize_t lda, float* dst,
                                       const Py_ssize_t* doff, Py_ssize_t ldd) {
        for (Py_ssize_t bi = 0; bi < 16; bi += 8)
            for (Py_ssize_t bj = 0; bj < 16; bj += 8) {
                __m256 r[8];
                for (Py_ssize_t i = 0; i < 8; i++)
                    r[i] = _mm256_loadu_ps(src + (bi + i) * lda + bj);
                cconv_transpose8(r);
                for (Py_ssize_t j = 0; j < 8; j++)
                    _mm256_storeu_ps(dst + (doff ? doff[bj + j] : (bj + j) * ldd) + bi, r[j]);
            }
    }
    static void cconv_transpose16_copy(const float* src, Py_ssize_t lda, float* dst,
                                       Py_ssize_t ldd) {
        cconv_transpose16_avx2(src, lda, dst, NULL, ldd);
    }
    /* v's first n lanes to p: a whole vector, or 4-, 2- and 1-value pieces (masked
       stores, vmaskmovps, take tens of cycles each on AMD cores: 19 measured on Zen 3). */
    static inline void cconv_storen_f32(float* p, Py_ssize_t n, __m256 v) {
        if (n >= 8) { _mm256_storeu_ps(p, v); return; }
        __m128 q = _mm256_castps256_ps128(v);
        if (n >= 4) { _mm_storeu_ps(p, q); q = _mm256_extractf128_ps(v, 1); p += 4; n -= 4; }
        if (n >= 2) { _mm_storel_pi((__m64*) p, q); q = _mm_movehl_ps(q, q); p += 2; n -= 2; }
        if (n >= 1) _mm_store_ss(p, q);
    }
    static inline void cconv_storen_f64(double* p, Py_ssize_t n, __m256d v) {
        if (n >= 4) { _mm256_storeu_pd(p, v); return; }
        __m128d q = _mm256_castpd256_pd128(v);
        if (n >= 2) { _mm_storeu_pd(p, q); q = _mm256_extractf128_pd(v, 1); p += 2; n -= 2; }
        if (n >= 1) _mm_store_sd(p, q);
    }
    #else
    static void cconv_transpose16_copy(const float* src, Py_ssize_t lda, float* dst,
                                       Py_ssize_t ldd) {
        for (Py_ssize_t j = 0; j < 16; j++)
            for (Py_ssize_t i = 0; i < 16; i++) dst[j * ldd + i] = src[i * lda + j];
    }
    #endif
    """
    void cconv_transpose16_copy(const float* src, Py_ssize_t lda, float* dst,
                                Py_ssize_t ldd) noexcept nogil


# Columns 2 apart (a stride-2 phase of a transposed conv): dst[2 i] = src[i] for i < n,
# the odd columns (another phase's) neither read nor written, nor anything past
# dst[2 (n - 1)]. With AVX-512, 8 float32 (4 float64) values per expanding load and
# even-lane masked store; plain loops elsewhere. Shared by the GEMM engine's phase
# stores and the register tiles' (see _pointwise.channel_tile).
cdef extern from *:
    """
    #if defined(__AVX512F__)
    #include <immintrin.h>
    #define CCONV_STORE_STRIDE2(SUFFIX, SCALAR, MASKT, STEP, EVEN, STOREM, EXPANDLOADZ)  \\
    static inline void cconv_store_stride2_##SUFFIX(SCALAR* dst, const SCALAR* src,   \\
                                                    Py_ssize_t n) {                   \\
        Py_ssize_t i = 0;                                                             \\
        for (; i + STEP <= n; i += STEP)                                              \\
            STOREM(dst + 2 * i, (MASKT) EVEN, EXPANDLOADZ((MASKT) EVEN, src + i));    \\
        if (i < n) {                                                                  \\
            MASKT m = (MASKT)(EVEN & ((1u << (2 * (n - i))) - 1u));                   \\
            STOREM(dst + 2 * i, m, EXPANDLOADZ(m, src + i));                          \\
        }                                                                             \\
    }
    CCONV_STORE_STRIDE2(f32, float, __mmask16, 8, 0x5555u, _mm512_mask_storeu_ps,
                        _mm512_maskz_expandloadu_ps)
    CCONV_STORE_STRIDE2(f64, double, __mmask8, 4, 0x55u, _mm512_mask_storeu_pd,
                        _mm512_maskz_expandloadu_pd)
    #else
    static inline void cconv_store_stride2_f32(float* dst, const float* src, Py_ssize_t n) {
        for (Py_ssize_t i = 0; i < n; i++) dst[2 * i] = src[i];
    }
    static inline void cconv_store_stride2_f64(double* dst, const double* src,
                                               Py_ssize_t n) {
        for (Py_ssize_t i = 0; i < n; i++) dst[2 * i] = src[i];
    }
    #endif
    """
    void cconv_store_stride2_f32(float* dst, const float* src, Py_ssize_t n) noexcept nogil
    void cconv_store_stride2_f64(double* dst, const double* src, Py_ssize_t n) noexcept nogil


cdef inline void store_stride2(floating* dst, const floating* src, Py_ssize_t n) noexcept nogil:
    """dst[2 i] = src[i] for i < n (a transposed phase's columns)."""
    if floating is float:
        cconv_store_stride2_f32(dst, src, n)
    else:
        cconv_store_stride2_f64(dst, src, n)
