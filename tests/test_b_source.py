"""How the GEMM engine reads its input (B): in place from zero-bordered source planes (a
direct plan, in 8 x 32 tiles or, float32, channel-tiled) or through packed panels, and
that the three never differ by a bit.

All read the same k order in the same K-blocks, so every output is the same sum in the
same order (channel tiles leave out all-padding taps, whose products are exact zeros);
the choice is a pure rule on the layer's shape (``_igemm._direct_pays`` and
``_channel_tiles_pay`` via the plan builders), tested as a table. Every awkward-size
case of the conv2d and transposed grids runs all three ways, against the reference and
against each other.
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


DIRECT, PACKED, CHANNELS = _Forced("direct"), _Forced("packed"), _Forced("channels")

GEMM_CASES = (cases.conv2d_awkward() + cases.conv2d_product_grid()
              + cases.conv_transpose2d_awkward() + cases.conv_transpose2d_product_grid()
              + cases.pointwise_grid())


@pytest.mark.parametrize("case", GEMM_CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_direct_and_packed_b_match_the_reference_and_each_other(case, dtype):
    direct = check_case(DIRECT, case, dtype)
    packed = check_case(PACKED, case, dtype)
    channels = check_case(CHANNELS, case, dtype)
    np.testing.assert_array_equal(direct, packed, err_msg=str(case))
    np.testing.assert_array_equal(channels, packed, err_msg=str(case))


@pytest.mark.parametrize("b_source", ["direct", "channels"])
@pytest.mark.parametrize("n_threads", [2, 3])
def test_direct_plans_give_the_same_bits_for_any_thread_count(n_threads, b_source):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 37, 23, 19)).astype(np.float32)
    w = rng.standard_normal((45, 37, 3, 3)).astype(np.float32)
    one = _functional._convolution("conv2d", x, w, padding=2, dilation=2, b_source=b_source,
                                   n_threads=1)
    many = _functional._convolution("conv2d", x, w, padding=2, dilation=2, b_source=b_source,
                                    n_threads=n_threads)
    np.testing.assert_array_equal(one, many)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_channel_tiles_keep_nonfinite_weights_on_all_padding_taps(bad):
    # Dilation 4 on a 5x5 map: at the corner outputs most taps read only the border, and
    # channel tiles leave such taps out, but 0 * Inf is NaN: with a non-finite weight
    # nothing is left out, so the result is the reference's: no finite output in channel
    # 7 (NaN where the tap reads the border, +-Inf or NaN where it reads the input).
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 3, 5, 5)).astype(np.float32)
    w = rng.standard_normal((40, 3, 3, 3)).astype(np.float32)
    w[7, 1, 0, 0] = bad
    out = _functional._convolution("conv2d", x, w, padding=4, dilation=4, b_source="channels")
    packed = _functional._convolution("conv2d", x, w, padding=4, dilation=4, b_source="packed")
    assert not np.isfinite(out[0, 7]).any()
    assert np.isnan(out[0, 7, :4, :4]).all()
    np.testing.assert_array_equal(out, packed)
    finite = np.delete(np.arange(40), 7)
    assert np.isfinite(out[0, finite]).all()


def test_all_finite():
    a = np.zeros(37, np.float32)
    assert _igemm._all_finite(a) and _igemm._all_finite(a[:0])
    for i in (0, 16, 31, 36):
        for bad in (np.inf, -np.inf, np.nan):
            b = a.copy()
            b[i] = bad
            assert not _igemm._all_finite(b)
    assert _igemm._all_finite(np.full(40, np.finfo(np.float64).max))


@pytest.mark.parametrize("wg, runs", [
    (0, []), (1, [1]), (14, [14]), (15, [8, 7]), (28, [14, 14]), (33, [11, 11, 11]),
    (56, [14, 14, 14, 14]), (57, [12, 12, 11, 11, 11]), (224, [14] * 16),
])
def test_channel_runs_split_a_row_evenly(wg, runs):
    assert _igemm._channel_runs(wg) == runs


@pytest.mark.parametrize("wg, cuts, runs", [
    (33, [18, 15], [9, 9, 8, 7]),    # ASPP dilation 18: [0, 18) and [18, 33)
    (33, [12, 21], [12, 9, 12]),     # dilation 12: border runs of 12, the middle of 9
    (33, [6, 27], [6, 11, 10, 6]),   # dilation 6: 6-column borders, runs of their own
    (33, [5, 28], [11, 11, 11]),     # 5-column borders join the middle
    (14, [1, 13], [14]),             # 3x3 padding 1
    (30, [0, 30, -4, 99], [10, 10, 10]),  # cuts at or past the ends change nothing
    (40, [20], [10, 10, 10, 10]),
])
def test_channel_runs_cut_at_tap_windows(wg, cuts, runs):
    assert _igemm._channel_runs(wg, cuts) == runs
    assert sum(runs) == wg


# Borders wide enough for runs of their own (_channel_runs): ASPP-like dilations on
# small maps, rectangular, strided, grouped, and a transposed conv with a wide border.
WIDE_BORDER_CASES = [
    cases.conv2d_case(1, 5, 40, (27, 29), 3, padding=13, dilation=13),
    cases.conv2d_case(2, 3, 33, (21, 40), 3, padding=(4, 14), dilation=(2, 14)),
    cases.conv2d_case(1, 4, 36, 31, 3, stride=2, padding=12, dilation=12),
    cases.conv2d_case(1, 6, 64, 30, 3, padding=11, dilation=11, groups=2),
    cases.conv2d_case(1, 7, 35, (9, 34), (1, 3), padding=(0, 16), dilation=16, bias=False),
    cases.conv_transpose2d_case(1, 6, 34, (5, 30), 3, padding=0, dilation=(1, 12)),
    cases.conv2d_case(1, 9, 33, 33, 3, padding=6, dilation=6),   # ASPP d6: 6-column borders
    cases.conv2d_case(1, 3, 40, (12, 23), 3, padding=(2, 7), dilation=(2, 7), bias=False),
]


@pytest.mark.parametrize("case", WIDE_BORDER_CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_channel_tiles_with_border_runs_match_the_reference_and_packed(case, dtype):
    channels = check_case(CHANNELS, case, dtype)
    packed = check_case(PACKED, case, dtype)
    np.testing.assert_array_equal(channels, packed, err_msg=str(case))


# K past CT_CHUNK_BYTES / 128 (3072): the grouped loop order (runs share K-blocks
# across all m-blocks); forced to every group size on these and smaller cases.
LARGE_K_CASES = [
    cases.conv2d_case(1, 400, 70, (9, 11), 3, padding=2, dilation=2),
    cases.conv2d_case(2, 350, 33, (5, 31), 3, padding=(1, 9), dilation=(1, 9), bias=False),
    cases.conv2d_case(1, 8, 40, 13, 3, padding=1),
]


@pytest.mark.parametrize("runs", [0, 1, 2, 3, 4, 7, 16])
@pytest.mark.parametrize("case", LARGE_K_CASES, ids=str)
def test_channel_tile_groups_give_the_same_bits(case, runs):
    previous = _igemm._set_channel_group(runs)
    try:
        channels = check_case(CHANNELS, case, np.float32)
    finally:
        _igemm._set_channel_group(previous)
    packed = check_case(PACKED, case, np.float32)
    np.testing.assert_array_equal(channels, packed, err_msg=str(case))


def test_channel_group_setting_is_checked():
    with pytest.raises(ValueError, match="runs"):
        _igemm._set_channel_group(17)


def test_channel_tiled_plans_cut_rows_at_the_tap_windows():
    plan = _conv_plan((1, 64, 33, 33), (64, 64, 3, 3), 1, 18, 18)
    first, pairs, interior = plan.ct_runs
    assert first.tolist() == [0, 4]
    assert pairs[:8].reshape(-1, 2).tolist() == [[0, 9], [9, 9], [18, 8], [26, 7]]
    # Dilation 18 on 33: no grid row or column where all three taps read the input.
    assert interior[:, 0].tolist() == [18, 15, 18, 15]
    plan = _conv_plan((1, 64, 20, 30), (64, 64, 3, 3), 1, 1)
    assert plan.ct_runs[2][:, 0].tolist() == [1, 19, 1, 29]
    assert plan.tap_window is not None
    # A 1x1 conv never leaves a tap out: no windows (and no finiteness check per call).
    plan = _conv_plan((1, 512, 14, 14), (512, 512, 1, 1))
    assert plan.channel_tiles and plan.tap_window is None


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


@pytest.mark.parametrize("name, plan_args, direct, channel_tiles, direct_float64", [
    # A direct plan pays when its extra border columns cost less than packing panels;
    # channel tiles where the 8 x 32 tiles would compute more (and there are borders).
    # float64 (no channel tiles) reads B in place only where 8 x 32 tiles pay by
    # themselves; elsewhere it runs the packed-B plan, which leaves out padding K-blocks.
    ("ResNet 3x3 at 56x56: 58/56 columns", ((1, 64, 56, 56), (64, 64, 3, 3), 1, 1), True,
     True, True),
    ("VGG 3x3 at 112x112: 114/112", ((1, 128, 112, 112), (128, 128, 3, 3), 1, 1), True,
     True, True),
    # (equal work: channel tiles where they run faster per multiply-add, see CT_ADVANTAGE)
    ("1x1 at 56x56: no border", ((1, 256, 56, 56), (64, 256, 1, 1)), True,
     _igemm.CT_ADVANTAGE > 1, True),
    ("ResNet stem 7x7 stride 2: 115/112", ((1, 3, 224, 224), (64, 3, 7, 7), 2, 3), True,
     True, True),
    ("3x3 without padding at 58x58: 58/56", ((1, 64, 58, 58), (64, 64, 3, 3)), True, True, True),
    ("3x3 at 14x14: 7 tiles of 16/14 columns for 196", ((1, 256, 14, 14), (256, 256, 3, 3),
                                                       1, 1), True, True, True),
    ("dilation 2 at 56x56: 60/56 columns", ((1, 64, 56, 56), (64, 64, 3, 3), 1, 2, 2), True,
     True, True),
    ("ASPP dilation 6 at 33x33: 45/33 columns", ((1, 64, 33, 33), (64, 64, 3, 3), 1, 6, 6),
     True, True, False),
    ("ASPP dilation 12", ((1, 64, 33, 33), (64, 64, 3, 3), 1, 12, 12), True, True, False),
    ("ASPP dilation 12, 8 channels: 4x the lanes", ((1, 64, 33, 33), (8, 64, 3, 3), 1, 12,
                                                   12), False, False, False),
    # Direct plans run on packed weights: never where packing them does not pay.
    ("1x1 512 at 14x14: 196 uses, packed weights", ((1, 512, 14, 14), (512, 512, 1, 1)),
     True, True, True),
    ("1x1 1024 at 7x7: weights stay in place", ((1, 1024, 7, 7), (1024, 1024, 1, 1)), False,
     False, False),
    ("3x3 at 4x4: 16 uses per weight", ((1, 64, 4, 4), (64, 64, 3, 3), 1, 1), False, False, False),
])
def test_which_conv2d_plans_are_direct(name, plan_args, direct, channel_tiles,
                                       direct_float64):
    plan = _conv_plan(*plan_args)
    assert (plan.direct is not None) is direct, name
    assert plan.channel_tiles is channel_tiles, name
    other = plan.without_channel_tiles
    if direct and not direct_float64:
        assert other is not None and other.direct is None and not other.channel_tiles, name
    else:
        assert other is None, name


def test_float64_runs_the_plan_without_channel_tiles():
    # ASPP-like: direct (channel-tiled) for float32, packed B for float64. The float64
    # call must run the packed plan (same bits as the direct plan forced on it, since
    # every plan sums in the same order) and match the independent reference.
    import reference
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 40, 17, 17))
    w = rng.standard_normal((64, 40, 3, 3))
    plan = _conv_plan(x.shape, w.shape, 1, 6, 6)
    assert plan.channel_tiles and plan.without_channel_tiles.direct is None
    out = np.empty((1, 64, 17, 17))
    _igemm.run(plan, x, w, None, out, 1)
    direct = _igemm.conv2d_plan(x.shape, w.shape, out.shape, (1, 1), ((6, 6), (6, 6)),
                                (6, 6), 1, b_source="direct")
    assert direct.direct is not None and direct.without_channel_tiles is None
    forced_direct = np.empty_like(out)
    _igemm.run(direct, x, w, None, forced_direct, 1)
    np.testing.assert_array_equal(out, forced_direct)
    np.testing.assert_allclose(out, reference.conv2d(x, w, padding=6, dilation=6),
                               rtol=1e-12, atol=1e-11)


@pytest.mark.parametrize("M, grids, Ws, expected", [
    (256, [(14, 14)], 16, True),     # 224 / 196 = 1.14
    (64, [(56, 56)], 56, False),     # no border: 98 whole tiles either way
    (64, [(56, 56)], 58, True),      # 102 tiles for 98 (1.041)
    (64, [(112, 112)], 114, True),   # 1.018
    (64, [(64, 64)], 64, False),     # 128 whole tiles either way
    (48, [(14, 14)], 16, False),     # 64 lanes for 48 channels (1.33) against 1.14
    (256, [(16, 2)], 2, False),      # runs of two positions at half the FMA rate: 1 tile
    (0, [(14, 14)], 16, False),
    (256, [(14, 14, [0], [0])], 14, True),         # a 1x1 conv: 7 tiles for 196
    (256, [(14, 14, [0, 1], [0, 0])], 16, True),
])
def test_channel_tiles_pay_rule(M, grids, Ws, expected):
    assert _igemm._channel_tiles_pay(M, grids, Ws, advantage=1.0) is expected


@pytest.mark.parametrize("M, grids, Ws, expected", [
    (64, [(56, 56)], 56, True),      # equal work: channel tiles' speed decides
    (48, [(14, 14)], 16, False),     # 1.33 / 1.14 > 1.1
    (24, [(56, 56)], 56, False),     # 32 lanes for 24 channels
])
def test_channel_tiles_pay_rule_with_faster_channel_tiles(M, grids, Ws, expected):
    assert _igemm._channel_tiles_pay(M, grids, Ws, advantage=1.1) is expected


def test_channel_tile_advantage_follows_the_build():
    from cconv import _config
    simd = _config.build_config()["simd"]
    assert _igemm.CT_ADVANTAGE == (1.1 if simd == "AVX2+FMA" else 1.0)


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


@pytest.mark.parametrize("n, expected", [(0, 16), (16, 16), (17, 48), (48, 48), (196, 208),
                                         (256, 272), (1024, 1040), (4096, 4112)])
def test_plane_pitch_is_an_odd_multiple_of_16_values(n, expected):
    assert _igemm._plane_pitch(n) == expected


@pytest.mark.parametrize("hw, k_rows, copy", [
    ((64, 64), 128, True),    # 4096-value planes: every B row of a tile in one L1 set
    ((16, 16), 64, True),
    ((16, 16), 63, False),    # few rows: reading in place measured as fast
    ((56, 56), 256, False),   # 3136 values: rows spread over 16 sets already
    ((14, 14), 512, False),
])
def test_direct_geometry_spreads_planes_that_alias(hw, k_rows, copy):
    src, *_ = _igemm._direct_geometry(*hw, (1, 1), [(*hw, np.zeros(1), np.zeros(1))], k_rows)
    assert src.copy is copy
    assert src.plane == (_igemm._plane_pitch(hw[0] * hw[1]) if copy else hw[0] * hw[1])


def test_direct_geometry_spreads_copied_planes():
    src, *_ = _igemm._direct_geometry(14, 14, (1, 1), [(14, 14, np.arange(3) - 1,
                                                        np.arange(3) - 1)])
    assert src.copy and (src.Hs, src.Ws) == (16, 16) and src.plane == 272


def test_b_source_is_checked():
    with pytest.raises(ValueError, match="b_source"):
        _igemm.conv2d_plan((1, 2, 5, 5), (2, 2, 3, 3), (1, 2, 3, 3), (1, 1),
                           ((0, 0), (0, 0)), (1, 1), 1, b_source="sideways")


@pytest.mark.parametrize("positions, n_mblocks, n_threads, weight_bytes, items", [
    ([784], 32, 1, 256 * 1024, 4),     # one thread: items as large as NC allows
    ([784], 32, 2, 256 * 1024, 26),    # 13 position items: channels split to even them
    ([196], 64, 2, 1024 * 1024, 8),    # 1 x 8 chunks: already even
    ([784], 32, 3, 256 * 1024, 52),    # 13 x 4 chunks: three threads never divide it, two
                                       # halvings at most (18, 17, 17 items)
    ([100], 1, 2, 1024, 4),            # one m-block: nothing to split, 4 items stay
])
def test_work_items_cover_the_grid_and_even_out_over_the_threads(positions, n_mblocks,
                                                                 n_threads, weight_bytes,
                                                                 items):
    rows, per_chunk = _igemm.plan_work(positions, n_mblocks, 1, 32, n_threads, weight_bytes)
    n_chunks = -(-n_mblocks // per_chunk)
    assert len(rows) * n_chunks == items
    # Every position of every phase in exactly one row.
    for phase, n_pos in enumerate(positions):
        mine = rows[rows[:, 0] == phase]
        assert mine[0, 1] == 0 and (mine[1:, 1] == mine[:-1, 1] + mine[:-1, 2]).all()
        assert mine[:, 2].sum() == n_pos
