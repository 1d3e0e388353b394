"""The comparison chart: grouped bars per metric, one colour per configuration, values on the bars.

matplotlib is imported here only (the `eval` extra), with the Agg backend, so the CLI and servers never
need a display or pay its import time unless a chart is asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sagerag.errors import ConfigurationError
from sagerag.evaluation.report import METRICS

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
"""Colour-blind-friendly enough tab10 colours, one per configuration."""


def plot_report(report: dict[str, Any], path: str | Path) -> Path:
    """Write a PNG: shares (0..1) on the left panel, latency percentiles (s) on the right."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigurationError("--plot needs matplotlib: pip install 'sagerag[eval]'") from exc

    entries = report["configs"]
    panels = [
        ("share of questions", [m for m in METRICS if m[2] == "rate"]),
        ("seconds per question", [m for m in METRICS if m[2] == "seconds"]),
    ]
    fig, axes = plt.subplots(
        1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [4, 1.3]}, constrained_layout=True
    )
    colours = PALETTE
    width = 0.8 / max(1, len(entries))
    for ax, (ylabel, metrics) in zip(axes, panels, strict=True):
        top = 0.0
        for i, entry in enumerate(entries):
            values = [entry["metrics"][key] for key, _, _ in metrics]
            xs = [m + (i - (len(entries) - 1) / 2) * width for m in range(len(metrics))]
            heights = [v if v is not None else 0.0 for v in values]
            bars = ax.bar(xs, heights, width, label=entry["name"], color=colours[i % len(colours)])
            labels = ["n/a" if v is None else (f"{v:.2f}") for v in values]
            ax.bar_label(bars, labels=labels, padding=2, fontsize=8)
            top = max(top, *heights)
        ax.set_xticks(range(len(metrics)), [label for _, label, _ in metrics], rotation=25, ha="right")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1.12 if ylabel.startswith("share") else max(top * 1.18, 0.01))
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, title="configuration", loc="outside lower center", ncols=max(1, len(entries)))
    counts = entries[0]["counts"] if entries else {}
    fig.suptitle(
        f"sagerag eval: {counts.get('in_scope', 0)} in-scope and {counts.get('out_of_scope', 0)} "
        "out-of-scope questions per configuration (higher is better, except wrongly refused and latency)"
    )
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
