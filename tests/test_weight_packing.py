"""When the implicit-GEMM engine packs weights, and that packing never changes a bit.

The packed and in-place weight layouts run different micro-kernels over the same k
order, so they must agree exactly; the choice between them is a pure rule on the
layer's shape (cconv._igemm._packing_pays and the plan builders), tested as a table.
"""

import numpy as np
import pytest

from cconv import _igemm

PACKING_TABLE = [
    # (uses per weight, contiguous rows, packs?)
    (1, False, False),
    (63, False, False),
    (64, False, True),      # 3x3 convs from an 8x8 output up
    (49, True, False),      # 1x1 1024 -> 1024 on 7x7: in place is 8-22% faster
    (127, True, False),
    (128, True, True),
    (196, True, True),      # 1x1 512 -> 512 on 14x14: packed (direct) 6-22% faster
    (3136, True, True),
]


@pytest.mark.parametrize("uses, contiguous, expected", PACKING_TABLE)
def test_packing_rule(uses, contiguous, expected):
    assert _igemm._packing_pays(uses, contiguous) is expected


@pytest.mark.parametrize("shape, expected", [
    # (x shape, w shape, padding), packs?
    (((1, 64, 56, 56), (64, 64, 3, 3), 1), True),
    (((1, 64, 4, 4), (64, 64, 3, 3), 1), False),     # 16 uses per weight
    (((1, 256, 56, 56), (64, 256, 1, 1), 0), True),
    (((1, 512, 14, 14), (512, 512, 1, 1), 0), True),
    (((1, 1024, 7, 7), (1024, 1024, 1, 1), 0), False),  # 49 uses per weight
    (((2, 1024, 7, 7), (1024, 1024, 1, 1), 0), False),  # 98: the batch counts
    (((3, 1024, 7, 7), (1024, 1024, 1, 1), 0), True),   # 147
])
def test_conv2d_plan_packs_by_shape(shape, expected):
    (xs, ws, p), packs = shape, expected
    out = (xs[0], ws[0], xs[2] + 2 * p - ws[2] + 1, xs[3] + 2 * p - ws[3] + 1)
    plan = _igemm.conv2d_plan(xs, ws, out, (1, 1), ((p, p), (p, p)), (1, 1), 1)
    assert plan.prefer_packed is packs


def test_transposed_plans_pack_kernels_over_2x2():
    big = _igemm.conv_transpose2d_plan((1, 512, 4, 4), (512, 256, 4, 4), (1, 256, 8, 8),
                                       (2, 2), ((1, 1), (1, 1)), (1, 1), 1)
    small = _igemm.conv_transpose2d_plan((1, 128, 4, 4), (128, 64, 2, 2), (1, 64, 8, 8),
                                         (2, 2), ((0, 0), (0, 0)), (1, 1), 1)
    assert big.prefer_packed and not small.prefer_packed


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs, ws, padding, stride", [
    ((2, 13, 11, 9), (19, 13, 3, 3), 1, 1),
    ((1, 7, 17, 17), (10, 7, 5, 5), 2, 2),
    ((1, 600, 9, 7), (12, 600, 1, 1), 0, 1),   # K past one KC block (512)
])
def test_packed_and_in_place_weights_give_the_same_bits(dtype, xs, ws, padding, stride):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    ho = (xs[2] + 2 * padding - ws[2]) // stride + 1
    wo = (xs[3] + 2 * padding - ws[3]) // stride + 1
    plan = _igemm.conv2d_plan(xs, ws, (xs[0], ws[0], ho, wo), (stride, stride),
                              ((padding, padding), (padding, padding)), (1, 1), 1)
    results = []
    for packed in (False, True):
        plan.prefer_packed = packed
        out = np.empty((xs[0], ws[0], ho, wo), dtype=dtype)
        _igemm.run(plan, x, w, None, out, 1)
        results.append(out)
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [8, 32])
@pytest.mark.parametrize("c_out, c_in, k", [
    (512, 512, 1),    # full 32-channel blocks of contiguous rows: the register transposes
    (96, 37, 1),      # 37 channels: two transposes of 16, then 5 the general way
    (64, 16, 1), (33, 64, 1), (40, 15, 1),
    (256, 40, 3), (64, 3, 7), (21, 5, 3),
    # OIHW rows of full 32-channel blocks: transposes over (channel, tap), exact or with
    # a tail of 15 values, and a partial last block (the general way)
    (64, 16, 3), (96, 7, 3), (70, 9, 5),
])
def test_packed_blocks_are_the_weights_regrouped(dtype, width, c_out, c_in, k):
    # packed[block][tap][c][i] = w[block * width + i, c, tap], zero past the last channel.
    rng = np.random.default_rng(1)
    w = rng.standard_normal((c_out, c_in, k, k)).astype(dtype)
    taps = k * k
    packed = _igemm._pack_blocks(w.reshape(-1), np.arange(taps, dtype=np.intp), taps,
                                 c_in * taps, c_out * c_in * taps, 1, c_out, c_in, 1, width)
    blocks = -(-c_out // width)
    padded = np.zeros((blocks * width, c_in, taps), dtype)
    padded[:c_out] = w.reshape(c_out, c_in, taps)
    expected = padded.reshape(blocks, width, c_in, taps).transpose(0, 3, 2, 1)
    np.testing.assert_array_equal(packed, expected.reshape(-1))
