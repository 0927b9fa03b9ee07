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
