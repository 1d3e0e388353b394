"""Retrieval settings (mode, alpha, indexed text, gate) and the refusal trade-off computed from results."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sagerag.config import load_settings
from sagerag.errors import ConfigurationError
from sagerag.evaluation.tradeoff import refusal_curve, threshold_for
from tests.support import empty_config


def test_defaults_are_hybrid_question_answer_with_the_mode_gate(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("SAGERAG_RETRIEVAL", "SAGERAG_ALPHA", "SAGERAG_INDEX_TEXT", "SAGERAG_MIN_SCORE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SAGERAG_CONFIG", str(empty_config(tmp_path)))
    settings = load_settings()
    assert (settings.retrieval, settings.alpha, settings.index_text, settings.min_score) == (
        "hybrid",
        0.7,
        "question+answer",
        None,
    )


def test_retrieval_settings_from_file_and_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "sagerag.toml"
    config.write_text('[retrieval]\nmode = "dense"\nalpha = 0.5\nindex_text = "answer"\nmin_score = 0.42\n')
    settings = load_settings(config)
    assert (settings.retrieval, settings.alpha, settings.index_text, settings.min_score) == (
        "dense",
        0.5,
        "answer",
        0.42,
    )
    monkeypatch.setenv("SAGERAG_ALPHA", "0.9")
    assert load_settings(config).alpha == 0.9


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SAGERAG_RETRIEVAL", "sparse", "'hybrid' or 'dense'"),
        ("SAGERAG_ALPHA", "1.5", "less than or equal to 1"),
        ("SAGERAG_INDEX_TEXT", "question", "'question+answer' or 'answer'"),
        ("SAGERAG_MIN_SCORE", "high", "valid number"),
    ],
)
def test_bad_retrieval_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=rf"{variable}.*{re.escape(expected)}"):
        load_settings()


def _record(scope: str, *scores: float) -> dict[str, object]:
    return {"scope": scope, "scores": list(scores)}


def test_refusal_curve_and_threshold() -> None:
    records = [
        _record("in", 0.8),
        _record("in", 0.5),
        _record("in", 0.3),
        _record("out", 0.4),
        _record("out", 0.1),
    ]
    records.append({"scope": "out", "scores": []})  # nothing retrieved: refused at every threshold
    curve = {p["threshold"]: (p["in_scope_refused"], p["oos_refused"]) for p in refusal_curve(records)}
    assert curve[0.1] == (0.0, 1 / 3)
    assert curve[0.4] == (1 / 3, 2 / 3)
    assert curve[0.8] == (2 / 3, 1.0)
    assert threshold_for(records, 0.34) == 0.5  # refuses only the 0.3 in-scope question
    assert threshold_for(records, 0.0) == 0.3


def test_eval_configurations_compare_retrieval_modes_on_one_store() -> None:
    """Each configuration queries the shared store through its own view (mode, alpha) and its own key."""
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from sagerag.chains import DEFAULT_MIN_SCORES
    from sagerag.evaluation import EvalConfig
    from sagerag.evaluation.runner import Evaluator
    from sagerag.stores import PineconeStore

    store = PineconeStore(object(), DeterministicFakeEmbedding(size=4), alpha=0.7, metric="dotproduct")
    dense = EvalConfig(generate=False, retrieval="dense", index_text="answer")
    hybrid = EvalConfig(generate=False, retrieval="hybrid", alpha=0.5, index_text="question+answer")
    assert (dense.name, hybrid.name) == ("default dense ans", "default hybrid a=0.5 q+a")
    assert dense.key != hybrid.key != EvalConfig(generate=False).key
    dense_eval, hybrid_eval = Evaluator(dense, store), Evaluator(hybrid, store)
    assert (dense_eval.store.alpha, hybrid_eval.store.alpha, store.alpha) == (1.0, 0.5, 0.7)
    assert (dense_eval.min_score, hybrid_eval.min_score) == (
        DEFAULT_MIN_SCORES["dense"],
        DEFAULT_MIN_SCORES["hybrid"],
    )
    assert Evaluator(EvalConfig(generate=False, min_score=0.5), store).min_score == 0.5
