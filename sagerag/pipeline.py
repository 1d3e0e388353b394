"""The composition root: builds the LLM, embeddings, vector store and chains from settings.

This is the one place that decides "local or remote". With nothing remote configured it uses the
embedded default: a running `sagerag serve` if there is one (warm models, shared by processes), else a
local SageMaker Runtime and a local Pinecone started in this process. Remote is the same code with other
URLs: boto3 goes to SageMaker (or `endpoint_url`), the pinecone SDK to Pinecone (or `pinecone_host`).
"""

from __future__ import annotations

import json
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseLanguageModel
from langchain_core.runnables import Runnable

from sagerag.adapters import SagemakerEmbeddings, make_chat_model, make_embeddings, make_llm
from sagerag.adapters._client import make_runtime_client
from sagerag.config import Settings, load_settings
from sagerag.errors import ConfigurationError
from sagerag.stores import PineconeStore, ensure_index

SERVE_STATE_FILE = "serve.json"
"""Written by `sagerag serve` in the data directory so other processes find its ports."""


@dataclass
class Pipeline:
    """Wired objects for one configuration; close it (or use `with`) to stop any local services."""

    settings: Settings
    llm: BaseLanguageModel
    embeddings: SagemakerEmbeddings
    store: PineconeStore
    mode: str
    """`local` (in-process services), `local-server` (a running `sagerag serve`) or `remote`."""
    runtime_url: str | None = None
    pinecone_host: str | None = None
    _stack: ExitStack = field(default_factory=ExitStack, repr=False)

    def rag_chain(self, **kwargs: Any) -> Runnable:
        """The LCEL chain over this pipeline's LLM and store (see `sagerag.chains.build_rag_chain`)."""
        from sagerag.chains import build_rag_chain

        return build_rag_chain(self.llm, self.store, **kwargs)

    def retrieval_qa(self, **kwargs: Any) -> Any:
        """The classic `RetrievalQA` chain over this pipeline's LLM and store."""
        from sagerag.chains import build_retrieval_qa

        return build_retrieval_qa(self.llm, self.store, **kwargs)

    @property
    def records_db(self) -> Path:
        """The ingestion ledger (which documents are stored, by hash), kept beside the local data."""
        return self.settings.data_dir / "records.sqlite3"

    @property
    def records_namespace(self) -> str:
        where = "local" if self.mode != "remote" else (self.settings.pinecone_host or "pinecone-cloud")
        return f"{where}/{self.settings.pinecone_index}/{self.settings.pinecone_namespace}"

    def describe(self) -> str:
        """One line saying where requests go (no secrets)."""
        if self.mode == "remote":
            return (
                f"remote: SageMaker endpoints {self.settings.llm_endpoint!r} and "
                f"{self.settings.embeddings_endpoint!r} in {self.settings.region}, Pinecone index "
                f"{self.settings.pinecone_index!r}"
            )
        how = "a running `sagerag serve`" if self.mode == "local-server" else "embedded local services"
        return f"local: {how}, data in {self.settings.data_dir} (offline, no AWS or Pinecone account)"

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _running_server(data_dir: Path) -> dict[str, str] | None:
    """Ports of a live `sagerag serve` for this data directory, if one answers its health check."""
    state_file = data_dir / SERVE_STATE_FILE
    try:
        state = json.loads(state_file.read_text())
        for url in (state["runtime_url"], state["pinecone_host"]):
            with urllib.request.urlopen(f"{url}/health", timeout=1.0):
                pass
    except (OSError, ValueError, KeyError):
        return None
    return {"runtime_url": str(state["runtime_url"]), "pinecone_host": str(state["pinecone_host"])}


def _pinecone_client(settings: Settings, host: str | None, api_key: str) -> Any:
    from pinecone import Pinecone

    kwargs: dict[str, Any] = {"api_key": api_key}
    if host:
        kwargs["host"] = host
    return Pinecone(**kwargs)


def from_settings(settings: Settings | None = None, **overrides: Any) -> Pipeline:
    """Build the pipeline for `settings` (default: `load_settings(**overrides)`)."""
    settings = settings or load_settings(**overrides)
    stack = ExitStack()
    try:
        return _build(settings, stack)
    except BaseException:
        stack.close()
        raise


def _build(settings: Settings, stack: ExitStack) -> Pipeline:
    api_key = settings.pinecone_api_key.get_secret_value() if settings.pinecone_api_key else None
    runtime_url: str | None
    pinecone_host: str | None
    if settings.is_local:
        from sagerag.local import LocalRuntime
        from sagerag.local.pinecone import LocalPinecone, default_api_key

        api_key = api_key or default_api_key()
        server = _running_server(settings.data_dir)
        if server:
            mode, runtime_url, pinecone_host = "local-server", server["runtime_url"], server["pinecone_host"]
        else:
            mode = "local"
            runtime = stack.enter_context(LocalRuntime())
            pinecone = stack.enter_context(LocalPinecone(settings.data_dir / "pinecone", api_key=api_key))
            runtime_url, pinecone_host = runtime.endpoint_url, pinecone.host
        client = make_runtime_client(
            "us-east-1", runtime_url, None, settings.timeout, static_credentials=("local", "local")
        )
    else:
        mode, runtime_url, pinecone_host = "remote", settings.endpoint_url, settings.pinecone_host
        if not api_key:
            raise ConfigurationError(
                "a remote Pinecone needs an API key: set PINECONE_API_KEY (or unset SAGERAG_REMOTE / "
                "SAGERAG_PINECONE_HOST to use the local default)"
            )
        client = make_runtime_client(
            settings.region, settings.endpoint_url, settings.aws_profile, settings.timeout
        )

    embeddings = make_embeddings(settings.embeddings_endpoint, client=client, timeout=settings.timeout)
    generation = {"max_new_tokens": settings.max_new_tokens}
    llm: BaseLanguageModel
    if settings.llm_kind == "jumpstart-chat":
        llm = make_chat_model(
            settings.llm_endpoint,
            kind="jumpstart-chat",
            client=client,
            timeout=settings.timeout,
            model_kwargs=generation,
        )
    else:
        llm = make_llm(
            settings.llm_endpoint, client=client, timeout=settings.timeout, model_kwargs=generation
        )

    pc = _pinecone_client(settings, pinecone_host, api_key)
    dimension = len(embeddings.embed_query("dimension probe"))
    ensure_index(pc, settings.pinecone_index, dimension)
    store = PineconeStore.from_index_name(
        pc, settings.pinecone_index, embeddings, namespace=settings.pinecone_namespace
    )
    return Pipeline(settings, llm, embeddings, store, mode, runtime_url, pinecone_host, stack)
