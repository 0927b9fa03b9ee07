"""Test configurations: named grids at awkward sizes and random-configuration generators.

A :class:`Case` is data only: the public function's name, the shapes of its array
arguments (None for an absent bias) and its keyword arguments.  The same cases run
against the reference, torch and the kernels, so a size that matters is listed once.

Awkward sizes (STYLE.md habit 10): 1, primes, kernel span == padded input, padding wider
than the kernel span (taps that see only padding), odd channel counts, and channel and
position counts just under, at and over the kernels' tile widths (8 output channels;
16 float64 / 32 float32 positions).

The random generators are written against a two-method chooser (``pick`` from a list,
``integer`` in a closed range) so that one definition serves both a seeded numpy stream
(``test_against_torch``) and hypothesis (``test_properties``, which then shrinks).
A generator raises :class:`Reject` for an invalid combination; the driver retries or
``assume``s.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from reference import pair, resolve_padding

TILE_CHANNELS = [7, 8, 9, 15, 16, 17]
TILE_POSITIONS = [15, 16, 17, 31, 32, 33]


@dataclass
class Case:
    fn: str
    shapes: list
    kwargs: dict = field(default_factory=dict)
    name: str = ""

    def __str__(self):
        return self.name or f"{self.fn}{self.shapes}{self.kwargs}"

    def arrays(self, dtype, rng):
        """The array arguments, standard normal values rounded to ``dtype``."""
        return [None if s is None else rng.standard_normal(s).astype(dtype)
                for s in self.shapes]


class Reject(Exception):
    """The drawn combination is not a valid call; draw again."""


# ---------------------------------------------------------------- builders

def conv2d_case(n, c_in, c_out, hw, k, stride=1, padding=0, dilation=1, groups=1,
                bias=True, padding_mode="zeros", name=""):
    kh, kw = pair(k)
    shapes = [(n, c_in, *pair(hw)), (c_out, c_in // groups, kh, kw),
              (c_out,) if bias else None]
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                  padding_mode=padding_mode)
    return Case("conv2d", shapes, kwargs, name)


def conv_transpose2d_case(n, c_in, c_out, hw, k, stride=1, padding=0, output_padding=0,
                          groups=1, dilation=1, bias=True, name=""):
    kh, kw = pair(k)
    shapes = [(n, c_in, *pair(hw)), (c_in, c_out // groups, kh, kw),
              (c_out,) if bias else None]
    kwargs = dict(stride=stride, padding=padding, output_padding=output_padding,
                  groups=groups, dilation=dilation)
    return Case("conv_transpose2d", shapes, kwargs, name)


def depthwise_case(n, c, m, hw, k, stride=1, padding=0, dilation=1, bias=True,
                   padding_mode="zeros", name=""):
    kh, kw = pair(k)
    shapes = [(n, c, *pair(hw)), (c * m, 1, kh, kw), (c * m,) if bias else None]
    kwargs = dict(stride=stride, padding=padding, dilation=dilation,
                  padding_mode=padding_mode)
    return Case("depthwise_conv2d", shapes, kwargs, name)


def pointwise_case(n, c_in, c_out, hw, stride=1, bias=True, weight_4d=False, name=""):
    w = (c_out, c_in, 1, 1) if weight_4d else (c_out, c_in)
    shapes = [(n, c_in, *pair(hw)), w, (c_out,) if bias else None]
    return Case("pointwise_conv2d", shapes, dict(stride=stride), name)


def separable_case(n, c, m, c_out, hw, k, stride=1, padding=0, dilation=1, dw_bias=True,
                   pw_bias=True, padding_mode="zeros", pw_4d=False, name=""):
    kh, kw = pair(k)
    pw = (c_out, c * m, 1, 1) if pw_4d else (c_out, c * m)
    shapes = [(n, c, *pair(hw)), (c * m, 1, kh, kw), pw,
              (c * m,) if dw_bias else None, (c_out,) if pw_bias else None]
    kwargs = dict(stride=stride, padding=padding, dilation=dilation,
                  padding_mode=padding_mode)
    return Case("separable_conv2d", shapes, kwargs, name)


# ---------------------------------------------------------------- validity

def padding_is_valid(padding, hw, k, stride, dilation, padding_mode):
    """Whether torch.nn.Conv2d accepts this padding for this input (and it is non-empty)."""
    h, w = pair(hw)
    kh, kw = pair(k)
    st, di = pair(stride), pair(dilation)
    (t, b), (le, r) = resolve_padding(padding, (h, w), (kh, kw), st, di)
    if min(t, b, le, r) < 0:
        return False
    if padding_mode == "reflect" and (max(t, b) >= h or max(le, r) >= w):
        return False
    if padding_mode == "circular" and (max(t, b) > h or max(le, r) > w):
        return False
    return (h + t + b >= di[0] * (kh - 1) + 1) and (w + le + r >= di[1] * (kw - 1) + 1)


# ---------------------------------------------------------------- named grids

PADDING_SPELLINGS = [0, 1, (2, 1), "same", "valid", ((0, 2), (1, 0)), ((2, 1), (1, 3))]
PADDING_MODES = ["zeros", "reflect", "replicate", "circular"]


def conv2d_product_grid():
    """stride x padding x dilation x groups x padding_mode, bias alternating."""
    cases = []
    for i, (s, p, d, g, mode) in enumerate(itertools.product(
            [1, 2, (3, 1)], PADDING_SPELLINGS, [1, (2, 1)], [1, 3], PADDING_MODES)):
        if p == 0 and mode != "zeros":
            continue  # no padding: the mode is irrelevant
        hw, k = (7, 8), (3, 2)
        if not padding_is_valid(p, hw, k, s, d, mode):
            continue
        c_in, c_out = (6, 9) if g == 3 else (3, 5)
        cases.append(conv2d_case(2, c_in, c_out, hw, k, s, p, d, g, bias=i % 2 == 0,
                                 padding_mode=mode,
                                 name=f"s{s}-p{p}-d{d}-g{g}-{mode}"))
    return cases


def conv2d_awkward():
    c = conv2d_case
    cases = [
        c(1, 1, 1, 1, 1, name="all-ones"),
        c(1, 1, 1, 1, 3, padding=1, name="1x1-input-3x3-kernel-pad1"),
        c(1, 2, 3, 1, 1, stride=2, name="1x1-input-stride2"),
        c(2, 3, 5, (7, 11), (5, 3), padding=(2, 1), name="primes"),
        c(1, 3, 5, (5, 4), (7, 6), padding=1, name="kernel-equals-padded-input"),
        c(1, 2, 3, (3, 3), 3, padding=4, name="all-padding-taps"),
        c(1, 2, 3, (2, 5), (3, 2), padding=((4, 5), (0, 3)), name="all-padding-taps-asym"),
        c(1, 2, 2, (3, 3), 3, padding=4, dilation=2, name="all-padding-taps-dilated"),
        c(1, 2, 2, (4, 5), 2, padding=3, padding_mode="replicate", name="replicate-wide"),
        c(1, 2, 2, (4, 5), 2, padding=(4, 5), padding_mode="circular", name="circular-full"),
        c(1, 2, 2, (4, 5), 3, padding=(3, 4), padding_mode="reflect", name="reflect-max"),
        c(3, 7, 9, (6, 5), 3, padding=1, name="odd-channels-batch3"),
        c(2, 5, 3, (9, 9), 2, stride=3, name="stride-gt-kernel"),
        c(1, 4, 4, (13, 13), 3, stride=5, padding=1, name="stride5"),
        c(1, 3, 4, (11, 10), (3, 5), dilation=(2, 3), padding="same", name="same-dilated"),
        c(1, 3, 4, (11, 10), (4, 2), padding="same", name="same-even-kernel"),
        c(1, 3, 4, (11, 10), 3, stride=2, padding="same", name="same-stride2-odd"),
        c(1, 3, 4, (12, 10), 4, stride=(3, 2), padding="same", name="same-stride32-even"),
        c(1, 2, 2, (5, 9), (5, 1), stride=4, padding="same", dilation=(1, 1),
          name="same-stride4"),
        c(1, 2, 3, (9, 8), 3, stride=2, padding="same", padding_mode="reflect",
          name="same-stride2-reflect"),
        c(1, 2, 3, (9, 8), 3, stride=3, padding="same", padding_mode="circular",
          name="same-stride3-circular"),
        c(1, 6, 6, (5, 5), 3, padding=1, groups=6, name="groups-eq-channels"),
        c(1, 6, 12, (5, 5), 3, padding=1, groups=6, name="groups-multiplier2"),
        c(2, 9, 15, (5, 6), 3, padding=1, groups=3, name="groups3-odd"),
        c(1, 8, 8, (4, 4), 3, padding=1, groups=4, bias=False, name="groups4"),
        c(1, 3, 2, (20, 19), 11, padding=5, name="large-kernel"),
        c(1, 3, 2, (40, 37), 16, stride=8, padding=4, name="kernel16-stride8"),
    ]
    for co in TILE_CHANNELS + [31, 32, 33]:
        cases.append(c(1, 3, co, (5, 4), 3, padding=1, name=f"c_out{co}"))
    for ci in [7, 8, 9, 16, 17]:
        cases.append(c(1, ci, 4, (4, 5), 2, name=f"c_in{ci}"))
    for npos in TILE_POSITIONS + [63, 64, 65]:
        cases.append(c(1, 2, 3, (1, npos), (1, 3), padding=(0, 1), name=f"positions{npos}-row"))
    for hw in [(4, 8), (3, 11), (4, 4), (2, 16), (5, 7)]:
        cases.append(c(2, 3, 9, hw, 3, padding=1, name=f"positions{hw[0]}x{hw[1]}"))
    cases.append(c(1, 17, 33, (5, 7), 3, padding=1, stride=1, name="c17-c33-33pos"))
    cases.extend(conv2d_blocking())
    return cases


def conv2d_blocking():
    """Reduction, position and channel-chunk counts around the GEMM engine's blocks.

    The reduction runs over k = (tap, input channel) in blocks of KC = 512 (the cases
    around 128 and 256, earlier block sizes, stay); a work item covers up to 256
    positions and up to 256 output channels. Taps wholly in the padding (large
    dilation) may be skipped per block.
    """
    c = conv2d_case
    cases = []
    for ci, k in [(14, 3), (15, 3), (43, 3), (127, 1), (128, 1), (129, 1), (64, 2),
                  (257, 1), (511, 1), (512, 1), (513, 1), (57, 3), (1025, 1), (114, 3)]:
        cases.append(c(1, ci, 9, (3, 4), k, padding=1, name=f"k-block-c_in{ci}-k{k}"))
    for hw in [(1, 127), (8, 16), (1, 129), (11, 12), (16, 16), (15, 17)]:
        cases.append(c(1, 3, 9, hw, 3, padding=1, name=f"nc-block-{hw[0]}x{hw[1]}"))
    for co in [255, 256, 257]:
        cases.append(c(1, 2, co, (3, 3), 2, name=f"m-chunk-c_out{co}"))
    cases += [
        c(1, 128, 5, (4, 4), 3, padding=4, dilation=4, name="padding-only-k-blocks"),
        c(1, 130, 4, (5, 4), 3, padding=(6, 2), dilation=3, name="padding-only-k-blocks-2"),
        c(2, 40, 12, (6, 7), 3, padding=5, dilation=5, groups=2, name="padding-only-grouped"),
        c(1, 33, 17, (7, 9), 5, stride=2, padding=2, name="c33-k5-s2"),
    ]
    # Stride-2 column phases of input rows of 32 to 70 values (vector steps and tails of
    # the phase-plane copy).
    for hw, k, pad in [((5, 70), 3, 1), ((4, 33), 3, 0), ((3, 32), 2, 0), ((3, 38), 7, 3)]:
        cases.append(c(1, 3, 5, hw, k, stride=2, padding=pad,
                       name=f"s2-rows-{hw[0]}x{hw[1]}-k{k}"))
    return cases


def conv_transpose2d_product_grid():
    cases = []
    for i, (s, p, op, d, g) in enumerate(itertools.product(
            [1, 2, (3, 2)], [0, 1, (2, 1)], [0, 1, (0, 1)], [1, 2], [1, 2])):
        st, di, opp = pair(s), pair(d), pair(op)
        if any(opp[a] >= max(st[a], di[a]) for a in (0, 1)):
            continue
        cases.append(conv_transpose2d_case(2, 2 * g, 3 * g, (4, 5), 3, s, p, op, g, d,
                                           bias=i % 2 == 0,
                                           name=f"s{s}-p{p}-op{op}-d{d}-g{g}"))
    return cases


def conv_transpose2d_awkward():
    c = conv_transpose2d_case
    cases = [
        c(1, 1, 1, 1, 1, name="all-ones"),
        c(1, 1, 1, 1, 3, name="1x1-input-3x3"),
        c(1, 2, 3, 1, 3, stride=2, padding=1, name="1x1-input-crop"),
        c(2, 3, 5, (7, 11), (5, 3), stride=(2, 3), padding=(2, 1), name="primes"),
        c(1, 4, 2, (5, 5), 4, stride=2, padding=1, name="classic-k4-s2-p1"),
        c(1, 4, 2, (5, 6), 3, stride=2, padding=1, output_padding=1, name="k3-s2-op1"),
        c(1, 3, 3, (4, 4), 2, stride=3, name="stride-gt-kernel"),
        c(1, 3, 3, (4, 4), 2, stride=3, output_padding=2, name="stride-gt-kernel-op2"),
        c(1, 3, 3, (4, 3), 1, stride=4, output_padding=(3, 1), name="k1-s4-gaps"),
        c(1, 2, 2, (3, 3), 3, dilation=3, output_padding=2, name="dilation-op"),
        c(1, 2, 4, (3, 4), 5, stride=2, padding=4, name="heavy-crop"),
        c(3, 7, 9, (5, 4), 3, stride=2, padding=1, name="odd-channels-batch3"),
        c(1, 6, 6, (4, 4), 3, stride=2, groups=6, name="groups-depthwise"),
        c(1, 6, 9, (4, 5), 3, stride=2, groups=3, padding=1, name="groups3"),
        c(1, 3, 2, (5, 4), 16, stride=8, padding=4, name="upsample-k16-s8"),
        c(1, 2, 2, (3, 3), 64, stride=32, padding=16, name="upsample-k64-s32"),
        c(1, 2, 3, (3, 4), (16, 8), stride=(8, 4), bias=False, name="upsample-rect"),
    ]
    for co in TILE_CHANNELS + [31, 32, 33]:
        cases.append(c(1, 3, co, (3, 4), 3, stride=2, name=f"c_out{co}"))
    for ci in [7, 8, 9, 17]:
        cases.append(c(1, ci, 3, (3, 3), 2, stride=2, name=f"c_in{ci}"))
    for npos in TILE_POSITIONS:
        # Output row length npos: (w - 1) * 1 + 3 = npos.
        cases.append(c(1, 2, 3, (1, npos - 2), (1, 3), name=f"positions{npos}-row"))
    # (widths around the 8-value steps of the stride-2 column stores)
    for hw in [(3, 7), (4, 3), (2, 14), (2, 8), (1, 9), (2, 16), (1, 17), (1, 33)]:
        cases.append(c(2, 3, 9, hw, 2, stride=2, name=f"in{hw[0]}x{hw[1]}-s2"))
    # 16x16 inputs (256-value planes) with 64 input channels: read through copied
    # planes spread apart (_igemm._plane_pitch), not in place
    cases.append(c(2, 64, 5, (16, 16), 2, stride=2, name="spread-planes-s2"))
    # Sub-pixel phases: stride and dilation sharing factors leave phases with no taps.
    for s, d, op in [(2, 2, 1), (3, 2, 2), (4, 2, 3), (2, 3, 2), (3, 3, 0), (4, 6, 5),
                     ((2, 3), (3, 2), (1, 2))]:
        cases.append(c(1, 3, 4, (4, 5), 3, stride=s, dilation=d, output_padding=op,
                       padding=1, name=f"phases-s{s}-d{d}-op{op}"))
    for ci in [43, 65, 130, 86]:
        cases.append(c(1, ci, 5, (3, 4), (2, 3), stride=2, padding=(0, 1),
                       name=f"k-block-c_in{ci}"))
    for hw in [(8, 8), (6, 11), (1, 64), (1, 65)]:
        cases.append(c(1, 3, 9, hw, 3, stride=2, padding=1, output_padding=1,
                       name=f"nc-block-{hw[0]}x{hw[1]}"))
    cases.append(c(1, 2, 257, (2, 2), 2, stride=2, name="m-chunk-c_out257"))
    return cases


def depthwise_product_grid():
    cases = []
    for i, (s, p, d, mode) in enumerate(itertools.product(
            [1, 2, (1, 3)], PADDING_SPELLINGS, [1, 2], PADDING_MODES)):
        if p == 0 and mode != "zeros":
            continue
        hw, k = (8, 7), 3
        if not padding_is_valid(p, hw, k, s, d, mode):
            continue
        cases.append(depthwise_case(2, 3, 1 + i % 3, hw, k, s, p, d, bias=i % 2 == 1,
                                    padding_mode=mode, name=f"s{s}-p{p}-d{d}-{mode}"))
    return cases


def depthwise_awkward():
    c = depthwise_case
    cases = [
        c(1, 1, 1, 1, 1, name="all-ones"),
        c(1, 1, 1, 1, 3, padding=1, name="1x1-input-3x3"),
        c(2, 5, 1, (7, 11), (5, 3), padding=(2, 1), name="primes"),
        c(1, 3, 2, (5, 4), (7, 6), padding=1, name="kernel-equals-padded-input"),
        c(1, 3, 1, (3, 3), 3, padding=4, name="all-padding-taps"),
        c(1, 3, 3, (3, 3), 3, padding=((4, 0), (1, 5)), name="all-padding-taps-asym"),
        c(1, 4, 1, (9, 9), 2, stride=3, name="stride-gt-kernel"),
        c(1, 3, 1, (11, 10), 3, stride=2, padding="same", name="same-stride2"),
        c(1, 3, 2, (12, 10), (4, 5), stride=(3, 2), padding="same", dilation=(1, 2),
          name="same-stride32-dilated"),
        c(1, 2, 1, (9, 8), 5, padding=2, padding_mode="reflect", name="reflect-5x5"),
        c(1, 2, 1, (9, 8), 5, padding="same", padding_mode="circular", name="circular-same"),
        c(3, 7, 1, (6, 5), 3, padding=1, name="odd-channels-batch3"),
        c(1, 4, 4, (6, 6), 3, padding=1, name="multiplier4"),
        c(1, 3, 2, (20, 19), 11, padding=5, name="large-kernel"),
        c(1, 2, 1, (3, 3), 7, padding=3, stride=1, name="kernel-wider-than-input"),
    ]
    for ch in TILE_CHANNELS + [31, 32, 33]:
        cases.append(c(1, ch, 1, (5, 4), 3, padding=1, name=f"c{ch}"))
    for ch, m in [(4, 2), (3, 3), (8, 2), (3, 5), (11, 3)]:
        cases.append(c(1, ch, m, (4, 5), 3, padding=1, name=f"c{ch}-m{m}"))
    for npos in TILE_POSITIONS + [63, 64, 65]:
        cases.append(c(1, 3, 1, (1, npos), (1, 3), padding=(0, 1), name=f"positions{npos}-row"))
    for hw in [(4, 8), (3, 11), (2, 16), (5, 7)]:
        cases.append(c(2, 9, 1, hw, 3, padding=1, name=f"positions{hw[0]}x{hw[1]}"))
    # Row blocks of 64 (float32) / 32 (float64) columns and the 3x3 s1/s2 row kernels.
    for wd in [31, 33, 63, 65, 95, 127, 128, 129]:
        cases.append(c(1, 2, 2, (3, wd), 3, padding=1, name=f"row{wd}-3x3-s1-m2"))
        cases.append(c(1, 2, 1, (4, 2 * wd + 1), 3, stride=2, padding=1,
                       name=f"row{wd}-3x3-s2"))
        cases.append(c(1, 2, 1, (3, wd), (2, 5), padding=(1, 2), dilation=(1, 2),
                       padding_mode="reflect", name=f"row{wd}-2x5-reflect"))
    return cases


def pointwise_grid():
    c = pointwise_case
    cases = [
        c(1, 1, 1, 1, name="all-ones"),
        c(1, 1, 1, 1, stride=3, name="1x1-stride3"),
        c(2, 3, 5, (7, 11), name="primes"),
        c(2, 3, 5, (7, 11), stride=2, name="primes-stride2"),
        c(2, 3, 5, (7, 11), stride=(3, 2), weight_4d=True, name="stride32-4d"),
        c(1, 4, 4, (5, 5), stride=7, name="stride-gt-input"),
        c(3, 7, 9, (6, 5), bias=False, name="odd-channels-batch3"),
        c(1, 17, 33, (5, 7), weight_4d=True, name="c17-c33"),
    ]
    for co in TILE_CHANNELS + [31, 32, 33]:
        cases.append(c(1, 5, co, (3, 5), name=f"c_out{co}"))
    for ci in TILE_CHANNELS + [31, 32, 33]:
        cases.append(c(1, ci, 6, (3, 5), bias=ci % 2 == 0, name=f"c_in{ci}"))
    for npos in TILE_POSITIONS + [63, 64, 65]:
        cases.append(c(1, 3, 9, (1, npos), name=f"positions{npos}-row"))
        cases.append(c(1, 3, 9, (npos, 2), stride=(1, 2), name=f"positions{npos}-col-s2"))
    for hw in [(4, 8), (3, 11), (2, 16), (5, 7), (8, 8)]:
        cases.append(c(2, 4, 8, hw, weight_4d=True, name=f"positions{hw[0]}x{hw[1]}"))
    for ci in [127, 128, 129, 257, 511, 512, 513, 1025]:
        cases.append(c(1, ci, 9, (3, 3), name=f"k-block-c_in{ci}"))
    for hw in [(1, 127), (1, 128), (1, 129), (16, 16), (15, 17), (1, 257)]:
        cases.append(c(1, 3, 5, hw, name=f"nc-block-{hw[0]}x{hw[1]}"))
    # 256-value planes with 64 or more input channels are copied with a gap after each
    # plane (_igemm._plane_pitch); 32 channels are read in place
    for n, ci in [(2, 64), (1, 65), (2, 32)]:
        cases.append(c(n, ci, 9, (16, 16), name=f"spread-planes-n{n}-c_in{ci}"))
    for co in [255, 256, 257]:
        cases.append(c(1, 3, co, (2, 3), name=f"m-chunk-c_out{co}"))
    return cases


def separable_grid():
    c = separable_case
    cases = [
        c(1, 1, 1, 1, 1, 1, name="all-ones"),
        c(1, 1, 1, 1, 1, 3, padding=1, name="1x1-input-3x3"),
        c(2, 3, 1, 5, (7, 11), (5, 3), padding=(2, 1), name="primes"),
        c(1, 3, 2, 4, (5, 4), (7, 6), padding=1, name="kernel-equals-padded-input"),
        c(1, 2, 1, 3, (3, 3), 3, padding=4, name="all-padding-taps"),
        c(1, 3, 2, 5, (11, 10), 3, stride=2, padding="same", name="same-stride2"),
        c(1, 3, 1, 4, (9, 8), 3, stride=(2, 1), padding="same", padding_mode="reflect",
          name="same-reflect"),
        c(1, 3, 1, 4, (9, 8), 3, padding=((0, 2), (1, 1)), padding_mode="replicate",
          name="asym-replicate"),
        c(1, 3, 3, 4, (9, 8), (3, 2), padding=2, dilation=2, padding_mode="circular",
          name="circular-dilated"),
        c(2, 7, 1, 9, (6, 5), 3, padding=1, dw_bias=False, name="odd-channels"),
        c(1, 4, 2, 17, (5, 7), 3, padding="valid", pw_bias=False, pw_4d=True,
          name="m2-c17-4d"),
        c(1, 3, 1, 4, (9, 9), 2, stride=3, dw_bias=False, pw_bias=False,
          name="stride-gt-kernel-no-bias"),
    ]
    for co in [7, 8, 9, 16, 17, 33]:
        cases.append(c(1, 3, 1, co, (4, 5), 3, padding=1, name=f"c_out{co}"))
    for ch, m in [(8, 1), (9, 1), (16, 1), (17, 1), (4, 2), (5, 3)]:
        cases.append(c(1, ch, m, 6, (4, 5), 3, padding=1, name=f"c{ch}-m{m}"))
    for npos in TILE_POSITIONS:
        cases.append(c(1, 3, 1, 5, (1, npos), (1, 3), padding=(0, 1), name=f"positions{npos}"))
    # A fused kernel tiles the intermediate: rows around 32/64 columns, intermediate
    # channel counts (C*m) and output channels around 8/16/32/128, 3x3 s1/s2 row kernels.
    for wd in [31, 33, 63, 65, 129]:
        cases.append(c(1, 3, 1, 9, (3, wd), 3, padding=1, name=f"row{wd}-3x3-s1"))
        cases.append(c(1, 2, 2, 7, (4, 2 * wd + 1), 3, stride=2, padding="same",
                       name=f"row{wd}-3x3-s2-same"))
    for ch, m, co in [(7, 1, 8), (8, 1, 9), (9, 2, 17), (16, 2, 31), (33, 1, 33),
                      (43, 3, 16), (64, 2, 8), (65, 2, 7)]:
        cases.append(c(2, ch, m, co, (5, 6), 3, padding=1, name=f"c{ch}-m{m}-co{co}"))
    cases += [
        c(1, 5, 1, 6, (16, 16), 3, padding=1, padding_mode="reflect", name="16x16-reflect"),
        c(1, 4, 1, 300, (3, 3), 3, padding=1, name="c_out300"),
        c(3, 6, 1, 5, (11, 12), 5, stride=(2, 3), padding=((2, 1), (0, 3)),
          padding_mode="replicate", name="asym-replicate-s23"),
        c(1, 2, 1, 3, (3, 3), 3, padding=4, dilation=2, name="padding-only-taps-dilated"),
        c(1, 3, 1, 4, (20, 19), 11, padding=5, name="large-kernel"),
    ]
    return cases


# ---------------------------------------------------------------- random generators

class NumpyChooser:
    """The chooser interface over a numpy Generator."""

    def __init__(self, rng):
        self.rng = rng

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def integer(self, lo, hi):
        return int(self.rng.integers(lo, hi + 1))


CHANNELS = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17]


def _choose_padding(ch):
    kind = ch.pick(["int", "pair", "same", "valid", "asym"])
    if kind == "int":
        return ch.integer(0, 3)
    if kind == "pair":
        return (ch.integer(0, 3), ch.integer(0, 3))
    if kind == "asym":
        return ((ch.integer(0, 3), ch.integer(0, 3)), (ch.integer(0, 3), ch.integer(0, 3)))
    return kind


def _spatial(ch, lo=1, hi=9):
    return (ch.integer(lo, hi), ch.integer(lo, hi))


def _pair_or_int(ch, lo, hi):
    if ch.pick([True, False]):
        return ch.integer(lo, hi)
    return (ch.integer(lo, hi), ch.integer(lo, hi))


def random_conv2d(ch):
    groups = ch.pick([1, 1, 2, 3])
    c_in = groups * ch.pick(CHANNELS[:6])
    c_out = groups * ch.pick(CHANNELS[:7])
    k = (ch.integer(1, 5), ch.integer(1, 5))
    stride, dilation = _pair_or_int(ch, 1, 4), _pair_or_int(ch, 1, 3)
    padding, mode = _choose_padding(ch), ch.pick(PADDING_MODES)
    hw = _spatial(ch)
    if not padding_is_valid(padding, hw, k, stride, dilation, mode):
        raise Reject
    return conv2d_case(ch.integer(1, 3), c_in, c_out, hw, k, stride, padding, dilation,
                       groups, bias=ch.pick([True, False]), padding_mode=mode)


def random_conv_transpose2d(ch):
    groups = ch.pick([1, 1, 2, 3])
    c_in = groups * ch.pick(CHANNELS[:6])
    c_out = groups * ch.pick(CHANNELS[:7])
    k = (ch.integer(1, 5), ch.integer(1, 5))
    stride, dilation = pair(_pair_or_int(ch, 1, 4)), pair(_pair_or_int(ch, 1, 3))
    padding = (ch.integer(0, 3), ch.integer(0, 3))
    output_padding = tuple(ch.integer(0, max(stride[a], dilation[a]) - 1) for a in (0, 1))
    hw = _spatial(ch, 1, 7)
    for a in (0, 1):
        out = ((hw[a] - 1) * stride[a] - 2 * padding[a] + dilation[a] * (k[a] - 1)
               + output_padding[a] + 1)
        if out < 1:
            raise Reject
    return conv_transpose2d_case(ch.integer(1, 3), c_in, c_out, hw, k, stride, padding,
                                 output_padding, groups, dilation,
                                 bias=ch.pick([True, False]))


def random_depthwise(ch):
    c, m = ch.pick(CHANNELS), ch.pick([1, 1, 2, 3])
    k = (ch.integer(1, 5), ch.integer(1, 5))
    stride, dilation = _pair_or_int(ch, 1, 4), _pair_or_int(ch, 1, 3)
    padding, mode = _choose_padding(ch), ch.pick(PADDING_MODES)
    hw = _spatial(ch)
    if not padding_is_valid(padding, hw, k, stride, dilation, mode):
        raise Reject
    return depthwise_case(ch.integer(1, 3), c, m, hw, k, stride, padding, dilation,
                          bias=ch.pick([True, False]), padding_mode=mode)


def random_pointwise(ch):
    return pointwise_case(ch.integer(1, 3), ch.pick(CHANNELS + [31, 33]),
                          ch.pick(CHANNELS + [31, 33]), _spatial(ch, 1, 12),
                          _pair_or_int(ch, 1, 3), bias=ch.pick([True, False]),
                          weight_4d=ch.pick([True, False]))


def random_separable(ch):
    c, m = ch.pick(CHANNELS[:8]), ch.pick([1, 1, 2])
    k = (ch.integer(1, 5), ch.integer(1, 5))
    stride, dilation = _pair_or_int(ch, 1, 3), _pair_or_int(ch, 1, 2)
    padding, mode = _choose_padding(ch), ch.pick(PADDING_MODES)
    hw = _spatial(ch)
    if not padding_is_valid(padding, hw, k, stride, dilation, mode):
        raise Reject
    return separable_case(ch.integer(1, 2), c, m, ch.pick(CHANNELS), hw, k, stride, padding,
                          dilation, dw_bias=ch.pick([True, False]),
                          pw_bias=ch.pick([True, False]), padding_mode=mode,
                          pw_4d=ch.pick([True, False]))


RANDOM = {
    "conv2d": random_conv2d,
    "conv_transpose2d": random_conv_transpose2d,
    "depthwise_conv2d": random_depthwise,
    "pointwise_conv2d": random_pointwise,
    "separable_conv2d": random_separable,
}


def random_cases(fn, count, seed):
    """``count`` valid random cases of public function ``fn`` from a fixed seed."""
    ch = NumpyChooser(np.random.default_rng(seed))
    cases = []
    while len(cases) < count:
        try:
            case = RANDOM[fn](ch)
        except Reject:
            continue
        case.name = f"{fn}-{seed}-{len(cases)}"
        cases.append(case)
    return cases


GRIDS = {
    "conv2d": lambda: conv2d_awkward() + conv2d_product_grid(),
    "conv_transpose2d": lambda: conv_transpose2d_awkward() + conv_transpose2d_product_grid(),
    "depthwise_conv2d": lambda: depthwise_awkward() + depthwise_product_grid(),
    "pointwise_conv2d": pointwise_grid,
    "separable_conv2d": separable_grid,
}
