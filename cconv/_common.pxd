# Declarations shared by the kernel modules: aligned scratch memory and integer helpers.

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
