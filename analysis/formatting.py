"""The one place numbers become text: tables (tabulate), CSV and JSON.

Every report is first a *record*: a dict of plain numbers and lists, ``{"layers": [...],
"totals": {...}, "notes": [...]}``, built by the ``*_record`` functions below. ``--format
json`` prints the record; every other format renders chosen columns of it through
:func:`render`, the only caller of :func:`tabulate.tabulate` in cconv.

Integers are printed in full with thousands separators, so the printed column sums equal
the printed totals exactly.
"""

from __future__ import annotations

import csv
import io
import json
from fractions import Fraction
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .costs import CONVENTION, LayerCost, Machine, totals as sum_totals
from .errors import SpecError
from .network import Analysis

DEFAULT_FORMAT = "outline"
EXTRA_FORMATS = ("csv", "json")

Column = Tuple[str, str]  # (record key, header)


def available_formats() -> List[str]:
    from tabulate import tabulate_formats
    return sorted(set(tabulate_formats) | set(EXTRA_FORMATS))


def check_format(fmt: str) -> str:
    if fmt not in available_formats():
        raise SpecError("", "format", f"unknown format {fmt!r}; use csv, json or a tabulate "
                                      f"format such as grid, github, simple, plain")
    return fmt


# ---------------------------------------------------------------------------- numbers
def number(value: Any) -> Any:
    """JSON-safe number: Fractions become ints when integral, else floats; tuples lists."""
    if isinstance(value, Fraction):
        return int(value) if value.denominator == 1 else float(value)
    if isinstance(value, (tuple, list)):
        return [number(v) for v in value]
    return value


def cell(value: Any) -> str:
    """Text of one table cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Fraction):
        return f"{value.numerator:,}" if value.denominator == 1 else f"{float(value):.4g}"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and value[0] == value[1] and not isinstance(value[0], (list, tuple)):
            return cell(value[0])
        return "x".join(cell(v).replace(",", "") for v in value)
    return str(value)


def shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(v) for v in shape)


# ---------------------------------------------------------------------------- records
def network_record(analysis: Analysis, costs: List[LayerCost], batch: int, dtype: str,
                   machine: Machine, measured: Optional[Dict[str, Optional[float]]] = None
                   ) -> Dict[str, Any]:
    """Per-layer numbers of a network, its totals and the notes printed under the table."""
    layers = []
    for row, cost in zip(analysis.rows, costs):
        rec = {
            "name": row.name, "op": row.op,
            "input_shape": [batch] + list(row.input_shape),
            "output_shape": [batch] + list(row.output_shape),
            "params": cost.params, "weights": cost.weights, "bias": cost.bias,
            "other_params": cost.other_params,
            "macs": cost.macs, "flops": cost.flops, "bias_flops": cost.bias_flops,
            "input_bytes": cost.input_bytes, "output_bytes": cost.output_bytes,
            "weight_bytes": cost.weight_bytes, "total_bytes": cost.total_bytes,
            "intensity": cost.intensity,
            "roofline_ms": cost.roofline_s * 1e3,
            "rf_size": list(row.rf.pair("size")), "rf_stride": list(row.rf.pair("stride")),
            "rf_padding": list(row.rf.pair("padding")),
            "rf_center": list(row.rf.pair("center")),
        }
        if row.aligned is not None:
            rec["aligned"] = row.aligned
        if measured is not None:
            t = measured.get(row.name)
            rec["measured_ms"] = None if t is None else t * 1e3
            rec["gflops"] = None if not t else cost.flops / t / 1e9
        layers.append(rec)
    tot = sum_totals(costs)
    total = {k: tot[k] for k in ("params", "weights", "bias", "other_params", "macs", "flops",
                                 "bias_flops", "input_bytes", "output_bytes", "weight_bytes",
                                 "total_bytes")}
    total["intensity"] = tot["intensity"]
    total["roofline_ms"] = sum(r["roofline_ms"] for r in layers)
    if measured is not None:
        times = [r["measured_ms"] for r in layers if r["measured_ms"] is not None]
        total["measured_ms"] = sum(times)
        timed_flops = sum(r["flops"] for r in layers if r["measured_ms"] is not None)
        total["gflops"] = timed_flops / total["measured_ms"] / 1e6 if times else None
    notes = [CONVENTION,
             f"batch {batch}, dtype {dtype}; bytes = input(s) + output + parameters; roofline "
             f"at {machine.peak_flops / 1e9:g} GFLOP/s and {machine.bandwidth / 1e9:g} GB/s.",
             "RF = receptive field size / effective stride / effective padding (h, w; one "
             "number when equal)."]
    if analysis.misaligned:
        notes.append("MISALIGNED branches (receptive-field centres or strides differ): "
                     + ", ".join(analysis.misaligned))
    if measured is not None:
        notes.append("measured: cconv on this CPU, best of N; layers cconv does not run "
                     "(pooling, activations, ...) are blank.")
    return {"network": analysis.network.name, "description": analysis.network.description,
            "input_shape": [batch] + list(analysis.input_shape),
            "output_shape": [batch] + list(analysis.output_shape),
            "dtype": dtype, "batch": batch, "layers": layers, "totals": total,
            "misaligned": list(analysis.misaligned), "notes": notes}


NETWORK_COLUMNS: List[Column] = [
    ("name", "layer"), ("op", "op"), ("input_shape", "input"), ("output_shape", "output"),
    ("params", "params"), ("macs", "MACs"), ("flops", "FLOPs"), ("bias_flops", "bias adds"),
    ("output_bytes", "out bytes"), ("total_bytes", "bytes"), ("intensity", "FLOP/B"),
    ("rf_size", "RF"), ("rf_stride", "RF stride"),
    ("rf_padding", "RF pad"), ("roofline_ms", "roofline ms")]
MEASURE_COLUMNS: List[Column] = [("measured_ms", "measured ms"), ("gflops", "GFLOP/s")]

RF_COLUMNS: List[Column] = [
    ("name", "layer"), ("op", "op"), ("output_shape", "output"), ("rf_size", "RF size"),
    ("rf_stride", "eff. stride"), ("rf_padding", "eff. padding"),
    ("rf_center", "unit 0 centre"), ("aligned", "aligned")]


def compare_record(comparisons, totals: Dict[str, int], network: str,
                   measured_totals: Optional[Dict[str, float]] = None) -> Dict[str, Any]:
    """Standard vs separable numbers per eligible layer and for the whole network."""
    layers = []
    for c in comparisons:
        rec = {"name": c.name, "input_shape": list(c.input_shape),
               "output_shape": list(c.output_shape), "kernel": list(c.kernel),
               "standard_params": c.standard_params, "separable_params": c.separable_params,
               "standard_macs": c.standard_macs, "separable_macs": c.separable_macs,
               "mac_ratio": float(c.mac_ratio), "theoretical_ratio": float(c.theoretical),
               "param_ratio": float(c.param_ratio)}
        if c.standard_s is not None or c.separable_s is not None:
            rec["standard_ms"] = None if c.standard_s is None else c.standard_s * 1e3
            rec["separable_ms"] = None if c.separable_s is None else c.separable_s * 1e3
            rec["measured_ratio"] = c.measured_ratio
        layers.append(rec)
    tot = dict(totals)
    tot["mac_ratio"] = tot["separable_macs"] / tot["standard_macs"] if tot["standard_macs"] else None
    tot["param_ratio"] = (tot["separable_params"] / tot["standard_params"]
                          if tot["standard_params"] else None)
    if measured_totals:
        tot.update(measured_totals)
    notes = ["ratio = separable / standard; theory = 1/C_out + 1/(kh*kw) (Howard et al. "
             "2017, sec. 3.1), exact for MACs.",
             "totals: the whole network with every eligible conv (ungrouped, not 1x1, not "
             "transposed) replaced by depthwise k x k + pointwise 1x1."]
    if any("standard_ms" in r for r in layers):
        notes.append("measured: cconv on this CPU, best of N; depthwise is memory-bound, so "
                     "measured ratios exceed MAC ratios.")
    return {"network": network, "layers": layers, "totals": tot, "notes": notes}


COMPARE_COLUMNS: List[Column] = [
    ("name", "layer"), ("input_shape", "input"), ("output_shape", "output"),
    ("kernel", "k"), ("standard_params", "std params"), ("separable_params", "sep params"),
    ("standard_macs", "std MACs"), ("separable_macs", "sep MACs"),
    ("mac_ratio", "MAC ratio"), ("theoretical_ratio", "theory")]
COMPARE_MEASURE_COLUMNS: List[Column] = [
    ("standard_ms", "std ms"), ("separable_ms", "sep ms"), ("measured_ratio", "time ratio")]


# ---------------------------------------------------------------------------- rendering
def render(columns: Sequence[Column], rows: Iterable[Dict[str, Any]], fmt: str,
           total: Optional[Dict[str, Any]] = None, notes: Sequence[str] = ()) -> str:
    """Render ``rows`` (dicts of numbers) as a table in ``fmt`` (tabulate format or csv)."""
    check_format(fmt)
    keys = [k for k, _ in columns]
    headers = [h for _, h in columns]
    body = [[r.get(k) for k in keys] for r in rows]
    if total is not None:
        body.append([total.get(k) for k in keys])
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(keys)
        for line in body:
            writer.writerow([_csv_value(v) for v in line])
        return buf.getvalue().rstrip("\n")
    from tabulate import tabulate  # the single call site of tabulate in cconv
    align = ["right" if _numeric_column([line[i] for line in body]) else "left"
             for i in range(len(keys))]
    shaped = [k.endswith("_shape") for k in keys]
    text = tabulate([[shape_text(v) if (is_shape and v) else cell(v)
                      for v, is_shape in zip(line, shaped)] for line in body],
                    headers, tablefmt=fmt,
                    disable_numparse=True, colalign=align)
    return text + "".join("\n" + n for n in notes)


def _numeric_column(values: Sequence[Any]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(
        isinstance(v, (int, float, Fraction)) and not isinstance(v, bool) for v in present)


def _csv_value(value: Any) -> Any:
    value = number(value)
    if isinstance(value, list):
        return "x".join(str(v) for v in value)
    return "" if value is None else value


def render_record(record: Dict[str, Any], columns: Sequence[Column], fmt: str,
                  total_label: str = "total") -> str:
    """A record as JSON or as a table with a totals row labelled ``total_label``."""
    if fmt == "json":
        return json.dumps(_jsonable(record), indent=2)
    total = None
    if record.get("totals") is not None:
        total = dict(record["totals"])
        total.setdefault("name", total_label)
    return render(columns, record["layers"], fmt, total, record.get("notes", ()))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Fraction):
        return number(value)
    return value


def render_network(record: Dict[str, Any], fmt: str) -> str:
    """The per-layer table (or JSON record) of a network, then its per-type summary."""
    if fmt == "json":
        return json.dumps(_jsonable(record), indent=2)
    text = _render_network_table(record, fmt)
    if record.get("summary") is not None:
        sep = "\n" if fmt == "csv" else "\n\n"
        text += sep + render_summary(record["summary"], fmt, record.get("weights_only", False))
    return text


def _render_network_table(record: Dict[str, Any], fmt: str) -> str:
    columns = list(NETWORK_COLUMNS)
    if "measured_ms" in (record["totals"] or {}):
        columns += MEASURE_COLUMNS
    title = f"{record['network']}: {shape_text(record['input_shape'])} -> " \
            f"{shape_text(record['output_shape'])}"
    text = render_record(record, columns, fmt)
    return text if fmt == "csv" else title + "\n" + text


SUMMARY_COLUMNS: List[Column] = [
    ("kind", "type"), ("layers", "layers"), ("params", "params"),
    ("params_pct", "% params"), ("macs", "MACs"), ("macs_pct", "% MACs")]


def summary_rows(summary: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per-type summary rows with shares as rounded percentages (for display)."""
    return [dict(g, params_pct=round(100 * g["params_share"], 2),
                 macs_pct=round(100 * g["macs_share"], 2)) for g in summary]


def render_summary(summary: List[Dict[str, Any]], fmt: str, weights_only: bool) -> str:
    note = ("params = weights only (no biases, no batch norm)" if weights_only else
            "params include biases and batch norm (see --bn-params)")
    return render(SUMMARY_COLUMNS, summary_rows(summary), fmt, None,
                  [note] if fmt != "csv" else ())


def render_rf(record: Dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(_jsonable(record), indent=2)
    notes = ["RF size in input cells; eff. stride = input cells per output step; unit 0's "
             "field spans [-padding, -padding + size - 1] (Araujo et al., Distill 2019)."]
    if record["misaligned"]:
        notes.append("MISALIGNED branches: " + ", ".join(record["misaligned"]))
    text = render(RF_COLUMNS, record["layers"], fmt, None, notes if fmt != "csv" else ())
    return text


def render_compare(record: Dict[str, Any], fmt: str) -> str:
    columns = list(COMPARE_COLUMNS)
    if any("standard_ms" in r for r in record["layers"]):
        columns += COMPARE_MEASURE_COLUMNS
    if fmt == "json":
        return json.dumps(_jsonable(record), indent=2)
    total = dict(record["totals"])
    total["name"] = f"total ({total['replaced']} replaced)"
    return render(columns, record["layers"], fmt, total,
                  record["notes"] if fmt != "csv" else ())


def render_rows(columns: Sequence[Column], rows: List[Dict[str, Any]], fmt: str,
                notes: Sequence[str] = ()) -> str:
    """Small tables without totals (shape, solve, zoo)."""
    if fmt == "json":
        return json.dumps(_jsonable({"layers": rows} if rows and "name" in rows[0]
                                    else {"rows": rows}), indent=2)
    return render(columns, rows, fmt, None, notes if fmt != "csv" else ())
