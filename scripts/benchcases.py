"""The benchmark suite as data: loading, filtering, shapes and MAC counts.

Pure Python, so that ``scripts/bench.py``, the pytest-benchmark suite in
``benchmarks/`` and the harness tests can all import it without PyTorch, NumPy or a
compiled ``cconv`` (``cconv.shapes`` is pure Python and loads no kernels).

A case is a plain dict, as stored in ``bench_suite.json``::

    name, op, N, C_in, H, W, C_out, kernel, stride, padding, dilation, groups, source
    (+ output_padding for conv_transpose2d)

``op`` is one of :data:`OPS`. Spatial parameters are ``[h, w]`` pairs and padding is
symmetric (``[pad_h, pad_w]``), as in ``torch.nn.functional``.

Output sizes come from ``cconv.shapes``, the one home of that arithmetic.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import sys
from typing import Iterable, Sequence

try:
    from cconv import shapes
except ImportError:  # running from a checkout that is not installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from cconv import shapes

SUITE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_suite.json")

OPS = ("conv2d", "pointwise", "depthwise", "separable", "conv_transpose2d", "dilated")

REQUIRED_FIELDS = ("name", "op", "N", "C_in", "H", "W", "C_out", "kernel", "stride",
                   "padding", "dilation", "groups", "source")
PAIR_FIELDS = ("kernel", "stride", "padding", "dilation")

__all__ = [
    "SUITE_PATH", "OPS", "REQUIRED_FIELDS", "load_suite", "validate_case", "select_cases",
    "output_hw", "output_shape", "input_shape", "weight_shapes", "macs", "flops", "geomean",
]


def load_suite(path: str = SUITE_PATH) -> list[dict]:
    """Read the suite file and return its cases, each validated by :func:`validate_case`."""
    with open(path) as f:
        suite = json.load(f)
    cases = suite["cases"]
    seen = set()
    for case in cases:
        validate_case(case)
        if case["name"] in seen:
            raise ValueError(f"duplicate case name {case['name']!r} in {path}")
        seen.add(case["name"])
    return cases


def validate_case(case: dict) -> None:
    """Raise ``ValueError`` naming the field if ``case`` is not a well-formed suite case."""
    name = case.get("name", "<unnamed>")
    missing = [f for f in REQUIRED_FIELDS if f not in case]
    if case.get("op") == "conv_transpose2d" and "output_padding" not in case:
        missing.append("output_padding")
    if missing:
        raise ValueError(f"case {name!r} lacks field(s) {', '.join(missing)}")
    if case["op"] not in OPS:
        raise ValueError(f"case {name!r}: op {case['op']!r} is not one of {', '.join(OPS)}")
    for f in PAIR_FIELDS + (("output_padding",) if case["op"] == "conv_transpose2d" else ()):
        v = case[f]
        if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) for x in v)):
            raise ValueError(f"case {name!r}: {f} must be a pair [h, w] of ints, got {v!r}")
    g = case["groups"]
    if case["C_in"] % g or case["C_out"] % g:
        raise ValueError(f"case {name!r}: groups={g} must divide C_in={case['C_in']} "
                         f"and C_out={case['C_out']}")
    if case["op"] in ("depthwise", "separable") and g != case["C_in"]:
        raise ValueError(f"case {name!r}: a {case['op']} case needs groups == C_in "
                         f"({case['C_in']}), got {g}")
    if case["op"] == "pointwise" and case["kernel"] != [1, 1]:
        raise ValueError(f"case {name!r}: a pointwise case needs kernel [1, 1]")
    if min(output_hw(case)) < 1:
        raise ValueError(f"case {name!r}: output would be {output_hw(case)}")


def _matches(name: str, pattern: str) -> bool:
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return pattern in name


def select_cases(cases: Iterable[dict], patterns: Sequence[str] | None = None,
                 ops: Sequence[str] | None = None) -> list[dict]:
    """Cases whose name matches any pattern and whose op is in ``ops``; order kept.

    A pattern containing ``*``, ``?`` or ``[`` is a glob matched against the whole
    name; any other pattern is a substring. ``None`` or empty means "no filter".
    """
    if ops:
        unknown = sorted(set(ops) - set(OPS))
        if unknown:
            raise ValueError(f"unknown op(s) {', '.join(unknown)}; choose from {', '.join(OPS)}")
    return [c for c in cases
            if (not patterns or any(_matches(c["name"], p) for p in patterns))
            and (not ops or c["op"] in ops)]


def _conv_out(size: int, k: int, s: int, p: int, d: int) -> int:
    return shapes.conv_output_size(size, k, s, (p, p), d)


def _conv_transpose_out(size: int, k: int, s: int, p: int, d: int, op: int) -> int:
    return shapes.conv_transpose_output_size(size, k, s, (p, p), d, op)


def output_hw(case: dict) -> tuple[int, int]:
    """(H_out, W_out) of the case's result (for separable: of both stages, the same)."""
    k, s, p, d = (case[f] for f in PAIR_FIELDS)
    hw = (case["H"], case["W"])
    if case["op"] == "conv_transpose2d":
        op = case["output_padding"]
        return tuple(_conv_transpose_out(hw[a], k[a], s[a], p[a], d[a], op[a]) for a in (0, 1))
    return tuple(_conv_out(hw[a], k[a], s[a], p[a], d[a]) for a in (0, 1))


def output_shape(case: dict) -> tuple[int, int, int, int]:
    """NCHW shape of the case's result."""
    return (case["N"], case["C_out"]) + output_hw(case)


def input_shape(case: dict) -> tuple[int, int, int, int]:
    """NCHW shape of the case's input."""
    return (case["N"], case["C_in"], case["H"], case["W"])


def weight_shapes(case: dict) -> tuple[tuple[int, ...], ...]:
    """Weight shape(s) in torch's layout, as the cconv calls take them.

    conv2d / dilated / depthwise / pointwise: ``((C_out, C_in/groups, kh, kw),)``;
    conv_transpose2d: ``((C_in, C_out/groups, kh, kw),)``;
    separable: ``((C_in, 1, kh, kw), (C_out, C_in, 1, 1))``.
    """
    kh, kw = case["kernel"]
    ci, co, g = case["C_in"], case["C_out"], case["groups"]
    if case["op"] == "separable":
        return ((ci, 1, kh, kw), (co, ci, 1, 1))
    if case["op"] == "conv_transpose2d":
        return ((ci, co // g, kh, kw),)
    return ((co, ci // g, kh, kw),)


def macs(case: dict) -> int:
    """Multiply-accumulates, exactly as the suite's notes define them.

    conv: ``N * C_out * H_out * W_out * (C_in/groups) * kh * kw``;
    transposed (counted from the input size): ``N * C_in * H * W * (C_out/groups) * kh * kw``;
    separable: its depthwise stage (``N * C_in * H_out * W_out * kh * kw``) plus its
    pointwise stage (``N * C_out * H_out * W_out * C_in``).
    """
    n, ci, co, g = case["N"], case["C_in"], case["C_out"], case["groups"]
    kh, kw = case["kernel"]
    if case["op"] == "conv_transpose2d":
        return n * ci * case["H"] * case["W"] * (co // g) * kh * kw
    ho, wo = output_hw(case)
    if case["op"] == "separable":
        return n * ci * ho * wo * kh * kw + n * co * ho * wo * ci
    return n * co * ho * wo * (ci // g) * kh * kw


def flops(case: dict) -> int:
    """Floating-point operations: two per MAC."""
    return 2 * macs(case)


def geomean(values: Iterable[float]) -> float:
    """Geometric mean of positive numbers; NaN for an empty input."""
    vals = [float(v) for v in values]
    if not vals:
        return math.nan
    if any(v <= 0 for v in vals):
        raise ValueError(f"geomean needs positive values, got {vals}")
    return math.exp(sum(math.log(v) for v in vals) / len(vals))
