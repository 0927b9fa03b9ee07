"""Differential fuzzing of every public function (hypothesis). Run by tests/test_fuzz.py
in a subprocess, so that a segfault fails a test instead of killing the test run.

Not collected by a plain ``pytest`` (the name does not match ``test_*.py``); to debug
in-process: ``pytest tests/fuzz_cases.py``. Budget: ``CCONV_FUZZ_EXAMPLES`` examples per
test (default 60); ``CCONV_FUZZ_COUNT_FILE``: append a line of JSON with the number of
cases run per test. ``CCONV_FUZZ_RANDOM=1``: a fresh random seed instead of the fixed
derandomized CI sequence.

Valid cases draw every parameter form (shapes 1-40, channels 1-33, int / pair / nested
/ 'same' / 'valid' padding, every padding_mode, groups, multiplier, output_padding, both
dtypes, batched or not, contiguous or not, with or without bias, ``out=`` and
``n_threads``) and check: the naive float64 reference (and torch when installed) within
a rigorous summation bound; inputs unchanged bitwise; bitwise equality across thread
counts, repeated calls and the ``out=`` path. Invalid cases take a valid case and break
one thing; they must raise ValueError or TypeError and leave ``out`` untouched.
"""

import atexit
import json
import os
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import _naive
import cconv

try:
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(1)
except ImportError:  # torch is optional
    torch = None

EXAMPLES = int(os.environ.get("CCONV_FUZZ_EXAMPLES", "60"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
    derandomize=os.environ.get("CCONV_FUZZ_RANDOM", "") in ("", "0"),
    suppress_health_check=list(HealthCheck))
MAX_MACS = 4_000_000  # per case: keeps the numpy reference fast

COUNTS = {}


def _count(name):
    COUNTS[name] = COUNTS.get(name, 0) + 1


@atexit.register
def _write_counts():
    path = os.environ.get("CCONV_FUZZ_COUNT_FILE")
    if path and COUNTS:
        with open(path, "a") as f:
            f.write(json.dumps(COUNTS) + "\n")


# ----------------------------------------------------------------------------------
# A drawn call: the cconv arguments and the same problem in canonical form for the
# references (4-D float64 arrays, ((top, bottom), (left, right)) padding).

@dataclass
class Case:
    op: str
    dtype: type
    args: list                      # positional arrays as passed to cconv
    kwargs: dict
    batched: bool
    ref: dict = field(default_factory=dict)

    def call(self, **extra):
        return getattr(cconv, self.op)(*self.args, **{**self.kwargs, **extra})


def _same(size, k, s, d):
    out = -(-size // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
    return (total // 2, total - total // 2)


def _array(draw, rng, shape, dtype, layout):
    """Random values in [-1, 1) with the drawn memory layout (same values either way)."""
    a = rng.uniform(-1, 1, size=shape).astype(dtype)
    if layout == "contiguous" or (a.ndim < 2 and layout != "byteswapped"):
        return a
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "byteswapped":  # non-native byte order, same values
        return a.astype(a.dtype.newbyteorder("S"))
    if layout == "strided":  # every other element of a larger buffer along the last axis
        big = np.zeros(shape[:-1] + (2 * shape[-1],), dtype)
        big[..., ::2] = a
        return big[..., ::2]
    # "swapped": a transposed view of a contiguous buffer of the swapped shape
    return np.ascontiguousarray(np.swapaxes(a, -1, -2)).swapaxes(-1, -2)


@st.composite
def padding_and_size(draw, k, s, d, mode, allow_strings):
    """(padding as passed, canonical padding, size) per axis pair, valid for the mode."""
    form = draw(st.sampled_from(["int", "pair", "nested", "valid", "same"] if allow_strings
                                else ["int", "pair", "nested", "valid"]))
    span = [d[a] * (k[a] - 1) + 1 for a in (0, 1)]
    if form in ("valid", "same"):
        lo = [max(1, span[a]) if form == "valid" else 1 for a in (0, 1)]
        size = [draw(st.integers(lo[a], 40)) for a in (0, 1)]
        canon = (((0, 0), (0, 0)) if form == "valid" else
                 tuple(_same(size[a], k[a], s[a], d[a]) for a in (0, 1)))
        for a in (0, 1):
            if mode == "reflect":
                assume(max(canon[a]) < size[a])
            elif mode == "circular":
                assume(max(canon[a]) <= size[a])
        return form, canon, tuple(size)
    p = draw(st.integers(0, 6))
    if form == "int":
        canon, passed = ((p, p), (p, p)), p
    elif form == "pair":
        q = draw(st.integers(0, 6))
        canon, passed = ((p, p), (q, q)), draw(st.sampled_from([(p, q), [p, q]]))
    else:
        canon = tuple(tuple(draw(st.integers(0, 6)) for _ in range(2)) for _ in range(2))
        passed = canon
    size = []
    for a in (0, 1):
        lo = max(1, span[a] - sum(canon[a]))
        if mode == "reflect":
            lo = max(lo, max(canon[a]) + 1)
        elif mode == "circular":
            lo = max(lo, max(canon[a]))
        assume(lo <= 40)
        size.append(draw(st.integers(lo, 40)))
    return passed, canon, tuple(size)


OPS = ["conv2d", "conv_transpose2d", "depthwise_conv2d", "pointwise_conv2d",
       "separable_conv2d"]
LAYOUTS = ["contiguous", "contiguous", "fortran", "strided", "swapped", "byteswapped"]


@st.composite
def valid_case(draw, op=None):
    op = op or draw(st.sampled_from(OPS))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    batched = draw(st.booleans())
    N = draw(st.integers(1, 3)) if batched else 1
    small = st.integers(1, 4)
    k = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    s = (draw(small), draw(small))
    d = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    has_bias = draw(st.booleans())
    layout = lambda: draw(st.sampled_from(LAYOUTS))
    kwargs, ref = {}, {}
    if op == "pointwise_conv2d":
        k, d = (1, 1), (1, 1)

    if op in ("conv2d", "conv_transpose2d"):
        groups = draw(st.sampled_from([1, 1, 2, 3, "all"]))
        C_in = draw(st.integers(1, 33))
        groups = C_in if groups == "all" else groups
        C_in = max(groups, C_in - C_in % groups)
        M = draw(st.integers(1, max(1, 33 // groups)))
        kwargs.update(groups=groups)
        ref.update(groups=groups)
    elif op == "pointwise_conv2d":
        C_in, M, groups = draw(st.integers(1, 33)), draw(st.integers(1, 33)), 1
    else:
        C_in, M = draw(st.integers(1, 33)), draw(st.integers(1, 4))  # M: multiplier
        groups = C_in

    if op == "conv_transpose2d":
        op_pad = tuple(draw(st.integers(0, max(s[a], d[a]) - 1)) for a in (0, 1))
        passed, canon, (H, W) = draw(padding_and_size(k, s, d, "zeros", False))
        # output size >= 1 (the padding cannot crop everything away)
        for a, size in enumerate((H, W)):
            assume((size - 1) * s[a] - sum(canon[a]) + d[a] * (k[a] - 1) + 1 + op_pad[a] >= 1)
        kwargs.update(stride=s, padding=passed, output_padding=op_pad, dilation=d)
        ref.update(stride=s, padding=canon, output_padding=op_pad, dilation=d)
        w_shape, b_len = (C_in, M, *k), M * groups
    elif op == "pointwise_conv2d":
        H, W = draw(st.integers(1, 40)), draw(st.integers(1, 40))
        kwargs.update(stride=s)
        ref.update(stride=s)
        w_shape = draw(st.sampled_from([(M, C_in), (M, C_in, 1, 1)]))
        b_len = M
    else:
        mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
        passed, canon, (H, W) = draw(padding_and_size(k, s, d, mode, True))
        kwargs.update(stride=s, padding=passed, dilation=d, padding_mode=mode)
        ref.update(stride=s, padding=canon, dilation=d, padding_mode=mode)
        if op == "conv2d":
            w_shape, b_len = (M * groups, C_in // groups, *k), M * groups
        else:
            w_shape, b_len = (C_in * M, 1, *k), C_in * M

    macs = N * C_in * M * H * W * k[0] * k[1]
    assume(macs <= MAX_MACS)
    x = _array(draw, rng, (N, C_in, H, W) if batched else (C_in, H, W), dtype, layout())
    w = _array(draw, rng, w_shape, dtype, layout())
    b = _array(draw, rng, (b_len,), dtype, layout()) if has_bias else None
    args = [x, w]
    if op == "separable_conv2d":
        C_out = draw(st.integers(1, 33))
        pw = _array(draw, rng, draw(st.sampled_from([(C_out, C_in * M), (C_out, C_in * M, 1, 1)])),
                    dtype, layout())
        pw_b = _array(draw, rng, (C_out,), dtype, layout()) if draw(st.booleans()) else None
        args += [pw, b, pw_b]
    else:
        args.append(b)
    # The int-pair arguments in every accepted spelling (the reference keeps the pairs).
    for name in ("stride", "dilation", "output_padding"):
        if name in kwargs:
            kwargs[name] = draw(pair_form(kwargs[name]))
    return Case(op, dtype, args, kwargs, batched, ref)


def pair_form(pair):
    forms = [pair, list(pair), tuple(np.int64(v) for v in pair), np.array(pair)]
    if pair[0] == pair[1]:
        forms += [pair[0], np.int32(pair[0])]
    return st.sampled_from(forms)


def reference(case, absolute=False):
    """float64 naive result, 4-D; with absolute=True, the same on |inputs| (error scale)."""
    f = (lambda a: None if a is None else np.abs(np.asarray(a, np.float64))) if absolute \
        else (lambda a: None if a is None else np.asarray(a, np.float64))
    a = [f(v) for v in case.args]
    x = a[0] if case.batched else a[0][None]
    r = case.ref
    if case.op == "conv_transpose2d":
        return _naive.conv_transpose2d(x, a[1], a[2], **r)
    if case.op == "separable_conv2d":
        return _naive.separable_conv2d(x, a[1], a[2], a[3], a[4], **r)
    w = a[1]
    if case.op == "pointwise_conv2d":
        w = w.reshape(w.shape[0], w.shape[1], 1, 1)
    groups = x.shape[1] if case.op == "depthwise_conv2d" else r.get("groups", 1)
    return _naive.conv2d(x, w, a[2], r["stride"], r.get("padding", ((0, 0), (0, 0))),
                         r.get("dilation", (1, 1)), groups, r.get("padding_mode", "zeros"))


def torch_reference(case):
    """The same problem through torch (float64), padding applied the same explicit way."""
    t = lambda a: None if a is None else torch.from_numpy(np.array(a, np.float64))
    a = [t(v) for v in case.args]
    x = a[0] if case.batched else a[0][None]
    r = case.ref
    if case.op == "conv_transpose2d":
        full = F.conv_transpose2d(x, a[1], None, r["stride"], 0, 0, r["groups"], r["dilation"])
        (pt, pb), (pl, pr) = r["padding"]
        oph, opw = r["output_padding"]
        full = F.pad(full, (0, opw, 0, oph))
        out = full[:, :, pt:full.shape[2] - pb, pl:full.shape[3] - pr]
        if a[2] is not None:
            out = out + a[2][None, :, None, None]
        return out.numpy()
    if case.op == "pointwise_conv2d":
        w = a[1].reshape(a[1].shape[0], a[1].shape[1], 1, 1)
        return F.conv2d(x, w, a[2], r["stride"]).numpy()
    xp = torch.from_numpy(np.pad(x.numpy(), ((0, 0), (0, 0)) + tuple(r["padding"]),
                                 mode=_naive.NUMPY_PAD_MODE[r["padding_mode"]]))
    if case.op == "conv2d":
        return F.conv2d(xp, a[1], a[2], r["stride"], 0, r["dilation"], r["groups"]).numpy()
    dw_bias = a[3] if case.op == "separable_conv2d" else a[2]
    mid = F.conv2d(xp, a[1], dw_bias, r["stride"], 0, r["dilation"], x.shape[1])
    if case.op == "depthwise_conv2d":
        return mid.numpy()
    pw = a[2].reshape(a[2].shape[0], a[2].shape[1], 1, 1)
    return F.conv2d(mid, pw, a[4]).numpy()


def tolerance(case):
    """Elementwise bound: (taps + 2) * eps * sum|x||w| (+ the pointwise stage's share)."""
    eps = np.finfo(case.dtype).eps
    w = case.args[1]
    if case.op == "conv_transpose2d":
        terms = w.shape[0] // case.ref["groups"] * w.shape[2] * w.shape[3]
    else:
        terms = int(np.prod(w.shape[1:]))
    if case.op == "separable_conv2d":
        terms += case.args[2].shape[1]
    return (terms + 4) * eps * reference(case, absolute=True) + 1e-300


def _snapshot(case):
    return [None if a is None else (a.copy(), a.strides) for a in case.args]


def _assert_unchanged(case, snap):
    for a, s in zip(case.args, snap):
        if a is not None:
            assert a.strides == s[1]
            assert np.array_equal(a, s[0], equal_nan=True), "an input was modified"


def check_valid(case, n_threads):
    snap = _snapshot(case)
    got = case.call(n_threads=1)
    _assert_unchanged(case, snap)
    expected = reference(case)
    expected_user = expected if case.batched else expected[0]
    assert got.dtype == case.dtype and got.shape == expected_user.shape
    got4 = got if case.batched else got[None]
    err = np.abs(got4 - expected)
    tol = tolerance(case)
    assert (err <= tol).all(), (f"max error {err.max():.3g} vs tolerance "
                                f"{tol.reshape(-1)[np.argmax(err - tol)]:.3g}")
    if torch is not None:
        assert np.allclose(torch_reference(case), expected, rtol=1e-9, atol=1e-9), \
            "torch and the naive reference disagree"
    # Bitwise: other thread counts, a repeated call, and the out= path.
    again = case.call(n_threads=n_threads)
    assert np.array_equal(again, got), f"n_threads={n_threads} changed the bits"
    out = np.full(got.shape, np.nan, case.dtype)
    returned = case.call(out=out, n_threads=n_threads)
    assert returned is out and np.array_equal(out, got)
    _assert_unchanged(case, snap)


THREADS = st.sampled_from([1, 2, 3, 5, -1, None])


@pytest.mark.parametrize("op", OPS)
@FUZZ_SETTINGS
@given(data=st.data(), n_threads=THREADS)
def test_valid_configuration_matches_reference(op, data, n_threads):
    case = data.draw(valid_case(op), label="case")
    _count("valid_" + op)
    check_valid(case, n_threads)


# ----------------------------------------------------------------------------------
# Invalid configurations: a valid case with one thing broken.

BAD_INTS = st.sampled_from([0, -1, -7, 1.5, "2", None, True, (1, 2, 3), (1,), [[1, 2]],
                            float("nan"), np.float32(2), (1, 0), (0, 1), (-1, 1), {1: 2},
                            2**31 - 1 + 0j])
BAD_PADDING = st.sampled_from([-1, (1, -1), ((1, 1), 2), ((0, -1), (0, 0)), "full", "SAME",
                               1.5, None, [[1, 2, 3], [0, 0]], ((1, 1), (1, 1), (1, 1)),
                               (1, 2, 3), True, ((1.0, 1), (1, 1)), b"same"])
BAD_DTYPES = st.sampled_from([np.int32, np.int64, np.float16, np.complex64, np.bool_,
                              object, np.uint8, "U3", np.longdouble])


def _mutations(case):
    """Names of the mutations that make this case invalid (all of them are always invalid)."""
    m = ["stride", "input_ndim", "input_dtype", "weight_dtype", "weight_ndim", "bias",
         "channels", "out_shape", "out_dtype", "out_layout", "out_overlap", "n_threads",
         "input_garbage", "weight_empty"]
    if case.op != "pointwise_conv2d":
        m += ["dilation", "padding"]
    if case.op in ("conv2d", "depthwise_conv2d", "separable_conv2d"):
        m += ["padding_mode", "too_small"]
    if case.op in ("conv2d", "conv_transpose2d"):
        m += ["groups"]
    if case.op == "conv_transpose2d":
        m += ["output_padding", "transposed_padding_mode", "same_transposed"]
    if case.op == "separable_conv2d":
        m += ["pointwise_weight"]
    return m


def _mutate(draw, case, what):
    """Returns (args, kwargs) of a call that must raise ValueError/TypeError."""
    args, kw = list(case.args), dict(case.kwargs)
    x, w = args[0], args[1]
    if what in ("stride", "dilation", "output_padding"):
        if what == "output_padding":
            too_big = max(case.ref["stride"] + case.ref["dilation"]) + draw(st.integers(0, 3))
            kw[what] = draw(st.sampled_from([-1, (0, -1), 1.5, "1", None, (1, 2, 3), too_big]))
        else:
            kw[what] = draw(BAD_INTS)
    elif what == "padding":
        kw["padding"] = draw(BAD_PADDING)
    elif what == "padding_mode":
        kw["padding_mode"] = draw(st.sampled_from(["mirror", "ZEROS", "", None, 0, "same"]))
    elif what == "transposed_padding_mode":
        kw["padding_mode"] = draw(st.sampled_from(["reflect", "replicate", "circular", "x"]))
    elif what == "same_transposed":
        kw["padding"] = "same"
    elif what == "groups":
        g = kw.get("groups", 1)
        kw["groups"] = draw(st.sampled_from([0, -1, 1.5, "1", None, g + 1 if g + 1 > 1 else 2,
                                             x.shape[-3] * 2 + 1]))
        # groups+1 must not divide both channel counts by accident
        if isinstance(kw["groups"], int) and kw["groups"] > 0:
            C_in = x.shape[-3]
            C_w = w.shape[0]
            valid_conv = (case.op == "conv2d" and C_w % kw["groups"] == 0
                          and C_in == w.shape[1] * kw["groups"])
            valid_tr = (case.op == "conv_transpose2d" and C_in % kw["groups"] == 0)
            assume(not (valid_conv or valid_tr))
    elif what == "input_ndim":
        args[0] = x[0] if x.ndim == 3 and draw(st.booleans()) else x[None, None]
    elif what == "input_dtype":
        args[0] = x.astype(draw(BAD_DTYPES))
    elif what == "weight_dtype":
        other = np.float64 if case.dtype == np.float32 else np.float32
        args[1] = w.astype(draw(st.sampled_from([other, np.int32, np.float16])))
    elif what == "weight_ndim":
        args[1] = w[..., None]
    elif what == "weight_empty":
        shape = list(w.shape)
        shape[draw(st.integers(0, len(shape) - 1))] = 0
        args[1] = np.zeros(shape, case.dtype)
    elif what == "bias":
        i = 3 if case.op == "separable_conv2d" else 2
        n = {"conv_transpose2d": w.shape[1] * kw.get("groups", 1)}.get(case.op, w.shape[0])
        args[i] = draw(st.sampled_from([np.zeros(n + 1, case.dtype), np.zeros((n, 1), case.dtype),
                                        np.zeros(n, np.int64), np.zeros(max(n - 1, 0), case.dtype),
                                        np.zeros((), case.dtype),
                                        np.zeros(n, np.float64 if case.dtype == np.float32
                                                 else np.float32)]))
    elif what == "channels":
        extra = np.zeros(x.shape[:-3] + (1,) + x.shape[-2:], case.dtype)
        args[0] = np.concatenate([x, extra], axis=-3)
        if case.op == "depthwise_conv2d" or case.op == "separable_conv2d":
            assume(w.shape[0] % (x.shape[-3] + 1) != 0)
        if case.op == "conv2d":
            assume(x.shape[-3] + 1 != w.shape[1] * kw.get("groups", 1))
    elif what == "too_small":
        kh = x.shape[-2] + sum(case.ref["padding"][0]) + 1 + draw(st.integers(0, 3))
        args[1] = np.zeros(w.shape[:2] + (kh, w.shape[3]), case.dtype)
        kw["padding"] = 0
        kw.pop("padding_mode", None)
    elif what == "pointwise_weight":
        pw = args[2]
        args[2] = draw(st.sampled_from([pw.reshape(pw.shape[0], -1)[:, :-1],
                                        np.zeros(pw.shape[:2] + (3,), case.dtype),
                                        None, "weights", pw.astype(np.int16)]))
    elif what == "n_threads":
        kw["n_threads"] = draw(st.sampled_from([0, 1.5, "2", True, False, -10_000, (2,), 2.0]))
    elif what.startswith("out"):
        got = case.call(n_threads=1)
        if what == "out_shape":
            kw["out"] = np.zeros(got.shape[:-1] + (got.shape[-1] + 1,), case.dtype)
        elif what == "out_dtype":
            kw["out"] = draw(st.sampled_from([got.astype(np.float64 if case.dtype == np.float32
                                                         else np.float32),
                                              got.tolist(), got.astype(np.int32)]))
        elif what == "out_layout":
            kw["out"] = np.zeros(got.shape + (2,), case.dtype)[..., 0]
            if kw["out"].flags.c_contiguous or draw(st.booleans()):
                kw["out"] = np.zeros(got.shape, case.dtype)
                kw["out"].flags.writeable = False
        else:  # out overlaps an input
            target = draw(st.sampled_from([i for i, a in enumerate(args)
                                           if isinstance(a, np.ndarray)]))
            a = args[target]
            buf = np.zeros(got.size + a.size, case.dtype)
            buf[:a.size] = a.reshape(-1)
            args[target] = buf[:a.size].reshape(a.shape)
            start = draw(st.integers(0, a.size - 1))
            kw["out"] = buf[start:start + got.size].reshape(got.shape)
    elif what == "input_garbage":
        args[0] = draw(st.sampled_from([None, "abc", [[1, 2], [3]], {"a": 1}, object(),
                                        [[[["x"]]]], 3.0]))
    return args, kw


@pytest.mark.parametrize("op", OPS)
@FUZZ_SETTINGS
@given(data=st.data())
def test_invalid_configuration_raises_value_or_type_error(op, data):
    case = data.draw(valid_case(op), label="case")
    what = data.draw(st.sampled_from(_mutations(case)), label="mutation")
    args, kw = _mutate(data.draw, case, what)
    _count("invalid_" + op)
    out = kw.get("out")
    before = out.copy() if isinstance(out, np.ndarray) else None
    with pytest.raises((ValueError, TypeError)):
        getattr(cconv, case.op)(*args, **kw)
    if before is not None:
        assert np.array_equal(out, before, equal_nan=True), "a failed call wrote to out"
