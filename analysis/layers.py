"""Layer descriptions: what each layer is, the shape it produces, what it holds and costs.

A layer is a small frozen dataclass of plain numbers. Shapes are per sample: ``(C, H, W)``
for feature maps and ``(F,)`` for flattened vectors; the batch size is applied by
:mod:`analysis.costs`. Every output size comes from :mod:`cconv.shapes` (the one home of
that arithmetic, shared with the kernels); this module only normalises arguments, checks
them, and counts parameters and multiply-accumulates (MACs).

Counting conventions (those of torchvision's model tables, fvcore and the MobileNet paper):

* MACs count the multiply-accumulates of convolutions and fully connected layers only.
  Pooling, activations, batch norm, residual adds and bias adds are not MACs; bias adds
  are reported separately by :meth:`Layer.bias_adds`.
* A transposed convolution's MACs are counted from its *input* size
  (``C_in * H_in * W_in * C_out/groups * kh * kw``): every input cell is multiplied by
  every weight once. Counting from the output size over-counts by about ``stride**2``.
* Batch norm holds ``2 * C`` trainable parameters (torchvision's count); its running
  mean and variance are buffers, counted only with ``bn_params="all"``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from fractions import Fraction
from math import prod
from typing import Any, ClassVar, Dict, Tuple, Union

from cconv.shapes import (conv2d_output_hw, conv_transpose2d_output_hw, kernel_span,
                          pool_output_size, same_padding)

from .errors import SpecError

Shape = Tuple[int, ...]
Pair = Tuple[int, int]
Padding2d = Tuple[Pair, Pair]
PaddingSpec = Union[int, str, Tuple[int, int], Tuple[Pair, Pair]]

BN_PARAM_MODES = ("trainable", "all", "none")


@dataclass(frozen=True)
class Params:
    """Parameter counts of one layer: weights, biases and other (e.g. batch-norm affine)."""

    weights: int = 0
    bias: int = 0
    other: int = 0

    @property
    def total(self) -> int:
        return self.weights + self.bias + self.other


@dataclass(frozen=True)
class RFGeometry:
    """How one layer moves a receptive field, per axis (see :mod:`analysis.receptive`).

    ``kind`` is ``"conv"`` (span, stride, pad_before), ``"transposed"`` (span, stride,
    pad_before of the transposed conv), ``"upsample"`` (stride = scale factor, span =
    interpolation taps), ``"global"`` (whole map), ``"dense"`` (a fully connected layer:
    sees the whole map left before flattening) or ``"identity"``.
    """

    kind: str
    span: Pair = (1, 1)
    stride: Tuple[Union[int, Fraction], Union[int, Fraction]] = (1, 1)
    pad_before: Pair = (0, 0)


IDENTITY_RF = RFGeometry("identity")


# ---------------------------------------------------------------------------- helpers
def as_pair(value: Any, layer: str, name: str) -> Pair:
    """An int or a 2-sequence of ints as an ``(h, w)`` pair; a positive check is the caller's."""
    if isinstance(value, bool):
        raise SpecError(layer, name, f"expected an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return (int(value[0]), int(value[1]))
    raise SpecError(layer, name, f"expected an int or a pair of ints, got {value!r}")


def positive_pair(value: Any, layer: str, name: str) -> Pair:
    pair = as_pair(value, layer, name)
    if min(pair) < 1:
        raise SpecError(layer, name, f"must be >= 1, got {value!r}")
    return pair


def resolve_padding(padding: PaddingSpec, input_hw: Pair, kernel: Pair, stride: Pair,
                    dilation: Pair, layer: str) -> Padding2d:
    """``padding`` as ``((top, bottom), (left, right))`` for this input size.

    Accepts an int, an ``(h, w)`` pair, ``((top, bottom), (left, right))``, ``"valid"``
    or ``"same"`` (split by :func:`cconv.shapes.same_padding`, odd pixel after).
    """
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0), (0, 0))
        if padding == "same":
            return tuple(same_padding(input_hw[a], kernel[a], stride[a], dilation[a])
                         for a in (0, 1))
        raise SpecError(layer, "padding", f"expected 'same', 'valid', an int or pairs, "
                                          f"got {padding!r}")
    if (isinstance(padding, (list, tuple)) and len(padding) == 2
            and all(isinstance(p, (list, tuple)) for p in padding)):
        pads = tuple(as_pair(p, layer, "padding") for p in padding)
    else:
        ph, pw = as_pair(padding, layer, "padding")
        pads = ((ph, ph), (pw, pw))
    if min(min(p) for p in pads) < 0:
        raise SpecError(layer, "padding", f"must be >= 0, got {padding!r}")
    return pads


def _feature_map(shape: Shape, layer: str, op: str) -> Tuple[int, int, int]:
    if len(shape) != 3:
        raise SpecError(layer, "input", f"{op} expects a (C, H, W) feature map, got shape "
                                        f"{list(shape)}; insert a 'flatten' only before "
                                        f"fully connected layers")
    return shape  # type: ignore[return-value]


def _check_positive_output(out_hw: Pair, layer: str, field_name: str, detail: str) -> None:
    if min(out_hw) < 1:
        raise SpecError(layer, field_name, f"output would be {out_hw[0]}x{out_hw[1]}: {detail}")


# ---------------------------------------------------------------------------- base class
@dataclass(frozen=True)
class Layer:
    """Base of every layer. Subclasses set ``op`` and override what differs."""

    name: str = ""
    op: ClassVar[str] = "layer"
    #: fields a spec must give / must not give (computed from the input instead)
    required_fields: ClassVar[Tuple[str, ...]] = ()
    derived_fields: ClassVar[Tuple[str, ...]] = ()

    def output_shape(self, in_shape: Shape) -> Shape:
        return tuple(in_shape)

    def params(self, in_shape: Shape, bn_params: str = "trainable") -> Params:
        return Params()

    def macs(self, in_shape: Shape) -> int:
        return 0

    def bias_adds(self, in_shape: Shape) -> int:
        return 0

    def rf_geometry(self, in_shape: Shape) -> RFGeometry:
        return IDENTITY_RF

    def describe(self) -> Dict[str, Any]:
        """The layer as spec data (``op`` plus every field that differs from its default)."""
        out: Dict[str, Any] = {"op": self.op}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "name" or value != f.default:
                out[f.name] = value
        return out


# ---------------------------------------------------------------------------- convolutions
@dataclass(frozen=True)
class Conv2d(Layer):
    """Standard (optionally grouped, dilated, strided) 2-D convolution."""

    out_channels: int = 1
    kernel: Any = 3
    stride: Any = 1
    padding: Any = 0
    dilation: Any = 1
    groups: int = 1
    bias: bool = True
    op: ClassVar[str] = "conv"
    required_fields: ClassVar[Tuple[str, ...]] = ("out_channels",)

    # -- argument normalisation, shared by the subclasses
    def _geometry(self, in_shape: Shape):
        c, h, w = _feature_map(in_shape, self.name, self.op)
        k = positive_pair(self.kernel, self.name, "kernel")
        s = positive_pair(self.stride, self.name, "stride")
        d = positive_pair(self.dilation, self.name, "dilation")
        p = resolve_padding(self.padding, (h, w), k, s, d, self.name)
        return c, (h, w), k, s, d, p

    def _check_channels(self, c_in: int) -> None:
        if self.groups < 1:
            raise SpecError(self.name, "groups", f"must be >= 1, got {self.groups}")
        if self.out_channels < 1:
            raise SpecError(self.name, "out_channels", f"must be >= 1, got {self.out_channels}")
        if c_in % self.groups:
            raise SpecError(self.name, "groups", f"groups={self.groups} must divide the "
                                                 f"{c_in} input channels")
        if self.out_channels % self.groups:
            raise SpecError(self.name, "groups", f"groups={self.groups} must divide "
                                                 f"out_channels={self.out_channels}")

    def output_shape(self, in_shape: Shape) -> Shape:
        c, hw, k, s, d, p = self._geometry(in_shape)
        self._check_channels(c)
        out = conv2d_output_hw(hw, k, s, p, d)
        _check_positive_output(out, self.name, "kernel",
                               f"the padded input {hw[0] + sum(p[0])}x{hw[1] + sum(p[1])} is "
                               f"smaller than the kernel span "
                               f"{kernel_span(k[0], d[0])}x{kernel_span(k[1], d[1])}")
        return (self.out_channels,) + tuple(out)

    def params(self, in_shape: Shape, bn_params: str = "trainable") -> Params:
        c, _, k, _, _, _ = self._geometry(in_shape)
        weights = self.out_channels * (c // self.groups) * k[0] * k[1]
        return Params(weights, self.out_channels if self.bias else 0)

    def macs(self, in_shape: Shape) -> int:
        c, _, k, _, _, _ = self._geometry(in_shape)
        return prod(self.output_shape(in_shape)) * (c // self.groups) * k[0] * k[1]

    def bias_adds(self, in_shape: Shape) -> int:
        return prod(self.output_shape(in_shape)) if self.bias else 0

    def rf_geometry(self, in_shape: Shape) -> RFGeometry:
        _, _, k, s, d, p = self._geometry(in_shape)
        return RFGeometry("conv", (kernel_span(k[0], d[0]), kernel_span(k[1], d[1])), s,
                          (p[0][0], p[1][0]))


@dataclass(frozen=True)
class DepthwiseConv2d(Conv2d):
    """Depthwise convolution: each input channel convolved on its own, ``multiplier``
    filters per channel (``groups = C_in``, ``out_channels = C_in * multiplier``)."""

    multiplier: int = 1
    bias: bool = True
    op: ClassVar[str] = "depthwise"
    required_fields: ClassVar[Tuple[str, ...]] = ()
    derived_fields: ClassVar[Tuple[str, ...]] = ("out_channels", "groups")

    def _resolved(self, in_shape: Shape) -> Conv2d:
        c = _feature_map(in_shape, self.name, self.op)[0]
        if self.multiplier < 1:
            raise SpecError(self.name, "multiplier", f"must be >= 1, got {self.multiplier}")
        return Conv2d(self.name, c * self.multiplier, self.kernel, self.stride, self.padding,
                      self.dilation, c, self.bias)

    def output_shape(self, in_shape):
        return self._resolved(in_shape).output_shape(in_shape)

    def params(self, in_shape, bn_params="trainable"):
        return self._resolved(in_shape).params(in_shape)

    def macs(self, in_shape):
        return self._resolved(in_shape).macs(in_shape)

    def bias_adds(self, in_shape):
        return self._resolved(in_shape).bias_adds(in_shape)

    def describe(self):
        out = super().describe()
        out.pop("out_channels", None)
        out.pop("groups", None)
        return out


@dataclass(frozen=True)
class PointwiseConv2d(Conv2d):
    """1x1 convolution mixing channels at each position (optionally strided)."""

    kernel: Any = 1
    op: ClassVar[str] = "pointwise"

    def _geometry(self, in_shape):
        if as_pair(self.kernel, self.name, "kernel") != (1, 1):
            raise SpecError(self.name, "kernel", f"a pointwise conv is 1x1, got {self.kernel!r}")
        if self.padding not in (0, "valid") or as_pair(self.dilation, self.name,
                                                         "dilation") != (1, 1):
            raise SpecError(self.name, "padding", "a pointwise conv takes no padding/dilation")
        return super()._geometry(in_shape)


@dataclass(frozen=True)
class SeparableConv2d(Conv2d):
    """Depthwise-separable convolution: depthwise k x k (with ``multiplier``) then 1x1.

    The stride, padding and dilation belong to the depthwise part; the pointwise part
    maps ``C_in * multiplier`` channels to ``out_channels`` at the output resolution.
    ``bias`` applies to both parts (cconv's ``depthwise_bias`` and ``pointwise_bias``).
    """

    multiplier: int = 1
    op: ClassVar[str] = "separable"
    derived_fields: ClassVar[Tuple[str, ...]] = ("groups",)

    def parts(self, in_shape: Shape) -> Tuple[DepthwiseConv2d, PointwiseConv2d, Shape]:
        """The depthwise and pointwise layers, and the shape between them."""
        if self.groups != 1:
            raise SpecError(self.name, "groups", "a separable conv has no groups")
        dw = DepthwiseConv2d(self.name + ".dw", kernel=self.kernel, stride=self.stride,
                             padding=self.padding, dilation=self.dilation,
                             bias=self.bias, multiplier=self.multiplier)
        mid = dw.output_shape(in_shape)
        pw = PointwiseConv2d(self.name + ".pw", out_channels=self.out_channels, bias=self.bias)
        return dw, pw, mid

    def output_shape(self, in_shape):
        dw, pw, mid = self.parts(in_shape)
        return pw.output_shape(mid)

    def params(self, in_shape, bn_params="trainable"):
        dw, pw, mid = self.parts(in_shape)
        a, b = dw.params(in_shape), pw.params(mid)
        return Params(a.weights + b.weights, a.bias + b.bias)

    def macs(self, in_shape):
        dw, pw, mid = self.parts(in_shape)
        return dw.macs(in_shape) + pw.macs(mid)

    def bias_adds(self, in_shape):
        dw, pw, mid = self.parts(in_shape)
        return dw.bias_adds(in_shape) + pw.bias_adds(mid)


@dataclass(frozen=True)
class ConvTranspose2d(Conv2d):
    """Transposed convolution (``output_padding`` is Dumoulin & Visin's ``a``)."""

    output_padding: Any = 0
    op: ClassVar[str] = "conv_transpose"

    def _transpose_geometry(self, in_shape):
        c, hw, k, s, d, p = self._geometry(in_shape)
        if isinstance(self.padding, str):
            raise SpecError(self.name, "padding", "a transposed conv takes explicit padding, "
                                                  f"not {self.padding!r}")
        a = as_pair(self.output_padding, self.name, "output_padding")
        for axis in (0, 1):
            if not 0 <= a[axis] < max(s[axis], d[axis]):
                raise SpecError(self.name, "output_padding",
                                f"output_padding={self.output_padding!r} must be smaller than "
                                f"stride or dilation (stride={self.stride!r}, "
                                f"dilation={self.dilation!r})")
        return c, hw, k, s, d, p, a

    def output_shape(self, in_shape):
        c, hw, k, s, d, p, a = self._transpose_geometry(in_shape)
        self._check_channels(c)
        out = conv_transpose2d_output_hw(hw, k, s, p, d, a)
        _check_positive_output(out, self.name, "padding",
                               f"padding {self.padding!r} removes more than the transposed "
                               f"conv produces")
        return (self.out_channels,) + tuple(out)

    def params(self, in_shape, bn_params="trainable"):
        c, _, k, _, _, _, _ = self._transpose_geometry(in_shape)
        return Params(c * (self.out_channels // self.groups) * k[0] * k[1],
                      self.out_channels if self.bias else 0)

    def macs(self, in_shape):
        # Counted from the input: each input cell meets each of its group's weights once.
        c, hw, k, _, _, _, _ = self._transpose_geometry(in_shape)
        self.output_shape(in_shape)
        return c * hw[0] * hw[1] * (self.out_channels // self.groups) * k[0] * k[1]

    def rf_geometry(self, in_shape):
        _, _, k, s, d, p, _ = self._transpose_geometry(in_shape)
        return RFGeometry("transposed", (kernel_span(k[0], d[0]), kernel_span(k[1], d[1])),
                          s, (p[0][0], p[1][0]))


# ---------------------------------------------------------------------------- pooling
@dataclass(frozen=True)
class Pool2d(Layer):
    """Max or average pooling (``stride`` defaults to ``kernel``, as in torch)."""

    kernel: Any = 2
    stride: Any = None
    padding: Any = 0
    dilation: Any = 1
    ceil_mode: bool = False
    op: ClassVar[str] = "maxpool"

    def _geometry(self, in_shape):
        c, h, w = _feature_map(in_shape, self.name, self.op)
        k = positive_pair(self.kernel, self.name, "kernel")
        s = k if self.stride is None else positive_pair(self.stride, self.name, "stride")
        d = positive_pair(self.dilation, self.name, "dilation")
        p = resolve_padding(self.padding, (h, w), k, s, d, self.name)
        for axis in (0, 1):
            if max(p[axis]) * 2 > kernel_span(k[axis], d[axis]):
                raise SpecError(self.name, "padding", f"pad should be at most half of the "
                                                      f"kernel span, got {self.padding!r}")
        return c, (h, w), k, s, d, p

    def output_shape(self, in_shape):
        c, hw, k, s, d, p = self._geometry(in_shape)
        out = tuple(pool_output_size(hw[a], k[a], s[a], p[a], d[a], self.ceil_mode)
                    for a in (0, 1))
        _check_positive_output(out, self.name, "kernel", f"the window is larger than the "
                                                         f"{hw[0]}x{hw[1]} input")
        return (c,) + out

    def rf_geometry(self, in_shape):
        _, _, k, s, d, p = self._geometry(in_shape)
        return RFGeometry("conv", (kernel_span(k[0], d[0]), kernel_span(k[1], d[1])), s,
                          (p[0][0], p[1][0]))


@dataclass(frozen=True)
class MaxPool2d(Pool2d):
    op: ClassVar[str] = "maxpool"


@dataclass(frozen=True)
class AvgPool2d(Pool2d):
    op: ClassVar[str] = "avgpool"


@dataclass(frozen=True)
class GlobalAvgPool2d(Layer):
    """Average over the whole map: ``(C, H, W) -> (C, 1, 1)``."""

    op: ClassVar[str] = "global_avgpool"

    def output_shape(self, in_shape):
        c, _, _ = _feature_map(in_shape, self.name, self.op)
        return (c, 1, 1)

    def rf_geometry(self, in_shape):
        return RFGeometry("global", tuple(in_shape[1:]))


@dataclass(frozen=True)
class AdaptiveAvgPool2d(Layer):
    """torch's adaptive average pooling to ``output_size``; identity when sizes match,
    global pooling when the target is 1x1 (the only cases the zoo needs: other targets
    have variable windows and are reported with the largest window)."""

    output_size: Any = 1
    op: ClassVar[str] = "adaptive_avgpool"

    def output_shape(self, in_shape):
        c, _, _ = _feature_map(in_shape, self.name, self.op)
        return (c,) + positive_pair(self.output_size, self.name, "output_size")

    def rf_geometry(self, in_shape):
        c, h, w = in_shape
        oh, ow = positive_pair(self.output_size, self.name, "output_size")
        if (oh, ow) == (h, w):
            return IDENTITY_RF
        if (oh, ow) == (1, 1):
            return RFGeometry("global", (h, w))
        # torch's window i covers [floor(i*H/oh), ceil((i+1)*H/oh)): largest window, stride ~H/oh
        span = (-(-h // oh) + (1 if h % oh else 0), -(-w // ow) + (1 if w % ow else 0))
        return RFGeometry("conv", span, (max(h // oh, 1), max(w // ow, 1)), (0, 0))


# ---------------------------------------------------------------------------- the rest
@dataclass(frozen=True)
class Linear(Layer):
    """Fully connected layer; a ``(C, H, W)`` input is taken as ``C*H*W`` features."""

    out_features: int = 1
    bias: bool = True
    op: ClassVar[str] = "linear"
    required_fields: ClassVar[Tuple[str, ...]] = ("out_features",)

    def output_shape(self, in_shape):
        if self.out_features < 1:
            raise SpecError(self.name, "out_features", f"must be >= 1, got {self.out_features}")
        return (self.out_features,)

    def params(self, in_shape, bn_params="trainable"):
        return Params(prod(in_shape) * self.out_features, self.out_features if self.bias else 0)

    def macs(self, in_shape):
        return prod(in_shape) * self.out_features

    def bias_adds(self, in_shape):
        return self.out_features if self.bias else 0

    def rf_geometry(self, in_shape):
        return RFGeometry("dense")


@dataclass(frozen=True)
class BatchNorm2d(Layer):
    """Batch norm: shape-preserving; ``2*C`` parameters (``4*C`` counting running stats)."""

    affine: bool = True
    op: ClassVar[str] = "batchnorm"

    def params(self, in_shape, bn_params="trainable"):
        if bn_params not in BN_PARAM_MODES:
            raise SpecError(self.name, "bn_params", f"expected one of {BN_PARAM_MODES}, "
                                                    f"got {bn_params!r}")
        c = in_shape[0]
        per_channel = {"trainable": 2 if self.affine else 0,
                       "all": (2 if self.affine else 0) + 2, "none": 0}[bn_params]
        return Params(other=per_channel * c)


ACTIVATIONS = ("relu", "relu6", "leaky_relu", "sigmoid", "tanh", "gelu", "silu",
               "hardswish", "softmax", "identity")


@dataclass(frozen=True)
class Activation(Layer):
    """Elementwise activation (or softmax): shape-preserving, no parameters, no MACs."""

    kind: str = "relu"
    op: ClassVar[str] = "act"

    def output_shape(self, in_shape):
        if self.kind not in ACTIVATIONS:
            raise SpecError(self.name, "kind", f"unknown activation {self.kind!r}; "
                                               f"expected one of {', '.join(ACTIVATIONS)}")
        return tuple(in_shape)


@dataclass(frozen=True)
class Dropout(Layer):
    """Dropout: the identity at inference."""

    p: float = 0.5
    op: ClassVar[str] = "dropout"


@dataclass(frozen=True)
class Flatten(Layer):
    """``(C, H, W) -> (C*H*W,)``."""

    op: ClassVar[str] = "flatten"

    def output_shape(self, in_shape):
        return (prod(in_shape),)


@dataclass(frozen=True)
class Upsample(Layer):
    """Nearest or bilinear upsampling by an integer ``scale`` or to a fixed ``size``."""

    scale: Any = 2
    size: Any = None
    mode: str = "nearest"
    op: ClassVar[str] = "upsample"

    def output_shape(self, in_shape):
        c, h, w = _feature_map(in_shape, self.name, self.op)
        if self.mode not in ("nearest", "bilinear"):
            raise SpecError(self.name, "mode", f"expected 'nearest' or 'bilinear', "
                                               f"got {self.mode!r}")
        if self.size is not None:
            return (c,) + positive_pair(self.size, self.name, "size")
        s = positive_pair(self.scale, self.name, "scale")
        return (c, h * s[0], w * s[1])

    def rf_geometry(self, in_shape):
        out = self.output_shape(in_shape)
        taps = 2 if self.mode == "bilinear" else 1
        # One output step is in/out input cells: a fractional stride.
        return RFGeometry("upsample", (taps, taps),
                          (Fraction(in_shape[1], out[1]), Fraction(in_shape[2], out[2])))


LAYER_TYPES: Dict[str, type] = {cls.op: cls for cls in (
    Conv2d, DepthwiseConv2d, PointwiseConv2d, SeparableConv2d, ConvTranspose2d, MaxPool2d,
    AvgPool2d, GlobalAvgPool2d, AdaptiveAvgPool2d, Linear, BatchNorm2d, Activation, Dropout,
    Flatten, Upsample)}
