"""cconv.conv_transpose2d matches the scatter-definition reference, and is conv2d's adjoint."""

import numpy as np
import pytest

cconv = pytest.importorskip("cconv")

import cases  # noqa: E402
from _checks import DTYPES, check_case, forced, require_cconv  # noqa: E402

require_cconv()


@pytest.mark.parametrize("case", cases.conv_transpose2d_awkward(), ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_conv_transpose2d_matches_reference_at_awkward_sizes(case, dtype):
    check_case(cconv, case, dtype)


@pytest.mark.parametrize("case", cases.conv_transpose2d_product_grid(), ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_conv_transpose2d_matches_reference_over_stride_padding_output_padding(case, dtype):
    check_case(cconv, case, dtype)


@pytest.mark.parametrize("algorithm", ["TRANSPOSED_PHASES", "TRANSPOSED_COL2IM"])
@pytest.mark.parametrize("case", cases.conv_transpose2d_awkward()
                         + cases.conv_transpose2d_product_grid(), ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_both_transposed_algorithms_match_the_reference(case, dtype, algorithm):
    from cconv._dispatch import Algorithm
    check_case(forced("conv_transpose2d", algorithm=Algorithm[algorithm]), case, dtype)


@pytest.mark.parametrize("n_threads", [2, 3])
def test_col2im_gives_the_same_bits_for_any_thread_count(n_threads):
    from cconv import _functional
    from cconv._dispatch import Algorithm
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 12, 5, 6)).astype(np.float32)
    w = rng.standard_normal((12, 7, 4, 4)).astype(np.float32)
    b = rng.standard_normal(21).astype(np.float32)
    run = lambda n: _functional._convolution(  # noqa: E731
        "conv_transpose2d", x, w, b, stride=2, padding=1, groups=3, n_threads=n,
        algorithm=Algorithm.TRANSPOSED_COL2IM)
    np.testing.assert_array_equal(run(1), run(n_threads))


@pytest.mark.parametrize("size,k,s,p,op,d", [
    (1, 1, 1, 0, 0, 1), (5, 3, 2, 1, 1, 1), (4, 4, 2, 1, 0, 1), (3, 2, 3, 0, 2, 1),
    (3, 3, 1, 0, 1, 2), (7, 5, 3, 2, 2, 2), (2, 16, 8, 4, 0, 1),
])
def test_conv_transpose2d_output_size_formula(size, k, s, p, op, d):
    x = np.ones((1, 2, size, size + 1))
    w = np.ones((2, 3, k, k))
    out = cconv.conv_transpose2d(x, w, stride=s, padding=p, output_padding=op, dilation=d)
    expect = [(n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n in (size, size + 1)]
    assert out.shape == (1, 3, *expect)


@pytest.mark.parametrize("s,p,d,g", [(1, 0, 1, 1), (2, 1, 1, 1), (3, 2, 2, 1), (2, 1, 1, 3),
                                     ((2, 3), (1, 0), (1, 2), 2)])
def test_conv_transpose2d_is_adjoint_of_conv2d(s, p, d, g):
    # <conv2d(x, w), y> == <x, conv_transpose2d(y, w)> for the same stride/padding/dilation.
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3 * g, 11, 10))
    w = rng.standard_normal((2 * g, 3, 3, 4))
    y = cconv.conv2d(x, w, stride=s, padding=p, dilation=d, groups=g)
    y = rng.standard_normal(y.shape)
    xt = cconv.conv_transpose2d(y, w, stride=s, padding=p, groups=g, dilation=d)
    # The transposed output may be shorter than x by the strided remainder: pad it back.
    op = [x.shape[2 + a] - xt.shape[2 + a] for a in (0, 1)]
    assert all(0 <= v < 4 for v in op)
    xt = cconv.conv_transpose2d(y, w, stride=s, padding=p, output_padding=tuple(op),
                                groups=g, dilation=d)
    lhs = np.vdot(cconv.conv2d(x, w, stride=s, padding=p, dilation=d, groups=g), y)
    rhs = np.vdot(x, xt)
    assert abs(lhs - rhs) <= 1e-10 * (abs(lhs) + np.abs(x).sum())


# The register-tile engine over the phase GEMM's source planes (one direct_forward per
# output phase, columns stride_w apart), forced on every transposed case and build:
# the reference, and the phase GEMM's bits.
from cconv._dispatch import Algorithm  # noqa: E402

_TILES = forced("conv_transpose2d", algorithm=Algorithm.DIRECT_TILES)
_PHASES = forced("conv_transpose2d", algorithm=Algorithm.TRANSPOSED_PHASES, b_source="packed")


@pytest.mark.parametrize("case", cases.conv_transpose2d_awkward()
                         + cases.conv_transpose2d_product_grid(), ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_register_tiles_over_phases_match_the_reference_and_the_phase_gemm(case, dtype):
    tiles = check_case(_TILES, case, dtype)
    np.testing.assert_array_equal(tiles, check_case(_PHASES, case, dtype), err_msg=str(case))


def test_register_tiles_keep_a_negative_zero_bias_where_no_tap_lands():
    # Stride 3, kernel 2: a third of the output rows and columns receive no tap and are
    # the bias itself, sign of zero included.
    x = np.ones((1, 2, 3, 3), np.float32)
    w = np.ones((2, 3, 2, 2), np.float32)
    b = np.array([-0.0, 1.0, -0.0], np.float32)
    out = _TILES.conv_transpose2d(x, w, b, stride=3)
    assert np.signbit(out[0, 0, 2, 2]) and np.signbit(out[0, 2, 5, 0])
    assert out[0, 1, 2, 2] == 1.0


def test_forcing_the_b_source_of_a_tiled_up_conv_keeps_it_transposed():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 3, 32, 33)).astype(np.float32)
    w = rng.standard_normal((3, 5, 2, 2)).astype(np.float32)
    tiles = _TILES.conv_transpose2d(x, w, stride=2)
    for b_source in ("direct", "packed", "channels"):
        np.testing.assert_array_equal(
            forced("conv_transpose2d", b_source=b_source).conv_transpose2d(x, w, stride=2),
            tiles)
