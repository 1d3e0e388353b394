"""`sagerag eval` end to end on a tiny corpus through the real local pipeline: outputs, resume, generation."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from langchain_core.language_models import FakeListLLM

from sagerag.evaluation import EvalConfig, label_questions, run_eval, summarize
from sagerag.pipeline import from_settings
from sagerag.questions import read_questions
from sagerag.resume import ResultLog
from tests.support import run_cli

CORPUS = [
    ("How do I water a cactus?", "Water a cactus sparingly, about once every two weeks in summer."),
    ("When should tomatoes be planted?", "Plant tomato seedlings outdoors after the last spring frost."),
    ("How much light do orchids need?", "Orchids prefer bright, indirect light and no midday sun."),
    (
        "How do I compost kitchen scraps?",
        "Mix vegetable scraps with dry leaves and turn the compost pile weekly.",
    ),
]
OUT_OF_SCOPE = ["Who won the 1998 football World Cup?", "What is the boiling point of mercury?"]


@pytest.fixture
def corpus(tmp_path: Path, cli_env: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A local data dir with the tiny garden FAQ ingested, plus its question files."""
    with (tmp_path / "garden.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("Question", "Answer"), *CORPUS])
    lines = [{"id": i, "question": q, "answer_id": i, "answer": a} for i, (q, a) in enumerate(CORPUS)]
    (tmp_path / "questions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (tmp_path / "oos.jsonl").write_text("".join(json.dumps({"question": q}) + "\n" for q in OUT_OF_SCOPE))
    code, _, err = run_cli(capsys, "ingest", str(tmp_path / "garden.csv"))
    assert code == 0, err
    return tmp_path


@pytest.mark.models
def test_eval_no_generate_writes_outputs_and_resumes(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "eval",
        "--questions", str(corpus / "questions.jsonl"),
        "--out-of-scope", str(corpus / "oos.jsonl"),
        "--prompt", "default", "--prompt", "strict",
        "--no-generate",
        "--results", str(corpus / "results.jsonl"),
        "--json-file", str(corpus / "report.json"),
        "--csv", str(corpus / "report.csv"),
        "--plot", str(corpus / "chart.png"),
    ]  # fmt: skip
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert "12 evaluated now, 0 already done" in err
    assert "retrieval recall@5" in out and "strict" in out

    report = json.loads((corpus / "report.json").read_text())
    assert [c["name"] for c in report["configs"]] == ["default", "strict"]
    for entry in report["configs"]:
        m = entry["metrics"]
        assert m["recall@1"] == 1.0 and m["recall@5"] == 1.0 and m["mrr"] == 1.0
        assert m["oos_refused"] == 1.0 and m["in_scope_refused"] == 0.0
        assert m["token_f1"] is None  # nothing generated
        assert entry["counts"] == {
            "in_scope": 4,
            "out_of_scope": 2,
            "with_gold": 4,
            "with_reference": 0,
            "answered_in_scope": 4,
            "out_of_scope_refused": 2,
            "in_scope_refused": 0,
            "sentences_dropped": 0,
            "grounding_abstained": 0,
        }
        assert m["repeated_sentence"] is None and m["truncated"] is None  # nothing generated
    rows = list(csv.DictReader((corpus / "report.csv").open()))
    assert len(rows) == 2 and float(rows[0]["recall@5"]) == 1.0
    assert (corpus / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((corpus / "results.jsonl").read_text().splitlines()) == 12

    code, _, err = run_cli(capsys, *args)  # everything is in the results log: nothing new is evaluated
    assert code == 0, err
    assert "0 evaluated now, 12 already done" in err
    assert len((corpus / "results.jsonl").read_text().splitlines()) == 12
    assert json.loads((corpus / "report.json").read_text())["configs"][0]["metrics"]["recall@5"] == 1.0


@pytest.mark.models
def test_runner_generates_through_the_chain_and_scores_answers(corpus: Path, tmp_path: Path) -> None:
    """Generation path with a scripted LLM (the real one is too slow for a unit test): F1, support, gate."""
    questions = label_questions(
        read_questions(corpus / "questions.jsonl").questions[:2],
        read_questions(corpus / "oos.jsonl").questions[:1],
    )
    llm = FakeListLLM(responses=["Water a cactus sparingly, every two weeks.", "I don't know"])
    config = EvalConfig(prompt="default")
    with from_settings() as pipeline, ResultLog.open(tmp_path / "gen.jsonl") as log:
        records, stats = run_eval([config], questions, pipeline.store, llm, log)
    assert stats.evaluated == 3 and not stats.failures
    by_scope = {(r["scope"], r["question_id"]): r for r in records[config.key]}
    first = by_scope[("in", "0")]
    assert not first["abstained"] and first["gold_precision"] == 1.0 and 0.5 < first["f1"] < 1.0
    assert by_scope[("in", "1")]["abstained"]  # the model's own "I don't know" counts as a refusal
    assert by_scope[("out", "0")]["abstained"] and by_scope[("out", "0")]["answer"] == "I don't know"
    assert first["repeated"] is False and first["truncated"] is False and first["sentences"]
    # the context the sentences were scored against, for re-grading offline (scripts/regrade_grounding.py)
    assert any("cactus" in passage.lower() for passage in first["passages"])
    summary = summarize(records[config.key])
    assert (
        summary["supported"] == 1.0 and summary["in_scope_refused"] == 0.5 and summary["oos_refused"] == 1.0
    )
    assert summary["repeated_sentence"] == 0.0 and summary["ends_mid_sentence"] == 0.0
