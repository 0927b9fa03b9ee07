"""Receptive fields, one axis at a time, as in Araujo, Norris & Sim (Distill, 2019).

For one axis, the state after layer ``l`` is

* ``size``   r_l: how many input cells one output unit depends on;
* ``stride`` j_l: how far (in input cells) the receptive field moves per output step
  (the product of strides; fractional after transposed convs and upsampling);
* ``padding`` P_l: the effective padding: unit 0's field spans input cells
  ``[-P_l, -P_l + r_l - 1]``;
* ``center`` = ``(r_l - 1) / 2 - P_l``: where unit 0's field is centred.

Unit ``m``'s field is ``[-P + m*S, -P + m*S + r - 1]``. Through convolutions and
pooling this is exact (its end cells are real taps, Araujo et al.). Through transposed
convolutions and upsampling the stride is fractional and the field is the continuous
envelope: the input cells a unit depends on are the integers inside that interval (a
stride-2, 2x2 transposed conv adds half a cell per unit, whereas each unit reads one).

Each recurrence below is one short function of the previous state. Fractions keep
fractional strides exact. Branches (residual add, concat) are merged by
:func:`merge`, which reports whether the paths are aligned: same stride and same
centre for unit 0 (Araujo et al., "Arbitrary computation graphs").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import List, Sequence, Tuple, Union

Number = Union[int, Fraction]


@dataclass(frozen=True)
class AxisRF:
    """Receptive field on one axis after some layer (see the module docstring)."""

    size: Fraction = Fraction(1)
    stride: Fraction = Fraction(1)
    padding: Fraction = Fraction(0)
    is_global: bool = False

    @property
    def center(self) -> Fraction:
        """Centre of output unit 0's field, in input coordinates."""
        return (self.size - 1) / 2 - self.padding


def conv(rf: AxisRF, span: int, stride: Number, pad_before: int) -> AxisRF:
    """Convolution or pooling with a (dilated) kernel covering ``span`` cells.

    ``r' = r + (span - 1) j``, ``P' = P + pad_before * j``, ``j' = j * stride``.
    """
    return replace(rf, size=rf.size + (span - 1) * rf.stride,
                   padding=rf.padding + pad_before * rf.stride, stride=rf.stride * stride)


def transposed(rf: AxisRF, span: int, stride: int, pad_before: int) -> AxisRF:
    """Transposed convolution: zero-insertion by ``stride`` (jump ``j/stride``) followed
    by a stride-1 conv of the same span padded by ``span - 1 - pad_before``.

    ``j' = j / s``, ``r' = r + (span - 1) j'``, ``P' = P + (span - 1 - pad_before) j'``.
    ``output_padding`` only adds cells at the far end and leaves unit 0 unchanged.
    """
    fine = rf.stride / stride
    return replace(rf, size=rf.size + (span - 1) * fine,
                   padding=rf.padding + (span - 1 - pad_before) * fine, stride=fine)


def upsample(rf: AxisRF, taps: int, step: Fraction) -> AxisRF:
    """Upsampling where one output step is ``step`` (< 1 when enlarging) input cells.

    Nearest (1 tap) keeps the field; bilinear (2 taps) widens it by one input unit,
    centred (unit 0 is clamped to input 0 by torch, so its centre does not move).
    A field that is already global stays as it is.
    """
    if rf.is_global:  # already sees everything; stays so
        return replace(rf, stride=rf.stride * step)
    grow = (taps - 1) * rf.stride
    return replace(rf, size=rf.size + grow, padding=rf.padding + grow / 2,
                   stride=rf.stride * step)


def whole_map(rf: AxisRF, extent: int) -> AxisRF:
    """Global pooling or a fully connected layer over ``extent`` units: sees all of them."""
    return replace(rf, size=rf.size + (extent - 1) * rf.stride, is_global=True)


def crop(rf: AxisRF, before: int) -> AxisRF:
    """Dropping ``before`` leading units moves unit 0 by ``before`` steps."""
    return replace(rf, padding=rf.padding - before * rf.stride)


def merge(branches: Sequence[AxisRF]) -> Tuple[AxisRF, bool]:
    """Union of the fields of paths that are summed or concatenated, and whether aligned.

    Paths are aligned when they share the stride and unit 0's centre; global paths (a
    pooled image feature) are position independent and excluded from the check. The
    merged field spans from the leftmost to the rightmost edge of unit 0's fields.
    """
    local = [b for b in branches if not b.is_global] or list(branches)
    aligned = (len({b.stride for b in local}) == 1 and len({b.center for b in local}) == 1)
    left = min(-b.padding for b in branches)
    right = max(-b.padding + b.size - 1 for b in branches)
    merged = AxisRF(size=right - left + 1, stride=local[0].stride, padding=-left,
                    is_global=all(b.is_global for b in branches))
    return merged, aligned


@dataclass(frozen=True)
class RF2d:
    """Receptive field on both axes plus the map size features are laid on."""

    h: AxisRF = AxisRF()
    w: AxisRF = AxisRF()

    def pair(self, attr: str) -> Tuple[Number, Number]:
        """``(h, w)`` of one attribute, as ints where integral."""
        return (as_number(getattr(self.h, attr)), as_number(getattr(self.w, attr)))


def as_number(value: Fraction) -> Number:
    """An int when the fraction is integral, else the Fraction itself."""
    return int(value) if value.denominator == 1 else value


def apply(rf: RF2d, geometry, map_hw: Tuple[int, int]) -> RF2d:
    """Apply one layer's :class:`analysis.layers.RFGeometry` to both axes.

    ``map_hw`` is the spatial size of the last feature map (for fully connected layers).
    """
    kind = geometry.kind
    axes: List[AxisRF] = []
    for a, axis in enumerate((rf.h, rf.w)):
        if kind == "conv":
            axis = conv(axis, geometry.span[a], geometry.stride[a], geometry.pad_before[a])
        elif kind == "transposed":
            axis = transposed(axis, geometry.span[a], geometry.stride[a], geometry.pad_before[a])
        elif kind == "upsample":
            axis = upsample(axis, geometry.span[a], Fraction(geometry.stride[a]))
        elif kind == "global":
            axis = whole_map(axis, geometry.span[a])
        elif kind == "dense":
            axis = whole_map(axis, map_hw[a])
        axes.append(axis)
    return RF2d(*axes)


def merge2d(branches: Sequence[RF2d]) -> Tuple[RF2d, bool]:
    """:func:`merge` on both axes; aligned only if both axes are."""
    h, ah = merge([b.h for b in branches])
    w, aw = merge([b.w for b in branches])
    return RF2d(h, w), ah and aw


def crop2d(rf: RF2d, before: Tuple[int, int]) -> RF2d:
    return RF2d(crop(rf.h, before[0]), crop(rf.w, before[1]))
