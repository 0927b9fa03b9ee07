"""Thread-count semantics, as scikit-learn's ``_openmp_effective_n_threads``.

``n_threads``: None = the process default; a positive int = exactly that many;
a negative int counts back from the number of usable cores (-1 = all of them);
0 is an error. The process default is set by :func:`set_num_threads` (or the
:func:`num_threads` context manager); unset, it is OpenMP's own default, which honours
``OMP_NUM_THREADS`` and threadpoolctl limits, capped at the usable cores.
"""

from __future__ import annotations

import contextlib
import functools
import numbers
import os
import threading

from cconv import _runtime

_lock = threading.Lock()
_process_default: int | None = None
# num_threads() blocks are per Python thread: two threads' blocks may interleave freely.
_local = threading.local()

# More OpenMP threads than this is a mistake (libgomp tries to allocate their stacks and
# dies); the kernels also never use more threads than they have work items.
MAX_THREADS = 4096


@functools.lru_cache(maxsize=1)
def usable_cores() -> int:
    """Cores this process may run on: CPU affinity, then a cgroup v2 CPU quota if any.

    Read once per process (it costs a system call and a file read).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def _check_count(n, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{name} must be an int or None, got {type(n).__name__} {n!r}")
    n = int(n)
    if n == 0:
        raise ValueError(
            f"{name}=0 is not allowed: use None for the default, a positive count, or a "
            f"negative count back from the number of cores (-1 = all {usable_cores()})")
    return n


def resolve(n_threads) -> int:
    """The concrete thread count for one call (>= 1)."""
    if n_threads is None:
        return get_num_threads()
    if type(n_threads) is int and 0 < n_threads <= MAX_THREADS:
        return n_threads
    n = _check_count(n_threads, "n_threads")
    if n > MAX_THREADS:
        raise ValueError(f"n_threads={n} is more than cconv supports (at most {MAX_THREADS})")
    if n > 0:
        return n
    cores = usable_cores()
    resolved = cores + 1 + n
    if resolved < 1:
        raise ValueError(
            f"n_threads={n} counts back past the first core: this machine has {cores} "
            f"usable cores, so negative values go down to -{cores}")
    return resolved


def get_num_threads() -> int:
    """The default thread count used when ``n_threads=None``: this thread's
    :func:`num_threads` block if inside one, else the process-wide default."""
    local = getattr(_local, "value", None)
    if local is not None:
        return local
    if _process_default is not None:
        return _process_default
    if not _runtime.openmp_enabled():
        return 1
    return max(1, min(_runtime.omp_max_threads(), usable_cores()))


def set_num_threads(n_threads) -> None:
    """Set the process-wide default (same semantics as ``n_threads``; None resets it)."""
    global _process_default
    value = None if n_threads is None else resolve(n_threads)
    with _lock:
        _process_default = value


@contextlib.contextmanager
def num_threads(n_threads):
    """Context manager: inside the block, calls from *this* Python thread default to
    ``n_threads`` (None: the process default). Other threads are not affected."""
    value = None if n_threads is None else resolve(n_threads)
    previous = getattr(_local, "value", None)
    _local.value = value
    try:
        yield get_num_threads()
    finally:
        _local.value = previous
