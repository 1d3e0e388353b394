"""Shared fixtures: one local SageMaker Runtime per test session (models load once), and the shared data."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sagerag.local import LocalRuntime

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` beside the checkout; tests that need it skip with a message when it is absent."""
    if not (SHARED_DATA / "sagemaker_faq.csv").exists():
        pytest.skip(f"shared data not found at {SHARED_DATA} (it sits beside the checkout in CI)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def faq_rows(shared_data: Path) -> list[dict[str, str]]:
    with (shared_data / "sagemaker_faq.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="session")
def faq_answers(faq_rows: list[dict[str, str]]) -> list[str]:
    return [row["Answer"] for row in faq_rows]


_RUNTIME: LocalRuntime | None = None


def shared_runtime() -> LocalRuntime:
    """One local SageMaker Runtime per test process (for suites whose properties cannot take fixtures)."""
    global _RUNTIME
    if _RUNTIME is None:
        _RUNTIME = LocalRuntime().start()
    return _RUNTIME


@pytest.fixture(scope="session")
def runtime() -> Iterator[LocalRuntime]:
    """The local SageMaker Runtime, shared by every test in the session."""
    yield shared_runtime()


@pytest.fixture(scope="session")
def runtime_client(runtime: LocalRuntime) -> Any:
    return runtime.client()
