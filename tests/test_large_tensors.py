"""Large tensors: index arithmetic past 2**31 elements (opt-in: CCONV_LARGE_TESTS=1).

All kernel index arithmetic is Py_ssize_t; a 32-bit intermediate anywhere would wrap
for these layers. Each layer's *output* has more than 2**31 elements (the last layer's
*input* has), and a sample of outputs -- random ones, the ones around flat index 2**31
and the last one -- is checked against a float64 sum computed from the definition.
The opt-in tests need about 10 GiB of free memory (one 8.6 GB tensor alive at a time;
peak resident ~9 GB) and took 85 s on two cores. Always run: a source check that the
kernels declare no C ``int`` indices.
"""

import os
import re
from pathlib import Path

import numpy as np
import pytest

import cconv

large = pytest.mark.skipif(
    os.environ.get("CCONV_LARGE_TESTS", "") in ("", "0"),
    reason="set CCONV_LARGE_TESTS=1 to run the >2**31-element tests (about 10 GiB)")

BIG = 2**31
SIDE = 5800  # 64 x 5800 x 5800 = 2,152,960,000 > 2**31


def _random(shape, seed):
    return np.random.default_rng(seed).random(shape, dtype=np.float32) - np.float32(0.5)


def _samples(shape, n=300, seed=0):
    """Flat output indices to check: random, around 2**31, and the very last."""
    total = int(np.prod(shape))
    rng = np.random.default_rng(seed)
    flat = list(rng.integers(0, total, n))
    flat += [i for i in range(BIG - 3, BIG + 3) if i < total] + [total - 1]
    return [np.unravel_index(i, shape) for i in flat]


def _conv_at(x, w, b, stride, pad, dilation, groups, n, co, i, j):
    """One output element of a (grouped) conv from the definition, in float64."""
    C_out, Cg = w.shape[:2]
    g = co // (C_out // groups)
    s = float(b[co]) if b is not None else 0.0
    for c in range(Cg):
        for ki in range(w.shape[2]):
            for kj in range(w.shape[3]):
                y = i * stride[0] + ki * dilation[0] - pad[0]
                xx = j * stride[1] + kj * dilation[1] - pad[1]
                if 0 <= y < x.shape[2] and 0 <= xx < x.shape[3]:
                    s += float(x[n, g * Cg + c, y, xx]) * float(w[co, c, ki, kj])
    return s


def _transpose_at(x, w, b, stride, pad, n, co, i, j):
    """One output element of a transposed conv (groups=1, dilation 1): the gather form."""
    s = float(b[co]) if b is not None else 0.0
    for c in range(x.shape[1]):
        for ki in range(w.shape[2]):
            for kj in range(w.shape[3]):
                yi, xj = i + pad[0] - ki, j + pad[1] - kj
                if yi % stride[0] or xj % stride[1]:
                    continue
                yi, xj = yi // stride[0], xj // stride[1]
                if 0 <= yi < x.shape[2] and 0 <= xj < x.shape[3]:
                    s += float(x[n, c, yi, xj]) * float(w[c, co, ki, kj])
    return s


def _check(out, expected_at):
    assert out.size > BIG or expected_at is None
    worst = 0.0
    for idx in _samples(out.shape):
        want = expected_at(*idx)
        got = float(out[idx])
        worst = max(worst, abs(got - want))
        assert abs(got - want) <= 1e-4 * (1 + abs(want)), f"at {idx}: {got} != {want}"
    return worst


@large
def test_conv2d_output_past_2_31():
    x = _random((1, 2, SIDE, SIDE), 1)
    w, b = _random((64, 2, 3, 3), 2), _random(64, 3)
    out = cconv.conv2d(x, w, b, padding=1)
    assert out.shape == (1, 64, SIDE, SIDE) and out.size > BIG
    _check(out, lambda n, c, i, j: _conv_at(x, w, b, (1, 1), (1, 1), (1, 1), 1, n, c, i, j))


@large
def test_depthwise_multiplier_output_past_2_31():
    x = _random((1, 2, SIDE, SIDE), 4)
    w = _random((64, 1, 3, 3), 5)
    out = cconv.depthwise_conv2d(x, w, stride=1, padding=2, dilation=2)
    assert out.size > BIG
    _check(out, lambda n, c, i, j: _conv_at(x, w, None, (1, 1), (2, 2), (2, 2), 2, n, c, i, j))


@large
def test_pointwise_output_past_2_31():
    x = _random((1, 2, SIDE, SIDE), 6)
    w = _random((64, 2), 7)
    out = cconv.pointwise_conv2d(x, w)
    assert out.size > BIG
    w4 = w.reshape(64, 2, 1, 1)
    _check(out, lambda n, c, i, j: _conv_at(x, w4, None, (1, 1), (0, 0), (1, 1), 1, n, c, i, j))


@large
def test_conv_transpose2d_output_past_2_31():
    x = _random((1, 2, SIDE // 2, SIDE // 2), 8)
    w = _random((2, 64, 3, 3), 9)
    out = cconv.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1)
    assert out.shape == (1, 64, SIDE, SIDE)
    _check(out, lambda n, c, i, j: _transpose_at(x, w, None, (2, 2), (1, 1), n, c, i, j))


@large
def test_conv2d_input_past_2_31():
    side = 46341  # 46341**2 = 2,147,488,281 > 2**31
    x = _random((1, 1, side, side), 10)
    w = _random((3, 1, 3, 3), 11)
    out = cconv.conv2d(x, w, stride=16, padding=1)
    assert x.size > BIG
    samples = _samples(out.shape, n=200)
    # the outputs that read the rows past flat input index 2**31
    samples += [(0, c, out.shape[2] - 1, j) for c in range(3) for j in (0, out.shape[3] - 1)]
    for idx in samples:
        want = _conv_at(x, w, None, (16, 16), (1, 1), (1, 1), 1, *idx)
        assert abs(float(out[idx]) - want) <= 1e-4 * (1 + abs(want)), idx


# ----------------------------------------------------------------------------------
# Always run: the kernels' C integer declarations. Every index, extent and offset must be
# Py_ssize_t; a C ``int`` is allowed only for these names (flags, thread and group
# counts, the OpenMP API, memset's fill byte).

INT_ALLOWED = {"n_threads", "failed", "failed_flag", "valid", "any_valid", "status",
               "groups", "run_problem", "run_planes", "run_tiles", "c",
               "omp_get_max_threads", "omp_get_thread_num", "omp_get_num_procs",
               "CCONV_OPENMP_ENABLED", "CCONV_DW_SIMD",
               # thread counts and per-tile/per-block flags
               "effective_threads", "requested", "nonfinite", "tile_valid",
               "block_has_nonfinite", "contiguous",
               # the AVX2 GEMM tiles' build flag and their zero-start / add-into-C flags
               "CCONV_GEMM_AVX2", "first", "add"}
SOURCES = sorted((Path(cconv.__file__).resolve().parent).glob("*.p[yx][xd]"))


def _c_int_names(text):
    """Names declared with a C int/long/short type (``cdef int a, b`` and parameters)."""
    names = []
    # Docstrings are prose ("short tile rows" is no declaration): drop them first, but
    # keep the C code of `cdef extern from *` blocks, which is kernel code.
    text = re.sub(r'(cdef extern from \*:\s*)?"""[\s\S]*?"""',
                  lambda m: m.group(0) if m.group(1) else "", text)
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        for m in re.finditer(r"\b(?:unsigned\s+)?(?:int|long|short)\b(?!\s*\()\s*\*?\s*"
                             r"([A-Za-z_]\w*)", code):
            names.append(m.group(1))
        decl = re.match(r"\s*cdef\s+(?:unsigned\s+)?(?:int|long|short)\b\s*\*?(.*)", code)
        if decl and "(" not in decl.group(1):  # cdef int a, b = 0, c (not a function)
            names += [part.split("=")[0].strip(" *") for part in decl.group(1).split(",")]
    return [n for n in names if n and n not in TYPE_WORDS]


TYPE_WORDS = {"int", "long", "short", "unsigned", "size_t", "Py_ssize_t", "const", "float",
              "double", "floating", "bint", "void", "char"}


def test_kernel_sources_use_64_bit_indices():
    assert SOURCES, "no kernel sources found next to the package"
    bad = {}
    for path in SOURCES:
        names = set(_c_int_names(path.read_text())) - INT_ALLOWED
        if names:
            bad[path.name] = sorted(names)
    assert not bad, f"C int/long/short declarations that should be Py_ssize_t: {bad}"
