"""What each layer costs: parameters, MACs, FLOPs, bytes, arithmetic intensity, roofline.

Conventions (printed under every table by :mod:`analysis.formatting`):

* ``flops = 2 * macs`` (one multiply and one add per MAC); bias adds are *not* in
  ``flops`` and are reported on their own as ``bias_flops``.
* Bytes are those a layer must move at least once: its input(s), its output and its
  parameters, for ``batch`` samples of ``dtype``.
* ``intensity = flops / bytes``; the roofline estimate is
  ``max(flops / peak_flops, bytes / bandwidth)`` (Williams, Waterman & Patterson, 2009).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Dict, List, Optional

from .errors import SpecError
from .network import Analysis, Row

DTYPE_BYTES = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "int8": 1}

#: Default machine for roofline estimates: a conservative laptop-class core pair.
DEFAULT_PEAK_GFLOPS = 100.0
DEFAULT_BANDWIDTH_GBS = 20.0

CONVENTION = ("MACs = multiply-accumulates of conv and linear layers; FLOPs = 2 x MACs "
              "(bias adds listed separately, not in FLOPs); transposed-conv MACs counted "
              "from the input size.")


def dtype_bytes(dtype: str) -> int:
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise SpecError("", "dtype", f"expected one of {', '.join(DTYPE_BYTES)}, "
                                     f"got {dtype!r}") from None


@dataclass(frozen=True)
class Machine:
    """Peak compute (FLOP/s) and memory bandwidth (bytes/s) for the roofline."""

    peak_flops: float = DEFAULT_PEAK_GFLOPS * 1e9
    bandwidth: float = DEFAULT_BANDWIDTH_GBS * 1e9


@dataclass(frozen=True)
class LayerCost:
    """Costs of one row, for the whole batch."""

    name: str
    op: str
    weights: int
    bias: int
    other_params: int
    params: int
    macs: int
    flops: int
    bias_flops: int
    input_bytes: int
    output_bytes: int
    weight_bytes: int
    total_bytes: int
    intensity: float
    roofline_s: float


def layer_cost(row: Row, batch: int = 1, dtype: str = "float32",
               machine: Machine = Machine()) -> LayerCost:
    """:class:`LayerCost` of one analysed row."""
    item = dtype_bytes(dtype)
    macs = row.macs * batch
    flops = 2 * macs
    in_b = row.input_elements * batch * item
    out_b = prod(row.output_shape) * batch * item
    w_b = row.params.total * item
    total = in_b + out_b + w_b
    intensity = flops / total if total else 0.0
    roofline = max(flops / machine.peak_flops, total / machine.bandwidth)
    return LayerCost(row.name, row.op, row.params.weights, row.params.bias, row.params.other,
                     row.params.total, macs, flops, row.bias_adds * batch, in_b, out_b, w_b,
                     total, intensity, roofline)


def network_costs(analysis: Analysis, batch: int = 1, dtype: str = "float32",
                  machine: Machine = Machine()) -> List[LayerCost]:
    """One :class:`LayerCost` per row of ``analysis``."""
    if batch < 1:
        raise SpecError("", "batch", f"must be >= 1, got {batch}")
    return [layer_cost(r, batch, dtype, machine) for r in analysis.rows]


SUMMED = ("weights", "bias", "other_params", "params", "macs", "flops", "bias_flops",
          "input_bytes", "output_bytes", "weight_bytes", "total_bytes", "roofline_s")


def totals(costs: List[LayerCost]) -> Dict[str, float]:
    """Column sums of every additive field (intensity is recomputed from the sums)."""
    out: Dict[str, float] = {k: sum(getattr(c, k) for c in costs) for k in SUMMED}
    out["intensity"] = out["flops"] / out["total_bytes"] if out["total_bytes"] else 0.0
    return out


def shares_by_op(costs: List[LayerCost], key: str = "macs",
                 classify=None) -> Dict[str, float]:
    """Fraction of the total ``key`` spent in each class of layer (default: by ``op``).

    ``classify(cost) -> str or None`` picks the class; ``None`` leaves the layer out of
    the numerator (it still counts in the total).
    """
    classify = classify or (lambda c: c.op)
    total = sum(getattr(c, key) for c in costs)
    out: Dict[str, float] = {}
    for c in costs:
        label = classify(c)
        if label is not None:
            out[label] = out.get(label, 0) + getattr(c, key)
    return {k: v / total for k, v in out.items()} if total else out


def layer_kind(row: Row) -> str:
    """A row's kind for per-type summaries: op plus kernel size for convolutions
    ("conv 3x3", "depthwise 3x3", "conv 1x1", ...), else the op (MobileNet's Table 2)."""
    layer = row.layer
    if layer is not None and hasattr(layer, "kernel") and row.op in (
            "conv", "depthwise", "pointwise", "separable", "conv_transpose"):
        k = layer.kernel if isinstance(layer.kernel, (tuple, list)) else (layer.kernel,) * 2
        return f"{row.op} {k[0]}x{k[1]}"
    return row.op


def summary_by_kind(analysis: Analysis, costs: List[LayerCost],
                    weights_only: bool = False) -> List[Dict[str, float]]:
    """Layers, parameters and MACs per :func:`layer_kind`, with shares of the totals.

    ``weights_only`` counts weights alone (the MobileNet paper's convention, no biases or
    batch norm). Kinds with neither parameters nor MACs are left out; sorted by MACs.
    """
    key = "weights" if weights_only else "params"
    total_p = sum(getattr(c, key) for c in costs)
    total_m = sum(c.macs for c in costs)
    groups: Dict[str, Dict[str, float]] = {}
    for row, cost in zip(analysis.rows, costs):
        g = groups.setdefault(layer_kind(row), {"kind": layer_kind(row), "layers": 0,
                                                "params": 0, "macs": 0})
        g["layers"] += 1
        g["params"] += getattr(cost, key)
        g["macs"] += cost.macs
    out = [g for g in groups.values() if g["params"] or g["macs"]]
    for g in out:
        g["params_share"] = g["params"] / total_p if total_p else 0.0
        g["macs_share"] = g["macs"] / total_m if total_m else 0.0
    return sorted(out, key=lambda g: (-g["macs"], -g["params"]))


def roofline_seconds(flops: float, nbytes: float, machine: Optional[Machine] = None) -> float:
    machine = machine or Machine()
    return max(flops / machine.peak_flops, nbytes / machine.bandwidth)
