"""Shared pieces for the tests that drive `LocalPinecone` over real HTTP with the real pinecone SDK."""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sagerag.local.pinecone import LocalPinecone

API_KEY = "test-key-0123456789"
_counter = itertools.count()


def shared_data_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def faq_answers() -> list[str]:
    """The 154 answers of the real SageMaker FAQ; skip when the shared data is absent."""
    path = shared_data_dir() / "sagemaker_faq.csv"
    if not path.exists():
        pytest.skip(f"shared FAQ data not found at {path}")
    with path.open(newline="", encoding="utf-8") as handle:
        return [row["Answer"] for row in csv.DictReader(handle)]


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


@pytest.fixture(scope="module")
def local_pinecone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPinecone]:
    with LocalPinecone(tmp_path_factory.mktemp("pinecone"), api_key=API_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def pc(local_pinecone: LocalPinecone) -> Any:
    return local_pinecone.client()
