"""Algorithm selection: a pure function of the validated parameters.

Kept apart from the kernels and from validation so that it can be tested with a table
of named cases (as PyTorch tests ``_select_conv_backend``).
"""

from __future__ import annotations

import enum

import numpy as np

from cconv._params import ConvParams
from cconv._pointwise import TILE_ISA
from cconv.shapes import dilation_phases


class Algorithm(enum.Enum):
    IMPLICIT_GEMM = "implicit_gemm"          # standard / grouped / strided / dilated conv
    WINOGRAD = "winograd"                    # 3x3 stride 1: F(2x2, 3x3), 2.25x fewer MACs
    WINOGRAD_WIDE = "winograd_wide"          # the same, all tiles at once, channels chunked
    POINTWISE = "pointwise"                  # 1x1, no padding: the GEMM engine, one tap
    POINTWISE_TILES = "pointwise_tiles"      # the same, 6 x 16 register tiles (_pointwise)
    DIRECT_TILES = "direct_tiles"            # few input channels: those tiles, taps in place
    DEPTHWISE = "depthwise"                  # groups == C_in: per-plane row kernels
    TRANSPOSED_PHASES = "transposed_phases"  # transposed conv as a per-phase gather GEMM
    TRANSPOSED_COL2IM = "transposed_col2im"  # few input pixels: weights x pixels, then col2im
    SEPARABLE_FUSED = "separable_fused"      # depthwise rows fed straight into the GEMM
    SEPARABLE_TWO_PASS = "separable_two_pass"  # depthwise kernel, then the pointwise GEMM


# Depthwise-separable layers whose depthwise output (the two-pass path's intermediate)
# would be larger than this run fused instead, without it.
FUSED_SEPARABLE_MIN_BYTES = 256 * 2**20

# Input channels up to which an ungrouped conv2d that neither Winograd engine takes runs
# on the 1x1 engine's register tiles over the implicit GEMM's source planes
# (_pointwise.direct_forward) where they have intrinsics: the first layer of an image
# network, whose few (tap, channel) rows per output make the channel tiles' transposing
# stores a large share (16% of ResNet's 7x7 stem). Measured, float32, 1 / 2 threads:
# the stem 3.19 -> 2.95 / 1.65 -> 1.47 ms, VGG's 3x3 3 -> 64 at 224x224 4.11 -> 3.71,
# 3x3 stride 2 3 -> 32 0.48 -> 0.36; with 16 channels (7x7) 10% slower, so not there.
# (AVX2 figures; with AVX-512, 12 x 32 tiles, the stem 1.60 -> 1.46 ms, 1 thread.)
DIRECT_TILES_MAX_C_IN = 4

# Transposed convs whose kernel equals their stride (every output pixel receives exactly
# one tap: U-Net's 2x2 stride-2 up-convolutions) on input rows at least this wide run on
# those tiles too, phase by phase. Measured, float32, 1 thread: 128 -> 64 on 64x64 4.44
# -> 3.90 ms, 256 -> 128 on 32x32 4.06 -> 3.75, 64 -> 32 on 128x128 6.83 -> 6.19; on
# 16x16 (512 -> 256) 12% slower, and with overlapping taps (4x4 stride 2) even or slower.
DIRECT_TILES_MIN_UPCONV_WIDTH = 32
# float64 transposed convs on rows that wide with at least this many output channels
# per group too (the phase GEMM's float64 tiles have no channel-tiled form): DCGAN's
# 128 -> 64 4x4 stride 2 on 32x32 9.07 -> 7.66 ms, 3x3 stride 2 128 -> 64 6.70 -> 5.40,
# 4x4 64 -> 32 on 64x64 9.57 -> 8.62; 32 -> 16 6% slower (1 thread).
DIRECT_TILES_MIN_F64_CHANNELS = 32
# float32 transposed convs with overlapping taps too, undilated, with at least this many
# output channels per group, on input rows a whole number of AVX-512 tiles wide (32
# columns: each phase row one or more whole position tiles), on AVX-512 builds (where
# it was measured). Interleaved, 1 / 2 threads, against the phase GEMM's channel tiles:
# DCGAN's 128 -> 64 4x4 stride 2 on 32x32 1.20x / 1.1x faster, 256 -> 128 1.23x / 1.19x,
# 64 -> 64 on 64x64 1.05x / 1.22x, 3x3 stride 2 128 -> 64 on 32x32 1.15x / 1.49x; batch
# 8 0.96x / 1.02x. Not taken: 32 output channels (64 -> 32 on 64x64 0.84x), rows of 40
# or 16 columns (0.79x, 0.92x: part-filled tiles), 48 and 56 even.
DIRECT_TILES_MIN_F32_UPCONV_CHANNELS = 64
DIRECT_TILES_F32_UPCONV_COLUMNS = 32
# And float64 convs that no Winograd engine takes, undilated (no all-padding taps to
# skip), with at least this many output positions per image and output channels per
# group (the weights stream past every position tile: on 7x7 maps 1.8x slower).
# Measured, 1 thread: 3x3 stride 2 128 -> 128 from 56x56 11.2 -> 8.7 ms, 256 -> 256 from
# 28x28 11.2 -> 9.5, 5x5 64 -> 64 on 56x56 18.6 -> 15.8; 7x7 16 -> 32 on 112x112 6%
# slower (hence the channels). float32 keeps its channel tiles, 10-20% faster there.
# AVX2 builds only: with AVX-512 the GEMM engine ran ResNet's 3x3 convs 1.7x faster.
DIRECT_TILES_F64_MIN_POSITIONS = 196
DIRECT_TILES_F64_MIN_CONV_CHANNELS = 64

# Input pixels (batch included) up to which a transposed conv runs as weights x pixels +
# col2im (measured: DCGAN 512 -> 256 on 4x4, 16 pixels; FCN-32s' 7x7, 49).
COL2IM_MAX_PIXELS = 64


# The Winograd engine's costs in multiply-add equivalents of its GEMM, fitted to runs
# here (float32, 1 thread; the transforms of 64 -> 64 and 32 -> 32 layers at 14x14 to
# 224x224 within 10%): the input and output transforms about WINOGRAD_TILE_COST per
# tile, transform position and channel (in plus out), and WINOGRAD_ROW_COST more per
# row of tiles (the loops over one tile row's columns are short on small maps: 7 tiles
# at 14x14); the weight transform about WINOGRAD_WEIGHT_COST per transformed weight
# (16 values written per 9 read; 0.18 ms for 256 x 256 channels).
WINOGRAD_TILE_COST = 14
WINOGRAD_ROW_COST = 184
WINOGRAD_WEIGHT_COST = 10
WINOGRAD_TILE_COLUMNS = 32    # the GEMM computes whole 32-column tiles of 2x2 blocks
WINOGRAD_BLOCK_TILES = 64     # tiles per work item at most (_winograd.NT)
# Input channels at most: an item transforms all of them into 16 x C_in x 64 values
# (2 MB of float32 at 512) and streams all the transformed weights. Measured against the
# implicit GEMM: 512 channels at 14x14 and 28x28 1.1-1.4x faster at 1 and 2 threads;
# ASPP's 2048 at 33x33, dilation 6 (8 MB per item, the weights streamed from memory:
# 33 MB per block of tiles) 1.2x slower (100 against 86 ms, K in chunks of 256 channels)
# though with 1.46x fewer multiply-adds.
WINOGRAD_MAX_C_IN = 512


def winograd_applies(p: ConvParams) -> bool:
    """Whether the F(2x2, 3x3) engine can run ``p``: an ungrouped 3x3 conv2d at stride 1,
    any dilation (as dilation_h x dilation_w undilated convs of strided views), any
    zero padding (other padding modes are padded beforehand)."""
    return (p.op == "conv2d" and p.kernel == (3, 3) and p.stride == (1, 1)
            and p.groups == 1)


def winograd_tiles(p: ConvParams) -> tuple:
    """``(tiles, tile rows)`` of one image: the 2x2 output tiles of every pair of
    dilation phases, and their rows (``_winograd.phase_table`` lays them out so)."""
    _, _, H, W = p.input_shape
    _, _, H_out, W_out = p.output_shape
    (pt, _), (pl, _) = p.padding
    rows = sum((r[1] + 1) // 2 for r in dilation_phases(H, H_out, pt, p.dilation[0]))
    col_phases = dilation_phases(W, W_out, pl, p.dilation[1])
    cols = sum((c[1] + 1) // 2 for c in col_phases)
    return rows * cols, rows * len(col_phases)


def winograd_pays(p: ConvParams) -> bool:
    """Whether F(2x2, 3x3) beats the implicit GEMM on ``p``, by the cost model above:
    its GEMM computes whole 32-column tiles (a 7x7 map is 16 tiles in 32 columns), and
    the transforms cost most where channels are few (the 3-channel input of a first
    layer) and the weight transform where maps are small (512 channels at 7x7: 16 MB of
    transformed weights for 16 tiles). The direct conv runs at about 95% of the GEMM's
    speed (its B rows read in place, some padding taps computed). Many input channels
    are left to the implicit GEMM (WINOGRAD_MAX_C_IN), and so are large dilations on
    small maps (ASPP's 12 and 18 at 33x33): there the GEMM skips the taps that read only
    padding (half of them) and the dilated Winograd conv's phases are a few tiles each."""
    if not winograd_applies(p) or p.C_in > WINOGRAD_MAX_C_IN:
        return False
    N, C_out, H_out, W_out = p.output_shape
    C_in = p.C_in
    tiles, tile_rows = winograd_tiles(p)
    blocks = -(-tiles // WINOGRAD_BLOCK_TILES)
    per_block = -(-tiles // blocks)
    columns = blocks * -(-per_block // WINOGRAD_TILE_COLUMNS) * WINOGRAD_TILE_COLUMNS
    transforms = WINOGRAD_TILE_COST * tiles + WINOGRAD_ROW_COST * tile_rows
    winograd = (16 * N * columns * C_in * C_out
                + 16 * N * transforms * (C_in + C_out)
                + 16 * C_in * C_out * WINOGRAD_WEIGHT_COST)
    direct = N * _real_taps(p) * C_in * C_out / 0.95
    return winograd < direct


# The wide Winograd mode (_winograd.run_all_wide), for more input channels than the
# blocked items hold: every tile of an image at once, the input channels in chunks, the
# weights transformed per chunk and per call. Costs in multiply-add equivalents of its
# GEMM, fitted to ASPP's dilation-6 layer (2048 -> 256 at 33x33, float32, 1 thread;
# 2.95 G GEMM multiply-adds in 48 ms): per tile, transform position and input channel
# WIDE_INPUT_COST (the channels-last copy and the input transform, 10 ms), per tile,
# position and output channel WIDE_OUTPUT_COST (the output transform, 1.6 ms), per
# transformed weight WIDE_WEIGHT_COST (3.8 ms).
WIDE_INPUT_COST = 56
WIDE_OUTPUT_COST = 74
WIDE_WEIGHT_COST = 28
# The direct conv's speed on such layers, against its real taps: their input lines of a
# K-block (512 of the 9 x C_in k) do not stay in L1 over its output-channel blocks
# (measured: ASPP's dilation 6 80% of the peak, 1024 -> 256 at 14x14 74%).
WIDE_DIRECT_EFFICIENCY = 0.8
# M, the products of every tile of an image (16 x tiles x output channels), at most:
# larger maps would keep the blocked engine's or the GEMM's memory instead.
WIDE_MAX_PRODUCT_BYTES = 64 * 2**20


def winograd_wide_pays(p: ConvParams) -> bool:
    """Whether the wide Winograd mode beats the implicit GEMM on ``p``: only past the
    blocked engine's channel limit (WINOGRAD_MAX_C_IN), and by the cost model above
    against the direct conv's real taps. ASPP's dilation 6 (2048 channels at 33x33:
    324 tiles, 1.46x fewer multiply-adds than the real taps) pays; dilation 12 and 18
    (576 and 900 tiles of mostly padding) do not."""
    if not winograd_applies(p) or p.C_in <= WINOGRAD_MAX_C_IN:
        return False
    N, C_out = p.output_shape[:2]
    tiles, _ = winograd_tiles(p)
    blocks = -(-tiles // WINOGRAD_BLOCK_TILES)
    if 16 * blocks * WINOGRAD_BLOCK_TILES * C_out * p.dtype.itemsize > WIDE_MAX_PRODUCT_BYTES:
        return False
    columns = -(-tiles // WINOGRAD_TILE_COLUMNS) * WINOGRAD_TILE_COLUMNS
    wide = (16 * N * columns * p.C_in * C_out
            + 16 * N * tiles * (WIDE_INPUT_COST * p.C_in + WIDE_OUTPUT_COST * C_out)
            + 16 * p.C_in * C_out * WIDE_WEIGHT_COST)
    direct = N * _real_taps(p) * p.C_in * C_out / WIDE_DIRECT_EFFICIENCY
    return wide < direct


def _real_taps(p: ConvParams) -> int:
    """(output, tap) pairs of one image whose tap reads the input, not the padding: the
    work of the implicit GEMM where it skips padding taps (its best case)."""
    _, _, H, W = p.input_shape
    _, _, H_out, W_out = p.output_shape
    (pt, _), (pl, _) = p.padding
    dh, dw = p.dilation

    def valid(size, out, before, d):
        # outputs o with 0 <= o - before + k * d < size, summed over the 3 taps k
        return sum(max(0, min(out, size + before - k * d) - max(0, before - k * d))
                   for k in range(3))

    return valid(H, H_out, pt, dh) * valid(W, W_out, pl, dw)


def select_algorithm(p: ConvParams, tile_isa: str | None = TILE_ISA) -> Algorithm:
    """Which kernel family runs a call described by ``p``. ``tile_isa``: which
    intrinsics this build's register-tile engine (_pointwise) has, "avx2", "avx512" or
    None. With either, it runs every 1x1 conv (AVX2: 1x1 256 -> 64 on 56x56 at 94
    GFLOP/s against the GEMM engine's 80, 1024 -> 1024 on 7x7 1.30 against 1.65 ms;
    AVX-512, 12 x 32 tiles: 256 -> 256 on 28x28 at 183 against 125 GFLOP/s, 512 -> 512
    on 14x14 180 against 155; float32, one thread), convs of at most
    DIRECT_TILES_MAX_C_IN input channels and U-Net-style up-convs
    (DIRECT_TILES_MIN_UPCONV_WIDTH), and float64's up-convs of enough channels
    (DIRECT_TILES_MIN_F64_CHANNELS); with AVX-512, float32's too where their rows fill
    whole tiles (DIRECT_TILES_F32_UPCONV_*). Only with AVX2 does it take float64's GEMM-like
    convs too (DIRECT_TILES_F64_*): with AVX-512 the GEMM engine's 4 x 32 tiles ran
    ResNet's 3x3 convs 1.7x faster than the 12 x 16 ones."""
    if p.op == "separable_conv2d":
        # Measured here (MobileNet 256 ch at 28x28, 512 at 14x14, 64 at 112x112, 128 at
        # 56x56 stride 2): since the depthwise kernel has SIMD band kernels and the 1x1
        # GEMM reads its input in place, depthwise then pointwise is 10-25% faster than
        # the fused kernel on one thread and 10-55% on two. The fused kernel needs no
        # intermediate array, so it stays for layers whose intermediate would be large.
        N, _, H_out, W_out = p.output_shape
        if N * p.mid_channels * H_out * W_out * p.dtype.itemsize > FUSED_SEPARABLE_MIN_BYTES:
            return Algorithm.SEPARABLE_FUSED
        return Algorithm.SEPARABLE_TWO_PASS
    if p.op == "conv_transpose2d":
        # With few input pixels every weight is used a handful of times: the phase GEMM
        # would pack all weights per call for that (DCGAN's 512 -> 256 on 4x4: 8 MB
        # packed for 16 uses each). Instead the weights are the GEMM's streamed operand,
        # read once in place against the pixels, and each output gathers its taps.
        N, _, H, W = p.input_shape
        if N * H * W <= COL2IM_MAX_PIXELS and p.kernel != (1, 1):
            return Algorithm.TRANSPOSED_COL2IM
        if (tile_isa and p.kernel == p.stride and p.kernel != (1, 1)
                and p.dilation == (1, 1) and W >= DIRECT_TILES_MIN_UPCONV_WIDTH):
            return Algorithm.DIRECT_TILES
        if (tile_isa and p.dtype == np.float64 and W >= DIRECT_TILES_MIN_UPCONV_WIDTH
                and p.C_out // p.groups >= DIRECT_TILES_MIN_F64_CHANNELS):
            return Algorithm.DIRECT_TILES
        if (tile_isa == "avx512" and p.dtype == np.float32 and p.dilation == (1, 1)
                and W > 0 and W % DIRECT_TILES_F32_UPCONV_COLUMNS == 0
                and p.C_out // p.groups >= DIRECT_TILES_MIN_F32_UPCONV_CHANNELS):
            return Algorithm.DIRECT_TILES
        return Algorithm.TRANSPOSED_PHASES
    if p.op == "depthwise_conv2d":
        return Algorithm.DEPTHWISE
    # conv2d (and pointwise_conv2d, which is conv2d with a 1x1 weight).
    if p.groups == p.C_in and p.groups > 1 and p.C_out % p.C_in == 0:
        return Algorithm.DEPTHWISE
    if p.kernel == (1, 1) and p.zero_padding:
        return Algorithm.POINTWISE_TILES if tile_isa else Algorithm.POINTWISE
    if winograd_pays(p):
        return Algorithm.WINOGRAD
    if winograd_wide_pays(p):
        return Algorithm.WINOGRAD_WIDE
    if tile_isa and p.groups == 1 and p.C_in <= DIRECT_TILES_MAX_C_IN:
        return Algorithm.DIRECT_TILES
    _, _, H_out, W_out = p.output_shape
    if (tile_isa == "avx2" and p.dtype == np.float64 and p.dilation == (1, 1)
            and H_out * W_out >= DIRECT_TILES_F64_MIN_POSITIONS
            and p.C_out // p.groups >= DIRECT_TILES_F64_MIN_CONV_CHANNELS):
        return Algorithm.DIRECT_TILES
    return Algorithm.IMPLICIT_GEMM
