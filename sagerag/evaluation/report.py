"""The evaluation report: one dict per configuration, rendered as a rich table, JSON or CSV."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from sagerag.evaluation.runner import EvalConfig, summarize
from sagerag.evaluation.tradeoff import refusal_curve, threshold_for

METRICS: list[tuple[str, str, str]] = [
    ("recall@1", "retrieval recall@1", "rate"),
    ("recall@5", "retrieval recall@5", "rate"),
    ("mrr", "retrieval MRR", "rate"),
    ("token_f1", "answer token F1 (vs reference)", "rate"),
    ("supported", "answers supported by gold", "rate"),
    ("oos_refused", "out-of-scope refused", "rate"),
    ("in_scope_refused", "in-scope wrongly refused", "rate"),
    ("repeated_sentence", "answers with a repeated sentence", "rate"),
    ("ends_mid_sentence", "answers ending mid-sentence", "rate"),
    ("truncated", "answers cut at max_new_tokens", "rate"),
    ("grounding_refused", "grounding abstentions (of gate-passed)", "rate"),
    ("latency_p50_s", "latency p50 (s)", "seconds"),
    ("latency_p95_s", "latency p95 (s)", "seconds"),
]
"""(key, label, kind) in display order; `rate` values are shares in 0..1."""


def build_report(
    configs: Sequence[EvalConfig], records: dict[str, list[dict[str, Any]]], **meta: Any
) -> dict[str, Any]:
    """The whole result: run metadata plus, per configuration, its settings, metrics and counts."""
    entries = []
    for config in configs:
        rows = records.get(config.key, [])
        summary = summarize(rows)
        counts = summary.pop("counts")
        gates = {r.get("min_score") for r in rows}
        entries.append(
            {
                "name": config.name,
                "key": config.key,
                "settings": config.settings(),
                "metrics": summary,
                "counts": counts,
                "min_score": gates.pop() if len(gates) == 1 else None,
                "threshold_5pct": threshold_for(rows, 0.05) if counts["in_scope"] else None,
                "tradeoff": refusal_curve(rows) if counts["in_scope"] and counts["out_of_scope"] else [],
            }
        )
    return {"generated_at": datetime.now(UTC).isoformat(timespec="seconds"), **meta, "configs": entries}


def format_value(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if kind == "rate" else f"{value:.2f}"


def rich_table(report: dict[str, Any]) -> Table:
    """Metrics as rows, configurations side by side as columns."""
    table = Table(title="sagerag eval", title_justify="left")
    table.add_column("metric")
    for entry in report["configs"]:
        table.add_column(entry["name"], justify="right")
    for key, label, kind in METRICS:
        table.add_row(label, *(format_value(e["metrics"][key], kind) for e in report["configs"]))
    for key in ("in_scope", "out_of_scope", "answered_in_scope", "sentences_dropped", "grounding_abstained"):
        table.add_row(key.replace("_", " "), *(str(e["counts"][key]) for e in report["configs"]))
    table.add_row(
        "score gate (min_score)", *(format_value(e.get("min_score"), "rate") for e in report["configs"])
    )
    table.add_row(
        "gate for <=5% wrongly refused",
        *(format_value(e.get("threshold_5pct"), "rate") for e in report["configs"]),
    )
    return table


def write_json(report: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _rounded(value: Any) -> Any:
    """Four decimals: 0.8903, not 0.8902999999999999 (floats keep full precision in the JSON report)."""
    return round(value, 4) if isinstance(value, float) else value


def write_csv(report: dict[str, Any], path: str | Path) -> None:
    """One row per configuration: its name, settings, metrics (empty where not measured) and counts."""
    rows = [
        {
            "name": e["name"],
            **e["settings"],
            **{key: _rounded(value) for key, value in e["metrics"].items()},
            **{f"n_{key}": value for key, value in e["counts"].items()},  # counts, apart from the rates
            "gate": _rounded(e.get("min_score")),
            "threshold_5pct": _rounded(e.get("threshold_5pct")),
        }
        for e in report["configs"]
    ]
    with Path(path).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["name"])
        writer.writeheader()
        writer.writerows(rows)
