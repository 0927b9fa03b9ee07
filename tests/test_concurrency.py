"""Concurrency: Python threads calling different cconv functions at once.

Every kernel releases the GIL, so several OpenMP teams run side by side. Each thread
checks its results *bitwise* against a serial ``n_threads=1`` run (results do not
depend on the thread count), so any cross-talk between calls -- shared scratch, a
racing plan, a default read half-way through a change -- shows up as a mismatch.
Scale: ``CCONV_CONCURRENCY_THREADS`` (8) Python threads x ``CCONV_CONCURRENCY_CALLS`` (200)
calls each, plus one thread that keeps changing the process default.
"""

import os
import threading

import numpy as np
import pytest

import cconv

N_PY_THREADS = int(os.environ.get("CCONV_CONCURRENCY_THREADS", "8"))
CALLS = int(os.environ.get("CCONV_CONCURRENCY_CALLS", "200"))
THREAD_COUNTS = [1, 2, 3, 4, -1, None]

rng = np.random.default_rng(1)


def _r(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


X32 = _r(2, 12, 37, 33)
X64 = _r(2, 12, 37, 33, dtype=np.float64)
PROBLEMS = {
    "conv2d": lambda nt: cconv.conv2d(X32, W_CONV, B_CONV, stride=(1, 2), padding=1,
                                      groups=3, n_threads=nt),
    "conv2d_f64_reflect": lambda nt: cconv.conv2d(X64, W_CONV64, padding=(2, 1), dilation=2,
                                                  padding_mode="reflect", n_threads=nt),
    "conv_transpose2d": lambda nt: cconv.conv_transpose2d(X32, W_T, stride=2, padding=1,
                                                          output_padding=1, n_threads=nt),
    "depthwise_conv2d": lambda nt: cconv.depthwise_conv2d(X32, W_DW, padding="same",
                                                          n_threads=nt),
    "conv_transpose2d_few_pixels": lambda nt: cconv.conv_transpose2d(  # col2im path
        X_SMALL, W_T_SMALL, B_T_SMALL, stride=2, padding=1, groups=2, n_threads=nt),
    "pointwise_conv2d": lambda nt: cconv.pointwise_conv2d(X64, W_PW64, n_threads=nt),
    "separable_conv2d": lambda nt: cconv.separable_conv2d(X32, W_DW, W_PW, stride=2,
                                                          padding=2, n_threads=nt),
}
W_CONV, B_CONV = _r(15, 4, 3, 3), _r(15)
W_CONV64 = _r(7, 12, 3, 5, dtype=np.float64)
W_T = _r(12, 5, 4, 3)
W_DW = _r(24, 1, 5, 5)
W_PW, W_PW64 = _r(9, 24), _r(20, 12, dtype=np.float64)
X_SMALL, W_T_SMALL, B_T_SMALL = _r(1, 16, 5, 6), _r(16, 12, 4, 4), _r(24)


@pytest.fixture(scope="module")
def expected():
    return {name: fn(1) for name, fn in PROBLEMS.items()}


@pytest.fixture(autouse=True)
def _reset_default():
    yield
    cconv.set_num_threads(None)


def _hammer(expected, n_py_threads, calls, n_threads_for, extra=None):
    names = list(PROBLEMS)
    errors, done = [], []
    start = threading.Barrier(n_py_threads + (1 if extra else 0))
    stop = threading.Event()

    def worker(i):
        try:
            start.wait()
            for j in range(calls):
                name = names[(i + j) % len(names)]
                nt = n_threads_for(i, j)
                got = PROBLEMS[name](nt)
                if not np.array_equal(got, expected[name]):
                    errors.append(f"thread {i}, call {j}: {name} with n_threads={nt} differs")
            done.append(i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"thread {i}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_py_threads)]
    if extra:
        threads.append(threading.Thread(target=extra, args=(start, stop, errors)))
    for t in threads:
        t.start()
    for t in threads[:n_py_threads]:
        t.join(timeout=600)
    stop.set()
    for t in threads[n_py_threads:]:
        t.join(timeout=60)
    assert not errors, "\n".join(errors[:20])
    assert len(done) == n_py_threads


def test_threads_with_different_n_threads_all_get_correct_results(expected):
    _hammer(expected, N_PY_THREADS, CALLS,
            lambda i, j: THREAD_COUNTS[(i + 2 * j) % len(THREAD_COUNTS)])


def test_default_changing_under_running_calls_is_safe(expected):
    """Calls with n_threads=None while another thread keeps changing the default."""
    seen = []

    def changer(start, stop, errors):
        try:
            start.wait()
            k = 0
            while not stop.is_set():
                cconv.set_num_threads(1 + k % 4)
                seen.append(cconv.get_num_threads())
                with cconv.num_threads(2 + k % 3):
                    pass
                if k % 7 == 0:
                    cconv.set_num_threads(None)
                k += 1
        except Exception as e:  # noqa: BLE001
            errors.append(f"changer: {type(e).__name__}: {e}")

    try:
        _hammer(expected, max(2, N_PY_THREADS // 2), CALLS, lambda i, j: None, extra=changer)
    finally:
        cconv.set_num_threads(None)  # leave no process default behind for other tests
    assert len(seen) > 10  # the default really was changing during the calls
    assert all(1 <= n <= 4 for n in seen)


def test_same_arrays_shared_by_all_threads_are_not_modified(expected):
    before = {k: v.copy() for k, v in
              dict(X32=X32, X64=X64, W_CONV=W_CONV, W_T=W_T, W_DW=W_DW, W_PW=W_PW).items()}
    _hammer(expected, 4, max(1, CALLS // 4), lambda i, j: 2)
    for name, arr in before.items():
        assert np.array_equal(globals()[name], arr), f"{name} was modified"


# Regression: num_threads blocks were process-wide and interleaved blocks in two
# threads corrupted each other; they are per Python thread now.
def test_num_threads_context_in_two_threads_restores_the_default():
    original = cconv.get_num_threads()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    inside_b = []

    def a():
        with cconv.num_threads(2):
            a_in.set()
            b_in.wait(10)
        a_out.set()

    def b():
        a_in.wait(10)
        with cconv.num_threads(3):
            b_in.set()
            a_out.wait(10)
            inside_b.append(cconv.get_num_threads())

    ts = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    assert inside_b == [3]
    assert cconv.get_num_threads() == original
