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
    """Write a PNG: shares (0..1), latency percentiles (s), and (when out-of-scope questions were asked)
    the refusal trade-off curve of each configuration, its gate marked."""
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
    curves = any(entry.get("tradeoff") for entry in entries)
    fig, all_axes = plt.subplots(
        1,
        3 if curves else 2,
        figsize=(20 if curves else 14, 5.5),
        gridspec_kw={"width_ratios": [4, 1.3, 2.2] if curves else [4, 1.3]},
        constrained_layout=True,
    )
    axes = all_axes[:2]
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
    if curves:
        _plot_tradeoff(all_axes[2], entries)
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


def _plot_tradeoff(ax: Any, entries: list[dict[str, Any]]) -> None:
    """In-scope wrongly refused (x) against out-of-scope refused (y) as the gate's threshold moves."""
    for i, entry in enumerate(entries):
        curve = entry.get("tradeoff") or []
        if not curve:
            continue
        colour = PALETTE[i % len(PALETTE)]
        ax.step(
            [p["in_scope_refused"] for p in curve],
            [p["oos_refused"] for p in curve],
            where="post",
            color=colour,
            label=entry["name"],
        )
        gate = entry.get("min_score")
        if gate is not None:
            at = [p for p in curve if p["threshold"] <= gate]
            if at:
                ax.plot(at[-1]["in_scope_refused"], at[-1]["oos_refused"], "o", color=colour)
    ax.axvline(0.05, color="grey", linestyle=":", linewidth=1)
    ax.set_xlim(0, 0.3)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("in-scope wrongly refused")
    ax.set_ylabel("out-of-scope refused")
    ax.set_title("refusal trade-off (dot: the gate in use)", fontsize=10)
    ax.grid(alpha=0.3)
