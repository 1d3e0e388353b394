"""Fixtures for every test: one local SageMaker Runtime per session (models load once), local Pinecone
servers, the repository's FAQ data and an isolated CLI environment. Plain helpers live in `support.py`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sagerag.local import LocalPinecone, LocalRuntime
from tests import support
from tests.subprocesses import FACT, PINECONE_KEY

# CLI runs in tests use in-process services unless a test asks for the background serve (test_autoserve.py):
# none is left running after the suite, and each test loads models where it always did.
os.environ.setdefault("SAGERAG_SERVE_IDLE_TIMEOUT", "0")

_ROUTING_VARIABLES = (
    "SAGERAG_REMOTE",
    "SAGERAG_ENDPOINT_URL",
    "SAGERAG_PINECONE_HOST",
    "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
)


@pytest.fixture(scope="session")
def faq_answers() -> list[str]:
    """The 154 answers of the SageMaker FAQ (the repository's copy)."""
    return support.faq_answers()


@pytest.fixture(scope="session")
def runtime() -> Iterator[LocalRuntime]:
    """The local SageMaker Runtime, shared by every test in the session."""
    yield support.shared_runtime()


@pytest.fixture(scope="session")
def runtime_client(runtime: LocalRuntime) -> Any:
    return runtime.client()


@pytest.fixture(scope="module")
def local_pinecone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPinecone]:
    with LocalPinecone(tmp_path_factory.mktemp("pinecone"), api_key=support.API_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def pc(local_pinecone: LocalPinecone) -> Any:
    return local_pinecone.client()


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The embedded default under a private data dir, nothing inherited that routes elsewhere."""
    for name in _ROUTING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SAGERAG_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "sagerag.toml").touch()  # SAGERAG_CONFIG must name a file that exists
    monkeypatch.setenv("SAGERAG_CONFIG", str(tmp_path / "sagerag.toml"))
    return tmp_path / "data"


@pytest.fixture(scope="module")
def remote_servers(
    tmp_path_factory: pytest.TempPathFactory, runtime: LocalRuntime
) -> Iterator[dict[str, Any]]:
    """The session's local runtime and a module-wide LocalPinecone, to be used as 'remote' services."""
    root = tmp_path_factory.mktemp("remote")
    from sagerag.adapters import SagemakerEmbeddings
    from sagerag.stores import PineconeStore, ensure_index

    with LocalPinecone(root / "pinecone", api_key=PINECONE_KEY) as pinecone:
        pc = pinecone.client()
        ensure_index(pc, "sagerag", 384, metric="dotproduct")  # what hybrid retrieval (the default) needs
        embeddings = SagemakerEmbeddings(endpoint_name="minilm", client=runtime.client())
        PineconeStore.from_index_name(pc, "sagerag", embeddings).add_texts([FACT], [{"source": "fact#0"}])
        yield {"runtime": runtime, "pinecone": pinecone, "root": root}
