"""No kernel reads past the end of its input.

Each input is placed so that its last byte is the last one before a no-access page
(``mprotect(PROT_NONE)``): a read past the end faults. The calls run in a subprocess, so
a fault fails this test instead of killing the test run. Widths around the vector steps
(16 float32, 8 float64 values, and the stride-2 copies' 32) at strides 1 and 2, every
kernel family, 1 and 2 threads. (A stride-2 source-row copy once read one value past
each row: on the input's last row, past its end.)
"""

import os
import subprocess
import sys
import textwrap

import pytest

cconv = pytest.importorskip("cconv")
if not sys.platform.startswith("linux"):
    pytest.skip("mprotect guard pages: Linux only", allow_module_level=True)

SCRIPT = textwrap.dedent('''
    import ctypes, mmap
    import numpy as np
    import cconv

    libc = ctypes.CDLL(None, use_errno=True)
    PAGE = mmap.PAGESIZE
    keep = []

    def guarded(shape, dtype, rng):
        """A C-contiguous random array ending exactly where a no-access page begins."""
        dtype = np.dtype(dtype)
        count = int(np.prod(shape))
        pages = -(-count * dtype.itemsize // PAGE) + 1
        buf = mmap.mmap(-1, (pages + 1) * PAGE)
        base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        if libc.mprotect(ctypes.c_void_p(base + pages * PAGE), ctypes.c_size_t(PAGE), 0):
            raise OSError(ctypes.get_errno(), "mprotect")
        arr = np.frombuffer(buf, dtype=dtype, count=count,
                            offset=pages * PAGE - count * dtype.itemsize).reshape(shape)
        arr[...] = rng.standard_normal(shape)
        keep.append(buf)
        return arr

    rng = np.random.default_rng(1)
    for dt in (np.float32, np.float64):
        for W in list(range(28, 40)) + list(range(60, 70)):
            for n_threads in (1, 2):
                for k, s, p in [((1, 3), 2, 0), ((3, 3), 2, 1), ((3, 3), 1, 1), ((1, 1), 1, 0),
                                ((7, 7), 2, 3), ((1, 1), 2, 0)]:
                    x = guarded((1, 3, 9, W), dt, rng)
                    w = rng.standard_normal((5, 3) + k).astype(dt)
                    cconv.conv2d(x, w, stride=s, padding=p, n_threads=n_threads)
                for s in (1, 2):
                    x = guarded((1, 4, 9, W), dt, rng)
                    for kk in (3, 5):
                        w = rng.standard_normal((4, 1, kk, kk)).astype(dt)
                        cconv.conv2d(x, w, stride=s, padding=kk // 2, groups=4,
                                     n_threads=n_threads)
                x = guarded((1, 4, 5, W), dt, rng)
                for kk, s, p in [(2, 2, 0), (4, 2, 1), (3, 1, 1)]:
                    w = rng.standard_normal((4, 3, kk, kk)).astype(dt)
                    cconv.conv_transpose2d(x, w, stride=s, padding=p, n_threads=n_threads)
                cconv.separable_conv2d(x, rng.standard_normal((4, 1, 3, 3)).astype(dt),
                                       rng.standard_normal((6, 4)).astype(dt), padding=1,
                                       n_threads=n_threads)
    print("ok")
''')


def test_no_kernel_reads_past_the_end_of_its_input():
    # The subprocess imports the cconv this run tests (the one conftest chose).
    root = os.path.dirname(os.path.dirname(os.path.abspath(cconv.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    script = SCRIPT + f"assert cconv.__file__.startswith({root!r})\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600, cwd=root, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "ok", (
        f"exit {done.returncode} (a negative one is the signal: -11 is a fault)\n"
        f"{done.stderr[-2000:]}")
