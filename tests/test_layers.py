"""Layer objects compute exactly what the functions compute, and keep their plans."""

import numpy as np
import pytest

import cconv

rng = np.random.default_rng(7)


def rand(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_layer_matches_its_function_bit_for_bit(dtype):
    x = rand(2, 6, 11, 13, dtype=dtype)
    cases = [
        (cconv.Conv2d(rand(8, 3, 3, 3, dtype=dtype), rand(8, dtype=dtype), stride=2,
                      padding="same", groups=2),
         lambda: cconv.conv2d(x, layer.weight, layer.bias, stride=2, padding="same", groups=2)),
        (cconv.ConvTranspose2d(rand(6, 4, 4, 4, dtype=dtype), None, stride=2, padding=1,
                               output_padding=1),
         lambda: cconv.conv_transpose2d(x, layer.weight, None, stride=2, padding=1,
                                        output_padding=1)),
        (cconv.DepthwiseConv2d(rand(12, 1, 3, 3, dtype=dtype), rand(12, dtype=dtype),
                               padding=1, padding_mode="reflect"),
         lambda: cconv.depthwise_conv2d(x, layer.weight, layer.bias, padding=1,
                                        padding_mode="reflect")),
        (cconv.PointwiseConv2d(rand(5, 6, dtype=dtype), stride=2),
         lambda: cconv.pointwise_conv2d(x, layer.weight, stride=2)),
        (cconv.SeparableConv2d(rand(6, 1, 3, 3, dtype=dtype), rand(7, 6, dtype=dtype),
                               pointwise_bias=rand(7, dtype=dtype), dilation=2, padding=2),
         lambda: cconv.separable_conv2d(x, layer.depthwise_weight, layer.pointwise_weight,
                                        pointwise_bias=layer.pointwise_bias, dilation=2,
                                        padding=2)),
    ]
    for layer, function in cases:
        first = layer(x)
        again = layer(x, n_threads=1)
        np.testing.assert_array_equal(first, function())
        np.testing.assert_array_equal(again, first)
        assert first.dtype == dtype


def test_layer_keeps_one_plan_per_input_shape():
    layer = cconv.Conv2d(rand(4, 3, 3, 3), padding=1)
    layer(rand(1, 3, 8, 8))
    layer(rand(1, 3, 8, 8))
    assert len(layer._plans) == 1
    layer(rand(2, 3, 9, 8))
    assert len(layer._plans) == 2


def test_layer_owns_its_weights():
    w = rand(4, 3, 3, 3)
    layer = cconv.Conv2d(w)
    x = rand(1, 3, 6, 6)
    before = layer(x)
    w[:] = 0  # the caller's array changes; the layer's copy does not
    np.testing.assert_array_equal(layer(x), before)
    with pytest.raises(ValueError):
        layer.weight[0, 0, 0, 0] = 1.0


def test_layer_out_and_errors():
    layer = cconv.Conv2d(rand(4, 3, 3, 3))
    x = rand(1, 3, 6, 6)
    out = np.empty((1, 4, 4, 4), np.float32)
    assert layer(x, out=out) is out
    with pytest.raises(TypeError, match="weight has dtype float32 but input has dtype float64"):
        layer(x.astype(np.float64))
    with pytest.raises(TypeError, match="bias has dtype float64"):
        cconv.Conv2d(rand(4, 3, 3, 3), rand(4, dtype=np.float64))
    assert "Conv2d(weight=[4, 3, 3, 3]" in repr(layer)
