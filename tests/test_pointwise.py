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
