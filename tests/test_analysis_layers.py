"""Layer shapes, parameters and MACs: convolution arithmetic, torch agreement, errors."""

import random

import pytest

from analysis.errors import SpecError
from analysis.layers import (Activation, AvgPool2d, BatchNorm2d, Conv2d, ConvTranspose2d,
                             DepthwiseConv2d, Flatten, GlobalAvgPool2d, Linear, MaxPool2d,
                             PointwiseConv2d, SeparableConv2d, Upsample)
from analysis.solve import output_padding_for
from analysis_random_layers import random_layers


def hw(layer, size, channels=1):
    return layer.output_shape((channels, size, size))[1]


# ---------------------------------------------------------------------------- Dumoulin & Visin
# V. Dumoulin and F. Visin, "A guide to convolution arithmetic for deep learning",
# arXiv:1603.07285 (2016/2018). Relationship numbers and figure examples as in the guide;
# i = input size, k = kernel, s = stride, p = padding, d = dilation, a = output_padding.

@pytest.mark.parametrize("i,k", [(4, 3), (7, 1), (5, 5)])
def test_dv_relationship_1_no_padding_unit_stride(i, k):
    # o = (i - k) + 1; Figure 2.1: i=4, k=3 -> o=2
    assert hw(Conv2d(kernel=k), i) == i - k + 1


def test_dv_figure_2_1():
    assert hw(Conv2d(kernel=3), 4) == 2


@pytest.mark.parametrize("i,k,p", [(5, 4, 2), (6, 3, 1), (3, 3, 4)])
def test_dv_relationship_2_zero_padding_unit_stride(i, k, p):
    # o = (i - k) + 2p + 1; Figure 2.2: i=5, k=4, p=2 -> o=6
    assert hw(Conv2d(kernel=k, padding=p), i) == i - k + 2 * p + 1


def test_dv_figure_2_2():
    assert hw(Conv2d(kernel=4, padding=2), 5) == 6


@pytest.mark.parametrize("i,k", [(5, 3), (8, 5), (9, 7)])
def test_dv_relationship_3_half_padding(i, k):
    # k odd, p = floor(k/2), s = 1: o = i; Figure 2.3: i=5, k=3, p=1 -> 5
    assert hw(Conv2d(kernel=k, padding=k // 2), i) == i
    assert hw(Conv2d(kernel=k, padding="same"), i) == i


@pytest.mark.parametrize("i,k", [(5, 3), (6, 4)])
def test_dv_relationship_4_full_padding(i, k):
    # p = k - 1, s = 1: o = i + (k - 1); Figure 2.4: i=5, k=3, p=2 -> 7
    assert hw(Conv2d(kernel=k, padding=k - 1), i) == i + k - 1


def test_dv_figure_2_4():
    assert hw(Conv2d(kernel=3, padding=2), 5) == 7


@pytest.mark.parametrize("i,k,s", [(5, 3, 2), (10, 3, 3), (7, 2, 4)])
def test_dv_relationship_5_no_padding_strided(i, k, s):
    # o = floor((i - k) / s) + 1; Figure 2.5: i=5, k=3, s=2 -> 2
    assert hw(Conv2d(kernel=k, stride=s), i) == (i - k) // s + 1


@pytest.mark.parametrize("i,k,s,p,o", [(5, 3, 2, 1, 3), (6, 3, 2, 1, 3)])
def test_dv_relationship_6_padding_strided_figures_2_6_and_2_7(i, k, s, p, o):
    # o = floor((i + 2p - k) / s) + 1; Figure 2.6: i=5 -> 3; Figure 2.7: i=6 -> 3
    assert hw(Conv2d(kernel=k, stride=s, padding=p), i) == (i + 2 * p - k) // s + 1 == o


@pytest.mark.parametrize("i,k,s", [(5, 3, 1), (224, 2, 2), (55, 3, 2), (7, 7, 1)])
def test_dv_relationship_7_pooling(i, k, s):
    # o = floor((i - k) / s) + 1 for max and average pooling
    assert hw(MaxPool2d(kernel=k, stride=s), i) == (i - k) // s + 1
    assert hw(AvgPool2d(kernel=k, stride=s), i) == (i - k) // s + 1


# Transposed convolutions: the guide writes them as direct convs with padding p' = k-1-p;
# torch's (and our) ConvTranspose2d takes the *forward* conv's p, so each relationship is
# checked as "transposing conv(i) gives back the guide's o'".
@pytest.mark.parametrize("i,k", [(4, 3), (6, 2)])
def test_dv_relationship_8_transpose_of_no_padding_unit_stride(i, k):
    # o' = i' + (k - 1); Figure 4.1: i=4, k=3: conv 4 -> 2, transposed 2 -> 4
    o = hw(Conv2d(kernel=k), i)
    assert hw(ConvTranspose2d(kernel=k), o) == o + (k - 1) == i


@pytest.mark.parametrize("i,k,p", [(5, 4, 2), (7, 3, 1)])
def test_dv_relationship_9_transpose_of_zero_padding_unit_stride(i, k, p):
    # o' = i' + (k - 1) - 2p; Figure 4.2: i=5, k=4, p=2: conv 5 -> 6, transposed 6 -> 5
    o = hw(Conv2d(kernel=k, padding=p), i)
    assert hw(ConvTranspose2d(kernel=k, padding=p), o) == o + (k - 1) - 2 * p == i


def test_dv_relationship_10_transpose_of_half_padding():
    # o' = i'; Figure 4.3: i=5, k=3, p=1
    assert hw(ConvTranspose2d(kernel=3, padding=1), 5) == 5


def test_dv_relationship_11_transpose_of_full_padding():
    # o' = i' - (k - 1); Figure 4.4: i=5, k=3, p=2: conv 5 -> 7, transposed 7 -> 5
    assert hw(ConvTranspose2d(kernel=3, padding=2), 7) == 7 - 2 == 5


def test_dv_relationship_12_transpose_of_strided_no_padding():
    # (i - k) multiple of s: o' = s(i' - 1) + k; Figure 4.5: i=5, k=3, s=2: 5 -> 2 -> 5
    assert hw(Conv2d(kernel=3, stride=2), 5) == 2
    assert hw(ConvTranspose2d(kernel=3, stride=2), 2) == 2 * (2 - 1) + 3 == 5


def test_dv_relationship_13_transpose_of_strided_padded():
    # (i + 2p - k) multiple of s: o' = s(i' - 1) + k - 2p; Figure 4.6: i=5, k=3, s=2, p=1
    assert hw(Conv2d(kernel=3, stride=2, padding=1), 5) == 3
    assert hw(ConvTranspose2d(kernel=3, stride=2, padding=1), 3) == 2 * 2 + 3 - 2 == 5


def test_dv_relationship_14_output_padding_a_figure_4_7():
    # o' = s(i' - 1) + a + k - 2p with a = (i + 2p - k) mod s; Figure 4.7: i=6, k=3, s=2,
    # p=1: conv 6 -> 3, a = 1, transposed 3 -> 6 (without a it would give 5)
    assert hw(Conv2d(kernel=3, stride=2, padding=1), 6) == 3
    a = output_padding_for(6, kernel=3, stride=2, padding=1)
    assert a == (6 + 2 - 3) % 2 == 1
    assert hw(ConvTranspose2d(kernel=3, stride=2, padding=1, output_padding=a), 3) == 6
    assert hw(ConvTranspose2d(kernel=3, stride=2, padding=1), 3) == 5


@pytest.mark.parametrize("i,k,d,s,p", [(7, 3, 2, 1, 0), (32, 3, 4, 1, 4), (20, 5, 3, 2, 1)])
def test_dv_relationship_15_dilation(i, k, d, s, p):
    # o = floor((i + 2p - k - (k - 1)(d - 1)) / s) + 1; Figure 5.1: i=7, k=3, d=2 -> 3
    expected = (i + 2 * p - k - (k - 1) * (d - 1)) // s + 1
    assert hw(Conv2d(kernel=k, dilation=d, stride=s, padding=p), i) == expected


def test_dv_figure_5_1():
    assert hw(Conv2d(kernel=3, dilation=2), 7) == 3


@pytest.mark.parametrize("seed", range(20))
def test_transposed_conv_restores_every_strided_conv_input(seed):
    rng = random.Random(seed)
    k, s, d = rng.randint(1, 5), rng.randint(1, 4), rng.randint(1, 3)
    i, p = rng.randint(d * (k - 1) + 1, 40), rng.randint(0, k - 1)
    o = hw(Conv2d(kernel=k, stride=s, padding=p, dilation=d), i)
    a = output_padding_for(i, k, s, p, d)
    assert hw(ConvTranspose2d(kernel=k, stride=s, padding=p, dilation=d, output_padding=a), o) == i


# ---------------------------------------------------------------------------- variants
def test_depthwise_with_multiplier_params_and_macs():
    layer = DepthwiseConv2d(kernel=3, padding=1, multiplier=2, bias=True)
    assert layer.output_shape((16, 10, 10)) == (32, 10, 10)
    assert layer.params((16, 10, 10)).weights == 32 * 9
    assert layer.params((16, 10, 10)).bias == 32
    assert layer.macs((16, 10, 10)) == 32 * 100 * 9


def test_grouped_conv_params():
    layer = Conv2d(out_channels=8, kernel=3, groups=4, bias=False)
    assert layer.params((12, 5, 5)).total == 8 * 3 * 9
    assert layer.macs((12, 5, 5)) == 8 * 9 * 3 * 9


def test_pointwise_and_separable():
    pw = PointwiseConv2d(out_channels=7, stride=2)
    assert pw.output_shape((3, 9, 9)) == (7, 5, 5)
    sep = SeparableConv2d(out_channels=64, kernel=3, stride=2, padding=1, bias=False)
    assert sep.output_shape((32, 112, 112)) == (64, 56, 56)
    assert sep.params((32, 112, 112)).total == 32 * 9 + 32 * 64
    assert sep.macs((32, 112, 112)) == 56 * 56 * 32 * (9 + 64)


def test_transposed_macs_count_from_input_not_output():
    # 64 -> 32 channels, 4x4 kernel, stride 2: 16x16 -> 32x32. From the input:
    # 64*16*16*32*16 = 8,388,608. From the output it would be 4x (= stride^2) more.
    layer = ConvTranspose2d(out_channels=32, kernel=4, stride=2, padding=1)
    assert layer.output_shape((64, 16, 16)) == (32, 32, 32)
    assert layer.macs((64, 16, 16)) == 8_388_608
    assert 32 * 32 * 32 * 64 * 16 == 4 * layer.macs((64, 16, 16))


def test_asymmetric_and_same_padding():
    conv = Conv2d(out_channels=1, kernel=3, stride=2, padding=((0, 1), (1, 0)))
    assert conv.output_shape((1, 8, 8)) == (1, 4, 4)
    # 'same' at stride 2: ceil(i / s), odd pixel after (TensorFlow's rule)
    assert Conv2d(kernel=3, stride=2, padding="same").output_shape((1, 224, 224))[1:] == (112, 112)
    assert Conv2d(kernel=3, stride=2, padding="same").rf_geometry((1, 224, 224)).pad_before == (0, 0)
    assert Conv2d(kernel=(1, 5), padding="valid").output_shape((1, 9, 9))[1:] == (9, 5)


def test_pool_ceil_mode_and_last_window_rule():
    # torch: ceil_mode keeps a partial last window, but not one starting in the padding
    assert MaxPool2d(kernel=3, stride=2, ceil_mode=True).output_shape((1, 6, 6))[1] == 3
    assert MaxPool2d(kernel=3, stride=2).output_shape((1, 6, 6))[1] == 2
    assert MaxPool2d(kernel=2, stride=2, padding=1, ceil_mode=True).output_shape((1, 5, 5))[1] == 3


def test_shape_preserving_layers_and_batchnorm_conventions():
    shape = (16, 7, 7)
    for layer in (Activation(kind="relu6"), BatchNorm2d()):
        assert layer.output_shape(shape) == shape
    assert BatchNorm2d().params(shape).total == 32
    assert BatchNorm2d().params(shape, "all").total == 64
    assert BatchNorm2d().params(shape, "none").total == 0
    assert GlobalAvgPool2d().output_shape(shape) == (16, 1, 1)
    assert Flatten().output_shape(shape) == (784,)
    assert Linear(out_features=10).params((784,)).total == 7850
    assert Upsample(scale=2).output_shape(shape) == (16, 14, 14)
    assert Upsample(size=(3, 5), mode="bilinear").output_shape(shape) == (16, 3, 5)


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("layer,shape,field,match", [
    (Conv2d("c1", 8, kernel=5), (3, 4, 4), "kernel", "smaller than the kernel span 5x5"),
    (Conv2d("c2", 8, kernel=3, groups=2), (3, 8, 8), "groups", "groups=2 must divide the 3 input"),
    (Conv2d("c3", 0, kernel=3), (3, 8, 8), "out_channels", "must be >= 1"),
    (Conv2d("c4", 8, kernel=3, stride=0), (3, 8, 8), "stride", "must be >= 1"),
    (Conv2d("c5", 8, kernel=3, padding="full"), (3, 8, 8), "padding", "'same', 'valid'"),
    (Conv2d("c6", 8, kernel=3, padding=-1), (3, 8, 8), "padding", "must be >= 0"),
    (Conv2d("c7", 8, kernel=3), (300,), "input", r"expects a \(C, H, W\) feature map"),
    (ConvTranspose2d("t1", 8, kernel=3, stride=2, output_padding=2), (3, 8, 8),
     "output_padding", "must be smaller than stride or dilation"),
    (ConvTranspose2d("t2", 8, kernel=3, padding="same"), (3, 8, 8), "padding", "explicit"),
    (MaxPool2d("p1", kernel=2, padding=2), (3, 8, 8), "padding", "at most half"),
    (MaxPool2d("p2", kernel=9), (3, 8, 8), "kernel", "larger than the 8x8 input"),
    (Activation("a1", kind="swish2"), (3, 8, 8), "kind", "unknown activation"),
    (PointwiseConv2d("pw", 8, kernel=3), (3, 8, 8), "kernel", "pointwise conv is 1x1"),
    (Conv2d("c8", 8, kernel=True), (3, 8, 8), "kernel", "expected an int or a pair"),
])
def test_impossible_layers_name_layer_and_field(layer, shape, field, match):
    with pytest.raises(SpecError, match=match) as info:
        layer.output_shape(shape)
    assert info.value.layer == layer.name
    assert info.value.field == field
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------- torch agreement
@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_planned_shapes_and_params_equal_torch_for_400_random_layers():
    torch = pytest.importorskip("torch")
    from analysis_torch_reference import META, layer_module, param_count
    for layer, shape in random_layers(400):
        module = layer_module(layer, shape)
        with torch.no_grad():
            out = tuple(module(torch.empty((2,) + shape, device=META)).shape)
        assert out == (2,) + layer.output_shape(shape), (layer, shape)
        assert param_count(module) == layer.params(shape).total, (layer, shape)


def test_planner_rejects_exactly_what_torch_rejects_for_too_small_inputs():
    torch = pytest.importorskip("torch")
    layer = Conv2d(out_channels=2, kernel=3, dilation=3)
    with pytest.raises(SpecError):
        layer.output_shape((1, 6, 6))
    with pytest.raises(RuntimeError):
        torch.nn.functional.conv2d(torch.zeros(1, 1, 6, 6), torch.zeros(2, 1, 3, 3), dilation=3)
