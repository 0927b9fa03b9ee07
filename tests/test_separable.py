"""cconv.separable_conv2d matches reference depthwise followed by reference pointwise."""

import numpy as np
import pytest

cconv = pytest.importorskip("cconv")

import cases  # noqa: E402
import reference  # noqa: E402
from _checks import DTYPES, check_against, check_case, forced, require_cconv  # noqa: E402

require_cconv()


@pytest.mark.parametrize("case", cases.separable_grid(), ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_separable_matches_reference(case, dtype):
    check_case(cconv, case, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_separable_agrees_with_depthwise_then_pointwise(dtype):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 5, 11, 9)).astype(dtype)
    dw = rng.standard_normal((10, 1, 3, 3)).astype(dtype)
    pw = rng.standard_normal((17, 10)).astype(dtype)
    db, pb = rng.standard_normal(10).astype(dtype), rng.standard_normal(17).astype(dtype)
    kw = dict(stride=2, padding="same", dilation=1, padding_mode="circular")
    out = cconv.separable_conv2d(x, dw, pw, db, pb, **kw)
    two_step = cconv.pointwise_conv2d(cconv.depthwise_conv2d(x, dw, db, **kw), pw, pb)
    assert out.shape == two_step.shape == (2, 17, 6, 5)
    check_against(reference.separable_conv2d, out, [x, dw, pw, db, pb], kw, dtype)
    check_against(reference.separable_conv2d, two_step, [x, dw, pw, db, pb], kw, dtype)


@pytest.mark.parametrize("case", cases.separable_grid(), ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_fused_and_two_pass_match_the_reference_and_each_other(case, dtype):
    # The size of the intermediate picks one or the other: both must be right, and
    # give the same bits.
    from cconv._dispatch import Algorithm
    fused = check_case(forced("separable_conv2d", algorithm=Algorithm.SEPARABLE_FUSED),
                       case, dtype)
    two_pass = check_case(forced("separable_conv2d",
                                 algorithm=Algorithm.SEPARABLE_TWO_PASS), case, dtype)
    assert fused.tobytes() == two_pass.tobytes(), str(case)
