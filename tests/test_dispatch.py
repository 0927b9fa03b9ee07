"""The algorithm choice, as a table of named cases (apart from the numerics)."""

import numpy as np
import pytest

from cconv._dispatch import Algorithm, select_algorithm
from cconv._params import normalize


def params(op, x_shape, w_shape, **kw):
    extra = {}
    if op == "separable_conv2d":
        extra["pointwise_weight"] = np.ones((5, w_shape[0]), np.float32)
    p, _ = normalize(op, np.ones(x_shape, np.float32), np.ones(w_shape, np.float32), **kw,
                     **extra)
    return p


CASES = {
    "standard 3x3": (("conv2d", (1, 8, 9, 9), (4, 8, 3, 3)), {}, Algorithm.IMPLICIT_GEMM),
    "grouped": (("conv2d", (1, 8, 9, 9), (4, 4, 3, 3)), {"groups": 2}, Algorithm.IMPLICIT_GEMM),
    "dilated": (("conv2d", (1, 8, 9, 9), (4, 8, 3, 3)), {"dilation": 2}, Algorithm.IMPLICIT_GEMM),
    "1x1 no padding": (("conv2d", (1, 8, 9, 9), (4, 8, 1, 1)), {}, Algorithm.POINTWISE),
    "1x1 strided": (("conv2d", (1, 8, 9, 9), (4, 8, 1, 1)), {"stride": 2}, Algorithm.POINTWISE),
    "1x1 padded is not pointwise": (("conv2d", (1, 8, 9, 9), (4, 8, 1, 1)), {"padding": 1},
                                    Algorithm.IMPLICIT_GEMM),
    "groups == C_in": (("conv2d", (1, 8, 9, 9), (8, 1, 3, 3)), {"groups": 8}, Algorithm.DEPTHWISE),
    "groups == C_in, multiplier 2": (("conv2d", (1, 8, 9, 9), (16, 1, 3, 3)), {"groups": 8},
                                     Algorithm.DEPTHWISE),
    "single channel is not depthwise": (("conv2d", (1, 1, 9, 9), (4, 1, 3, 3)), {},
                                        Algorithm.IMPLICIT_GEMM),
    "depthwise function": (("depthwise_conv2d", (1, 8, 9, 9), (8, 1, 3, 3)), {}, Algorithm.DEPTHWISE),
    "pointwise function": (("pointwise_conv2d", (1, 8, 9, 9), (4, 8)), {}, Algorithm.POINTWISE),
    "transposed": (("conv_transpose2d", (1, 8, 9, 9), (8, 4, 3, 3)), {"stride": 2},
                   Algorithm.TRANSPOSED_PHASES),
    "separable": (("separable_conv2d", (1, 8, 9, 9), (8, 1, 3, 3)), {}, Algorithm.SEPARABLE),
}


@pytest.mark.parametrize("name", list(CASES))
def test_select_algorithm(name):
    args, kw, expected = CASES[name]
    assert select_algorithm(params(*args, **kw)) is expected
