"""cconv.pointwise_conv2d matches a channel contraction of the stride-subsampled input."""

import numpy as np
import pytest

cconv = pytest.importorskip("cconv")

import cases  # noqa: E402
from _checks import DTYPES, check_case, require_cconv  # noqa: E402

require_cconv()


@pytest.mark.parametrize("case", cases.pointwise_grid(), ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_pointwise_matches_reference(case, dtype):
    check_case(cconv, case, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_pointwise_2d_and_4d_weights_give_identical_bits(dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 17, 9, 5)).astype(dtype)
    w = rng.standard_normal((9, 17)).astype(dtype)
    b = rng.standard_normal(9).astype(dtype)
    np.testing.assert_array_equal(cconv.pointwise_conv2d(x, w, b, stride=2),
                                  cconv.pointwise_conv2d(x, w[:, :, None, None], b, stride=2))


@pytest.mark.parametrize("stride,hw,expect", [
    (1, (7, 5), (7, 5)), (2, (7, 5), (4, 3)), ((3, 2), (7, 5), (3, 3)), (8, (7, 5), (1, 1)),
])
def test_pointwise_stride_subsamples_without_padding(stride, hw, expect):
    x = np.ones((1, 3, *hw))
    assert cconv.pointwise_conv2d(x, np.ones((2, 3)), stride=stride).shape == (1, 2, *expect)


# The 1x1 register-tile engine (cconv._pointwise), forced on every build (it runs by
# default only with AVX2 and no AVX-512): the reference, and the GEMM engine's bits.
from cconv import _dispatch, _functional  # noqa: E402
from cconv._dispatch import Algorithm  # noqa: E402
from _checks import forced  # noqa: E402

TILES = forced("pointwise_conv2d", algorithm=Algorithm.POINTWISE_TILES)
GEMM = forced("pointwise_conv2d", algorithm=Algorithm.POINTWISE)


@pytest.mark.parametrize("case", cases.pointwise_grid(), ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_register_tiles_match_the_reference_and_the_gemm_engine(case, dtype):
    tiles = check_case(TILES, case, dtype)
    np.testing.assert_array_equal(tiles, check_case(GEMM, case, dtype), err_msg=str(case))


def _conv_1x1(x, w, b, algorithm, **kw):
    return _functional._convolution("conv2d", x, w, b, algorithm=algorithm, **kw)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("groups,c_in,c_out,hw", [
    (2, 6, 10, (5, 7)), (3, 9, 21, (4, 4)), (5, 5, 35, (1, 17)), (2, 1030, 14, (3, 3)),
])
def test_register_tiles_grouped(dtype, groups, c_in, c_out, hw):
    rng = np.random.default_rng(groups)
    x = rng.standard_normal((2, c_in, *hw)).astype(dtype)
    w = rng.standard_normal((c_out, c_in // groups, 1, 1)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    tiles = _conv_1x1(x, w, b, Algorithm.POINTWISE_TILES, groups=groups)
    np.testing.assert_array_equal(tiles, _conv_1x1(x, w, b, Algorithm.POINTWISE, groups=groups))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("hw", [(8, 8), (4, 12), (5, 4), (3, 7)])
def test_register_tiles_any_input_alignment_and_thread_count(dtype, hw):
    # Planes of whole cache lines are read in place from the first line-aligned tile on
    # (a head tile before it), others through aligned panels: every start address of
    # the input within a line, every thread count, the same bits.
    rng = np.random.default_rng(7)
    itemsize = np.dtype(dtype).itemsize
    shape = (2, 13, *hw)
    w = rng.standard_normal((11, 13, 1, 1)).astype(dtype)
    b = rng.standard_normal(11).astype(dtype)
    values = rng.standard_normal(shape).astype(dtype)
    expected = _conv_1x1(values, w, b, Algorithm.POINTWISE)
    raw = np.empty(values.nbytes + 128, dtype=np.uint8)
    base = (-raw.ctypes.data) % 64
    for shift in range(0, 64, itemsize):
        x = raw[base + shift:base + shift + values.nbytes].view(dtype).reshape(shape)
        x[...] = values
        for n_threads in (1, 2, 3):
            got = _conv_1x1(x, w, b, Algorithm.POINTWISE_TILES, n_threads=n_threads)
            np.testing.assert_array_equal(got, expected, err_msg=f"shift {shift}, {n_threads}")


def test_register_tiles_refuse_a_padded_or_larger_kernel():
    x = np.ones((1, 4, 5, 5), np.float32)
    with pytest.raises(ValueError, match="register-tile"):
        _conv_1x1(x, np.ones((2, 4, 3, 3), np.float32), None, Algorithm.POINTWISE_TILES)
    with pytest.raises(ValueError, match="register-tile"):
        _conv_1x1(x, np.ones((2, 4, 1, 1), np.float32), None, Algorithm.POINTWISE_TILES,
                  padding=1)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_separable_pointwise_step_on_either_engine_gives_the_same_bits(dtype, monkeypatch):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 21, 9, 11)).astype(dtype)
    dw = rng.standard_normal((42, 1, 3, 3)).astype(dtype)
    pw = rng.standard_normal((19, 42)).astype(dtype)
    b = rng.standard_normal(19).astype(dtype)
    results = []
    for tiles in ("avx2", None):
        monkeypatch.setattr(_dispatch, "TILE_ISA", tiles)
        results.append(cconv.separable_conv2d(x, dw, pw, None, b, padding=1))
    np.testing.assert_array_equal(*results)
