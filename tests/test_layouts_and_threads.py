"""Behaviour that is not arithmetic: thread counts, out=, memory layouts, ranks, specials.

* 1, 2, 3, all threads (and the process default, the setter, the context manager) give
  identical bits for every function;
* ``out=`` receives the result and is the returned object; a wrong ``out`` is refused;
* non-contiguous, Fortran-ordered, negatively strided and read-only inputs (and
  weights, biases) give the same bits as their contiguous copies, and no input is
  ever modified;
* unbatched (C, H, W) input gives the batched result's first item, at rank 3;
* a zero-size batch gives an empty result of the right shape;
* NaN and Inf propagate as IEEE arithmetic does;
* array-likes (nested lists, tuples) are accepted.
"""

import numpy as np
import pytest

cconv = pytest.importorskip("cconv")

import cases  # noqa: E402
import reference  # noqa: E402
from _checks import DTYPES, assert_matches, check_against, require_cconv  # noqa: E402

require_cconv()

DT_IDS = lambda d: np.dtype(d).name  # noqa: E731

# Big enough that every function has work to split between threads (several channel
# tiles, position tiles, batch items), small enough to run in milliseconds.
THREAD_CASES = [
    cases.conv2d_case(3, 6, 19, (23, 21), 3, padding=1, name="conv2d"),
    cases.conv2d_case(2, 6, 9, (17, 19), (3, 2), stride=2, padding="same", groups=3,
                      padding_mode="reflect", name="conv2d-grouped-reflect"),
    cases.conv_transpose2d_case(2, 5, 11, (9, 10), 4, stride=2, padding=1, name="transpose"),
    cases.conv_transpose2d_case(1, 4, 6, (5, 4), 16, stride=8, padding=4, groups=2,
                                name="transpose-upsample"),
    cases.depthwise_case(3, 13, 2, (21, 19), 3, padding=1, padding_mode="circular",
                         name="depthwise"),
    cases.pointwise_case(3, 19, 21, (17, 13), stride=1, name="pointwise"),
    cases.separable_case(2, 9, 2, 17, (19, 18), 5, stride=2, padding="same",
                         name="separable"),
    cases.conv2d_case(7, 3, 5, (9, 8), 3, padding=1, name="conv2d-batch7"),
    cases.depthwise_case(7, 1, 1, (9, 70), 3, stride=2, padding=1, name="depthwise-batch7"),
]

# Several K blocks, NC blocks and channel chunks at once: checked for bits only.
BIG_THREAD_CASES = [
    cases.conv2d_case(2, 64, 40, (20, 22), 3, padding=1, name="conv2d-64ch"),
    cases.conv2d_case(1, 130, 260, (6, 7), 2, stride=1, padding=1, name="conv2d-chunks"),
    cases.conv_transpose2d_case(1, 48, 24, (12, 13), 4, stride=2, padding=1,
                                name="transpose-48ch"),
    cases.depthwise_case(2, 32, 2, (40, 130), 5, padding=2, name="depthwise-wide"),
    cases.pointwise_case(2, 129, 70, (15, 19), name="pointwise-129ch"),
]

# One small case per function for the layout tests.
SMALL = [
    cases.conv2d_case(2, 4, 5, (7, 6), 3, padding=1, padding_mode="replicate", name="conv2d"),
    cases.conv2d_case(2, 4, 6, (7, 6), 3, stride=2, padding="same", groups=2, name="grouped"),
    cases.conv_transpose2d_case(2, 4, 5, (5, 6), 3, stride=2, padding=1, output_padding=1,
                                name="transpose"),
    cases.depthwise_case(2, 4, 2, (7, 6), 3, padding=1, padding_mode="reflect",
                         name="depthwise"),
    cases.pointwise_case(2, 4, 5, (7, 6), stride=2, name="pointwise"),
    cases.separable_case(2, 4, 1, 5, (7, 6), 3, padding=((1, 0), (2, 1)),
                         padding_mode="circular", name="separable"),
]


def _arrays(case, dtype, seed=0):
    return case.arrays(dtype, np.random.default_rng(seed))


def _call(case, arrays, **extra):
    return getattr(cconv, case.fn)(*arrays, **case.kwargs, **extra)


def _check_ref(case, out, arrays, dtype):
    check_against(getattr(reference, case.fn), out, arrays, case.kwargs, dtype,
                  context=str(case))


# ------------------------------------------------------------------ threads

@pytest.mark.parametrize("case", THREAD_CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_every_thread_count_gives_identical_bits(case, dtype):
    arrays = _arrays(case, dtype)
    one = _call(case, arrays, n_threads=1)
    _check_ref(case, one, arrays, dtype)
    for n in (2, 3, 4, 7, -1, None):
        other = _call(case, arrays, n_threads=n)
        assert other.tobytes() == one.tobytes(), f"n_threads={n} differs from 1 for {case}"


@pytest.mark.parametrize("case", BIG_THREAD_CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_every_thread_count_gives_identical_bits_on_larger_problems(case, dtype):
    arrays = _arrays(case, dtype)
    one = _call(case, arrays, n_threads=1)
    for n in (2, 3, 5, -1):
        assert _call(case, arrays, n_threads=n).tobytes() == one.tobytes(), \
            f"n_threads={n} differs from 1 for {case}"


@pytest.mark.parametrize("case", THREAD_CASES[:3], ids=str)
def test_set_num_threads_and_context_manager_give_identical_bits(case):
    arrays = _arrays(case, np.float32)
    one = _call(case, arrays, n_threads=1)
    before = cconv.get_num_threads()
    previous_default = cconv._threads._process_default  # None when unset: restore that
    try:
        for n in (1, 2, 3):
            cconv.set_num_threads(n)
            assert cconv.get_num_threads() == n
            assert _call(case, arrays).tobytes() == one.tobytes()
        cconv.set_num_threads(1)
        with cconv.num_threads(3):
            assert cconv.get_num_threads() == 3
            assert _call(case, arrays).tobytes() == one.tobytes()
        assert cconv.get_num_threads() == 1
    finally:
        cconv._threads._process_default = previous_default
    assert cconv.get_num_threads() == before


def test_get_num_threads_is_a_positive_int():
    n = cconv.get_num_threads()
    assert isinstance(n, int) and n >= 1


def test_context_manager_restores_after_an_exception():
    before = cconv.get_num_threads()
    with pytest.raises(RuntimeError):
        with cconv.num_threads(2):
            raise RuntimeError("inside")
    assert cconv.get_num_threads() == before


@pytest.mark.parametrize("case", SMALL, ids=str)
def test_zero_threads_is_a_value_error(case):
    with pytest.raises(ValueError, match="n_threads"):
        _call(case, _arrays(case, np.float64), n_threads=0)


# ------------------------------------------------------------------ out=

@pytest.mark.parametrize("case", SMALL, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_out_receives_result_and_is_returned(case, dtype):
    arrays = _arrays(case, dtype)
    expected = _call(case, arrays)
    out = np.full(expected.shape, np.nan, dtype=dtype)
    got = _call(case, arrays, out=out)
    assert got is out
    assert out.tobytes() == expected.tobytes()
    # A second call into the same (now dirty) buffer overwrites rather than accumulates.
    _call(case, arrays, out=out)
    assert out.tobytes() == expected.tobytes()


@pytest.mark.parametrize("case", SMALL[:3], ids=str)
def test_wrong_out_is_refused(case):
    arrays = _arrays(case, np.float32)
    shape = _call(case, arrays).shape
    bad = [
        np.empty(shape, np.float64),                       # wrong dtype
        np.empty(shape[:-1] + (shape[-1] + 1,), np.float32),  # wrong shape
        np.empty(shape[::-1], np.float32).T,               # right shape, not C-contiguous
    ]
    for out in bad:
        with pytest.raises((ValueError, TypeError)):
            _call(case, arrays, out=out)


# ------------------------------------------------------------------ layouts

def _layouts(a):
    """Same values, other memory layouts."""
    yield "fortran", np.asfortranarray(a)
    big = np.zeros(tuple(2 * s + 1 for s in a.shape), a.dtype)
    view = big[tuple(slice(1, None, 2) for _ in a.shape)]
    view[...] = a
    yield "strided", view
    rev = np.ascontiguousarray(a[..., ::-1])[..., ::-1]
    yield "negative-stride", rev
    if a.ndim >= 2:
        rev2 = np.ascontiguousarray(a[..., ::-1, :])[..., ::-1, :]
        yield "negative-stride-rows", rev2
    ro = a.copy()
    ro.flags.writeable = False
    yield "read-only", ro


@pytest.mark.parametrize("case", SMALL, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_any_layout_gives_identical_bits_and_inputs_are_unmodified(case, dtype):
    arrays = _arrays(case, dtype)
    expected = _call(case, arrays)
    _check_ref(case, expected, arrays, dtype)
    for i, a in enumerate(arrays):
        if a is None:
            continue
        for name, variant in _layouts(a):
            np.testing.assert_array_equal(variant, a)
            snapshot = variant.copy()
            args = list(arrays)
            args[i] = variant
            got = _call(case, args)
            assert got.tobytes() == expected.tobytes(), f"argument {i} {name} for {case}"
            assert got.flags.c_contiguous
            np.testing.assert_array_equal(variant, snapshot, err_msg=f"arg {i} {name} modified")


@pytest.mark.parametrize("case", SMALL, ids=str)
def test_all_arguments_non_contiguous_at_once(case):
    arrays = _arrays(case, np.float32)
    expected = _call(case, arrays)
    variants = [None if a is None else list(_layouts(a))[1][1] for a in arrays]
    assert _call(case, variants).tobytes() == expected.tobytes()


@pytest.mark.parametrize("case", SMALL, ids=str)
def test_inputs_are_never_modified(case):
    arrays = _arrays(case, np.float64)
    copies = [None if a is None else a.copy() for a in arrays]
    _call(case, arrays)
    out = np.empty_like(_call(case, arrays))
    _call(case, arrays, out=out)
    for a, c in zip(arrays, copies):
        if a is not None:
            np.testing.assert_array_equal(a, c)


# ------------------------------------------------------------------ ranks and sizes

@pytest.mark.parametrize("case", SMALL, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_unbatched_input_gives_unbatched_output(case, dtype):
    arrays = _arrays(case, dtype)
    batched = _call(case, arrays)
    args = list(arrays)
    args[0] = arrays[0][1]
    single = _call(case, args)
    assert single.ndim == 3 and single.dtype == np.dtype(dtype)
    assert single.tobytes() == np.ascontiguousarray(batched[1]).tobytes()


@pytest.mark.parametrize("case", SMALL, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_unbatched_out(case, dtype):
    arrays = _arrays(case, dtype)
    args = list(arrays)
    args[0] = arrays[0][0]
    expected = _call(case, args)
    out = np.empty_like(expected)
    assert _call(case, args, out=out) is out
    assert out.tobytes() == expected.tobytes()


@pytest.mark.parametrize("case", SMALL, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_zero_size_batch_gives_empty_result(case, dtype):
    arrays = _arrays(case, dtype)
    full = _call(case, arrays)
    args = list(arrays)
    args[0] = arrays[0][:0]
    empty = _call(case, args)
    assert empty.shape == (0,) + full.shape[1:]
    assert empty.dtype == np.dtype(dtype)
    for n in (1, 3):
        assert _call(case, args, n_threads=n).shape == empty.shape


# ------------------------------------------------------------------ specials

@pytest.mark.parametrize("case", SMALL, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=DT_IDS)
def test_nan_and_inf_propagate(case, dtype):
    arrays = _arrays(case, dtype)
    x = arrays[0].copy()
    # Even positions, so the stride-2 subsampling of pointwise sees them too.
    x[0, 0, 2, 2] = np.nan
    x[1, -1, 4, 4] = np.inf
    x[1, 0, 0, 0] = -np.inf
    arrays[0] = x
    out = _call(case, arrays)
    with np.errstate(invalid="ignore"):
        ref = getattr(reference, case.fn)(*arrays, **case.kwargs)
        ref_abs = getattr(reference, case.fn)(
            *[None if a is None else np.abs(a.astype(np.float64)) for a in arrays],
            **case.kwargs)
    assert np.isnan(ref).any() and np.isinf(ref).any(), "case does not exercise specials"
    assert_matches(out, ref, ref_abs, dtype, context=str(case))
    for n in (2, 3):
        assert _call(case, arrays, n_threads=n).tobytes() == out.tobytes()


def test_nan_in_weight_and_bias_propagate():
    x = np.ones((1, 2, 4, 4))
    w = np.ones((3, 2, 3, 3))
    w[1, 0, 1, 1] = np.nan
    b = np.array([0.0, 0.0, np.inf])
    out = cconv.conv2d(x, w, b, padding=1)
    assert np.isnan(out[0, 1]).all()
    assert np.isposinf(out[0, 2]).all()
    assert np.isfinite(out[0, 0]).all()


def test_overflow_to_inf_in_float32():
    x = np.full((1, 1, 2, 2), 3e38, np.float32)
    w = np.ones((1, 1, 2, 2), np.float32)
    out = cconv.conv2d(x, w)
    assert out.dtype == np.float32 and np.isposinf(out).all()


# ------------------------------------------------------------------ array-likes

@pytest.mark.parametrize("case", SMALL, ids=str)
def test_nested_lists_are_accepted(case):
    arrays = _arrays(case, np.float64)
    expected = _call(case, arrays)
    lists = [None if a is None else a.tolist() for a in arrays]
    got = _call(case, lists)
    assert got.dtype == np.float64
    assert got.tobytes() == expected.tobytes()


def test_tuples_and_float32_arraylike():
    x = np.arange(2 * 5 * 5, dtype=np.float32).reshape(1, 2, 5, 5)
    w = np.ones((1, 2, 3, 3), np.float32)

    class ArrayLike:
        def __init__(self, a):
            self.a = a

        def __array__(self, dtype=None, copy=None):
            return self.a if dtype is None else self.a.astype(dtype)

    out = cconv.conv2d(ArrayLike(x), ArrayLike(w))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, cconv.conv2d(x, w))
    as_tuples = tuple(tuple(tuple(map(tuple, c)) for c in img) for img in x.astype(np.float64))
    np.testing.assert_array_equal(cconv.conv2d(as_tuples, w.astype(np.float64)),
                                  cconv.conv2d(x.astype(np.float64), w.astype(np.float64)))


@pytest.mark.parametrize("c_in", [2, 16, 127, 128, 129])
@pytest.mark.parametrize("special", [np.nan, np.inf])
def test_nonfinite_weight_on_taps_that_see_only_padding_propagates(c_in, special):
    # Zero padding is part of the definition: out = sum w * x_padded, and 0 * NaN and
    # 0 * Inf are NaN in IEEE arithmetic (torch agrees). With dilation 4 and padding 4 on
    # a 4x4 input, tap (0, 0) reads only padding for every output, so a NaN/Inf there
    # must make every output of that channel NaN, whatever the channel count (a kernel
    # that skips all-padding taps must not change the answer).
    rng = np.random.default_rng(12)
    x = rng.standard_normal((1, c_in, 4, 4))
    w = rng.standard_normal((3, c_in, 3, 3))
    w[1, c_in // 2, 0, 0] = special
    kw = dict(padding=4, dilation=4)
    out = cconv.conv2d(x, w, **kw)
    with np.errstate(invalid="ignore"):
        ref = reference.conv2d(x, w, **kw)
        ref_abs = reference.conv2d(np.abs(x), np.abs(w), **kw)
    assert np.isnan(ref[0, 1]).all()
    assert_matches(out, ref, ref_abs, np.float64, context=f"c_in={c_in} special={special}")


@pytest.mark.parametrize("fn", ["conv2d", "depthwise_conv2d"])
def test_nonfinite_weight_with_zero_padding_small(fn):
    x = np.ones((1, 1, 3, 3))
    w = np.ones((1, 1, 3, 3))
    w[0, 0, 0, 0] = np.inf
    out = getattr(cconv, fn)(x, w, padding=1)
    # Outputs whose tap (0, 0) reads padding: 0 * Inf = NaN; the others: Inf.
    expected = np.array([[np.nan, np.nan, np.nan], [np.nan, np.inf, np.inf],
                         [np.nan, np.inf, np.inf]])
    np.testing.assert_array_equal(out[0, 0], expected)


def test_non_native_byte_order_input():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((1, 3, 6, 5))
    w = rng.standard_normal((2, 3, 3, 3))
    expected = cconv.conv2d(x, w, padding=1)
    got = cconv.conv2d(x.astype(">f8"), w.astype(">f8"), padding=1)
    np.testing.assert_array_equal(np.asarray(got, dtype=np.float64), expected)


# ------------------------------------------------------------------ no stale state

def test_repeated_calls_with_changing_parameters_on_one_shape():
    # Plans may be cached between calls; every parameter must be part of the key.
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2, 6, 9, 10))
    weights = {1: rng.standard_normal((6, 6, 3, 3)), 2: rng.standard_normal((6, 3, 3, 3))}
    variants = [dict(padding=1), dict(padding=1, padding_mode="reflect"),
                dict(padding=1, padding_mode="circular"), dict(padding=(1, 0)),
                dict(padding="same", stride=2), dict(padding=1, dilation=2),
                dict(padding=1, groups=2), dict(padding=2, stride=(2, 1)), dict(padding=1)]
    for kw in variants + variants[::-1]:
        w = weights[kw.get("groups", 1)]
        for dtype in (np.float64, np.float32, np.float64):
            xx, ww = x.astype(dtype), w.astype(dtype)
            out = cconv.conv2d(xx, ww, **kw)
            check_against(reference.conv2d, out, [xx, ww, None], kw, dtype, context=str(kw))
    wt = weights[1]
    for kw in [dict(stride=2), dict(stride=2, padding=1), dict(stride=1, padding=1),
               dict(stride=3, output_padding=2), dict(stride=2, dilation=2, output_padding=1),
               dict(stride=2)]:
        for dtype in (np.float64, np.float32):
            xx, ww = x.astype(dtype), wt.astype(dtype)
            out = cconv.conv_transpose2d(xx, ww, **kw)
            check_against(reference.conv_transpose2d, out, [xx, ww, None], kw, dtype,
                          context=str(kw))


@pytest.mark.parametrize("c", [3, 130])
@pytest.mark.parametrize("fn", ["depthwise_conv2d", "separable_conv2d"])
def test_nonfinite_depthwise_weight_on_padding_only_taps_propagates(fn, c):
    rng = np.random.default_rng(15)
    x = rng.standard_normal((1, c, 4, 4))
    dw = rng.standard_normal((c, 1, 3, 3))
    dw[1, 0, 0, 0] = np.nan
    args = [x, dw] if fn == "depthwise_conv2d" else [x, dw, rng.standard_normal((5, c))]
    kw = dict(padding=4, dilation=4)
    out = getattr(cconv, fn)(*args, **kw)
    with np.errstate(invalid="ignore"):
        ref = getattr(reference, fn)(*args, **kw)
        ref_abs = getattr(reference, fn)(*[np.abs(a) for a in args], **kw)
    assert_matches(out, ref, ref_abs, np.float64, context=f"{fn} c={c}")
