"""Property tests: hypothesis draws configurations of every function; all match the reference.

The configurations come from the same generators as ``test_against_torch`` (a chooser
interface in ``cases.py``), drawn here through hypothesis so failures shrink to a
minimal configuration.  Each example also draws the dtype, the data seed and the
thread count.  Bounded: ``max_examples`` 100-150 per function, no deadline.
"""

import numpy as np
import pytest

cconv = pytest.importorskip("cconv")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import cases  # noqa: E402
from _checks import check_case, require_cconv  # noqa: E402

require_cconv()


class HypothesisChooser:
    """The ``cases`` chooser interface over a hypothesis ``draw``."""

    def __init__(self, draw):
        self.draw = draw

    def pick(self, options):
        return self.draw(st.sampled_from(options))

    def integer(self, lo, hi):
        return self.draw(st.integers(lo, hi))


@st.composite
def configs(draw, fn):
    try:
        case = cases.RANDOM[fn](HypothesisChooser(draw))
    except cases.Reject:
        assume(False)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**16))
    n_threads = draw(st.sampled_from([1, 2, 3, None]))
    return case, dtype, seed, n_threads


SETTINGS = dict(deadline=None, derandomize=False, database=None,
                suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


def _run(config):
    case, dtype, seed, n_threads = config
    check_case(cconv, case, dtype, seed=seed, n_threads=n_threads)


@settings(max_examples=150, **SETTINGS)
@given(configs("conv2d"))
def test_conv2d_property(config):
    _run(config)


@settings(max_examples=150, **SETTINGS)
@given(configs("conv_transpose2d"))
def test_conv_transpose2d_property(config):
    _run(config)


@settings(max_examples=150, **SETTINGS)
@given(configs("depthwise_conv2d"))
def test_depthwise_property(config):
    _run(config)


@settings(max_examples=100, **SETTINGS)
@given(configs("pointwise_conv2d"))
def test_pointwise_property(config):
    _run(config)


@settings(max_examples=100, **SETTINGS)
@given(configs("separable_conv2d"))
def test_separable_property(config):
    _run(config)
