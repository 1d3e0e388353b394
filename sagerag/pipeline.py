"""The composition root: builds the LLM, embeddings, vector store and chains from settings.

This is the one place that decides "local or remote". With nothing remote configured it uses the
embedded default: a running `sagerag serve` if there is one (warm models, shared by processes), else a
local SageMaker Runtime and a local Pinecone started in this process. Remote is the same code with other
URLs: boto3 goes to SageMaker (or `endpoint_url`), the pinecone SDK to Pinecone (or `pinecone_host`).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseLanguageModel
from langchain_core.runnables import Runnable

from sagerag.adapters import SagemakerEmbeddings, make_embeddings, make_model, make_runtime_client
from sagerag.config import Settings, load_settings
from sagerag.errors import ConfigurationError, InputError
from sagerag.serve_state import running_server
from sagerag.stores import PineconeStore, ensure_index


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
        """The LCEL chain over this pipeline's LLM and store (see `sagerag.chains.build_rag_chain`).

        Settings supply what the caller leaves out (or passes as None): the answer guards, and the prompt,
        which is `settings.local_prompt` for the embedded generator and `default` for real endpoints.
        """
        from sagerag.chains import build_rag_chain

        kwargs.setdefault("min_score", self.min_score)
        if kwargs.get("prompt") is None:
            kwargs["prompt"] = "default" if self.mode == "remote" else self.settings.local_prompt
        kwargs.setdefault("loop_guard", self.settings.loop_guard)
        kwargs.setdefault("grounding", self.settings.grounding)
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
        return _records_namespace(self.settings, self.mode)

    @property
    def sparse_stats(self) -> Path:
        """The BM25 statistics of this index and namespace: beside the ledger, which every ingest and query
        of this configuration reaches (for a remote Pinecone too), keyed by the ledger's namespace."""
        from sagerag.stores.sparse import stats_path

        return stats_path(self.settings.data_dir, self.records_namespace)

    def ingest(self, docs: list[Any], **options: Any) -> Any:
        """`ingest_documents` into this pipeline's store, with its ledger and its BM25 statistics (the
        three must match, or a hybrid index gets vectors scored by another corpus's statistics)."""
        from sagerag.ingest import ingest_documents

        return ingest_documents(
            docs,
            self.store,
            self.records_db,
            self.records_namespace,
            sparse_stats=self.sparse_stats,
            **options,
        )

    @property
    def min_score(self) -> float | None:
        """The score gate: the configured one, else the calibrated default for the store's mode."""
        from sagerag.chains.abstain import default_min_score

        if self.settings.min_score is not None:
            return self.settings.min_score
        return default_min_score(self.store)

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


def _records_namespace(settings: Settings, mode: str) -> str:
    where = "local" if mode != "remote" else (settings.pinecone_host or "pinecone-cloud")
    return f"{where}/{settings.pinecone_index}/{settings.pinecone_namespace}"


def _pinecone_client(settings: Settings, host: str | None, api_key: str) -> Any:
    from pinecone import Pinecone

    kwargs: dict[str, Any] = {"api_key": api_key, "timeout": settings.timeout}
    if host:
        kwargs["host"] = host
    return Pinecone(**kwargs)


def _embedding_dimension(settings: Settings, embeddings: SagemakerEmbeddings) -> int:
    """The size of the vectors `embeddings` returns, to create the index or check an existing one.

    A local endpoint of the embedded MiniLM says it without loading the model (a no-op ingest with the
    serve off then loads none); any other endpoint is asked, with one embedding."""
    if settings.is_local:
        from sagerag.local.sagemaker.app import DEFAULT_ENDPOINTS
        from sagerag.local.sagemaker.models import minilm_dimension

        endpoint = DEFAULT_ENDPOINTS.get(settings.embeddings_endpoint)
        if endpoint is not None and endpoint.model == "minilm":
            return minilm_dimension()
    return len(embeddings.embed_query("dimension probe"))


def _index_exists(pc: Any, name: str) -> bool:
    return bool(pc.indexes.exists(name))


def from_settings(
    settings: Settings | None = None,
    *,
    create_index: bool = True,
    autoserve: bool = False,
    **overrides: Any,
) -> Pipeline:
    """Build the pipeline for `settings` (default: `load_settings(**overrides)`).

    `create_index=False` is for readers (`sagerag ask`): a missing index is an `InputError` saying to
    ingest first, instead of a new empty index that answers "I don't know" to everything.
    `autoserve=True` (the CLI's commands) uses, or starts, a background `sagerag serve` that keeps the
    local models warm between commands (see `sagerag.autoserve`; `serve_idle_timeout` 0 turns it off)."""
    settings = settings or load_settings(**overrides)
    stack = ExitStack()
    try:
        return _build(settings, stack, create_index, autoserve)
    except BaseException:
        stack.close()
        raise


def _build(
    settings: Settings, stack: ExitStack, create_index: bool = True, autoserve: bool = False
) -> Pipeline:
    api_key = settings.pinecone_api_key.get_secret_value() if settings.pinecone_api_key else None
    runtime_url: str | None
    pinecone_host: str | None
    if settings.is_local:
        from sagerag.local.pinecone import default_api_key
        from sagerag.local.sagemaker.server import local_runtime_client

        api_key = api_key or default_api_key()
        if autoserve:
            from sagerag.autoserve import ensure_server

            server = ensure_server(settings.data_dir, settings.serve_idle_timeout)
        else:
            server = running_server(settings.data_dir)
        if server:
            mode, runtime_url, pinecone_host = "local-server", server.runtime_url, server.pinecone_host
        else:
            from sagerag.local import LocalPinecone, LocalRuntime

            mode = "local"
            runtime = stack.enter_context(LocalRuntime())
            pinecone = stack.enter_context(LocalPinecone(settings.data_dir / "pinecone", api_key=api_key))
            runtime_url, pinecone_host = runtime.endpoint_url, pinecone.host
        client = local_runtime_client(runtime_url, timeout=settings.timeout)
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

    embeddings = make_embeddings(
        settings.embeddings_endpoint,
        kind=settings.embeddings_kind,
        client=client,
        timeout=settings.timeout,
        binary=settings.embeddings_format == "npy",
    )
    llm = make_model(
        settings.llm_endpoint,
        settings.llm_kind,
        max_new_tokens=settings.max_new_tokens,
        client=client,
        timeout=settings.timeout,
    )

    pc = _pinecone_client(settings, pinecone_host, api_key)
    if not create_index and not _index_exists(pc, settings.pinecone_index):
        where = f"under {settings.data_dir}" if settings.is_local else f"at {pinecone_host or 'Pinecone'}"
        raise InputError(
            f"the Pinecone index {settings.pinecone_index!r} does not exist {where}; run `sagerag ingest "
            "FILE` first (or check SAGERAG_PINECONE_INDEX and the data directory)"
        )
    dimension = _embedding_dimension(settings, embeddings)
    hybrid = settings.retrieval == "hybrid"
    # A new index is dotproduct in hybrid mode; dense-only retrieval also works on an existing dotproduct
    # index (MiniLM vectors are unit length, so dotproduct ranks and scores as cosine).
    ensure_index(
        pc,
        settings.pinecone_index,
        dimension,
        metric="dotproduct" if hybrid else "cosine",
        also_accept=() if hybrid else ("dotproduct",),
    )
    store = PineconeStore.from_index_name(
        pc,
        settings.pinecone_index,
        embeddings,
        namespace=settings.pinecone_namespace,
        alpha=settings.alpha if hybrid else 1.0,
    )
    if store.metric == "dotproduct":
        from sagerag.stores.sparse import load_stats, stats_path

        store.sparse = load_stats(stats_path(settings.data_dir, _records_namespace(settings, mode)))
    return Pipeline(settings, llm, embeddings, store, mode, runtime_url, pinecone_host, stack)
