"""Build facts the compiled code knows and Python cannot: OpenMP, flags, SIMD level."""

from cconv._openmp cimport (CCONV_OPENMP_ENABLED, CCONV_BUILD_CFLAGS, CCONV_BUILD_COMPILER,
                            omp_get_max_threads, omp_get_num_procs)

cdef extern from *:
    """
    #if defined(__AVX512F__)
    #define CCONV_SIMD "AVX-512F"
    #elif defined(__AVX2__) && defined(__FMA__)
    #define CCONV_SIMD "AVX2+FMA"
    #elif defined(__AVX__)
    #define CCONV_SIMD "AVX"
    #elif defined(__SSE2__)
    #define CCONV_SIMD "SSE2"
    #elif defined(__ARM_NEON)
    #define CCONV_SIMD "NEON"
    #else
    #define CCONV_SIMD "scalar"
    #endif
    """
    const char* CCONV_SIMD


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(CCONV_OPENMP_ENABLED)


def omp_max_threads():
    """OpenMP's current default team size (honours OMP_NUM_THREADS and omp_set_num_threads)."""
    return omp_get_max_threads()


def omp_num_procs():
    return omp_get_num_procs()


def build_info():
    return {
        "openmp": bool(CCONV_OPENMP_ENABLED),
        "compiler": CCONV_BUILD_COMPILER.decode(),
        "cflags": CCONV_BUILD_CFLAGS.decode(),
        "simd": CCONV_SIMD.decode(),
    }


# ---------------------------------------------------------------------------------
# Peak probe: the machine's multiply-add throughput, measured rather than looked up,
# so "% of peak" means the same thing on every CPU the package runs on (a Zen 4 core
# runs 512-bit FMAs as two halves, a Sapphire Rapids core has two full 512-bit units:
# a 2x difference no table of CPU names keeps up with).
#
# Each thread runs ROWS x LANES independent accumulators through acc = acc * m + a: no
# loads, no stores, enough chains to cover the FMA latency on every unit. gcc keeps the
# array in registers and emits one vector FMA per row (the same pattern as the GEMM
# micro-kernel).

from cython cimport floating
from cython.parallel cimport prange
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

cdef enum:
    ROWS = 12     # 12 vector chains: past any FMA latency x units

# Values per row: one vector register of the widest kind the build targets (16 float32
# with AVX-512, 8 with AVX2), so the 12 chains fit the register file of either (16 ymm
# registers on AVX2: with 16 float32 lanes a row was two ymm, 24 chains, spilled, and
# the probe read 71 GFLOP/s on a core whose FMAs reach 101).
cdef extern from *:
    """
    #if defined(__AVX512F__)
    #define CCONV_VECTOR_BYTES 64
    #elif defined(__AVX__)
    #define CCONV_VECTOR_BYTES 32
    #else
    #define CCONV_VECTOR_BYTES 16
    #endif
    """
    enum: CCONV_VECTOR_BYTES
    enum: LANES_F32 "(CCONV_VECTOR_BYTES / 4)"
    enum: LANES_F64 "(CCONV_VECTOR_BYTES / 8)"


cdef double fma_chains(floating seed, Py_ssize_t iterations) noexcept nogil:
    # Sized for float32; float64 uses the first LANES_F64 values of each row (a
    # constant after specialisation, so gcc still keeps the used part in registers).
    cdef floating acc[ROWS][LANES_F32]
    cdef Py_ssize_t it, i, j
    cdef Py_ssize_t lanes = LANES_F32 if floating is float else LANES_F64
    # m slightly below 1 and a small addend keep every value finite and normal forever.
    cdef floating m = <floating> 0.999999, a = <floating> 1e-7
    for i in range(ROWS):
        for j in range(lanes):
            acc[i][j] = seed + i + j
    for it in range(iterations):
        for i in range(ROWS):
            for j in range(lanes):
                acc[i][j] = acc[i][j] * m + a
    cdef double total = 0
    for i in range(ROWS):
        for j in range(lanes):
            total += acc[i][j]
    return total


cdef double now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + 1e-9 * ts.tv_nsec


cdef double fma_run(floating seed, Py_ssize_t iterations, int n_threads) except -1:
    """Seconds for n_threads threads to each run `iterations` rounds of fma_chains."""
    cdef double t0, t1, sink = 0
    cdef Py_ssize_t thread
    with nogil:
        t0 = now()
        for thread in prange(n_threads, num_threads=n_threads, schedule="static",
                             chunksize=1):
            sink += fma_chains(seed + thread, iterations)
        t1 = now()
    if sink != sink:  # keeps the result live
        raise FloatingPointError("peak probe overflowed")
    return t1 - t0


def fma_peak_gflops(dtype_is_float32, int n_threads, double duration=0.2):
    """Best GFLOP/s of FMA chains on n_threads threads, over about `duration` seconds."""
    cdef Py_ssize_t iterations = 1 << 16

    def run(Py_ssize_t iterations, int n_threads):
        cdef float seed32 = 1
        cdef double seed64 = 1
        if dtype_is_float32:
            return fma_run(seed32, iterations, n_threads)
        return fma_run(seed64, iterations, n_threads)

    # Grow the round until it takes a few milliseconds, then keep the best of the rest.
    while run(iterations, n_threads) < 2e-3 and iterations < (1 << 34):
        iterations *= 2
    best = float("inf")
    spent = 0.0
    while spent < duration or best == float("inf"):
        t = run(iterations, n_threads)
        spent += t
        best = min(best, t)
    flops = 2.0 * ROWS * (LANES_F32 if dtype_is_float32 else LANES_F64) * iterations * n_threads
    return flops / best / 1e9
