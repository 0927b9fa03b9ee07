# The one OpenMP shim: nothing else in cconv cimports openmp.
#
# Where the compiler has no OpenMP, these fall back to a serial answer and Cython's
# prange compiles to a plain loop, so the package still builds and runs on one thread.

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define CCONV_OPENMP_ENABLED 1
    #else
    #define CCONV_OPENMP_ENABLED 0
    static int omp_get_max_threads(void) { return 1; }
    static int omp_get_thread_num(void) { return 0; }
    static int omp_get_num_procs(void) { return 1; }
    #endif
    #ifndef CCONV_BUILD_CFLAGS
    #define CCONV_BUILD_CFLAGS "unknown"
    #endif
    #ifndef CCONV_BUILD_COMPILER
    #define CCONV_BUILD_COMPILER "unknown"
    #endif
    """
    const int CCONV_OPENMP_ENABLED
    const char* CCONV_BUILD_CFLAGS
    const char* CCONV_BUILD_COMPILER
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil
    int omp_get_num_procs() noexcept nogil
