"""Hundreds of random configurations of every function agree with torch.nn.functional.

Independent of ``tests/reference.py``: the expected value and the error-bound scale both
come from torch in float64 (``torch_equiv``), on the same dtype-rounded inputs.  "same"
at stride > 1, which torch refuses, is compared with torch on the TensorFlow padding
applied explicitly.  Each case alternates float32/float64 and thread counts 1-3.
"""

import numpy as np
import pytest

cconv = pytest.importorskip("cconv")
torch = pytest.importorskip("torch")

import cases  # noqa: E402
import torch_equiv  # noqa: E402
from _checks import check_against, require_cconv  # noqa: E402

require_cconv()
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")

COUNTS = {"conv2d": 200, "conv_transpose2d": 200, "depthwise_conv2d": 200,
          "pointwise_conv2d": 100, "separable_conv2d": 120}
RANDOM = [c for fn, n in COUNTS.items() for c in cases.random_cases(fn, n, seed=2027)]


@pytest.mark.parametrize("index,case", list(enumerate(RANDOM)), ids=lambda v: str(v))
def test_matches_torch_on_random_config(index, case):
    dtype = (np.float32, np.float64)[index % 2]
    n_threads = 1 + index % 3
    rng = np.random.default_rng(index)
    arrays = case.arrays(dtype, rng)
    out = getattr(cconv, case.fn)(*arrays, **case.kwargs, n_threads=n_threads)
    assert out.dtype == np.dtype(dtype)
    check_against(getattr(torch_equiv, case.fn), out, arrays, case.kwargs, dtype,
                  context=f"{case} dtype={np.dtype(dtype).name} n_threads={n_threads}")


@pytest.mark.parametrize("s", [2, 3, (2, 3), 4])
@pytest.mark.parametrize("hw", [(7, 8), (9, 9), (1, 5), (12, 13)])
@pytest.mark.parametrize("k,d", [(3, 1), (4, 1), (3, 2), (1, 1), (5, 1)])
def test_same_at_stride_above_one_matches_torch_with_tf_padding(s, hw, k, d):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 3, *hw))
    w = rng.standard_normal((4, 3, k, k))
    dw = rng.standard_normal((3, 1, k, k))
    kw = dict(stride=s, padding="same", dilation=d)
    st = (s, s) if isinstance(s, int) else s
    out = cconv.conv2d(x, w, **kw)
    assert out.shape[2:] == tuple(-(-hw[a] // st[a]) for a in (0, 1))
    check_against(torch_equiv.conv2d, out, [x, w, None], kw, np.float64)
    out = cconv.depthwise_conv2d(x, dw, **kw)
    check_against(torch_equiv.depthwise_conv2d, out, [x, dw, None], kw, np.float64)
