"""Retrieval with scores from either a vector store or a retriever, and the ``sources`` records."""

from __future__ import annotations

from typing import Any, TypedDict

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from langchain_core.vectorstores import VectorStore, VectorStoreRetriever

from sagerag.errors import ConfigurationError
from sagerag.prompts.context import source_id

Scored = list[tuple[Document, float | None]]
Source = VectorStore | BaseRetriever


def check_source(store_or_retriever: object) -> Source:
    """Fail early and clearly on something that is neither a vector store nor a retriever."""
    if isinstance(store_or_retriever, VectorStore | BaseRetriever):
        return store_or_retriever
    raise ConfigurationError(
        f"expected a LangChain VectorStore or BaseRetriever, got {type(store_or_retriever).__name__}"
    )


def _unwrap(source: Source) -> tuple[VectorStore | None, dict[str, Any]]:
    """Use the store behind a plain similarity retriever, so its scores are not lost."""
    if isinstance(source, VectorStore):
        return source, {}
    if isinstance(source, VectorStoreRetriever) and source.search_type == "similarity":
        kwargs = {key: value for key, value in source.search_kwargs.items() if key != "k"}
        return source.vectorstore, kwargs
    return None, {}


def _metadata_score(document: Document) -> float | None:
    score = document.metadata.get("score")
    return float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None


def _from_store(found: list[tuple[Document, float]]) -> Scored:
    return [(doc, float(score)) for doc, score in found]


def _from_retriever(found: list[Document], k: int) -> Scored:
    return [(doc, _metadata_score(doc)) for doc in found[:k]]


def retrieve(source: Source, question: str, k: int, config: RunnableConfig | None = None) -> Scored:
    """Top ``k`` documents with similarity scores (higher is better); ``None`` where none is known."""
    store, kwargs = _unwrap(source)
    if store is not None:
        return _from_store(store.similarity_search_with_score(question, k=k, **kwargs))
    assert isinstance(source, BaseRetriever)
    return _from_retriever(source.invoke(question, config), k)


async def aretrieve(source: Source, question: str, k: int, config: RunnableConfig | None = None) -> Scored:
    """Async :func:`retrieve`."""
    store, kwargs = _unwrap(source)
    if store is not None:
        return _from_store(await store.asimilarity_search_with_score(question, k=k, **kwargs))
    assert isinstance(source, BaseRetriever)
    return _from_retriever(await source.ainvoke(question, config), k)


class SourceRecord(TypedDict):
    """One passage of the context as the chain reports it."""

    id: str
    """The id its context block cites."""
    score: float | None
    """Retrieval similarity (higher is better); None when the retriever reports none."""
    text: str
    metadata: dict[str, Any]


def source_record(document: Document, score: float | None, rank: int) -> SourceRecord:
    """One entry of the chain's ``sources``: the id the context block cites, score, text, metadata."""
    return {
        "id": source_id(document, rank),
        "score": score,
        "text": document.page_content,
        "metadata": dict(document.metadata),
    }
