"""Every validation error: the right exception type, naming the parameter, echoing shapes."""

import re

import numpy as np
import pytest

import cconv

f32 = np.float32


def arr(*shape, dtype=f32):
    return np.ones(shape, dtype=dtype)


X = arr(1, 8, 10, 10)
W = arr(4, 8, 3, 3)


@pytest.mark.parametrize("call, exc, pattern", [
    # wrong ndim
    (lambda: cconv.conv2d(arr(8, 10), W), ValueError,
     r"Expected 3D \(unbatched\) or 4D \(batched\) input to conv2d, but got input of size: \[8, 10\]"),
    (lambda: cconv.conv2d(X, arr(4, 8, 3)), ValueError, r"Expected 4D weight .* got weight of size \[4, 8, 3\]"),
    # channels vs weight and groups
    (lambda: cconv.conv2d(X, arr(4, 3, 3, 3), groups=2), ValueError,
     re.escape("Given groups=2, weight of size [4, 3, 3, 3], expected input[1, 8, 10, 10] to have 6 channels, but got 8 channels instead")),
    (lambda: cconv.conv2d(X, arr(5, 4, 3, 3), groups=2), ValueError,
     r"Given groups=2, expected weight to be divisible by 2 at dimension 0, but got weight of size \[5, 4, 3, 3\]"),
    (lambda: cconv.conv2d(X, arr(4, 8, 3, 3), groups=0), ValueError, r"groups must be positive, got groups=0"),
    (lambda: cconv.conv2d(X, arr(4, 8, 3, 3), groups=1.5), TypeError, r"groups must be an int"),
    # bias
    (lambda: cconv.conv2d(X, W, arr(5)), ValueError,
     r"Given weight of size \[4, 8, 3, 3\], expected bias to be 1-dimensional with 4 elements, but got bias of size \[5\]"),
    (lambda: cconv.conv2d(X, W, arr(4, 1)), ValueError, r"expected bias to be 1-dimensional with 4 elements, but got bias of size \[4, 1\]"),
    # kernel larger than padded input
    (lambda: cconv.conv2d(arr(1, 8, 2, 2), W), ValueError,
     r"Calculated padded input size per channel: \(2 x 2\)\. Kernel size: \(3 x 3\).*can't be greater than actual input size"),
    (lambda: cconv.conv2d(arr(1, 8, 4, 4), W, dilation=2), ValueError, r"Kernel size: \(5 x 5\) \(dilation 2x2 included\)"),
    # stride / dilation / padding values
    (lambda: cconv.conv2d(X, W, stride=0), ValueError, r"stride must be positive, got stride=0"),
    (lambda: cconv.conv2d(X, W, stride=(1, -1)), ValueError, r"stride must be positive"),
    (lambda: cconv.conv2d(X, W, dilation=0), ValueError, r"dilation must be positive, got dilation=0"),
    (lambda: cconv.conv2d(X, W, stride=(1, 2, 3)), ValueError, r"stride must be an int or a pair of ints, got \(1, 2, 3\) with 3 elements"),
    (lambda: cconv.conv2d(X, W, stride=1.0), TypeError, r"stride must be an int or a pair of ints, got 1\.0"),
    (lambda: cconv.conv2d(X, W, padding=-1), ValueError, r"padding must be non-negative, got padding=-1"),
    (lambda: cconv.conv2d(X, W, padding=((1, -1), (0, 0))), ValueError, r"padding must be non-negative"),
    (lambda: cconv.conv2d(X, W, padding="full"), ValueError, r"padding must be an int, a pair, 'valid', 'same'.*'full'"),
    (lambda: cconv.conv2d(X, W, padding=((1, 1), 2)), ValueError, r"padding must be an int, a pair"),
    # padding_mode
    (lambda: cconv.conv2d(X, W, padding=1, padding_mode="mirror"), ValueError,
     r"padding_mode must be one of 'zeros', 'reflect', 'replicate', 'circular', got 'mirror'"),
    (lambda: cconv.conv2d(arr(1, 8, 3, 3), W, padding=3, padding_mode="reflect"), ValueError,
     r"padding_mode='reflect' needs padding smaller than the input.*height 3 and width 3"),
    (lambda: cconv.conv2d(arr(1, 8, 3, 3), W, padding=4, padding_mode="circular"), ValueError,
     r"padding_mode='circular' needs padding no larger than the input"),
    # dtypes
    (lambda: cconv.conv2d(X.astype(np.int32), W), TypeError, r"input must have dtype float32 or float64, got int32"),
    (lambda: cconv.conv2d(X.astype(np.float16), W), TypeError, r"input must have dtype float32 or float64, got float16"),
    (lambda: cconv.conv2d(X.astype(np.complex64), W), TypeError, r"input must have dtype float32 or float64, got complex64"),
    (lambda: cconv.conv2d(X.astype(object), W), TypeError, r"input must have dtype float32 or float64, got object"),
    (lambda: cconv.conv2d(X, W.astype(np.float64)), TypeError, r"weight has dtype float64 but input has dtype float32.*never upcasts"),
    (lambda: cconv.conv2d(X, W, arr(4, dtype=np.float64)), TypeError, r"bias has dtype float64 but input has dtype float32"),
    (lambda: cconv.conv2d(X, W.astype(bool)), TypeError, r"weight must have dtype float32 or float64, got bool"),
    # out
    (lambda: cconv.conv2d(X, W, out=arr(1, 4, 9, 8)), ValueError, r"out has size \[1, 4, 9, 8\] but the result has size \[1, 4, 8, 8\]"),
    (lambda: cconv.conv2d(X, W, out=arr(1, 4, 8, 8, dtype=np.float64)), TypeError, r"out has dtype float64 but the result has dtype float32"),
    (lambda: cconv.conv2d(X, W, out=np.ones((1, 4, 8, 8), f32, order="F")), ValueError, r"out must be C-contiguous"),
    (lambda: cconv.conv2d(X, W, out=[[0.0]]), TypeError, r"out must be a numpy.ndarray, got list"),
    # n_threads
    (lambda: cconv.conv2d(X, W, n_threads=0), ValueError, r"n_threads=0 is not allowed"),
    (lambda: cconv.conv2d(X, W, n_threads=-1000), ValueError, r"n_threads=-1000 counts back past the first core"),
    (lambda: cconv.conv2d(X, W, n_threads=1.5), TypeError, r"n_threads must be an int or None"),
    # transposed
    (lambda: cconv.conv_transpose2d(X, arr(8, 2, 3, 3), stride=2, output_padding=2), ValueError,
     r"output_padding must be smaller than either stride or dilation, but got output_padding=\(2, 2\), stride=\(2, 2\), dilation=\(1, 1\)"),
    (lambda: cconv.conv_transpose2d(X, arr(8, 2, 3, 3), output_padding=-1), ValueError, r"output_padding must be non-negative"),
    (lambda: cconv.conv_transpose2d(X, arr(6, 2, 3, 3)), ValueError,
     r"Given transposed=1, weight of size \[6, 2, 3, 3\], expected input\[1, 8, 10, 10\] to have 6 channels, but got 8"),
    (lambda: cconv.conv_transpose2d(X, arr(8, 2, 3, 3), groups=3), ValueError, r"Given groups=3, expected input channels to be divisible by groups"),
    (lambda: cconv.conv_transpose2d(X, arr(8, 2, 3, 3), padding="same"), ValueError, r"padding='same' is not supported here"),
    (lambda: cconv.conv_transpose2d(arr(1, 8, 1, 1), arr(8, 2, 1, 1), padding=1), ValueError,
     r"Given input size per channel: \(1 x 1\), calculated output size per channel: \(-1 x -1\)\. Output size is too small"),
    # depthwise / pointwise / separable shapes
    (lambda: cconv.depthwise_conv2d(X, arr(12, 1, 3, 3)), ValueError,
     r"Given input of size \[1, 8, 10, 10\] with 8 channels, expected weight of size \[8 \* multiplier, 1, kh, kw\], but got weight of size \[12, 1, 3, 3\]"),
    (lambda: cconv.depthwise_conv2d(X, arr(8, 2, 3, 3)), ValueError, r"expected weight of size \[8 \* multiplier, 1, kh, kw\]"),
    (lambda: cconv.pointwise_conv2d(X, arr(4, 8, 3, 3)), ValueError,
     r"Expected pointwise weight of size \[C_out, C_in\] or \[C_out, C_in, 1, 1\], but got weight of size \[4, 8, 3, 3\]"),
    (lambda: cconv.pointwise_conv2d(X, arr(4, 7)), ValueError, r"expected input\[1, 8, 10, 10\] to have 7 channels, but got 8"),
    (lambda: cconv.separable_conv2d(X, arr(8, 1, 3, 3), arr(4, 9)), ValueError,
     r"Given depthwise_weight of size \[8, 1, 3, 3\] \(8 output channels\), expected pointwise_weight of size \[C_out, 8\]"),
    (lambda: cconv.separable_conv2d(X, arr(8, 1, 3, 3), arr(4, 8), pointwise_bias=arr(5)), ValueError,
     r"expected pointwise_bias to be 1-dimensional with 4 elements, but got pointwise_bias of size \[5\]"),
    (lambda: cconv.separable_conv2d(X, arr(8, 1, 3, 3), arr(4, 8), depthwise_bias=arr(4)), ValueError,
     r"Given depthwise_weight of size \[8, 1, 3, 3\], expected depthwise_bias to be 1-dimensional with 8 elements"),
    (lambda: cconv.separable_conv2d(X, arr(8, 1, 3, 3), arr(4, 8, dtype=np.float64)), TypeError,
     r"pointwise_weight has dtype float64 but input has dtype float32"),
    (lambda: cconv.conv2d(X, arr(0, 8, 3, 3)), ValueError, r"weight must not be empty, got weight of size \[0, 8, 3, 3\]"),
])
def test_bad_arguments_raise_a_message_naming_the_parameter(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_out_overlapping_an_input_is_refused():
    x = np.ones((1, 4, 6, 6), f32)
    w = np.ones((4, 4, 1, 1), f32)
    with pytest.raises(ValueError, match=r"out overlaps input"):
        cconv.conv2d(x, w, out=x)
    with pytest.raises(ValueError, match=r"out overlaps weight"):
        big = np.ones(200, f32)
        cconv.conv2d(x, big[:16].reshape(4, 4, 1, 1), out=big[8:8 + 144].reshape(1, 4, 6, 6))


def test_read_only_out_is_refused():
    out = np.empty((1, 4, 8, 8), f32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match=r"out must be writeable"):
        cconv.conv2d(X, W, out=out)


def test_unbatched_out_must_be_unbatched():
    with pytest.raises(ValueError, match=r"out has size \[1, 4, 8, 8\] but the result has size \[4, 8, 8\]"):
        cconv.conv2d(X[0], W, out=np.empty((1, 4, 8, 8), f32))


def test_errors_never_touch_out():
    out = np.full((1, 4, 8, 8), 7.0, f32)
    with pytest.raises(TypeError):
        cconv.conv2d(X, W.astype(np.float64), out=out)
    assert (out == 7.0).all()


def test_big_endian_input_is_accepted_and_converted():
    x = X.astype(">f4")
    np.testing.assert_array_equal(cconv.conv2d(x, W), cconv.conv2d(X, W))


def test_repeated_calls_skip_static_validation_but_not_the_per_call_checks():
    # The second identical call takes the cached path of _params.normalize; everything
    # that can differ between such calls must still be checked there.
    x, w = arr(1, 8, 10, 10), arr(4, 8, 3, 3)
    first = cconv.conv2d(x, w, padding=1)
    np.testing.assert_array_equal(cconv.conv2d(x, w, padding=1), first)
    with pytest.raises(ValueError, match=r"out has size \[1, 4, 9, 9\]"):
        cconv.conv2d(x, w, padding=1, out=arr(1, 4, 9, 9))
    y = np.ones((1, 4, 6, 6), f32)
    cconv.conv2d(y, arr(4, 4, 1, 1))  # validated once
    with pytest.raises(ValueError, match=r"out overlaps input"):
        cconv.conv2d(y, arr(4, 4, 1, 1), out=y)
    with pytest.raises(ValueError, match=r"n_threads=0"):
        cconv.conv2d(x, w, padding=1, n_threads=0)
    with pytest.raises(TypeError, match=r"weight has dtype float64"):
        cconv.conv2d(x, w.astype(np.float64), padding=1)
    # Same shapes, another bias shape: validated in full, not served from the cache.
    cconv.conv2d(x, w, arr(4), padding=1)
    with pytest.raises(ValueError, match=r"expected bias to be 1-dimensional with 4"):
        cconv.conv2d(x, w, arr(5), padding=1)
    out = np.empty((4, 10, 10), f32)
    assert cconv.conv2d(x[0], w, padding=1, out=out) is out
    assert cconv.conv2d(x[0], w, padding=1, out=out) is out
