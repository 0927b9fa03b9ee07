"""The naive reference agrees with torch.nn.functional, so the kernels can be judged by it.

Every named grid case and a few hundred random configurations of every public function,
in float64, with the same cancellation-sound bound the kernel tests use (tol 1e-12).
Plus a few hand-computed values, so the reference is not only checked against torch.
"""

import numpy as np
import pytest

import cases
import reference
from _checks import assert_matches, check_against

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
import torch_equiv  # noqa: E402  (needs torch)

FUNCTIONS = list(cases.GRIDS)
GRID = [c for fn in FUNCTIONS for c in cases.GRIDS[fn]()]
RANDOM = [c for fn in FUNCTIONS for c in cases.random_cases(fn, 60, seed=1234)]


def _vs_torch(case, seed):
    rng = np.random.default_rng(seed)
    arrays = case.arrays(np.float64, rng)
    expected = getattr(torch_equiv, case.fn)(*arrays, **case.kwargs)
    check_against(getattr(reference, case.fn), expected, arrays, case.kwargs, np.float64,
                  context=str(case))


@pytest.mark.parametrize("case", GRID, ids=str)
def test_reference_matches_torch_on_grid(case):
    _vs_torch(case, seed=0)


@pytest.mark.parametrize("case", RANDOM, ids=str)
def test_reference_matches_torch_on_random_configs(case):
    _vs_torch(case, seed=1)


def test_unbatched_reference_matches_batched():
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((3, 5, 6)), rng.standard_normal((4, 3, 3, 3))
    np.testing.assert_array_equal(reference.conv2d(x, w, padding=1),
                                  reference.conv2d(x[None], w, padding=1)[0])


def test_reference_hand_computed_conv2d():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    w = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])
    # out[y, x] = in[y, x] - in[y+1, x+1] = -4 everywhere.
    np.testing.assert_array_equal(reference.conv2d(x, w), np.full((1, 1, 2, 2), -4.0))
    # padding 1 with replicate: out[0, 0] = pad[-1, -1] - pad[0, 0] = in[0, 0] - in[0, 0],
    # out[3, 3] = in[2, 2] - in[2, 2] (both cells replicate the corner), out[0, 3] likewise.
    out = reference.conv2d(x, w, padding=1, padding_mode="replicate")
    assert out.shape == (1, 1, 4, 4)
    assert out[0, 0, 0, 0] == 0.0 and out[0, 0, 3, 3] == 0.0
    # With zeros instead: out[0, 0] = 0 - in[0, 0] = 0 and out[3, 3] = in[2, 2] - 0 = 8.
    out = reference.conv2d(x, w, padding=1)
    assert out[0, 0, 0, 0] == 0.0 and out[0, 0, 3, 3] == 8.0 and out[0, 0, 1, 1] == -4.0


def test_reference_hand_computed_transpose():
    # A single input pixel scatters the kernel at stride offsets.
    x = np.zeros((1, 1, 2, 2))
    x[0, 0, 1, 0] = 2.0
    w = np.arange(4.0).reshape(1, 1, 2, 2) + 1
    out = reference.conv_transpose2d(x, w, stride=3)
    assert out.shape == (1, 1, 5, 5)
    expected = np.zeros((5, 5))
    expected[3:5, 0:2] = 2.0 * w[0, 0]
    np.testing.assert_array_equal(out[0, 0], expected)
    # padding crops one cell from every side.
    np.testing.assert_array_equal(reference.conv_transpose2d(x, w, stride=3, padding=1)[0, 0],
                                  expected[1:4, 1:4])


def test_reference_same_padding_tf_rule():
    # in 10, k 3, s 2 -> out 5, total (5-1)*2 + 3 - 10 = 1 -> (0, 1).
    # in 11, k 4, s 3 -> out 4, total 9 + 4 - 11 = 2 -> (1, 1).
    assert reference.resolve_padding("same", (10, 11), (3, 4), (2, 3), (1, 1)) == \
        ((0, 1), (1, 1))
    # in 12, k 4, s 2 -> out 6, total 10 + 4 - 12 = 2; in 9, k 4, s 2 -> out 5, total 3.
    assert reference.resolve_padding("same", (12, 9), (4, 4), (2, 2), (1, 1)) == \
        ((1, 1), (1, 2))
    # Never negative: in 2, k 1, s 5 -> out 1, total max(0 + 1 - 2, 0) = 0.
    assert reference.resolve_padding("same", (11, 2), (4, 1), (3, 5), (1, 1)) == \
        ((1, 1), (0, 0))


def test_reference_depthwise_channel_multiplier_order():
    # Output channel c*m + j reads input channel c.
    x = np.stack([np.full((2, 2), 1.0), np.full((2, 2), 10.0)])[None]
    w = np.array([1.0, 2.0, 3.0, 4.0]).reshape(4, 1, 1, 1)
    out = reference.depthwise_conv2d(x, w)
    np.testing.assert_array_equal(out[0, :, 0, 0], [1.0, 2.0, 30.0, 40.0])


def test_check_rejects_a_wrong_answer():
    ref = np.array([1.0, -1.0, 0.0])
    ref_abs = np.array([1.0, 3.0, 2.0])
    assert_matches(ref.astype(np.float32), ref, ref_abs)
    with pytest.raises(AssertionError):
        assert_matches(np.array([1.0, -1.0, 1e-4], np.float32), ref, ref_abs)
    with pytest.raises(AssertionError, match="NaN"):
        assert_matches(np.array([1.0, np.nan, 0.0]), ref, ref_abs)
