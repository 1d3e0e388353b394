"""Hybrid (sparse-dense) retrieval: the local Pinecone's sparse values through the real SDK, the store's
alpha-weighted queries, and BM25 statistics kept consistent across ingests (fake embeddings: no model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from pinecone.errors.exceptions import ApiError

from sagerag.errors import IndexMismatchError, SparseStatsMismatchError
from sagerag.ingest import ingest_documents, load_csv
from sagerag.local import LocalPinecone
from sagerag.stores import PineconeStore, ensure_index
from sagerag.stores.sparse import VERSION_KEY, BM25Stats, load_stats
from tests.support import API_KEY, FAQ_CSV, make_index, unique_name

HEADERS = {"Api-Key": API_KEY, "X-Pinecone-Api-Version": "2026-07"}
DIM = 16


def _sparse(rng: np.random.Generator, n: int) -> dict[str, list[Any]]:
    indices = sorted(rng.choice(50, size=n, replace=False).tolist())
    return {"indices": indices, "values": rng.random(n).astype(np.float32).tolist()}


def test_sparse_round_trip_scores_match_numpy(pc: Any) -> None:
    """Upsert, fetch, update and query sparse-dense records; scores equal dense.dense + sparse.sparse."""
    index = make_index(pc, DIM, "dotproduct", "hyb")
    rng = np.random.default_rng(7)
    records = [
        {"id": f"v{i}", "values": rng.normal(size=DIM).tolist(), "sparse_values": _sparse(rng, 5)}
        for i in range(20)
    ]
    records.append({"id": "dense-only", "values": rng.normal(size=DIM).tolist()})
    index.upsert(vectors=records)
    fetched = index.fetch(ids=["v3", "dense-only"]).vectors
    assert list(fetched["v3"].sparse_values.indices) == records[3]["sparse_values"]["indices"]
    assert fetched["dense-only"].sparse_values is None
    new_sparse = _sparse(rng, 7)
    index.update(id="v4", sparse_values=new_sparse)
    records[4]["sparse_values"] = new_sparse
    assert list(index.fetch(ids=["v4"]).vectors["v4"].sparse_values.indices) == new_sparse["indices"]

    query, query_sparse = rng.normal(size=DIM).tolist(), _sparse(rng, 8)
    response = index.query(vector=query, sparse_vector=query_sparse, top_k=len(records))

    def reference(record: dict[str, Any]) -> float:
        dense = float(np.dot(np.float32(record["values"]), np.float32(query)))
        theirs = dict(zip(*record.get("sparse_values", {"indices": [], "values": []}).values(), strict=True))
        ours = dict(zip(query_sparse["indices"], query_sparse["values"], strict=True))
        return dense + sum(
            float(np.float32(v)) * float(np.float32(ours[i])) for i, v in theirs.items() if i in ours
        )

    expected = {r["id"]: reference(r) for r in records}
    got = {m.id: m.score for m in response.matches}
    assert got.keys() == expected.keys()
    for vector_id, score in got.items():
        assert score == pytest.approx(expected[vector_id], abs=1e-5)
    assert [m.id for m in response.matches] == sorted(expected, key=lambda i: -expected[i])


@pytest.mark.parametrize(
    ("sparse", "message"),
    [
        ({"indices": [1, 2], "values": [0.5]}, "same length"),
        ({"indices": list(range(1001)), "values": [0.1] * 1001}, "maximum is 1000"),
        ({"indices": [3, 3], "values": [0.1, 0.2]}, "unique"),
        ({"indices": [-1], "values": [0.1]}, "between 0 and"),
    ],
)
def test_bad_sparse_values_are_refused_as_pinecone_does(pc: Any, sparse: Any, message: str) -> None:
    index = make_index(pc, 2, "dotproduct", "bad")
    response = httpx.post(
        f"{index.host}/vectors/upsert",
        json={"vectors": [{"id": "a", "values": [0.1, 0.2], "sparseValues": sparse}]},
        headers=HEADERS,
    )
    assert response.status_code == 400 and message in response.json()["error"]["message"]
    assert index.describe_index_stats().total_vector_count == 0


def test_sparse_on_a_cosine_index_is_refused(pc: Any) -> None:
    index = make_index(pc, 2, "cosine", "cos")
    with pytest.raises(ApiError, match="does not support sparse values"):
        index.upsert(
            vectors=[{"id": "a", "values": [0.1, 0.2], "sparse_values": {"indices": [1], "values": [1.0]}}]
        )
    index.upsert(vectors=[{"id": "a", "values": [0.1, 0.2]}])
    with pytest.raises(ApiError, match="does not support sparse values"):
        index.query(vector=[0.1, 0.2], sparse_vector={"indices": [1], "values": [1.0]}, top_k=1)
    assert [m.id for m in index.query(vector=[0.1, 0.2], top_k=1).matches] == ["a"]


def test_hybrid_asked_of_a_cosine_index_names_the_index_and_the_fix(pc: Any) -> None:
    name = unique_name("old")
    ensure_index(pc, name, DIM, metric="cosine")
    with pytest.raises(
        IndexMismatchError, match=rf"{name}.*cannot hold sparse values.*SAGERAG_RETRIEVAL=dense"
    ):
        ensure_index(pc, name, DIM, metric="dotproduct")
    # Dense-only retrieval keeps working on it, and a dotproduct index is fine for dense-only too.
    assert ensure_index(pc, name, DIM, metric="cosine")
    store = PineconeStore.from_index_name(pc, name, DeterministicFakeEmbedding(size=DIM), alpha=0.7)
    with pytest.raises(IndexMismatchError, match=rf"{name}.*cosine.*SAGERAG_RETRIEVAL=dense"):
        store.similarity_search("anything")


def _hybrid_store(pc: Any, name: str | None = None, alpha: float = 0.7) -> PineconeStore:
    name = name or unique_name("faq")
    ensure_index(pc, name, DIM, metric="dotproduct")
    return PineconeStore.from_index_name(pc, name, DeterministicFakeEmbedding(size=DIM), alpha=alpha)


def _ingest(store: PineconeStore, docs: list[Document], tmp: Path, prune: bool = False) -> Any:
    return ingest_documents(
        docs, store, tmp / "records.sqlite3", "ns", prune=prune, sparse_stats=tmp / "bm25.json"
    )


def test_reingest_adds_nothing_and_keeps_the_statistics_version(pc: Any, tmp_path: Path) -> None:
    store = _hybrid_store(pc)
    docs = load_csv(FAQ_CSV)
    first = _ingest(store, docs, tmp_path)
    version = load_stats(tmp_path / "bm25.json").version  # type: ignore[union-attr]
    assert first.added == 154
    again = _ingest(_hybrid_store(pc, store.index_name), load_csv(FAQ_CSV), tmp_path)
    assert (again.added, again.updated, again.skipped) == (0, 0, 154)
    assert load_stats(tmp_path / "bm25.json").version == version  # type: ignore[union-attr]
    stored = store.index.fetch(ids=[store.similarity_search("spot training instances", k=1)[0].id]).vectors
    assert next(iter(stored.values())).metadata[VERSION_KEY] == version
    # alpha 0 ranks by the sparse part alone (the fake dense vectors are noise): BM25 finds the rows.
    store.alpha = 0.0
    top = store.similarity_search("which instances work with managed spot training", k=3)
    assert "Managed Spot Training" in " ".join(d.metadata["question"] for d in top)


def test_prune_refits_and_rewrites_consistently(pc: Any, tmp_path: Path) -> None:
    store = _hybrid_store(pc)
    docs = load_csv(FAQ_CSV)
    _ingest(store, docs, tmp_path)
    old = load_stats(tmp_path / "bm25.json")
    pruned = _ingest(store, docs[:40], tmp_path, prune=True)
    new = load_stats(tmp_path / "bm25.json")
    assert old is not None and new is not None and new.version != old.version and new.n_docs == 40
    # A new version changes every kept document's hash: the 40 are rewritten (counted as updated) and the
    # other 114 old vectors go.
    assert (pruned.added, pruned.updated, pruned.deleted) == (0, 40, 114)
    hits = store.similarity_search("what is sagemaker", k=40)
    assert len(hits) == 40 and {d.metadata[VERSION_KEY] for d in hits} == {new.version}


def test_query_with_other_statistics_is_detected_and_explained(pc: Any, tmp_path: Path) -> None:
    store = _hybrid_store(pc)
    _ingest(store, load_csv(FAQ_CSV), tmp_path)
    store.sparse = BM25Stats.fit({"x": "a corpus of other words entirely, fitted somewhere else"})
    with pytest.raises(SparseStatsMismatchError, match=r"statistics.*sagerag ingest --prune"):
        store.similarity_search("spot training")


def test_missing_statistics_fall_back_to_dense_with_a_warning(
    pc: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Ingested from another data directory (a remote Pinecone): dense results, and a warning saying why."""
    store = _hybrid_store(pc)
    _ingest(store, load_csv(FAQ_CSV)[:10], tmp_path)
    store.sparse = None
    with caplog.at_level("WARNING", logger="sagerag.stores.pinecone_store"):
        assert len(store.similarity_search("spot training", k=3)) == 3
        store.similarity_search("spot training", k=3)
    warnings = [r.getMessage() for r in caplog.records if "not in this data directory" in r.getMessage()]
    assert len(warnings) == 1 and "dense-only" in warnings[0]


def test_query_of_unseen_words_returns_dense_results(pc: Any, tmp_path: Path) -> None:
    store = _hybrid_store(pc)
    _ingest(store, load_csv(FAQ_CSV)[:20], tmp_path)
    assert store.sparse is not None and not store.sparse.encode_query("zyxxy qwopt").indices
    hits = store.similarity_search_with_score("zyxxy qwopt", k=3)
    assert len(hits) == 3 and all(np.isfinite(score) for _, score in hits)


def test_local_pinecone_keeps_sparse_values_across_restarts(tmp_path: Path) -> None:
    with LocalPinecone(tmp_path / "pc", api_key=API_KEY) as server:
        index = make_index(server.client(), 2, "dotproduct", "keep")
        index.upsert(
            vectors=[{"id": "a", "values": [1.0, 0.0], "sparse_values": {"indices": [9], "values": [0.5]}}]
        )
        host = index.host.rsplit("/", 1)[-1]
    with LocalPinecone(tmp_path / "pc", api_key=API_KEY) as server:
        again = server.client().Index(host=server.client().indexes.describe(host).host)
        match = again.query(
            vector=[1.0, 0.0], sparse_vector={"indices": [9], "values": [2.0]}, top_k=1
        ).matches[0]
        assert match.score == pytest.approx(2.0, abs=1e-6)


def test_updates_by_metadata_filter_keep_sparse_values(pc: Any) -> None:
    index = make_index(pc, 2, "dotproduct", "upd")
    index.upsert(
        vectors=[
            {
                "id": "a",
                "values": [1.0, 0.0],
                "sparse_values": {"indices": [4], "values": [0.5]},
                "metadata": {"g": "x"},
            }
        ]
    )
    index.update(filter={"g": {"$eq": "x"}}, set_metadata={"h": "y"})
    kept = index.fetch(ids=["a"]).vectors["a"]
    assert kept.metadata == {"g": "x", "h": "y"} and list(kept.sparse_values.indices) == [4]
