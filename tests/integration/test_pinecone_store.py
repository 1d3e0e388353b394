"""PineconeStore behaviour beyond the standard suite: stable ids, limits, retries, keys, metrics."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from pinecone import Pinecone
from pinecone.errors.exceptions import ApiError, RateLimitError, ServiceError, UnauthorizedError

from sagerag.errors import DocumentTooLargeError, IndexMismatchError
from sagerag.local import LocalPinecone
from sagerag.stores import PineconeStore, ensure_index
from sagerag.stores import _retry as retry_module
from tests.support import API_KEY, faq_answers, make_index, unique_name


def faq_documents() -> list[Document]:
    return [
        Document(
            page_content=answer,
            metadata={
                "source": f"sagemaker_faq.csv#row{i}",
                "row": i,
                "topic": "training" if "train" in answer.lower() else "other",
            },
        )
        for i, answer in enumerate(faq_answers())
    ]


def count(store: PineconeStore) -> int:
    return int(store.index.describe_index_stats().total_vector_count)


def test_faq_ingest_is_idempotent_across_restarts(tmp_path: Path) -> None:
    documents = faq_documents()
    assert len(documents) == 154
    embedding = DeterministicFakeEmbedding(size=384)
    with LocalPinecone(tmp_path, api_key=API_KEY) as server:
        client = server.client()
        ensure_index(client, "faq", 384)
        store = PineconeStore.from_index_name(client, "faq", embedding)
        first = store.add_documents(documents)
        second = store.add_documents(documents)
        assert first == second and len(set(first)) == 154
        assert count(store) == 154
    with LocalPinecone(tmp_path, api_key=API_KEY) as server:
        client = server.client()
        assert ensure_index(client, "faq", 384).endswith("/data/faq")
        store = PineconeStore.from_index_name(client, "faq", embedding)
        store.add_documents(documents)
        assert count(store) == 154
        hits = store.similarity_search(documents[3].page_content, k=50, filter={"topic": "training"})
        expected = {d.metadata["source"] for d in documents if d.metadata["topic"] == "training"}
        assert hits and all(h.metadata["topic"] == "training" for h in hits)
        assert {h.metadata["source"] for h in hits} <= expected
        rows = store.similarity_search("anything", k=200, filter={"row": {"$lt": 10}})
        assert sorted(h.metadata["row"] for h in rows) == list(range(10))
        top = store.similarity_search_with_score(documents[7].page_content, k=1)[0]
        assert top[0].page_content == documents[7].page_content and top[1] == pytest.approx(1.0, abs=1e-5)
        assert "text" not in top[0].metadata and top[0].id == first[7]


class CountingIndex:
    """Wraps a pinecone Index to count upsert requests (and optionally fail some first)."""

    def __init__(self, index: Any, failures: list[Exception] | None = None) -> None:
        self._index = index
        self.upserts: list[int] = []
        self.failures = failures or []

    def upsert(self, vectors: list[Any], namespace: str = "") -> Any:
        if self.failures:
            raise self.failures.pop(0)
        self.upserts.append(len(vectors))
        return self._index.upsert(vectors=vectors, namespace=namespace)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)


def test_large_batches_are_split_and_oversize_documents_refused(pc: Any) -> None:
    index = CountingIndex(make_index(pc, dimension=8, prefix="big"))
    store = PineconeStore(index, DeterministicFakeEmbedding(size=8), metric="cosine")
    documents = [
        Document(page_content=f"{i} " + "z" * 30_000, metadata={"source": f"s{i}"}) for i in range(100)
    ]
    ids = store.add_documents(documents)
    assert len(index.upserts) >= 2 and sum(index.upserts) == 100
    assert count(store) == 100
    huge = Document(page_content="q" * 50_000, metadata={"source": "huge.md"})
    with pytest.raises(DocumentTooLargeError, match=r"huge\.md") as excinfo:
        store.add_documents([Document(page_content="fine", metadata={"source": "ok"}), huge])
    assert "40960" in str(excinfo.value)
    assert count(store) == 100  # nothing sent, nothing lost
    assert len(store.get_by_ids(ids)) == 100


def test_numpy_embeddings_are_sent_as_python_floats(pc: Any) -> None:
    class NumpyEmbedding(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [np.arange(1, 5, dtype=np.float32) * (i + 1) for i in range(len(texts))]  # type: ignore[misc]

        def embed_query(self, text: str) -> list[float]:
            return np.ones(4, dtype=np.float64)  # type: ignore[return-value]

    store = PineconeStore(make_index(pc, dimension=4, prefix="np"), NumpyEmbedding())
    store.add_texts(["a", "b"], [{"score": np.float64(0.5)}, {}])
    docs = store.similarity_search("q", k=2)
    assert {d.page_content for d in docs} == {"a", "b"}
    assert store.get_by_ids([d.id for d in docs if d.page_content == "a"])[0].metadata == {"score": 0.5}


@pytest.mark.parametrize("metric", ["cosine", "dotproduct", "euclidean"])
def test_store_scores_are_higher_is_better(pc: Any, metric: str) -> None:
    class FixedEmbedding(Embeddings):
        table: ClassVar[dict[str, list[float]]] = {
            "near": [1.0, 0.1],
            "mid": [1.0, 1.0],
            "far": [-1.0, 0.3],
            "q": [1.0, 0.0],
        }

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [self.table[t] for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return self.table[text]

    store = PineconeStore(
        make_index(pc, dimension=2, metric=metric, prefix=f"s{metric[:3]}"), FixedEmbedding()
    )
    store.add_texts(["near", "mid", "far"])
    results = store.similarity_search_with_score("q", k=3)
    assert results[0][0].page_content == "near"
    scores = [s for _, s in results]
    assert scores == sorted(scores, reverse=True)
    if metric == "euclidean":
        assert scores[0] == pytest.approx(1 / (1 + 0.01), abs=1e-5)
        assert all(0 < s <= 1 for s in scores)


def test_retriever_namespace_and_deletes(pc: Any) -> None:
    store = PineconeStore(make_index(pc, dimension=16, prefix="ret"), DeterministicFakeEmbedding(size=16))
    store.add_texts(["alpha", "beta", "gamma"], [{"g": "x"}, {"g": "y"}, {"g": "x"}], ids=["1", "2", "3"])
    store.add_texts(["delta"], ids=["4"], namespace="side")
    retriever = store.as_retriever(search_kwargs={"k": 5, "filter": {"g": "x"}})
    assert sorted(d.id for d in retriever.invoke("alpha")) == ["1", "3"]
    assert [d.id for d in store.similarity_search("delta", k=5, namespace="side")] == ["4"]
    store.delete(filter={"g": "y"})
    assert sorted(d.id for d in store.similarity_search("x", k=5)) == ["1", "3"]
    store.delete(delete_all=True)
    assert store.similarity_search("x", k=5) == []
    assert store.get_by_ids(["4"], namespace="side")[0].page_content == "delta"


async def test_async_variants(pc: Any) -> None:
    store = PineconeStore(make_index(pc, dimension=16, prefix="async"), DeterministicFakeEmbedding(size=16))
    ids = await store.aadd_documents(
        [Document(page_content="one", metadata={"source": "a"}), Document("two")]
    )
    hits = await store.asimilarity_search_with_score("one", k=1)
    assert hits[0][0].page_content == "one" and hits[0][0].id == ids[0]
    assert [d.page_content for d in await store.aget_by_ids(ids)] == ["one", "two"]
    await store.adelete([ids[0]])
    assert [d.page_content for d in await store.aget_by_ids(ids)] == ["two"]


def test_wrong_api_key_is_the_sdks_error_without_the_key(
    local_pinecone: LocalPinecone,
    pc: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "pcsk_wrong_secret_value_42"
    host = make_index(pc, dimension=8, prefix="auth").host
    bad_client = Pinecone(api_key=secret, host=local_pinecone.host)
    store = PineconeStore(bad_client.Index(host=host), DeterministicFakeEmbedding(size=8), metric="cosine")
    errors: list[BaseException] = []
    for action in (
        lambda: store.add_texts(["x"]),
        lambda: store.similarity_search("x"),
        lambda: ensure_index(bad_client, "auth-x", 8),
        lambda: PineconeStore.from_index_name(bad_client, "auth-x", DeterministicFakeEmbedding(size=8)),
    ):
        with pytest.raises(UnauthorizedError) as excinfo:  # the SDK's own class (sagerag.errors policy)
            action()
        errors.append(excinfo.value)
    for error in errors:
        assert secret not in str(error) and secret not in repr(error)
        assert secret not in str(error.__cause__) and secret not in str(error.__context__)
    assert secret not in caplog.text


def test_ensure_index_detects_mismatch(pc: Any) -> None:
    name = unique_name("ensure")
    host = ensure_index(pc, name, 12, metric="dotproduct")
    assert ensure_index(pc, name, 12, metric="dotproduct") == host
    with pytest.raises(IndexMismatchError, match=r"dimension 12.*dimension 384"):
        ensure_index(pc, name, 384, metric="dotproduct")
    with pytest.raises(IndexMismatchError, match=r"metric dotproduct.*metric cosine"):
        ensure_index(pc, name, 12)


def test_retries_429_and_5xx_then_gives_up(monkeypatch: pytest.MonkeyPatch, pc: Any) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(retry_module, "_sleep", sleeps.append)
    index = CountingIndex(
        make_index(pc, dimension=8, prefix="retry"),
        failures=[RateLimitError("slow down"), ServiceError("boom", 503)],
    )
    store = PineconeStore(index, DeterministicFakeEmbedding(size=8), metric="cosine")
    store.add_texts(["a"])
    assert len(sleeps) == 2 and count(store) == 1
    index.failures = [ServiceError("boom", 500) for _ in range(10)]
    with pytest.raises(ServiceError):
        store.add_texts(["b"])
    assert len(sleeps) == 2 + store.max_attempts - 1
    index.failures = [ApiError("bad request", 400)]
    with pytest.raises(ApiError):
        store.add_texts(["c"])
    assert len(sleeps) == 2 + store.max_attempts - 1  # 400 is not retried
