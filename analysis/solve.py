"""Inverse planning: the settings that produce a wanted size.

All answers are checked by running the forward arithmetic of :mod:`cconv.shapes`, so a
returned setting gives exactly the requested size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from cconv.shapes import (conv_output_size, conv_transpose_output_size, kernel_span,
                          output_padding_to_restore, padding_for_output_size)

from .errors import SpecError


def _positive(value: int, field: str) -> None:
    if not isinstance(value, int) or value < 1:
        raise SpecError("solve", field, f"must be a positive integer, got {value!r}")


def padding_for(size: int, target: int, kernel: int, stride: int = 1,
                dilation: int = 1) -> Optional[Tuple[int, int]]:
    """The smallest (before, after) padding giving ``target`` outputs, or None if none does.

    Odd totals put the extra cell after, as :func:`cconv.shapes.same_padding` does.
    """
    for value, field in ((size, "input"), (target, "output"), (kernel, "kernel"),
                         (stride, "stride"), (dilation, "dilation")):
        _positive(value, field)
    return padding_for_output_size(size, target, kernel, stride, dilation)


def output_padding_for(size: int, kernel: int, stride: int = 1, padding: int = 0,
                       dilation: int = 1) -> int:
    """``output_padding`` making ``ConvTranspose(k, s, p, d)`` restore ``size`` after
    ``Conv(k, s, p, d)`` shrank it (Dumoulin & Visin's ``a``)."""
    for value, field in ((size, "input"), (kernel, "kernel"), (stride, "stride"),
                         (dilation, "dilation")):
        _positive(value, field)
    pads = (padding, padding)
    if conv_output_size(size, kernel, stride, pads, dilation) < 1:
        raise SpecError("solve", "kernel", f"a conv with kernel {kernel} (dilation "
                                           f"{dilation}) does not fit input {size}")
    return output_padding_to_restore(size, kernel, stride, pads, dilation)


@dataclass(frozen=True)
class Choice:
    """One (kernel, stride, padding, dilation[, output_padding]) mapping ``size -> target``."""

    kernel: int
    stride: int
    padding: Tuple[int, int]
    dilation: int
    output_padding: int = 0


def choices(size: int, target: int, max_kernel: int = 7, max_stride: int = 4,
            max_dilation: int = 1, transposed: bool = False,
            symmetric: bool = True) -> List[Choice]:
    """Every (kernel, stride, padding, dilation) within the bounds that maps ``size`` to
    ``target`` (a transposed conv when ``transposed``: then with its output_padding).

    Padding runs from 0 to the kernel span minus one per side; with ``symmetric`` only
    equal before/after paddings are listed. Sorted by kernel, stride, dilation, padding.
    """
    for value, field in ((size, "input"), (target, "output"), (max_kernel, "max_kernel"),
                         (max_stride, "max_stride"), (max_dilation, "max_dilation")):
        _positive(value, field)
    found: List[Choice] = []
    for k in range(1, max_kernel + 1):
        for d in range(1, max_dilation + 1 if k > 1 else 2):
            span = kernel_span(k, d)
            for s in range(1, max_stride + 1):
                for before in range(span):
                    for after in ((before,) if symmetric else range(span)):
                        p = (before, after)
                        if not transposed:
                            if conv_output_size(size, k, s, p, d) == target:
                                found.append(Choice(k, s, p, d))
                            continue
                        base = conv_transpose_output_size(size, k, s, p, d, 0)
                        a = target - base
                        if 0 <= a < max(s, d):
                            found.append(Choice(k, s, p, d, a))
    return found
