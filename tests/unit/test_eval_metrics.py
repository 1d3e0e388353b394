"""The evaluation metrics on hand-made cases, and the report renderers on a hand-made summary."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from sagerag.evaluation import metrics
from sagerag.evaluation.report import build_report, write_csv, write_json
from sagerag.evaluation.runner import EvalConfig, summarize


def test_tokens_follow_squad_normalisation() -> None:
    assert metrics.tokens("The Model's output, an ARRAY!") == ["model", "s", "output", "array"]


def test_token_f1() -> None:
    assert metrics.token_f1("spot training saves cost", "spot training saves cost") == 1.0
    assert metrics.token_f1("", "") == 1.0
    assert metrics.token_f1("anything", "") == 0.0
    assert metrics.token_f1("red apple", "green pear") == 0.0
    # 2 common tokens, precision 2/3, recall 2/4 -> F1 = 4/7
    assert metrics.token_f1("spot training helps", "spot training saves money") == pytest.approx(4 / 7)


def test_token_precision_and_support() -> None:
    passage = "Managed Spot Training can be used with all instances supported in SageMaker."
    assert metrics.token_precision("all instances supported", passage) == 1.0
    assert metrics.token_precision("GPU instances only", passage) == pytest.approx(1 / 3)
    assert metrics.token_precision("", passage) == 0.0
    assert metrics.supported_by("all instances", [passage])
    assert not metrics.supported_by("GPU instances only", [passage])
    assert metrics.supported_by("GPU instances only", ["only GPU", passage])  # the best gold passage counts
    assert not metrics.supported_by("anything", [])


def test_recall_and_mrr() -> None:
    retrieved = [[3, 1, 2], [5, 6, 7], [9, 8, 4]]
    gold = [{1}, {4, 5}, {0}]
    assert metrics.recall_at_k(retrieved, gold, 1) == pytest.approx(1 / 3)
    assert metrics.recall_at_k(retrieved, gold, 2) == pytest.approx(2 / 3)
    assert metrics.mean_reciprocal_rank(retrieved, gold) == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert metrics.recall_at_k([], [], 5) is None
    assert metrics.mean_reciprocal_rank([], []) is None


def test_rates_and_percentiles() -> None:
    assert metrics.rate([True, False, False, True]) == 0.5
    assert metrics.rate([]) is None
    assert metrics.mean([1.0, 2.0]) == 1.5
    values = [4.0, 1.0, 3.0, 2.0]
    assert metrics.percentile(values, 50) == 2.5
    assert metrics.percentile(values, 0) == 1.0
    assert metrics.percentile(values, 100) == 4.0
    assert metrics.percentile(list(map(float, range(1, 101))), 95) == pytest.approx(95.05)
    assert metrics.percentile([], 50) is None
    with pytest.raises(ValueError):
        metrics.percentile(values, 101)


def _record(scope: str, gold: list[int], retrieved: list[int], abstained: bool, **more: object) -> dict:
    return {
        "scope": scope,
        "gold": gold,
        "retrieved": retrieved,
        "abstained": abstained,
        "latency_s": 1.0,
        **more,
    }


def test_summarize_and_report_files(tmp_path: Path) -> None:
    records = [
        _record("in", [0], [0, 1, 2, 3, 4], False, f1=0.5, gold_precision=0.9),
        _record("in", [7], [1, 2, 3, 4, 5], True, f1=0.0),
        _record("out", [], [3, 4, 5, 6, 7], True),
        _record("out", [], [3, 4, 5, 6, 7], False),
    ]
    summary = summarize(records)
    assert summary["recall@1"] == 0.5 and summary["recall@5"] == 0.5 and summary["mrr"] == 0.5
    assert summary["token_f1"] == 0.25
    assert summary["supported"] == 1.0  # only answered in-scope questions are judged
    assert summary["oos_refused"] == 0.5 and summary["in_scope_refused"] == 0.5
    assert summary["latency_p50_s"] == 1.0
    assert summary["counts"]["answered_in_scope"] == 1

    configs = [EvalConfig(prompt="default"), EvalConfig(prompt="prompts/strict.txt", generate=False)]
    assert configs[1].name == "strict" and configs[0].key != configs[1].key
    report = build_report(configs, {configs[0].key: records}, questions="q.jsonl")
    assert report["configs"][1]["metrics"]["recall@1"] is None  # no records: nothing measured, not 0
    write_json(report, tmp_path / "r.json")
    write_csv(report, tmp_path / "r.csv")
    assert json.loads((tmp_path / "r.json").read_text())["configs"][0]["metrics"]["mrr"] == 0.5
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [r["name"] for r in rows] == ["default", "strict"] and rows[0]["recall@5"] == "0.5"
