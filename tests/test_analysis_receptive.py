"""Receptive fields: published values, recurrences, fractional strides, alignment."""

import random
from fractions import Fraction

import pytest

from analysis import receptive, zoo
from analysis.layers import AvgPool2d, Conv2d, ConvTranspose2d, Upsample
from analysis.network import Block, Network, analyse


def rf_of(network, row_name=None, **kw):
    a = analyse(network, **kw)
    row = a.rows[-1] if row_name is None else next(r for r in a.rows if r.name == row_name)
    return row.rf.pair("size")[0], row.rf.pair("stride")[0], row.rf.pair("padding")[0]


# ---------------------------------------------------------------------------- Araujo et al.
# A. Araujo, W. Norris, J. Sim, "Computing Receptive Fields of Convolutional Neural
# Networks", Distill 2019 (doi:10.23915/distill.00021), table of receptive field r,
# effective stride S and effective padding P for TF-slim models at 224x224:
#   alexnet_v2 195/32/64, vgg_16 212/32/90, mobilenet_v1 315/32/126,
#   mobilenet_v1_075 315/32/126, resnet_v1_50 483/32/239.
# They are measured at each network's last feature map (before global pooling / logits).

def test_araujo_alexnet_v2():
    # TF-slim alexnet_v2 = torchvision AlexNet with a VALID (unpadded) first conv
    assert rf_of(zoo.alexnet(conv1_padding=0), "pool5") == (195, 32, 64)


def test_torchvision_alexnet_differs_only_by_its_first_padding():
    # torchvision pads conv1 by 2 at stride 1 of the input, so P is 64 + 2
    assert rf_of(zoo.alexnet(), "pool5") == (195, 32, 66)


def test_araujo_vgg_16():
    assert rf_of(zoo.vgg16(), "pool5") == (212, 32, 90)


@pytest.mark.parametrize("width", [1.0, 0.75])
def test_araujo_mobilenet_v1_and_075(width):
    # TensorFlow 'same' padding puts the odd cell after, so stride-2 layers on even maps
    # add no effective padding: that is how P reaches 126 (symmetric pad-1 would give 157)
    assert rf_of(zoo.mobilenet_v1(width=width), "pw13_relu") == (315, 32, 126)


def test_araujo_resnet_v1_50():
    # TF-slim resnet_v1_50 strides in the last block of stages 1-3 and pools with 'SAME'
    net = zoo.resnet50(stride_at="last", maxpool_padding="same")
    assert rf_of(net, "layer4.2.relu") == (483, 32, 239)


def test_torchvision_resnet50_v15_field_is_smaller():
    # Derived here, not published: torchvision's v1.5 strides in the first block of each
    # stage, so one 3x3 conv per stage less runs at the finer stride: r = 427, P = 213.
    assert rf_of(zoo.resnet50(), "layer4.2.relu") == (427, 32, 213)


# ---------------------------------------------------------------------------- recurrences
def test_single_layer_recurrences():
    rf = receptive.AxisRF()
    rf = receptive.conv(rf, span=3, stride=2, pad_before=1)
    assert (rf.size, rf.stride, rf.padding, rf.center) == (3, 2, 1, 0)
    rf = receptive.conv(rf, span=5, stride=1, pad_before=2)  # 5 = 3x3 kernel, dilation 2
    assert (rf.size, rf.stride, rf.padding) == (11, 2, 5)


def test_dilation_widens_the_field_without_stride():
    net = Network("dilated", (1, 64, 64), (Conv2d("a", 1, 3, dilation=1, padding=1),
                                           Conv2d("b", 1, 3, dilation=2, padding=2),
                                           Conv2d("c", 1, 3, dilation=4, padding=4)))
    rows = analyse(net).rows
    assert [r.rf.pair("size")[0] for r in rows] == [3, 7, 15]
    assert all(r.rf.pair("stride")[0] == 1 for r in rows)
    assert rows[-1].rf.pair("center")[0] == 0


def test_transposed_conv_has_fractional_stride_and_undoes_a_strided_conv():
    net = Network("down_up", (1, 16, 16), (
        Conv2d("down", 1, 3, 2, 1), ConvTranspose2d("up", 1, 3, 2, 1, output_padding=1)))
    rows = analyse(net).rows
    assert rows[1].output_shape == (1, 16, 16)
    assert rows[1].rf.h.stride == 1
    # alone, a stride-2 transposed conv moves half an input cell per output step
    alone = analyse(Network("up", (1, 8, 8), (ConvTranspose2d("up", 1, 4, 2, 1),))).rows[0]
    assert alone.rf.h.stride == Fraction(1, 2)
    assert alone.rf.h.size == Fraction(5, 2)


def test_upsampling_divides_the_stride():
    rows = analyse(Network("u", (1, 8, 8), (Conv2d("c", 1, 3, 2, 1),
                                            Upsample("up", scale=2)))).rows
    assert rows[1].rf.h.stride == 1 and rows[1].rf.h.size == 3


def test_global_pooling_sees_the_whole_map():
    a = analyse(zoo.mobilenet_v1())
    pool = next(r for r in a.rows if r.op == "global_avgpool")
    assert pool.rf.h.size == 315 + 6 * 32 and pool.rf.h.is_global


# ---------------------------------------------------------------------------- branches
def test_aligned_residual_block_is_not_reported():
    block = Block("res", "add", ((Conv2d("a", 4, 3, 2, 1),), (Conv2d("b", 4, 1, 2),)))
    a = analyse(Network("n", (4, 8, 8), (block,)))
    assert a.misaligned == [] and a.rows[-1].aligned is True
    assert a.rows[-1].rf.pair("size") == (3, 3)


def test_misaligned_branches_are_reported():
    # a 2x2 stride-2 conv centres unit 0 at 0.5; a 1x1 stride-2 conv at 0
    block = Block("bad", "add", ((Conv2d("a", 4, 2, 2),), (Conv2d("b", 4, 1, 2),)))
    a = analyse(Network("n", (4, 8, 8), (block,)))
    assert a.misaligned == ["bad"] and a.rows[-1].aligned is False


def test_concat_union_of_fields():
    block = Block("cat", "concat", ((Conv2d("a", 2, 3, padding=1),),
                                    (Conv2d("b", 2, 5, padding=2),)))
    merged = analyse(Network("n", (1, 8, 8), (block,))).rows[-1]
    assert merged.output_shape == (4, 8, 8)
    assert merged.rf.pair("size") == (5, 5) and merged.rf.pair("padding") == (2, 2)


def test_zoo_networks_with_branches_are_aligned():
    for name in ("resnet50", "mobilenet_v2", "unet", "deeplabv3_aspp"):
        assert analyse(zoo.build(name)).misaligned == [], name


# ---------------------------------------------------------------------------- brute force
def _random_stack(rng):
    layers = []
    for i in range(rng.randint(1, 4)):
        kind = rng.choice(["conv", "conv", "avgpool"])
        k, s = rng.randint(1, 4), rng.randint(1, 3)
        if kind == "conv":
            d = rng.randint(1, 3)
            layers.append(Conv2d(f"c{i}", 1, k, s, rng.randint(0, 2), d, bias=False))
        else:
            layers.append(AvgPool2d(f"p{i}", k, s, rng.randint(0, k // 2)))
    return Network("stack", (1, 32, 32), tuple(layers))


def test_fields_match_gradient_support_of_random_stacks():
    """Unit m's field is [-P + m*S, -P + m*S + r - 1]: its extreme taps are real taps, so
    where they fall inside the input they are exactly where the gradient ends."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = random.Random(7)
    checked = 0
    while checked < 60:
        net = _random_stack(rng)
        try:
            a = analyse(net)
        except Exception:
            continue
        x = torch.zeros(1, 1, 32, 32, requires_grad=True)
        y = x
        for layer in net.layers:
            if isinstance(layer, Conv2d):
                y = F.conv2d(y, torch.ones(1, 1, layer.kernel, layer.kernel), None,
                             layer.stride, layer.padding, layer.dilation)
            else:
                y = F.avg_pool2d(y, layer.kernel, layer.stride, layer.padding,
                                 count_include_pad=True)
        m = y.shape[2] // 2
        y[0, 0, m, 0].backward()
        support = x.grad[0, 0].abs().sum(1).nonzero().flatten()
        if support.numel() == 0:  # every tap of a dilated kernel fell in the padding
            continue
        rf = a.rows[-1].rf.h
        first, last = -rf.padding + m * rf.stride, -rf.padding + m * rf.stride + rf.size - 1
        assert max(0, first) <= int(support.min()) and int(support.max()) <= min(31, last)
        if first >= 0:
            assert int(support.min()) == first, net
        if last <= 31:
            assert int(support.max()) == last, net
        checked += 1


def test_fractional_stride_fields_enclose_gradient_support_with_transposed_convs():
    """Through transposed convs the field is the continuous (fractional-stride) envelope:
    the input cells a unit depends on all lie inside [-P + m*S, -P + m*S + r - 1]."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = random.Random(11)
    checked = 0
    while checked < 60:
        layers = []
        for i in range(rng.randint(2, 4)):
            k, s = rng.randint(1, 4), rng.randint(1, 2)
            if rng.random() < 0.5:
                layers.append(ConvTranspose2d(f"t{i}", 1, k, s, rng.randint(0, k - 1),
                                              bias=False))
            else:
                layers.append(Conv2d(f"c{i}", 1, k, s, rng.randint(0, 1), bias=False))
        net = Network("mixed", (1, 12, 12), tuple(layers))
        try:
            a = analyse(net)
        except Exception:
            continue
        x = torch.zeros(1, 1, 12, 12, requires_grad=True)
        y = x
        for layer in layers:
            w = torch.ones(1, 1, layer.kernel, layer.kernel)
            if isinstance(layer, ConvTranspose2d):
                y = F.conv_transpose2d(y, w, None, layer.stride, layer.padding)
            else:
                y = F.conv2d(y, w, None, layer.stride, layer.padding)
        m = y.shape[2] // 2
        y[0, 0, m, 0].backward()
        support = x.grad[0, 0].abs().sum(1).nonzero().flatten()
        if support.numel() == 0:
            continue
        rf = a.rows[-1].rf.h
        first = -rf.padding + m * rf.stride
        last = first + rf.size - 1
        assert first <= int(support.min()) and int(support.max()) <= last, net
        checked += 1


def test_axes_are_independent_for_rectangular_kernels_and_strides():
    net = Network("rect", (1, 32, 32), (Conv2d("a", 1, (1, 5), (1, 2), ((0, 0), (2, 2))),
                                        Conv2d("b", 1, (3, 1), (2, 1), ((1, 1), (0, 0)))))
    row = analyse(net).rows[-1]
    assert row.rf.pair("size") == (3, 5)
    assert row.rf.pair("stride") == (2, 2)
    assert row.rf.pair("padding") == (1, 2)


def test_bilinear_upsampling_adds_one_input_cell_and_global_fields_stay_global():
    up = analyse(Network("u", (1, 8, 8), (Upsample("up", scale=2, mode="bilinear"),))).rows[0]
    assert up.rf.h.size == 2 and up.rf.h.stride == Fraction(1, 2)
    assert up.rf.h.center == 0  # torch clamps unit 0's source to input 0
    from analysis.layers import GlobalAvgPool2d
    pooled = analyse(Network("g", (1, 8, 8), (GlobalAvgPool2d("g"),
                                              Upsample("up", size=(8, 8), mode="bilinear")))).rows
    assert pooled[-1].rf.h.size == 8 and pooled[-1].rf.h.is_global
