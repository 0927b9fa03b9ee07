#!/usr/bin/env python
"""Benchmark cconv against PyTorch and a NumPy im2col reference on the suite's real layers.

Usage (the real run belongs on a quiet machine; see ../shared/PERF-NOTES.md)::

    python scripts/bench.py                          # all cases, float32, 1 and 2 threads
    python scripts/bench.py --cases 'mbv1_*,r50' --ops depthwise --rounds 5
    python scripts/bench.py --dtype float64 --cases gemm_pw_256_28 --plot ratios.png

How it measures (the rules of PERF-NOTES.md):

* Every contender runs in every round, interleaved (A, B, C, A, B, C, ...; the
  starting contender rotates each round), so load from other tenants hits all of
  them alike. Each sample repeats the call until it lasts ``--min-time``; the table
  shows the best and the median sample, the ratio (torch time / cconv time) comes
  from the best samples, and the JSON also has the median ratio. A case's rounds run
  back to back, so a burst of load lasting a few seconds can cover all of them:
  ``--passes K`` sweeps the whole suite K times and pools each case's samples.
* Equal thread counts: ``torch.set_num_threads(n)``, cconv ``n_threads=n`` and
  numpy's BLAS limited to ``n`` (through threadpoolctl when installed).
* glibc's dynamic mmap threshold can turn PyTorch's per-call output allocation into
  page faults; run as a script, this file re-executes itself with
  ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` set (``--no-reexec`` to
  opt out; the JSON records what was in effect).
* cconv writes into a preallocated ``out=`` array, so its time excludes allocating
  the result while PyTorch's includes it (F.conv2d has no ``out=``); ``--no-out``
  makes cconv allocate too.
* Before timing, each cconv result (and the NumPy reference's) is compared with
  PyTorch's: ``max|a - ref| / max|ref|`` must be below 1e-4 (float32) or 1e-10
  (float64). A mismatch marks the row FAILED, cconv is not timed there, and the
  exit status is 1.

GFLOP/s counts 2 FLOPs per MAC (MACs as the suite's notes define them, transposed
convolutions counted from the input size) and is reported for cconv (or for
PyTorch when cconv is not importable), with its share of the nominal peak.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchcases  # noqa: E402
import numpy_ref  # noqa: E402

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "1073741824"}
REEXEC_GUARD = "CCONV_BENCH_REEXECED"

# PERF-NOTES.md: Zen 4 at ~3.4 GHz, 32 FP32 FLOP/cycle per core; 210 measured on both cores.
# Only a fallback: "% peak" uses the peak measured on the machine at hand (measure_fma_peak)
# whenever cconv is importable, since machines differ by 2x (a Xeon with two 512-bit FMA
# units per core measured 247 FP32 GFLOP/s per core).
NOMINAL_PEAK_GFLOPS = {"float32": {1: 108.0, 2: 210.0}, "float64": {1: 55.0, 2: 110.0}}
NOMINAL_PER_CORE = {"float32": 108.0, "float64": 55.0}

TOLERANCE = {"float32": 1e-4, "float64": 1e-10}
CONTENDER_ORDER = ("cconv", "torch", "numpy")
DEFAULT_NUMPY_MAX_MACS = 500_000_000


# --------------------------------------------------------------------------- environment

def reexec_env(environ: Dict[str, str]) -> Optional[Dict[str, str]]:
    """The environment to re-execute with, or None when no re-exec is needed.

    Values the user already set are kept; a guard variable prevents a loop.
    """
    if environ.get(REEXEC_GUARD) or all(k in environ for k in MALLOC_ENV):
        return None
    env = dict(environ)
    for k, v in MALLOC_ENV.items():
        env.setdefault(k, v)
    env[REEXEC_GUARD] = "1"
    return env


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def nominal_peak(dtype: str, threads: int) -> float:
    """Nominal peak GFLOP/s for ``threads`` cores (PERF-NOTES.md figures)."""
    table = NOMINAL_PEAK_GFLOPS[dtype]
    return table.get(threads, NOMINAL_PER_CORE[dtype] * threads)


def import_optional(name: str):
    """Import a module, or return (None, reason) when it is absent or not built."""
    try:
        module = __import__(name)
    except Exception as exc:  # a half-built cconv raises ImportError or worse
        return None, f"{type(exc).__name__}: {exc}"
    return module, None


class ThreadControl:
    """Set the thread count of every contender at once."""

    def __init__(self, torch_mod):
        self.torch = torch_mod
        self.numpy_note = "numpy BLAS threads limited by threadpoolctl"
        try:
            import threadpoolctl
            self._tpc = threadpoolctl
        except ImportError:
            self._tpc = None
            self.numpy_note = "threadpoolctl not installed: numpy BLAS threads not controlled"
        self._limit = None

    def set(self, n: int) -> None:
        # threadpoolctl first: restoring its earlier limit also reset torch's intra-op
        # thread count (torch.get_num_threads() read 1 after set(1), set(2)), and until
        # stop 9 every "2-thread" torch row of this benchmark ran on one thread.
        if self._tpc is not None:
            if self._limit is not None:
                self._limit.restore_original_limits()
            self._limit = self._tpc.threadpool_limits(limits=n, user_api="blas")
        if self.torch is not None:
            self.torch.set_num_threads(n)
            got = self.torch.get_num_threads()
            if got != n:
                raise RuntimeError(f"torch runs {got} threads after set_num_threads({n})")

    def restore(self) -> None:
        if self._limit is not None:
            self._limit.restore_original_limits()
            self._limit = None


# --------------------------------------------------------------------------- problem setup

def make_arrays(case: dict, dtype: str, seed: int = 0) -> dict:
    """Random input and weights for ``case`` (weights scaled by 1/sqrt(fan-in))."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(benchcases.input_shape(case), dtype=np.float64).astype(dtype)
    weights = []
    for shape in benchcases.weight_shapes(case):
        fan_in = int(np.prod(shape[1:])) if case["op"] != "conv_transpose2d" else shape[0]
        w = rng.standard_normal(shape, dtype=np.float64) / math.sqrt(fan_in)
        weights.append(np.ascontiguousarray(w.astype(dtype)))
    return {"x": x, "weights": weights}


def make_calls(case: dict, arrays: dict, threads: int, contenders: Dict[str, object],
               use_out: bool = True) -> Dict[str, Callable[[], object]]:
    """One zero-argument callable per available contender, all computing ``case``.

    Each returns its result (a numpy array, or a torch tensor for torch).
    """
    op = case["op"]
    s, p, d = (tuple(case[f]) for f in ("stride", "padding", "dilation"))
    g = case["groups"]
    x, ws = arrays["x"], arrays["weights"]
    calls: Dict[str, Callable[[], object]] = {}

    cc = contenders.get("cconv")
    if cc is not None:
        out = np.empty(benchcases.output_shape(case), dtype=x.dtype) if use_out else None
        kw = {"out": out, "n_threads": threads}
        if op in ("conv2d", "dilated"):
            calls["cconv"] = lambda: cc.conv2d(x, ws[0], None, s, p, d, g, **kw)
        elif op == "pointwise":
            calls["cconv"] = lambda: cc.pointwise_conv2d(x, ws[0], None, s, **kw)
        elif op == "depthwise":
            calls["cconv"] = lambda: cc.depthwise_conv2d(x, ws[0], None, s, p, d, **kw)
        elif op == "separable":
            calls["cconv"] = lambda: cc.separable_conv2d(x, ws[0], ws[1], None, None, s, p, d, **kw)
        elif op == "conv_transpose2d":
            op_ = tuple(case["output_padding"])
            calls["cconv"] = lambda: cc.conv_transpose2d(x, ws[0], None, s, p, op_, g, d, **kw)
        calls["cconv"].out = out

    torch = contenders.get("torch")
    if torch is not None:
        F = torch.nn.functional
        tx, tws = torch.from_numpy(x), [torch.from_numpy(w) for w in ws]
        if op == "separable":
            c_in = case["C_in"]
            calls["torch"] = lambda: F.conv2d(F.conv2d(tx, tws[0], None, s, p, d, c_in), tws[1])
        elif op == "conv_transpose2d":
            op_ = tuple(case["output_padding"])
            calls["torch"] = lambda: F.conv_transpose2d(tx, tws[0], None, s, p, op_, g, d)
        else:
            calls["torch"] = lambda: F.conv2d(tx, tws[0], None, s, p, d, g)

    if contenders.get("numpy") is not None:
        if op == "separable":
            calls["numpy"] = lambda: numpy_ref.separable_conv2d(x, ws[0], ws[1], s, p, d)
        elif op == "conv_transpose2d":
            op_ = tuple(case["output_padding"])
            calls["numpy"] = lambda: numpy_ref.conv_transpose2d(x, ws[0], s, p, op_, g, d)
        else:
            calls["numpy"] = lambda: numpy_ref.conv2d(x, ws[0], s, p, d, g)
    return calls


def as_numpy(result) -> np.ndarray:
    return result.numpy() if hasattr(result, "numpy") else np.asarray(result)


def relative_error(result: np.ndarray, reference: np.ndarray) -> float:
    """``max|result - reference| / max|reference|`` (inf on a shape mismatch)."""
    if result.shape != reference.shape:
        return math.inf
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    diff = float(np.max(np.abs(result.astype(np.float64) - reference))) if reference.size else 0.0
    if math.isnan(diff):
        return math.inf
    return diff / scale if scale > 0 else diff


# --------------------------------------------------------------------------- timing

def time_interleaved(calls: Dict[str, Callable[[], object]], rounds: int, min_time: float,
                     on_round: Optional[Callable[[int], None]] = None) -> Dict[str, List[float]]:
    """Seconds per call: one sample per contender per round, contenders interleaved.

    Each contender is warmed up and calibrated once, so that one sample (a loop of
    ``reps`` calls) lasts at least ``min_time``; the starting contender rotates each
    round so none always runs right after the same neighbour.
    """
    perf = time.perf_counter
    names = list(calls)
    reps = {}
    for name in names:
        calls[name]()                       # warm-up: caches, lazy allocation, first-call setup
        t0 = perf()
        calls[name]()
        once = perf() - t0
        reps[name] = max(1, math.ceil(min_time / max(once, 1e-7)))
    samples: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(rounds):
        if on_round is not None:
            on_round(r)
        k = r % len(names) if names else 0
        for name in names[k:] + names[:k]:
            fn, n = calls[name], reps[name]
            t0 = perf()
            for _ in range(n):
                fn()
            samples[name].append((perf() - t0) / n)
    return samples


def measure_fma_peak(dtype: str, threads: int) -> Optional[float]:
    """The machine's FMA throughput in GFLOP/s (cconv's register-only probe), or None."""
    try:
        from cconv import _runtime
    except ImportError:
        return None
    return _runtime.fma_peak_gflops(dtype == "float32", threads)


def measure_peak(dtype: str, threads: int, contenders: Dict[str, object], size: int = 1024,
                 min_time: float = 0.15) -> Optional[float]:
    """Best GFLOP/s of a square ``size`` matmul (torch when present, else numpy)."""
    torch = contenders.get("torch")
    rng = np.random.default_rng(1)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        fn = lambda: torch.mm(ta, tb)  # noqa: E731
    else:
        fn = lambda: a @ b  # noqa: E731
    fn()
    best, spent = math.inf, 0.0
    while spent < min_time or best == math.inf:
        t0 = time.perf_counter()
        fn()
        t = time.perf_counter() - t0
        best, spent = min(best, t), spent + t
    return 2.0 * size ** 3 / best / 1e9


# --------------------------------------------------------------------------- running

class Progress:
    """One self-overwriting status line on a terminal, plain lines otherwise."""

    def __init__(self, stream=sys.stderr, enabled: bool = True):
        self.stream, self.enabled = stream, enabled
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self._width = 0
        self._last_plain = None

    def update(self, text: str, plain_key=None) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
            self.stream.flush()
        elif plain_key != self._last_plain:   # one line per case and thread count in logs
            self._last_plain = plain_key
            self.stream.write(text + "\n")
            self.stream.flush()

    def done(self) -> None:
        if self.enabled and self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()


def run_case(case: dict, arrays: dict, threads: int, contenders: Dict[str, object],
             args, progress: Progress, label: str, peak_gflops: Optional[float] = None) -> dict:
    """Check, then time, every contender on one case at one thread count: one result row.

    ``peak_gflops`` is the peak "% peak" refers to (default: the nominal one)."""
    dtype = args.dtype
    macs = benchcases.macs(case)
    row = {"case": case["name"], "op": case["op"], "threads": threads, "macs": macs,
           "status": "ok", "messages": [], "rel_err": {}, "timings_ms": {}}
    active = dict(contenders)
    numpy_over_cap = active.get("numpy") is not None and macs > args.numpy_max_macs
    if numpy_over_cap and active.get("torch") is not None:
        active["numpy"] = None                # not needed as the reference either
    calls = make_calls(case, arrays, threads, active, use_out=not args.no_out)

    progress.update(f"{label} {case['name']} x{threads}: checking", (case["name"], threads))
    reference = None
    if "torch" in calls:
        reference = as_numpy(calls["torch"]())
    elif "numpy" in calls:
        reference = as_numpy(calls["numpy"]())
    tol = TOLERANCE[dtype]
    for name in ("cconv", "numpy"):
        if name not in calls or reference is None or (name == "numpy" and "torch" not in calls):
            continue
        try:
            result = calls[name]()
            if result is None:                # an API that only fills out=
                result = getattr(calls[name], "out", None)
            err = relative_error(as_numpy(result), reference)
        except Exception as exc:  # a missing or broken kernel must not stop the run
            row["status"] = "ERROR"
            row["messages"].append(f"{name} raised {type(exc).__name__}: {exc}")
            del calls[name]
            continue
        row["rel_err"][name] = err if math.isfinite(err) else None
        if not err <= tol:
            row["status"] = "FAILED"
            row["messages"].append(f"{name} differs from the reference: rel err {err:.3g} > {tol:g}")
            del calls[name]

    if numpy_over_cap:
        calls.pop("numpy", None)              # (it may have served as the reference)
        row["messages"].append(f"numpy skipped: {macs:,} MACs > --numpy-max-macs")
    if "cconv" in calls and "cconv" not in row["rel_err"]:
        row["messages"].append("cconv unchecked: no reference (neither torch nor numpy)")

    def on_round(r):
        progress.update(f"{label} {case['name']} x{threads}: round {r + 1}/{args.rounds}",
                        (case["name"], threads))

    samples = time_interleaved(calls, args.rounds, args.min_time, on_round)
    for name, secs in samples.items():
        row["timings_ms"][name] = {"samples": [1e3 * t for t in secs]}
    row["peak_gflops"] = peak_gflops or nominal_peak(dtype, threads)
    return with_statistics(row)


def with_statistics(row: dict) -> dict:
    """Fill in a row's best / median times, GFLOP/s, % of peak and ratios from its
    samples (``timings_ms[name]["samples"]``)."""
    t = row["timings_ms"]
    for name in t:
        ms = t[name]["samples"]
        t[name].update(best=min(ms), median=statistics.median(ms))
    row["gflops"] = {name: 2.0 * row["macs"] / (t[name]["best"] / 1e3) / 1e9 for name in t}
    row["pct_peak"] = {name: 100.0 * g / row["peak_gflops"] for name, g in row["gflops"].items()}
    if "cconv" in t and "torch" in t:
        row["ratio_best"] = t["torch"]["best"] / t["cconv"]["best"]
        row["ratio_median"] = t["torch"]["median"] / t["cconv"]["median"]
    return row


def merge_passes(first: dict, later: dict) -> dict:
    """One row from two passes over the same case and thread count: the samples of both
    (so best and median are over every round of every pass); a failure in either stays."""
    row = dict(first, timings_ms={}, messages=first["messages"] + [
        m for m in later["messages"] if m not in first["messages"]])
    if later["status"] != "ok" and first["status"] == "ok":
        row["status"] = later["status"]
    for name in first["timings_ms"]:
        if name in later["timings_ms"]:
            row["timings_ms"][name] = {"samples": first["timings_ms"][name]["samples"]
                                       + later["timings_ms"][name]["samples"]}
    for key in ("ratio_best", "ratio_median"):
        row.pop(key, None)
    return with_statistics(row)


def summarize(rows: Sequence[dict]) -> List[dict]:
    """Geometric-mean ratios per (threads, op family) and per thread count overall."""
    out = []
    for n in sorted({r["threads"] for r in rows}):
        at_n = [r for r in rows if r["threads"] == n and "ratio_best" in r]
        families = [op for op in benchcases.OPS if any(r["op"] == op for r in at_n)]
        for op in families + ["overall"]:
            sel = [r for r in at_n if op == "overall" or r["op"] == op]
            if not sel:
                continue
            out.append({"threads": n, "op": op, "cases": len(sel),
                        "geomean_ratio_best": benchcases.geomean(r["ratio_best"] for r in sel),
                        "geomean_ratio_median": benchcases.geomean(r["ratio_median"] for r in sel)})
    return out


# --------------------------------------------------------------------------- output

def _si(n: float) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.1f}{suffix}"
    return str(int(n))


def _num(v: Optional[float]) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if v >= 10 else f"{v:.3g}"


def _pct(v: Optional[float]) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}%" if v >= 10 else f"{v:.2g}%"


def _ms(t: Optional[dict]) -> str:
    if t is None:
        return "-"
    fmt = (lambda v: f"{v:.4g}") if t["best"] < 10 else (lambda v: f"{v:.1f}")
    return f"{fmt(t['best'])} / {fmt(t['median'])}"


def render_table(rows: Sequence[dict], summary: Sequence[dict], contenders: Sequence[str],
                 peaks: Sequence[dict], dtype: str) -> str:
    """The whole printed report: results table, geometric means, peak figures.

    Numbers stay numbers until here; this is the only place that formats them.
    """
    from tabulate import tabulate

    primary = next((n for n in CONTENDER_ORDER if n in contenders), "-")
    headers = (["case", "op", "thr", "MACs"] + [f"{c} ms best / med" for c in contenders]
               + [f"GFLOP/s ({primary})", "% peak", "torch/cconv", "status"])
    body = []
    for r in rows:
        body.append([r["case"], r["op"], r["threads"], _si(r["macs"])]
                    + [_ms(r["timings_ms"].get(c)) for c in contenders]
                    + [_num(r["gflops"].get(primary)), _pct(r["pct_peak"].get(primary)),
                       f"{r['ratio_best']:.2f}x" if "ratio_best" in r else "-",
                       r["status"] if r["status"] == "ok" else f"{r['status']}: {'; '.join(r['messages'])}"])
    align = ["left", "left"] + ["right"] * (len(headers) - 3) + ["left"]
    parts = [tabulate(body, headers=headers, tablefmt="github", disable_numparse=True,
                      colalign=align)]
    skipped = [r["case"] for r in rows if any(m.startswith("numpy skipped") for m in r["messages"])]
    if skipped:
        parts.append(f"numpy reference skipped (over --numpy-max-macs) for: "
                     f"{', '.join(dict.fromkeys(skipped))}")
    unchecked = [r["case"] for r in rows if any(m.startswith("cconv unchecked") for m in r["messages"])]
    if unchecked:
        parts.append(f"cconv results NOT checked (no torch, --no-numpy) for: "
                     f"{', '.join(dict.fromkeys(unchecked))}")
    if summary:
        parts.append(tabulate([[s["threads"], s["op"], s["cases"], f"{s['geomean_ratio_best']:.2f}x",
                                f"{s['geomean_ratio_median']:.2f}x"] for s in summary],
                              headers=["thr", "op family", "cases", "geomean torch/cconv (best)",
                                       "(median)"], tablefmt="github", disable_numparse=True))
    if peaks:
        def num(v):
            return "-" if v is None else f"{v:.1f}"
        parts.append(tabulate([[p["threads"], num(p.get("fma_gflops")),
                                f"{p['nominal_gflops']:.0f}", num(p["measured_gflops"]),
                                p["measured_with"]] for p in peaks],
                              headers=["thr", f"measured {dtype} FMA peak GFLOP/s (% peak)",
                                       "nominal (PERF-NOTES; used if no probe)",
                                       "measured matmul GFLOP/s", "measured with"],
                              tablefmt="github", disable_numparse=True))
    return "\n\n".join(parts)


def write_plot(path: str, rows: Sequence[dict], dtype: str) -> Optional[str]:
    """Bar chart of torch/cconv ratios (log scale); returns an error message or None."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ("--plot needs matplotlib, which is not installed "
                "(pip install matplotlib); no chart written")
    rated = [r for r in rows if "ratio_best" in r]
    if not rated:
        return "--plot: no row has a torch/cconv ratio (needs both cconv and torch); no chart written"
    cases = list(dict.fromkeys(r["case"] for r in rated))
    threads = sorted({r["threads"] for r in rated})
    width = 0.8 / len(threads)
    all_ratios = []
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(cases) + 2), 4.5))
    for i, n in enumerate(threads):
        xs, ys = [], []
        for j, c in enumerate(cases):
            r = next((r for r in rated if r["case"] == c and r["threads"] == n), None)
            if r is not None:
                xs.append(j + (i - (len(threads) - 1) / 2) * width)
                ys.append(r["ratio_best"])
        # bars grow from 1 (parity): up when cconv is faster, down when slower
        ax.bar(xs, [y - 1.0 for y in ys], bottom=1.0, width=width,
               label=f"{n} thread{'s' if n > 1 else ''}")
        all_ratios.extend(ys)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    span = max(1.5, 1.25 * max(max(all_ratios), 1.0 / min(all_ratios)))
    ax.set_ylim(1.0 / span, span)
    candidates = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
    if span < 2.5:
        candidates += (0.67, 0.8, 1.25, 1.5)
    ticks = sorted(t for t in candidates if 1.0 / span <= t <= span)
    ax.set_yticks(ticks)
    ax.set_yticklabels([f"{t:g}x" for t in ticks])
    ax.minorticks_off()
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels(cases, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("torch time / cconv time (best of rounds)")
    ax.set_title(f"cconv vs PyTorch, {dtype} (above 1: cconv faster)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


# --------------------------------------------------------------------------- CLI

def _csv(text: str) -> List[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _threads(text: str) -> List[int]:
    try:
        vals = [int(t) for t in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--threads takes positive integers like 1,2, got {text!r}")
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"--threads takes positive integers like 1,2, got {text!r}")
    return vals


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="bench.py", description="Benchmark cconv against PyTorch and a NumPy im2col "
        "reference, interleaved round by round, on the cases of scripts/bench_suite.json.",
        epilog="Run on a quiet machine. Float64 runs of the large cases are slow "
        "(PyTorch has no fast float64 path): pick cases with --cases.")
    ap.add_argument("--cases", type=_csv, default=None, metavar="PATTERNS",
                    help="comma-separated case-name filters: a glob when it has * ? [, "
                         "else a substring (default: all cases)")
    ap.add_argument("--ops", type=_csv, default=None, metavar="OPS",
                    help=f"comma-separated op families to keep: {', '.join(benchcases.OPS)}")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--threads", type=_threads, default=[1, 2], metavar="N[,N...]",
                    help="thread counts, each used for every contender (default: 1,2)")
    ap.add_argument("--rounds", type=int, default=7,
                    help="interleaved rounds; each gives one sample per contender (default: 7)")
    ap.add_argument("--passes", type=int, default=1,
                    help="sweeps over all cases; a case's rounds from every pass are pooled, "
                         "so that a burst of another tenant's load over one case's rounds "
                         "does not decide its numbers (default: 1)")
    ap.add_argument("--min-time", type=float, default=0.05, metavar="SECONDS",
                    help="minimum duration of one sample; fast calls are repeated (default: 0.05)")
    ap.add_argument("--no-numpy", action="store_true", help="leave out the NumPy im2col reference")
    ap.add_argument("--numpy-max-macs", type=float, default=DEFAULT_NUMPY_MAX_MACS, metavar="MACS",
                    help="skip the NumPy reference on cases with more MACs than this "
                         f"(default: {DEFAULT_NUMPY_MAX_MACS:.0e})")
    ap.add_argument("--no-out", action="store_true",
                    help="let cconv allocate its output like PyTorch does (default: out= preallocated)")
    ap.add_argument("--json", default="bench-results.json", metavar="PATH",
                    help="write the results as JSON here (default: bench-results.json; '' to skip)")
    ap.add_argument("--plot", default=None, metavar="PATH",
                    help="write a PNG bar chart of the torch/cconv ratios (needs matplotlib)")
    ap.add_argument("--no-peak", action="store_true",
                    help="skip measuring the machine's matmul peak")
    ap.add_argument("--suite", default=benchcases.SUITE_PATH, metavar="PATH",
                    help="suite file (default: scripts/bench_suite.json)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default: 0)")
    ap.add_argument("--quiet", action="store_true", help="no progress line")
    ap.add_argument("--no-reexec", action="store_true",
                    help="do not re-execute with the MALLOC_* variables of PERF-NOTES.md set")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.passes < 1:
        ap.error("--passes must be at least 1")
    if args.min_time < 0:
        ap.error("--min-time must be >= 0")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    missing_env = [k for k in MALLOC_ENV if k not in os.environ]
    if missing_env:
        print(f"warning: {', '.join(missing_env)} not set; PyTorch's per-call allocations may "
              "be timed as page faults (see PERF-NOTES.md)", file=sys.stderr)
    try:
        cases = benchcases.select_cases(benchcases.load_suite(args.suite), args.cases, args.ops)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not cases:
        print(f"error: no case matches --cases {args.cases} --ops {args.ops}", file=sys.stderr)
        return 2

    contenders: Dict[str, object] = {}
    notes: Dict[str, str] = {}
    cc, why = import_optional("cconv")
    if cc is not None and not hasattr(cc, "conv2d"):
        where = getattr(cc, "__file__", None) or list(getattr(cc, "__path__", []))
        cc, why = None, f"cconv found at {where} has no conv2d (not built?)"
    contenders["cconv"] = cc
    if why:
        notes["cconv"] = why
        print(f"note: cconv not available ({why}); timing the other contenders only", file=sys.stderr)
    torch, why = import_optional("torch")
    contenders["torch"] = torch
    if why:
        notes["torch"] = why
        print(f"note: torch not available ({why}); no ratios", file=sys.stderr)
    contenders["numpy"] = None if args.no_numpy else np
    present = [c for c in CONTENDER_ORDER if contenders.get(c) is not None]

    threads = ThreadControl(torch)
    progress = Progress(enabled=not args.quiet)
    peaks = []
    rows = []
    try:
        for n in args.threads:
            measured = fma = None
            if not args.no_peak:
                threads.set(n)
                progress.update(f"measuring matmul peak at {n} thread(s)", ("peak", n))
                measured = measure_peak(args.dtype, n, contenders)
                fma = measure_fma_peak(args.dtype, n)
            peaks.append({"threads": n, "nominal_gflops": nominal_peak(args.dtype, n),
                          "fma_gflops": fma,
                          "measured_gflops": measured,
                          "measured_with": "-" if measured is None else
                          f"{'torch.mm' if torch is not None else 'numpy @'} 1024x1024 {args.dtype}"})
        for k in range(args.passes):
            for i, case in enumerate(cases):
                arrays = make_arrays(case, args.dtype, args.seed)
                for j, n in enumerate(args.threads):
                    threads.set(n)
                    peak = next((p["fma_gflops"] for p in peaks if p["threads"] == n), None)
                    label = f"[{i + 1}/{len(cases)}]" + (
                        f" pass {k + 1}/{args.passes}" if args.passes > 1 else "")
                    row = run_case(case, arrays, n, contenders, args, progress, label,
                                   peak_gflops=peak)
                    at = i * len(args.threads) + j
                    if k == 0:
                        rows.append(row)
                    else:
                        rows[at] = merge_passes(rows[at], row)
    finally:
        threads.restore()
        progress.done()

    summary = summarize(rows)
    print(render_table(rows, summary, present, peaks, args.dtype))
    bad = [r for r in rows if r["status"] != "ok"]

    if args.json:
        doc = {
            "meta": {
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "argv": list(sys.argv[1:] if argv is None else argv),
                "dtype": args.dtype, "threads": args.threads, "rounds": args.rounds,
                "passes": args.passes,
                "min_time_s": args.min_time, "cconv_out_preallocated": not args.no_out,
                "contenders": present, "unavailable": notes, "tolerance": TOLERANCE[args.dtype],
                "malloc_env": {k: os.environ.get(k) for k in MALLOC_ENV},
                "numpy_threads": threads.numpy_note,
                "python": sys.version.split()[0], "platform": platform.platform(),
                "processor": cpu_model(), "cpu_count": os.cpu_count(),
                "numpy": np.__version__,
                "torch": getattr(torch, "__version__", None),
                "cconv": getattr(cc, "__version__", None) if cc is not None else None,
                "cconv_file": getattr(cc, "__file__", None) if cc is not None else None,
            },
            "peaks": peaks, "results": rows, "geomean": summary,
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1, allow_nan=False, default=str)
        print(f"\nresults written to {args.json}")
    if args.plot:
        err = write_plot(args.plot, rows, args.dtype)
        print(f"\n{err}" if err else f"chart written to {args.plot}",
              file=sys.stderr if err else sys.stdout)
    if bad:
        print(f"\n{len(bad)} row(s) FAILED or raised: "
              f"{', '.join(sorted({r['case'] for r in bad}))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    _env = reexec_env(os.environ)
    if _env is not None and "--no-reexec" not in sys.argv[1:]:
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:], _env)
    sys.exit(main())
