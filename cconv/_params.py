"""Normalise and validate a convolution call once, into a small params object.

Every public function funnels through :func:`normalize`: it turns user arguments
(array-likes, ints or pairs, padding strings, thread counts) into C-contiguous float
arrays of one dtype and a frozen :class:`ConvParams`, or raises a ``ValueError`` /
``TypeError`` that names the parameter, echoes the shapes and states the rule (the
grammar of PyTorch's messages). Kernels then trust what they get.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple, Optional, Tuple

import numpy as np

from cconv import _threads, shapes

Pair = Tuple[int, int]
Padding2d = Tuple[Pair, Pair]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
OPS = ("conv2d", "conv_transpose2d", "depthwise_conv2d", "pointwise_conv2d",
       "separable_conv2d")
SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_F32, _F64 = SUPPORTED_DTYPES


class ConvParams(NamedTuple):
    """Everything a kernel needs besides the arrays. Shapes are always 4-D (batched).

    A NamedTuple rather than a frozen dataclass: it is built on every call, and tuple
    construction is several times cheaper (the fixed cost per call matters for small
    layers).
    """

    op: str
    dtype: np.dtype
    batched: bool
    input_shape: Tuple[int, int, int, int]    # (N, C_in, H, W)
    weight_shape: Tuple[int, ...]             # as given (2-D pointwise weights too)
    output_shape: Tuple[int, int, int, int]   # (N, C_out, H_out, W_out)
    kernel: Pair
    stride: Pair
    padding: Padding2d                        # ((top, bottom), (left, right))
    dilation: Pair
    groups: int
    output_padding: Pair
    padding_mode: str
    n_threads: int
    has_bias: bool
    # Separable only: the depthwise stage's output channels (C_in * multiplier).
    mid_channels: int = 0

    @property
    def C_in(self) -> int:
        return self.input_shape[1]

    @property
    def C_out(self) -> int:
        return self.output_shape[1]

    @property
    def zero_padding(self) -> bool:
        return self.padding == ((0, 0), (0, 0))


# ----------------------------------------------------------------------------------
# Small normalisers. Each names the parameter it checks.

def _fmt_shape(shape) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


# Sizes, strides and paddings are C Py_ssize_t in the kernels, and any geometry needing
# more than 2**31 cells along one axis is a mistake, not a layer: refuse it up front.
MAX_ARGUMENT = 2**31 - 1


def _as_int(value, name: str) -> int:
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
        value = int(value)
    if not -MAX_ARGUMENT <= value <= MAX_ARGUMENT:
        raise ValueError(f"{name}={value} is out of range: each value must lie within "
                         f"+-{MAX_ARGUMENT}")
    return value


def as_pair(value, name: str) -> Pair:
    """An int or a length-2 sequence of ints, as a pair."""
    if type(value) is int and -MAX_ARGUMENT <= value <= MAX_ARGUMENT:
        return (value, value)
    if isinstance(value, (tuple, list, np.ndarray)):
        items = list(value)
        if len(items) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r} "
                             f"with {len(items)} elements")
        return (_as_int(items[0], name), _as_int(items[1], name))
    v = _as_int(value, name)
    return (v, v)


def _positive_pair(value, name: str) -> Pair:
    pair = as_pair(value, name)
    if min(pair) < 1:
        raise ValueError(f"{name} must be positive, got {name}={value!r}")
    return pair


def normalize_padding(padding, kernel: Pair, stride: Pair, dilation: Pair, input_hw: Pair,
                      allow_strings: bool = True) -> Padding2d:
    """((top, bottom), (left, right)) from an int, a pair, 'valid', 'same' or nested pairs."""
    if type(padding) is int and 0 <= padding <= MAX_ARGUMENT:
        return ((padding, padding), (padding, padding))
    if isinstance(padding, str):
        if not allow_strings:
            raise ValueError(f"padding={padding!r} is not supported here: give an int or a "
                             f"pair of ints")
        if padding == "valid":
            return ((0, 0), (0, 0))
        if padding == "same":
            return (shapes.same_padding(input_hw[0], kernel[0], stride[0], dilation[0]),
                    shapes.same_padding(input_hw[1], kernel[1], stride[1], dilation[1]))
        raise ValueError(f"padding must be an int, a pair, 'valid', 'same' or "
                         f"((top, bottom), (left, right)); got the string {padding!r}")
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
            isinstance(p, (tuple, list)) for p in padding):
        result = (as_pair(padding[0], "padding"), as_pair(padding[1], "padding"))
    elif isinstance(padding, (tuple, list)) and len(padding) == 2 and any(
            isinstance(p, (tuple, list)) for p in padding):
        raise ValueError(f"padding must be an int, a pair, 'valid', 'same' or "
                         f"((top, bottom), (left, right)); got {padding!r}")
    else:
        ph, pw = as_pair(padding, "padding")
        result = ((ph, ph), (pw, pw))
    if min(result[0] + result[1]) < 0:
        raise ValueError(f"padding must be non-negative, got padding={padding!r}")
    return result


def _float_array(value, name: str, allow_none: bool = False) -> Optional[np.ndarray]:
    """An ndarray of float32/float64 in native byte order; TypeError for any other dtype."""
    if value is None:
        if allow_none:
            return None
        raise TypeError(f"{name} must be an array, got None")
    if type(value) is np.ndarray and (value.dtype is _F32 or value.dtype is _F64):
        return value
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} could not be converted to an array: {exc}") from None
    if arr.dtype.kind == "f" and arr.dtype.itemsize in (4, 8) and not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {arr.dtype} "
                        f"({name} of size {_fmt_shape(arr.shape)}); convert it explicitly, "
                        f"e.g. {name}.astype(np.float32)")
    return arr


def _same_dtype(ref: np.ndarray, arr: Optional[np.ndarray], name: str) -> None:
    if arr is not None and arr.dtype != ref.dtype:
        raise TypeError(f"{name} has dtype {arr.dtype} but input has dtype {ref.dtype}: "
                        f"cconv never upcasts silently; cast one of them explicitly")


def _check_bias(bias: Optional[np.ndarray], n_out: int, weight_shape, name: str = "bias",
                weight_name: str = "weight") -> None:
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != n_out):
        raise ValueError(f"Given {weight_name} of size {_fmt_shape(weight_shape)}, expected "
                         f"{name} to be 1-dimensional with {n_out} elements, but got {name} "
                         f"of size {_fmt_shape(bias.shape)} instead")


def _contiguous(arr):
    """C-contiguous arr (copied only when it is not); None stays None."""
    if arr is None or arr.flags.c_contiguous:
        return arr
    return np.ascontiguousarray(arr)


def _memory_owner(arr):
    """The object at the end of an array's .base chain (the buffer's owner)."""
    while isinstance(arr, np.ndarray) and arr.base is not None:
        arr = arr.base
    return arr


def _check_out(out, shape, dtype, inputs) -> Optional[np.ndarray]:
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"out has dtype {out.dtype} but the result has dtype {dtype}")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"out has size {_fmt_shape(out.shape)} but the result has size "
                         f"{_fmt_shape(shape)}")
    if not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous (out of size {_fmt_shape(out.shape)} "
                         f"has strides {out.strides})")
    if not out.flags.writeable:
        raise ValueError("out must be writeable, got a read-only array")
    out_owner = _memory_owner(out)
    foreign = not isinstance(out_owner, np.ndarray)
    for name, arr in inputs:
        if arr is None:
            continue
        # Arrays over different numpy-owned buffers cannot overlap; only views of one
        # buffer need the (slower) extent check.
        owner = _memory_owner(arr)
        if ((owner is out_owner or foreign or not isinstance(owner, np.ndarray))
                and np.may_share_memory(out, arr)):
            raise ValueError(f"out overlaps {name}: the result cannot be written over an "
                             f"input; pass a separate array")
    return out


def _input_4d(x: np.ndarray, op: str) -> Tuple[np.ndarray, bool]:
    if x.ndim == 4:
        return x, True
    if x.ndim == 3:
        return x[np.newaxis], False
    raise ValueError(f"Expected 3D (unbatched) or 4D (batched) input to {op}, but got input "
                     f"of size: {_fmt_shape(x.shape)}")


def _check_weight_ndim(w: np.ndarray, name: str, op: str, expected: str) -> None:
    if w.ndim != 4:
        raise ValueError(f"Expected 4D {name} {expected} for {op}, but got {name} of size "
                         f"{_fmt_shape(w.shape)}")


def _check_padding_mode(padding_mode, padding: Padding2d, input_hw: Pair) -> str:
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {', '.join(map(repr, PADDING_MODES))}, "
                         f"got {padding_mode!r}")
    (pt, pb), (pl, pr) = padding
    H, W = input_hw
    if padding_mode == "reflect":
        if max(pt, pb) >= H or max(pl, pr) >= W:
            raise ValueError(
                f"padding_mode='reflect' needs padding smaller than the input on each axis: "
                f"got padding ((top, bottom), (left, right)) = {padding} for input of "
                f"height {H} and width {W}")
    elif padding_mode == "circular":
        if max(pt, pb) > H or max(pl, pr) > W:
            raise ValueError(
                f"padding_mode='circular' needs padding no larger than the input on each "
                f"axis: got padding ((top, bottom), (left, right)) = {padding} for input of "
                f"height {H} and width {W}")
    return padding_mode


def _conv_output_hw(x4: np.ndarray, kernel: Pair, stride: Pair, padding: Padding2d,
                    dilation: Pair) -> Pair:
    H, W = x4.shape[2:]
    padded = (H + padding[0][0] + padding[0][1], W + padding[1][0] + padding[1][1])
    span = (shapes.kernel_span(kernel[0], dilation[0]), shapes.kernel_span(kernel[1], dilation[1]))
    if padded[0] < span[0] or padded[1] < span[1]:
        raise ValueError(
            f"Calculated padded input size per channel: ({padded[0]} x {padded[1]}). Kernel "
            f"size: ({span[0]} x {span[1]}) (dilation {dilation[0]}x{dilation[1]} included). "
            f"Kernel size can't be greater than actual input size")
    return shapes.conv2d_output_hw((H, W), kernel, stride, padding, dilation)


# ----------------------------------------------------------------------------------
# The funnel entry.

# Validated calls by everything that decides their validity and their params (shapes,
# dtypes, arguments); a repeated call only re-checks what can differ (n_threads, out).
_VALIDATED: dict = {}
_VALIDATED_LIMIT = 512


def _plain(arr) -> bool:
    return arr is None or (type(arr) is np.ndarray and (arr.dtype is _F32 or arr.dtype is _F64))


def normalize(op: str, input, weight, bias=None, *, stride=1, padding=0, dilation=1,
              groups=1, output_padding=0, padding_mode="zeros", out=None, n_threads=None,
              pointwise_weight=None, pointwise_bias=None):
    """Validate one call. Returns (params, arrays) with arrays a dict of C-contiguous
    4-D ndarrays: x, w (, b), and for separable pw (, pw_b); plus out (4-D view or None).

    Plain float ndarrays with hashable arguments already validated once skip straight to
    the per-call checks: the fixed cost of a small layer is mostly this function.
    """
    key = None
    if (type(input) is np.ndarray and type(weight) is np.ndarray and _plain(input)
            and _plain(weight) and _plain(bias) and _plain(pointwise_weight)
            and _plain(pointwise_bias)):
        key = (op, input.shape, input.dtype, weight.shape, weight.dtype,
               None if bias is None else (bias.shape, bias.dtype),
               None if pointwise_weight is None else (pointwise_weight.shape,
                                                      pointwise_weight.dtype),
               None if pointwise_bias is None else (pointwise_bias.shape,
                                                    pointwise_bias.dtype),
               stride, padding, dilation, groups, output_padding, padding_mode,
               # the argument as given: a cached params then holds its count already,
               # and _revalidate need not copy it (a microsecond of a tiny layer)
               n_threads)
        try:
            params = _VALIDATED.get(key)
        except TypeError:  # an unhashable argument (a list): validate in full
            key = params = None
        if params is not None:
            return _revalidate(params, input, weight, bias, pointwise_weight, pointwise_bias,
                               out, n_threads)
    params, arrays = _normalize_full(op, input, weight, bias, stride=stride, padding=padding,
                                     dilation=dilation, groups=groups,
                                     output_padding=output_padding,
                                     padding_mode=padding_mode, out=out, n_threads=n_threads,
                                     pointwise_weight=pointwise_weight,
                                     pointwise_bias=pointwise_bias)
    if key is not None and len(_VALIDATED) < _VALIDATED_LIMIT:
        _VALIDATED[key] = params
    return params, arrays


def _revalidate(params, x, w, b, pw, pw_b, out, n_threads):
    """The per-call part of validation for a call whose static part was validated."""
    n_threads = _threads.resolve(n_threads)
    if n_threads != params.n_threads:
        params = params._replace(n_threads=n_threads)
    user_shape = params.output_shape if params.batched else params.output_shape[1:]
    weight_name = "depthwise_weight" if params.op == "separable_conv2d" else "weight"
    bias_name = "depthwise_bias" if params.op == "separable_conv2d" else "bias"
    out = _check_out(out, user_shape, params.dtype,
                     [("input", x), (weight_name, w), (bias_name, b),
                      ("pointwise_weight", pw), ("pointwise_bias", pw_b)])
    if params.op == "pointwise_conv2d" and w.ndim == 2:
        w = w.reshape(w.shape[0], w.shape[1], 1, 1)
    if pw is not None and pw.ndim == 4:
        pw = pw.reshape(pw.shape[0], pw.shape[1])
    arrays = {
        "x": _contiguous(x if params.batched else x[np.newaxis]),
        "w": _contiguous(w),
        "b": _contiguous(b),
        "pw": _contiguous(pw),
        "pw_b": _contiguous(pw_b),
        "out": None if out is None else (out if params.batched else out[np.newaxis]),
    }
    return params, arrays


def _normalize_full(op: str, input, weight, bias=None, *, stride=1, padding=0, dilation=1,
                    groups=1, output_padding=0, padding_mode="zeros", out=None,
                    n_threads=None, pointwise_weight=None, pointwise_bias=None):
    """normalize() for a call not seen before: every check, in order."""
    x = _float_array(input, "input")
    x4, batched = _input_4d(x, op)
    N, C_in, H, W = x4.shape
    n_threads = _threads.resolve(n_threads)

    weight_name = "depthwise_weight" if op == "separable_conv2d" else "weight"
    w = _float_array(weight, weight_name)
    _same_dtype(x, w, weight_name)
    bias_name = "depthwise_bias" if op == "separable_conv2d" else "bias"
    b = _float_array(bias, bias_name, allow_none=True)
    _same_dtype(x, b, bias_name)
    weight_shape = tuple(w.shape)

    stride = _positive_pair(stride, "stride")
    dilation = _positive_pair(dilation, "dilation")
    requested_output_padding, output_padding = output_padding, (0, 0)
    mid_channels = 0
    pw = pw_b = None

    if op == "pointwise_conv2d":
        if w.ndim == 2:
            w = w.reshape(w.shape[0], w.shape[1], 1, 1)
        elif w.ndim != 4 or w.shape[2:] != (1, 1):
            raise ValueError(f"Expected pointwise weight of size [C_out, C_in] or "
                             f"[C_out, C_in, 1, 1], but got weight of size "
                             f"{_fmt_shape(weight_shape)}")
        groups = 1
    else:
        _check_weight_ndim(w, weight_name, op,
                           "(C_in, C_out/groups, kh, kw)" if op == "conv_transpose2d"
                           else "(C*multiplier, 1, kh, kw)" if op in (
                               "depthwise_conv2d", "separable_conv2d")
                           else "(C_out, C_in/groups, kh, kw)")
    if min(w.shape) < 1:
        raise ValueError(f"{weight_name} must not be empty, got {weight_name} of size "
                         f"{_fmt_shape(weight_shape)}")

    if op in ("depthwise_conv2d", "separable_conv2d"):
        if w.shape[1] != 1 or w.shape[0] % C_in != 0:
            raise ValueError(
                f"Given input of size {_fmt_shape(x.shape)} with {C_in} channels, expected "
                f"{weight_name} of size [{C_in} * multiplier, 1, kh, kw], but got "
                f"{weight_name} of size {_fmt_shape(weight_shape)} instead")
        groups = C_in

    groups = _as_int(groups, "groups")
    if groups < 1:
        raise ValueError(f"groups must be positive, got groups={groups}")
    kernel = (int(w.shape[2]), int(w.shape[3]))

    if op == "conv_transpose2d":
        output_padding = as_pair(requested_output_padding, "output_padding")
        if min(output_padding) < 0:
            raise ValueError(f"output_padding must be non-negative, got "
                             f"output_padding={output_padding}")
        for a in (0, 1):
            if output_padding[a] >= stride[a] and output_padding[a] >= dilation[a]:
                raise ValueError(
                    f"output_padding must be smaller than either stride or dilation, but got "
                    f"output_padding={output_padding}, stride={stride}, dilation={dilation}")
        if C_in % groups != 0 or w.shape[0] != C_in:
            raise ValueError(
                f"Given transposed=1, weight of size {_fmt_shape(weight_shape)}, expected "
                f"input{_fmt_shape(x.shape)} to have {w.shape[0]} channels, but got {C_in} "
                f"channels instead" if w.shape[0] != C_in else
                f"Given groups={groups}, expected input channels to be divisible by groups, "
                f"but got input{_fmt_shape(x.shape)} with {C_in} channels")
        C_out = w.shape[1] * groups
        pad = normalize_padding(padding, kernel, stride, dilation, (H, W),
                                allow_strings=False) if padding != "valid" else ((0, 0), (0, 0))
        if padding_mode != "zeros":
            raise ValueError(f"padding_mode must be 'zeros' for conv_transpose2d, got "
                             f"{padding_mode!r}")
        out_hw = shapes.conv_transpose2d_output_hw((H, W), kernel, stride, pad, dilation,
                                                   output_padding)
        if min(out_hw) < 1:
            raise ValueError(
                f"Given input size per channel: ({H} x {W}), calculated output size per "
                f"channel: ({out_hw[0]} x {out_hw[1]}). Output size is too small (padding "
                f"{pad} is larger than the transposed kernel's reach)")
    else:
        if w.shape[0] % groups != 0:
            raise ValueError(f"Given groups={groups}, expected weight to be divisible by "
                             f"{groups} at dimension 0, but got weight of size "
                             f"{_fmt_shape(weight_shape)} instead")
        if C_in != w.shape[1] * groups:
            raise ValueError(
                f"Given groups={groups}, weight of size {_fmt_shape(weight_shape)}, expected "
                f"input{_fmt_shape(x.shape)} to have {w.shape[1] * groups} channels, but got "
                f"{C_in} channels instead")
        C_out = w.shape[0]
        if op == "pointwise_conv2d":
            pad = ((0, 0), (0, 0))
        else:
            pad = normalize_padding(padding, kernel, stride, dilation, (H, W))
            padding_mode = _check_padding_mode(padding_mode, pad, (H, W))
        out_hw = _conv_output_hw(x4, kernel, stride, pad, dilation)

    _check_bias(b, w.shape[0] if op in ("depthwise_conv2d", "separable_conv2d") else C_out,
                weight_shape, bias_name, weight_name)

    if op == "separable_conv2d":
        mid_channels = w.shape[0]
        pw = _float_array(pointwise_weight, "pointwise_weight")
        _same_dtype(x, pw, "pointwise_weight")
        pw_shape = tuple(pw.shape)
        if pw.ndim == 4 and pw.shape[2:] == (1, 1):
            pw = pw.reshape(pw.shape[0], pw.shape[1])
        if pw.ndim != 2 or pw.shape[1] != mid_channels or pw.shape[0] < 1:
            raise ValueError(
                f"Given depthwise_weight of size {_fmt_shape(weight_shape)} ({mid_channels} "
                f"output channels), expected pointwise_weight of size [C_out, {mid_channels}] "
                f"or [C_out, {mid_channels}, 1, 1], but got pointwise_weight of size "
                f"{_fmt_shape(pw_shape)} instead")
        pw_b = _float_array(pointwise_bias, "pointwise_bias", allow_none=True)
        _same_dtype(x, pw_b, "pointwise_bias")
        _check_bias(pw_b, pw.shape[0], pw_shape, "pointwise_bias", "pointwise_weight")
        C_out = pw.shape[0]

    output_shape = (N, C_out, out_hw[0], out_hw[1])
    user_shape = output_shape if batched else output_shape[1:]
    out = _check_out(out, user_shape, x.dtype,
                     [("input", x), (weight_name, w), (bias_name, b),
                      ("pointwise_weight", pw), ("pointwise_bias", pw_b)])

    params = ConvParams(
        op=op, dtype=x.dtype, batched=batched, input_shape=(N, C_in, H, W),
        weight_shape=weight_shape, output_shape=output_shape, kernel=kernel, stride=stride,
        padding=pad, dilation=dilation, groups=groups, output_padding=output_padding,
        padding_mode=padding_mode, n_threads=n_threads, has_bias=b is not None,
        mid_channels=mid_channels)
    arrays = {
        "x": _contiguous(x4),
        "w": _contiguous(w),
        "b": _contiguous(b),
        "pw": _contiguous(pw),
        "pw_b": _contiguous(pw_b),
        "out": None if out is None else (out if batched else out[np.newaxis]),
    }
    return params, arrays
