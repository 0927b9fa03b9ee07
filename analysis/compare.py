"""Standard vs depthwise-separable convolution, for one layer and for a whole network.

A k x k standard conv from C_in to C_out channels at an H_out x W_out output costs
``H_out W_out C_in C_out k^2`` MACs; its separable replacement (depthwise k x k at the
same stride, padding and dilation, then 1x1) costs ``H_out W_out C_in (k^2 + C_out)``.
The ratio is exactly ``1/C_out + 1/k^2`` (Howard et al. 2017, section 3.1), for any
padding and stride, because both parts run at the output resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Optional

from .layers import Conv2d, SeparableConv2d, Shape, as_pair
from .network import Network, analyse, map_layers


def eligible(layer) -> bool:
    """A standard (ungrouped, non-1x1, non-transposed) conv that can become separable."""
    return (type(layer) is Conv2d and layer.groups == 1
            and as_pair(layer.kernel, layer.name, "kernel") != (1, 1))


def separable_version(conv: Conv2d) -> SeparableConv2d:
    """The depthwise-separable replacement of ``conv`` (same kernel/stride/padding/dilation)."""
    return SeparableConv2d(conv.name, out_channels=conv.out_channels, kernel=conv.kernel,
                           stride=conv.stride, padding=conv.padding, dilation=conv.dilation,
                           bias=conv.bias)


@dataclass(frozen=True)
class Comparison:
    """One conv layer, standard and separable; times are filled in by ``--measure``."""

    name: str
    input_shape: Shape
    output_shape: Shape
    kernel: tuple
    standard_params: int
    separable_params: int
    standard_macs: int
    separable_macs: int
    theoretical: Fraction  # 1/C_out + 1/(kh*kw)
    standard_s: Optional[float] = None
    separable_s: Optional[float] = None
    layer: Optional[Conv2d] = None

    @property
    def mac_ratio(self) -> Fraction:
        return Fraction(self.separable_macs, self.standard_macs)

    @property
    def param_ratio(self) -> Fraction:
        return Fraction(self.separable_params, self.standard_params)

    @property
    def measured_ratio(self) -> Optional[float]:
        if self.standard_s and self.separable_s:
            return self.separable_s / self.standard_s
        return None


def compare_layer(conv: Conv2d, in_shape: Shape) -> Comparison:
    """Compare ``conv`` on a ``(C, H, W)`` input with its separable replacement."""
    sep = separable_version(conv)
    out = conv.output_shape(in_shape)
    kh, kw = as_pair(conv.kernel, conv.name, "kernel")
    return Comparison(conv.name, tuple(in_shape), out, (kh, kw),
                      conv.params(in_shape).total, sep.params(in_shape).total,
                      conv.macs(in_shape), sep.macs(in_shape),
                      Fraction(1, conv.out_channels) + Fraction(1, kh * kw), layer=conv)


def replace_times(c: Comparison, standard_s: Optional[float],
                  separable_s: Optional[float]) -> Comparison:
    """``c`` with measured times (seconds) filled in."""
    return replace(c, standard_s=standard_s, separable_s=separable_s)


def separable_network(network: Network) -> Network:
    """``network`` with every eligible conv replaced by its separable version."""
    return replace(network, name=network.name + "_separable",
                   layers=map_layers(network.layers,
                                     lambda l: separable_version(l) if eligible(l) else l))


def compare_network(network: Network, input_shape: Optional[Shape] = None,
                    bn_params: str = "trainable"):
    """Per eligible layer comparisons and whole-network totals.

    Returns ``(comparisons, totals)`` where ``totals`` has ``standard_params``,
    ``separable_params``, ``standard_macs`` and ``separable_macs`` of the whole network
    (every layer, eligible or not) and ``replaced`` (how many convs were replaced).
    """
    std = analyse(network, input_shape, bn_params)
    sep = analyse(separable_network(network), input_shape, bn_params)
    comparisons = [compare_layer(row.layer, row.input_shape) for row in std.rows
                   if row.layer is not None and eligible(row.layer)]
    totals = {
        "standard_params": sum(r.params.total for r in std.rows),
        "separable_params": sum(r.params.total for r in sep.rows),
        "standard_macs": sum(r.macs for r in std.rows),
        "separable_macs": sum(r.macs for r in sep.rows),
        "replaced": len(comparisons),
    }
    return comparisons, totals
