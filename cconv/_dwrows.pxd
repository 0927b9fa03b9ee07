# Depthwise row kernels, shared by the depthwise kernel (_depthwise.pyx) and the fused
# separable kernel (_separable.pyx). Inline, so each module compiles its own copy.
#
# All read a zero-padded plane (row pitch Wp) and write one output row, or one span of
# a flattened plane; none has a bounds check or a branch in its inner loop.

from cython cimport floating


cdef enum:
    BLOCK_F32 = 64   # output columns per register block, float32 (4 zmm)
    BLOCK_F64 = 32   # float64 (4 zmm)


# Band kernels (3x3 stride 1 and 2, 5x5 stride 1) in AVX-512 or AVX2 intrinsics (one
# body of macros over either instruction set's names): the plain row kernels read every input vector once per tap
# (nine unaligned, mostly line-splitting loads per nine FMAs for 3x3) and ran at about
# half the FMA peak; gcc folds any shared load back into the FMAs' memory operands, so
# only explicit vector registers share them. Here each input row is loaded once (K
# shifted vectors) and feeds the output rows that use it, through rotating row
# accumulators: 3 loads per 9 FMAs for 3x3, about 95% of the FMA peak measured alone
# with AVX-512. With AVX2 (Zen 3) they made MobileNet's 112x112 3x3 layer 2.5x faster
# than the plain kernels and its stride-2 layer 5x.
# They read the unpadded input plane under lane masks (no padded copy). The loaded
# vectors are named variables: held in a small array (X[kw]) gcc kept them on the
# stack, and the 3x3 band ran 45% slower.
# The FMA order of every output is the plain kernel's (bias, then taps in (kh, kw)
# order), so the bits are identical (float32 5x5 and 3x3 of both dtypes; gcc's float64
# plain 5x5 does not fuse its multiply-adds, so there is no float64 5x5 band).
# Where the compiler has neither (portable builds), CCONV_DW_SIMD is 0 and the callers
# keep to the plain kernels; the stubs below are never called.
cdef extern from *:
    """
    #if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
    #include <immintrin.h>
    #define CCONV_DW_SIMD 1

    /* The kernels below are written once over these names, defined per instruction set
       and dtype (at the end): SCALAR, VEC, LANES (values per vector), MASKT (a lane
       mask), LOADU, LOADZ (masked load, zeros in the lanes the mask leaves out),
       STOREN(p, n, v) (v's first n lanes to p), FMA, SET1, SETZERO, COLS (the mask of
       the lanes whose column lies in a range), EVEN / ODD (the even / odd values of two
       vectors), NEXT (a vector's values one lane on, the next vector's first last); and
       per instruction set the column block widths in vectors (UMAX_3X3, UMAX_5X5,
       UMAX_S2). */

    /* Hides a pointer's value from the optimiser (an empty asm that "changes" it). */
    #if defined(__GNUC__)
    #define CCONV_OPAQUE(p) __asm__("" : "+r"(p))
    #else
    #define CCONV_OPAQUE(p) ((void)0)
    #endif

    /* Column blocks of UMAX vectors, then one block of 1 .. UMAX vectors for the rest,
       its last vector NLAST lanes wide. A block walks every row of the band, so the
       vectors side by side are what keep several FMA chains in flight: single-vector
       tail blocks (the old tail) ran latency-bound on planes 14, 28 or 56 wide. Vector u
       of a block stores CCONV_NVALID(U, NLAST) lanes. */
    #define CCONV_NVALID(U, NLAST) ((u == (U) - 1) ? (NLAST) : LANES)
    #define CCONV_DW_COLUMNS(BLOCK, UMAX)                                             \
        Py_ssize_t j0 = 0;                                                            \
        for (; j0 + (UMAX) * LANES <= cols; j0 += (UMAX) * LANES) BLOCK(UMAX, LANES)  \
        if (j0 < cols) {                                                              \
            Py_ssize_t nvec = (cols - j0 + LANES - 1) / LANES;                        \
            Py_ssize_t last = cols - j0 - (nvec - 1) * LANES;                         \
            if (nvec == 1) BLOCK(1, last)                                             \
            else if ((UMAX) <= 2 || nvec == 2) BLOCK(2, last)                         \
            else if ((UMAX) <= 3 || nvec == 3) BLOCK(3, last)                         \
            else BLOCK(4, last)                                                       \
        }

    /* Stride 1, read straight from the unpadded input plane x (H x W, pitch ldx): the
       block's kernel row ir is input row R = row0 + ir * rstep, and vector u of it loads
       the K shifted vectors x[R][s0 + u L + kw dw], kw < K, s0 = j0 - pl, under lane
       masks that zero the columns outside [0, W); a row outside [0, H) is K zero
       vectors. So the padding is never stored anywhere. MODE says which vectors need
       the masks (mk, per vector and kw), a compile-time constant of each copy so that
       the others load unmasked: 0 none (the block is inside the plane), 3 the first and
       the last (only they reach the borders), 4 all. */
    #define CCONV_S1_MASKS(U, K)                                                      \
        Py_ssize_t s0 = j0 - pl;                                                      \
        MASKT mk[(U) * (K)];                                                          \
        for (Py_ssize_t u = 0; u < U; u++)                                            \
            for (Py_ssize_t kw = 0; kw < (K); kw++)                                   \
                mk[u * (K) + kw] = COLS(s0 + u * LANES + kw * dw, W);
    #define CCONV_S1_LOAD(U, K, MODE, KW, P)                                          \
        (((MODE) == 4 || ((MODE) == 3 && (u == 0 || u == (U) - 1)))                   \
         ? LOADZ(mk[u * (K) + (KW)], P) : LOADU(P))
    #define CCONV_S1_ROW(R, U, K, MODE)                                               \
        if ((R) >= 0 && (R) < H) {                                                    \
            const SCALAR* xr = x + (R) * ldx + s0 + u * LANES;                        \
            X0 = CCONV_S1_LOAD(U, K, MODE, 0, xr);                                    \
            X1 = CCONV_S1_LOAD(U, K, MODE, 1, xr + dw);                               \
            X2 = CCONV_S1_LOAD(U, K, MODE, 2, xr + 2 * dw);                           \
            if ((K) == 5) {                                                           \
                X3 = CCONV_S1_LOAD(U, K, MODE, 3, xr + 3 * dw);                       \
                X4 = CCONV_S1_LOAD(U, K, MODE, 4, xr + 4 * dw);                       \
            }                                                                         \
        } else {                                                                      \
            X0 = X1 = X2 = X3 = X4 = SETZERO();                                       \
        }
    /* The block's MODE, then the copy of BLOCK for it. */
    #define CCONV_S1_BLOCK(BLOCK, U, NLAST, K)                                        \
    {                                                                                 \
        Py_ssize_t first = j0 - pl, reach = ((K) - 1) * dw;                           \
        if (first >= 0 && first + (U) * LANES + reach <= W) BLOCK(U, NLAST, 0)        \
        else if ((U) >= 3 && first + LANES >= 0                                       \
                 && first + ((U) - 1) * LANES + reach <= W) BLOCK(U, NLAST, 3)        \
        else BLOCK(U, NLAST, 4)                                                       \
    }
    /* Stride 2: vector v of the 2 U + 1 loaded per row starts at column 2 j0 - pl + v L;
       MODE 3 masks the first and the last two. */
    #define CCONV_DW3X3S2(U, NLAST)                                                   \
    {                                                                                 \
        Py_ssize_t first = 2 * j0 - pl, end = first + (2 * (U) + 1) * LANES;          \
        if (first >= 0 && end <= W) CCONV_DW3X3S2_BLOCK(U, NLAST, 0)                  \
        else if (first + LANES >= 0 && end - 2 * LANES <= W)                          \
            CCONV_DW3X3S2_BLOCK(U, NLAST, 3)                                          \
        else CCONV_DW3X3S2_BLOCK(U, NLAST, 4)                                         \
    }
    #define CCONV_DW3X3_S1(U, NLAST) CCONV_S1_BLOCK(CCONV_DW3X3_BLOCK, U, NLAST, 3)
    #define CCONV_DW5X5_S1(U, NLAST) CCONV_S1_BLOCK(CCONV_DW5X5_BLOCK, U, NLAST, 5)

    /* 3x3 stride 1, one column block over the band: input row ir completes output row
       ir - 2 (kh 2), advances ir - 1 (kh 1) and starts ir (kh 0). */
    #define CCONV_DW3X3_BLOCK(U, NLAST, MODE)                                         \
    {                                                                                 \
        CCONV_S1_MASKS(U, 3)                                                          \
        VEC A[U], B[U], X0, X1, X2, X3, X4;                                           \
        for (Py_ssize_t u = 0; u < U; u++) { A[u] = vb; B[u] = vb; }  /* set before use */ \
        for (Py_ssize_t ir = 0; ir < rows + 2; ir++) {                                \
            Py_ssize_t R = row0 + ir * rstep;                                         \
            for (Py_ssize_t u = 0; u < U; u++) {                                      \
                CCONV_S1_ROW(R, U, 3, MODE)                                           \
                if (ir >= 2)                                                          \
                    STOREN(out + (ir - 2) * ldo + j0 + u * LANES, CCONV_NVALID(U, NLAST), \
                           FMA(wv[8], X2, FMA(wv[7], X1, FMA(wv[6], X0, A[u]))));     \
                if (ir >= 1 && ir <= rows)                                            \
                    A[u] = FMA(wv[5], X2, FMA(wv[4], X1, FMA(wv[3], X0, B[u])));      \
                if (ir < rows)                                                        \
                    B[u] = FMA(wv[2], X2, FMA(wv[1], X1, FMA(wv[0], X0, vb)));        \
            }                                                                         \
        }                                                                             \
    }

    /* 5x5 stride 1: four rotating partial rows (output rows ir-1 .. ir-4 with kh taps
       0, 0-1, 0-2, 0-3 summed) and five shifted loads per input row for 25 FMAs. The
       25 weights do not fit in registers beside them: held as vectors, gcc spilled them
       and every FMA loaded a whole vector from the stack (load-bound); instead each FMA
       broadcasts its weight from w (with AVX-512 an embedded {1to16} operand, a 4-byte
       load), the pointer made opaque per row so that the broadcasts are not hoisted and
       spilled again: EfficientNet's 28x28 layer 0.157 -> 0.115 ms. */
    #define CCONV_TAPS5(W, ACC)                                                       \
        FMA(SET1((W)[4]), X4, FMA(SET1((W)[3]), X3, FMA(SET1((W)[2]), X2,             \
            FMA(SET1((W)[1]), X1, FMA(SET1((W)[0]), X0, ACC)))))
    /* The same with the row's five weights in registers (WV[0..4]). */
    #define CCONV_TAPS5_HELD(WV, ACC)                                                 \
        FMA((WV)[4], X4, FMA((WV)[3], X3, FMA((WV)[2], X2,                            \
            FMA((WV)[1], X1, FMA((WV)[0], X0, ACC)))))
    /* With AVX-512's 32 registers, kernel rows 0-2 keep their 15 weights in registers
       (wh, broadcast once per band) and rows 3-4 broadcast theirs at each FMA: 15 + 5
       loads per output vector and 25 FMAs, not 30 loads (load-bound at two a cycle). */
    #if defined(__AVX512F__)
    #define CCONV_DW5X5_HOLD VEC wh[15];                                               \
        for (Py_ssize_t t = 0; t < 15; t++) wh[t] = SET1(w[t]);
    #define CCONV_TAPS5_ROW(ws, K, ACC) CCONV_TAPS5_HELD(wh + 5 * (K), ACC)
    #else
    #define CCONV_DW5X5_HOLD
    #define CCONV_TAPS5_ROW(ws, K, ACC) CCONV_TAPS5((ws) + 5 * (K), ACC)
    #endif
    #define CCONV_DW5X5_BLOCK(U, NLAST, MODE)                                         \
    {                                                                                 \
        CCONV_S1_MASKS(U, 5)                                                          \
        VEC P1[U], P2[U], P3[U], P4[U], X0, X1, X2, X3, X4;                           \
        for (Py_ssize_t u = 0; u < U; u++) { P1[u] = P2[u] = P3[u] = P4[u] = vb; }    \
        for (Py_ssize_t ir = 0; ir < rows + 4; ir++) {                                \
            Py_ssize_t R = row0 + ir * rstep;                                         \
            const SCALAR* ws = w;                                                     \
            CCONV_OPAQUE(ws);  /* the broadcasts stay in the loop */                  \
            for (Py_ssize_t u = 0; u < U; u++) {                                      \
                CCONV_S1_ROW(R, U, 5, MODE)                                           \
                if (ir >= 4)                                                          \
                    STOREN(out + (ir - 4) * ldo + j0 + u * LANES, CCONV_NVALID(U, NLAST), \
                           CCONV_TAPS5(ws + 20, P4[u]));                              \
                if (ir >= 3 && ir < rows + 3) P4[u] = CCONV_TAPS5(ws + 15, P3[u]);    \
                if (ir >= 2 && ir < rows + 2) P3[u] = CCONV_TAPS5_ROW(ws, 2, P2[u]);  \
                if (ir >= 1 && ir < rows + 1) P2[u] = CCONV_TAPS5_ROW(ws, 1, P1[u]);  \
                if (ir < rows) P1[u] = CCONV_TAPS5_ROW(ws, 0, vb);                    \
            }                                                                         \
        }                                                                             \
    }

    /* 3x3 stride 2, read straight from the unpadded input plane x (H x W, pitch ldx):
       output (i, j) reads x[2 i + kh - pt][2 j + kw - pl]. A block's row segment, from
       s = 2 j0 - pl on, is loaded as 2 U + 1 consecutive vectors V[0..2U]; vector u of
       the block takes kw 0 (the even values of V[2u], V[2u+1]) and kw 1 (the odd ones),
       and kw 2 (the even values one further on: kw 0 moved by a lane, with lane 0 of
       V[2u+2]). Lane masks zero the columns outside [0, W), and rows outside [0, H) are
       zero vectors, so the padding is never stored anywhere (copying the plane into
       split padded planes first was 58% of MobileNet's 112x112 stride-2 layer; four
       loads per vector instead of two, 25% slower). Output row i reads input rows
       2i - pt .. 2i + 2 - pt, the last shared with output row i + 1 (its kh 0). */
    #define CCONV_S2_LOAD(U, MODE, V, P)                                              \
        (((MODE) == 4 || ((MODE) == 3 && ((V) == 0 || (V) >= 2 * (U) - 1)))           \
         ? LOADZ(mv[V], P) : LOADU(P))
    #define CCONV_S2_ROW(R, U, MODE, E0, O1, E2)                                      \
        if ((R) >= 0 && (R) < H) {                                                    \
            const SCALAR* xr = x + (R) * ldx + s0 + 2 * u * LANES;                    \
            VEC a = u == 0 ? CCONV_S2_LOAD(U, MODE, 0, xr) : nxt;                     \
            VEC c = CCONV_S2_LOAD(U, MODE, 2 * u + 1, xr + LANES);                    \
            nxt = CCONV_S2_LOAD(U, MODE, 2 * u + 2, xr + 2 * LANES);                  \
            E0 = EVEN(a, c); O1 = ODD(a, c); E2 = NEXT(E0, nxt);                      \
        } else {                                                                      \
            E0 = O1 = E2 = SETZERO();                                                 \
        }
    #define CCONV_DW3X3S2_BLOCK(U, NLAST, MODE)                                       \
    {                                                                                 \
        Py_ssize_t s0 = 2 * j0 - pl;                                                  \
        MASKT mv[2 * U + 1];                                                          \
        VEC B[U], T[U], e0, o1, e2, nxt = SETZERO();                                  \
        for (Py_ssize_t v = 0; v < 2 * U + 1; v++) mv[v] = COLS(s0 + v * LANES, W);   \
        for (Py_ssize_t u = 0; u < U; u++) {                                          \
            CCONV_S2_ROW(-pt, U, MODE, e0, o1, e2)                                    \
            B[u] = FMA(wv[2], e2, FMA(wv[1], o1, FMA(wv[0], e0, vb)));                \
        }                                                                             \
        for (Py_ssize_t i = 0; i < rows; i++) {                                       \
            Py_ssize_t r = 2 * i - pt;                                                \
            for (Py_ssize_t u = 0; u < U; u++) {                                      \
                CCONV_S2_ROW(r + 1, U, MODE, e0, o1, e2)                              \
                T[u] = FMA(wv[5], e2, FMA(wv[4], o1, FMA(wv[3], e0, B[u])));          \
            }                                                                         \
            for (Py_ssize_t u = 0; u < U; u++) {                                      \
                CCONV_S2_ROW(r + 2, U, MODE, e0, o1, e2)                              \
                STOREN(out + i * ldo + j0 + u * LANES, CCONV_NVALID(U, NLAST),        \
                       FMA(wv[8], e2, FMA(wv[7], o1, FMA(wv[6], e0, T[u]))));         \
                B[u] = FMA(wv[2], e2, FMA(wv[1], o1, FMA(wv[0], e0, vb)));            \
            }                                                                         \
        }                                                                             \
    }

    /* The weights broadcast once (3x3); vb the bias. */
    #define CCONV_DW_SETUP(TAPS)                                                      \
        VEC wv[TAPS], vb = SET1(b);                                                   \
        for (Py_ssize_t t = 0; t < TAPS; t++) wv[t] = SET1(w[t]);

    /* out[i * ldo + j] = b + sum_{kh, kw < K} w[K kh + kw] * x[row0 + (i + kh) rstep]
       [j - pl + kw dw] in (kh, kw) order, for i < rows, j < cols (K = 3, 5), x zero
       outside the H x W plane. Stride 2 (3x3): the same with x[2 i + kh - pt]
       [2 j + kw - pl]. */
    #define CCONV_DW_DEFINE(SUFFIX)                                                   \
    static void cconv_dw3x3_band_##SUFFIX(SCALAR* out, Py_ssize_t ldo,                \
            const SCALAR* x, Py_ssize_t ldx, Py_ssize_t H, Py_ssize_t W,              \
            Py_ssize_t row0, Py_ssize_t rstep, Py_ssize_t pl, Py_ssize_t dw,          \
            const SCALAR* w, Py_ssize_t rows, Py_ssize_t cols, SCALAR b)              \
    { CCONV_DW_SETUP(9) CCONV_DW_COLUMNS(CCONV_DW3X3_S1, UMAX_3X3) }                  \
    static void cconv_dw5x5_band_##SUFFIX(SCALAR* out, Py_ssize_t ldo,                \
            const SCALAR* x, Py_ssize_t ldx, Py_ssize_t H, Py_ssize_t W,              \
            Py_ssize_t row0, Py_ssize_t rstep, Py_ssize_t pl, Py_ssize_t dw,          \
            const SCALAR* w, Py_ssize_t rows, Py_ssize_t cols, SCALAR b)              \
    { VEC vb = SET1(b); CCONV_DW5X5_HOLD CCONV_DW_COLUMNS(CCONV_DW5X5_S1, UMAX_5X5) }  \
    static void cconv_dw3x3s2_band_##SUFFIX(SCALAR* out, Py_ssize_t ldo,              \
            const SCALAR* x, Py_ssize_t ldx, Py_ssize_t H, Py_ssize_t W,              \
            Py_ssize_t pt, Py_ssize_t pl, const SCALAR* w,                            \
            Py_ssize_t rows, Py_ssize_t cols, SCALAR b)                               \
    { CCONV_DW_SETUP(9) CCONV_DW_COLUMNS(CCONV_DW3X3S2, UMAX_S2) }                    \
    static inline void cconv_copy_row_##SUFFIX(SCALAR* dst, const SCALAR* src,        \
                                               Py_ssize_t n)                          \
    {                                                                                 \
        Py_ssize_t j = 0;                                                             \
        for (; j + LANES <= n; j += LANES) STOREN(dst + j, LANES, LOADU(src + j));    \
        if (j < n) STOREN(dst + j, n - j, LOADZ(COLS(j, n), src + j));                \
    }

    #if defined(__AVX512F__)
    /* AVX-512: 32 vector registers, four vectors per block (the 5x5: two, beside its
       15 held weights: 15 + 8 partial rows + 5 loaded vectors + a broadcast; with four
       vectors and every weight broadcast at its FMA, 5x5 on 28x28 / 56x56 / 112x112
       planes ran 13% / 21% / 14% slower, on a Xeon); masks are k-registers. */
    #define UMAX_3X3 4
    #define UMAX_5X5 2
    #define UMAX_S2 4
    #define CCONV_AVX512_HELPERS(SUFFIX, SCALAR_, VEC_, MASKT_, LANES_, STOREM_, PERM2_,  \
                                 IDX_EVEN_, IDX_ODD_, IDX_NEXT_)                      \
    static inline MASKT_ cconv_cols_##SUFFIX(Py_ssize_t c0, Py_ssize_t n)             \
    {   /* the lanes l whose column c0 + l lies in [0, n) */                          \
        Py_ssize_t lo = c0 < 0 ? -c0 : 0, hi = n - c0 < LANES_ ? n - c0 : LANES_;     \
        if (hi <= lo) return (MASKT_) 0;                                              \
        return (MASKT_)(((1u << hi) - 1u) & ~((1u << lo) - 1u));                      \
    }                                                                                 \
    static inline void cconv_storen_##SUFFIX(SCALAR_* p, Py_ssize_t n, VEC_ v)        \
    {   /* a constant n = LANES_ folds to an unmasked store */                        \
        STOREM_(p, n >= LANES_ ? (MASKT_) ~0u : (MASKT_)((1u << n) - 1u), v);         \
    }                                                                                 \
    static inline VEC_ cconv_even_##SUFFIX(VEC_ a, VEC_ c)                            \
    { return PERM2_(a, IDX_EVEN_, c); }                                               \
    static inline VEC_ cconv_odd_##SUFFIX(VEC_ a, VEC_ c)                             \
    { return PERM2_(a, IDX_ODD_, c); }                                                \
    static inline VEC_ cconv_next_##SUFFIX(VEC_ e, VEC_ n)                            \
    { return PERM2_(e, IDX_NEXT_, n); }
    CCONV_AVX512_HELPERS(f32, float, __m512, __mmask16, 16, _mm512_mask_storeu_ps,
        _mm512_permutex2var_ps,
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30),
        _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31),
        _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16))
    CCONV_AVX512_HELPERS(f64, double, __m512d, __mmask8, 8, _mm512_mask_storeu_pd,
        _mm512_permutex2var_pd, _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14),
        _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15), _mm512_setr_epi64(1, 2, 3, 4, 5, 6, 7, 8))
    #define F32_NAMES(X) X(__m512, 16, __mmask16, _mm512_loadu_ps, _mm512_maskz_loadu_ps, \
                           _mm512_fmadd_ps, _mm512_set1_ps, _mm512_setzero_ps)
    #define F64_NAMES(X) X(__m512d, 8, __mmask8, _mm512_loadu_pd, _mm512_maskz_loadu_pd, \
                           _mm512_fmadd_pd, _mm512_set1_pd, _mm512_setzero_pd)
    #else
    /* AVX2: 16 vector registers. The 3x3 kernels keep their nine weights in registers
       and three vectors per block (weights broadcast from memory at each FMA, as the
       5x5's, with four vectors per block: 10-20% slower; two vectors: 56-wide planes
       10% slower). The 5x5 kernel keeps two vectors per block (its eight partial rows,
       five loaded vectors and a broadcast: 15 registers; one or three vectors measured
       the same). Masks are vectors; masked loads do not fault on the lanes they leave
       out. Stores never use vmaskmovps, which takes tens of cycles on AMD cores: a
       partial vector goes out as 4-, 2- and 1-value pieces. */
    #define UMAX_3X3 3
    #define UMAX_5X5 2
    #define UMAX_S2 3
    static inline __m256i cconv_cols_f32(Py_ssize_t c0, Py_ssize_t n) {
        /* the lanes l whose column c0 + l lies in [0, n): all ones in 32-bit lanes */
        __m256i col = _mm256_add_epi32(_mm256_set1_epi32((int) c0),
                                       _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), col),
                                   _mm256_cmpgt_epi32(_mm256_set1_epi32((int) n), col));
    }
    static inline __m256i cconv_cols_f64(Py_ssize_t c0, Py_ssize_t n) {
        /* the same in 64-bit lanes */
        __m256i col = _mm256_add_epi64(_mm256_set1_epi64x(c0), _mm256_setr_epi64x(0, 1, 2, 3));
        return _mm256_andnot_si256(_mm256_cmpgt_epi64(_mm256_setzero_si256(), col),
                                   _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), col));
    }
    static inline __m256 cconv_even_f32(__m256 a, __m256 c) {
        /* (a0 a2 c0 c2 | a4 a6 c4 c6), then its 64-bit pairs as (a0 a2 a4 a6 c0 c2 c4 c6) */
        return _mm256_castpd_ps(_mm256_permute4x64_pd(
            _mm256_castps_pd(_mm256_shuffle_ps(a, c, 0x88)), 0xD8));
    }
    static inline __m256 cconv_odd_f32(__m256 a, __m256 c) {
        return _mm256_castpd_ps(_mm256_permute4x64_pd(
            _mm256_castps_pd(_mm256_shuffle_ps(a, c, 0xDD)), 0xD8));
    }
    static inline __m256 cconv_next_f32(__m256 e, __m256 n) {
        /* (e1 .. e7 n0): e's upper half beside n's lower half, then a 4-byte shift */
        __m256 t = _mm256_permute2f128_ps(e, n, 0x21);
        return _mm256_castsi256_ps(_mm256_alignr_epi8(_mm256_castps_si256(t),
                                                      _mm256_castps_si256(e), 4));
    }
    static inline __m256d cconv_even_f64(__m256d a, __m256d c) {
        return _mm256_permute4x64_pd(_mm256_unpacklo_pd(a, c), 0xD8);
    }
    static inline __m256d cconv_odd_f64(__m256d a, __m256d c) {
        return _mm256_permute4x64_pd(_mm256_unpackhi_pd(a, c), 0xD8);
    }
    static inline __m256d cconv_next_f64(__m256d e, __m256d n) {
        __m256d t = _mm256_permute2f128_pd(e, n, 0x21);
        return _mm256_castsi256_pd(_mm256_alignr_epi8(_mm256_castpd_si256(t),
                                                      _mm256_castpd_si256(e), 8));
    }
    static inline __m256 cconv_loadz_f32(__m256i m, const float* p) {
        return _mm256_maskload_ps(p, m);
    }
    static inline __m256d cconv_loadz_f64(__m256i m, const double* p) {
        return _mm256_maskload_pd(p, m);
    }
    #define F32_NAMES(X) X(__m256, 8, __m256i, _mm256_loadu_ps, cconv_loadz_f32, \
                           _mm256_fmadd_ps, _mm256_set1_ps, _mm256_setzero_ps)
    #define F64_NAMES(X) X(__m256d, 4, __m256i, _mm256_loadu_pd, cconv_loadz_f64, \
                           _mm256_fmadd_pd, _mm256_set1_pd, _mm256_setzero_pd)
    #endif

    /* The per-dtype names, then the kernels of the dtype. */
    #define CCONV_VEC_OF(V, L, M, LU, LZ, F, S1, SZ) V
    #define CCONV_LANES_OF(V, L, M, LU, LZ, F, S1, SZ) L
    #define CCONV_MASKT_OF(V, L, M, LU, LZ, F, S1, SZ) M
    #define CCONV_LOADU_OF(V, L, M, LU, LZ, F, S1, SZ) LU
    #define CCONV_LOADZ_OF(V, L, M, LU, LZ, F, S1, SZ) LZ
    #define CCONV_FMA_OF(V, L, M, LU, LZ, F, S1, SZ) F
    #define CCONV_SET1_OF(V, L, M, LU, LZ, F, S1, SZ) S1
    #define CCONV_SETZERO_OF(V, L, M, LU, LZ, F, S1, SZ) SZ

    #define SCALAR float
    #define VEC F32_NAMES(CCONV_VEC_OF)
    #define LANES F32_NAMES(CCONV_LANES_OF)
    #define MASKT F32_NAMES(CCONV_MASKT_OF)
    #define LOADU F32_NAMES(CCONV_LOADU_OF)
    #define LOADZ F32_NAMES(CCONV_LOADZ_OF)
    #define FMA F32_NAMES(CCONV_FMA_OF)
    #define SET1 F32_NAMES(CCONV_SET1_OF)
    #define SETZERO F32_NAMES(CCONV_SETZERO_OF)
    #define STOREN cconv_storen_f32
    #define COLS cconv_cols_f32
    #define EVEN cconv_even_f32
    #define ODD cconv_odd_f32
    #define NEXT cconv_next_f32
    CCONV_DW_DEFINE(f32)
    #undef SCALAR
    #undef VEC
    #undef LANES
    #undef MASKT
    #undef LOADU
    #undef LOADZ
    #undef FMA
    #undef SET1
    #undef SETZERO
    #undef STOREN
    #undef COLS
    #undef EVEN
    #undef ODD
    #undef NEXT

    #define SCALAR double
    #define VEC F64_NAMES(CCONV_VEC_OF)
    #define LANES F64_NAMES(CCONV_LANES_OF)
    #define MASKT F64_NAMES(CCONV_MASKT_OF)
    #define LOADU F64_NAMES(CCONV_LOADU_OF)
    #define LOADZ F64_NAMES(CCONV_LOADZ_OF)
    #define FMA F64_NAMES(CCONV_FMA_OF)
    #define SET1 F64_NAMES(CCONV_SET1_OF)
    #define SETZERO F64_NAMES(CCONV_SETZERO_OF)
    #define STOREN cconv_storen_f64
    #define COLS cconv_cols_f64
    #define EVEN cconv_even_f64
    #define ODD cconv_odd_f64
    #define NEXT cconv_next_f64
    CCONV_DW_DEFINE(f64)
    #undef SCALAR
    #undef VEC
    #undef LANES
    #undef MASKT
    #undef LOADU
    #undef LOADZ
    #undef FMA
    #undef SET1
    #undef SETZERO
    #undef STOREN
    #undef COLS
    #undef EVEN
    #undef ODD
    #undef NEXT
    #else
    #define CCONV_DW_SIMD 0
    /* Never called (CCONV_DW_SIMD is 0): only so that the module compiles. */
    #define CCONV_DW_STUBS(SUFFIX, SCALAR)                                            \
    static void cconv_dw3x3_band_##SUFFIX(SCALAR* out, Py_ssize_t ldo,                \
            const SCALAR* x, Py_ssize_t ldx, Py_ssize_t H, Py_ssize_t W,              \
            Py_ssize_t row0, Py_ssize_t rstep, Py_ssize_t pl, Py_ssize_t dw,          \
            const SCALAR* w, Py_ssize_t rows, Py_ssize_t cols, SCALAR b) {}           \
    static void cconv_dw5x5_band_##SUFFIX(SCALAR* out, Py_ssize_t ldo,                \
            const SCALAR* x, Py_ssize_t ldx, Py_ssize_t H, Py_ssize_t W,              \
            Py_ssize_t row0, Py_ssize_t rstep, Py_ssize_t pl, Py_ssize_t dw,          \
            const SCALAR* w, Py_ssize_t rows, Py_ssize_t cols, SCALAR b) {}           \
    static void cconv_dw3x3s2_band_##SUFFIX(SCALAR* out, Py_ssize_t ldo,              \
            const SCALAR* x, Py_ssize_t ldx, Py_ssize_t H, Py_ssize_t W,              \
            Py_ssize_t pt, Py_ssize_t pl, const SCALAR* w,                            \
            Py_ssize_t rows, Py_ssize_t cols, SCALAR b) {}
    CCONV_DW_STUBS(f32, float)
    CCONV_DW_STUBS(f64, double)
    /* The row copy does get called: a plain loop, the same values. */
    #define CCONV_ROW_COPY(SUFFIX, SCALAR)                                            \
    static inline void cconv_copy_row_##SUFFIX(SCALAR* dst, const SCALAR* src,        \
                                               Py_ssize_t n)                          \
    { for (Py_ssize_t j = 0; j < n; j++) dst[j] = src[j]; }
    CCONV_ROW_COPY(f32, float)
    CCONV_ROW_COPY(f64, double)
    #endif
    """
    const int CCONV_DW_SIMD
    void cconv_dw3x3_band_f32(float* out, Py_ssize_t ldo, const float* x, Py_ssize_t ldx,
                              Py_ssize_t H, Py_ssize_t W, Py_ssize_t row0, Py_ssize_t rstep,
                              Py_ssize_t pl, Py_ssize_t dw, const float* w, Py_ssize_t rows,
                              Py_ssize_t cols, float b) noexcept nogil
    void cconv_dw3x3_band_f64(double* out, Py_ssize_t ldo, const double* x, Py_ssize_t ldx,
                              Py_ssize_t H, Py_ssize_t W, Py_ssize_t row0, Py_ssize_t rstep,
                              Py_ssize_t pl, Py_ssize_t dw, const double* w, Py_ssize_t rows,
                              Py_ssize_t cols, double b) noexcept nogil
    void cconv_dw5x5_band_f32(float* out, Py_ssize_t ldo, const float* x, Py_ssize_t ldx,
                              Py_ssize_t H, Py_ssize_t W, Py_ssize_t row0, Py_ssize_t rstep,
                              Py_ssize_t pl, Py_ssize_t dw, const float* w, Py_ssize_t rows,
                              Py_ssize_t cols, float b) noexcept nogil
    void cconv_dw5x5_band_f64(double* out, Py_ssize_t ldo, const double* x, Py_ssize_t ldx,
                              Py_ssize_t H, Py_ssize_t W, Py_ssize_t row0, Py_ssize_t rstep,
                              Py_ssize_t pl, Py_ssize_t dw, const double* w, Py_ssize_t rows,
                              Py_ssize_t cols, double b) noexcept nogil
    void cconv_dw3x3s2_band_f32(float* out, Py_ssize_t ldo, const float* x, Py_ssize_t ldx,
                                Py_ssize_t H, Py_ssize_t W, Py_ssize_t pt,
                                Py_ssize_t pl, const float* w, Py_ssize_t rows,
                                Py_ssize_t cols, float b) noexcept nogil
    void cconv_dw3x3s2_band_f64(double* out, Py_ssize_t ldo, const double* x,
                                Py_ssize_t ldx, Py_ssize_t H, Py_ssize_t W,
                                Py_ssize_t pt, Py_ssize_t pl, const double* w,
                                Py_ssize_t rows, Py_ssize_t cols, double b) noexcept nogil
    void cconv_copy_row_f32(float* dst, const float* src, Py_ssize_t n) noexcept nogil
    void cconv_copy_row_f64(double* dst, const double* src, Py_ssize_t n) noexcept nogil



cdef inline void copy_row(floating* dst, const floating* src, Py_ssize_t n) noexcept nogil:
    """dst[j] = src[j] for j < n (vectors and one masked tail where the build has
    AVX-512 or AVX2: gcc's loop spent most of a 14- or 56-wide row in its scalar
    remainder)."""
    if floating is float:
        cconv_copy_row_f32(dst, src, n)
    else:
        cconv_copy_row_f64(dst, src, n)


cdef inline void dw_band_s1(Py_ssize_t K, floating* out, const floating* x, Py_ssize_t H,
                            Py_ssize_t W, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh,
                            Py_ssize_t dw, const floating* w, Py_ssize_t rows,
                            Py_ssize_t cols, floating b) noexcept nogil:
    """A rows x cols output plane of a KxK (K = 3 or 5) stride-1 kernel (SIMD builds
    only), read straight from the unpadded H x W plane x with top / left padding pt, pl
    (zeros outside it): output row i reads input rows i - pt, i - pt + dh, ... With
    dh > 1 the rows split into dh interleaved chains (rows r, r + dh, ...), each a
    dilation-1 band of row step dh."""
    cdef Py_ssize_t r, n
    for r in range(dh if dh < rows else rows):
        n = (rows - r + dh - 1) // dh
        if floating is float:
            if K == 3:
                cconv_dw3x3_band_f32(out + r * cols, dh * cols, x, W, H, W, r - pt, dh, pl,
                                     dw, w, n, cols, b)
            else:
                cconv_dw5x5_band_f32(out + r * cols, dh * cols, x, W, H, W, r - pt, dh, pl,
                                     dw, w, n, cols, b)
        else:
            if K == 3:
                cconv_dw3x3_band_f64(out + r * cols, dh * cols, x, W, H, W, r - pt, dh, pl,
                                     dw, w, n, cols, b)
            else:
                cconv_dw5x5_band_f64(out + r * cols, dh * cols, x, W, H, W, r - pt, dh, pl,
                                     dw, w, n, cols, b)


cdef inline void dw3x3s2_band(floating* out, const floating* x, Py_ssize_t H, Py_ssize_t W,
                              Py_ssize_t pt, Py_ssize_t pl, const floating* w,
                              Py_ssize_t rows, Py_ssize_t cols, floating b) noexcept nogil:
    """A rows x cols output plane of a 3x3 stride-2 kernel (SIMD builds only), read
    straight from the unpadded H x W plane x with top / left padding pt, pl (zeros
    outside it)."""
    if floating is float:
        cconv_dw3x3s2_band_f32(out, cols, x, W, H, W, pt, pl, w, rows, cols, b)
    else:
        cconv_dw3x3s2_band_f64(out, cols, x, W, H, W, pt, pl, w, rows, cols, b)


cdef inline void taps_block_s1(floating* dst, const floating* src, const floating* w,
                               const Py_ssize_t* off, Py_ssize_t T, floating b) noexcept nogil:
    """dst[j] = b + sum_t w[t] * src[off[t] + j] for one register block of columns.

    The accumulator is a 4 x (one zmm) local array that gcc keeps in registers (a 1-D
    array of the same size is not promoted): per tap one broadcast and four FMAs with
    memory operands, and no store until every tap is summed.
    """
    cdef Py_ssize_t t, i, j
    cdef floating wv
    cdef const floating* s
    cdef float acc32[4][16]
    cdef double acc64[4][8]
    if floating is float:
        for i in range(4):
            for j in range(16):
                acc32[i][j] = b
        for t in range(T):
            wv = w[t]
            s = src + off[t]
            for i in range(4):
                for j in range(16):
                    acc32[i][j] += wv * s[i * 16 + j]
        for i in range(4):
            for j in range(16):
                dst[i * 16 + j] = acc32[i][j]
    else:
        for i in range(4):
            for j in range(8):
                acc64[i][j] = b
        for t in range(T):
            wv = w[t]
            s = src + off[t]
            for i in range(4):
                for j in range(8):
                    acc64[i][j] += wv * s[i * 8 + j]
        for i in range(4):
            for j in range(8):
                dst[i * 8 + j] = acc64[i][j]


cdef inline void row_3x3_s1(floating* o, const floating* r0, const floating* r1,
                            const floating* r2, const floating* w, Py_ssize_t dw,
                            Py_ssize_t n, floating b) noexcept nogil:
    """One output row (or flattened span) of a 3x3 stride-1 kernel, weights hoisted."""
    cdef floating w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5]
    cdef floating w6 = w[6], w7 = w[7], w8 = w[8]
    cdef Py_ssize_t j
    for j in range(n):
        o[j] = (b + w0 * r0[j] + w1 * r0[j + dw] + w2 * r0[j + 2 * dw]
                + w3 * r1[j] + w4 * r1[j + dw] + w5 * r1[j + 2 * dw]
                + w6 * r2[j] + w7 * r2[j + dw] + w8 * r2[j + 2 * dw])


cdef inline void row_3x3_s2(floating* o, const floating* r0, const floating* r1,
                            const floating* r2, const floating* w, Py_ssize_t dw,
                            Py_ssize_t n, floating b) noexcept nogil:
    """One output row of a 3x3 stride-2 kernel: even/odd reads straight from the row."""
    cdef floating w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5]
    cdef floating w6 = w[6], w7 = w[7], w8 = w[8]
    cdef Py_ssize_t j
    for j in range(n):
        o[j] = (b + w0 * r0[2 * j] + w1 * r0[2 * j + dw] + w2 * r0[2 * j + 2 * dw]
                + w3 * r1[2 * j] + w4 * r1[2 * j + dw] + w5 * r1[2 * j + 2 * dw]
                + w6 * r2[2 * j] + w7 * r2[2 * j + dw] + w8 * r2[2 * j + 2 * dw])


cdef inline void taps_block_any(floating* dst, const floating* src, const floating* w,
                                const Py_ssize_t* off, Py_ssize_t T, Py_ssize_t sw,
                                Py_ssize_t n, floating b) noexcept nogil:
    """Generic column stride: n columns, tap by tap (no register blocking)."""
    cdef Py_ssize_t t, j
    cdef floating wv
    cdef const floating* s
    for j in range(n):
        dst[j] = b
    for t in range(T):
        wv = w[t]
        s = src + off[t]
        for j in range(n):
            dst[j] += wv * s[j * sw]


cdef inline void taps_span(floating* dst, const floating* src, const floating* w,
                           const Py_ssize_t* off, Py_ssize_t T, Py_ssize_t n, floating b,
                           floating* tmp) noexcept nogil:
    """dst[j] = b + sum_t w[t] src[off[t] + j] for j < n (stride 1), in register blocks.

    A partial last block is computed into tmp and copied; src must be readable a full
    block past the span (the padded plane carries that margin).
    """
    cdef Py_ssize_t bw, j0, j
    if floating is float:
        bw = BLOCK_F32
    else:
        bw = BLOCK_F64
    j0 = 0
    while j0 + bw <= n:
        taps_block_s1(dst + j0, src + j0, w, off, T, b)
        j0 += bw
    if j0 < n:
        taps_block_s1(tmp, src + j0, w, off, T, b)
        for j in range(n - j0):
            dst[j0 + j] = tmp[j]


cdef inline void dw_output_row(floating* orow, const floating* p, const floating* w,
                               const Py_ssize_t* off, Py_ssize_t T, bint k3x3,
                               Py_ssize_t Wp, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw,
                               Py_ssize_t Wo, floating b, floating* tmp) noexcept nogil:
    """One depthwise output row from padded rows starting at p (row pitch Wp)."""
    if k3x3 and sw == 1:
        row_3x3_s1(orow, p, p + dh * Wp, p + 2 * dh * Wp, w, dw, Wo, b)
    elif k3x3 and sw == 2:
        row_3x3_s2(orow, p, p + dh * Wp, p + 2 * dh * Wp, w, dw, Wo, b)
    elif sw == 1:
        taps_span(orow, p, w, off, T, Wo, b, tmp)
    else:
        taps_block_any(orow, p, w, off, T, sw, Wo, b)

