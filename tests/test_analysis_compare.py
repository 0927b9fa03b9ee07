"""Standard vs depthwise-separable: exact theory, network replacement, MobileNet Table 4."""

from fractions import Fraction
import random

import pytest

from analysis import zoo
from analysis.compare import compare_layer, compare_network, eligible, separable_network
from analysis.layers import Conv2d, ConvTranspose2d, DepthwiseConv2d
from analysis.network import analyse


@pytest.mark.parametrize("seed", range(30))
def test_mac_ratio_equals_theory_exactly(seed):
    # Howard et al. 2017, eq. (5): (D_K^2 M D_F^2 + M N D_F^2) / (D_K^2 M N D_F^2)
    # = 1/N + 1/D_K^2, for any stride, padding and dilation
    rng = random.Random(seed)
    k = rng.randint(2, 7)
    conv = Conv2d(out_channels=rng.randint(1, 64), kernel=k, stride=rng.randint(1, 3),
                  padding=rng.choice([0, 1, "same"]), dilation=rng.randint(1, 2), bias=False)
    cmp = compare_layer(conv, (rng.randint(1, 32), 40, 40))
    assert cmp.mac_ratio == cmp.theoretical == Fraction(1, conv.out_channels) + Fraction(1, k * k)


def test_mobilenet_first_separable_layer_numbers():
    cmp = compare_layer(Conv2d(out_channels=64, kernel=3, padding=1, bias=False), (32, 112, 112))
    assert (cmp.standard_params, cmp.separable_params) == (18432, 2336)
    assert cmp.standard_macs == 112 * 112 * 32 * 64 * 9
    assert cmp.separable_macs == 112 * 112 * 32 * (9 + 64)


def test_eligibility():
    assert eligible(Conv2d(out_channels=8, kernel=3))
    assert not eligible(Conv2d(out_channels=8, kernel=1))
    assert not eligible(Conv2d(out_channels=8, kernel=3, groups=2))
    assert not eligible(DepthwiseConv2d(kernel=3))
    assert not eligible(ConvTranspose2d(out_channels=8, kernel=3))


def test_standard_conv_mobilenet_back_to_separable_matches_table_4_direction():
    # Table 4 (Howard et al. 2017): Conv MobileNet 29.3M params / 4866M mult-adds vs
    # MobileNet 4.2M / 569M. Replacing every 3x3 conv of the standard version except the
    # first (C_in = 3 is replaced too here) recovers MobileNet's cost to within the first
    # layer's and batch norm's difference.
    comparisons, totals = compare_network(zoo.mobilenet_v1(separable=False), bn_params="none")
    assert totals["replaced"] == 14
    assert totals["standard_macs"] == 4_867_293_184
    mobilenet = sum(r.macs for r in analyse(zoo.mobilenet_v1()).rows)
    first = comparisons[0]
    assert totals["separable_macs"] - (first.separable_macs - first.standard_macs) == mobilenet


def test_separable_network_keeps_shapes():
    net = zoo.vgg16()
    assert analyse(separable_network(net)).output_shape == analyse(net).output_shape
