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
