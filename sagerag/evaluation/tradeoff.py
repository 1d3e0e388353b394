"""The refusal trade-off of a score gate: as the threshold rises, in-scope questions are wrongly refused
and out-of-scope ones rightly refused. Computed from the top retrieval score each result line records
(no re-run needed), so one eval run draws the whole curve for every configuration."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def top_score(record: dict[str, Any], k: int | None = None) -> float | None:
    """The best retrieval score among the first `k` hits of one result line (None: nothing retrieved)."""
    scores = [float(s) for s in (record.get("scores") or [])[:k] if s is not None]
    return max(scores) if scores else None


def refusal_curve(
    records: Sequence[dict[str, Any]], thresholds: Sequence[float] | None = None
) -> list[dict[str, float]]:
    """Per threshold: the share of in-scope questions refused (wrongly) and of out-of-scope ones refused.

    A question with nothing retrieved is refused at every threshold, as the gate does. Thresholds default
    to every distinct top score (the curve's corners), plus one above all of them.
    """
    tops = [(r["scope"], top_score(r)) for r in records]
    inside = [t for scope, t in tops if scope == "in"]
    outside = [t for scope, t in tops if scope == "out"]
    if thresholds is None:
        known = sorted({t for _, t in tops if t is not None})
        thresholds = [*known, (known[-1] + 1e-6) if known else 0.0]

    def refused(values: list[float | None], threshold: float) -> float:
        return sum(v is None or v < threshold for v in values) / len(values) if values else 0.0

    return [
        {"threshold": t, "in_scope_refused": refused(inside, t), "oos_refused": refused(outside, t)}
        for t in thresholds
    ]


def threshold_for(records: Sequence[dict[str, Any]], max_in_scope_refused: float) -> float | None:
    """The highest threshold refusing at most `max_in_scope_refused` of the in-scope questions."""
    ok = [p["threshold"] for p in refusal_curve(records) if p["in_scope_refused"] <= max_in_scope_refused]
    return max(ok) if ok else None
