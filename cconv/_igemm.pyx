# cython: language_level=3
"""Implicit-GEMM engine: standard, grouped, strided, dilated, pointwise and transposed conv.

Design note
-----------
Every one of these convolutions is, per image and group, a matrix product
``out[m, p] = sum_k A[m, k] * B[k, p]`` where ``m`` is an output channel, ``p`` an
output position and ``k`` a (kernel tap, input channel) pair. ``B`` is never built
whole (no im2col buffer): positions are processed in tiles of ``NR`` (32 values = two
zmm registers of float32, four of float64).

* Layout: NCHW input and output. ``k = tap * C_in_per_group + c`` (tap-major, so every
  tap is a contiguous run of k). ``A`` is either the weight tensor read in place
  (element ``(m, k)`` at ``w_group + m * lda + aoff[k]``) or, where each weight is used
  often enough to pay for it (``_packing_pays``), packed per call as
  ``[group][block of MR channels][k][MR]``, one contiguous stream per block.
* Two ways to read ``B`` (``_direct_pays`` picks; both give the same bits):
  - direct: the input is copied once into zero-bordered source planes (and split into
    phase planes when strided), laid out so that grid row ``i`` of a tile has pitch
    ``Ws``, the source width. Then every B row of a tile is ``NR`` contiguous values of
    one plane, read in place through a table of row pointers; the grid's columns past
    the output width are computed and discarded (``Ws / W_out`` extra arithmetic, a few
    percent for ordinary paddings). No panel is packed.
  - packed: ``B`` is packed one ``KC x NR`` panel at a time straight from the unpadded
    input: for each (tile, tap) the packer computes the row segments that fall inside
    the input and writes zeros elsewhere, and a K-block whose taps all lie wholly in
    the padding for the whole tile is skipped. This wins where the border is wide
    relative to the map (large dilations on small maps, e.g. ASPP).
* Micro-kernels: an ``MR x NR`` accumulator tile held in 16 zmm registers; per k, eight
  broadcasts of A and two loads of the B row; innermost loop over the NR columns. A
  direct float32 plan may instead run *channel-tiled* (``_channel_tiles_pay``): ``CB =
  32`` output channels in the vector lanes times a run of up to 14 positions of one grid
  row (28 zmm accumulators; per k, two loads of weights packed ``[k][CB]`` and one
  broadcast per position). Runs cover each grid row's valid columns exactly, where 32-
  position tiles of the source pitch discard columns (14x14 with its border: 7 tiles
  for 196 outputs), and a run leaves out every tap that reads only the zero border for
  it (ASPP's dilation 12 and 18 on 33x33: 43-60% of the taps), unless a weight is
  Inf or NaN (0 * Inf is NaN). The same k order and K-blocks, so the same bits.
  Without AVX-512 (AVX2: 16 ymm registers, a quarter of these tiles' accumulators) both
  tiles run as sub-tiles of at most 12 accumulators over chunks of 64 k, the partial
  sums kept in a local tile (``_microkernel.pxd``): 6 rows x 2 vectors and 2 x 4 for
  the 8 x 32 tile, 6 positions x 2 channel vectors per half of a channel tile; each
  output gets the same FMAs in the same order.
* Source planes: a direct plan's copied planes are each followed by a small gap
  (``_plane_pitch``), so that the B rows of a tile, one plane apart, spread over the
  L1 sets; planes of a multiple of 256 values are copied for that alone
  (``_planes_alias``: 64x64 maps read in place ran at half speed with AVX2's sub-tiles).
* Blocking: a work item covers up to ``NC`` positions (several NR tiles) and a chunk
  of output channels. K runs in blocks of ``KC``; within a block the item's tiles and
  m-blocks reuse each other from L1/L2.
* Positions live on a grid ``(Hg, Wg)``; tap ``t`` of grid point ``(i, j)`` reads input
  ``(i * sy + dy[t], j * sx + dx[t])`` and the result goes to output offset
  ``dst0 + i * drs + j * dcs``. A standard conv is one grid (the output) with
  ``dy = kh * dilation - pad``. A strided conv first splits its input into phase
  planes (``x[c, a::sh, b::sw]``) and becomes a unit-stride conv over them, so B runs
  are contiguous. A transposed conv is split into ``stride_h * stride_w`` phases
  (sub-pixel decomposition): output pixels of one phase see a fixed subset of taps at
  unit stride, so the transposed conv is a *gather* per output pixel, with no
  zero-inserted input and no racing scatter.
* Parallel axis: one flat list of work items ``(image, group, m-chunk, positions)``
  (channel-tiled: ``(image, group, m-chunk, grid rows)``, the chunk's weights capped to
  stay in L2 while the item's runs pass),
  distributed statically, fine-grained; each item writes a disjoint set of outputs.
  The summation order of every output element is fixed by the k order and the K-blocks
  alone, so the bits depend neither on the thread count nor on how B is read.
"""

from collections import namedtuple

import numpy as np
from cython cimport floating
from cython.parallel cimport prange, parallel

from cconv._common cimport (scratch_alloc, free, floor_div, ceil_div, effective_threads,
                            cconv_prefetch_l2, cconv_transpose16_copy, store_stride2)
from cconv._microkernel cimport (MR, NR_F32, NR_F64, KC, CCONV_GEMM_AVX2, microkernel,
                                 microkernel_packed, microkernel_direct_8x32_f32,
                                 microkernel_direct_4x32_f64)


cdef enum:
    NC = 256        # positions per work item at most (several tiles share each A block)
    CB = 32         # output channels per block of a channel-tiled plan (2 zmm of float32)
    CT_MAX_NP = 14  # positions per tile of a channel-tiled plan at most (28 zmm)
    CT_CHUNK_BYTES = 393216  # packed weights per channel-tiled work item at most (L2)
    CT_MAX_GROUP = 16        # runs of a channel-tiled group at most (channel_tile_item)
    CT_MAX_BLOCKS = 8        # blocks of CB channels per work item at most (MAX_CHUNK_ROWS)
    MIN_BORDER_RUN = 6       # columns of a border run of its own at least (_channel_runs)
    SEG_STRIDE = 3 * (3 * 32 + 4)  # one tile's segment table (up to 3 runs per grid row)
    MAX_CHUNK_ROWS = 256  # output channels per work item at most


# The direct micro-kernels are called through pointers held in the Problem: inlined
# into run_item, gcc's register allocator ran out of registers around the loop and
# spilled accumulators and B rows to the stack (half speed); an out-of-line call per
# K-block of KC k costs nothing measurable.
ctypedef void (*direct_kernel_f32)(Py_ssize_t, const float*, const float*,
                                   const Py_ssize_t*, float*) noexcept nogil
ctypedef void (*direct_kernel_f64)(Py_ssize_t, const double*, const double*,
                                   const Py_ssize_t*, double*) noexcept nogil


# Channel-tiled micro-kernels (float32): C[NP x CB] += B[NP x kc] * A[kc x CB], NP
# positions of one grid row times CB = 32 output channels, with the channels in the
# vector lanes. acc[i][j] is output channel j at position i; per k, two loads of the
# packed weights ([k][CB]) and NP broadcasts of the input (b + boff[k] + i), 2 * NP
# FMAs, over the k ranges seg[2s] .. seg[2s+1] (a tap whose reads all lie in the
# zero border for the whole run is left out: its products are exact zeros). The
# position tile is a run of one grid row of any length up to 14, so a row of 14, 28,
# 56 or 33 columns is covered exactly; the position-vectorised 8 x 32 kernel
# computes whole 32-position tiles of the source pitch (a 14x14 map with its border is
# 7 tiles for 196 outputs, 14% discarded). NP is a compile-time constant of each copy
# (gcc keeps the 2 * NP accumulators in registers only then), hence one macro, written
# once, instantiated for NP = 1 .. 14 and called through a table. Plain C, no
# intrinsics: gcc vectorises the j loop as it does the Cython kernels. The sum of every
# output is the position-vectorised kernels' to the bit: acc from zero per K-block, one
# FMA per k in k order, then c += acc (c = init + acc for a run's first K-block, init
# being the bias: the same rounding as adding acc to a copy of it).
cdef extern from *:
    """
    #define CCONV_CT_KERNEL_HEAD(NP)                                                       \
    static void cconv_ct_kernel_##NP(Py_ssize_t nseg, const Py_ssize_t* restrict seg,      \
                                     const float* restrict a,                              \
                                     const float* restrict b,                              \
                                     const Py_ssize_t* restrict boff,                      \
                                     float* restrict c,                                    \
                                     const float* restrict init)
    #if CCONV_GEMM_AVX2
    /* AVX2 (see _microkernel.pxd): NP positions x 32 channels (4 ymm) as sub-tiles of
       6 positions x 2 vectors (12 accumulators, 2 weight vectors and a broadcast: 15 of
       the 16 registers; 3 positions x 4 vectors would need 17), each half of the
       channels in turn; the last NP % 6 positions as 1-2 x 4 vectors or 3-5 x 2, over
       chunks of CCONV_KCH k of the segments in order. The same FMAs per output as the
       loop below, so its bits. */
    #define CCONV_CT_SUB(R, V)                                                         \
    CCONV_SUBTILE_F32(cconv_sub_ct##R##x##V##_f32, R, V, b + boff[k] + i, a + k * 32,   \
                      const float* restrict a, const float* restrict b,                 \
                      const Py_ssize_t* restrict boff)
    CCONV_CT_SUB(6, 2) CCONV_CT_SUB(5, 2) CCONV_CT_SUB(4, 2) CCONV_CT_SUB(3, 2)
    CCONV_CT_SUB(2, 4) CCONV_CT_SUB(1, 4)
    /* Positions [p, p + R) of the chunk: both channel halves (V = 2) or all (V = 4). */
    #define CCONV_CT_PASS(R, V, p)                                                     \
        do {                                                                           \
            cconv_sub_ct##R##x##V##_f32(k0, k1, first, t + (p) * 32, a, b + (p), boff); \
            if (V == 2)                                                                \
                cconv_sub_ct##R##x##V##_f32(k0, k1, first, t + (p) * 32 + 16, a + 16,   \
                                            b + (p), boff);                            \
        } while (0)
    #define CCONV_CT_KERNEL(NP)                                                            \
    CCONV_CT_KERNEL_HEAD(NP) {                                                             \
        float t[NP * 32] __attribute__((aligned(32)));                                     \
        int first = 1;                                                                     \
        for (Py_ssize_t s = 0; s < nseg; s++) {                                            \
            for (Py_ssize_t k0 = seg[2 * s]; k0 < seg[2 * s + 1]; k0 += CCONV_KCH) {       \
                Py_ssize_t k1 = k0 + CCONV_KCH < seg[2 * s + 1] ? k0 + CCONV_KCH           \
                                                                : seg[2 * s + 1];          \
                for (Py_ssize_t p = 0; p + 6 <= NP; p += 6) CCONV_CT_PASS(6, 2, p);        \
                switch (NP % 6) {                                                          \
                    case 5: CCONV_CT_PASS(5, 2, NP - 5); break;                            \
                    case 4: CCONV_CT_PASS(4, 2, NP - 4); break;                            \
                    case 3: CCONV_CT_PASS(3, 2, NP - 3); break;                            \
                    case 2: CCONV_CT_PASS(2, 4, NP - 2); break;                            \
                    case 1: CCONV_CT_PASS(1, 4, NP - 1); break;                            \
                }                                                                          \
                first = 0;                                                                 \
            }                                                                              \
        }                                                                                  \
        if (first)                                                                         \
            for (Py_ssize_t j = 0; j < NP * 32; j++) t[j] = 0;                             \
        if (init)                                                                          \
            for (Py_ssize_t i = 0; i < NP; i++)                                            \
                for (Py_ssize_t j = 0; j < 32; j++) c[i * 32 + j] = init[j] + t[i * 32 + j]; \
        else                                                                               \
            for (Py_ssize_t j = 0; j < NP * 32; j++) c[j] += t[j];                         \
    }
    #else
    #define CCONV_CT_KERNEL(NP)                                                            \
    CCONV_CT_KERNEL_HEAD(NP) {                                                             \
        float acc[NP][32];                                                                 \
        for (Py_ssize_t i = 0; i < NP; i++)                                                \
            for (Py_ssize_t j = 0; j < 32; j++) acc[i][j] = 0;                             \
        for (Py_ssize_t s = 0; s < nseg; s++) {                                            \
            for (Py_ssize_t k = seg[2 * s]; k < seg[2 * s + 1]; k++) {                     \
                const float* bk = b + boff[k];                                             \
                const float* ak = a + k * 32;                                              \
                for (Py_ssize_t i = 0; i < NP; i++) {                                      \
                    float bi = bk[i];                                                      \
                    for (Py_ssize_t j = 0; j < 32; j++) acc[i][j] += bi * ak[j];           \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
        if (init)                                                                          \
            for (Py_ssize_t i = 0; i < NP; i++)                                            \
                for (Py_ssize_t j = 0; j < 32; j++) c[i * 32 + j] = init[j] + acc[i][j];   \
        else                                                                               \
            for (Py_ssize_t i = 0; i < NP; i++)                                            \
                for (Py_ssize_t j = 0; j < 32; j++) c[i * 32 + j] += acc[i][j];            \
    }
    #endif
    CCONV_CT_KERNEL(1) CCONV_CT_KERNEL(2) CCONV_CT_KERNEL(3) CCONV_CT_KERNEL(4)
    CCONV_CT_KERNEL(5) CCONV_CT_KERNEL(6) CCONV_CT_KERNEL(7) CCONV_CT_KERNEL(8)
    CCONV_CT_KERNEL(9) CCONV_CT_KERNEL(10) CCONV_CT_KERNEL(11) CCONV_CT_KERNEL(12)
    CCONV_CT_KERNEL(13) CCONV_CT_KERNEL(14)
    typedef void (*cconv_ct_kernel_t)(Py_ssize_t, const Py_ssize_t*, const float*,
                                      const float*, const Py_ssize_t*, float*,
                                      const float*);

    /* A run's C block c[NP][32] to the output: channel j's NP values go to
       out + j * ldo + i * dcs (dcs = 1: consecutive columns; 2: a stride-2 phase of a
       transposed conv), for j < rows. With AVX-512, each half of 16
       channels is one 16 x 16 register transpose (rows past NP are zeros) and masked
       stores of NP lanes; the scalar copy read c at a stride of 32 and was 10-15% of a
       64-channel 3x3 conv. Only values are moved: the bits are the scalar copy's. */
    #if defined(__AVX512F__)
    #include <immintrin.h>
    /* Columns 2 apart (a stride-2 phase of a transposed conv): the lanes spread by an
       expand and written under an even-lane mask, the other phase's columns untouched. */
    static inline __mmask16 cconv_even_lanes(Py_ssize_t n) {
        return (__mmask16)(0x5555u & ((1u << (2 * n)) - 1u));
    }
    static void cconv_ct_store(const float* c, Py_ssize_t npos, Py_ssize_t rows,
                               float* out, Py_ssize_t ldo, Py_ssize_t dcs) {
        __mmask16 lanes = (__mmask16)((1u << npos) - 1u);
        Py_ssize_t lo = npos < 8 ? npos : 8, hi = npos - lo;
        __mmask16 mlo = cconv_even_lanes(lo), mhi = cconv_even_lanes(hi);
        for (Py_ssize_t h = 0; h < 2 && 16 * h < rows; h++) {
            __m512 r[16];
            for (Py_ssize_t i = 0; i < 16; i++)
                r[i] = i < npos ? _mm512_loadu_ps(c + i * 32 + 16 * h) : _mm512_setzero_ps();
            cconv_transpose16(r);
            Py_ssize_t nj = rows - 16 * h < 16 ? rows - 16 * h : 16;
            for (Py_ssize_t j = 0; j < nj; j++) {
                float* o = out + (16 * h + j) * ldo;
                if (dcs == 1) {
                    _mm512_mask_storeu_ps(o, lanes, r[j]);
                    continue;
                }
                _mm512_mask_storeu_ps(o, mlo, _mm512_maskz_expand_ps(0x5555, r[j]));
                if (hi > 0)
                    _mm512_mask_storeu_ps(o + 16, mhi, _mm512_maskz_expand_ps(
                        0x5555, _mm512_shuffle_f32x4(r[j], r[j], 0xEE)));
            }
        }
    }
    /* dst[j] = src[2 j] for j < n (a stride-2 conv's column phase of an input row): per
       L values two loads and one permute; the last 1 .. L values by masked loads, so that
       nothing past src[2 (n - 1)] is read (a whole last block would read one value past
       it: past the input's end on its last row). gcc left this loop scalar: 53 us of the
       7x7 stem's 2.4 ms. */
    #define CCONV_GATHER_STRIDE2(SUFFIX, SCALAR, VEC, MASKT, L, LOADZ, STOREM, PERM2, EVEN) \
    static void cconv_gather_stride2_##SUFFIX(SCALAR* dst, const SCALAR* src,         \
                                              Py_ssize_t n) {                         \
        const __m512i even = EVEN;                                                    \
        Py_ssize_t j = 0;                                                             \
        for (; j + L < n; j += L) {                                                   \
            VEC a = LOADZ((MASKT) ~0u, src + 2 * j);                                  \
            VEC b = LOADZ((MASKT) ~0u, src + 2 * j + L);                              \
            STOREM(dst + j, (MASKT) ~0u, PERM2(a, even, b));                          \
        }                                                                             \
        if (j < n) {                                                                  \
            Py_ssize_t r = 2 * (n - j) - 1;  /* values to read, 1 .. 2 L - 1 */       \
            MASKT ma = r >= L ? (MASKT) ~0u : (MASKT)((1u << r) - 1u);                \
            MASKT mb = r > L ? (MASKT)((1u << (r - L)) - 1u) : (MASKT) 0;             \
            VEC a = LOADZ(ma, src + 2 * j), b = LOADZ(mb, src + 2 * j + L);           \
            STOREM(dst + j, (MASKT)((1u << (n - j)) - 1u), PERM2(a, even, b));        \
        }                                                                             \
    }
    CCONV_GATHER_STRIDE2(f32, float, __m512, __mmask16, 16, _mm512_maskz_loadu_ps,
                         _mm512_mask_storeu_ps, _mm512_permutex2var_ps,
                         _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24,
                                           26, 28, 30))
    CCONV_GATHER_STRIDE2(f64, double, __m512d, __mmask8, 8, _mm512_maskz_loadu_pd,
                         _mm512_mask_storeu_pd, _mm512_permutex2var_pd,
                         _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14))
    /* dst + doff[j] gets src[i * lda + j] at lane i, for i, j < 16: one register
       transpose whose 16 results go wherever the packed layout wants them (3x3 OIHW
       weights: source column j is (input channel, tap), packed as (tap, channel)). */
    static void cconv_transpose16_scatter(const float* src, Py_ssize_t lda, float* dst,
                                          const Py_ssize_t* doff) {
        __m512 r[16];
        for (Py_ssize_t i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * lda);
        cconv_transpose16(r);
        for (Py_ssize_t j = 0; j < 16; j++) _mm512_storeu_ps(dst + doff[j], r[j]);
    }
    #elif defined(__AVX2__)
    /* AVX2: each block of 8 positions x 8 channels is one 8 x 8 register transpose
       (rows past npos are zeros), then a store of the channel's npos values
       (cconv_storen_f32: with vmaskmovps the stores were 17% of the 7x7 stem); columns
       2 apart (dcs = 2) one by one. Only values are moved:
       the bits are the scalar copy's. */
    /* v's first n lanes to p[0], p[2], ..., one value each (the other columns belong
       to another phase, perhaps another thread's): from the register halves, a whole
       vector as eight stores with no loop (a counted loop over a stack copy was 7% of
       DCGAN's 128 -> 64 layer). */
    static inline void cconv_store_even8_f32(float* p, Py_ssize_t n, __m256 v) {
        __m128 h = _mm256_castps256_ps128(v);
        for (Py_ssize_t half = 0; half < 2 && n > 0; half++, n -= 4, p += 8) {
            if (n >= 4) {
                _mm_store_ss(p, h);
                _mm_store_ss(p + 2, _mm_movehdup_ps(h));
                _mm_store_ss(p + 4, _mm_movehl_ps(h, h));
                _mm_store_ss(p + 6, _mm_shuffle_ps(h, h, 3));
            } else {
                _mm_store_ss(p, h);
                if (n > 1) _mm_store_ss(p + 2, _mm_movehdup_ps(h));
                if (n > 2) _mm_store_ss(p + 4, _mm_movehl_ps(h, h));
            }
            h = _mm256_extractf128_ps(v, 1);
        }
    }
    static void cconv_ct_store(const float* c, Py_ssize_t npos, Py_ssize_t rows,
                               float* out, Py_ssize_t ldo, Py_ssize_t dcs) {
        for (Py_ssize_t p0 = 0; p0 < npos; p0 += 8) {
            Py_ssize_t np = npos - p0 < 8 ? npos - p0 : 8;
            for (Py_ssize_t h = 0; h < 4 && 8 * h < rows; h++) {
                __m256 r[8];
                for (Py_ssize_t i = 0; i < 8; i++)
                    r[i] = i < np ? _mm256_loadu_ps(c + (p0 + i) * 32 + 8 * h)
                                  : _mm256_setzero_ps();
                cconv_transpose8(r);
                Py_ssize_t nj = rows - 8 * h < 8 ? rows - 8 * h : 8;
                for (Py_ssize_t j = 0; j < nj; j++) {
                    float* o = out + (8 * h + j) * ldo + p0 * dcs;
                    if (dcs == 1) {
                        cconv_storen_f32(o, np, r[j]);
                    } else {
                        cconv_store_even8_f32(o, np, r[j]);
                    }
                }
            }
        }
    }
    /* dst + doff[j] gets src[i * lda + j] at lane i (see the AVX-512 version). */
    static void cconv_transpose16_scatter(const float* src, Py_ssize_t lda, float* dst,
                                          const Py_ssize_t* doff) {
        cconv_transpose16_avx2(src, lda, dst, doff, 0);
    }
    #else
    static void cconv_ct_store(const float* c, Py_ssize_t npos, Py_ssize_t rows,
                               float* out, Py_ssize_t ldo, Py_ssize_t dcs) {
        for (Py_ssize_t j = 0; j < rows; j++)
            for (Py_ssize_t i = 0; i < npos; i++) out[j * ldo + i * dcs] = c[i * 32 + j];
    }
    static void cconv_transpose16_scatter(const float* src, Py_ssize_t lda, float* dst,
                                          const Py_ssize_t* doff) {
        for (Py_ssize_t j = 0; j < 16; j++)
            for (Py_ssize_t i = 0; i < 16; i++) dst[doff[j] + i] = src[i * lda + j];
    }
    #endif
    #if !defined(__AVX512F__)
    /* The stride-2 column gathers without AVX-512: plain loops. */
    static void cconv_gather_stride2_f32(float* dst, const float* src, Py_ssize_t n) {
        for (Py_ssize_t j = 0; j < n; j++) dst[j] = src[2 * j];
    }
    static void cconv_gather_stride2_f64(double* dst, const double* src, Py_ssize_t n) {
        for (Py_ssize_t j = 0; j < n; j++) dst[j] = src[2 * j];
    }
    #endif
    static const cconv_ct_kernel_t cconv_ct_kernels[15] = {
        0, cconv_ct_kernel_1, cconv_ct_kernel_2, cconv_ct_kernel_3, cconv_ct_kernel_4,
        cconv_ct_kernel_5, cconv_ct_kernel_6, cconv_ct_kernel_7, cconv_ct_kernel_8,
        cconv_ct_kernel_9, cconv_ct_kernel_10, cconv_ct_kernel_11, cconv_ct_kernel_12,
        cconv_ct_kernel_13, cconv_ct_kernel_14};
    """
    ctypedef void (*cconv_ct_kernel_t)(Py_ssize_t, const Py_ssize_t*, const float*,
                                       const float*, const Py_ssize_t*, float*,
                                       const float*) noexcept nogil
    const cconv_ct_kernel_t* cconv_ct_kernels
    void cconv_ct_store(const float* c, Py_ssize_t npos, Py_ssize_t rows, float* out,
                        Py_ssize_t ldo, Py_ssize_t dcs) noexcept nogil
    void cconv_transpose16_scatter(const float* src, Py_ssize_t lda, float* dst,
                                   const Py_ssize_t* doff) noexcept nogil
    void cconv_gather_stride2_f32(float* dst, const float* src, Py_ssize_t n) noexcept nogil
    void cconv_gather_stride2_f64(double* dst, const double* src, Py_ssize_t n) noexcept nogil


cdef inline void gather_stride2(floating* dst, const floating* src, Py_ssize_t n) noexcept nogil:
    """dst[j] = src[2 j] for j < n (a stride-2 column phase of an input row)."""
    if floating is float:
        cconv_gather_stride2_f32(dst, src, n)
    else:
        cconv_gather_stride2_f64(dst, src, n)




# ---------------------------------------------------------------------------------
# Problem description shared by all work items of one call (read-only in the kernel).

cdef struct Problem:
    Py_ssize_t C_in_img      # input channels per image (all groups)
    Py_ssize_t H, W          # input plane
    Py_ssize_t plane         # values from one input plane to the next (H * W, or more)
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
    const Py_ssize_t* ph_pitch   # positions per grid row (wg, or the source width if direct)
    bint direct              # B rows read in place from zero-bordered source planes
    const Py_ssize_t* boff   # direct: offset of B row k from the group's first plane
    Py_ssize_t direct_limit  # direct: a tile of positions [p, p + NR) reads in place only
                             # if p + NR <= direct_limit (its reads stay inside the buffer)
    direct_kernel_f32 direct_f32
    direct_kernel_f64 direct_f64
    bint channel_tiles       # direct, float32, blocks of CB channels by row runs (see
                             # channel_tile_item); work rows then count grid rows
    bint skip_taps           # channel tiles may leave out all-padding taps (the
                             # weights are all finite, so those products are zeros)
    const Py_ssize_t* tw_y0  # per tap, the grid rows [tw_y0, tw_y1) and columns
    const Py_ssize_t* tw_y1  # [tw_x0, tw_x1) where it reads the input, not the border
    const Py_ssize_t* tw_x0
    const Py_ssize_t* tw_x1
    const Py_ssize_t* in_y0      # skip_taps: per phase, the grid rows [in_y0, in_y1) and
    const Py_ssize_t* in_y1      # columns [in_x0, in_x1) where every tap reads the input
    const Py_ssize_t* in_x0
    const Py_ssize_t* in_x1
    Py_ssize_t ct_group      # channel tiles: runs that share each K-block (1 .. CT_MAX_GROUP)
    const Py_ssize_t* run_first  # channel tiles: phase p's runs are run_first[p] ..
    const Py_ssize_t* runs       # run_first[p + 1], each (first column, length)


cdef inline Py_ssize_t kblock_end(Py_ssize_t k, Py_ssize_t k_end) noexcept nogil:
    """End of the K-block starting at k: blocks of KC, the last one shorter. Every path
    sums an output's K-blocks in this order, which fixes its bits."""
    return k + KC if k + KC < k_end else k_end


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


cdef void direct_blocks(const Problem* P, const floating* x_group, const floating* w_group,
                       Py_ssize_t phase, Py_ssize_t p0, Py_ssize_t ntiles, Py_ssize_t mb0,
                       Py_ssize_t mb1, floating* bpanel, floating* cbuf,
                       Py_ssize_t* mask) noexcept nogil:
    """The K loop of a direct plan: B rows of a tile are read where they lie in the source
    planes (tap offset + position), so no panel is packed.

    Tile by tile, m-block by m-block, every K-block in turn: the (m-block, tile) C block
    stays in L1 over the whole reduction, and each output still sums its K-blocks in
    order (the same bits as any other order). A tile whose reads would pass the end of
    the grid or of the buffer (the last of a phase) is packed instead, K-block by
    K-block, with its positions outside the grid's valid columns set to zero."""
    cdef Py_ssize_t nr
    if floating is float:
        nr = NR_F32
    else:
        nr = NR_F64
    cdef Py_ssize_t tile_block = MR * nr
    cdef Py_ssize_t pitch = P.ph_pitch[phase], wg = P.ph_wg[phase]
    cdef Py_ssize_t grid_end = P.ph_hg[phase] * pitch
    cdef Py_ssize_t limit = grid_end if grid_end < P.direct_limit else P.direct_limit
    cdef Py_ssize_t k0 = P.ph_tap0[phase] * P.Cg, k_end = P.ph_tap1[phase] * P.Cg
    cdef Py_ssize_t k, kb_end, kc, tile, tp0, mb, rows, q, r, gi, gj
    cdef const floating* src
    cdef const floating* b
    cdef const floating* a
    cdef floating* row
    cdef floating* cb
    cdef Py_ssize_t pf_k, pf_end, pf_step
    for tile in range(ntiles):
        tp0 = p0 + tile * nr
        if tp0 + nr <= limit:
            b = x_group + tp0
            # The next tile's B rows, into L2 while this one computes: a tile reads K
            # rows of different planes, more streams than the hardware prefetchers
            # follow (1x1 convs on inputs larger than L3 ran 25% slower without this).
            # Spread over the m-blocks, a share before each, not in one burst.
            pf_k = k0
            pf_end = k_end if tp0 + 2 * nr <= limit else k0
            pf_step = (k_end - k0 + (mb1 - mb0) - 1) // (mb1 - mb0)
            for mb in range(mb0, mb1):
                k = pf_k
                pf_k = pf_k + pf_step if pf_k + pf_step < pf_end else pf_end
                while k < pf_k:
                    cconv_prefetch_l2(b + P.boff[k] + nr)
                    cconv_prefetch_l2(b + P.boff[k] + 2 * nr - 1)
                    k += 1
                rows = P.M - mb * MR
                if rows > MR:
                    rows = MR
                cb = cbuf + ((mb - mb0) * ntiles + tile) * tile_block
                k = k0
                while k < k_end:
                    kb_end = kblock_end(k, k_end)
                    kc = kb_end - k
                    a = w_group + mb * P.mb_stride + k * MR
                    if floating is float:
                        P.direct_f32(kc, a, b, P.boff + k, cb)
                    else:
                        P.direct_f64(kc, a, b, P.boff + k, cb)
                        if rows > 4:
                            P.direct_f64(kc, a + 4, b, P.boff + k, cb + 4 * nr)
                    k = kb_end
            continue
        gi = tp0 // pitch
        gj = tp0 - gi * pitch
        for q in range(nr):
            mask[q] = tp0 + q < grid_end and gj < wg
            gj += 1
            if gj == pitch:
                gj = 0
        k = k0
        while k < k_end:
            kb_end = kblock_end(k, k_end)
            kc = kb_end - k
            for r in range(kc):
                src = x_group + P.boff[k + r] + tp0
                row = bpanel + r * nr
                for q in range(nr):
                    row[q] = src[q] if mask[q] else 0
            for mb in range(mb0, mb1):
                rows = P.M - mb * MR
                if rows > MR:
                    rows = MR
                microkernel_packed(kc, w_group + mb * P.mb_stride + k * MR, rows, bpanel, nr,
                                   cbuf + ((mb - mb0) * ntiles + tile) * tile_block)
            k = kb_end


cdef inline Py_ssize_t block_ranges(const Problem* P, Py_ssize_t phase, Py_ssize_t k,
                                    Py_ssize_t kb_end, Py_ssize_t gi, Py_ssize_t col,
                                    Py_ssize_t npos, Py_ssize_t* seg) noexcept nogil:
    """The k ranges of K-block [k, kb_end) a channel-tiled run (grid row gi, columns
    [col, col + npos)) computes, as pairs in seg; returns how many. Without skip_taps,
    the whole block; with it, only taps that read some input for this run (the rest
    read the zero border only)."""
    cdef Py_ssize_t nseg = 0, t, lo, hi
    cdef bint valid
    if not P.skip_taps or (P.in_y0[phase] <= gi < P.in_y1[phase] and P.in_x0[phase] <= col
                           and col + npos <= P.in_x1[phase]):
        # Every tap reads the input somewhere in this run (most runs: away from the
        # border), so the whole block, without a pass over its taps (a 7x7 conv on 3
        # channels has 49 taps per K-block of 147 k: that pass cost 10% of it).
        seg[0] = k
        seg[1] = kb_end
        return 1
    t = k // P.Cg
    while k < kb_end:
        hi = (t + 1) * P.Cg
        if hi > kb_end:
            hi = kb_end
        valid = (P.tw_y0[t] <= gi < P.tw_y1[t] and P.tw_x0[t] < col + npos
                 and col < P.tw_x1[t])
        if valid:
            if nseg and seg[2 * nseg - 1] == k:
                seg[2 * nseg - 1] = hi
            else:
                seg[2 * nseg] = k
                seg[2 * nseg + 1] = hi
                nseg += 1
        k = hi
        t += 1
    return nseg


cdef void channel_tile_item(const Problem* P, const float* x_group, const float* w_group,
                            const float* bias_group, float* out_img, Py_ssize_t g,
                            Py_ssize_t phase, Py_ssize_t row0, Py_ssize_t nrows,
                            Py_ssize_t mb0, Py_ssize_t mb1, float* cbuf) noexcept nogil:
    """Output channels [mb0*CB, mb1*CB) x grid rows [row0, row0+nrows) of one phase, in
    a direct plan with channel-tiled weights ([group][block of CB channels][k][CB]).

    Each grid row's wg valid columns are split into the runs of the plan (see
    _channel_runs: 56 -> 4 x 14, 33 at dilation 18 -> 9 + 9 + 8 + 7); a run's C block
    (NP x CB, from the bias) takes every K-block in order, then goes to the output
    channel by channel. Only valid columns are computed, so no read passes the grid."""
    cdef Py_ssize_t pitch = P.ph_pitch[phase]
    cdef Py_ssize_t dst0 = P.ph_dst0[phase], drs = P.ph_drs[phase], dcs = P.ph_dcs[phase]
    cdef Py_ssize_t k0 = P.ph_tap0[phase] * P.Cg, k_end = P.ph_tap1[phase] * P.Cg
    cdef Py_ssize_t mb, rows, gi, col, npos, i, j, k, kb_end, q, q0, q1, slot
    cdef Py_ssize_t nseg
    cdef Py_ssize_t seg[2 * KC]   # k ranges of one K-block (it spans at most KC taps)
    cdef float bias_rows[MAX_CHUNK_ROWS]
    cdef bint started[CT_MAX_GROUP * CT_MAX_BLOCKS]
    cdef float* cb
    cdef Py_ssize_t r0 = P.run_first[phase], n_runs = P.run_first[phase + 1] - P.run_first[phase]
    cdef Py_ssize_t total = nrows * n_runs
    # Run q of the item is grid row row0 + q // n_runs, run r0 + q % n_runs. Runs go in
    # groups of ct_group, each group K-block by K-block over all the item's m-blocks:
    # the group's input rows and the K-block's weights (n_mb x 64 KiB) stay in L1/L2,
    # and each (m-block, run) keeps its C block in cbuf. One run per group where a
    # block's weights fit L2; CT_MAX_GROUP where they do not (ASPP: 2048 x 9 x 32
    # floats, 2.4 MB per block, streamed from L3 once per group): against groups of 4,
    # 16 runs were 6% faster at dilation 6 and 8% at 12, the same at 18 (12 to 24 alike).
    for mb in range(mb0, mb1):
        rows = P.M - mb * CB
        for j in range(CB):
            bias_rows[(mb - mb0) * CB + j] = (bias_group[mb * CB + j]
                                              if bias_group != NULL and j < rows else 0)
    q0 = 0
    while q0 < total:
        q1 = q0 + P.ct_group
        if q1 > total:
            q1 = total
        for slot in range((mb1 - mb0) * P.ct_group):
            started[slot] = False
        k = k0
        while k < k_end:
            kb_end = kblock_end(k, k_end)
            for q in range(q0, q1):
                run_at(P, q, row0, r0, n_runs, &gi, &col, &npos)
                nseg = block_ranges(P, phase, k, kb_end, gi, col, npos, seg)
                if nseg == 0:
                    continue
                for mb in range(mb0, mb1):
                    # A C block's first K-block writes bias + acc (the rounding of adding
                    # acc to a copy of the bias, without that copy); later ones add.
                    slot = (mb - mb0) * P.ct_group + q - q0
                    cconv_ct_kernels[npos](nseg, seg, w_group + mb * P.mb_stride,
                                           x_group + gi * pitch + col, P.boff,
                                           cbuf + slot * CT_MAX_NP * CB,
                                           NULL if started[slot]
                                           else bias_rows + (mb - mb0) * CB)
                    started[slot] = True
            k = kb_end
        for mb in range(mb0, mb1):
            rows = P.M - mb * CB
            if rows > CB:
                rows = CB
            for q in range(q0, q1):
                run_at(P, q, row0, r0, n_runs, &gi, &col, &npos)
                slot = (mb - mb0) * P.ct_group + q - q0
                cb = cbuf + slot * CT_MAX_NP * CB
                if not started[slot]:   # no tap reads the input for this run: the bias
                    for i in range(npos):
                        for j in range(CB):
                            cb[i * CB + j] = bias_rows[(mb - mb0) * CB + j]
                store_run(P, cb, npos, rows, out_img + (g * P.M + mb * CB) * P.out_plane
                          + dst0 + gi * drs + col * dcs, dcs)
        q0 = q1


cdef inline void run_at(const Problem* P, Py_ssize_t q, Py_ssize_t row0, Py_ssize_t r0,
                        Py_ssize_t n_runs, Py_ssize_t* gi, Py_ssize_t* col,
                        Py_ssize_t* npos) noexcept nogil:
    """Run q of a channel-tiled item: grid row row0 + q // n_runs, the phase's run r0 +
    q % n_runs (its first column and length)."""
    cdef Py_ssize_t run = r0 + q % n_runs
    gi[0] = row0 + q // n_runs
    col[0] = P.runs[2 * run]
    npos[0] = P.runs[2 * run + 1]


cdef inline void store_run(const Problem* P, const float* cb, Py_ssize_t npos,
                           Py_ssize_t rows, float* orow, Py_ssize_t dcs) noexcept nogil:
    """A run's C block (npos x CB) to the output: channel j of the block at orow + j *
    out_plane, its positions dcs apart."""
    cdef Py_ssize_t i, j
    if dcs <= 2:
        cconv_ct_store(cb, npos, rows, orow, P.out_plane, dcs)
    else:
        for j in range(rows):
            for i in range(npos):
                orow[j * P.out_plane + i * dcs] = cb[i * CB + j]


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
    cdef Py_ssize_t plane = P.plane
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
    if P.direct:
        direct_blocks(P, x_group, w_group, phase, p0, ntiles, mb0, mb1, bpanel, cbuf, seg)
        k = k_end
    while k < k_end:
        kb_end = kblock_end(k, k_end)
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
        # Packed weights: each tile's B panel (KC x NR, 64 KiB) stays in L1/L2 while the
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
    cdef Py_ssize_t pitch = P.ph_pitch[phase]
    cdef floating* orow
    cdef Py_ssize_t gi, gj, base, run, q, valid_run
    cdef bint contiguous = (dcs == 1 and drs == wg and pitch == wg)
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
                # Strided phases (transposed conv) or a direct plan's grid rows with
                # discarded columns past wg: one run per grid row, no division per
                # element.
                j = 0
                gi = tp0 // pitch
                gj = tp0 - gi * pitch
                while j < tnpos:
                    run = pitch - gj
                    if run > tnpos - j:
                        run = tnpos - j
                    valid_run = wg - gj
                    if valid_run > run:
                        valid_run = run
                    base = dst0 + gi * drs + gj * dcs
                    if dcs == 1:
                        for q in range(valid_run):
                            orow[base + q] = cb[j + q]
                    elif dcs == 2:
                        store_stride2(orow + base, cb + j, valid_run)
                    else:
                        for q in range(valid_run):
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
    # C blocks: the tiles of an item's m-blocks, or a channel-tiled group's (m-block, run)
    cdef Py_ssize_t cbuf_count = mb_per_chunk * max_tiles * MR * nr
    if P.channel_tiles and cbuf_count < mb_per_chunk * P.ct_group * CT_MAX_NP * CB:
        cbuf_count = mb_per_chunk * P.ct_group * CT_MAX_NP * CB
    if n_items == 0:
        return 0
    with parallel(num_threads=n_threads):
        bpanel = <floating*> scratch_alloc(max_tiles * KC * nr * sizeof(floating))
        cbuf = <floating*> scratch_alloc(cbuf_count * sizeof(floating))
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
            if floating is float:
                if P.channel_tiles:
                    channel_tile_item(P, x + n * P.C_in_img * P.plane + g * P.Cg * P.plane,
                                      w + g * P.w_group,
                                      (bias + g * P.M) if bias != NULL else NULL,
                                      out + n * P.C_out_img * P.out_plane, g, work[3 * row],
                                      work[3 * row + 1], work[3 * row + 2], mb0, mb1, cbuf)
                    continue
            run_item(P, x + n * P.C_in_img * P.plane, out + n * P.C_out_img * P.out_plane,
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
              int n_threads, double weight_bytes=0, Py_ssize_t block=MR,
              Py_ssize_t max_chunk=MAX_CHUNK_ROWS):
    """Split the positions of every phase into work items and pick the m-chunk size.

    Returns (work, mb_per_chunk): work rows are (phase, first position, positions).
    Items hold up to NC positions and MAX_CHUNK_ROWS output channels, in m-blocks of
    ``block`` channels (a channel-tiled plan passes grid rows as positions, nr = 1). With several
    threads both shrink (positions to one tile, channels to two blocks) until every
    thread has about four items, since coarse items lost 20% to imbalance at 2 threads.
    Which shrinks first depends on the weights: every item streams its chunk of them,
    so large weights split channels (more B packing) before positions (more weight
    traffic). Neither choice changes any result: each output's sum runs over k in the
    same order.
    """
    per_chunk = max(1, min(n_mblocks, MAX_CHUNK_ROWS // block, max_chunk))
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
        per_item = -(-n_pos // n_items)
        even = -(-per_item // nr) * nr
        for p0 in range(0, n_pos, even):
            rows.append((phase, p0, min(even, n_pos - p0)))
    # A static schedule gives each thread a contiguous share of the items: with a count
    # that the threads do not divide, one thread runs an item more (1x1 256 -> 256 on
    # 28x28: 13 items of two tiles, 7 against 6). Splitting the channels once or twice
    # more, where there are channels to split, evens the count.
    for _ in range(2):
        n_chunks = -(-n_mblocks // per_chunk)
        if n_threads <= 1 or (n_images * len(rows) * n_chunks) % n_threads == 0:
            break
        if per_chunk < 2 or -(-n_mblocks // ((per_chunk + 1) // 2)) == n_chunks:
            break
        per_chunk = (per_chunk + 1) // 2
    return np.asarray(rows, dtype=np.intp).reshape(-1, 3), per_chunk


class Plan:
    """Everything about one call that does not depend on the data: built once per input
    shape (layer objects keep it), then executed on any number of inputs."""

    __slots__ = ("N", "C_in", "H", "W", "G", "M", "out_plane", "sy", "sx", "tap_dy",
                 "tap_dx", "phase_cols", "positions", "_work", "tap_base", "polyphase", "Cg",
                 "inplace", "packed_layout", "pack_spec", "prefer_packed", "packed", "K",
                 "direct", "boff", "direct_limit", "channel_tiles", "channel_layout",
                 "tap_window", "ct_runs", "without_channel_tiles", "plane", "tile_weights")

    def __init__(self, N, C_in, H, W, G, M, out_plane, sy, sx, lda, w_group, aoff, tap_dy,
                 tap_dx, phases, pack_spec, prefer_packed=False, tap_base=None,
                 polyphase=None, Cg=None, direct=None, channel_tiles=False,
                 tap_window=None):
        # C_in counts the channels of one image as stored (phase planes included);
        # Cg the input channels one group's taps run over.
        self.N, self.C_in, self.H, self.W, self.G, self.M = N, C_in, H, W, G, M
        # The plan other dtypes run where this one is direct only because float32 runs
        # it channel-tiled (see _choose_direct); None where it serves every dtype.
        self.without_channel_tiles = None
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
        # A direct plan may run float32 channel-tiled (channel_tile_item), on weights
        # packed as [group][block of CB channels][k][CB]; float64 keeps the 8 x 32 tiles.
        self.channel_tiles = bool(channel_tiles) and direct is not None
        n_cblocks = (M + CB - 1) // CB
        self.channel_layout = (np.arange(K, dtype=np.intp) * CB, 1, K * CB, n_cblocks * K * CB)
        # Rows 0-3: per tap, the grid rows [y0, y1) and columns [x0, x1) where it reads
        # the input (see _tap_windows); channel tiles leave a tap out of a run outside.
        self.tap_window = None
        if self.channel_tiles and tap_window is not None:
            self.tap_window = np.ascontiguousarray(tap_window, dtype=np.intp).reshape(4, -1)
        self.ct_runs = None
        # (weight offset of each tap, stride between input channels, between output
        # channels, between groups) of the weights as given, for packing them.
        tap_off, chan_stride = pack_spec
        self.pack_spec = (np.ascontiguousarray(tap_off, dtype=np.intp), chan_stride, lda,
                          w_group)
        self.prefer_packed = prefer_packed
        self.packed = None
        # A layer object's weights reordered for the register-tile engine, with the array
        # they came from (_functional._direct_tiles); None on shared plans.
        self.tile_weights = None
        self.tap_dy = np.ascontiguousarray(tap_dy, dtype=np.intp)
        self.tap_dx = np.ascontiguousarray(tap_dx, dtype=np.intp)
        self.tap_base = np.ascontiguousarray(
            np.zeros(len(self.tap_dy)) if tap_base is None else tap_base, dtype=np.intp)
        # (stride_h, stride_w, [(row phase, column phase), ...]) when the input is first
        # split into the phase planes the taps read (see conv2d_plan).
        self.polyphase = polyphase
        # A DirectSource when B is read in place from zero-bordered source planes of
        # shape (H, W) (see _direct_geometry); None when B panels are packed.
        self.direct = direct
        # Values from one input plane to the next: a direct plan's source planes may
        # carry a gap after each (see _plane_pitch).
        self.plane = H * W if direct is None else direct.plane
        # columns: hg, wg, dst0, drs, dcs, tap0, tap1, pitch (positions per grid row:
        # the source width when direct, so a grid row's taps are contiguous runs)
        phase_cols = np.asarray(phases, dtype=np.intp).reshape(-1, 7)
        pitch = np.full((len(phase_cols), 1), W) if direct is not None else phase_cols[:, 1:2]
        self.phase_cols = np.ascontiguousarray(np.hstack([phase_cols, pitch]).T, dtype=np.intp)
        self.positions = (self.phase_cols[0] * self.phase_cols[7]).tolist()
        if self.channel_tiles:
            # Per phase, the runs of a grid row (_channel_runs, cut at the phase's tap
            # windows): each phase's first run, then (first column, length) pairs of
            # all phases in turn; and the interior where every tap of the phase reads
            # the input (rows y0, y1 and columns x0, x1 per phase).
            first, pairs = [0], []
            interior = np.zeros((4, len(phase_cols)), dtype=np.intp)
            for p in range(len(phase_cols)):
                t0, t1 = int(self.phase_cols[5, p]), int(self.phase_cols[6, p])
                cuts = ([] if self.tap_window is None else
                        self.tap_window[2, t0:t1].tolist() + self.tap_window[3, t0:t1].tolist())
                if self.tap_window is not None and t1 > t0:
                    tw = self.tap_window[:, t0:t1]
                    interior[:, p] = (tw[0].max(), tw[1].min(), tw[2].max(), tw[3].min())
                col = 0
                for length in _channel_runs(int(self.phase_cols[1, p]), cuts):
                    pairs += [col, length]
                    col += length
                first.append(len(pairs) // 2)
            self.ct_runs = (np.asarray(first, dtype=np.intp),
                            np.asarray(pairs + [0, 0], dtype=np.intp), interior)
            # Where every grid point of every phase is interior (1x1 convs, no padding)
            # no tap is ever left out: no windows, so no per-call finiteness check.
            hg, wg = self.phase_cols[0], self.phase_cols[1]
            if ((interior[0] <= 0) & (interior[1] >= hg) & (interior[2] <= 0)
                    & (interior[3] >= wg)).all():
                self.tap_window = None
        self.boff = np.zeros(0, dtype=np.intp)
        self.direct_limit = 0
        if direct is not None:
            # B row k = (tap t, channel c) of a grid position p lies at boff[k] + p from
            # the group's first plane.
            plane = self.plane
            self.boff = np.ascontiguousarray(
                (self.tap_base + self.tap_dy * W + self.tap_dx)[:, None]
                + np.arange(self.Cg, dtype=np.intp)[None, :] * plane, dtype=np.intp).reshape(-1)
            # A tile [p, p + NR) of the last group of the last image reads up to
            # (G - 1) * Cg * plane + max(boff) + p + NR - 1, which must stay inside the
            # image's C_in planes plus the slack after the buffer.
            top = int(self.boff.max()) if len(self.boff) else 0
            self.direct_limit = C_in * plane + direct.slack - (G - 1) * self.Cg * plane - top
        self._work = {}

    def work(self, int n_threads, Py_ssize_t nr, bint channel_tiles=False):
        """(work rows, m-blocks per chunk, threads actually used) for a thread count.
        Channel-tiled work rows count grid rows (first row, rows), in blocks of CB."""
        key = (n_threads, nr, channel_tiles)
        cached = self._work.get(key)
        if cached is None:
            block = CB if channel_tiles else MR
            positions = self.phase_cols[0].tolist() if channel_tiles else self.positions
            unit = 1 if channel_tiles else nr
            n_mblocks = (self.M + block - 1) // block
            macs = float(self.N) * self.G * self.M * self.out_plane * max(self.K, 1)
            threads = effective_threads(n_threads, self.N * self.G * sum(self.positions) // nr + 1,
                                        macs)
            # A channel-tiled item runs its m-blocks on every run of positions in turn,
            # so their weights should stay in L2: at most CT_CHUNK_BYTES of them.
            max_chunk = n_mblocks
            if channel_tiles and self.K * CB * 4 <= CT_CHUNK_BYTES:
                max_chunk = max(1, CT_CHUNK_BYTES // max(1, self.K * CB * 4))
            work, per_chunk = plan_work(positions, n_mblocks, self.N * self.G, unit, threads,
                                        float(self.G) * self.M * self.K * 4, block, max_chunk)
            cached = self._work[key] = (work, per_chunk, threads)
        return cached


_ct_group_override = 0


def _set_channel_group(Py_ssize_t runs):
    """Tests: force the runs per channel-tiled group (1 .. CT_MAX_GROUP; 0 restores the
    rule), so that every loop order meets every case. Returns the previous setting."""
    global _ct_group_override
    if not 0 <= runs <= CT_MAX_GROUP:
        raise ValueError(f"runs must be 0 .. {CT_MAX_GROUP}, got {runs}")
    previous, _ct_group_override = _ct_group_override, runs
    return previous


def execute(plan, work_plan, layout, const floating[::1] x, floating[::1] out,
            const floating[::1] w, bias, bint skip_taps=False):
    """Run a plan: x, out, w flattened C-contiguous arrays of one dtype. ``skip_taps``
    (channel tiles): every weight is finite, so all-padding taps may be left out."""
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
    P.plane = plan.plane
    P.Cg = plan.Cg
    P.M = plan.M
    P.C_out_img = plan.G * plan.M
    P.out_plane = plan.out_plane
    P.lda = layout[1]
    P.mb_stride = layout[2]
    P.w_group = layout[3]
    P.a_packed = layout is plan.packed_layout
    P.channel_tiles = layout is plan.channel_layout
    cdef Py_ssize_t[:, ::1] tw
    cdef Py_ssize_t[::1] run_first, runs
    cdef Py_ssize_t[:, ::1] interior
    if P.channel_tiles:
        run_first, runs, interior = plan.ct_runs
        P.run_first = &run_first[0]
        P.runs = &runs[0]
        P.in_y0 = &interior[0, 0]
        P.in_y1 = &interior[1, 0]
        P.in_x0 = &interior[2, 0]
        P.in_x1 = &interior[3, 0]
    P.ct_group = CT_MAX_GROUP if plan.K * CB * 4 > CT_CHUNK_BYTES else 1
    if _ct_group_override:
        P.ct_group = _ct_group_override
    P.skip_taps = P.channel_tiles and plan.tap_window is not None and skip_taps
    if P.skip_taps:
        tw = plan.tap_window
        P.tw_y0 = &tw[0, 0]
        P.tw_y1 = &tw[1, 0]
        P.tw_x0 = &tw[2, 0]
        P.tw_x1 = &tw[3, 0]
    cdef Py_ssize_t block = CB if P.channel_tiles else MR
    P.n_mblocks = (P.M + block - 1) // block
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
    P.ph_pitch = &pc[7, 0]
    cdef Py_ssize_t[::1] boff = plan.boff
    P.direct = plan.direct is not None
    P.boff = &boff[0] if boff.shape[0] else NULL
    P.direct_limit = plan.direct_limit
    P.direct_f32 = microkernel_direct_8x32_f32
    P.direct_f64 = microkernel_direct_4x32_f64
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


cdef inline void copy_rows4(floating* d, Py_ssize_t width, const floating** rp,
                            Py_ssize_t c0, Py_ssize_t c1, Py_ssize_t chan_stride) noexcept nogil:
    """d[c * width + i] = rp[i][c * chan_stride] for i < MR, c0 <= c < c1, four source
    rows per pass (see pack_block)."""
    cdef Py_ssize_t i, c
    for i in range(0, MR, 4):
        for c in range(c0, c1):
            d[c * width + i] = rp[i][c * chan_stride]
            d[c * width + i + 1] = rp[i + 1][c * chan_stride]
            d[c * width + i + 2] = rp[i + 2][c * chan_stride]
            d[c * width + i + 3] = rp[i + 3][c * chan_stride]


cdef inline bint taps_in_order(const Py_ssize_t* toff, Py_ssize_t T) noexcept nogil:
    """Whether tap t sits at offset t of a weight row's channel (every tap of an OIHW
    kernel, in order)."""
    cdef Py_ssize_t t
    for t in range(T):
        if toff[t] != t:
            return False
    return True


cdef void pack_block(const floating* src, Py_ssize_t src_lda, Py_ssize_t rows,
                     Py_ssize_t chan_stride, const Py_ssize_t* toff, Py_ssize_t T,
                     Py_ssize_t Cg, Py_ssize_t width, floating* dst) noexcept nogil:
    """One block of `width` (MR or CB) output channels: dst[(t*Cg + c)*width + i] =
    src[i*src_lda + c*chan_stride + toff[t]] for i < rows, 0 for the rows past them."""
    cdef const floating* rp[MR]
    cdef Py_ssize_t i, j, c, c0, c1, t, sub, row, p, n16
    cdef Py_ssize_t doff[16]
    # Input channels per pass: their source lines stay in L1 over all taps. Sixteen when
    # a channel's taps are contiguous (OIHW); four when channels lie a multiple of 4 KiB
    # apart (transposed weights, (C_in, C_out, kh, kw)): those lines share one L1 set,
    # and sixteen of them in 8 ways thrashed (3.4 GB/s packing DCGAN's 8 MB weights).
    cdef Py_ssize_t group = 16 if chan_stride * <Py_ssize_t> sizeof(floating) < 1024 else 4
    cdef floating* d
    if rows > width:
        rows = width
    c0 = 0
    if floating is float:
        if chan_stride == 1 and rows == CB and width == CB:
            # Contiguous rows (1x1 weights) of a full block of CB: 16 x 16 register
            # transposes, 16 rows by 16 channels (1x1 512 -> 512: 0.10 -> 0.03 ms);
            # the channels past the last multiple of 16 go the general way below.
            for t in range(T):
                for c0 in range(0, Cg - Cg % 16, 16):
                    for sub in range(0, CB, 16):
                        cconv_transpose16_copy(src + sub * src_lda + toff[t] + c0, src_lda,
                                               dst + (t * Cg + c0) * CB + sub, CB)
            c0 = Cg - Cg % 16
        elif chan_stride == T and rows == CB and width == CB and taps_in_order(toff, T):
            # OIHW rows of a full block (each row's (channel, tap) values contiguous):
            # 16 x 16 register transposes over 16 consecutive (channel, tap) values of
            # 16 rows, each result vector stored at its (tap, channel) place (3x3
            # 256 -> 256: 0.27 -> 0.11 ms; ASPP's 2048 x 9: 4.8 -> 2.7 ms); the last
            # Cg * T % 16 values one by one.
            n16 = Cg * T - (Cg * T) % 16
            for p in range(0, n16, 16):
                for j in range(16):
                    c = (p + j) // T
                    doff[j] = ((p + j - c * T) * Cg + c) * CB
                for sub in range(0, CB, 16):
                    cconv_transpose16_scatter(src + sub * src_lda + p, src_lda, dst + sub, doff)
            for p in range(n16, Cg * T):
                c = p // T
                d = dst + ((p - c * T) * Cg + c) * CB
                for i in range(CB):
                    d[i] = src[i * src_lda + p]
            return
    while c0 < Cg:
        c1 = c0 + group
        if c1 > Cg:
            c1 = Cg
        # Eight source rows at a time, also in a block of CB: rows a multiple of 4 KiB
        # apart (1x1 512 -> 512: 2 KiB; ASPP's 2048 x 9 taps) share L1 sets, and 32 of
        # them thrashed (3.8 and 1.6 GB/s, against 7.5 for eight).
        sub = 0
        while sub < width:
            for t in range(T):
                # Eight row pointers for this tap (rows past the last repeat it, then get
                # zeroed), so the copy is eight loads and one contiguous store run per c.
                for i in range(MR):
                    row = sub + i
                    rp[i] = src + (row if row < rows else rows - 1) * src_lda + toff[t]
                d = dst + t * Cg * width + sub
                # The block width as a constant in each branch: with it a variable, gcc
                # kept the stores scalar and the copy ran at half the speed.
                # Strided source rows under 16 KiB apart (3x3 OIHW up to 455 input
                # channels): four rows per pass over c, since with eight pointers live
                # gcc parked them in vector registers and moved one back per element
                # (256 -> 256 3x3: 0.30 -> 0.19 ms). Contiguous rows (1x1) and rows far
                # apart (ASPP's 2048 x 9) measured faster with all eight in one pass
                # (1x1 512: 0.08 against 0.18 ms; ASPP 3.5 against 4.8).
                if chan_stride > 1 and src_lda * <Py_ssize_t> sizeof(floating) < 16384:
                    if width == CB:
                        copy_rows4(d, CB, rp, c0, c1, chan_stride)
                    else:
                        copy_rows4(d, MR, rp, c0, c1, chan_stride)
                elif width == CB:
                    for c in range(c0, c1):
                        for i in range(MR):
                            d[c * CB + i] = rp[i][c * chan_stride]
                else:
                    for c in range(c0, c1):
                        for i in range(MR):
                            d[c * MR + i] = rp[i][c * chan_stride]
                if rows < sub + MR:
                    for c in range(c0, c1):
                        for i in range(rows - sub if rows > sub else 0, MR):
                            d[c * width + i] = 0
            sub += MR
        c0 = c1


def _pack_blocks(const floating[::1] w, const Py_ssize_t[::1] tap_off, Py_ssize_t chan_stride,
                 Py_ssize_t src_lda, Py_ssize_t src_group, Py_ssize_t G, Py_ssize_t M,
                 Py_ssize_t Cg, int n_threads, Py_ssize_t width=MR):
    """packed[((g*nmb + mb)*K + t*Cg + c)*width + i] = w[g*src_group + (mb*width +
    i)*src_lda + c*chan_stride + tap_off[t]], zero for channels past M; blocks of width
    MR (8 x 32 tiles) or CB (channel tiles) channels.

    Parallel over blocks of MR output channels. Within a block, input channels go in
    groups of 16: their source values (MR channels x 16 inputs x T taps, a few KiB)
    stay in L1 while every tap's destination run (16 x MR values) is written in order.
    (Writing tap by tap per input channel instead put T writes 16 KiB apart: one L1 set,
    thrashing.)
    """
    cdef Py_ssize_t T = tap_off.shape[0], K = T * Cg
    if width != MR and width != CB:
        raise ValueError(f"width must be {MR} or {CB}, got {width}")
    cdef Py_ssize_t n_blocks = (M + width - 1) // width, blk, g, mb
    packed_arr = np.empty(G * n_blocks * K * width,
                          dtype=np.float32 if floating is float else np.float64)
    cdef floating[::1] packed_view = packed_arr
    if K == 0 or G * M == 0:
        return packed_arr
    cdef floating* packed = &packed_view[0]
    cdef const floating* src = &w[0]
    cdef const Py_ssize_t* toff = &tap_off[0]
    # Each weight counts as a multiply-add of work: copies are cheap, but a block packed
    # by the thread whose work items then read it stays in that core's L2 (with the
    # eighth of that, 1x1 512 -> 512 packed on one thread and the other read half the
    # weights across cores: 0.72 ms on two threads, 0.57 with the weights packed once).
    n_threads = effective_threads(n_threads, G * n_blocks, <double> G * M * K)
    with nogil:
        for blk in prange(G * n_blocks, schedule="static", num_threads=n_threads):
            g = blk // n_blocks
            mb = blk - g * n_blocks
            pack_block(src + g * src_group + mb * width * src_lda, src_lda, M - mb * width,
                       chan_stride, toff, T, Cg, width, packed + blk * K * width)
    return packed_arr


def run(plan, x, w, bias, out, int n_threads, bint weights_frozen=False):
    """Execute ``plan`` on 4-D C-contiguous arrays with ``n_threads`` threads.

    ``weights_frozen`` (layer objects) lets a plan pack its weights once and keep
    them: packed weights then cost nothing per call, so they are always used.
    """
    is_float = x.dtype == np.float32
    if not is_float and plan.without_channel_tiles is not None:
        plan = plan.without_channel_tiles
    nr = NR_F32 if is_float else NR_F64
    w_flat = w.reshape(-1)
    layout = plan.inplace
    channel_tiles = plan.channel_tiles and is_float
    finite = False
    if plan.prefer_packed or plan.direct is not None or (weights_frozen and len(w_flat)):
        layout = plan.channel_layout if channel_tiles else plan.packed_layout
        if weights_frozen and plan.packed is not None and plan.packed[0] is w:
            w_flat, finite = plan.packed[1], plan.packed[2]
        else:
            tap_off, chan_stride, src_lda, src_group = plan.pack_spec
            w_flat = _pack_blocks(w_flat, tap_off, chan_stride, src_lda, src_group, plan.G,
                                  plan.M, plan.Cg, n_threads, CB if channel_tiles else MR)
            finite = bool(channel_tiles and plan.tap_window is not None
                          and _all_finite(w_flat))
            if weights_frozen:
                plan.packed = (w, w_flat, finite)
    if len(w_flat) == 0:
        w_flat = np.zeros(1, dtype=x.dtype)  # no tap reaches any output: bias only
    if plan.direct is not None:
        x = _direct_source(x, plan.direct, n_threads)
    elif plan.polyphase is not None:
        x = _polyphase_planes(x, plan, n_threads)
    # 0 * Inf and 0 * NaN are NaN: with a non-finite weight no tap is left out.
    execute(plan, plan.work(n_threads, nr, channel_tiles), layout, x.reshape(-1),
            out.reshape(-1), w_flat, bias, finite)
    return out


def _all_finite(const floating[::1] a):
    """Whether every value of a is finite: a - a is 0 for finite a and NaN for Inf and
    NaN, and NaN != NaN; an OR over the values, which gcc vectorises (about 50 us for
    the 2.4 MB of a 3x3 256 -> 256 layer's weights)."""
    cdef Py_ssize_t n = a.shape[0], i
    cdef const floating* p
    cdef floating v
    cdef bint nonfinite = False
    if n == 0:
        return True
    p = &a[0]
    with nogil:
        for i in range(n):
            v = p[i] - p[i]
            nonfinite |= v != v
    return not nonfinite


def _tap_windows(H, W, stride, dy, dx):
    """Per tap t (grid point (i, j) reads input (i * sh + dy[t], j * sw + dx[t])): the
    grid rows [y0, y1) and columns [x0, x1) where it reads the input, as a (4, T) array;
    elsewhere it reads the zero border."""
    sh, sw = stride
    dy = np.asarray(dy, dtype=np.intp)
    dx = np.asarray(dx, dtype=np.intp)
    return np.stack([-(dy // sh), (H - 1 - dy) // sh + 1, -(dx // sw), (W - 1 - dx) // sw + 1])


def _packing_pays(uses_per_weight, contiguous_rows):
    """Whether to pack the weights per call ([m-block][k][MR], see Plan), given how many
    output positions use each weight.

    Packed weights run the packed micro-kernel, 15-45% faster than reading them in
    place: one pointer walks all eight rows, where in place eight row pointers and an
    offset table need more general registers than x86-64 has (gcc then extracts two
    from vector registers every k, on the FMA ports), and a weight row with several
    taps is read at a stride. Packing costs about 4 bytes / 10 GB/s per weight against
    2 * uses / 200 GFLOP/s of arithmetic, i.e. 40 / uses of the conv's time. Measured
    (1 thread): 3x3 256 -> 256 on 14x14 (196 uses) 82 -> 122 GFLOP/s packed per call.
    1x1 convs have contiguous weight rows, so packing gains less: packed weights with
    the input read in place (a direct plan) beat in-place weights with packed panels by
    6-12% (float32) and 12-22% (float64) at 196 uses (512 -> 512 and 256 -> 512 on
    14x14), and lose 8-22% at 49 (1024 -> 1024 on 7x7). Layer objects pack once
    whatever this says.
    """
    return uses_per_weight >= (128 if contiguous_rows else 64)


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
    """Split x into the phase planes a strided packed plan reads: plane (a, b) of channel
    c is x[c, a::sh, b::sw], zero-filled to the common (H_s, W_s). A strided conv over x
    is a unit-stride conv over these planes, so the packer only copies contiguous runs."""
    sh, sw, used = plan.polyphase
    N, C, H, W = x.shape
    planes = np.empty(N * len(used) * C * plan.H * plan.W, dtype=x.dtype)
    _fill_source(x.reshape(N * C, H, W), planes, np.asarray(used, dtype=np.intp).reshape(-1, 2),
                 N, sh, sw, 0, 0, plan.H, plan.W, plan.H * plan.W, n_threads)
    return planes


DirectSource = namedtuple("DirectSource", "sh sw pt pl Hs Ws plane used copy slack")
DirectSource.__doc__ = """How a direct plan's source planes come from the input: the input
zero-bordered by (pt, pl) at the top/left (and as much as the taps need at the
bottom/right), split into the phases ``used`` of stride (sh, sw), each plane (Hs, Ws),
``plane`` values apart (Hs * Ws and a gap, see _plane_pitch); ``copy`` False when that
is the input itself; ``slack`` zeros after the last plane."""


def _plane_pitch(n):
    """Values from one copied source plane to the next, for planes of n values: the
    least p >= n with p = 16 (mod 32). A tile's B rows lie a plane apart, 64 of them per
    chunk of the AVX2 tiles; at a stride of 64 bytes times an odd number they fall in
    every L1 set, where a stride of 4 KiB times anything (a 32x32 or 64x64 plane) puts
    them all in one set of 8 ways and every sub-tile pass missed L1 (U-Net's 2x2 up-conv
    on 64x64: 10.5 ms, against 4.9 on 64x65)."""
    return n + (16 - n % 32) % 32


def _planes_alias(n, k_rows):
    """Whether planes of n values read in place would put a tile's B rows in at most
    four L1 sets (a stride of 1 KiB times anything; float32) with k_rows B rows per tile
    (channels x taps): then a copy with spread planes pays. Measured (1x1 convs, float32,
    1 thread), in place against copied: 128 -> 64 on 64x64 2.2 against 1.0 ms, 256 ->
    256 on 32x32 4.3 against 1.7, 128 -> 128 on 48x48 1.37 against 1.01; with 32 input
    channels the same or slower copied (32 -> 64 on 112x112, 32 -> 24 on 48x48)."""
    return n % 256 == 0 and k_rows >= 64


def _direct_geometry(H, W, stride, grids, k_rows=0):
    """The source planes of a direct plan, and where each tap reads in them.

    ``grids`` lists (hg, wg, dy, dx) per output phase: grid point (i, j) of tap t reads
    input (i * sh + dy[t], j * sw + dx[t]). Returns (DirectSource, phase, qy, qx) with,
    per tap, the index of its phase plane in ``used`` and its non-negative offset there:
    grid point (i, j) reads plane row i + qy, column j + qx, for every tap, so a run of
    positions along a grid row of pitch Ws is a contiguous run of the plane. ``k_rows``:
    the B rows of a tile (input channels per group x taps), see _planes_alias.
    """
    sh, sw = stride
    dy = np.concatenate([g[2] for g in grids]).astype(np.intp)
    dx = np.concatenate([g[3] for g in grids]).astype(np.intp)
    pt = max(0, -int(dy.min()))
    pl = max(0, -int(dx.min()))
    pb = max(0, max((hg - 1) * sh + int(gy.max()) for hg, _, gy, _ in grids) - (H - 1))
    pr = max(0, max((wg - 1) * sw + int(gx.max()) for _, wg, _, gx in grids) - (W - 1))
    Hs = -(-(H + pt + pb) // sh)
    Ws = -(-(W + pl + pr) // sw)
    ry, rx = dy + pt, dx + pl
    pairs = list(zip((ry % sh).tolist(), (rx % sw).tolist()))
    used = sorted(set(pairs))
    index = {ab: i for i, ab in enumerate(used)}
    phase = np.array([index[ab] for ab in pairs], dtype=np.intp)
    qy, qx = ry // sh, rx // sw
    copy = (pt, pl, pb, pr, sh, sw) != (0, 0, 0, 0, 1, 1) or _planes_alias(Hs * Ws, k_rows)
    plane = _plane_pitch(Hs * Ws) if copy else Hs * Ws
    # A tile of the last grid row reads up to max(qy, qx) rows and columns past it.
    slack = int(qy.max()) * Ws + int(qx.max()) + max(NR_F32, NR_F64) if copy else 0
    return DirectSource(sh, sw, pt, pl, Hs, Ws, plane, used, copy, slack), phase, qy, qx


def _direct_pays(direct_tiles, packed_tiles):
    """Whether reading B in place (a direct plan) beats packing B panels, from the tiles
    of positions each computes: a direct plan computes whole rows of its zero-bordered
    source (Ws columns per grid row where wg are kept), the packed plan only the grid.
    Packing costs about 20-30% of a 3x3 conv on this machine (r50 64 ch at 56x56: 0.53 of
    2.65 ms), so a direct plan pays up to that much extra arithmetic.
    """
    return 100 * direct_tiles <= 115 * packed_tiles


def _channel_runs(wg, cuts=()):
    """Lengths of the runs a channel-tiled plan splits a grid row of wg columns into.

    The row is first cut where a tap starts or stops reading the input (``cuts``: the
    tap windows' column bounds), so that border runs can leave that tap out (ASPP's
    dilation 18 on 33 columns: [0, 18) without the left taps, [18, 33) without the
    right ones); a piece under MIN_BORDER_RUN columns joins its neighbour, since brief runs cost
    more than the taps they leave out save (at 3x3 padding 1 the border is one column).
    At ASPP's dilation 18 the cut runs 9 + 9 + 8 + 7 were 9% faster than 3 x 11; at
    dilation 6, 6 + 11 + 10 + 6 were 5% slower while a group shared each K-block over
    four runs, and 12% faster (99 -> 87 ms) once it shared it over sixteen. Each piece is
    then split into the fewest runs of at most CT_MAX_NP, as even as possible.
    """
    if wg <= 0:
        return []
    edges = [0, wg]
    for cut in cuts:
        if 0 < cut < wg:
            edges.append(int(cut))
    edges = sorted(set(edges))
    pieces = [edges[e + 1] - edges[e] for e in range(len(edges) - 1)]
    merged = []   # (no negative indices: this module is compiled with wraparound off)
    for length in pieces:
        if merged and (length < MIN_BORDER_RUN or merged[len(merged) - 1] < MIN_BORDER_RUN):
            merged[len(merged) - 1] += length
        else:
            merged.append(length)
    runs = []
    for length in merged:
        n = -(-length // CT_MAX_NP)
        runs += [length // n + (1 if r < length % n else 0) for r in range(n)]
    return runs


# How much faster channel tiles run than 8 x 32 tiles per multiply-add they compute:
# alike with AVX-512; with AVX2's sub-tiles (_microkernel.pxd) channel tiles measured
# 10-15% faster at equal work (1x1 256 -> 64 on 56x56: 1.35 against 1.52 ms; 512 -> 512
# on 14x14 1.29 against 1.49 with 14% more work in the 8 x 32 tiles).
CT_ADVANTAGE = 1.1 if CCONV_GEMM_AVX2 else 1.0


def _channel_tiles_pay(M, grids, Ws, advantage=CT_ADVANTAGE):
    """Whether a direct plan runs float32 channel-tiled (CB channels x a run of one grid
    row) rather than in 8 x 32 tiles (MR channels x 32 positions of the source pitch).

    Both run at about the same fraction of the peak on the work they compute, so the
    rule compares the work: 8 x 32 tiles cover every grid row's Ws source columns,
    rounded up to whole tiles (a 14x14 map bordered to 16 wide: 7 tiles for 196
    outputs, 1.14x), channel tiles round M up to CB channels and lose their
    register blocking on runs under four positions; channel tiles wherever they
    compute less. Measured, float32, 1 thread, against 8 x 32 tiles: 13% faster on 3x3
    256 -> 256 at 14x14, 10% on the dilated 64-channel 56x56 (pitch 60), 12-40% on
    ASPP's 33x33 maps, 6% on VGG's 3x3 at 112x112 (pitch waste 1.8%), 2% at 224x224,
    even on the 7x7 stride-2 stem (2.7%); 1x1 512 -> 512 at 14x14 (7 tiles for 196
    positions) 4% faster on one thread, the same on two; 12% slower on 1x1 256 -> 64
    at 56x56, where the 8 x 32 tiles have no waste to win back and are kept (with
    AVX-512; ``advantage``, the channel tiles' speed per multiply-add against the
    8 x 32 tiles', weighs their work: see CT_ADVANTAGE).
    """
    if M <= 0:
        return False
    tiled = ct = 0.0
    for hg, wg, *_ in grids:
        tiled += -(-(hg * Ws) // NR_F32) * NR_F32 * (-(-M // MR) * MR)
        runs = sum(r * max(1.0, 4.0 / r) for r in _channel_runs(wg))
        ct += hg * runs * (-(-M // CB) * CB)
    return tiled * advantage > ct


def _grid_tiles(grids, pitch=None):
    """Tiles of NR_F32 positions over grids of (hg, wg, ...), rows of ``pitch`` if given."""
    return sum(-(-(g[0] * (g[1] if pitch is None else pitch)) // NR_F32) for g in grids)


def _direct_source(x, src, int n_threads):
    """The flat source planes of a direct plan: (N, len(used), C) planes of (Hs, Ws),
    src.plane values apart, then the slack; the input itself when it needs no border, no
    phase split and no spreading of its planes."""
    if not src.copy:
        return x
    N, C, H, W = x.shape
    n = N * len(src.used) * C * src.plane
    planes = np.empty(n + src.slack, dtype=x.dtype)
    planes[n:] = 0
    _fill_source(x.reshape(N * C, H, W), planes,
                 np.asarray(src.used, dtype=np.intp).reshape(-1, 2), N, src.sh, src.sw,
                 src.pt, src.pl, src.Hs, src.Ws, src.plane, n_threads)
    return planes


def _fill_source(const floating[:, :, ::1] x, floating[::1] planes,
                 const Py_ssize_t[:, ::1] phase_rc, Py_ssize_t N, Py_ssize_t sh,
                 Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t Hs, Py_ssize_t Ws,
                 Py_ssize_t plane, int n_threads):
    """planes[((n*P + p)*C + c)*plane + i*Ws + j] = x[n*C + c, a + i*sh - pt, b + j*sw - pl]
    (0 outside x, and in the plane - Hs * Ws values after each plane), for the phases
    (a, b) = phase_rc[p]; one plane per work item, rows as a zero run, a copied run and
    a zero run."""
    cdef Py_ssize_t P = phase_rc.shape[0], C = x.shape[0] // N if N else 0
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2]
    cdef Py_ssize_t item, n, p, c, rest, i, j, a, b, iy, j_lo, j_hi, col0
    cdef floating* row
    cdef const floating* src
    if N * P * C == 0 or Hs * Ws == 0:
        return
    # A copied value costs about as much time as 16 multiply-adds at the FMA peak (a
    # copy runs at a few bytes per cycle): with the work counted as a quarter of one,
    # DCGAN's 128 x 34 x 34 source (590 KB, 0.05 ms) was copied on one thread.
    n_threads = effective_threads(n_threads, N * P * C, <double> N * P * C * Hs * Ws * 16)
    with nogil:
        for item in prange(N * P * C, schedule="static", num_threads=n_threads):
            c = item % C
            rest = item // C
            p = rest % P
            n = rest // P
            a = phase_rc[p, 0]
            b = phase_rc[p, 1]
            # Columns j with 0 <= b + j*sw - pl < W.
            j_lo = ceil_div(pl - b, sw)
            if j_lo < 0:
                j_lo = 0
            if j_lo > Ws:
                j_lo = Ws
            j_hi = ceil_div(W + pl - b, sw)
            if j_hi > Ws:
                j_hi = Ws
            if j_hi < j_lo:
                j_hi = j_lo
            col0 = b + j_lo * sw - pl
            for j in range(Hs * Ws, plane):
                planes[item * plane + j] = 0
            for i in range(Hs):
                row = &planes[item * plane + i * Ws]
                iy = a + i * sh - pt
                if iy < 0 or iy >= H:
                    for j in range(Ws):
                        row[j] = 0
                    continue
                src = &x[n * C + c, iy, 0]
                for j in range(j_lo):
                    row[j] = 0
                if sw == 1:
                    for j in range(j_hi - j_lo):
                        row[j_lo + j] = src[col0 + j]
                elif sw == 2:
                    gather_stride2(row + j_lo, src + col0, j_hi - j_lo)
                else:
                    for j in range(j_hi - j_lo):
                        row[j_lo + j] = src[col0 + j * sw]
                for j in range(j_hi, Ws):
                    row[j] = 0


def _choose_direct(b_source, weights_packed, grids, Ws, M):
    """(direct, channel_tiles, direct_without): whether a plan reads B in place, whether
    it then runs float32 channel-tiled, and whether it would read B in place without
    channel tiles (float64 has none: where this is False, float64 runs a packed-B plan,
    whose K-blocks of padding-only taps are left out; ASPP's dilation 12 in float64 ran
    2.5x slower direct). ``b_source`` 'direct' / 'channels' / 'packed' forces it for
    every dtype (tests run all three on every case); None decides by _direct_pays and
    _channel_tiles_pay, and only where packing the weights pays anyway (a direct plan
    always runs on packed weights)."""
    if b_source is not None:
        if b_source not in ("direct", "channels", "packed"):
            raise ValueError("b_source must be 'direct', 'channels', 'packed' or None, "
                             f"got {b_source!r}")
        return b_source != "packed", b_source == "channels", b_source != "packed"
    if not weights_packed:
        return False, False, False
    direct = _direct_pays(_grid_tiles(grids, Ws), _grid_tiles(grids))
    if _channel_tiles_pay(M, grids, Ws):
        return True, True, direct
    return direct, False, direct


def col2im(const floating[:, :, :, :, :, :, ::1] y, bias, floating[:, :, :, ::1] out,
           stride, padding, dilation, int n_threads):
    """The gather of a transposed conv computed as Y = pixels x weights.

    y[g, n, iy, ix, m, kh, kw] is input pixel (iy, ix)'s product with the weights of
    output channel g*M + m at tap (kh, kw); it lands on output row iy*sh - top + kh*dh,
    column ix*sw - left + kw*dw. One work item per output plane (n, channel): it starts
    from the bias and adds its terms in (iy, kh, ix, kw) order, so every output element
    is summed by one thread in a fixed order (no racing scatter, the same bits for any
    thread count).
    """
    cdef Py_ssize_t G = y.shape[0], N = y.shape[1], H = y.shape[2], W = y.shape[3]
    cdef Py_ssize_t M = y.shape[4], KH = y.shape[5], KW = y.shape[6]
    cdef Py_ssize_t Ho = out.shape[2], Wo = out.shape[3]
    cdef Py_ssize_t sh = stride[0], sw = stride[1], dh = dilation[0], dw = dilation[1]
    cdef Py_ssize_t pt = padding[0][0], pl = padding[1][0]
    cdef Py_ssize_t item, n, g, m, rest, iy, ix, kh, kw, oy, kw_lo, kw_hi, col0, q
    cdef floating b
    cdef floating* plane
    cdef floating* orow
    cdef const floating* src
    cdef const floating[::1] bias_view
    cdef const floating* bias_ptr = NULL
    if bias is not None:
        bias_view = bias
        bias_ptr = &bias_view[0]
    cdef Py_ssize_t n_items = N * G * M
    if n_items == 0 or Ho * Wo == 0:
        return out
    n_threads = effective_threads(n_threads, n_items, <double> n_items * H * W * KH * KW)
    with nogil:
        for item in prange(n_items, schedule="static", num_threads=n_threads):
            m = item % M
            rest = item // M
            g = rest % G
            n = rest // G
            plane = &out[n, g * M + m, 0, 0]
            b = bias_ptr[g * M + m] if bias_ptr != NULL else 0
            for q in range(Ho * Wo):
                plane[q] = b
            for iy in range(H):
                for kh in range(KH):
                    oy = iy * sh - pt + kh * dh
                    if oy < 0 or oy >= Ho:
                        continue
                    orow = plane + oy * Wo
                    for ix in range(W):
                        # Taps kw landing inside the row: 0 <= ix*sw - left + kw*dw < Wo.
                        col0 = ix * sw - pl
                        kw_lo = ceil_div(-col0, dw)
                        if kw_lo < 0:
                            kw_lo = 0
                        kw_hi = floor_div(Wo - 1 - col0, dw) + 1
                        if kw_hi > KW:
                            kw_hi = KW
                        src = &y[g, n, iy, ix, m, kh, 0]
                        for kw in range(kw_lo, kw_hi):
                            orow[col0 + kw * dw] += src[kw]
    return out


def conv2d_plan(x_shape, w_shape, out_shape, stride, padding, dilation, int groups,
                b_source=None):
    """Plan a standard/grouped/strided/dilated/pointwise conv (NCHW, weight OIHW).

    padding is ((top, bottom), (left, right)); only top/left place the taps, the rest
    is already in the output shape. A strided conv is planned on the input's phase
    planes: tap row offset dy = kh*dilation - top = sh*q + a reads plane row a, at grid
    row i + q, with unit stride. A direct plan (see _direct_geometry) takes those
    planes from the zero-bordered input, a packed plan from the input as it is.
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
    pack_spec = (tap_kh * KW + tap_kw, KH * KW)
    prefer_packed = _packing_pays(N * H_out * W_out, KH * KW == 1)
    grids = [(H_out, W_out, tap_dy, tap_dx)]
    src, phase, qy, qx = _direct_geometry(H, W, stride, grids, Cg * KH * KW)
    direct, channel_tiles, direct_without = _choose_direct(b_source, prefer_packed, grids,
                                                           src.Ws, M)
    if direct:
        plan = Plan(N, len(src.used) * C_in, src.Hs, src.Ws, groups, M, H_out * W_out, 1, 1,
                    lda, M * lda, aoff, qy, qx, phases, pack_spec, True,
                    tap_base=phase * C_in * src.plane, Cg=Cg, direct=src,
                    channel_tiles=channel_tiles,
                    tap_window=_tap_windows(H, W, stride, tap_dy, tap_dx))
        if not direct_without:
            plan.without_channel_tiles = conv2d_plan(x_shape, w_shape, out_shape, stride,
                                                     padding, dilation, groups, "packed")
        return plan
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
    return Plan(N, C_img, H, W, groups, M, H_out * W_out, sh, sw, lda, M * lda, aoff, tap_dy,
                tap_dx, phases, pack_spec, prefer_packed, tap_base=tap_base,
                polyphase=polyphase, Cg=Cg)


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
                          int groups, b_source=None):
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
    pack_spec = (tap_kh * KW + tap_kw, M * KH * KW)
    tap_dy = np.asarray(tap_dy, dtype=np.intp)
    tap_dx = np.asarray(tap_dx, dtype=np.intp)
    # Every phase is a unit-stride conv over the same input: one bordered source plane.
    grids = [(hg, wg, tap_dy[t0:t1], tap_dx[t0:t1]) for hg, wg, _, _, _, t0, t1 in phases
             if t1 > t0]
    if grids:
        src, _, qy, qx = _direct_geometry(H, W, (1, 1), grids,
                                          Cg * max(t1 - t0 for *_, t0, t1 in phases))
        direct, channel_tiles, direct_without = _choose_direct(b_source, prefer_packed,
                                                               grids, src.Ws, M)
        if direct:
            plan = Plan(N, C_in, src.Hs, src.Ws, groups, M, H_out * W_out, 1, 1, KH * KW,
                        Cg * M * KH * KW, aoff, qy, qx, phases, pack_spec, True, direct=src,
                        channel_tiles=channel_tiles,
                        tap_window=_tap_windows(H, W, (1, 1), tap_dy, tap_dx))
            if not direct_without:
                plan.without_channel_tiles = conv_transpose2d_plan(
                    x_shape, w_shape, out_shape, stride, padding, dilation, groups, "packed")
            return plan
    return Plan(N, C_in, H, W, groups, M, H_out * W_out, 1, 1, KH * KW, Cg * M * KH * KW,
                aoff, tap_dy, tap_dx, phases, pack_spec, prefer_packed)
