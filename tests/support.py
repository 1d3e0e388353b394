"""Helpers shared by the test modules: the repository's own data, the in-process CLI, Pinecone indexes.

Fixtures live in `conftest.py`; this module holds plain functions and constants that tests import.
"""

from __future__ import annotations

import csv
import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from sagerag.cli import main

REPO = Path(__file__).resolve().parents[1]
EVALS = REPO / "evals"
FAQ_CSV = EVALS / "Amazon_SageMaker_FAQs.csv"
"""The SageMaker FAQ (154 rows, headerless, BOM, CRLF), the repository's copy (MIT-0, see evals/README.md)."""
FAQ_QUESTIONS = EVALS / "sagemaker_faq_questions.jsonl"
OUT_OF_SCOPE = EVALS / "out_of_scope_questions.jsonl"
SEED_QUESTION = "Which instances can I use with Managed Spot Training in SageMaker?"

API_KEY = "test-key-0123456789"
_counter = itertools.count()


def faq_rows() -> list[tuple[str, str]]:
    """(question, answer) for each FAQ row, whitespace (including non-breaking spaces) collapsed."""
    with FAQ_CSV.open(encoding="utf-8-sig", newline="") as handle:
        return [(_clean(q), _clean(a)) for q, a in csv.reader(handle)]


def faq_answers() -> list[str]:
    return [answer for _, answer in faq_rows()]


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def empty_config(root: Path) -> Path:
    """An empty `sagerag.toml` under `root`, for SAGERAG_CONFIG (which must name a file that exists)."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "empty.toml"
    path.touch()
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `sagerag ARGV` in-process (models stay loaded); returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def unique_name(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}"


def make_index(pc: Any, dimension: int, metric: str = "cosine", prefix: str = "idx") -> Any:
    """A fresh index and its data-plane client."""
    name = unique_name(prefix)
    pc.indexes.create(
        name=name,
        schema={"fields": {"_values": {"type": "dense_vector", "dimension": dimension, "metric": metric}}},
        deployment={"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"},
    )
    return pc.Index(host=pc.indexes.describe(name).host)


_RUNTIME: Any = None


def shared_runtime() -> Any:
    """One local SageMaker Runtime per test process: models load once (also for suites without fixtures)."""
    global _RUNTIME
    if _RUNTIME is None:
        from sagerag.local import LocalRuntime

        _RUNTIME = LocalRuntime().start()
    return _RUNTIME
