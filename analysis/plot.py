"""Charts of a plan (``--plot FILE.png``); matplotlib is an optional extra.

* :func:`network_plot`: per-layer MACs and parameters as bars (log scale) and the
  receptive field's growth as a line on a second axis: a network's cost profile at a
  glance.
* :func:`compare_plot`: per layer, the separable/standard ratio in theory (MACs) and,
  when measured, in time.

Both take the numbers-only records of :mod:`analysis.formatting`, never text.
"""

from __future__ import annotations

from typing import Any, Dict

from .errors import SpecError


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SpecError("", "plot", "--plot needs matplotlib (pip install matplotlib, or "
                                    "install cconv with the [plot] extra)") from None
    return plt


def _save(fig, path: str) -> None:
    try:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    except (OSError, ValueError) as exc:
        raise SpecError("", "plot", f"cannot write {path}: {exc}") from None


def network_plot(record: Dict[str, Any], path: str) -> None:
    """Bars of MACs and parameters per layer and the receptive-field size as a line."""
    plt = _pyplot()
    layers = [r for r in record["layers"] if r["macs"]] or record["layers"]
    x = range(len(layers))
    fig, ax = plt.subplots(figsize=(max(8, 0.22 * len(layers)), 4.5))
    width = 0.4
    ax.bar([i - width / 2 for i in x], [max(r["macs"], 0) for r in layers], width,
           label="MACs", color="tab:blue")
    ax.bar([i + width / 2 for i in x], [max(r["params"], 0) for r in layers], width,
           label="parameters", color="tab:orange")
    ax.set_yscale("symlog")
    ax.set_ylabel("count (log)")
    ax.set_xticks(list(x))
    ax.set_xticklabels([r["name"] for r in layers], rotation=90, fontsize=6)
    rf_ax = ax.twinx()
    rf_ax.plot(list(x), [float(max(r["rf_size"])) for r in layers], color="tab:green",
               marker=".", label="receptive field")
    rf_ax.set_ylabel("receptive field (input cells)")
    handles = ax.get_legend_handles_labels()
    rf_handles = rf_ax.get_legend_handles_labels()
    ax.legend(handles[0] + rf_handles[0], handles[1] + rf_handles[1], loc="upper left")
    ax.set_title(f"{record['network']}: cost and receptive field per layer "
                 f"(layers with MACs)")
    _save(fig, path)
    plt.close(fig)


def compare_plot(record: Dict[str, Any], path: str) -> None:
    """Separable/standard ratios per layer: MACs, theory, and measured time if present."""
    plt = _pyplot()
    layers = record["layers"]
    if not layers:
        raise SpecError("", "plot", "no eligible convolution to compare")
    x = list(range(len(layers)))
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(layers)), 4))
    ax.plot(x, [r["theoretical_ratio"] for r in layers], "o-", label="theory 1/C_out + 1/k²")
    ax.plot(x, [r["param_ratio"] for r in layers], "s--", label="parameters")
    measured = [r.get("measured_ratio") for r in layers]
    if any(m is not None for m in measured):
        ax.plot(x, [float("nan") if m is None else m for m in measured], "^-",
                label="measured time (cconv)")
    ax.set_xticks(x)
    ax.set_xticklabels([r["name"] for r in layers], rotation=90, fontsize=7)
    ax.set_ylabel("separable / standard")
    ax.axhline(1.0, color="grey", linewidth=0.5)
    ax.legend()
    ax.set_title(f"{record['network']}: depthwise-separable vs standard")
    _save(fig, path)
    plt.close(fig)
