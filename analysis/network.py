"""Networks: sequences of layers and blocks (residual add, concat), and their analysis.

A :class:`Network` is data: an input shape and a tuple of nodes, each a
:class:`analysis.layers.Layer` or a :class:`Block`. :func:`analyse` walks it once and
returns one :class:`Row` per layer and per merge, each holding numbers only (shapes,
parameters, MACs, receptive field); :mod:`analysis.costs` adds bytes and times and
:mod:`analysis.formatting` turns rows into text.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from math import prod
from typing import List, Optional, Sequence, Tuple, Union

from . import receptive
from .errors import SpecError
from .layers import Layer, Params, Shape

BLOCK_KINDS = ("sequential", "add", "concat")


@dataclass(frozen=True)
class Block:
    """Several paths from one input, merged.

    ``kind`` is ``"sequential"`` (one path, a named group), ``"add"`` (paths summed; an
    empty path is the identity shortcut) or ``"concat"`` (channels concatenated; with
    ``crop`` every path is centre-cropped to the smallest map, as U-Net does).
    """

    name: str
    kind: str
    branches: Tuple[Tuple["Node", ...], ...]
    crop: bool = False


Node = Union[Layer, Block]


@dataclass(frozen=True)
class Network:
    """A named network: per-sample ``input_shape`` (C, H, W) and its nodes."""

    name: str
    input_shape: Shape
    layers: Tuple[Node, ...]
    description: str = ""


@dataclass(frozen=True)
class Row:
    """One analysed layer (or merge point) of a network."""

    name: str
    op: str
    input_shape: Shape
    output_shape: Shape
    params: Params
    macs: int
    bias_adds: int
    rf: receptive.RF2d
    layer: Optional[Layer] = None
    input_elements: int = 0  # all inputs read (several for a merge)
    aligned: Optional[bool] = None  # merges only


@dataclass
class Analysis:
    """Result of :func:`analyse`: rows in execution order and the misaligned merges."""

    network: Network
    input_shape: Shape
    rows: List[Row] = field(default_factory=list)
    misaligned: List[str] = field(default_factory=list)

    @property
    def output_shape(self) -> Shape:
        return self.rows[-1].output_shape if self.rows else self.input_shape


def analyse(network: Network, input_shape: Optional[Shape] = None,
            bn_params: str = "trainable") -> Analysis:
    """Shapes, parameters, MACs and receptive fields of every layer of ``network``.

    Parameters
    ----------
    network : Network
    input_shape : (C, H, W), optional
        Overrides ``network.input_shape`` (e.g. another resolution).
    bn_params : {"trainable", "all", "none"}
        How batch-norm parameters are counted (torchvision counts "trainable": 2*C).

    Raises
    ------
    SpecError
        Naming the first layer (dotted path) and field that cannot be planned.
    """
    shape = tuple(input_shape or network.input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise SpecError("", "input", f"expected a positive (C, H, W), got {list(shape)}")
    result = Analysis(network, shape)
    _walk(network.layers, shape, receptive.RF2d(), shape[1:], "", result, bn_params)
    return result


def _walk(nodes: Sequence[Node], shape: Shape, rf: receptive.RF2d, map_hw, prefix: str,
          result: Analysis, bn_params: str):
    for index, node in enumerate(nodes):
        local = node.name or f"{getattr(node, 'op', getattr(node, 'kind', 'node'))}{index}"
        full = prefix + local
        if isinstance(node, Block):
            shape, rf, map_hw = _walk_block(node, full, shape, rf, map_hw, result, bn_params)
            continue
        layer = replace(node, name=full)
        out = layer.output_shape(shape)
        rf = receptive.apply(rf, layer.rf_geometry(shape), map_hw)
        if len(out) == 3:
            map_hw = out[1:]
        elif layer.op == "linear":
            map_hw = (1, 1)
        result.rows.append(Row(full, layer.op, shape, out, layer.params(shape, bn_params),
                               layer.macs(shape), layer.bias_adds(shape), rf, layer,
                               prod(shape)))
        shape = out
    return shape, rf, map_hw


def _walk_block(block: Block, full: str, shape, rf, map_hw, result, bn_params):
    if block.kind not in BLOCK_KINDS:
        raise SpecError(full, "op", f"unknown block kind {block.kind!r}; expected one of "
                                    f"{', '.join(BLOCK_KINDS)}")
    if not block.branches:
        raise SpecError(full, "branches", "a block needs at least one path")
    if block.kind == "sequential":
        return _walk(block.branches[0], shape, rf, map_hw, full + ".", result, bn_params)
    ends = []
    for b, branch in enumerate(block.branches):
        ends.append(_walk(branch, shape, rf, map_hw, f"{full}.{b}.", result, bn_params))
    shapes = [e[0] for e in ends]
    rfs = [e[1] for e in ends]
    if any(len(s) != 3 for s in shapes):
        raise SpecError(full, "branches", f"{block.kind} needs (C, H, W) maps, got "
                                          f"{[list(s) for s in shapes]}")
    if block.kind == "add":
        if len(set(shapes)) != 1:
            raise SpecError(full, "branches", f"residual add needs equal shapes, got "
                                              f"{[list(s) for s in shapes]}")
        out = shapes[0]
    else:
        if block.crop:
            th, tw = min(s[1] for s in shapes), min(s[2] for s in shapes)
            rfs = [receptive.crop2d(r, ((s[1] - th) // 2, (s[2] - tw) // 2))
                   for r, s in zip(rfs, shapes)]
            shapes_hw = {(th, tw)}
        else:
            shapes_hw = {s[1:] for s in shapes}
        if len(shapes_hw) != 1:
            raise SpecError(full, "branches", f"concat needs equal spatial sizes (or "
                                              f"crop=true), got {[list(s) for s in shapes]}")
        out = (sum(s[0] for s in shapes),) + next(iter(shapes_hw))
    merged, aligned = receptive.merge2d(rfs)
    if not aligned:
        result.misaligned.append(full)
    result.rows.append(Row(full, block.kind, shapes[0], out, Params(), 0, 0, merged, None,
                           sum(prod(s) for s in shapes), aligned))
    return out, merged, out[1:]


def walk_layers(nodes: Sequence[Node]):
    """Every layer of ``nodes`` in order, descending into blocks."""
    for node in nodes:
        if isinstance(node, Block):
            for branch in node.branches:
                yield from walk_layers(branch)
        else:
            yield node


def map_layers(nodes: Sequence[Node], fn) -> Tuple[Node, ...]:
    """A copy of ``nodes`` with every layer replaced by ``fn(layer)`` (blocks kept)."""
    out = []
    for node in nodes:
        if isinstance(node, Block):
            out.append(replace(node, branches=tuple(map_layers(b, fn) for b in node.branches)))
        else:
            out.append(fn(node))
    return tuple(out)
