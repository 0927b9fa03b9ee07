"""Memory: no leak across 10,000 calls of each public function, bounded scratch per call.

Leak check, per function: a warm-up, then ``CCONV_MEMORY_CALLS`` (10,000) iterations of
three calls each -- a plain call, a call with ``out=``, a call that raises -- with the
resident set (``/proc/self/statm``) and the Python-side allocations (tracemalloc)
measured before and after. Tiny shapes keep the whole module at ~30 s.

Peak extra memory per call (besides inputs and the result), documented in
tests/README.md and checked here:

* implicit GEMM (conv2d, pointwise, transposed, the separable's pointwise stage):
  the packed weights, ``groups * ceil(M / 8) * 8 * kh * kw * C_in/groups`` elements
  (numpy, traced), plus per thread a B panel (128 x NR), a C tile (<= 32 m-blocks x 8 x NR)
  and a segment table: <= 51 KiB per thread (C heap, not traced);
* depthwise: per thread one zero-bordered plane ``(H + top + bottom) x (W + left + right)``
  (C heap);
* separable: also the intermediate depthwise output ``N x C*m x H_out x W_out``;
* a non-'zeros' padding_mode: a padded copy of the input; a non-contiguous argument:
  a contiguous copy of it.
"""

import gc
import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import cconv

CALLS = int(os.environ.get("CCONV_MEMORY_CALLS", "10000"))
RSS_MARGIN = 2 * 2**20          # bytes of resident growth tolerated over all the calls
TRACED_MARGIN = 64 * 2**10      # bytes of Python-side growth tolerated
ROOT = Path(__file__).resolve().parent.parent
f32 = np.float32


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


rng = np.random.default_rng(0)
X = rng.standard_normal((2, 4, 7, 7)).astype(f32)

# name -> (call(out=None), a call that raises)
CASES = {
    "conv2d": (lambda **k: cconv.conv2d(X, np.ones((6, 2, 3, 3), f32), np.ones(6, f32),
                                        padding=1, groups=2, n_threads=1, **k),
               lambda: cconv.conv2d(X, np.ones((6, 3, 3, 3), f32), n_threads=1)),
    "conv2d_reflect": (lambda **k: cconv.conv2d(X, np.ones((3, 4, 3, 3), f32), padding=2,
                                                padding_mode="reflect", n_threads=1, **k),
                       lambda: cconv.conv2d(X, np.ones((3, 4, 3, 3), f32), padding=9,
                                            padding_mode="reflect", n_threads=1)),
    "conv_transpose2d": (lambda **k: cconv.conv_transpose2d(X, np.ones((4, 3, 3, 3), f32),
                                                            stride=2, output_padding=1,
                                                            n_threads=1, **k),
                         lambda: cconv.conv_transpose2d(X, np.ones((4, 3, 3, 3), f32),
                                                        output_padding=1, n_threads=1)),
    "depthwise_conv2d": (lambda **k: cconv.depthwise_conv2d(X, np.ones((8, 1, 3, 3), f32),
                                                            padding="same", n_threads=1, **k),
                         lambda: cconv.depthwise_conv2d(X, np.ones((8, 2, 3, 3), f32),
                                                        n_threads=1)),
    "pointwise_conv2d": (lambda **k: cconv.pointwise_conv2d(X, np.ones((5, 4), f32),
                                                            n_threads=1, **k),
                         lambda: cconv.pointwise_conv2d(X, np.ones((5, 4), np.float64),
                                                        n_threads=1)),
    "separable_conv2d": (lambda **k: cconv.separable_conv2d(X, np.ones((8, 1, 3, 3), f32),
                                                            np.ones((5, 8), f32), stride=2,
                                                            n_threads=1, **k),
                         lambda: cconv.separable_conv2d(X, np.ones((8, 1, 3, 3), f32),
                                                        np.ones((5, 9), f32), n_threads=1)),
}


def _loop(call, fail, out, n):
    for _ in range(n):
        call()
        call(out=out)
        try:
            fail()
        except (ValueError, TypeError):
            pass
        else:
            raise AssertionError("the failing call did not fail")


REPORT = {}


@pytest.mark.parametrize("name", list(CASES))
def test_no_leak_over_many_calls(name):
    call, fail = CASES[name]
    out = np.empty_like(call())
    _loop(call, fail, out, 300)  # warm-up: allocator arenas, thread pool, caches
    gc.collect()
    before = rss()
    _loop(call, fail, out, CALLS)
    gc.collect()
    after = rss()
    REPORT[name] = (before, after)
    print(f"{name}: RSS before {before / 2**20:.2f} MiB, after {CALLS} x 3 calls "
          f"{after / 2**20:.2f} MiB")
    assert after - before <= RSS_MARGIN, f"RSS grew by {(after - before) / 2**10:.0f} KiB"


@pytest.mark.parametrize("name", list(CASES))
def test_no_python_side_leak(name):
    call, fail = CASES[name]
    out = np.empty_like(call())
    n = max(1, CALLS // 10)  # tracemalloc slows calls ~5x; 3,000 calls see a 22-byte leak
    _loop(call, fail, out, 50)
    gc.collect()
    tracemalloc.start()
    try:
        _loop(call, fail, out, 50)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        _loop(call, fail, out, n)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before <= TRACED_MARGIN, f"traced memory grew by {after - before} bytes"


def test_no_leak_with_several_threads():
    """Per-thread scratch is allocated and freed inside every parallel region."""
    x = rng.standard_normal((2, 8, 12, 12)).astype(f32)
    w = np.ones((8, 8, 3, 3), f32)
    dw = np.ones((16, 1, 3, 3), f32)
    calls = [lambda: cconv.conv2d(x, w, padding=1, n_threads=2),
             lambda: cconv.depthwise_conv2d(x, dw, padding=1, n_threads=2),
             lambda: cconv.conv_transpose2d(x, w, stride=2, n_threads=3)]
    n = max(1, CALLS // 50)
    for c in calls:
        for _ in range(50):
            c()
    gc.collect()
    before = rss()
    for _ in range(n):
        for c in calls:
            c()
    gc.collect()
    after = rss()
    assert after - before <= RSS_MARGIN, f"RSS grew by {(after - before) / 2**10:.0f} KiB"


# ----------------------------------------------------------------------------------
# Peak extra memory per call.

def _traced_peak(fn):
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - base, result


def _packed_weight_bytes(G, M, K, itemsize):
    return G * -(-M // 8) * 8 * K * itemsize


SLACK = 256 * 2**10  # plans, work tables, small arrays


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_peak_python_side_memory_per_call_is_bounded(dtype):
    x = rng.standard_normal((2, 16, 48, 48)).astype(dtype)
    s = np.dtype(dtype).itemsize
    # A GEMM plan that reads B in place holds one zero-bordered copy of the input (here
    # bordered by one pixel on every side).
    bordered = 2 * 16 * 50 * 50 * s
    w = rng.standard_normal((32, 8, 3, 3)).astype(dtype)
    peak, out = _traced_peak(lambda: cconv.conv2d(x, w, padding=1, groups=2))
    assert peak <= out.nbytes + bordered + _packed_weight_bytes(2, 16, 9 * 8, s) + SLACK

    wt = rng.standard_normal((16, 12, 4, 4)).astype(dtype)
    peak, out = _traced_peak(lambda: cconv.conv_transpose2d(x, wt, stride=2, padding=1))
    assert peak <= out.nbytes + bordered + _packed_weight_bytes(1, 12, 16 * 16, s) + SLACK

    dw = rng.standard_normal((32, 1, 5, 5)).astype(dtype)
    peak, out = _traced_peak(lambda: cconv.depthwise_conv2d(x, dw, padding=2))
    assert peak <= out.nbytes + SLACK  # scratch is per-thread C memory

    pw = rng.standard_normal((24, 32)).astype(dtype)
    peak, out = _traced_peak(lambda: cconv.separable_conv2d(x, dw, pw, padding=2))
    mid = 2 * 32 * 48 * 48 * s
    assert peak <= out.nbytes + mid + _packed_weight_bytes(1, 24, 32, s) + SLACK

    peak, out = _traced_peak(lambda: cconv.conv2d(x, w, padding=1, groups=2,
                                                  padding_mode="circular"))
    padded = 2 * 16 * 50 * 50 * s
    assert peak <= out.nbytes + padded + _packed_weight_bytes(2, 16, 72, s) + SLACK


PEAK_RSS = """
    import resource, numpy as np, cconv
    x = np.ones((1, 1, 3000, 3000), np.float32)
    w = np.ones((1, 1, 3, 3), np.float32)
    out = np.empty((1, 1, 3000, 3000), np.float32)
    out.fill(0)
    cconv.depthwise_conv2d(x[:, :, :8, :8], w, padding=1, n_threads=NT)  # threads up
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    cconv.depthwise_conv2d(x, w, padding=1, out=out, n_threads=NT)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(peak - base)
"""


def _scratch_growth(n_threads):
    code = textwrap.dedent(PEAK_RSS).replace("NT", str(n_threads))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    return int(run.stdout.split()[-1])


PLANE = 3002 * 3002 * 4


def test_depthwise_scratch_is_one_padded_plane_per_thread():
    growth = _scratch_growth(2)
    assert growth <= 2 * PLANE + 8 * 2**20, f"{growth / 2**20:.1f} MiB"


# Regression: every thread of the team used to allocate a plane even with one plane of
# work; the thread count is now capped at the work items.
def test_depthwise_scratch_is_capped_by_the_work_items():
    growth = _scratch_growth(8)
    assert growth <= 2 * PLANE + 8 * 2**20, f"{growth / 2**20:.1f} MiB"


# The SIMD band kernels (3x3 here) read the input plane itself: no padded plane at all.
def test_depthwise_band_kernels_allocate_no_plane():
    from cconv import _depthwise
    if not _depthwise.simd_band_available():
        pytest.skip("this build has no SIMD (AVX-512 or AVX2) band kernel")
    growth = _scratch_growth(2)
    assert growth <= 8 * 2**20, f"{growth / 2**20:.1f} MiB"
