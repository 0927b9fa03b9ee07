"""How the GEMM engine reads its input (B): in place from zero-bordered source planes (a
direct plan) or through packed panels, and that the two never differ by a bit.

Both read the same k order in the same K-blocks, so every output is the same sum in the
same order; the choice is a pure rule on the layer's shape (``_igemm._direct_pays`` via
the plan builders), tested as a table. Every awkward-size case of the conv2d and
transposed grids runs both ways, against the reference and against each other.
"""

import numpy as np
import pytest

from _checks import DTYPES, check_case, forced, require_cconv

cconv = require_cconv()

import cases  # noqa: E402
from cconv import _functional, _igemm  # noqa: E402
from cconv._dispatch import Algorithm  # noqa: E402


class _Forced:
    """The public functions with the GEMM engine's B source forced (and transposed convs
    on the phase GEMM, which small inputs would otherwise not reach)."""

    def __init__(self, b_source):
        for op in ("conv2d", "pointwise_conv2d", "separable_conv2d"):
            setattr(self, op, getattr(forced(op, b_source=b_source), op))
        self.conv_transpose2d = forced("conv_transpose2d", b_source=b_source,
                                       algorithm=Algorithm.TRANSPOSED_PHASES).conv_transpose2d


DIRECT, PACKED = _Forced("direct"), _Forced("packed")

GEMM_CASES = (cases.conv2d_awkward() + cases.conv2d_product_grid()
              + cases.conv_transpose2d_awkward() + cases.conv_transpose2d_product_grid()
              + cases.pointwise_grid())


@pytest.mark.parametrize("case", GEMM_CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_direct_and_packed_b_match_the_reference_and_each_other(case, dtype):
    direct = check_case(DIRECT, case, dtype)
    packed = check_case(PACKED, case, dtype)
    np.testing.assert_array_equal(direct, packed, err_msg=str(case))


@pytest.mark.parametrize("n_threads", [2, 3])
def test_direct_plans_give_the_same_bits_for_any_thread_count(n_threads):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 37, 23, 19)).astype(np.float32)
    w = rng.standard_normal((21, 37, 3, 3)).astype(np.float32)
    one = _functional._convolution("conv2d", x, w, padding=1, b_source="direct", n_threads=1)
    many = _functional._convolution("conv2d", x, w, padding=1, b_source="direct",
                                    n_threads=n_threads)
    np.testing.assert_array_equal(one, many)


def test_direct_plan_on_nonfinite_input_in_the_border_columns():
    # Garbage columns of a direct plan (grid columns past the output width) read the
    # next row's data; an Inf there must not leak into a kept output.
    x = np.zeros((1, 1, 4, 6), np.float32)
    x[0, 0, :, 0] = np.inf   # only outputs that really see column 0 may be Inf
    w = np.ones((1, 1, 1, 3), np.float32)
    out = _functional._convolution("conv2d", x, w, b_source="direct")
    assert np.isinf(out[0, 0, :, 0]).all()
    assert (out[0, 0, :, 1:] == 0).all()


def _conv_plan(xs, ws, stride=1, pad=0, dilation=1):
    ho = (xs[2] + 2 * pad - dilation * (ws[2] - 1) - 1) // stride + 1
    wo = (xs[3] + 2 * pad - dilation * (ws[3] - 1) - 1) // stride + 1
    return _igemm.conv2d_plan(xs, ws, (xs[0], ws[0], ho, wo), (stride, stride),
                              ((pad, pad), (pad, pad)), (dilation, dilation), 1)


@pytest.mark.parametrize("name, plan_args, direct", [
    # A direct plan pays when its extra border columns cost less than packing panels.
    ("ResNet 3x3 at 56x56: 58/56 columns", ((1, 64, 56, 56), (64, 64, 3, 3), 1, 1), True),
    ("VGG 3x3 at 112x112", ((1, 128, 112, 112), (128, 128, 3, 3), 1, 1), True),
    ("1x1 at 56x56: no border", ((1, 256, 56, 56), (64, 256, 1, 1)), True),
    ("ResNet stem 7x7 stride 2", ((1, 3, 224, 224), (64, 3, 7, 7), 2, 3), True),
    ("3x3 at 14x14: 16/14 columns, same tiles", ((1, 256, 14, 14), (256, 256, 3, 3), 1, 1),
     True),
    ("ASPP dilation 6 at 33x33: 45/33 columns", ((1, 64, 33, 33), (64, 64, 3, 3), 1, 6, 6),
     False),
    ("ASPP dilation 12", ((1, 64, 33, 33), (64, 64, 3, 3), 1, 12, 12), False),
    # Direct plans run on packed weights: never where packing them does not pay.
    ("1x1 512 at 14x14: 196 uses, packed weights", ((1, 512, 14, 14), (512, 512, 1, 1)),
     True),
    ("1x1 1024 at 7x7: weights stay in place", ((1, 1024, 7, 7), (1024, 1024, 1, 1)), False),
    ("3x3 at 4x4: 16 uses per weight", ((1, 64, 4, 4), (64, 64, 3, 3), 1, 1), False),
])
def test_which_conv2d_plans_are_direct(name, plan_args, direct):
    assert (_conv_plan(*plan_args).direct is not None) is direct, name


def test_which_transposed_plans_are_direct():
    dcgan = _igemm.conv_transpose2d_plan((1, 128, 32, 32), (128, 64, 4, 4), (1, 64, 64, 64),
                                         (2, 2), ((1, 1), (1, 1)), (1, 1), 1)
    small = _igemm.conv_transpose2d_plan((1, 128, 4, 4), (128, 64, 2, 2), (1, 64, 8, 8),
                                         (2, 2), ((0, 0), (0, 0)), (1, 1), 1)
    assert dcgan.direct is not None and small.direct is None


@pytest.mark.parametrize("direct_tiles, packed_tiles, expected", [
    (100, 100, True), (115, 100, True), (116, 100, False), (136, 100, False),
])
def test_direct_pays_rule(direct_tiles, packed_tiles, expected):
    assert _igemm._direct_pays(direct_tiles, packed_tiles) is expected


def test_direct_geometry_of_a_padded_strided_conv():
    # 7x7 stride 2 padding 3 on 224: the input bordered to 230 (3 + 224 + 3), split into
    # 2x2 phase planes of 115; tap kh reads phase kh % 2 at row offset kh // 2.
    taps = np.arange(7) - 3
    src, phase, qy, qx = _igemm._direct_geometry(224, 224, (2, 2),
                                                 [(112, 112, taps, taps)])
    assert (src.pt, src.pl, src.Hs, src.Ws) == (3, 3, 115, 115)
    assert src.used == [(0, 0), (1, 1)] and src.copy
    assert qy.tolist() == [0, 0, 1, 1, 2, 2, 3] and phase.tolist() == [0, 1, 0, 1, 0, 1, 0]


def test_direct_geometry_reads_an_unpadded_input_in_place():
    src, *_ = _igemm._direct_geometry(14, 14, (1, 1), [(14, 14, np.zeros(1), np.zeros(1))])
    assert not src.copy and src.slack == 0 and (src.Hs, src.Ws) == (14, 14)


def test_b_source_is_checked():
    with pytest.raises(ValueError, match="b_source"):
        _igemm.conv2d_plan((1, 2, 5, 5), (2, 2, 3, 3), (1, 2, 3, 3), (1, 1),
                           ((0, 0), (0, 0)), (1, 1), 1, b_source="sideways")
