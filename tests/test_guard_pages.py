"""No kernel reads outside its input or writes outside its output.

Each input and each ``out=`` array is placed so that its last byte is the last one before
a no-access page (``mprotect(PROT_NONE)``), and then so that its first byte is the first
one after such a page: a read or write past either end faults. The calls run in a subprocess, so
a fault fails this test instead of killing the test run. Widths around the vector steps
(16 float32, 8 float64 values, and the stride-2 copies' 32) at strides 1 and 2, every
kernel family (the register tiles' up-convs forced), 1 and 2 threads. (A stride-2 source-row copy once read one value past
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
    import ctypes, functools, mmap, types
    import numpy as np
    import cconv
    from cconv import _functional
    from cconv._dispatch import Algorithm

    winograd = types.SimpleNamespace(conv2d=functools.partial(
        _functional._convolution, "conv2d", algorithm=Algorithm.WINOGRAD))
    wide = types.SimpleNamespace(conv2d=functools.partial(
        _functional._convolution, "conv2d", algorithm=Algorithm.WINOGRAD_WIDE))
    up_tiles = types.SimpleNamespace(conv_transpose2d=functools.partial(
        _functional._convolution, "conv_transpose2d", algorithm=Algorithm.DIRECT_TILES))

    libc = ctypes.CDLL(None, use_errno=True)
    PAGE = mmap.PAGESIZE
    keep = []

    def guarded(shape, dtype, rng, at_end=True):
        """A C-contiguous random array between two no-access pages, touching the one
        after it (at_end) or the one before it."""
        dtype = np.dtype(dtype)
        count = int(np.prod(shape))
        pages = -(-count * dtype.itemsize // PAGE)
        buf = mmap.mmap(-1, (pages + 2) * PAGE)
        base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        for guard in (base, base + (pages + 1) * PAGE):
            if libc.mprotect(ctypes.c_void_p(guard), ctypes.c_size_t(PAGE), 0):
                raise OSError(ctypes.get_errno(), "mprotect")
        offset = (pages + 1) * PAGE - count * dtype.itemsize if at_end else PAGE
        arr = np.frombuffer(buf, dtype=dtype, count=count, offset=offset).reshape(shape)
        arr[...] = rng.standard_normal(shape)
        keep.append(buf)
        return arr

    def both_ends(call, x_shape, dtype, rng):
        """call(x, out) with x and out touching the guard after them, then before them;
        out comes from a first, unguarded call."""
        shape = call(np.zeros(x_shape, dtype), None).shape
        for at_end in (True, False):
            call(guarded(x_shape, dtype, rng, at_end), guarded(shape, dtype, rng, at_end))

    rng = np.random.default_rng(1)
    for dt in (np.float32, np.float64):
        for W in list(range(28, 40)) + list(range(60, 70)):
            for t in (1, 2):
                for k, s, p in [((1, 3), 2, 0), ((3, 3), 2, 1), ((3, 3), 1, 1), ((1, 1), 1, 0),
                                ((7, 7), 2, 3), ((1, 1), 2, 0)]:
                    w = rng.standard_normal((5, 3) + k).astype(dt)
                    both_ends(lambda x, o: cconv.conv2d(x, w, stride=s, padding=p, out=o,
                                                        n_threads=t), (1, 3, 9, W), dt, rng)
                # Depthwise; the 3x3 stride-2 kernel masks its loads of the input itself.
                for s, kk, p in [(1, 3, 1), (1, 5, 2), (2, 3, 1), (2, 5, 2), (2, 3, 0),
                                 (2, 3, 2)]:
                    w = rng.standard_normal((4, 1, kk, kk)).astype(dt)
                    both_ends(lambda x, o: cconv.conv2d(x, w, stride=s, padding=p,
                                                        groups=4, out=o, n_threads=t),
                              (1, 4, 9, W), dt, rng)
                for kk, s, p in [(2, 2, 0), (4, 2, 1), (3, 1, 1)]:
                    w = rng.standard_normal((4, 3, kk, kk)).astype(dt)
                    both_ends(lambda x, o: cconv.conv_transpose2d(x, w, stride=s, padding=p,
                                                                  out=o, n_threads=t),
                              (1, 4, 5, W), dt, rng)
                # The register tiles' stride-2 phases (masked stores of every other column).
                for kk, p, op in [(4, 1, 0), (3, 1, 0), (3, 1, 1)]:
                    w = rng.standard_normal((4, 13, kk, kk)).astype(dt)
                    both_ends(lambda x, o: up_tiles.conv_transpose2d(
                        x, w, stride=2, padding=p, output_padding=op, out=o, n_threads=t),
                        (1, 4, 3, W), dt, rng)
                # The Winograd engine in both modes (forced: at these sizes it would not
                # be chosen), odd and even output widths and heights, padding 0 and 1.
                ww = rng.standard_normal((9, 5, 3, 3)).astype(dt)
                for p, d in [(0, 1), (1, 1), (2, 2), (3, 3)]:
                    for mode in (winograd, wide):
                        both_ends(lambda x, o: mode.conv2d(x, ww, padding=p, dilation=d,
                                                           out=o, n_threads=t),
                                  (1, 5, 5 + W % 2, W), dt, rng)
                wd = rng.standard_normal((4, 1, 3, 3)).astype(dt)
                wp = rng.standard_normal((6, 4)).astype(dt)
                both_ends(lambda x, o: cconv.separable_conv2d(x, wd, wp, padding=1, out=o,
                                                              n_threads=t),
                          (1, 4, 5, W), dt, rng)
    print("ok")
''')


def test_no_kernel_touches_memory_outside_its_input_and_output():
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
