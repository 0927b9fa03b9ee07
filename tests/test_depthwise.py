"""cconv.depthwise_conv2d matches the per-channel reference, with channel multipliers."""

import numpy as np
import pytest

cconv = pytest.importorskip("cconv")

import cases  # noqa: E402
import reference  # noqa: E402
from _checks import DTYPES, check_against, check_case, require_cconv  # noqa: E402

require_cconv()


@pytest.mark.parametrize("case", cases.depthwise_awkward(), ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_depthwise_matches_reference_at_awkward_sizes(case, dtype):
    check_case(cconv, case, dtype)


@pytest.mark.parametrize("case", cases.depthwise_product_grid(), ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_depthwise_matches_reference_over_stride_padding_dilation_mode(case, dtype):
    check_case(cconv, case, dtype)


def test_depthwise_multiplier_channel_order():
    # Output channel c*m + j reads input channel c.
    x = np.stack([np.full((3, 3), 1.0), np.full((3, 3), 10.0)])[None]
    w = np.array([1.0, 2.0, 3.0, 4.0]).reshape(4, 1, 1, 1)
    out = cconv.depthwise_conv2d(x, w)
    np.testing.assert_array_equal(out[0, :, 1, 1], [1.0, 2.0, 30.0, 40.0])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("m", [1, 3])
def test_depthwise_agrees_with_grouped_conv2d(dtype, m):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 9, 10, 7)).astype(dtype)
    w = rng.standard_normal((9 * m, 1, 3, 3)).astype(dtype)
    b = rng.standard_normal(9 * m).astype(dtype)
    kw = dict(stride=2, padding="same", padding_mode="reflect")
    out = cconv.depthwise_conv2d(x, w, b, **kw)
    grouped = cconv.conv2d(x, w, b, groups=9, **kw)
    assert out.shape == grouped.shape
    check_against(reference.depthwise_conv2d, out, [x, w, b], kw, dtype)
    check_against(reference.depthwise_conv2d, grouped, [x, w, b], kw, dtype)


# The SIMD band kernels for 3x3 stride 1 and stride 2 (where the build has them)
# keep the plain kernels' FMA order: every case must give the same bits both ways, at
# every width (masked column tails), height (the row rotation's start and end),
# dilation (stride 1) and padding parity (stride 2 splits the padded columns by parity).
def _band_eligible(case):
    stride, dilation = case.kwargs.get("stride", 1), case.kwargs.get("dilation", 1)
    kernel = case.shapes[1][2:]
    return (kernel == (3, 3) and (stride in (1, (1, 1))
                                  or (stride in (2, (2, 2)) and dilation in (1, (1, 1))))
            or kernel == (5, 5) and stride in (1, (1, 1)))


BAND_CASES = [c for c in cases.depthwise_awkward() + cases.depthwise_product_grid()
              if _band_eligible(c)]
BAND_CASES += [cases.depthwise_case(1, 2, m, hw, 3, padding=p, dilation=d,
                                    name=f"band-{hw}-p{p}-d{d}-m{m}")
               for hw, p, d, m in [((1, 1), 1, 1, 1), ((2, 17), 1, 1, 2), ((5, 63), 1, 1, 1),
                                   ((5, 64), 1, 1, 1), ((6, 65), 0, 1, 1), ((9, 130), 2, 2, 1),
                                   ((13, 40), (3, 1), (3, 1), 1), ((4, 200), 1, (1, 2), 3),
                                   # several bands of rows, copied just ahead of each
                                   ((40, 20), 1, 1, 1), ((33, 17), 0, 1, 1), ((50, 70), 2, 1, 1),
                                   # read straight from the input: column blocks wholly
                                   # inside the plane, padding wider than it
                                   ((3, 300), 1, 1, 1), ((2, 3), 4, 1, 1), ((4, 129), 0, 1, 1),
                                   ((5, 150), ((0, 3), (7, 2)), (2, 3), 1)]]
BAND_CASES += [cases.depthwise_case(1, 2, m, hw, 5, padding=p, dilation=d,
                                    name=f"band5-{hw}-p{p}-d{d}-m{m}")
               for hw, p, d, m in [((1, 1), 2, 1, 1), ((3, 17), 2, 1, 2), ((7, 31), 0, 1, 1),
                                   ((9, 33), 2, 1, 1), ((28, 28), 2, 1, 1), ((6, 70), 4, 2, 1),
                                   ((11, 40), (5, 2), (2, 1), 3), ((37, 12), 2, 1, 1), ((34, 5), (0, 3), 1, 1),
                                   ((3, 300), 2, 1, 1), ((2, 2), 5, 1, 1), ((4, 133), ((1, 0), (0, 6)), 1, 2)]]
BAND_CASES += [cases.depthwise_case(1, 2, m, hw, 3, stride=2, padding=p,
                                    name=f"band-s2-{hw}-p{p}-m{m}")
               for hw, p, m in [((1, 1), 1, 1), ((2, 2), 1, 1), ((3, 3), 0, 2), ((7, 33), 1, 1),
                                ((9, 128), 1, 1), ((10, 129), 2, 1), ((11, 131), 0, 3),
                                ((12, 64), ((0, 1), (1, 0)), 1), ((5, 66), ((1, 1), (0, 2)), 1),
                                # row split tails: 1..2 vectors of 16 / 8 lanes, both masked
                                ((4, 23), 1, 1), ((6, 50), 1, 1), ((5, 47), 0, 1),
                                ((3, 112), 1, 2), ((8, 13), 1, 1), ((2, 31), (1, 2), 1),
                                ((70, 21), 1, 1), ((35, 9), ((2, 0), (1, 1)), 1), ((66, 66), 0, 1),
                                # read straight from the input: padding wider than the plane
                                # (all-padding taps), several column blocks, odd pitches
                                ((1, 1), 3, 1), ((2, 3), ((4, 1), (5, 2)), 1), ((3, 300), 1, 1),
                                ((5, 257), ((0, 2), (3, 0)), 2), ((4, 97), 2, 1),
                                ((7, 130), ((1, 0), (0, 1)), 1)]]


@pytest.mark.parametrize("case", BAND_CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_simd_band_kernel_gives_the_plain_kernels_bits(case, dtype):
    from cconv import _depthwise
    if not _depthwise.simd_band_available():
        pytest.skip("this build has no SIMD (AVX-512 or AVX2) band kernel")
    try:
        band = check_case(cconv, case, dtype)
        _depthwise._set_simd_band(False)
        plain = check_case(cconv, case, dtype)
    finally:
        _depthwise._set_simd_band(True)
    np.testing.assert_array_equal(band, plain, err_msg=str(case))
