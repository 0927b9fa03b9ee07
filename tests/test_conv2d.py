"""cconv.conv2d matches the naive reference at awkward sizes, every padding spelling and mode."""

import numpy as np
import pytest

cconv = pytest.importorskip("cconv")

import cases  # noqa: E402
import reference  # noqa: E402
from _checks import DTYPES, check_against, check_case, require_cconv  # noqa: E402

require_cconv()


@pytest.mark.parametrize("case", cases.conv2d_awkward(), ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_conv2d_matches_reference_at_awkward_sizes(case, dtype):
    check_case(cconv, case, dtype)


@pytest.mark.parametrize("case", cases.conv2d_product_grid(), ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_conv2d_matches_reference_over_stride_padding_dilation_groups_mode(case, dtype):
    check_case(cconv, case, dtype)


@pytest.mark.parametrize("stride", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("size", [1, 2, 7, 8, 9, 16])
@pytest.mark.parametrize("k,d", [(1, 1), (3, 1), (4, 1), (3, 2), (5, 3)])
def test_conv2d_same_gives_ceil_input_over_stride(size, stride, k, d):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, size, size + 1))
    w = rng.standard_normal((3, 2, k, k))
    out = cconv.conv2d(x, w, stride=stride, padding="same", dilation=d)
    assert out.shape == (1, 3, -(-size // stride), -(-(size + 1) // stride))
    check_against(reference.conv2d, out, [x, w, None],
                  dict(stride=stride, padding="same", dilation=d), np.float64,
                  context=f"size={size} k={k} d={d} s={stride}")


def test_conv2d_padding_spellings_are_bitwise_equivalent():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    a = cconv.conv2d(x, w, padding=1)
    np.testing.assert_array_equal(a, cconv.conv2d(x, w, padding=(1, 1)))
    np.testing.assert_array_equal(a, cconv.conv2d(x, w, padding=((1, 1), (1, 1))))
    np.testing.assert_array_equal(a, cconv.conv2d(x, w, padding="same"))
    np.testing.assert_array_equal(cconv.conv2d(x, w, padding=0),
                                  cconv.conv2d(x, w, padding="valid"))
    np.testing.assert_array_equal(cconv.conv2d(x, w, stride=2, dilation=1),
                                  cconv.conv2d(x, w, stride=(2, 2), dilation=(1, 1)))


def test_conv2d_bias_is_added_once_per_output_channel():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 3, 6, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    b = np.array([1.0, -2.0, 0.5, 100.0])
    diff = cconv.conv2d(x, w, b, padding=1) - cconv.conv2d(x, w, padding=1)
    np.testing.assert_allclose(diff, np.broadcast_to(b[None, :, None, None], diff.shape),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv2d_padding_mode_per_side_asymmetric(mode):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 5, 6))
    w = rng.standard_normal((3, 2, 2, 3))
    pad = ((0, 3), (2, 1))
    out = cconv.conv2d(x, w, padding=pad, padding_mode=mode)
    ref = reference.conv2d(x, w, padding=pad, padding_mode=mode)
    assert out.shape == ref.shape == (1, 3, 7, 7)
    check_against(reference.conv2d, out, [x, w, None], dict(padding=pad, padding_mode=mode),
                  np.float64, context=mode)


# The register-tile engine over the implicit GEMM's source planes (cconv._pointwise
# direct_forward), which AVX2 builds run for convs of at most 4 input channels: forced
# on every conv2d case and build, against the reference and the GEMM engine's bits.
from cconv import _functional  # noqa: E402
from cconv._dispatch import Algorithm  # noqa: E402
from _checks import forced  # noqa: E402

DIRECT_TILES = forced("conv2d", algorithm=Algorithm.DIRECT_TILES)
GEMM_PACKED = forced("conv2d", algorithm=Algorithm.IMPLICIT_GEMM, b_source="packed")


@pytest.mark.parametrize("case", cases.conv2d_awkward() + cases.conv2d_product_grid(), ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_register_tiles_over_source_planes_match_the_reference_and_the_gemm(case, dtype):
    tiles = check_case(DIRECT_TILES, case, dtype)
    np.testing.assert_array_equal(tiles, check_case(GEMM_PACKED, case, dtype), err_msg=str(case))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_register_tiles_over_source_planes_any_thread_count(dtype):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 3, 37, 41)).astype(dtype)
    w = rng.standard_normal((13, 3, 7, 7)).astype(dtype)
    b = rng.standard_normal(13).astype(dtype)
    runs = [_functional._convolution("conv2d", x, w, b, stride=2, padding=3,
                                     algorithm=Algorithm.DIRECT_TILES, n_threads=n)
            for n in (1, 2, 3)]
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])
    np.testing.assert_array_equal(runs[0], _functional._convolution(
        "conv2d", x, w, b, stride=2, padding=3, b_source="packed"))


def test_register_tiles_over_source_planes_refuse_other_ops():
    x = np.ones((1, 4, 5, 5), np.float32)
    with pytest.raises(ValueError, match="conv2d and conv_transpose2d only"):
        _functional._convolution("depthwise_conv2d", x, np.ones((4, 1, 3, 3), np.float32),
                                 algorithm=Algorithm.DIRECT_TILES)


def test_register_tiles_over_source_planes_reorder_a_layers_weights_once():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((1, 3, 20, 20)).astype(np.float32)
    w1 = rng.standard_normal((8, 3, 5, 5)).astype(np.float32)
    w2 = rng.standard_normal((8, 3, 5, 5)).astype(np.float32)
    cache = {}
    first = DIRECT_TILES.conv2d(x, w1, padding=2, plan_cache=cache)
    (plan,) = cache.values()
    reordered = plan.tile_weights[1]
    np.testing.assert_array_equal(DIRECT_TILES.conv2d(x, w1, padding=2, plan_cache=cache),
                                  first)
    assert plan.tile_weights[1] is reordered
    other = DIRECT_TILES.conv2d(x, w2, padding=2, plan_cache=cache)
    assert plan.tile_weights[0] is w2
    np.testing.assert_array_equal(other, GEMM_PACKED.conv2d(x, w2, padding=2))
    # Calls without a layer object's cache share plans and keep no weights on them.
    DIRECT_TILES.conv2d(x, w1, padding=2)
    shared = _functional._shared_gemm_plan(False, x.shape, w1.shape, first.shape, (1, 1),
                                           ((2, 2), (2, 2)), (1, 1), 1, "direct")
    assert shared.tile_weights is None


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("groups", [1, 3])
def test_register_tiles_tap_major_weights_follow_the_plan_order(transposed, groups):
    # A[g * M + m, t * Cg + c] = the weight of output channel m, input channel c of group
    # g at the plan's tap t (each phase's taps a run of columns), for both weight layouts.
    from cconv import _pointwise
    rng = np.random.default_rng(17)
    Cg, M, k = 5, 4, 3
    x_shape = (1, groups * Cg, 9, 10)
    if transposed:
        w = rng.standard_normal((groups * Cg, M, k, k))
        out_shape = (1, groups * M, 19, 21)
    else:
        w = rng.standard_normal((groups * M, Cg, k, k))
        out_shape = (1, groups * M, 5, 5)
    plan = _functional._shared_gemm_plan(transposed, x_shape, w.shape, out_shape, (2, 2),
                                         ((1, 1), (1, 1)), (1, 1), groups, "direct")
    tap_off, chan_stride, src_lda, src_group = plan.pack_spec
    a = _pointwise.tap_major_weights(w.reshape(-1), tap_off, chan_stride, src_lda,
                                     src_group, groups, M, Cg, 2)
    if transposed:  # (C_in, M, kh, kw) -> [g, m, tap, c]
        taps = w.reshape(groups, Cg, M, k * k).transpose(0, 2, 3, 1)
    else:           # (C_out, Cg, kh, kw)
        taps = w.reshape(groups, M, Cg, k * k).transpose(0, 1, 3, 2)
    expected = taps[:, :, tap_off, :].reshape(-1)
    np.testing.assert_array_equal(a, expected)
    assert sorted(tap_off.tolist()) == list(range(k * k))   # every tap once, in some order
