"""The algorithm choice, as a table of named cases (apart from the numerics)."""

import numpy as np
import pytest

from cconv._dispatch import Algorithm, select_algorithm
from cconv._params import normalize

from _checks import forced


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
    "transposed, 64 input pixels": (("conv_transpose2d", (1, 8, 8, 8), (8, 4, 4, 4)),
                                    {"stride": 2}, Algorithm.TRANSPOSED_COL2IM),
    "transposed, DCGAN 4x4": (("conv_transpose2d", (1, 512, 4, 4), (512, 256, 4, 4)),
                              {"stride": 2, "padding": 1}, Algorithm.TRANSPOSED_COL2IM),
    "transposed, the batch counts": (("conv_transpose2d", (2, 8, 6, 6), (8, 4, 4, 4)),
                                     {"stride": 2}, Algorithm.TRANSPOSED_PHASES),
    "transposed 1x1, few pixels": (("conv_transpose2d", (1, 8, 4, 4), (8, 4, 1, 1)),
                                   {"stride": 2}, Algorithm.TRANSPOSED_PHASES),
    "separable, one thread": (("separable_conv2d", (1, 8, 9, 9), (8, 1, 3, 3)),
                              {"n_threads": 1}, Algorithm.SEPARABLE_TWO_PASS),
    "separable, two threads": (("separable_conv2d", (1, 8, 9, 9), (8, 1, 3, 3)),
                               {"n_threads": 2}, Algorithm.SEPARABLE_TWO_PASS),
    # 4 x (32 * 16) x 128 x 128 float32 = 128 MiB of depthwise output: still two passes;
    # 512 MiB: fused, without the intermediate.
    "separable, 128 MiB intermediate": (("separable_conv2d", (4, 32, 128, 128),
                                         (512, 1, 3, 3)), {"padding": 1},
                                        Algorithm.SEPARABLE_TWO_PASS),
    "separable, 512 MiB intermediate": (("separable_conv2d", (16, 32, 128, 128),
                                         (512, 1, 3, 3)), {"padding": 1},
                                        Algorithm.SEPARABLE_FUSED),
}


@pytest.mark.parametrize("name", list(CASES))
def test_select_algorithm(name):
    args, kw, expected = CASES[name]
    assert select_algorithm(params(*args, **kw), tile_isa=None) is expected


# Builds with the register-tile engine's intrinsics (AVX2 and FMA, or AVX-512) run 1x1
# convs on it instead, and a few layer kinds on its tiles over source planes.
TILE_CASES = {
    "1x1 no padding": (("conv2d", (1, 8, 9, 9), (4, 8, 1, 1)), {}, Algorithm.POINTWISE_TILES),
    "1x1 strided": (("conv2d", (1, 8, 9, 9), (4, 8, 1, 1)), {"stride": 2},
                    Algorithm.POINTWISE_TILES),
    "1x1 grouped": (("conv2d", (1, 8, 9, 9), (4, 4, 1, 1)), {"groups": 2},
                    Algorithm.POINTWISE_TILES),
    "pointwise function": (("pointwise_conv2d", (1, 8, 9, 9), (4, 8)), {},
                           Algorithm.POINTWISE_TILES),
    "1x1 padded is not pointwise": (("conv2d", (1, 8, 9, 9), (4, 8, 1, 1)), {"padding": 1},
                                    Algorithm.IMPLICIT_GEMM),
    "depthwise 1x1 stays depthwise": (("conv2d", (1, 8, 9, 9), (8, 1, 1, 1)), {"groups": 8},
                                      Algorithm.DEPTHWISE),
    "standard 3x3": (("conv2d", (1, 8, 9, 9), (4, 8, 3, 3)), {}, Algorithm.IMPLICIT_GEMM),
    "RGB stem 7x7": (("conv2d", (1, 3, 32, 32), (8, 3, 7, 7)), {"stride": 2, "padding": 3},
                     Algorithm.DIRECT_TILES),
    "four input channels": (("conv2d", (1, 4, 9, 9), (4, 4, 5, 5)), {},
                            Algorithm.DIRECT_TILES),
    "five input channels": (("conv2d", (1, 5, 9, 9), (4, 5, 5, 5)), {},
                            Algorithm.IMPLICIT_GEMM),
    "grouped, two channels per group": (("conv2d", (1, 4, 9, 9), (4, 2, 5, 5)),
                                        {"groups": 2}, Algorithm.IMPLICIT_GEMM),
    "U-Net up-conv 2x2 stride 2 on 64x64": (("conv_transpose2d", (1, 128, 64, 64),
                                             (128, 64, 2, 2)), {"stride": 2},
                                            Algorithm.DIRECT_TILES),
    "up-conv on 16x16 rows": (("conv_transpose2d", (1, 64, 16, 16), (64, 32, 2, 2)),
                              {"stride": 2}, Algorithm.TRANSPOSED_PHASES),
    "overlapping taps (DCGAN 4x4 stride 2)": (("conv_transpose2d", (1, 128, 32, 32),
                                               (128, 64, 4, 4)), {"stride": 2, "padding": 1},
                                              {"avx2": Algorithm.TRANSPOSED_PHASES,
                                               "avx512": Algorithm.DIRECT_TILES}),
    "overlapping taps, 3x3 stride 2": (("conv_transpose2d", (1, 128, 32, 32),
                                        (128, 64, 3, 3)),
                                       {"stride": 2, "padding": 1, "output_padding": 1},
                                       {"avx2": Algorithm.TRANSPOSED_PHASES,
                                        "avx512": Algorithm.DIRECT_TILES}),
    "overlapping taps, 32 output channels": (("conv_transpose2d", (1, 64, 64, 64),
                                              (64, 32, 4, 4)), {"stride": 2, "padding": 1},
                                             Algorithm.TRANSPOSED_PHASES),
    "overlapping taps, rows of 40": (("conv_transpose2d", (1, 96, 40, 40), (96, 64, 4, 4)),
                                     {"stride": 2, "padding": 1},
                                     Algorithm.TRANSPOSED_PHASES),
    "overlapping taps, dilated": (("conv_transpose2d", (1, 128, 32, 32), (128, 64, 3, 3)),
                                  {"stride": 2, "dilation": 2},
                                  Algorithm.TRANSPOSED_PHASES),
    "overlapping taps, grouped: 32 per group": (("conv_transpose2d", (1, 128, 32, 32),
                                                 (128, 32, 4, 4)),
                                                {"stride": 2, "padding": 1, "groups": 2},
                                                Algorithm.TRANSPOSED_PHASES),
    "transposed 1x1 stride 1": (("conv_transpose2d", (1, 8, 40, 40), (8, 4, 1, 1)), {},
                                Algorithm.TRANSPOSED_PHASES),
}

# The same with float64 arrays: overlapping up-convs of enough channels on wide rows too.
F64_CASES = {
    "DCGAN 4x4 stride 2, 64 channels, 32x32": (("conv_transpose2d", (1, 128, 32, 32),
                                                (128, 64, 4, 4)), {"stride": 2, "padding": 1},
                                               Algorithm.DIRECT_TILES),
    "16 output channels": (("conv_transpose2d", (1, 32, 64, 64), (32, 16, 4, 4)),
                           {"stride": 2, "padding": 1}, Algorithm.TRANSPOSED_PHASES),
    "16x16 rows": (("conv_transpose2d", (1, 256, 16, 16), (256, 128, 4, 4)),
                   {"stride": 2, "padding": 1}, Algorithm.TRANSPOSED_PHASES),
    "grouped: 32 channels per group": (("conv_transpose2d", (1, 64, 32, 32), (64, 32, 3, 3)),
                                       {"stride": 2, "groups": 2}, Algorithm.DIRECT_TILES),
    "few input pixels stay col2im": (("conv_transpose2d", (1, 512, 4, 4), (512, 256, 4, 4)),
                                     {"stride": 2, "padding": 1}, Algorithm.TRANSPOSED_COL2IM),
    "3x3 stride 2, 128 channels, 28x28 out": (("conv2d", (1, 128, 56, 56), (128, 128, 3, 3)),
                                              {"stride": 2, "padding": 1},
                                              Algorithm.DIRECT_TILES),
    "5x5, 64 channels": (("conv2d", (1, 64, 20, 20), (64, 64, 5, 5)), {"padding": 2},
                         Algorithm.DIRECT_TILES),
    "7x7 output (weights streamed per tile)": (("conv2d", (1, 512, 14, 14), (512, 512, 3, 3)),
                                               {"stride": 2, "padding": 1},
                                               Algorithm.IMPLICIT_GEMM),
    "32 output channels": (("conv2d", (1, 16, 40, 40), (32, 16, 7, 7)), {"padding": 3},
                           Algorithm.IMPLICIT_GEMM),
    "dilated (ASPP-like)": (("conv2d", (1, 64, 33, 33), (64, 64, 3, 3)),
                            {"padding": 12, "dilation": 12}, Algorithm.IMPLICIT_GEMM),
}


# float32 up-convs that AVX-512 builds also run on the tiles (rows of whole tiles).
F32_AVX512_UPCONVS = {"DCGAN 4x4 stride 2, 64 channels, 32x32"}


# Only AVX2 builds take float64's GEMM-like convs onto the tiles (AVX-512 keeps its GEMM
# engine's 4 x 32 tiles there); both take float64's up-convs.
def _f64_expected(expected, op, tile_isa):
    if tile_isa == "avx512" and op == "conv2d":
        return Algorithm.IMPLICIT_GEMM
    return expected


@pytest.mark.parametrize("tile_isa", ["avx2", "avx512"])
@pytest.mark.parametrize("name", list(F64_CASES))
def test_select_algorithm_with_tiles_float64(name, tile_isa):
    (op, x_shape, w_shape), kw, expected = F64_CASES[name]
    p, _ = normalize(op, np.ones(x_shape), np.ones(w_shape), **kw)
    assert select_algorithm(p, tile_isa=tile_isa) is _f64_expected(expected, op, tile_isa)
    p32, _ = normalize(op, np.ones(x_shape, np.float32), np.ones(w_shape, np.float32), **kw)
    if name in F32_AVX512_UPCONVS and tile_isa == "avx512":  # see TILE_CASES
        assert select_algorithm(p32, tile_isa=tile_isa) is Algorithm.DIRECT_TILES
    elif expected is Algorithm.DIRECT_TILES:  # float32 keeps its channel-tiled GEMMs
        assert select_algorithm(p32, tile_isa=tile_isa) in (Algorithm.TRANSPOSED_PHASES,
                                                            Algorithm.IMPLICIT_GEMM)


@pytest.mark.parametrize("tile_isa", ["avx2", "avx512"])
@pytest.mark.parametrize("name", list(TILE_CASES))
def test_select_algorithm_with_tiles(name, tile_isa):
    args, kw, expected = TILE_CASES[name]
    if isinstance(expected, dict):
        expected = expected[tile_isa]
    assert select_algorithm(params(*args, **kw), tile_isa=tile_isa) is expected


def _by(algorithm):
    return forced("separable_conv2d", algorithm=algorithm).separable_conv2d


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_both_separable_algorithms_give_the_same_bits(dtype):
    # The intermediate's size picks fused or two-pass; results must not depend on it. C*m = 600
    # spans several K-blocks of the pointwise GEMM; 70 output channels end mid-block.
    import cconv
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 300, 13, 11)).astype(dtype)
    dw = rng.standard_normal((600, 1, 3, 3)).astype(dtype)
    pw = rng.standard_normal((70, 600)).astype(dtype)
    b = rng.standard_normal(70).astype(dtype)
    fused = _by(Algorithm.SEPARABLE_FUSED)(x, dw, pw, None, b, stride=2, padding=1)
    two_pass = _by(Algorithm.SEPARABLE_TWO_PASS)(x, dw, pw, None, b, stride=2, padding=1)
    assert fused.tobytes() == two_pass.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, stride, dilation", [(3, 1, 1), (3, 2, 1), (3, 1, 2), (5, 1, 1),
                                                 (5, 2, 1), (5, 1, 2), (1, 1, 1)])
def test_separable_algorithms_agree_for_every_depthwise_kernel(dtype, k, stride, dilation):
    # The fused kernel runs the plain depthwise rows, the two-pass path the depthwise
    # module's kernels (SIMD band kernels where built): same bits for every kernel shape.
    rng = np.random.default_rng(12)
    x = rng.standard_normal((1, 24, 29, 70)).astype(dtype)
    dw = rng.standard_normal((48, 1, k, k)).astype(dtype)
    pw = rng.standard_normal((17, 48)).astype(dtype)
    kw = dict(stride=stride, padding=(k // 2) * dilation, dilation=dilation)
    for n_threads in (1, 2):
        fused = _by(Algorithm.SEPARABLE_FUSED)(x, dw, pw, **kw, n_threads=n_threads)
        two_pass = _by(Algorithm.SEPARABLE_TWO_PASS)(x, dw, pw, **kw, n_threads=n_threads)
        assert fused.tobytes() == two_pass.tobytes()


# Forcing a kernel family (a private option, for tests) that cannot run the op is
# refused before any kernel runs: a conv's plan over a transposed weight, or the reverse,
# would read and write past the arrays.
@pytest.mark.parametrize("op, algorithm", [
    ("conv_transpose2d", Algorithm.IMPLICIT_GEMM),
    ("conv_transpose2d", Algorithm.POINTWISE),
    ("conv_transpose2d", Algorithm.DEPTHWISE),
    ("conv_transpose2d", Algorithm.SEPARABLE_FUSED),
    ("conv2d", Algorithm.TRANSPOSED_PHASES),
    ("conv2d", Algorithm.TRANSPOSED_COL2IM),
    ("conv2d", Algorithm.SEPARABLE_TWO_PASS),
    ("conv2d", Algorithm.DEPTHWISE),          # groups 1: not a depthwise conv
])
def test_forcing_a_family_that_cannot_run_the_op_is_refused(op, algorithm):
    x = np.ones((1, 4, 9, 9), np.float32)
    w = np.ones((4, 6, 3, 3) if op == "conv_transpose2d" else (6, 4, 3, 3), np.float32)
    with pytest.raises(ValueError, match="cannot run"):
        forced(op, algorithm=algorithm).__dict__[op](x, w, stride=2)


def test_forced_families_that_can_run_the_op_still_run():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 6, 3, 3)).astype(np.float32)
    up = [forced("conv_transpose2d", algorithm=a).conv_transpose2d(x, w, stride=2)
          for a in (Algorithm.TRANSPOSED_PHASES, Algorithm.TRANSPOSED_COL2IM,
                    Algorithm.DIRECT_TILES)]
    np.testing.assert_allclose(up[1], up[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(up[2], up[0], rtol=1e-5, atol=1e-5)
    dw = rng.standard_normal((8, 1, 3, 3)).astype(np.float32)
    by_depthwise = forced("conv2d", algorithm=Algorithm.DEPTHWISE).conv2d(x, dw, groups=4)
    by_gemm = forced("conv2d", algorithm=Algorithm.IMPLICIT_GEMM).conv2d(x, dw, groups=4)
    np.testing.assert_allclose(by_depthwise, by_gemm, rtol=1e-5, atol=1e-5)
