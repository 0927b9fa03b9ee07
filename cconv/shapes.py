"""Output-shape arithmetic for every convolution variant: the one place it lives.

Both the kernels (to allocate outputs and build their plans) and ``analysis`` (to plan
networks) call these functions, so a planned shape is by construction the shape the
kernels return. Everything here is pure integer arithmetic on one spatial axis or on an
(H, W) pair; nothing imports the compiled extension.

Conventions (those of ``torch.nn.functional`` and of Dumoulin & Visin, "A guide to
convolution arithmetic for deep learning", 2016):

* ``padding`` on one axis is a pair ``(before, after)``: top/bottom or left/right.
* A dilated kernel of size ``k`` spans ``dilation * (k - 1) + 1`` input cells.
* Convolution output: ``floor((i + before + after - span) / stride) + 1``.
* Transposed output: ``(i - 1) * stride - before - after + span + output_padding``.
* ``"same"`` padding gives ``ceil(i / stride)`` outputs; the total padding is split with
  the odd pixel after (bottom/right), which is torch's rule at stride 1 and TensorFlow's
  at every stride.

The functions return plain ints and never raise on a too-small input: an output size
below 1 is returned as is, and the caller decides how to report it.
"""

from __future__ import annotations

from typing import Tuple

Pair = Tuple[int, int]
Padding2d = Tuple[Pair, Pair]

__all__ = [
    "kernel_span",
    "conv_output_size",
    "conv_transpose_output_size",
    "pool_output_size",
    "same_padding",
    "conv2d_output_hw",
    "conv_transpose2d_output_hw",
    "padding_for_output_size",
    "output_padding_to_restore",
    "dilation_phases",
]


def kernel_span(kernel: int, dilation: int = 1) -> int:
    """Number of input cells a dilated kernel covers: ``dilation * (kernel - 1) + 1``."""
    return dilation * (kernel - 1) + 1


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: Pair = (0, 0),
                     dilation: int = 1) -> int:
    """Output length of a convolution along one axis.

    ``floor((size + before + after - span) / stride) + 1`` with
    ``span = dilation * (kernel - 1) + 1`` (Dumoulin & Visin relationship 15).
    May be <= 0 when the padded input is shorter than the kernel span.
    """
    padded = size + padding[0] + padding[1]
    span = kernel_span(kernel, dilation)
    if padded < span:
        # Floor division of a negative numerator could round up to a plausible size.
        return padded - span + 1
    return (padded - span) // stride + 1


def conv_transpose_output_size(size: int, kernel: int, stride: int = 1,
                               padding: Pair = (0, 0), dilation: int = 1,
                               output_padding: int = 0) -> int:
    """Output length of a transposed convolution along one axis (torch's formula).

    ``(size - 1) * stride - before - after + dilation * (kernel - 1) + output_padding + 1``.
    """
    return ((size - 1) * stride - padding[0] - padding[1]
            + kernel_span(kernel, dilation) + output_padding)


def pool_output_size(size: int, kernel: int, stride: int, padding: Pair = (0, 0),
                     dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output length of a max/avg pooling window along one axis, as torch computes it.

    With ``ceil_mode`` the division rounds up, but a last window that would start
    inside the trailing padding is dropped (torch's and Caffe's rule).
    """
    padded = size + padding[0] + padding[1]
    span = kernel_span(kernel, dilation)
    if padded < span:
        return 0
    numerator = padded - span
    if ceil_mode:
        out = -(-numerator // stride) + 1
        if (out - 1) * stride >= size + padding[0]:
            out -= 1
    else:
        out = numerator // stride + 1
    return out


def same_padding(size: int, kernel: int, stride: int = 1, dilation: int = 1) -> Pair:
    """The (before, after) padding that makes a convolution output ``ceil(size / stride)``.

    The odd pixel goes after (bottom/right): torch's split at stride 1, TensorFlow's at
    every stride.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel_span(kernel, dilation) - size, 0)
    before = total // 2
    return (before, total - before)


def conv2d_output_hw(input_hw: Pair, kernel_hw: Pair, stride: Pair = (1, 1),
                     padding: Padding2d = ((0, 0), (0, 0)),
                     dilation: Pair = (1, 1)) -> Pair:
    """(H_out, W_out) of a 2-D convolution; ``padding`` is ``((top, bottom), (left, right))``."""
    return (conv_output_size(input_hw[0], kernel_hw[0], stride[0], padding[0], dilation[0]),
            conv_output_size(input_hw[1], kernel_hw[1], stride[1], padding[1], dilation[1]))


def conv_transpose2d_output_hw(input_hw: Pair, kernel_hw: Pair, stride: Pair = (1, 1),
                               padding: Padding2d = ((0, 0), (0, 0)),
                               dilation: Pair = (1, 1),
                               output_padding: Pair = (0, 0)) -> Pair:
    """(H_out, W_out) of a 2-D transposed convolution."""
    return tuple(conv_transpose_output_size(input_hw[a], kernel_hw[a], stride[a], padding[a],
                                            dilation[a], output_padding[a])
                 for a in (0, 1))


def padding_for_output_size(size: int, target: int, kernel: int, stride: int = 1,
                            dilation: int = 1) -> Pair | None:
    """Smallest symmetric-first (before, after) padding giving ``target`` outputs, or None.

    The total padding ``t`` must satisfy ``floor((size + t - span) / stride) + 1 == target``;
    the smallest such ``t >= 0`` is returned split as :func:`same_padding` splits it.
    """
    if target < 1:
        return None
    span = kernel_span(kernel, dilation)
    total = max((target - 1) * stride + span - size, 0)
    if conv_output_size(size, kernel, stride, (0, total), dilation) != target:
        return None
    before = total // 2
    return (before, total - before)


def output_padding_to_restore(size: int, kernel: int, stride: int = 1,
                              padding: Pair = (0, 0), dilation: int = 1) -> int:
    """The ``output_padding`` that makes a transposed conv map a conv's output back to ``size``.

    A strided conv maps several input sizes to one output size; the transposed conv with
    the same (kernel, stride, padding, dilation) restores the largest-but-``r`` of them,
    where ``r = (size + before + after - span) mod stride`` is the returned value
    (Dumoulin & Visin's ``a``).
    """
    return (size + padding[0] + padding[1] - kernel_span(kernel, dilation)) % stride


def dilation_phases(size: int, out_size: int, before: int, dilation: int):
    """A dilated conv on one axis as ``dilation`` dense ones (polyphase decomposition).

    Output phase ``r`` holds outputs ``r, r + d, r + 2d, ...``; output ``r + d * q`` reads
    input ``r - before + d * (q + k)`` for tap ``k``, which lies on input phase ``s = (r -
    before) mod d`` at index ``q + k - pad`` with ``pad = -floor((r - before) / d)``. So
    phase ``r`` is an undilated conv of the input's phase ``s`` with ``pad`` cells of
    padding before it. Returns ``(r, outputs, s, inputs, pad)`` per non-empty output
    phase (``inputs`` may be 0: every tap reads padding).
    """
    phases = []
    for r in range(min(dilation, max(out_size, 0))):
        outputs = -(-(out_size - r) // dilation)
        a = r - before
        s, b = a % dilation, a // dilation
        inputs = -(-(size - s) // dilation) if size > s else 0
        phases.append((r, outputs, s, inputs, -b))
    return phases
